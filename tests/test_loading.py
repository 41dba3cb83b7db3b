"""Model loading: tiny, folders, single files, LoRA, offline, pickle policy, family checks, ControlNet, cache.

Every model is the tiny one, built by ``tiny.ensure_tiny_models`` into a temporary cache and loaded through the
same code path as a user's model. Nothing touches the network (conftest sets HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from ldm_checkpoint import write_controlnet_checkpoint, write_sd_checkpoint  # noqa: E402

from t2vz_backend.errors import ModelLoadError  # noqa: E402
from t2vz_backend.models.cache import ModelCache  # noqa: E402
from t2vz_backend.models.loading import default_controlnet_ref, load_base_model, load_controlnet  # noqa: E402
from t2vz_backend.models.tiny import TinyPaths, ensure_tiny_models  # noqa: E402
from t2vz_backend.protocol import LoraSpec  # noqa: E402

MADE_UP_HUB_ID = "t2vz-tests/no-such-model-4f1c"


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> TinyPaths:
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("T2VZ_CACHE", str(root))  # "tiny" resolves here
        yield ensure_tiny_models(str(root))


@pytest.fixture(scope="module")
def tiny(paths: TinyPaths):
    return load_base_model("tiny")


@pytest.fixture()
def empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def copy_of(folder: str, tmp_path, name: str = "model") -> str:
    return shutil.copytree(folder, str(tmp_path / name))


def edit_json(path: str, **changes) -> None:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    data.update(changes)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def unet_output(model) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        return model.unet(sample, 10, text).sample


def same_weights(a, b) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def refused(match: str, call, *args, **kwargs) -> ModelLoadError:
    with pytest.raises(ModelLoadError, match=match) as caught:
        call(*args, **kwargs)
    return caught.value


def test_tiny_loads_ready_for_inference_and_runs(tiny, paths: TinyPaths) -> None:
    from diffusers import StableDiffusionPipeline

    assert tiny.kind == "sd" and tiny.is_tiny
    assert tiny.device == torch.device("cpu") and tiny.dtype == torch.float32 and tiny.source == paths.sd
    for module in (tiny.unet, tiny.vae, tiny.text_encoder):
        assert not module.training and not any(p.requires_grad for p in module.parameters())
    assert tiny.scheduler_config["steps_offset"] == 1 and tiny.scheduler_config["prediction_type"] == "epsilon"
    pipe = StableDiffusionPipeline(**tiny.components())
    pipe.set_progress_bar_config(disable=True)
    images = pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np").images
    assert images.shape == (1, 64, 64, 3)
    by_path = load_base_model(paths.sd)
    assert by_path.is_tiny and same_weights(by_path.unet, tiny.unet)


def test_dtype_is_applied_to_every_component(paths: TinyPaths) -> None:
    model = load_base_model("tiny", dtype="bfloat16")
    assert model.unet.dtype == model.vae.dtype == model.text_encoder.dtype == torch.bfloat16


def test_single_ldm_checkpoint_with_local_config(tiny, paths: TinyPaths, tmp_path) -> None:
    path = str(tmp_path / "tiny-sd.safetensors")
    write_sd_checkpoint(path, tiny.unet, tiny.vae, tiny.text_encoder)
    model = load_base_model(path, config=paths.sd, offline=True)
    assert model.source == path and not model.uses_pickle
    for name in ("unet", "vae", "text_encoder"):
        assert same_weights(getattr(model, name), getattr(tiny, name)), name
    assert model.scheduler_config["beta_schedule"] == "scaled_linear"


def test_single_checkpoint_job_with_model_config_runs_offline(tiny, paths: TinyPaths, tmp_path) -> None:
    """The request's model_config reaches the loader, so a downloaded .safetensors works without the network."""
    from t2vz_backend.models.cache import ModelCache
    from t2vz_backend.protocol import Done, TextToVideoRequest
    from t2vz_backend.service.jobs import run_job

    path = str(tmp_path / "tiny-sd.safetensors")
    write_sd_checkpoint(path, tiny.unet, tiny.vae, tiny.text_encoder)
    request = TextToVideoRequest(output_dir=str(tmp_path / "out"), model=path, model_config=paths.sd, offline=True,
                                 prompt="a cat", frames=2, width=64, height=64, steps=2, t0=881, t1=941)
    events: list = []
    done = run_job(request, cache=ModelCache(), emit=events.append)
    assert isinstance(done, Done) and len(done.frames) == 2 and all(os.path.isfile(f) for f in done.frames)


def test_single_checkpoint_offline_without_config_fails_fast(tiny, tmp_path, empty_hub_cache) -> None:
    path = str(tmp_path / "tiny-sd.safetensors")
    write_sd_checkpoint(path, tiny.unet, tiny.vae, tiny.text_encoder)
    start = time.perf_counter()
    error = refused("configs .* are not cached", load_base_model, path, offline=True)
    assert time.perf_counter() - start < 10
    assert error.field == "model_config" and "SD 1.5 folder" in error.hint and "online" in error.hint


def test_lora_changes_the_unet_and_scale_zero_does_not(tiny, paths: TinyPaths, tmp_path) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(paths.sd, subfolder="unet")
    torch.manual_seed(1)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(str(tmp_path / "lora"), unet_lora_layers=layers)
    lora_file = str(tmp_path / "lora" / "pytorch_lora_weights.safetensors")
    reference = unet_output(tiny)
    full = load_base_model("tiny", loras=(LoraSpec(lora_file, 1.0),))
    assert not torch.allclose(unet_output(full), reference, atol=1e-4)
    assert type(full.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q) is torch.nn.Linear
    by_folder = load_base_model("tiny", loras=(LoraSpec(str(tmp_path / "lora"), 1.0),))
    assert torch.equal(unet_output(by_folder), unet_output(full))
    off = load_base_model("tiny", loras=(LoraSpec(lora_file, 0.0),))
    assert torch.equal(unet_output(off), reference)
    torch.save({"w": torch.zeros(1)}, str(tmp_path / "lora.pt"))
    error = refused("pickle", load_base_model, "tiny", loras=(LoraSpec(str(tmp_path / "lora.pt")),))
    assert error.field == "loras[0].path"


def test_offline_hub_ids_fail_fast_with_a_clear_error(tiny) -> None:
    start = time.perf_counter()
    error = refused("not in the local Hugging Face cache, and offline mode is on", load_base_model, MADE_UP_HUB_ID,
                    offline=True)
    assert "offline mode off" in error.hint and error.field == "model"
    refused("offline", load_base_model, MADE_UP_HUB_ID)  # HF_HUB_OFFLINE=1 counts as offline
    refused("offline", load_controlnet, MADE_UP_HUB_ID, base=tiny, offline=True)
    refused("offline", load_base_model, "tiny", loras=(LoraSpec(MADE_UP_HUB_ID),), offline=True)
    assert time.perf_counter() - start < 10


def cache_repo(repo: str, source: str, *, weights: bool = True) -> str:
    """Put ``source`` into the (patched) Hugging Face cache as hub repository ``repo``, as a download would."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    base = os.path.join(huggingface_hub.constants.HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(base, "refs"))
    with open(os.path.join(base, "refs", "main"), "w", encoding="utf-8") as handle:
        handle.write(commit)
    ignore = None if weights else shutil.ignore_patterns("*.safetensors")
    return shutil.copytree(source, os.path.join(base, "snapshots", commit), ignore=ignore)


def test_hub_ids_from_the_local_cache_offline(tiny, paths: TinyPaths, tmp_path, empty_hub_cache) -> None:
    snapshot = cache_repo("t2vz-tests/tiny-sd", paths.sd)
    model = load_base_model("t2vz-tests/tiny-sd", offline=True)
    assert model.source == snapshot and same_weights(model.unet, tiny.unet)
    cache_repo("t2vz-tests/tiny-controlnet", paths.controlnet)
    assert load_controlnet("t2vz-tests/tiny-controlnet", base=tiny, offline=True).config.conditioning_channels == 3
    # Configs only (what a single-file load caches): enough to describe a checkpoint, not to load the repo itself.
    cache_repo("stable-diffusion-v1-5/stable-diffusion-v1-5", paths.sd, weights=False)
    path = str(tmp_path / "tiny-sd.safetensors")
    write_sd_checkpoint(path, tiny.unet, tiny.vae, tiny.text_encoder)
    assert same_weights(load_base_model(path, offline=True).unet, tiny.unet)  # default config from the cache
    error = refused("has no weights", load_base_model, "stable-diffusion-v1-5/stable-diffusion-v1-5", offline=True)
    assert "online" in error.hint


def test_pickle_checkpoint_is_refused_unless_allowed(tiny, paths: TinyPaths, tmp_path) -> None:
    path = str(tmp_path / "tiny-sd.ckpt")
    write_sd_checkpoint(path, tiny.unet, tiny.vae, tiny.text_encoder)
    error = refused("pickle", load_base_model, path, config=paths.sd)
    assert "arbitrary code" in error.hint and "allow_pickle" in error.hint and ".safetensors" in error.hint
    model = load_base_model(path, config=paths.sd, allow_pickle=True)
    assert model.uses_pickle and same_weights(model.unet, tiny.unet)


def test_folder_with_only_bin_weights_is_refused_unless_allowed(tiny, paths: TinyPaths, tmp_path) -> None:
    from safetensors.torch import load_file

    folder = copy_of(paths.sd, tmp_path)
    weights = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
    torch.save(load_file(weights), os.path.join(folder, "unet", "diffusion_pytorch_model.bin"))
    os.remove(weights)
    error = refused("pickle", load_base_model, folder)
    assert "unet" in str(error) and "arbitrary code" in error.hint
    model = load_base_model(folder, allow_pickle=True)
    assert model.uses_pickle and same_weights(model.unet, tiny.unet)
    cache = ModelCache()
    cache.base(folder, allow_pickle=True)
    refused("pickle", cache.base, folder)  # a cached pickle model is refused like a fresh load


def test_other_families_are_refused(paths: TinyPaths, tmp_path) -> None:
    from safetensors.torch import save_file

    sdxl = copy_of(paths.sd, tmp_path, "sdxl")
    edit_json(os.path.join(sdxl, "model_index.json"), _class_name="StableDiffusionXLPipeline")
    refused("SDXL", load_base_model, sdxl)
    text_time = copy_of(paths.sd, tmp_path, "text_time")
    edit_json(os.path.join(text_time, "unet", "config.json"), addition_embed_type="text_time")
    refused("SDXL", load_base_model, text_time)
    flux = str(tmp_path / "flux")
    os.makedirs(os.path.join(flux, "transformer"))
    with open(os.path.join(flux, "model_index.json"), "w", encoding="utf-8") as handle:
        json.dump({"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}, handle)
    refused("Flux", load_base_model, flux)
    sdxl_file = str(tmp_path / "sdxl.safetensors")
    save_file({"conditioner.embedders.1.model.positional_embedding": torch.zeros(77, 8),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}, sdxl_file)
    refused("SDXL", load_base_model, sdxl_file, config=paths.sd)


def test_broken_references_name_the_problem(paths: TinyPaths, tmp_path) -> None:
    missing = str(tmp_path / "nowhere" / "model.safetensors")
    assert missing in str(refused("does not exist", load_base_model, missing))
    no_vae = copy_of(paths.sd, tmp_path, "no_vae")
    shutil.rmtree(os.path.join(no_vae, "vae"))
    refused("has no vae/ component", load_base_model, no_vae)
    no_weights = copy_of(paths.sd, tmp_path, "no_weights")
    os.remove(os.path.join(no_weights, "text_encoder", "model.safetensors"))
    refused("text_encoder/ has no weights", load_base_model, no_weights)
    os.makedirs(tmp_path / "empty")
    refused("not a diffusers pipeline folder", load_base_model, str(tmp_path / "empty"))
    refused("holds one component", load_base_model, paths.controlnet)
    (tmp_path / "notes.txt").write_text("hello")
    refused("not a checkpoint", load_base_model, str(tmp_path / "notes.txt"))


def test_pix2pix_needs_eight_input_channels(paths: TinyPaths) -> None:
    error = refused("not an Instruct-Pix2Pix model", load_base_model, paths.sd, kind="pix2pix")
    assert "timbrooks/instruct-pix2pix" in error.hint
    refused("Instruct-Pix2Pix model", load_base_model, paths.pix2pix, kind="sd")
    model = load_base_model("tiny", kind="pix2pix")
    assert model.kind == "pix2pix" and model.unet.config.in_channels == 8 and model.source == paths.pix2pix


def test_controlnets(tiny, paths: TinyPaths, tmp_path) -> None:
    from diffusers import ControlNetModel

    controlnet = load_controlnet("tiny", base=tiny)
    assert controlnet.dtype == tiny.dtype and not controlnet.training
    path = str(tmp_path / "control.safetensors")
    write_controlnet_checkpoint(path, controlnet)
    assert same_weights(load_controlnet(path, base=tiny), controlnet)  # config derived from the base UNet
    other = ControlNetModel.from_config({**controlnet.config, "cross_attention_dim": 64})
    other.save_pretrained(str(tmp_path / "other"))
    error = refused("does not match the base model", load_controlnet, str(tmp_path / "other"), base=tiny)
    assert "cross_attention_dim is 64" in str(error) and "32" in str(error)
    refused("not a ControlNet folder", load_controlnet, paths.sd, base=tiny)


def test_default_controlnet_refs() -> None:
    assert default_controlnet_ref("pose", "tiny") == "tiny"
    assert default_controlnet_ref("pose", "org/model") == "lllyasviel/sd-controlnet-openpose"
    assert default_controlnet_ref("depth", "org/model") == "lllyasviel/sd-controlnet-depth"
    assert default_controlnet_ref("canny", "org/model") == "lllyasviel/sd-controlnet-canny"
    assert "ControlSpec.model" in refused("no default ControlNet", default_controlnet_ref, "scribble", "a/b").hint


def test_model_cache(paths: TinyPaths) -> None:
    cache = ModelCache()
    base = cache.base("tiny")
    assert cache.base("tiny", device="cpu", dtype="float32") is base  # "auto" resolves to the same key
    controlnet = cache.controlnet("tiny", base=base)
    assert cache.controlnet("tiny", base=base) is controlnet and len(cache) == 2
    assert cache.clear() == 2 and len(cache) == 0
    fresh = cache.base("tiny")
    assert fresh is not base
    cache.base("tiny", kind="pix2pix")  # max_bases=1: replaces the sd model
    assert len(cache) == 1 and cache.base("tiny") is not fresh


def _damage(path: str, how: str) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) * 2 // 3] if how == "truncated" else os.urandom(len(data)))


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("what", ["unet", "controlnet", "lora", "checkpoint"])
def test_damaged_weights_name_the_file_and_never_suggest_pickle(tiny, paths: TinyPaths, tmp_path, what, how):
    from safetensors.torch import save_file

    if what == "unet":
        folder = copy_of(paths.sd, tmp_path)
        damaged = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
        call, args, field = load_base_model, (folder,), "model"
    elif what == "controlnet":
        folder = copy_of(paths.controlnet, tmp_path)
        damaged = os.path.join(folder, "diffusion_pytorch_model.safetensors")
        call, args, field = load_controlnet, (folder,), "controls"
    elif what == "lora":
        damaged = str(tmp_path / "style.safetensors")
        save_file({"lora_unet_down.weight": torch.zeros(64, 4)}, damaged)
        call, args, field = load_base_model, ("tiny",), "loras[0].path"
    else:
        damaged = str(tmp_path / "tiny-sd.safetensors")
        write_sd_checkpoint(damaged, tiny.unet, tiny.vae, tiny.text_encoder)
        call, args, field = load_base_model, (damaged,), "model"
    _damage(damaged, how)
    kwargs = {"loras": (LoraSpec(damaged),)} if what == "lora" else {"base": tiny} if what == "controlnet" else {}
    error = refused("is damaged", call, *args, **kwargs)
    assert damaged in error.message and error.field == field
    assert "download it again" in error.hint
    assert "pickle" not in f"{error.message} {error.hint}".lower()
