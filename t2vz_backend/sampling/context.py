"""What a running job hands the engine: progress and frame callbacks, and a cancel flag.

The engine (``text_to_video``, ``control_video``, ``edit_video``) never writes files or events itself. It calls
``ctx.plan(steps, work)`` once, ``ctx.advance(work, step)`` after every UNet pass, ``ctx.frame(index, image)`` for
every decoded frame in frame order, and ``ctx.check_cancel()`` between passes, so a cancel lands within one step.

Progress is reported in the user's units: ``step`` counts denoising steps of the schedule (k of the S the user
asked for), whatever the frame count, chunking or anchor layout; ``work`` counts frame-passes (one frame through
one UNet call), from which the share of the job done (for smooth bars and the ETA) is derived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import JobCancelled


def _never() -> bool:
    return False


@dataclass
class JobContext:
    # (steps of the schedule done, steps of the schedule, share of the denoising work done in [0, 1])
    on_step: Callable[[int, int, float], None] = lambda step, total, fraction: None
    on_frame: Callable[[int, Any], None] = lambda index, image: None  # (global frame index, HxWx3 uint8 array)
    should_cancel: Callable[[], bool] = _never
    on_stage: Callable[[str], None] = lambda stage: None  # "load", "prepare", "denoise", "decode"
    total_steps: int = 0
    steps_done: int = 0
    total_work: int = 0
    work_done: int = 0
    frames: dict[int, Any] = field(default_factory=dict)  # filled only by ``collecting()`` contexts (tests, API)

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise JobCancelled("the job was cancelled", hint="partial output was removed")

    def plan(self, steps: int, work: int) -> None:
        """The job takes ``steps`` denoising steps of the schedule and ``work`` frame-passes in all."""
        self.total_steps, self.total_work = steps, work
        self.steps_done = self.work_done = 0

    def advance(self, work: int, step: int | None = None) -> None:
        """``work`` more frame-passes are done; ``step``: the schedule's step ``step`` is now done for every frame."""
        self.work_done += work
        if step is not None:
            self.steps_done = step
        fraction = min(1.0, self.work_done / self.total_work) if self.total_work else 0.0
        self.on_step(self.steps_done, self.total_steps, fraction)
        self.check_cancel()

    def frame(self, index: int, image: Any) -> None:
        self.on_frame(index, image)

    @classmethod
    def collecting(cls) -> JobContext:
        """A context that keeps every frame in ``ctx.frames`` (for tests and in-memory use)."""
        ctx = cls()
        ctx.on_frame = lambda index, image: ctx.frames.__setitem__(index, image)
        return ctx
