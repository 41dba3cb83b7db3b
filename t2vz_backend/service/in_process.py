"""Run jobs in a thread of this process (the add-on's in-process mode), with ``WorkerClient``'s interface.

Standard library only at import time: the dispatcher, and with it torch, is imported when the runner starts.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..protocol import PROTOCOL_VERSION, AnyRequest, FarmSpec, Pong, Unload
from .event_stream import EventStream


class InProcessRunner(EventStream):
    """Runs jobs in a thread of this process (the add-on's in-process mode) with ``WorkerClient``'s interface."""

    def __init__(self, *, previews: bool = True, cache: Any = None) -> None:
        super().__init__()
        self._previews = previews
        self._cache = cache
        self._dispatcher: Any = None

    @property
    def alive(self) -> bool:
        return self._dispatcher is not None

    def start(self) -> None:
        if self._dispatcher is None:
            from .worker import Dispatcher  # imports torch lazily, on the job thread

            self._dispatcher = Dispatcher(self._events.put, cache=self._cache, previews=self._previews)
            self._dispatcher.start()

    def ping(self, timeout: float = 120.0) -> Pong:
        self.start()
        reply = self._dispatcher.pong(str(PROTOCOL_VERSION))
        assert isinstance(reply, Pong)
        return reply

    def submit(self, request: AnyRequest, job_id: str | None = None, farm: FarmSpec | None = None) -> str:
        self.start()
        return self._dispatcher.submit(request, job_id or uuid.uuid4().hex[:12], farm=farm)

    def cancel(self, job_id: str = "") -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel(job_id)

    def unload(self) -> None:
        self.start()
        self._dispatcher.handle(Unload())

    def stop(self, grace: float = 10.0) -> int | None:
        """Cancel every job and wait for the job thread to end (it ends within one denoising step)."""
        if self._dispatcher is not None:
            self._dispatcher.close(cancel=True)
            self._dispatcher = None
        return 0

    def __enter__(self) -> InProcessRunner:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
