"""The step-major video denoising loop shared by all three modes (docs/method.md §4.2, §5).

At every step: (1) the first call runs in record mode: self-attention K/V come from the anchor (frame 0) rows
and are kept; (2) the remaining frames run in chunks of ``chunk_size`` against that cache; (3) one scheduler step
moves every frame. All frames' latents stay in memory (4·h·w values each); only the UNet activations scale with
the chunk. Two layouts of the first call:

* ``exact_anchor=True``: the anchor alone (G rows, the batch diffusers' still uses), then chunks of the other
  frames. Frame 0 is bit-identical to the still and never depends on chunking or the frames rendered.
* ``exact_anchor=False``: the anchor plus the next ``chunk_size - 1`` frames, so a clip that fits in one chunk
  takes one UNet call per step. The same math, but matrix kernels pick different blockings for different batch
  sizes, so frame 0 then matches the still only up to float rounding (measured: 1e-6, at most one 8-bit level).

Stepping all frames in one ``scheduler.step`` call keeps multistep schedulers (DPM-Solver, UniPC) consistent, and
per-frame generators (a list, which diffusers' ``randn_tensor`` draws from row by row) make stochastic schedulers'
noise a function of the frame alone, never of the chunking or the frames rendered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..attention.cross_frame import CrossFrameState, verify_installed
from ..attention.text import TextBatch
from .context import JobContext


@dataclass
class ControlInput:
    """One ControlNet with its per-frame condition images."""

    model: torch.nn.Module
    images: Callable[[Sequence[int]], torch.Tensor]  # global frame indices → (f, 3, H, W) in [0, 1]
    scale: float = 1.0
    start: float = 0.0  # fraction of the schedule where it starts acting (diffusers' control_guidance_start)
    end: float = 1.0

    def active(self, step_index: int, total: int) -> bool:
        # The same rule as diffusers' controlnet_keep, so frame 0 matches the stock pipeline.
        return not (step_index / total < self.start or (step_index + 1) / total > self.end)


def combine_guidance(eps: torch.Tensor, branches: int, guidance: float, image_guidance: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance over the branch-major batch (the table of docs/method.md §4.2)."""
    if branches == 1:
        return eps
    if branches == 2:
        uncond, cond = eps.chunk(2)
        return uncond + guidance * (cond - uncond)
    text, image, uncond = eps.chunk(3)  # Instruct-Pix2Pix: [text+image], [image only], [neither]
    return uncond + guidance * (text - image) + image_guidance * (image - uncond)


@dataclass
class NoisePredictor:
    """Guided noise prediction for a set of frames: builds the G-branch batch, runs ControlNets and the UNet."""

    unet: torch.nn.Module
    branches: int
    embeddings: Callable[[Sequence[int]], TextBatch]  # frames → their text, (G·f, tokens, dim) branch-major
    guidance: float
    image_guidance: float = 0.0
    image_latents: Callable[[Sequence[int]], torch.Tensor] | None = None  # frames → (G·f, 4, h, w) (pix2pix)
    controls: list[ControlInput] = field(default_factory=list)
    state: CrossFrameState | None = None  # told which model call runs, so each keeps its own anchor K/V

    def _scope(self, name: str) -> None:
        if self.state is not None:
            self.state.scope = name

    def __call__(self, scheduler, latents: torch.Tensor, t, frames: Sequence[int], step_index: int,
                 total_steps: int) -> torch.Tensor:
        g = self.branches
        model_input = torch.cat([latents] * g) if g > 1 else latents
        model_input = scheduler.scale_model_input(model_input, t)
        text = self.embeddings(frames)
        embeds = text.embeds
        if self.state is not None:
            self.state.text = text  # lets text attention use its per-job K/V for exactly this tensor
        down, mid = None, None
        for i, control in enumerate(self.controls):
            if not control.active(step_index, total_steps):
                continue  # adds exactly zero, as diffusers' scale-0 call does
            self._scope(f"control{i}/")
            cond = control.images(frames)
            cond = torch.cat([cond] * g) if g > 1 else cond
            d, m = control.model(model_input, t, encoder_hidden_states=embeds, controlnet_cond=cond,
                                 conditioning_scale=control.scale, guess_mode=False, return_dict=False)
            down = list(d) if down is None else [a + b for a, b in zip(down, d, strict=False)]
            mid = m if mid is None else mid + m
        if self.image_latents is not None:
            model_input = torch.cat([model_input, self.image_latents(frames)], dim=1)
        self._scope("unet/")
        eps = self.unet(model_input, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid, return_dict=False)[0]
        return combine_guidance(eps, g, self.guidance, self.image_guidance)


def step_kwargs(scheduler, generators: list[torch.Generator] | None) -> dict:
    """Pass per-frame generators only to schedulers whose ``step`` draws noise (diffusers' extra_step_kwargs rule)."""
    accepted = inspect.signature(scheduler.step).parameters
    return {"generator": generators} if generators is not None and "generator" in accepted else {}


def chunks(count: int, size: int, exact_anchor: bool = True) -> list[slice]:
    """Row slices of one step's calls: the first holds the anchor (row 0), alone if ``exact_anchor``; then slices
    of at most ``size`` rows up to ``count``."""
    first = 1 if exact_anchor else min(size, count)
    return [slice(0, first)] + [slice(s, min(s + size, count)) for s in range(first, count, size)]


def passes_per_step(frames: int, chunk_size: int, exact_anchor: bool = True) -> int:
    return len(chunks(frames, chunk_size, exact_anchor))


def denoise(predictor: NoisePredictor, scheduler, latents: torch.Tensor, frames: Sequence[int],
            timesteps: Sequence, *, state: CrossFrameState, models: dict, chunk_size: int, ctx: JobContext,
            exact_anchor: bool = True, generators: list[torch.Generator] | None = None, first_index: int = 0,
            total_steps: int | None = None) -> torch.Tensor:
    """Denoise ``latents`` (one row per entry of ``frames``; ``frames[0]`` must be the anchor) over ``timesteps``.

    ``first_index``/``total_steps`` place these steps in the whole schedule (for ControlNet start/end fractions).
    """
    assert frames[0] == 0, "row 0 must be the anchor frame"
    total = total_steps if total_steps is not None else len(timesteps)
    kwargs = step_kwargs(scheduler, generators)
    g = predictor.branches
    for i, t in enumerate(timesteps):
        verify_installed(models)
        index = first_index + i
        eps = torch.empty_like(latents)
        first, *rest = chunks(len(frames), chunk_size, exact_anchor)
        with state.recording(g):
            eps[first] = predictor(scheduler, latents[first], t, frames[first], index, total)
        ctx.step()
        if rest:
            with state.replaying(g):
                for part in rest:
                    eps[part] = predictor(scheduler, latents[part], t, frames[part], index, total)
                    ctx.step()
        latents = scheduler.step(eps, t, latents, **kwargs, return_dict=False)[0]
    return latents
