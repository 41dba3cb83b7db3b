"""Feature reuse across denoising steps (the DeepCache idea), per frame and inside the step-major loop.

Between neighbouring steps the UNet's deep features change little, its shallow ones a lot. With
``cache_interval`` N > 1, one step in N runs the whole UNet and keeps, for every frame, the *deep feature* of the
branch of depth D = ``cache_depth`` (acceleration/unet_layers.py); the N − 1 steps after it run only that branch —
``conv_in``, the first D − 1 down layers, the last D up layers, ``conv_out`` — and take the deep feature from the
frame's last full step. Measured on a CPU (docs/benchmarks.md), a depth-1 branch costs 4 % of a full pass at SD
1.5's widths and 13 % at the benchmarks' reduced widths; depth 2, 11 % and 38 %.

What stays true (tests/test_feature_reuse.py):

* **Per frame.** A frame's deep feature is its own, kept under its global index; which steps are full depends only
  on the step's place in the schedule. So neither the chunk size nor the frames rendered change a frame (the same
  float-rounding bound as without reuse), and frame 0 equals the still rendered with the same cache settings.
* **Cross-frame attention.** A reuse step is still step-major: the anchor's call records the K/V of the branch's
  self-attention layers for *this* step and every chunk attends to them; the deep layers run on full steps only,
  where their K/V are recorded and replayed the same way.
* **ControlNet and Pix2Pix.** On a reuse step a ControlNet runs only its own depth-D branch (its first D
  residuals, the ones the UNet's branch reads); its deeper residuals and the mid residual are skipped, because
  their effect is inside the reused deep feature. Pix2Pix's image latents are part of the UNet's input, so its
  branch sees them on every step.
* **Restarts.** Each run of the loop (``begin``) starts with a full step: text→video denoises every frame from T
  with features that do not exist yet, so the full steps are 0, N, 2N, … before T and T, T + N, … from T on, the
  same for the anchor alone (a still) and for the video.

Loop order and memory. The loop stays step-major, every frame advancing one step before any frame takes the next.
The other order — a chunk through all N steps of a reuse period, then the next chunk — keeps deep features only for
one chunk, but it needs the anchor's K/V of all N steps at once and a scheduler per chunk (multistep solvers keep
history), and it breaks the one-``scheduler.step``-for-all-frames rule the loop is built on (sampling/sampler.py).
Step-major keeps one deep feature per frame and branch between full steps: at SD 1.5's 512² and D = 1 or 2 a
(320, 64, 64) map, 2.6 MB in float16, 5.2 MB per frame with CFG — 125 MB more for 32 frames than for 8, next to
gigabytes of weights and one chunk's activations, which is what the peak is made of. The memory benchmark
(docs/benchmarks.md) checks the peak at 32 frames against 8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .unet_layers import check_structure, control_branch, unet_branch, unet_pass


@dataclass
class FeatureReuse:
    """One job's feature reuse: the full-step rule and every frame's deep feature (G branch rows per frame)."""

    interval: int
    depth: int
    branches: int
    start: int = 0  # schedule index of the current loop's first step (a full step)
    features: dict[int, torch.Tensor] = field(default_factory=dict)  # global frame -> (G, C, h, w)
    passes: dict[str, int] = field(default_factory=lambda: {"full": 0, "branch": 0})  # UNet calls, for tests

    @classmethod
    def for_models(cls, interval: int, depth: int, branches: int, unet, controlnets: Sequence = ()
                   ) -> FeatureReuse | None:
        """The reuse state of a job, or None when ``interval`` is 1 (off); checks the models first."""
        if interval <= 1:
            return None
        check_structure(unet, "UNet", depth=depth)
        for net in controlnets:
            check_structure(net, "ControlNet", depth=depth)
        return cls(interval, depth, branches)

    def begin(self, first_index: int) -> None:
        """A run of the loop starts at schedule index ``first_index``: it is a full step, features start afresh."""
        self.start = first_index
        self.features.clear()

    def is_full(self, step_index: int) -> bool:
        return (step_index - self.start) % self.interval == 0

    def control(self, net, sample: torch.Tensor, t, text: torch.Tensor, cond: torch.Tensor,
                scale: float) -> list[torch.Tensor]:
        """A ControlNet's residuals on a reuse step: those of its own branch, the ones the UNet's branch reads."""
        return control_branch(net, sample, t, text, cond, scale=scale, depth=self.depth)

    def unet(self, unet, sample: torch.Tensor, t, text: torch.Tensor, frames: Sequence[int], *, full: bool,
             timestep_cond: torch.Tensor | None, down: list[torch.Tensor] | None,
             mid: torch.Tensor | None) -> torch.Tensor:
        """The noise prediction of ``frames`` (branch-major rows); a full step also keeps their deep features."""
        g, f = self.branches, len(frames)
        if full:
            self.passes["full"] += 1
            eps, deep = unet_pass(unet, sample, t, text, keep=self.depth, timestep_cond=timestep_cond,
                                  down_residuals=down, mid_residual=mid)
            per_frame = deep.view(g, f, *deep.shape[1:])
            for i, frame in reversed(list(enumerate(frames))):  # a frame repeated as padding: its first row wins
                self.features[frame] = per_frame[:, i]
            return eps
        missing = [k for k in frames if k not in self.features]
        if missing:  # the full-step rule guarantees every frame had one: an ordering bug if not
            raise RuntimeError(f"feature reuse: no full step yet for frames {missing}")
        self.passes["branch"] += 1
        deep = torch.stack([self.features[k] for k in frames], dim=1).flatten(0, 1)
        return unet_branch(unet, sample, t, text, deep=deep, depth=self.depth, timestep_cond=timestep_cond,
                           down_residuals=down)
