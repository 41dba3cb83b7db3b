"""Latents at T for every frame from motion dynamics (paper Alg. 1, lines 1-6; method.md §3.2-§3.4).

The anchor is denoised alone from its initial noise down to T (kept: x¹_T) and on to T′ (over the grid, or in one
DDIM step when T′ lies between the steps of a coarse grid, sampling/schedule.py); x¹_T′ is warped for each other
frame (motion.py) and forward-diffused back up to T with that frame's own noise ε_k. Used by text→video, and by
ControlNet video when motion is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..attention.cross_frame import CrossFrameState, verify_installed
from ..protocol import MotionKey
from ..sampling.context import JobContext
from ..sampling.sampler import NoisePredictor, denoise
from ..sampling.schedule import VideoSchedule, ddim_jump, renoise
from ..sampling.seeding import frame_noise
from .motion import warp_frames


def motion_latents(predictor: NoisePredictor, pre, main, plan: VideoSchedule, anchor_noise: torch.Tensor,
                   frames: Sequence[int], *, seed: int, motion_x: float, motion_y: float,
                   motion_path: Sequence[MotionKey], motion_mode: str, state: CrossFrameState, models: dict,
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
    warped = warp_frames(x_t0, others, motion_x=motion_x, motion_y=motion_y, motion_path=motion_path,
                         mode=motion_mode)
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
