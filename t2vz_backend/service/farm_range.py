"""What a farm worker does with one range: render it with ``run_job`` and stream its frames as they are decoded.

This is the body of the Ray actor (``farm_ray.RangeWorker``), kept free of Ray so it can be tested alone. The worker
owns one ``ModelCache``, so the model loads once and stays warm for every range it is given. A range is rendered by
the ordinary ``run_job`` (same checks, same engine, same PNG encoder as a single-machine run: the bytes are
identical) into a private temporary folder on the worker; each frame is read back the moment it is written and
yielded as a plain dict:

``{"kind": "start", "pid", "host"}`` first, then ``{"kind": "load"}``, ``{"kind": "step", "step", "total"}`` and
``{"kind": "frame", "index", "png"}`` (``png`` is None when the worker wrote it in place into ``write_dir``, the shared
staging folder), and ``{"kind": "failed", ...}`` when the job itself is at fault (bad input, out of memory): that is
not retried. A worker that dies simply stops yielding: the driver retries the rest of its range elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import T2VZError
from ..protocol import FrameWritten, Progress, request_from_dict
from .farm_plan import FrameRange

_END = object()


class RangeRenderer:
    """Renders ranges of jobs with one warm model cache (one per GPU, or per CPU worker)."""

    def __init__(self, threads: int = 0, cache: Any = None) -> None:
        self.threads = threads
        self._cache = cache

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from ..models.cache import ModelCache

            self._cache = ModelCache()
        return self._cache

    def render(self, job: dict[str, Any], first: int, last: int, write_dir: str = "",
               skip: frozenset[int] = frozenset()) -> Iterator[dict[str, Any]]:
        """Render global frames ``first..last`` of ``job`` (a request dict); see the module docstring."""
        span = FrameRange(first, last)
        yield {"kind": "start", "pid": os.getpid(), "host": socket.gethostname()}
        self._set_threads(job)
        scratch = tempfile.mkdtemp(prefix="t2vz-farm-range-")
        request = dataclasses.replace(request_from_dict(job), output_dir=os.path.join(scratch, "frames"),
                                      frame_start=span.first, frame_end=span.last, preview="", overwrite=False)
        items: queue.Queue[Any] = queue.Queue(maxsize=64)
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(request, items, stop, write_dir, skip),
                                  name="t2vz-farm-range", daemon=True)
        thread.start()
        try:
            while (item := items.get()) is not _END:
                yield item
        finally:  # also when the driver cancels or drops the stream
            stop.set()
            _drain(items, thread)
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, request: Any, items: queue.Queue[Any], stop: threading.Event, write_dir: str,
             skip: frozenset[int]) -> None:
        from .farm_output import write_frame
        from .jobs import run_job

        def emit(event: Any) -> None:
            if isinstance(event, FrameWritten):
                with open(event.path, "rb") as handle:
                    data = handle.read()
                png: bytes | None = data
                if write_dir:
                    if event.index not in skip:
                        write_frame(write_dir, event.index, data)
                    png = None
                _put(items, stop, {"kind": "frame", "index": event.index, "png": png})
            elif isinstance(event, Progress) and event.stage == "load":
                _put(items, stop, {"kind": "load", "message": event.message})
            elif isinstance(event, Progress) and event.total_steps:
                _put(items, stop, {"kind": "step", "step": event.step, "total": event.total_steps})

        try:
            run_job(request, cache=self.cache, emit=emit, should_cancel=stop.is_set, job_id="range")
        except T2VZError as exc:
            if not stop.is_set():
                _put(items, stop, {"kind": "failed", "error": exc.kind, "message": exc.message, "hint": exc.hint,
                                   "field": exc.field})
        except BaseException as exc:  # a bug: report it as the job's failure (retrying would fail the same way)
            _put(items, stop, {"kind": "failed", "error": "internal", "message": f"{type(exc).__name__}: {exc}",
                               "hint": "this is a bug in t2vz; the worker's log has the traceback", "field": ""})
        finally:
            _put(items, stop, _END, force=True)

    def _set_threads(self, job: dict[str, Any]) -> None:
        """CPU results depend on the thread count: a CPU worker uses exactly the cores it reserved."""
        if self.threads <= 0:
            return
        import torch

        from ..models.devices import resolve_device

        if resolve_device(str(job.get("device", "auto"))).type == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def _put(items: queue.Queue[Any], stop: threading.Event, item: Any, force: bool = False) -> None:
    """Queue ``item`` for the stream, giving up when the stream was closed (so the job thread never hangs)."""
    while True:
        try:
            items.put(item, timeout=0.2)
            return
        except queue.Full:
            if stop.is_set() and not force:
                return
            if stop.is_set():
                _discard_one(items)


def _discard_one(items: queue.Queue[Any]) -> None:
    try:
        items.get_nowait()
    except queue.Empty:
        pass


def _drain(items: queue.Queue[Any], thread: threading.Thread) -> None:
    """Let the cancelled job thread finish (it stops within one step), discarding what it still sends."""
    while thread.is_alive():
        try:
            items.get(timeout=0.2)
        except queue.Empty:
            pass
    thread.join()
