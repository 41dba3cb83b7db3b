"""The running job's state and how events change it (no bpy).

One job runs at a time. ``start`` submits a request to a client (the worker client or the in-process runner, both
with ``submit``/``poll``/``cancel``); the GUI's modal timer calls ``pump`` to drain events, the headless path calls
``run_sync``, which blocks until the job ends. The panel reads ``current()`` to draw progress, so a redraw, a new
operator or the CLI all see the same state. Only the main thread calls these functions: the client's reader threads
just fill its queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backend.t2vz_backend import protocol
from ..backend.t2vz_backend.errors import T2VZError

CANCEL_GRACE_S = 15.0  # after a cancel, how long the backend may take to answer before the worker is stopped
DEAD_GRACE_S = 2.0  # a dead client's own worker_died event (with the worker's last output) is waited for this long
RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


@dataclass
class JobState:
    job_id: str
    request: Any
    label: str = ""
    status: str = RUNNING
    stage: str = "load"
    step: int = 0
    total_steps: int = 0
    frames_done: int = 0
    total_frames: int = 0
    eta_s: float = -1.0
    work: float = -1.0  # share of the denoising work done (Progress.fraction), -1 when the backend did not say
    message: str = "starting the backend"
    frames: dict[int, str] = field(default_factory=dict)  # written frame files by global index
    done: Any = None  # the Done event
    failure: Any = None  # the Failed event
    started: float = field(default_factory=time.monotonic)
    cancel_requested_at: float = 0.0
    dead_since: float = 0.0  # when the client was first seen dead (its own worker_died event may still be queued)
    client: Any = None
    context: dict[str, Any] = field(default_factory=dict)  # caller data (where the strip goes), opaque here
    preview: Any = None  # the latest Preview event: a thumbnail of the newest finished frame (ui/thumbnails.py)
    report: Any = None  # the Report event of a job with the consistency report on

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def fraction(self) -> float:
        if self.status == DONE:
            return 1.0
        if self.work >= 0:
            return self.work
        return self.step / self.total_steps if self.total_steps else 0.0

    def step_text(self) -> str:
        """"step k/S" in the schedule's steps (the user's Steps setting), or "" outside the denoising stage."""
        return f"step {self.step}/{self.total_steps}" if self.total_steps else ""

    def eta_text(self) -> str:
        if self.eta_s < 0:
            return ""
        minutes, seconds = divmod(int(round(self.eta_s)), 60)
        return f"{minutes}:{seconds:02d} left" if minutes else f"{seconds}s left"

    def status_line(self) -> str:
        """One line for the status bar and headless progress output."""
        if self.status == DONE:
            return f"T2V-Zero: done, {len(self.done.frames)} frames"
        if self.status != RUNNING:
            return f"T2V-Zero: {self.status}: {self.error_text()}"
        parts = [f"T2V-Zero {self.stage}"]
        if self.total_steps:
            parts.append(self.step_text())
        if self.total_frames:
            parts.append(f"frames {self.frames_done}/{self.total_frames}")
        if self.eta_text():
            parts.append(self.eta_text())
        if self.cancel_requested_at:
            parts.append("cancelling")
        return ", ".join(parts)

    def error_text(self) -> str:
        f = self.failure
        if f is None:
            return ""
        text = f.message.rstrip(".")
        return f"{text}. {f.hint}" if f.hint else text

    def apply(self, event: Any) -> None:
        """Update the state from one event of this job."""
        if self.finished:
            return
        if isinstance(event, protocol.Progress):
            self.stage, self.step, self.total_steps = event.stage, event.step, event.total_steps
            self.work = event.fraction
            self.frames_done, self.total_frames, self.eta_s = event.frames_done, event.total_frames, event.eta_s
            self.message = event.message or self.message
        elif isinstance(event, protocol.FrameWritten):
            self.frames[event.index] = event.path
            self.frames_done = max(self.frames_done, len(self.frames))
        elif isinstance(event, protocol.Done):
            self.done, self.status, self.eta_s = event, DONE, 0.0
        elif isinstance(event, protocol.Failed):
            self.failure = event
            self.status = CANCELLED if event.kind == "cancelled" else FAILED
        elif isinstance(event, protocol.Log):
            self.message = event.message
        elif isinstance(event, protocol.Preview):
            if self.preview is None or event.index >= self.preview.index:
                self.preview = event
        elif isinstance(event, protocol.Report):
            self.report = event


_current: JobState | None = None


def current() -> JobState | None:
    """The running job, or the last finished one (for the panel); None before the first job."""
    return _current


def is_running() -> bool:
    return _current is not None and not _current.finished


def start(client: Any, request: Any, label: str = "", context: dict[str, Any] | None = None,
          farm: Any = None) -> JobState:
    """Submit ``request`` (to the Ray farm of ``farm``, a ``FarmSpec``, when given) and make it the current job."""
    global _current
    if is_running():
        raise RuntimeError("a T2V-Zero job is already running")  # operators check first; a bug if reached
    job_id = client.submit(request, farm=farm) if farm is not None else client.submit(request)
    _current = JobState(job_id=job_id, request=request, label=label, client=client, context=dict(context or {}))
    return _current


def pump(job: JobState | None = None) -> list[Any]:
    """Drain the client's events into the job's state; return this job's events. Never blocks."""
    job = job or _current
    if job is None or job.finished:
        return []
    events = [e for e in job.client.poll() if getattr(e, "job_id", "") in ("", job.job_id)]
    for event in events:
        job.apply(event)
    if not job.finished:
        _check_stuck(job)
    return events


def _check_stuck(job: JobState) -> None:
    """End a job whose worker died without a word, or that did not answer a cancel in time."""
    now = time.monotonic()
    if not getattr(job.client, "alive", True):
        job.dead_since = job.dead_since or now
        if now - job.dead_since < DEAD_GRACE_S:
            return
        job.apply(protocol.Failed(job_id=job.job_id, kind="worker_died", message="the backend process ended",
                                  hint="see the console for its output; check the backend with 'Check backend'"))
    elif job.cancel_requested_at and now - job.cancel_requested_at > CANCEL_GRACE_S:
        stop = getattr(job.client, "stop", None)
        if stop is not None:
            stop()
        job.apply(protocol.Failed(job_id=job.job_id, kind="cancelled", message="the job was cancelled",
                                  hint="the backend did not answer in time and was stopped"))


def cancel(job: JobState | None = None) -> None:
    """Ask the backend to cancel; the job ends when it answers (or after ``CANCEL_GRACE_S``)."""
    job = job or _current
    if job is None or job.finished or job.cancel_requested_at:
        return
    job.cancel_requested_at = time.monotonic()
    try:
        job.client.cancel(job.job_id)
    except T2VZError:  # the worker is gone: the next pump reports it
        pass


def run_sync(job: JobState, on_event: Callable[[JobState, Any], None] | None = None, interval: float = 0.05,
             should_cancel: Callable[[], bool] | None = None) -> JobState:
    """Block until ``job`` ends, calling ``on_event`` for each of its events (headless and CLI path)."""
    while not job.finished:
        if should_cancel is not None and should_cancel():
            cancel(job)
        events = pump(job)
        for event in events:
            if on_event is not None:
                on_event(job, event)
        if not events and not job.finished:
            time.sleep(interval)
    return job


def abandon(reason: str) -> None:
    """End the current job now (its driver is going away, e.g. another file is opened) and cancel it."""
    job = _current
    if job is None or job.finished:
        return
    try:
        job.client.cancel(job.job_id)
    except T2VZError:  # the worker is gone already: nothing left to cancel
        pass
    finally:
        job.apply(protocol.Failed(job_id=job.job_id, kind="cancelled", message=reason,
                                  hint="run it again in the new file"))


def forget() -> None:
    """Drop the finished job from the panel (tests, file loads)."""
    global _current
    if _current is not None and _current.finished:
        _current = None
