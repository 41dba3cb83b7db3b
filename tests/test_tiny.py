"""The built-in tiny smoke-test model: deterministic build, SD-1.5 shapes, fast, honest about being random."""

from __future__ import annotations

import json
import os
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from t2vz_backend.models import tiny  # noqa: E402

WEIGHT_FILES = ("sd/unet/diffusion_pytorch_model.safetensors", "sd/vae/diffusion_pytorch_model.safetensors",
                "sd/text_encoder/model.safetensors", "controlnet/diffusion_pytorch_model.safetensors",
                "pix2pix/unet/diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tiny.TinyPaths:
    return tiny.ensure_tiny_models(str(tmp_path_factory.mktemp("cache")))


def test_rebuild_gives_identical_weights(paths: tiny.TinyPaths, tmp_path) -> None:
    again = tiny.ensure_tiny_models(str(tmp_path))
    assert again.root != paths.root
    for name in WEIGHT_FILES:
        first, second = load_file(os.path.join(paths.root, name)), load_file(os.path.join(again.root, name))
        assert first.keys() == second.keys()
        assert all(torch.equal(first[key], second[key]) for key in first), name


def test_ensure_builds_once_and_leaves_no_staging_folder(paths: tiny.TinyPaths) -> None:
    readme = os.path.join(paths.root, "README.txt")
    stamp = os.path.getmtime(readme)
    assert tiny.ensure_tiny_models(os.path.dirname(paths.root)) == paths
    assert os.path.getmtime(readme) == stamp
    assert os.listdir(os.path.dirname(paths.root)) == [tiny.VERSION]


def test_default_root_follows_t2vz_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("T2VZ_CACHE", str(tmp_path))
    assert tiny.tiny_paths().root == os.path.join(str(tmp_path), tiny.VERSION)
    monkeypatch.delenv("T2VZ_CACHE")
    assert tiny.tiny_paths().root == os.path.expanduser(os.path.join("~", ".cache", "t2vz", tiny.VERSION))


def test_it_says_it_is_a_random_smoke_test_model(paths: tiny.TinyPaths) -> None:
    with open(os.path.join(paths.root, "README.txt"), encoding="utf-8") as handle:
        readme = handle.read()
    assert "SMOKE-TEST MODEL WITH RANDOM WEIGHTS" in readme and "NOISE" in readme
    assert "smoke-test" in tiny.LABEL and "random" in tiny.LABEL and "noise" in tiny.LABEL
    assert "SMOKE-TEST" in tiny.__doc__


def test_sd_folder_is_sd15_shaped(paths: tiny.TinyPaths) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    with open(os.path.join(paths.sd, "model_index.json"), encoding="utf-8") as handle:
        index = json.load(handle)
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    unet = UNet2DConditionModel.from_pretrained(paths.sd, subfolder="unet")
    assert unet.config.in_channels == 4 and unet.config.cross_attention_dim == 32
    attention = list(unet.attn_processors)
    assert any(".attn1." in name for name in attention) and any(".attn2." in name for name in attention)
    assert any(name.startswith("mid_block.") for name in attention)
    vae = AutoencoderKL.from_pretrained(paths.sd, subfolder="vae")
    with torch.no_grad():
        latents = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)  # downsampling factor 8, like SD
    text_encoder = CLIPTextModel.from_pretrained(paths.sd, subfolder="text_encoder")
    assert text_encoder.config.hidden_size == 32 and text_encoder.config.max_position_embeddings == 77
    tokenizer = CLIPTokenizer.from_pretrained(paths.sd, subfolder="tokenizer")
    ids = tokenizer("the cat and the dog", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and tokenizer.model_max_length == 77
    assert ids[0] == tokenizer.bos_token_id and tokenizer.convert_ids_to_tokens(ids[1]) == "the</w>"
    assert tokenizer.convert_ids_to_tokens(ids[2]) == "cat</w>"
    assert text_encoder.config.eos_token_id == tokenizer.eos_token_id
    with open(os.path.join(paths.sd, "scheduler", "scheduler_config.json"), encoding="utf-8") as handle:
        scheduler = json.load(handle)
    assert (scheduler["beta_start"], scheduler["beta_end"], scheduler["beta_schedule"]) == (
        0.00085, 0.012, "scaled_linear")
    assert scheduler["num_train_timesteps"] == 1000 and scheduler["steps_offset"] == 1
    assert scheduler["set_alpha_to_one"] is False and scheduler["clip_sample"] is False


def test_controlnet_takes_full_resolution_rgb(paths: tiny.TinyPaths) -> None:
    from diffusers import ControlNetModel, UNet2DConditionModel

    controlnet = ControlNetModel.from_pretrained(paths.controlnet)
    unet = UNet2DConditionModel.from_pretrained(paths.sd, subfolder="unet")
    assert controlnet.config.conditioning_channels == 3
    assert controlnet.config.block_out_channels == unet.config.block_out_channels
    with torch.no_grad():
        down, mid = controlnet(torch.randn(1, 4, 8, 8), 10, torch.randn(1, 77, 32),
                               controlnet_cond=torch.rand(1, 3, 64, 64), return_dict=False)
    assert down[0].shape == (1, 32, 8, 8) and mid.abs().sum() > 0  # its zero convolutions are not zero


def test_pix2pix_unet_takes_eight_channels(paths: tiny.TinyPaths) -> None:
    with open(os.path.join(paths.pix2pix, "model_index.json"), encoding="utf-8") as handle:
        assert json.load(handle)["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    with open(os.path.join(paths.pix2pix, "unet", "config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["in_channels"] == 8


def test_is_tiny_ref(paths: tiny.TinyPaths, tmp_path) -> None:
    assert tiny.is_tiny_ref("tiny") and tiny.is_tiny_ref(paths.sd) and tiny.is_tiny_ref(paths.controlnet)
    assert not tiny.is_tiny_ref(str(tmp_path)) and not tiny.is_tiny_ref("org/name")


def test_three_frames_two_steps_run_fast(paths: tiny.TinyPaths) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(paths.sd, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe(["a cat"] * 3, num_inference_steps=2, height=64, width=64, output_type="np")  # warm-up
    start = time.perf_counter()
    images = pipe(["a cat"] * 3, num_inference_steps=2, height=64, width=64, output_type="np").images
    assert images.shape == (3, 64, 64, 3)
    assert time.perf_counter() - start < 10  # about 0.5 s on 2 idle cores; generous for a loaded test machine
