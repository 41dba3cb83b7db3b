"""Render one job on a Ray cluster: ``run_farm`` is ``run_job`` for many GPUs and machines.

1. Check the request and the farm spec completely (no Ray, no model), count the frames, stage the output
   (``farm_output``: a fresh staging folder, or with ``resume`` the unfinished one of the same job).
2. Connect to Ray with authentication on (``farm_ray``) and get one warm worker per GPU (or CPU worker).
3. Cut the missing frames into contiguous ranges (``farm_plan``) and hand them to idle workers; each range streams
   its frames back as they are decoded (index + PNG bytes, or only the index when workers write in place with
   shared storage) and the driver writes each frame once, atomically, into the staging folder.
4. A worker or node that is lost mid-range costs that range one retry: the rest of it, from its first missing
   frame, goes to the next idle worker (Ray restarts the lost actor, elsewhere when its node is gone). When a range
   has used up ``retries`` the job fails naming the range, and the staging folder stays, marked unfinished, for
   ``resume``. An error of the job itself (bad input, out of memory) is not retried.
5. With every frame there: the preview, the sidecar, and one commit into ``output_dir``; ``Done``.

Progress is one monotonic count of frames on disk across all workers (``farm_progress``), sent as ``Progress``
events (``stage="farm"``) beside the usual ``FrameWritten`` events, so the add-on and the CLI draw it as any job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ..errors import FarmError, InvalidRequestError, JobCancelled, T2VZError
from ..protocol import AnyRequest, Done, EditVideoRequest, Event, FarmSpec, FrameWritten, Log, Progress
from ..validation import check_request, validate_farm
from .farm_output import FarmOutput
from .farm_plan import FrameRange, Grid, grid_for, pending_parts, resume_point, split_frames
from .farm_progress import FarmProgress

Observer = Callable[..., None]  # observer(kind, **details): "start", "frame", "fault" (tests inject faults here)
WAIT_S = 0.5  # how long the driver waits for any worker before it checks for a cancel
NO_WORKER_TIMEOUT_S = 600.0  # no worker ready for this long (cluster full, or nodes that never come): give up


def _never() -> bool:
    return False


def check_farm(request: AnyRequest, spec: FarmSpec) -> FrameRange:
    """Raise for any problem of the request or the farm spec; return the frames the job makes."""
    from .jobs import expected_frames

    check_request(request)
    problems = validate_farm(spec)
    if problems:
        raise problems[0].to_error()
    first, count = expected_frames(request)
    if count <= 0:
        source = "input" if isinstance(request, EditVideoRequest) else "controls"
        raise InvalidRequestError("a farm job must know its frame count before it starts", field="frames",
                                  hint=f"set frames (--frames N), or check that {source} can be read on this machine")
    return FrameRange(first, first + count - 1)


def run_farm(request: AnyRequest, spec: FarmSpec, *, emit: Callable[[Event], None],
             should_cancel: Callable[[], bool] = _never, job_id: str = "", observer: Observer | None = None) -> Done:
    """Run ``request`` on the Ray cluster of ``spec``; returns ``Done`` (also emitted). See the module docstring."""
    job_id = job_id or f"farm-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
    started = time.perf_counter()
    output: FarmOutput | None = None
    ray = owned = None
    try:
        span = check_farm(request, spec)
        from . import farm_ray

        ray = farm_ray.import_ray()
        farm_ray.configure_auth(spec)
        output = FarmOutput.start(request, span, job_id, resume=spec.resume)
        emit(Progress(job_id=job_id, stage="load", message=f"connecting to Ray ({spec.address or 'local'})"))
        owned = farm_ray.connect(ray, spec)
        pool = farm_ray.worker_pool(ray, spec)
        emit(Progress(job_id=job_id, stage="load", message=f"farm: {pool.describe}"))
        to_end = request.frame_end < 0 or request.frame_end == request.frames - 1  # the span ends the job
        done, grid = set(output.paths), grid_for(request, span.first, span.last if to_end else -1)
        planned = split_frames(span.first, span.last, ranges=spec.ranges, range_frames=spec.range_frames,
                               workers=len(pool.workers), grid=grid)
        progress = FarmProgress(total=len(span), done=len(done))
        scheduler = _Scheduler(ray, pool, output, progress, request, spec, emit, job_id, should_cancel, observer,
                               grid)
        scheduler.run([(part, r) for r in planned for part in pending_parts(r, done, grid)])
        return _finish(request, output, emit, job_id, started, pool.describe)
    except BaseException as exc:
        if output is not None:
            if isinstance(exc, FarmError) and exc.keep_output:
                _keep_unfinished(request, output, job_id, started, exc)
            else:
                output.discard()
        if isinstance(exc, (JobCancelled, KeyboardInterrupt)) and ray is not None and not owned:
            from .farm_ray import drop_pool

            drop_pool()  # its actors may still be finishing a step of the cancelled ranges
        from .jobs import fail

        fail(emit, job_id, exc, exc if isinstance(exc, T2VZError) else (
            JobCancelled("the farm job was interrupted", hint="its staging folder was removed")
            if isinstance(exc, KeyboardInterrupt) else None))
    finally:
        if owned:
            from .farm_ray import disconnect

            disconnect(ray)


def _sidecar(request: AnyRequest, output: FarmOutput, job_id: str, started: float, workers: str) -> dict[str, Any]:
    from .sidecar import build_sidecar

    indices = sorted(output.paths)
    return build_sidecar(request, job_id=job_id, frames=[os.path.basename(output.paths[i]) for i in indices],
                         first_frame=indices[0], timings={"total": round(time.perf_counter() - started, 4)},
                         device={"farm": workers})


def _finish(request: AnyRequest, output: FarmOutput, emit: Callable[[Event], None], job_id: str, started: float,
            workers: str) -> Done:
    """Preview, sidecar, commit: the same end as every job (service/jobs.py)."""
    missing = output.missing()
    if missing:  # a bug in the scheduler if reached: never commit a partial job as complete
        raise FarmError(f"frames {sorted(missing)[:8]} are missing", keep_output=True,
                        hint="run the job again with --resume")
    sidecar = _sidecar(request, output, job_id, started, workers)
    paths = output.commit(sidecar, f"preview.{request.preview}" if request.preview else "")
    indices = sorted(paths)
    done = Done(job_id=job_id, output_dir=output.staged.root, frames=tuple(paths[i] for i in indices),
                first_frame=indices[0], timings=sidecar["timings"])
    emit(done)
    return done


def _keep_unfinished(request: AnyRequest, output: FarmOutput, job_id: str, started: float, exc: FarmError) -> None:
    """Commit what arrived, marked unfinished, and tell the user how to finish it."""
    command = f"python -m t2vz_backend farm JOB.json --out {output.staged.root} --resume"
    if output.keep_unfinished(_sidecar(request, output, job_id, started, "unfinished"), exc.message, command):
        exc.hint = (f"{len(output.paths)} of {len(output.frames)} frames are kept in {output.staged.root} (marked "
                    f"unfinished): fix the cluster and run the same job with --resume (or allow more --retries)")


class _Scheduler:
    """Hands ranges to idle workers and follows their streams until every frame is on disk."""

    def __init__(self, ray: Any, pool: Any, output: FarmOutput, progress: FarmProgress, request: AnyRequest,
                 spec: FarmSpec, emit: Callable[[Event], None], job_id: str, should_cancel: Callable[[], bool],
                 observer: Observer | None, grid: Grid) -> None:
        from .farm_inputs import ship_inputs

        self.ray, self.pool, self.output, self.progress = ray, pool, output, progress
        self.spec, self.emit, self.job_id, self.should_cancel = spec, emit, job_id, should_cancel
        self.observer = observer or (lambda kind, **info: None)
        self.job = request.to_dict()
        self.inputs = None if spec.shared_storage else ship_inputs(ray, request)
        self.write_dir = output.folder if spec.shared_storage else ""
        self.grid = grid
        self.failures: dict[FrameRange, int] = {}  # by the range as first planned
        self.streams: dict[Any, tuple[Any, FrameRange, FrameRange]] = {}  # generator -> (worker, part, planned)
        self.pings: dict[Any, Any] = {}  # ready() ref -> worker
        self.death = ""  # why the last worker that will not come back died
        for worker in pool.workers:
            if not worker.ready and not worker.lost:
                self._ping(worker)

    def run(self, pending: list[tuple[FrameRange, FrameRange]]) -> None:
        """Render every (part, the planned range it belongs to) of ``pending``."""
        idle = [w for w in self.pool.workers if w.ready and not w.lost]
        waiting_since = time.monotonic()
        while pending or self.streams:
            if self.should_cancel():
                self._cancel_streams()
                raise JobCancelled("the farm job was cancelled", hint="its staging folder was removed")
            while pending and idle:
                self._start(idle.pop(0), *pending.pop(0))
            if not self.streams and not self.pings:
                why = f" (the last one: {self.death})" if self.death else ""
                raise FarmError(f"no worker is left to render frames {_labels(p for p, _ in pending)}{why}",
                                keep_output=True, hint="every Ray worker died: check that t2vz and torch import on "
                                                       "the cluster's nodes (docs/farm.md), then --resume")
            if self.streams:
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > NO_WORKER_TIMEOUT_S:
                raise FarmError(f"no Ray worker became ready in {NO_WORKER_TIMEOUT_S:.0f} s", keep_output=True,
                                hint="the cluster may lack free GPUs/CPUs for --workers; check ray status, then "
                                     "--resume")
            ready, _ = self.ray.wait([*self.streams, *self.pings], num_returns=1, timeout=WAIT_S)
            for handle in ready:
                if handle in self.pings:
                    worker = self._pinged(handle)
                    if worker is not None:
                        idle.append(worker)
                    continue
                retry, free = self._advance(handle)
                if retry is not None:
                    pending.append(retry)
                    pending.sort(key=lambda item: item[0])
                if free is not None:  # the range ended: its worker takes the next one
                    idle.append(free)

    # -- streams ----------------------------------------------------------------------------------------------------

    def _start(self, worker: Any, part: FrameRange, planned: FrameRange) -> None:
        skip = sorted(i for i in part if i in self.output.paths)
        stream = worker.actor.render.options(num_returns="streaming").remote(
            self.job, part.first, part.last, self.write_dir, skip, self.inputs)
        self.streams[stream] = (worker, part, planned)
        state = self.progress.worker(worker.name)
        state.state, state.span, state.step, state.total_steps = "starting", part.label, 0, 0
        self._progress()

    def _advance(self, stream: Any) -> tuple[tuple[FrameRange, FrameRange] | None, Any]:
        """Take the next item of ``stream``. Returns (the rest of its range to retry when its worker was lost, the
        worker when it is free for the next range)."""
        worker, part, planned = self.streams[stream]
        try:
            item = self.ray.get(next(stream))
        except StopIteration:
            del self.streams[stream]
            left = resume_point(part, set(self.output.paths), self.grid)
            if left is not None:  # a worker that ends its stream early is treated like a lost one
                return self._fault(worker, part, planned, RuntimeError("the range ended early"), left), None
            self.progress.worker(worker.name).state = "idle"
            self._progress()
            return None, worker
        except Exception as exc:  # noqa: BLE001 - sorted into worker faults and bugs below
            from .farm_ray import is_worker_fault

            del self.streams[stream]
            if not is_worker_fault(self.ray, exc):
                raise
            left = resume_point(part, set(self.output.paths), self.grid)
            if left is None:
                self._lost(worker)
                return None, None
            return self._fault(worker, part, planned, exc, left), None
        self._handle(worker, part, item)
        return None, None

    def _handle(self, worker: Any, part: FrameRange, item: dict[str, Any]) -> None:
        state = self.progress.worker(worker.name)
        kind = item["kind"]
        if kind == "start":
            state.host, state.pid = item.get("host", ""), int(item.get("pid", 0))
            self.observer("start", worker=worker.name, span=part, pid=state.pid, node=item.get("node", ""))
        elif kind == "load":
            state.state = "loading"
        elif kind == "step":
            state.state, state.step, state.total_steps = "rendering", item["step"], item["total"]
        elif kind == "frame":
            path = self.output.write(item["index"], item["png"])
            if path is not None:  # the count first, so a frame's log line shows the total with it
                self.progress.frame_done(worker.name)
                self._progress()
                self.emit(FrameWritten(job_id=self.job_id, index=item["index"], path=path))
                self.observer("frame", worker=worker.name, span=part, index=item["index"], pid=state.pid)
            return
        elif kind == "failed":
            self._cancel_streams()
            error = T2VZError(f"frames {part.label}: {item['message']}", hint=item.get("hint", ""),
                              field=item.get("field", ""))
            error.kind = item.get("error", "error")
            raise error
        self._progress()

    def _fault(self, worker: Any, part: FrameRange, planned: FrameRange, exc: BaseException, left: FrameRange
               ) -> tuple[FrameRange, FrameRange]:
        count = self.failures[planned] = self.failures.get(planned, 0) + 1
        reason = _fault_text(exc)
        self.observer("fault", worker=worker.name, span=part, attempt=count, reason=reason)
        self.emit(Log(job_id=self.job_id, level="warning",
                      message=f"{worker.name} lost during frames {part.label} ({reason}); retrying from frame "
                              f"{left.first} (retry {count} of {self.spec.retries})"))
        if count > self.spec.retries:
            self._cancel_streams()
            raise FarmError(f"frames {planned.label} failed {count} time(s), more than --retries {self.spec.retries} "
                            f"allows (last: {reason})", keep_output=True, hint="no frame was kept")
        self._lost(worker)
        return left, planned

    def _lost(self, worker: Any) -> None:
        worker.ready = False
        self.progress.worker(worker.name).state = "restarting"
        self._ping(worker)
        self._progress()

    def _ping(self, worker: Any) -> None:
        self.pings[worker.actor.ready.remote()] = worker

    def _pinged(self, ref: Any) -> Any:
        worker = self.pings.pop(ref)
        try:
            worker.info = self.ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            from .farm_ray import is_worker_fault

            if not is_worker_fault(self.ray, exc):
                raise
            if isinstance(exc, self.ray.exceptions.ActorDiedError):
                worker.lost = True  # will not come back (its constructor failed, or it was killed)
                self.death = " ".join(str(exc).split())[:300]
                self.progress.worker(worker.name).state = "lost"
            else:
                self._ping(worker)  # still restarting
            return None
        worker.ready = True
        self.progress.worker(worker.name).state = "idle"
        return worker

    def _cancel_streams(self) -> None:
        for stream in list(self.streams):
            try:
                self.ray.cancel(stream)
            except Exception:  # noqa: BLE001 - the stream may have ended meanwhile
                pass
        self.streams.clear()

    def _progress(self) -> None:
        self.emit(self.progress.event(self.job_id))


def _fault_text(exc: BaseException) -> str:
    """What happened to a worker, in words (Ray's own messages are long and about RPCs)."""
    name = type(exc).__name__
    if "Node" in name:
        return "its node was lost"
    if "Actor" in name or "Worker" in name:
        return f"the worker process died ({name})"
    return f"{name}: {str(exc).splitlines()[0][:160]}" if str(exc) else name


def _labels(parts: Any) -> str:
    return ", ".join(p.label for p in parts)
