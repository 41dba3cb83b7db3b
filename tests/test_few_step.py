"""Few-step drafts (LCM, TCD) on the tiny model: frame 0 is diffusers' still with the same scheduler, frames do not
depend on chunks or sub-ranges, T′ on a coarse grid, LCM-distilled UNets (guidance embedding)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from t2vz_backend.models.tiny import UNET_CONFIG
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import PRESETS, TextToVideoRequest
from t2vz_backend.sampling.context import JobContext
from t2vz_backend.sampling.guidance import guidance_embedding, text_branches
from t2vz_backend.sampling.schedule import plan_schedule

DRAFT = TextToVideoRequest(output_dir="unused", prompt="a red fox running", frames=4, width=64, height=64, seed=4,
                           exact_anchor=True, **PRESETS["draft"])


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def run(model, **changes) -> dict[int, np.ndarray]:
    ctx = JobContext.collecting()
    text_to_video(dataclasses.replace(DRAFT, **changes), model, ctx)
    return ctx.frames


def still(model, request: TextToVideoRequest) -> np.ndarray:
    pipe = StableDiffusionPipeline(**model.components(request.scheduler))
    pipe.set_progress_bar_config(disable=True)
    image = pipe(request.prompt, num_inference_steps=request.steps, guidance_scale=request.guidance, height=64,
                 width=64, generator=torch.Generator("cpu").manual_seed(request.seed)).images[0]
    return np.asarray(image)


def test_the_draft_preset_is_a_few_step_cfg_free_schedule():
    assert DRAFT.scheduler in ("lcm", "tcd") and 4 <= DRAFT.steps <= 8 and DRAFT.guidance <= 2


@pytest.mark.parametrize("scheduler", ["lcm", "tcd"])
def test_frame_zero_equals_the_diffusers_still_and_frames_do_not_depend_on_chunks(tiny_sd, scheduler):
    full = run(tiny_sd, scheduler=scheduler)
    assert max_diff(full[0], still(tiny_sd, dataclasses.replace(DRAFT, scheduler=scheduler))) == 0
    assert max_diff(full[1], full[0]) > 0 and max_diff(full[3], full[2]) > 0
    for changes in ({"chunk_size": 1}, {"chunk_size": 2, "exact_anchor": False}, {"frame_start": 2}):
        other = run(tiny_sd, scheduler=scheduler, **changes)
        assert max(max_diff(other[k], full[k]) for k in other) <= 1, changes


def test_lcm_draws_fresh_noise_per_frame_keyed_by_the_frame(tiny_sd):
    # LCM re-noises at every step but the last: with per-frame generators, a frame's draws are its own
    a, b = run(tiny_sd, scheduler="lcm", seed=4), run(tiny_sd, scheduler="lcm", seed=5)
    assert max_diff(a[2], b[2]) > 0
    assert all(np.array_equal(a[k], v) for k, v in run(tiny_sd, scheduler="lcm", seed=4).items())


def test_draft_with_feature_reuse(tiny_sd):
    full = run(tiny_sd, cache_interval=2)
    assert max_diff(full[0], run(tiny_sd, cache_interval=2, frames=1)[0]) == 0
    chunked = run(tiny_sd, cache_interval=2, chunk_size=1, frame_start=1)
    assert max(max_diff(chunked[k], full[k]) for k in chunked) <= 1


def test_t_and_t_prime_on_a_four_step_grid(tiny_sd):
    scheduler = tiny_sd.make_scheduler("lcm")
    plan = plan_schedule(scheduler, 4, 881, 941, may_jump=True)
    assert plan.timesteps == (999, 759, 499, 259) and plan.t1 == 999 and plan.jump
    abar = scheduler.alphas_cumprod.double()
    asked, got = float(abar[941] / abar[881]), float(abar[plan.t1] / abar[plan.t0])
    assert plan.t0 == 944 and abs(got / asked - 1) < 0.02  # the re-noising ratio of the defaults is kept
    assert plan.anchor_steps == 1  # one DDIM step of the anchor from T to T'
    grid = plan_schedule(tiny_sd.make_scheduler("lcm"), 4, 881, 941)  # without jumps: T' = 759, ratio 0.09
    assert grid.t0 == 759 and not grid.jump
    ddim = plan_schedule(tiny_sd.make_scheduler("ddim"), 50, 881, 941, may_jump=True)
    assert (ddim.t1, ddim.t0, ddim.jump) == (941, 881, False)  # the reference schedule is untouched


@pytest.fixture(scope="module")
def distilled(tiny_sd):
    """The tiny model with an LCM-distilled-style UNet: the guidance scale enters as an embedding."""
    torch.manual_seed(9)
    unet = UNet2DConditionModel(**UNET_CONFIG, time_cond_proj_dim=16).eval().requires_grad_(False)
    return dataclasses.replace(tiny_sd, unet=unet)


def test_distilled_unet_gets_the_guidance_embedding_and_no_cfg_branch(distilled):
    pipe = StableDiffusionPipeline(**distilled.components("lcm"))
    expected = pipe.get_guidance_scale_embedding(torch.tensor(7.5 - 1).repeat(1), embedding_dim=16)
    assert torch.equal(guidance_embedding(distilled.unet, 7.5, torch.device("cpu"), torch.float32), expected)
    assert text_branches(distilled.unet, 7.5) == ("cond",)
    request = dataclasses.replace(DRAFT, scheduler="lcm", guidance=7.5)
    frames = run(distilled, scheduler="lcm", guidance=7.5)
    assert max_diff(frames[0], still(distilled, request)) == 0
