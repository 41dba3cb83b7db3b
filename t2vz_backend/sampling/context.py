"""What a running job hands the engine: progress and frame callbacks, and a cancel flag.

The engine (``text_to_video``, ``control_video``, ``edit_video``) never writes files or events itself: it calls
``ctx.step()`` after every UNet pass, ``ctx.frame(index, image)`` for every decoded frame in frame order, and
``ctx.check_cancel()`` between UNet passes, so a cancel lands within one denoising step.
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
    on_step: Callable[[int, int], None] = lambda done, total: None  # (UNet passes done, total passes of the job)
    on_frame: Callable[[int, Any], None] = lambda index, image: None  # (global frame index, HxWx3 uint8 array)
    should_cancel: Callable[[], bool] = _never
    on_stage: Callable[[str], None] = lambda stage: None  # "load", "prepare", "denoise", "decode"
    total_steps: int = 0
    steps_done: int = 0
    frames: dict[int, Any] = field(default_factory=dict)  # filled only by ``collecting()`` contexts (tests, API)

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise JobCancelled("the job was cancelled", hint="partial output was removed")

    def plan(self, total_steps: int) -> None:
        self.total_steps = total_steps
        self.steps_done = 0

    def step(self, passes: int = 1) -> None:
        self.steps_done += passes
        self.on_step(self.steps_done, self.total_steps)
        self.check_cancel()

    def frame(self, index: int, image: Any) -> None:
        self.on_frame(index, image)

    @classmethod
    def collecting(cls) -> JobContext:
        """A context that keeps every frame in ``ctx.frames`` (for tests and in-memory use)."""
        ctx = cls()
        ctx.on_frame = lambda index, image: ctx.frames.__setitem__(index, image)
        return ctx
