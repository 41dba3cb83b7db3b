"""ControlNet video on the tiny models: parity with diffusers' ControlNet pipelines, invariance, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import MultiControlNetModel, StableDiffusionControlNetPipeline
from PIL import Image
from text_attention_spy import FallbackCounter

from t2vz_backend.errors import InputError, T2VZError
from t2vz_backend.pipelines.control_video import control_video
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest
from t2vz_backend.sampling.context import JobContext


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def request_(maps_dir) -> ControlVideoRequest:
    # exact_anchor: the layout whose frame 0 is bit-identical to diffusers' still (not the default)
    return ControlVideoRequest(output_dir="unused", prompt="a robot", negative_prompt="", steps=5, seed=7,
                               long_side=0, exact_anchor=True, controls=(ControlSpec(kind="canny", path=maps_dir),))


def run(model, nets, request, **changes):
    ctx = JobContext.collecting()
    control_video(dataclasses.replace(request, **changes), model, nets, ctx)
    return ctx.frames


@pytest.fixture(scope="module")
def full(tiny_sd, tiny_controlnet, request_):
    return run(tiny_sd, [tiny_controlnet], request_)


def test_frame_zero_equals_the_controlnet_pipeline(tiny_sd, tiny_controlnet, request_, full, maps_dir):
    pipe = StableDiffusionControlNetPipeline(controlnet=tiny_controlnet, **tiny_sd.components("ddim"))
    pipe.set_progress_bar_config(disable=True)
    still = pipe("a robot", image=Image.open(f"{maps_dir}/map_00.png"), num_inference_steps=5, guidance_scale=9.0,
                 generator=torch.Generator("cpu").manual_seed(7)).images[0]
    assert sorted(full) == [0, 1, 2, 3]
    assert max_diff(np.asarray(still), full[0]) == 0
    assert max_diff(full[3], full[0]) > 0  # the maps drive the frames apart


def test_text_attention_of_unet_and_controlnet_uses_the_per_job_cache(tiny_sd, tiny_controlnet, request_, full,
                                                                      monkeypatch):
    counter = FallbackCounter(monkeypatch)
    assert max_diff(run(tiny_sd, [tiny_controlnet], request_)[3], full[3]) == 0
    assert counter.fallbacks == {} and set(counter.cached) == {"unet", "controlnet0"}


def test_multi_controlnet_frame_zero_equals_diffusers(tiny_sd, tiny_controlnet, request_, maps_dir):
    second = ControlSpec(kind="depth", path=maps_dir, scale=0.5, start=0.2, end=0.8)
    frames = run(tiny_sd, [tiny_controlnet, tiny_controlnet], request_, controls=request_.controls + (second,))
    pipe = StableDiffusionControlNetPipeline(controlnet=MultiControlNetModel([tiny_controlnet, tiny_controlnet]),
                                             **tiny_sd.components("ddim"))
    pipe.set_progress_bar_config(disable=True)
    image = Image.open(f"{maps_dir}/map_00.png")
    still = pipe("a robot", image=[image, image], controlnet_conditioning_scale=[1.0, 0.5],
                 control_guidance_start=[0.0, 0.2], control_guidance_end=[1.0, 0.8], num_inference_steps=5,
                 guidance_scale=9.0, generator=torch.Generator("cpu").manual_seed(7)).images[0]
    assert max_diff(np.asarray(still), frames[0]) == 0


@pytest.mark.parametrize("chunk,exact", [(1, True), (3, True), (3, False), (8, False)])
def test_chunking_and_sub_ranges_do_not_change_frames(tiny_sd, tiny_controlnet, request_, full, chunk, exact):
    chunked = run(tiny_sd, [tiny_controlnet], request_, chunk_size=chunk, exact_anchor=exact)
    assert max(max_diff(chunked[k], full[k]) for k in full) <= 1
    part = run(tiny_sd, [tiny_controlnet], request_, frame_start=2, chunk_size=chunk, exact_anchor=exact)
    assert sorted(part) == [2, 3] and max(max_diff(part[k], full[k]) for k in part) <= 1


def test_motion_on_request(tiny_sd, tiny_controlnet, request_, full):
    moved = run(tiny_sd, [tiny_controlnet], request_, motion_x=0.05)
    assert max_diff(moved[0], full[0]) == 0 and max_diff(moved[2], full[2]) > 0


def test_canny_preprocessing_and_auto_size(tiny_sd, tiny_controlnet, request_, maps_dir):
    spec = ControlSpec(kind="canny", path=maps_dir, preprocessor="canny")
    frames = run(tiny_sd, [tiny_controlnet], request_, controls=(spec,), long_side=32, frames=2)
    assert sorted(frames) == [0, 1] and frames[0].shape == (32, 32, 3)


def test_frame_count_mismatch_is_refused(tiny_sd, tiny_controlnet, request_, maps_dir, tmp_path):
    with pytest.raises(InputError, match="has 4 frames but the video needs 6"):
        run(tiny_sd, [tiny_controlnet], request_, frames=6)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="has 1 frames"):
        run(tiny_sd, [tiny_controlnet, tiny_controlnet], request_,
            controls=request_.controls + (ControlSpec(kind="depth", path=str(tmp_path)),))


def test_mixed_sizes_and_corrupt_images_are_named(tiny_sd, tiny_controlnet, request_, tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(InputError, match="b.png"):
        run(tiny_sd, [tiny_controlnet], request_, controls=(ControlSpec(kind="canny", path=str(tmp_path)),))
    (tmp_path / "b.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="b.png"):
        run(tiny_sd, [tiny_controlnet], request_, controls=(ControlSpec(kind="canny", path=str(tmp_path)),))


def test_no_control_is_refused(tiny_sd, request_):
    with pytest.raises(T2VZError, match="no ControlNet"):
        run(tiny_sd, [], request_, controls=())
