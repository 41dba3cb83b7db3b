"""Scheduler names -> diffusers schedulers from the model's config; VP vs sigma space; device/dtype resolution."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from t2vz_backend import validation  # noqa: E402
from t2vz_backend.errors import DependencyError, InvalidRequestError  # noqa: E402
from t2vz_backend.models import devices  # noqa: E402
from t2vz_backend.models.tiny import SCHEDULER_CONFIG  # noqa: E402
from t2vz_backend.sampling import schedulers  # noqa: E402

SD15 = {k: v for k, v in SCHEDULER_CONFIG.items() if k != "_class_name"}  # SD 1.5's PNDM config


def test_every_validated_name_has_a_scheduler() -> None:
    assert set(schedulers.SCHEDULER_CLASSES) == set(validation.SCHEDULERS)


@pytest.mark.parametrize("name", validation.SCHEDULERS)
def test_make_scheduler_keeps_the_training_schedule(name: str) -> None:
    class_name, _, dependency = schedulers.SCHEDULER_CLASSES[name]
    if dependency and importlib.util.find_spec(dependency) is None:
        with pytest.raises(DependencyError) as caught:
            schedulers.make_scheduler(name, SD15)
        assert caught.value.field == "scheduler" and f"pip install {dependency}" in caught.value.hint
        pytest.skip(f"{name} needs {dependency}, which is not installed (the error is the clear DependencyError)")
    scheduler = schedulers.make_scheduler(name, SD15)
    assert type(scheduler).__name__ == class_name
    config = scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert config.num_train_timesteps == 1000
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) >= 4
    assert schedulers.make_scheduler(name, SD15) is not scheduler  # a fresh object per call


def test_unknown_name_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        schedulers.make_scheduler("heun2", SD15)
    assert caught.value.field == "scheduler" and "ddim" in caught.value.hint


def test_ddim_from_a_foreign_config_does_not_clip_latents() -> None:
    # Instruct-Pix2Pix ships an Euler ancestral config, without DDIM's clip_sample / set_alpha_to_one keys.
    euler_config = {k: v for k, v in SD15.items() if k not in ("clip_sample", "set_alpha_to_one", "skip_prk_steps")}
    ddim = schedulers.make_scheduler("ddim", euler_config)
    assert ddim.config.clip_sample is False and ddim.config.set_alpha_to_one is False
    assert schedulers.make_scheduler("ddim", {**SD15, "set_alpha_to_one": True}).config.set_alpha_to_one is True


def test_dpm_variants_override_the_model_config() -> None:
    sde_config = {**SD15, "algorithm_type": "sde-dpmsolver++"}
    assert schedulers.make_scheduler("dpm++", sde_config).config.algorithm_type == "dpmsolver++"
    assert schedulers.make_scheduler("dpm++sde", SD15).config.algorithm_type == "sde-dpmsolver++"
    assert schedulers.make_scheduler("pndm", {**SD15, "skip_prk_steps": False}).config.skip_prk_steps is True


def test_sigma_space() -> None:
    assert [n for n in validation.SCHEDULERS if schedulers.is_sigma_space(n)] == ["euler", "euler_a", "lms"]
    euler = schedulers.make_scheduler("euler", SD15)
    assert schedulers.is_sigma_space(euler) and float(euler.init_noise_sigma) > 1
    ddim = schedulers.make_scheduler("ddim", SD15)
    assert not schedulers.is_sigma_space(ddim) and float(ddim.init_noise_sigma) == 1
    with pytest.raises(InvalidRequestError):
        schedulers.is_sigma_space("nope")


def test_devices_on_this_machine() -> None:
    assert devices.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidRequestError) as caught:
            devices.resolve_device("cuda")
        assert caught.value.field == "device" and "cpu" in caught.value.hint
        if not devices._mps_available():
            assert devices.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InvalidRequestError):
        devices.resolve_device("tpu")
    cpu = torch.device("cpu")
    assert devices.resolve_dtype("auto", cpu) == torch.float32
    assert devices.resolve_dtype("auto", torch.device("cuda")) == torch.float16  # no GPU needed to decide
    assert devices.resolve_dtype("float16", cpu) == torch.float16
    assert devices.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(InvalidRequestError) as caught:
        devices.resolve_dtype("int8", cpu)
    assert caught.value.field == "dtype"
    info = devices.describe_device("cpu")
    assert info.torch == torch.__version__ and info.device == "cpu" and info.dtype == "float32"
    assert "cpu" in info.summary() and info.to_dict()["torch"] == torch.__version__
