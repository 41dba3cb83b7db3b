"""The step-major video denoising loop shared by all three modes (docs/method.md §4.2, §5).

At every step: (1) the first call runs in record mode: self-attention K/V come from the anchor (frame 0) rows
and are kept; (2) the remaining frames run in chunks of ``chunk_size`` against that cache; (3) one scheduler step
moves every frame. All frames' latents stay in memory (4·h·w values each); only the UNet activations scale with
the chunk. Two layouts of the first call:

* ``exact_anchor=False`` (the default): the anchor plus the next ``chunk_size - 1`` frames, so a clip that fits in
  one chunk takes one UNet call per step. Matrix kernels pick different blockings for different batch sizes, so
  frame 0 matches the still up to float rounding (measured: 1e-6, at most one 8-bit level).
* ``exact_anchor=True``: the anchor alone (G rows, the batch diffusers' still uses), then chunks of the other
  frames. Frame 0 is bit-identical to the still and never depends on chunking or the frames rendered.

Feature reuse (acceleration/feature_reuse.py) decides per step whether a call runs the whole UNet or its branch;
with compiled models every chunk call is padded to one shape (``chunks(..., balanced=True)``). Progress is reported
in steps of the schedule and frame-passes (sampling/context.py).

Stepping all frames in one ``scheduler.step`` call keeps multistep schedulers (DPM-Solver, UniPC) consistent, and
per-frame generators (a list, which diffusers' ``randn_tensor`` draws from row by row) make stochastic schedulers'
noise a function of the frame alone, never of the chunking or the frames rendered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ..acceleration.feature_reuse import FeatureReuse
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
    timestep_cond: torch.Tensor | None = None  # distilled (LCM) UNets: the guidance embedding (sampling/few_step.py)
    reuse: FeatureReuse | None = None  # feature reuse across steps (acceleration/feature_reuse.py); None = off

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
        full = self.reuse is None or self.reuse.is_full(step_index)
        down, mid = None, None
        for i, control in enumerate(self.controls):
            if not control.active(step_index, total_steps):
                continue  # adds exactly zero, as diffusers' scale-0 call does
            self._scope(f"control{i}/")
            cond = control.images(frames)
            cond = torch.cat([cond] * g) if g > 1 else cond
            if full:
                d, m = control.model(model_input, t, encoder_hidden_states=embeds, controlnet_cond=cond,
                                     conditioning_scale=control.scale, guess_mode=False, return_dict=False)
            else:  # a reuse step: only the residuals the UNet's branch reads
                d, m = self.reuse.control(control.model, model_input, t, embeds, cond, control.scale), None
            down = list(d) if down is None else [a + b for a, b in zip(down, d, strict=False)]
            mid = m if mid is None else mid + m
        if self.image_latents is not None:
            model_input = torch.cat([model_input, self.image_latents(frames)], dim=1)
        self._scope("unet/")
        if self.reuse is None:
            eps = self.unet(model_input, t, encoder_hidden_states=embeds, timestep_cond=self.timestep_cond,
                            down_block_additional_residuals=down, mid_block_additional_residual=mid,
                            return_dict=False)[0]
        else:
            eps = self.reuse.unet(self.unet, model_input, t, embeds, frames, full=full,
                                  timestep_cond=self.timestep_cond, down=down, mid=mid)
        return combine_guidance(eps, g, self.guidance, self.image_guidance)


def step_kwargs(scheduler, generators: list[torch.Generator] | None) -> dict:
    """What diffusers' pipelines pass to ``scheduler.step``: per-frame generators to schedulers that draw noise, and
    ``eta=0`` to those that take one (DDIM, TCD: deterministic, as in a diffusers still; TCD's own default is 0.3)."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict = {"eta": 0.0} if "eta" in accepted else {}
    if generators is not None and "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs


def chunks(count: int, size: int, exact_anchor: bool = True, balanced: bool = False) -> list[slice]:
    """Row slices of one step's calls: the first holds the anchor (row 0), alone if ``exact_anchor``; then slices
    of at most ``size`` rows up to ``count``. ``balanced``: as many calls, of equal sizes (the last ones one row
    shorter), so that padding makes every chunk call the same shape (``compile``)."""
    first = 1 if exact_anchor else min(size, count)
    if balanced:
        start = 1 if exact_anchor else 0
        calls = -(-(count - start) // size)
        if calls:
            bounds = [start + -(-(count - start) * i // calls) for i in range(calls + 1)]
            parts = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
            return ([slice(0, 1)] + parts) if exact_anchor else parts
        return [slice(0, 1)]
    return [slice(0, first)] + [slice(s, min(s + size, count)) for s in range(first, count, size)]


def single_run_rows(part: slice, frames: Sequence[int], size: int, exact_anchor: bool, job_frames: int) -> int:
    """Rows of the call that holds ``part``'s frames in the single run of all ``job_frames`` frames, when they sit
    at the same positions there; otherwise the part's own length.

    Matrix kernels round by call shape, so a sub-range whose calls have the single run's shapes, each frame at its
    row there, reproduces the single run bit for bit (the farm's ranges, service/farm_plan.py). On the batching
    grid that holds for every call but, in the shared layout, the last: a range ending at a chunk's first frame
    has it alone, so that call is padded to the chunk's size (as is a range of the anchor alone). The anchor stands
    in for its chunk's first frame.
    """
    count = part.stop - part.start
    origin = 0 if not exact_anchor else 1
    rows = [r for r in range(part.start, part.stop) if r != 0]
    if job_frames <= 0:
        return count
    if not rows:  # the anchor alone (a range of frame 0 only): in the shared layout it heads the first chunk
        return count if exact_anchor else max(count, min(size, job_frames))
    block = (frames[rows[0]] - origin) // size
    for r in rows:
        if divmod(frames[r] - origin, size) != (block, r - part.start):
            return count
    return max(count, min(size, job_frames - origin - block * size))


def passes_per_step(frames: int, chunk_size: int, exact_anchor: bool = True) -> int:
    return len(chunks(frames, chunk_size, exact_anchor))


def denoise(predictor: NoisePredictor, scheduler, latents: torch.Tensor, frames: Sequence[int],
            timesteps: Sequence, *, state: CrossFrameState, models: dict, chunk_size: int, ctx: JobContext,
            exact_anchor: bool = False, generators: list[torch.Generator] | None = None, first_index: int = 0,
            total_steps: int | None = None, shows_steps: bool = True, fixed_shapes: bool = False,
            job_frames: int = 0) -> torch.Tensor:
    """Denoise ``latents`` (one row per entry of ``frames``; ``frames[0]`` must be the anchor) over ``timesteps``.

    ``first_index``/``total_steps`` place these steps in the whole schedule (for ControlNet start/end fractions,
    feature reuse's full steps and progress). ``shows_steps=False``: steps off the user's schedule (the anchor's
    T→T′ path), reported as work only. ``fixed_shapes`` (compiled models): equal chunk calls, the short one padded
    by repeating its last frame, so every chunk call has one shape. ``job_frames``: the frame count of the whole
    job; a sub-range's calls are then padded to the single run's shapes where that keeps its frames bit-identical
    (``single_run_rows``).
    """
    assert frames[0] == 0, "row 0 must be the anchor frame"
    total = total_steps if total_steps is not None else len(timesteps)
    kwargs = step_kwargs(scheduler, generators)
    g = predictor.branches
    first, *rest = chunks(len(frames), chunk_size, exact_anchor, balanced=fixed_shapes)
    widest = max((part.stop - part.start for part in rest), default=0) if fixed_shapes else 0
    if fixed_shapes:  # balanced calls have shapes of their own: one width for all
        pads = {part.start: widest for part in rest}
    else:
        pads = {part.start: single_run_rows(part, frames, chunk_size, exact_anchor, job_frames)
                for part in (first, *rest)}

    def predict(part: slice, t, index: int, pad_to: int = 0) -> torch.Tensor:
        count = part.stop - part.start
        if count >= pad_to:
            return predictor(scheduler, latents[part], t, frames[part], index, total)
        rows = list(range(part.start, part.stop)) + [part.stop - 1] * (pad_to - count)  # outputs dropped below
        return predictor(scheduler, latents[rows], t, [frames[r] for r in rows], index, total)[:count]

    if predictor.reuse is not None:
        predictor.reuse.begin(first_index)
    for i, t in enumerate(timesteps):
        verify_installed(models)
        index = first_index + i
        done = index + 1 if shows_steps else None  # the step counts once every frame has taken it
        eps = torch.empty_like(latents)
        with state.recording(g):
            eps[first] = predict(first, t, index, pads.get(first.start, 0))
        ctx.advance(first.stop, None if rest else done)
        if rest:
            with state.replaying(g):
                for n, part in enumerate(rest):
                    eps[part] = predict(part, t, index, pads[part.start])
                    ctx.advance(part.stop - part.start, done if n == len(rest) - 1 else None)
        latents = scheduler.step(eps, t, latents, **kwargs, return_dict=False)[0]
    return latents
