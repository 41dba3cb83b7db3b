"""One progress bar for a whole farm: frames done of the total across every worker, an ETA, and what each worker does.

Frames are counted once, when the driver has them on disk, so the count only ever goes up: a range that is retried
after a fault re-sends frames that were already counted, and those are not counted again. The ETA is the measured
farm-wide frame rate since the first frame arrived (model loads and anchors before it are not extrapolated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..protocol import Progress


@dataclass
class WorkerState:
    name: str
    state: str = "starting"  # starting, loading, rendering, idle, restarting, lost
    span: str = ""  # the range it renders, "A-B"
    step: int = 0
    total_steps: int = 0
    frames: int = 0  # frames it delivered in this job
    host: str = ""
    pid: int = 0

    def text(self) -> str:
        if self.state == "rendering" and self.total_steps:
            return f"{self.name} {self.span} step {self.step}/{self.total_steps}"
        if self.state in ("rendering", "loading") and self.span:
            return f"{self.name} {self.span} {self.state}"
        return f"{self.name} {self.state}"


class FarmProgress:
    """Frames done / total, ETA and per-worker states of one farm job."""

    def __init__(self, total: int, done: int = 0, clock=time.monotonic) -> None:
        self.total, self.done = total, done
        self._clock = clock
        self._first_at: float | None = None
        self._done_at_first = done
        self.workers: dict[str, WorkerState] = {}

    def worker(self, name: str) -> WorkerState:
        return self.workers.setdefault(name, WorkerState(name))

    def frame_done(self, worker: str = "") -> None:
        """One more frame is on disk (call once per frame)."""
        self.done += 1
        if self._first_at is None:  # the rate is measured from the first frame on
            self._first_at, self._done_at_first = self._clock(), self.done
        if worker:
            self.worker(worker).frames += 1

    def eta(self) -> float:
        """Seconds left, -1 while unknown."""
        if self._first_at is None or self.done >= self.total:
            return 0.0 if self.done >= self.total else -1.0
        elapsed = self._clock() - self._first_at
        delivered = self.done - self._done_at_first
        if delivered <= 0 or elapsed <= 0:
            return -1.0
        return elapsed / delivered * (self.total - self.done)

    def summary(self) -> str:
        return "; ".join(w.text() for w in self.workers.values())

    def event(self, job_id: str) -> Progress:
        """The protocol event the add-on and the CLI draw (``step``/``total_steps`` count frames here)."""
        return Progress(job_id=job_id, stage="farm", step=self.done, total_steps=self.total, frames_done=self.done,
                        total_frames=self.total, eta_s=round(self.eta(), 2), message=self.summary())
