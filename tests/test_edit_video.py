"""Video Instruct-Pix2Pix on the tiny model: parity with diffusers, noise keyed per frame, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInstructPix2PixPipeline
from PIL import Image
from text_attention_spy import FallbackCounter

from t2vz_backend.errors import InputError, InvalidRequestError, ModelLoadError
from t2vz_backend.pipelines.edit_video import edit_video
from t2vz_backend.protocol import EditVideoRequest
from t2vz_backend.sampling.context import JobContext


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for k in range(4):
        Image.fromarray(np.roll(base, 3 * k, axis=1)).save(folder / f"clip_{k:04d}.png")
    return str(folder)


@pytest.fixture(scope="module")
def request_(clip_dir) -> EditVideoRequest:
    return EditVideoRequest(output_dir="unused", instruction="make it snow", input=clip_dir, steps=5, seed=5,
                            long_side=0)


def run(model, request, **changes):
    ctx = JobContext.collecting()
    edit_video(dataclasses.replace(request, **changes), model, ctx)
    return ctx.frames


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a"])
def test_frame_zero_equals_the_pix2pix_pipeline(tiny_pix2pix, request_, clip_dir, scheduler):
    frames = run(tiny_pix2pix, request_, scheduler=scheduler)
    pipe = StableDiffusionInstructPix2PixPipeline(**tiny_pix2pix.components(scheduler))
    pipe.set_progress_bar_config(disable=True)
    still = pipe("make it snow", image=Image.open(f"{clip_dir}/clip_0000.png"), num_inference_steps=5,
                 guidance_scale=7.5, image_guidance_scale=1.5,
                 generator=torch.Generator("cpu").manual_seed(5)).images[0]
    assert sorted(frames) == [0, 1, 2, 3] and frames[0].shape == (48, 64, 3)
    assert max_diff(np.asarray(still), frames[0]) <= 1  # float rounding of one 8-bit level at most


def test_text_attention_uses_the_per_job_cache(tiny_pix2pix, request_, monkeypatch):
    counter = FallbackCounter(monkeypatch)
    assert sorted(run(tiny_pix2pix, request_)) == [0, 1, 2, 3]
    assert counter.fallbacks == {} and set(counter.cached) == {"unet"}


@pytest.mark.parametrize("scheduler", ["ddim", "euler_a"])
def test_chunks_and_sub_ranges_never_change_a_frame(tiny_pix2pix, request_, scheduler):
    full = run(tiny_pix2pix, request_, scheduler=scheduler)
    chunked = run(tiny_pix2pix, request_, scheduler=scheduler, chunk_size=1)
    shared = run(tiny_pix2pix, request_, scheduler=scheduler, chunk_size=3, exact_anchor=False)
    part = run(tiny_pix2pix, request_, scheduler=scheduler, frame_start=1, frame_end=2)
    assert max(max_diff(chunked[k], full[k]) for k in full) <= 1
    assert max(max_diff(shared[k], full[k]) for k in full) <= 1
    assert sorted(part) == [1, 2] and max(max_diff(part[k], full[k]) for k in part) <= 1


def test_output_keeps_the_input_frame_count_and_long_side(tiny_pix2pix, request_):
    frames = run(tiny_pix2pix, request_, long_side=32, guidance=1.0)  # no CFG branch layout (G = 1) too
    assert sorted(frames) == [0, 1, 2, 3] and frames[0].shape == (24, 32, 3)


def test_bad_input(tiny_pix2pix, tiny_sd, request_, clip_dir):
    with pytest.raises(InvalidRequestError, match="instruction is empty"):
        run(tiny_pix2pix, request_, instruction="  ")
    with pytest.raises(InputError):
        run(tiny_pix2pix, request_, frames=9)
    with pytest.raises(ModelLoadError, match="8"):
        run(tiny_sd, request_)
