"""Text->video on the tiny model: parity with a diffusers still, chunk/sub-range invariance, bad input."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from t2vz_backend.attention.cross_frame import CrossFrameState
from t2vz_backend.errors import InvalidRequestError
from t2vz_backend.pipelines import dynamics as dynamics_module
from t2vz_backend.pipelines import text_to_video as t2v_module
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import MotionKey, TextToVideoRequest
from t2vz_backend.sampling import sampler as sampler_module
from t2vz_backend.sampling.context import JobContext

# The exact layout: the one whose frame 0 is bit-identical to the still (the default shares the first call).
BASE = TextToVideoRequest(output_dir="unused", prompt="a red fox running", negative_prompt="blurry", frames=4,
                          width=64, height=64, steps=6, seed=11, chunk_size=8, exact_anchor=True)


def run(model, **changes) -> dict[int, np.ndarray]:
    ctx = JobContext.collecting()
    text_to_video(dataclasses.replace(BASE, **changes), model, ctx)
    return ctx.frames


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def full(tiny_sd):
    return run(tiny_sd)


def still(model, request: TextToVideoRequest) -> np.ndarray:
    pipe = StableDiffusionPipeline(**model.components("ddim"))
    pipe.set_progress_bar_config(disable=True)
    image = pipe(request.prompt, negative_prompt=request.negative_prompt, num_inference_steps=request.steps,
                 guidance_scale=request.guidance, height=request.height, width=request.width,
                 generator=torch.Generator("cpu").manual_seed(request.seed)).images[0]
    return np.asarray(image)


def test_frame_zero_equals_the_diffusers_still(tiny_sd, full):
    assert max_diff(full[0], still(tiny_sd, BASE)) == 0


def test_frames_are_a_video_not_copies(full):
    assert sorted(full) == [0, 1, 2, 3]
    assert all(full[k].shape == (64, 64, 3) and full[k].dtype == np.uint8 for k in full)
    assert max_diff(full[1], full[0]) > 0 and max_diff(full[2], full[1]) > 0


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunk_size_does_not_change_frames(tiny_sd, full, chunk):
    chunked = run(tiny_sd, chunk_size=chunk)
    # Only float rounding of differently sized batches differs: at most one 8-bit level.
    assert max(max_diff(chunked[k], full[k]) for k in full) <= 1


def unet_batches(model, request) -> tuple[list[int], dict[int, np.ndarray]]:
    """Run a job and record the batch size of every UNet call."""
    sizes: list[int] = []
    hook = model.unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        ctx = JobContext.collecting()
        text_to_video(request, model, ctx)
    finally:
        hook.remove()
    return sizes, ctx.frames


def test_shared_anchor_layout_is_one_call_per_step_and_the_same_video(tiny_sd, full):
    exact_sizes, _ = unet_batches(tiny_sd, BASE)
    shared_sizes, shared = unet_batches(tiny_sd, dataclasses.replace(BASE, exact_anchor=False))
    # exact: every main step = anchor (2 rows: CFG) + frames 1-3 (6 rows); shared: one call of all 4 frames (8 rows)
    main_steps = exact_sizes.count(6)
    assert main_steps >= 2 and set(exact_sizes) == {2, 6}
    assert sorted(shared_sizes) == sorted([2] * (len(exact_sizes) - 2 * main_steps) + [8] * main_steps)
    assert max(max_diff(shared[k], full[k]) for k in full) <= 1
    assert max_diff(shared[0], still(tiny_sd, BASE)) <= 1  # float rounding of a bigger batch only
    part = run(tiny_sd, exact_anchor=False, chunk_size=2, frame_start=2)
    assert sorted(part) == [2, 3] and max(max_diff(part[k], full[k]) for k in part) <= 1


def test_sub_range_renders_exactly_those_frames_of_the_full_run(tiny_sd, full):
    part = run(tiny_sd, frame_start=2, frame_end=3)
    assert sorted(part) == [2, 3]
    assert max(max_diff(part[k], full[k]) for k in part) <= 1


def test_deterministic(tiny_sd, full):
    again = run(tiny_sd)
    assert all(np.array_equal(again[k], full[k]) for k in full)


def test_seed_changes_the_video(tiny_sd, full):
    assert max_diff(run(tiny_sd, seed=12)[0], full[0]) > 0


class _PlainAttention(CrossFrameState):
    """A state for runs with the stock processors: nothing is recorded, nothing replayed."""

    def replaying(self, branches):
        return nullcontext()


def test_cross_frame_attention_is_active(tiny_sd, full, monkeypatch):
    # A/B with the same seed: without the processors the anchor is unchanged but the other frames differ.
    monkeypatch.setattr(t2v_module, "cross_frame_attention", lambda models, state: nullcontext(state))
    monkeypatch.setattr(sampler_module, "verify_installed", lambda models: None)
    monkeypatch.setattr(dynamics_module, "verify_installed", lambda models: None)
    ctx = JobContext.collecting()
    text_to_video(BASE, tiny_sd, ctx, state=_PlainAttention())
    assert max_diff(ctx.frames[0], full[0]) == 0  # the anchor attends to itself either way
    assert max_diff(ctx.frames[2], full[2]) > 0


def test_no_cfg_and_one_frame(tiny_sd):
    one = run(tiny_sd, frames=1, guidance=1.0)
    assert sorted(one) == [0]
    assert max_diff(one[0], still(tiny_sd, dataclasses.replace(BASE, guidance=1.0))) == 0
    assert sorted(run(tiny_sd, guidance=0.0, frames=3)) == [0, 1, 2]


def test_per_frame_prompts_and_camera_path(tiny_sd, full):
    prompts = ("a red fox running", "a red fox running", "a blue fox", "a blue fox")
    varied = run(tiny_sd, frame_prompts=prompts)
    assert max_diff(varied[0], full[0]) == 0 and max_diff(varied[3], full[3]) > 0
    path = tuple(MotionKey(dx=0.02 * k, zoom=1 + 0.05 * k, rotation=2.0 * k) for k in range(4))
    assert sorted(run(tiny_sd, motion_path=path)) == [0, 1, 2, 3]


@pytest.mark.parametrize("scheduler", ["dpm++", "euler_a"])
def test_other_schedulers_run_and_are_chunk_invariant(tiny_sd, scheduler):
    a = run(tiny_sd, scheduler=scheduler, frames=3)
    b = run(tiny_sd, scheduler=scheduler, frames=3, chunk_size=1)
    assert max(max_diff(a[k], b[k]) for k in a) <= 1


def test_background_smoothing_uses_the_masks(tiny_sd, full, tmp_path):
    for k in range(4):
        mask = np.zeros((64, 64, 3), np.uint8)
        mask[20:44, 20 + 2 * k:44 + 2 * k] = 255
        Image.fromarray(mask).save(tmp_path / f"mask_{k:03d}.png")
    smooth = run(tiny_sd, smooth_bg=True, mask_dir=str(tmp_path))
    assert max_diff(smooth[0], full[0]) == 0 and max_diff(smooth[2], full[2]) > 0


@pytest.mark.parametrize(("changes", "field"), [
    ({"width": 60}, "width"),
    ({"frames": 0}, "frames"),
    ({"frame_start": 2, "frame_end": 7}, "frame_end"),
    ({"t0": 941, "t1": 881}, "t0"),
    ({"steps": 1}, "steps"),
    ({"motion_x": float("nan")}, "motion_x"),
    ({"motion_y": float("inf")}, "motion_y"),
])
def test_bad_input_is_refused_before_any_work(tiny_sd, changes, field):
    ctx = JobContext.collecting()
    with pytest.raises(InvalidRequestError) as info:
        text_to_video(dataclasses.replace(BASE, **changes), tiny_sd, ctx)
    assert info.value.field == field and info.value.hint
    assert ctx.steps_done == 0 and not ctx.frames


@pytest.mark.parametrize("chunk,exact", [(8, False), (1, True)])
def test_progress_counts_steps_of_the_schedule_not_unet_passes(tiny_sd, chunk, exact):
    seen: list[tuple[int, int, float]] = []
    ctx = JobContext.collecting()
    ctx.on_step = lambda step, total, fraction: seen.append((step, total, fraction))
    text_to_video(dataclasses.replace(BASE, chunk_size=chunk, exact_anchor=exact), tiny_sd, ctx)
    steps, totals, fractions = zip(*seen)
    calls = 1 + BASE.steps * (1 if chunk == 8 else BASE.frames)  # the anchor's T->T' step, then every main step
    assert len(seen) == calls and set(totals) == {BASE.steps}
    assert list(steps) == sorted(steps) and set(steps) == set(range(0, BASE.steps + 1))
    assert list(fractions) == sorted(fractions) and fractions[-1] == 1.0
