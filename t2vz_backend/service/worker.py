"""The backend worker (``python -m t2vz_backend worker``): JSON-line commands in, JSON-line events out.

stdin carries one command per line (``protocol.loads_command``), stdout carries only protocol events (one JSON
object per line), stderr is the log. Nothing else ever reaches stdout: the protocol stream is a duplicate of the
original stdout, and file descriptor 1 (and ``sys.stdout``) are pointed at stderr, so stray prints from libraries,
Python or C, land in the log. The worker opens no network port.

Protocol decisions:

- **One job at a time, queued in order.** A ``run`` that arrives while another job runs is validated at once (an
  invalid one gets ``Failed`` immediately) and then queued; it starts when the jobs before it end.
- **Job ids** are chosen by the client; ``""`` gets ``job-N``. An id that is still queued or running is refused
  (``Failed``, field ``id``).
- **cancel** ``{"id": X}`` stops the running job X within one denoising step (its partial output is removed, then
  ``Failed{kind: "cancelled"}``), or removes a queued job X (``Failed{kind: "cancelled"}`` at once).
  ``{"id": ""}`` cancels the running job and every queued one. Cancelling an unknown id only logs a warning event.
- **unload** is queued like a job: after the jobs before it, the cached models are dropped (``Unloaded``).
- **ping** is answered at once, even mid-job: ``Pong`` (version, protocol, python, torch, device). A ping whose
  ``version`` is not this worker's ``PROTOCOL_VERSION`` gets ``Failed{kind: "protocol"}`` instead.
- **Malformed lines** (invalid JSON, unknown op / job type / field, wrong types, bad values, missing files, numbers
  no 64-bit integer or float holds, nesting deeper than ``protocol.MAX_DEPTH``, lines over ``MAX_LINE_CHARS``) get
  ``Failed`` naming the field (with the line's ``id`` when it has one) and the worker reads the next line. No line
  can make the worker exit (docs/reliability.md).
- **SIGTERM / SIGHUP / SIGINT** cancel every job (their staging folders are removed) and exit 128 + the signal.
- **shutdown** cancels everything, waits for the cleanup and exits 0. **End of input** lets the queued jobs finish
  and exits 0 (so ``worker < jobs.jsonl`` is a batch run), unless the parent process is gone or stdout is closed,
  which cancels everything.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import platform
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..errors import InvalidRequestError, JobCancelled, T2VZError
from ..protocol import (
    PROTOCOL_VERSION,
    AnyRequest,
    Cancel,
    Command,
    Event,
    Failed,
    FarmSpec,
    Log,
    Ping,
    Pong,
    RunJob,
    Shutdown,
    Unload,
    Unloaded,
    command_from_dict,
    dumps,
    parse_json,
)

log = logging.getLogger("t2vz.worker")
MAX_LINE_CHARS = 16 * 2**20  # a command line longer than this is refused unread (jobs with 10 000 frame prompts fit)
OVERSIZED = "\0oversized"  # what read_lines yields for such a line (no JSON line can start with a NUL)


class Dispatcher:
    """Runs jobs one at a time on its own thread and answers commands; shared by the worker and in-process mode."""

    def __init__(self, emit: Callable[[Event], None], *, cache: Any = None, previews: bool = True,
                 is_orphaned: Callable[[], bool] = lambda: False) -> None:
        self._emit = emit
        self._cache = cache
        self._previews = previews
        self._is_orphaned = is_orphaned
        self._tasks: queue.Queue[tuple | None] = queue.Queue()
        self._active: dict[str, threading.Event] = {}  # queued and running jobs -> their cancel flags
        self._running = ""
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._thread = threading.Thread(target=self._work, name="t2vz-jobs", daemon=True)

    # Commands (called on the reader thread) ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def handle_line(self, line: str) -> bool:
        """Handle one input line; False when the worker should stop reading (``shutdown``).

        Whatever the line holds, it ends in a command or a ``Failed`` event and the worker reads on: a bad line is
        ``invalid_request`` naming the field; an exception that is not a ``T2VZError`` is a bug, logged with its
        traceback and reported as ``internal``, never a reason to exit.
        """
        data: Any = None
        try:
            if line == OVERSIZED:
                raise InvalidRequestError(f"a command line is longer than {MAX_LINE_CHARS} characters",
                                          hint="send smaller jobs (per-frame lists are one entry per frame)")
            line = line.strip()
            if not line:
                return True
            data = parse_json(line)
            return self.handle(command_from_dict(data))
        except Exception as exc:  # T2VZError: the client's mistake; anything else a bug, reported, never fatal
            if not isinstance(exc, T2VZError):
                log.exception("internal error while handling a command")
            self._emit(Failed.from_error(exc, job_id=_id_of(data)))
        return True

    def handle(self, command: Command) -> bool:
        """Handle one parsed command; False for ``shutdown``."""
        if isinstance(command, RunJob):
            self.submit(command.job, command.id, farm=command.farm)
        elif isinstance(command, Cancel):
            self.cancel(command.id)
        elif isinstance(command, Unload):
            self._tasks.put(("unload",))
        elif isinstance(command, Ping):
            self._emit(self.pong(command.version))
        elif isinstance(command, Shutdown):
            return False
        return True

    def submit(self, request: AnyRequest, job_id: str = "", farm: FarmSpec | None = None) -> str:
        """Check ``request`` and queue it; returns its job id (``Failed`` is emitted for a bad request). With
        ``farm`` the job runs on a Ray cluster (``service/farm.py``) instead of in this process."""
        from ..validation import check_request, validate_farm
        from .outputs import check_output

        job_id = job_id or f"job-{next(self._numbers)}"
        with self._lock:
            duplicate = job_id in self._active
        try:
            if duplicate:
                raise InvalidRequestError(f"job id {job_id!r} is already queued or running", field="id",
                                          hint="use a new id per job")
            check_request(request)
            if farm is None:
                check_output(request)
            elif validate_farm(farm):  # the farm's own output rules (resume) are checked when it starts
                raise validate_farm(farm)[0].to_error()
        except T2VZError as exc:
            self._emit(Failed.from_error(exc, job_id))
            return job_id
        flag = threading.Event()
        with self._lock:
            self._active[job_id] = flag
        self._tasks.put(("run", job_id, request, flag, farm))
        return job_id

    def cancel(self, job_id: str = "") -> None:
        """Cancel job ``job_id`` (queued or running), or every job when ``job_id`` is ""."""
        with self._lock:
            targets = list(self._active) if not job_id else [job_id] if job_id in self._active else []
            for target in targets:
                self._active[target].set()
            queued = [target for target in targets if target != self._running]
            for target in queued:
                del self._active[target]
        for target in queued:
            self._emit(Failed.from_error(JobCancelled("the job was cancelled before it started",
                                                      hint="nothing was written"), target))
        if job_id and not targets:
            self._emit(Log(job_id=job_id, level="warning", message=f"no queued or running job {job_id!r} to cancel"))

    def pong(self, client_protocol: str = "") -> Event:
        """``Pong`` describing this backend, or ``Failed{kind: "protocol"}`` for a client of another protocol."""
        if client_protocol and client_protocol != str(PROTOCOL_VERSION):
            return Failed(kind="protocol", field="version",
                          message=f"the client speaks protocol {client_protocol}, this backend {PROTOCOL_VERSION}",
                          hint="install the same t2vz version for the add-on and the backend, then restart it")
        from .sidecar import package_version

        return Pong(version=package_version(), protocol=PROTOCOL_VERSION, python=platform.python_version(),
                    torch=_torch_version(), device=_device_text())

    def close(self, *, cancel: bool) -> None:
        """Stop taking work; cancel everything first when ``cancel``; wait for the job thread to finish."""
        if cancel:
            with self._lock:
                busy = bool(self._active)
            if busy:
                self.cancel("")
        self._tasks.put(None)
        if self._thread.is_alive():
            self._thread.join()

    # The job thread -------------------------------------------------------------------------------------------

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from ..models.cache import ModelCache  # torch comes with the first load, on the job thread

            self._cache = ModelCache()
        return self._cache

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            if task[0] == "unload":
                self._emit(Unloaded(models=self._unload()))
                continue
            _, job_id, request, flag, farm = task
            with self._lock:
                if job_id not in self._active:
                    continue  # cancelled while queued, already reported
                self._running = job_id
            self._run(job_id, request, flag, farm)

    def _unload(self) -> int:
        if self._cache is None:
            return 0
        from ..models.devices import free_memory

        count = self._cache.clear()
        free_memory()
        return count

    def _run(self, job_id: str, request: AnyRequest, flag: threading.Event, farm: FarmSpec | None = None) -> None:
        from .jobs import run_job

        log.info("job %s: %s started%s", job_id, request.TYPE, " on the farm" if farm else "")
        try:
            if farm is not None:  # issue 15: the job's ranges run on Ray workers; this thread drives them
                from .farm import run_farm

                done = run_farm(request, farm, emit=self._emit, job_id=job_id,
                                should_cancel=lambda: flag.is_set() or self._is_orphaned())
            else:
                done = run_job(request, cache=self.cache, emit=self._emit, job_id=job_id, previews=self._previews,
                               should_cancel=lambda: flag.is_set() or self._is_orphaned())
            log.info("job %s: done, %d frames in %s", job_id, len(done.frames), done.output_dir)
        except T2VZError as exc:  # already reported as Failed by run_job
            log.info("job %s: %s: %s", job_id, exc.kind, exc)
        except Exception:  # a bug; run_job reported it as Failed{kind: "internal"}
            log.exception("job %s: internal error", job_id)
        finally:
            with self._lock:
                self._active.pop(job_id, None)
                self._running = ""


class LineWriter:
    """Writes events as JSON lines to one stream, from any thread; remembers when the reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.broken = False

    def emit(self, event: Event) -> None:
        line = dumps(event) + "\n"
        with self._lock:
            if self.broken:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):  # the client closed the pipe: cancel and exit
                self.broken = True


def serve(infile: TextIO, outfile: TextIO, *, cache: Any = None, previews: bool = True) -> int:
    """Serve commands from ``infile`` until ``shutdown``, end of input or a stop signal; events go to ``outfile``.

    Returns 0, or 128 + N after stop signal N (the jobs are cancelled and their staging folders removed first).
    """
    from .signals import StopRequested, exit_status, signal_name

    writer = LineWriter(outfile)
    parent = os.getppid()

    def orphaned() -> bool:
        return writer.broken or (os.name == "posix" and os.getppid() != parent)

    dispatcher = Dispatcher(writer.emit, cache=cache, previews=previews, is_orphaned=orphaned)
    dispatcher.start()
    try:
        for line in read_lines(infile):
            if not dispatcher.handle_line(line):
                log.info("shutdown requested")
                dispatcher.close(cancel=True)
                return 0
    except StopRequested as stop:
        log.info("%s: cancelling every job", signal_name(stop.signum))
        dispatcher.close(cancel=True)
        return exit_status(stop.signum)
    log.info("end of input: %s", "parent gone, cancelling" if orphaned() else "finishing queued jobs")
    dispatcher.close(cancel=orphaned())
    return 0


def read_lines(infile: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``infile``; a line longer than ``limit`` is read to its end and given as ``OVERSIZED``."""
    while line := infile.readline(limit + 1):
        if len(line) > limit and not line.endswith("\n"):
            while (rest := infile.readline(limit)) and not rest.endswith("\n"):
                pass
            line = OVERSIZED
        yield line


def main(previews: bool = True) -> int:
    """Entry point of ``python -m t2vz_backend worker``: claim stdout for the protocol, then serve stdin."""
    from .signals import StopRequested, exit_status, on_stop_signals

    # Must be set before torch is imported; avoids fragmentation out-of-memory errors across consecutive jobs.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    protocol_out = _claim_stdout()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s t2vz-worker %(message)s")
    log.info("worker started (pid %d, protocol %d)", os.getpid(), PROTOCOL_VERSION)
    infile = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")

    def stop(signum: int) -> None:
        raise StopRequested(signum)

    try:
        with on_stop_signals(stop):
            return serve(infile, protocol_out, previews=previews)
    except StopRequested as again:  # a second signal while the jobs were being cancelled: stop at once
        return exit_status(again.signum)


def _claim_stdout() -> TextIO:
    """Keep a private duplicate of stdout for protocol lines and send everything else written to stdout to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)  # C-level writes to fd 1 (library banners, warnings) now land in the log
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", newline="\n", buffering=1)


def _id_of(data: Any) -> str:
    """The ``id`` of a parsed but refused command, so its ``Failed`` reaches the right job."""
    job_id = data.get("id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) else ""


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "not installed"
    return str(torch.__version__)


def _device_text() -> str:
    try:
        from ..models.devices import describe_device
    except ImportError:
        return "unknown"
    try:
        return describe_device().summary()
    except T2VZError as exc:
        return f"unavailable: {exc}"
