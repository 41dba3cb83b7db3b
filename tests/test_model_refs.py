"""Model references read one way everywhere (t2vz_backend/model_refs.py): validation, the loader and the add-on.

The reviewer's case end to end: a ``.pth`` single-file checkpoint with ``model_config`` set in the add-on's
preferences reaches the request (the add-on used to drop the config), passes validation (it used to be refused as
"not a single-file checkpoint") and loads.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from blender_addon.core import contract, request_builder, settings_table
from t2vz_backend import model_refs
from t2vz_backend.errors import ModelLoadError
from t2vz_backend.models import files
from t2vz_backend.protocol import TextToVideoRequest, dumps, request_from_dict
from t2vz_backend.validation import validate_request

REFS = {  # reference -> written as a path?
    "tiny": False, "org/name": False, "stable-diffusion-v1-5/stable-diffusion-v1-5": False,
    "./model": True, "~/m": True, "/abs/m": True, "a/b/c": True, "C:\\models\\sd": True, "C:/m": True,
    "model.pth": True, "org/model.safetensors": True, "x.ckpt": True, "x.pt": True, "x.bin": True, "x.pkl": True,
}


@pytest.mark.parametrize("ref", sorted(REFS))
def test_validation_and_loader_read_a_missing_reference_alike(ref):
    problems = [p for p in validate_request(TextToVideoRequest(output_dir="o", model=ref)) if p.field == "model"]
    assert model_refs.looks_like_path(ref) is REFS[ref]
    if ref == "tiny":
        return
    if REFS[ref]:  # a path that does not exist: both say so
        assert problems and "does not exist" in problems[0].message
        with pytest.raises(ModelLoadError, match="does not exist"):
            files.classify(ref)
    else:  # a hub id: neither refuses it before looking it up
        assert not problems and files.classify(ref).kind == "hub"


def test_a_reference_that_is_neither_is_refused_by_both():
    (problem,) = [p for p in validate_request(TextToVideoRequest(output_dir="o", model="sd15")) if p.field == "model"]
    assert "neither a path nor a hub id" in problem.message
    with pytest.raises(ModelLoadError, match="neither a path nor a hub id"):
        files.classify("sd15")


def test_every_checkpoint_suffix_takes_a_model_config(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    for suffix in model_refs.CHECKPOINT_SUFFIXES:
        model = tmp_path / f"model{suffix}"
        model.write_bytes(b"")
        request = TextToVideoRequest(output_dir="o", model=str(model), model_config=str(configs))
        assert not [p for p in validate_request(request) if p.field in ("model", "model_config")], suffix
    assert files.PICKLE_SUFFIXES == model_refs.PICKLE_SUFFIXES  # the loader's list is the contract's


def _settings(**changes):
    values = {s.name: contract.default(s, s.modes[0]) for s in settings_table.SCENE_SETTINGS}
    values.update(mode="TEXT2VIDEO", prompt="a cat", steps=2, width=64, height=64, frames=2)
    values.update(changes)
    return SimpleNamespace(**values)


def test_pth_checkpoint_with_model_config_from_the_addon_to_the_loader(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from ldm_checkpoint import write_sd_checkpoint

    from t2vz_backend.models.cache import ModelCache
    from t2vz_backend.models.loading import load_base_model
    from t2vz_backend.models.tiny import ensure_tiny_models
    from t2vz_backend.protocol import Done
    from t2vz_backend.service.jobs import run_job

    monkeypatch.setenv("T2VZ_CACHE", str(tmp_path / "cache"))
    paths = ensure_tiny_models(str(tmp_path / "cache"))
    tiny = load_base_model("tiny")
    checkpoint = str(tmp_path / "downloaded" / "tiny-sd.pth")
    os.makedirs(os.path.dirname(checkpoint))
    write_sd_checkpoint(checkpoint, tiny.unet, tiny.vae, tiny.text_encoder)

    prefs = request_builder.PrefsView(base_model=checkpoint, model_config=paths.sd, allow_pickle=True,
                                      device="cpu", dtype="float32", offline=True)
    request = request_builder.build_request(_settings(), prefs, str(tmp_path / "out"))
    assert (request.model, request.model_config, request.allow_pickle) == (checkpoint, paths.sd, True)
    assert request_builder.problems(request, "TEXT2VIDEO") == {}  # the add-on's one validation
    sent = request_from_dict(json.loads(dumps(request)))  # what the worker receives
    done = run_job(sent, cache=ModelCache(), emit=lambda event: None)
    assert isinstance(done, Done) and len(done.frames) == 2

    refused = request_from_dict({**json.loads(dumps(request)), "allow_pickle": False,
                                 "output_dir": str(tmp_path / "out2")})
    with pytest.raises(ModelLoadError, match="pickle"):  # the loader's own check, before any denoising
        run_job(refused, cache=ModelCache(), emit=lambda event: None)
