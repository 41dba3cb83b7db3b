"""Drive the backend from another program (the Blender add-on, scripts): standard library only, no torch, no bpy.

``WorkerClient`` runs ``python -m t2vz_backend worker`` with a chosen interpreter in its own process group; a reader
thread turns its stdout lines into protocol events in a ``queue.Queue`` (it never touches bpy), and its stderr goes
to a log file and a ring buffer for error reports. ``InProcessRunner`` (in_process.py, re-exported here) runs the same
job dispatcher in a thread of the current process (the add-on's in-process mode) with the same interface and events.

Two ways to consume events: ``poll()`` (non-blocking, for a modal operator's timer) or ``iter_events(job_id)`` /
``run(request)`` (blocking, for headless and synchronous drivers). A worker that dies mid-job turns into
``Failed{kind: "worker_died"}`` for every job it had, with its exit status and the tail of its log.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from typing import Any

from ..errors import InvalidRequestError, JobCancelled, T2VZError
from ..protocol import (
    PROTOCOL_VERSION,
    AnyRequest,
    Cancel,
    Command,
    Done,
    Event,
    Failed,
    FarmSpec,
    Ping,
    Pong,
    RunJob,
    Shutdown,
    Unload,
    dumps,
    loads_event,
)
from .event_stream import EventStream
from .in_process import InProcessRunner  # re-exported: the add-on's in-process mode
from .outputs import resolve
from .signals import exit_status
from .staging import clear_stale

STDERR_LINES = 200  # lines of worker log kept in memory for error reports


class BackendError(T2VZError):
    """The backend process cannot be started, reached or understood."""

    kind = "backend"


class WorkerClient(EventStream):
    """A backend worker subprocess and the events it sends."""

    def __init__(self, python: str, *, env: dict[str, str] | None = None, cwd: str | None = None,
                 pythonpath: list[str] | None = None, log_path: str | None = None) -> None:
        super().__init__()
        self.python = python
        self.cwd = cwd
        self.log_path = log_path or os.path.join(tempfile.gettempdir(), f"t2vz-worker-{os.getpid()}.log")
        self._env = dict(os.environ if env is None else env)
        self._env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        self._env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        if pythonpath:
            self._env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [self._env.get("PYTHONPATH")])])
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._replies: queue.Queue[Event] = queue.Queue()
        self._jobs: dict[str, tuple[str, bool]] = {}  # outstanding job -> (output_dir, it existed at submit)
        self._lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._stopping = False
        self.exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start the worker process (its own session / process group, so it can be stopped with its children)."""
        if self.alive:
            return
        command = [self.python, "-m", "t2vz_backend", "worker"]
        flags: dict[str, Any] = {"start_new_session": True}
        if os.name == "nt":
            flags = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
        try:
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=self._env, cwd=self.cwd, **flags)
        except OSError as exc:
            raise BackendError(f"cannot start the backend with {self.python!r}: {exc}",
                               hint="set the backend's Python interpreter (made by install_deps.py)") from exc
        self._stopping, self.exit_code = False, None
        self._stderr.clear()
        self._threads = [threading.Thread(target=target, name=name, daemon=True)
                         for target, name in ((self._read_stderr, "t2vz-stderr"), (self._read_stdout, "t2vz-stdout"))]
        for thread in self._threads:
            thread.start()

    def ping(self, timeout: float = 120.0) -> Pong:
        """Ask the worker who it is; ``BackendError`` on a protocol mismatch, a dead worker or no answer in time."""
        while not self._replies.empty():
            self._replies.get_nowait()
        self._send(Ping(version=str(PROTOCOL_VERSION)))
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise BackendError(f"the backend did not answer within {timeout:g} s",
                               hint=f"check the log at {self.log_path}") from None
        if isinstance(reply, Failed):
            raise BackendError(reply.message, hint=reply.hint)
        assert isinstance(reply, Pong)
        return reply

    def submit(self, request: AnyRequest, job_id: str | None = None, farm: FarmSpec | None = None) -> str:
        """Queue ``request`` on the worker (on a Ray farm with ``farm``); returns the job id its events carry."""
        job_id = job_id or uuid.uuid4().hex[:12]
        # Where the worker (whose cwd is self.cwd) will write, and whether that existed before: for cleanup on a crash.
        output_dir = request.output_dir and os.path.join(self.cwd or os.getcwd(),
                                                         os.path.expanduser(request.output_dir))
        with self._lock:
            self._jobs[job_id] = (output_dir, not output_dir or os.path.exists(output_dir))
        try:
            self._send(RunJob(id=job_id, job=request, farm=farm))
        except BackendError:
            with self._lock:
                self._jobs.pop(job_id, None)
            raise
        return job_id

    def cancel(self, job_id: str = "") -> None:
        """Cancel one job, or every job of this worker when ``job_id`` is ""."""
        self._send(Cancel(id=job_id))

    def unload(self) -> None:
        """Ask the worker to drop its cached models once its queued jobs are done (an ``Unloaded`` event follows)."""
        self._send(Unload())

    def stop(self, grace: float = 10.0) -> int | None:
        """Shut the worker down (cancelling its jobs); terminate, then kill, its process group after ``grace`` s."""
        proc = self._proc
        if proc is None:
            return None
        self._stopping = True
        if proc.poll() is None:
            try:
                self._send(Shutdown())
                proc.stdin.close()  # type: ignore[union-attr]
            except (BackendError, OSError):
                pass
            kill = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows: terminate is already a hard kill
            for sig, wait in ((None, grace), (signal.SIGTERM, 3.0), (kill, None)):
                if sig is not None:
                    self._signal_group(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for thread in self._threads:
            thread.join(timeout=5.0)
        return proc.returncode

    def stderr_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the worker wrote to its log."""
        return "\n".join(list(self._stderr)[-lines:])

    def __enter__(self) -> WorkerClient:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # Internals ------------------------------------------------------------------------------------------------

    def _send(self, command: Command) -> None:
        line = (dumps(command) + "\n").encode("utf-8")
        with self._lock:
            proc = self._proc
            if proc is None:
                raise BackendError("the backend is not running", hint="start (or restart) the backend")
            try:
                if proc.poll() is None:
                    proc.stdin.write(line)  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    return
            except (OSError, ValueError):
                pass  # it died just now
        try:
            code = proc.wait(5.0)
        except subprocess.TimeoutExpired:
            code = None
        for thread in self._threads:
            thread.join(timeout=2.0)  # let the reader collect the last words of its log
        raise BackendError(f"the backend is not running ({describe_exit(code)}); log tail:\n{self.stderr_tail(12)}",
                           hint=f"restart the backend; the full log is at {self.log_path}")

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in iter(self._proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                event = loads_event(text)
            except (ValueError, InvalidRequestError):
                self._stderr.append(f"[not a protocol line] {text[:500]}")
                continue
            if isinstance(event, Pong) or (isinstance(event, Failed) and event.kind == "protocol"):
                self._replies.put(event)
                continue
            if isinstance(event, (Done, Failed)):
                with self._lock:
                    self._jobs.pop(event.job_id, None)
            self._events.put(event)
        self._on_exit()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as log:
            log.write(f"--- t2vz worker pid {self._proc.pid} started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            for raw in iter(self._proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._stderr.append(line)
                log.write(line + "\n")
                log.flush()

    def _on_exit(self) -> None:
        """The worker closed stdout: reap it, kill leftovers in its group, fail the jobs it still had."""
        assert self._proc is not None
        code = self._proc.wait()  # reaps the process: no zombie stays behind
        self.exit_code = code
        if code != 0:
            self._signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))  # children of a crashed worker
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)  # the stderr tail is complete before it is reported
        with self._lock:
            jobs, self._jobs = self._jobs, {}
        for output_dir, existed in set(jobs.values()):
            if output_dir:  # a killed worker left its staging folders; with its pid gone they are stale
                _clear_after_crash(output_dir, existed)
        if self._stopping and code in (0, -signal.SIGTERM, exit_status(signal.SIGTERM)):
            stopped = JobCancelled("the backend was stopped before the job ended", hint="run the job again")
            failures = [Failed.from_error(stopped, j) for j in jobs]
        else:
            message = f"the backend process died ({describe_exit(code)})"
            tail = self.stderr_tail(12)
            hint = f"restart the backend; the full log is at {self.log_path}"
            failures = [Failed(job_id=j, kind="worker_died", message=f"{message}; log tail:\n{tail}", hint=hint)
                        for j in (jobs or [""])]
        self._replies.put(failures[0] if failures else Failed(kind="worker_died", message="the backend exited"))
        for failure in failures:
            self._events.put(failure)

    def _signal_group(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if os.name == "nt":
                proc.kill() if sig != signal.SIGTERM else proc.terminate()
            else:
                os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError, OSError):
            pass  # already gone


def _clear_after_crash(output_dir: str, existed: bool) -> None:
    """Remove a dead worker's stale staging folders in ``output_dir`` (and the folder, if the job made it and it is
    empty); an unusable path is left alone (the worker never wrote there)."""
    try:
        clear_stale(output_dir)
        if not existed:
            os.rmdir(resolve(output_dir))
    except (T2VZError, OSError):
        pass


def describe_exit(code: int | None) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL (9)``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


__all__ = ["BackendError", "InProcessRunner", "WorkerClient", "describe_exit"]
