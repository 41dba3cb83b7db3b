"""Latents at T for every frame from motion dynamics (paper Alg. 1, lines 1-6; docs/method.md §2.3-§2.5).

The anchor is denoised alone from its initial noise down to T (kept: x¹_T) and on to T′ (over the grid, or in one
DDIM step when T′ lies between the steps of a coarse grid, sampling/schedule.py); x¹_T′ is warped for each other
frame (motion.py) and forward-diffused back up to T with that frame's own noise ε_k. Used by text→video, and by
ControlNet video and Video Instruct-Pix2Pix when motion is asked for.

Holes: cells of frame k that show nothing of frame 0 (disoccluded behind an object, or beyond the horizon of a
plane) get fresh noise ζ_k drawn from (seed, k, "disocclusion") instead of warped content, so no reflected or
smeared content appears there and, being keyed on the frame alone, the result depends on neither the chunk size
nor the frames rendered. ζ_k is scaled to the spread of a latent at T′ with unknown content: 1 for VP schedules
(√ᾱ·x₀ + √(1−ᾱ)·ε with x₀ of unit spread), √(σ_T′² + 1) for sigma schedules; re-noised to T it then has
exactly the spread of noise at T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..attention.cross_frame import CrossFrameState, verify_installed
from ..sampling.context import JobContext
from ..sampling.sampler import NoisePredictor, denoise
from ..sampling.schedule import VideoSchedule, ddim_jump, plan_schedule, renoise
from ..sampling.seeding import frame_noise
from .motion import MotionPlan


def motion_latents(predictor: NoisePredictor, pre, main, plan: VideoSchedule, anchor_noise: torch.Tensor,
                   frames: Sequence[int], *, seed: int, motion: MotionPlan, state: CrossFrameState, models: dict,
                   ctx: JobContext, generator: torch.Generator, sigma_space: bool,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (latents at T for ``frames`` — row 0 the anchor's x¹_T —, the anchor's latent at T′).

    ``pre`` steps the anchor over the grid from its start; ``main`` is the scheduler of the final loop (its
    ``sigmas``/``alphas_cumprod`` define the re-noising). ``generator`` (the anchor's) is left in its state at T, so
    a stochastic scheduler's draws for the anchor continue exactly as in a plain still.
    """
    total = len(plan.timesteps)
    x_t1 = denoise(predictor, pre, anchor_noise, [0], plan.raw[:plan.t1_index], state=state, models=models,
                   chunk_size=1, ctx=ctx, generators=[generator], total_steps=total)
    at_t1 = generator.get_state()
    if plan.jump:  # a coarse grid: T′ lies between grid steps (sampling/schedule.py)
        x_t0 = _jump(predictor, pre, x_t1, plan, state=state, models=models, ctx=ctx)
    else:  # off the user's schedule (the video restarts from T): work, not steps, in the progress
        x_t0 = denoise(predictor, pre, x_t1, [0], plan.raw[plan.t1_index:plan.t0_index], state=state,
                       models=models, chunk_size=1, ctx=ctx, generators=[generator], first_index=plan.t1_index,
                       total_steps=total, shows_steps=False)
    generator.set_state(at_t1)
    others = list(frames[1:])
    if not others:
        return x_t1, x_t0
    warped, holes = motion.warp(x_t0, others)
    warped = fill_holes(warped, holes, others, seed, fresh_scale(main, plan, sigma_space))
    _, c, h, w = x_t1.shape
    noise = torch.cat([frame_noise(seed, k, "renoise", (1, c, h, w), device=x_t1.device, dtype=x_t1.dtype)
                       for k in others])
    return torch.cat([x_t1, renoise(main, plan, warped, noise, sigma_space=sigma_space)]), x_t0


def _jump(predictor: NoisePredictor, scheduler, x_t1: torch.Tensor, plan: VideoSchedule, *, state: CrossFrameState,
          models: dict, ctx: JobContext) -> torch.Tensor:
    """The anchor from T to an off-grid T′ in one DDIM step: one guided UNet pass at T (a full step)."""
    if predictor.reuse is not None:
        predictor.reuse.begin(plan.t1_index)
    verify_installed(models)
    with state.recording(predictor.branches):
        eps = predictor(scheduler, x_t1, plan.raw[plan.t1_index], [0], plan.t1_index, len(plan.timesteps))
    ctx.advance(1)
    return ddim_jump(scheduler, x_t1, eps, plan.t1, plan.t0)


def fill_holes(warped: torch.Tensor, holes: torch.Tensor, frames: Sequence[int], seed: int,
               scale: float) -> torch.Tensor:
    """``warped`` with each frame's holes replaced by its own disocclusion noise times ``scale``."""
    if not bool(holes.any()):
        return warped
    out = warped.clone()
    shape = (1, *warped.shape[1:])
    for i, k in enumerate(frames):
        if bool(holes[i].any()):
            fresh = frame_noise(seed, k, "disocclusion", shape, device=warped.device, dtype=warped.dtype)[0]
            out[i] = torch.where(holes[i], fresh * scale, warped[i])
    return out


def fresh_scale(main, plan: VideoSchedule, sigma_space: bool) -> float:
    """The spread of a latent at T′ whose content is unknown (see the module docstring)."""
    if sigma_space:
        return math.sqrt(float(main.sigmas.to(torch.float64)[plan.t0_index]) ** 2 + 1.0)
    return 1.0


def guided_schedule(scheduler, steps: int, with_motion: bool) -> tuple[VideoSchedule, int]:
    """ControlNet/Pix2Pix: the grid for ``steps`` with the default T/T′ placed on it (T′ off a coarse grid for VP
    ε-prediction schedulers, as in text→video), and the index the main loop starts at (T with motion, the grid
    start without)."""
    from ..protocol import TextToVideoRequest
    from ..sampling.schedulers import may_jump

    defaults = TextToVideoRequest()
    plan = plan_schedule(scheduler, steps, defaults.t0, defaults.t1, may_jump=may_jump(scheduler))
    start = plan.t1_index if with_motion else 0
    if start and hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)  # multistep/sigma schedulers start counting at T
    return plan, start
