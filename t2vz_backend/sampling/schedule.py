"""The Text2Video-Zero schedule with T and T′ as noise levels (paper Alg. 1; docs/method.md §2).

Notation (paper → code): T → ``t1`` (all frames are denoised from here, default timestep 941), T′ → ``t0`` (the
anchor latent is warped here, default 881), Δt = T − T′. Both are **training timesteps**, i.e. noise levels, not
indices into a 50-step list, so any step count and any scheduler work.

The schedule is the scheduler's own grid for the user's step count S (what a still made with S steps uses), and
T/T′ are the grid steps nearest to t1/t0. With S = 50 DDIM ("leading", offset 1) this is 981, 961, **941**, 921,
901, **881**, … exactly the reference. The anchor runs alone from the first grid step down to T′ (keeping its state
at T); every frame is then denoised together over the grid steps from T down, so frame 0 follows exactly the path a
plain still takes.

Coarse grids (few-step LCM/TCD drafts: 999, 759, 499, 259 at S = 4). What motion dynamics need from T and T′ is
the re-noising ratio r = ᾱ_T/ᾱ_T′: the share of the warped anchor latent that survives the re-noising, i.e. how
strongly the frames' starting latents follow the anchor (r ≈ 0.53 at the defaults). T still lands on the grid step
nearest to t1 (the loop and frame 0 need a grid step), but when the grid step nearest to t0 would give a ratio more
than √2 away from the asked one (at S = 4: 999 → 759, r = 0.09), T′ moves off the grid to the noise level that keeps
r (999 → 945) and the anchor reaches it in one deterministic DDIM step from T (:func:`ddim_jump`). That path exists
only to be warped, so frame 0 is untouched. DDIM at 10-50 steps and sigma-space schedulers keep their grid T′.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InvalidRequestError

JUMP_TOLERANCE = math.log(2) / 2  # |log r_grid − log r_asked| above this (a factor √2): T′ leaves the grid


@dataclass(frozen=True)
class VideoSchedule:
    timesteps: tuple[int, ...]  # the whole grid, descending, rounded (for placing T/T′ and reading ᾱ)
    raw: tuple  # the scheduler's own timestep values (tensors; floats for some schedulers), for stepping
    t1_index: int  # grid index of T
    t0_index: int  # grid index of T′ (> t1_index), or -1: T′ lies between grid steps (``jump``)
    t0_level: int  # T′ as a training timestep (the grid step's when on the grid)

    @property
    def t1(self) -> int:
        return self.timesteps[self.t1_index]

    @property
    def t0(self) -> int:
        return self.t0_level

    @property
    def jump(self) -> bool:
        """T′ is off the grid: the anchor reaches it from T in one DDIM step."""
        return self.t0_index < 0

    @property
    def anchor_steps(self) -> int:
        """UNet passes the anchor takes alone (from the grid start to T′)."""
        return self.t1_index + 1 if self.jump else self.t0_index

    @property
    def main_steps(self) -> int:
        return len(self.timesteps) - self.t1_index


def plan_schedule(scheduler, steps: int, t0: int, t1: int, *, may_jump: bool = False) -> VideoSchedule:
    """Place T and T′ on ``scheduler``'s grid for ``steps`` steps; raise naming the values if they cannot be placed.

    ``may_jump``: the scheduler is a VP ε-prediction one, so T′ may leave a coarse grid (see the module docstring).
    """
    if not 0 < t0 < t1 < scheduler.config.num_train_timesteps:
        raise InvalidRequestError(
            f"need 0 < t0 < t1 < {scheduler.config.num_train_timesteps}, got t0={t0}, t1={t1}",
            field="t0", hint="t0/t1 are training timesteps (noise levels); the defaults are t0=881, t1=941",
        )
    scheduler.set_timesteps(steps)
    raw = tuple(scheduler.timesteps)
    grid = tuple(round(float(t)) for t in raw)
    if len(grid) < 2:
        raise InvalidRequestError(f"steps={steps} leaves no room for T and T'", field="steps", hint="use more steps")
    # Nearest grid step to T; on a tie take the noisier one so the non-anchor frames keep more freedom.
    t1_index = min(range(len(grid) - 1), key=lambda i: (abs(grid[i] - t1), -grid[i]))
    later = range(t1_index + 1, len(grid))
    t0_index = min(later, key=lambda i: (abs(grid[i] - t0), -grid[i]))
    if may_jump:
        log_abar = torch.log(scheduler.alphas_cumprod.to(torch.float64))
        asked = float(log_abar[t1] - log_abar[t0])  # log r
        if abs(float(log_abar[grid[t1_index]] - log_abar[grid[t0_index]]) - asked) > JUMP_TOLERANCE:
            target = float(log_abar[grid[t1_index]]) - asked
            level = min(range(grid[t1_index]), key=lambda t: abs(float(log_abar[t]) - target))
            return VideoSchedule(grid, raw, t1_index, -1, level)
    return VideoSchedule(grid, raw, t1_index, t0_index, grid[t0_index])


def ddim_jump(scheduler, latents: torch.Tensor, eps: torch.Tensor, t_from: int, t_to: int) -> torch.Tensor:
    """One deterministic DDIM step of VP latents between any two training timesteps, from the noise prediction:
    x̂₀ = (x − √(1 − ᾱ)·ε̂)/√ᾱ, then x′ = √ᾱ′·x̂₀ + √(1 − ᾱ′)·ε̂."""
    abar = scheduler.alphas_cumprod.to(torch.float64)
    a, b = float(abar[t_from]), float(abar[t_to])
    x0 = (latents.float() - math.sqrt(1 - a) * eps.float()) / math.sqrt(a)
    return (math.sqrt(b) * x0 + math.sqrt(1 - b) * eps.float()).to(latents.dtype)


def renoise(scheduler, plan: VideoSchedule, latents: torch.Tensor, noise: torch.Tensor, *,
            sigma_space: bool) -> torch.Tensor:
    """Closed-form forward diffusion of warped latents from T′ back up to T (paper Alg. 1, "DDPM_forward").

    VP latents (DDIM, DDPM, DPM-Solver, UniPC, …): x_T = √(ᾱ_T/ᾱ_T′)·x_T′ + √(1 − ᾱ_T/ᾱ_T′)·ε, with the exact ratio of
    ``alphas_cumprod`` (the reference multiplies ``alphas[t0:t1]``, off by one timestep).
    Sigma latents (Euler, LMS, …: x = x₀ + σ·ε, the scheduler's ``sigmas`` after ``set_timesteps``):
    x_T = x_T′ + √(σ_T² − σ_T′²)·ε.
    """
    # Scalars in float64 on the CPU, tensors in float32 on their device (MPS has no float64).
    if sigma_space:
        sigmas = scheduler.sigmas.to(torch.float64)
        scale = math.sqrt(float(sigmas[plan.t1_index] ** 2 - sigmas[plan.t0_index] ** 2))
        return (latents.float() + scale * noise.float()).to(latents.dtype)
    abar = scheduler.alphas_cumprod.to(torch.float64)
    ratio = float(abar[plan.t1] / abar[plan.t0])
    out = math.sqrt(ratio) * latents.float() + math.sqrt(1 - ratio) * noise.float()
    return out.to(latents.dtype)
