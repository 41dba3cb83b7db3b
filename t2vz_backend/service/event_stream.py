"""The consuming side of a backend connection, shared by both runners: ``poll``, ``iter_events``, ``run``.

Standard library only (the Blender add-on imports it). A runner puts protocol events on ``_events`` from its own
thread; the consumer either polls (a modal operator's timer) or blocks on one job's events (headless drivers).
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterator

from ..protocol import AnyRequest, Done, Event, Failed, FarmSpec


class EventStream:
    """Event queue plus the consuming side shared by both runners: poll, iter_events, run."""

    def __init__(self) -> None:
        self._events: queue.Queue[Event] = queue.Queue()
        self._stash: collections.deque[Event] = collections.deque()  # other jobs' events met by iter_events
        self._stash_lock = threading.Lock()

    def submit(self, request: AnyRequest, job_id: str | None = None, farm: FarmSpec | None = None) -> str:
        raise NotImplementedError

    def poll(self) -> list[Event]:
        """Every event received so far and not yet consumed, oldest first; never blocks."""
        with self._stash_lock:
            events = list(self._stash)
            self._stash.clear()
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def iter_events(self, job_id: str, timeout: float | None = None) -> Iterator[Event]:
        """Yield the events of ``job_id`` up to and including its ``Done`` or ``Failed``; blocks.

        ``timeout`` is the longest wait for the next event (``TimeoutError`` after it); events of other jobs are kept
        for ``poll`` and later ``iter_events`` calls.
        """
        while True:
            event = self._next_event(job_id, timeout)
            yield event
            if isinstance(event, (Done, Failed)):
                return

    def run(self, request: AnyRequest, *, on_event: Callable[[Event], None] | None = None,
            timeout: float | None = None) -> Done | Failed:
        """Submit ``request`` and block until it ends; returns its ``Done`` or ``Failed``."""
        last: Event | None = None
        for last in self.iter_events(self.submit(request), timeout):
            if on_event is not None:
                on_event(last)
        assert isinstance(last, (Done, Failed))
        return last

    def _next_event(self, job_id: str, timeout: float | None) -> Event:
        with self._stash_lock:
            for event in self._stash:
                if event.job_id == job_id:
                    self._stash.remove(event)
                    return event
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                raise TimeoutError(f"no event from job {job_id!r} for {timeout} s") from None
            if event.job_id == job_id:
                return event
            with self._stash_lock:
                self._stash.append(event)
