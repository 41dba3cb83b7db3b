"""Run one job from request to committed frames: the one function every driver calls.

The CLI, the worker process, the add-on's in-process mode and batch scripts all call ``run_job``, so a job behaves
the same (same checks, same files, same events) whichever way it is started. Steps:

1. check the request completely (``validation.check_request``, the output rules of ``outputs.check_output`` and
   the media checks of ``preflight.check_media``) before any model loads: a bad request writes nothing;
2. load the models through the ``ModelCache`` (a warm worker skips this);
3. stage the output in a folder private to this run, claiming its frames (service/staging.py);
4. run the engine with a ``JobContext``: every UNet pass becomes a ``Progress`` in the user's units (step k of the
   schedule's S, the share of the work done, an ETA from the measured rate), every frame is written as a PNG and
   announced with ``FrameWritten`` (and optionally a small ``Preview``);
   ``FrameWritten.path`` is the staged file, valid until the job ends: ``Done.frames`` has the final paths;
5. under the folder lock, write the ``t2vz.json`` sidecar (merged with the folder's own when it is the same job's:
   frame ranges rendered separately share one), the optional mp4/gif preview of every frame of the job the folder
   then holds, and the consistency report when asked (``report``: report.json/.png/.html of this run's frames,
   quality/, with ``Progress`` stage "report"); move everything into ``output_dir`` (then a ``Report`` event);
6. emit and return ``Done``.

On any failure (cancel included) the staging folder is removed, ``Failed`` is emitted and the error is raised again:
``T2VZError`` subclasses as they are, an out-of-memory error as ``OutOfMemory`` (after freeing the model cache), and
anything else (a bug) unchanged, with its traceback.
"""

from __future__ import annotations

import base64
import io
import os
import time
import traceback
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import JobCancelled, OutOfMemory, OutputError, T2VZError
from ..protocol import (
    AnyRequest,
    ControlVideoRequest,
    Done,
    EditVideoRequest,
    Event,
    Failed,
    FrameWritten,
    Preview,
    Progress,
    TextToVideoRequest,
)
from ..sampling.context import JobContext
from ..validation import check_request
from .consistency import measure_staged, report_event, report_record
from .outputs import check_output
from .preflight import check_media, expected_frames
from .sidecar import SIDECAR_NAME, build_sidecar, merge_sidecar, read_sidecar, same_job, write_sidecar
from .staging import LAST_FRAME, StagedOutput

if TYPE_CHECKING:
    from ..models.cache import ModelCache

PREVIEW_SIZE = 128  # long side, in pixels, of the live thumbnails sent as Preview events


def _never() -> bool:
    return False


def run_job(request: AnyRequest, *, cache: ModelCache, emit: Callable[[Event], None],
            should_cancel: Callable[[], bool] = _never, job_id: str = "", previews: bool = False,
            preview_size: int = PREVIEW_SIZE) -> Done:
    """Run ``request`` to completion and return its ``Done`` event (also emitted). See the module docstring."""
    clock = _StageClock()
    staged: StagedOutput | None = None
    oom = False
    try:
        # 1. Check everything that can be checked without a model.
        check_request(request)
        check_output(request)
        check_media(request)
        _check_cancel(should_cancel)

        # 2. Load (or reuse) the models.
        clock.enter("load")
        emit(Progress(job_id=job_id, stage="load", message=f"loading {request.model}"))
        model, controlnets = _load_models(request, cache)
        _check_cancel(should_cancel)

        # 3. Stage the output in a folder of this run's own, claiming its frames.
        clock.enter("prepare")
        first, count = expected_frames(request)
        staged = StagedOutput(request.output_dir, job_id, overwrite=request.overwrite,
                              frames=(first, first + count - 1 if count else LAST_FRAME))
        staged.open()

        # 4. Run the engine; it reports steps and frames through the context.
        frames = _FrameSink(request, staged, job_id, emit, previews, preview_size)
        ctx = _make_context(job_id, emit, should_cancel, clock, frames)
        _engine_for(request)(request, model, controlnets, ctx)
        if not frames.paths:
            raise T2VZError("the engine produced no frames", hint="check the frame range and the input media")

        # 5. Sidecar and preview of what the folder will hold, then move everything into place (one lock).
        clock.enter("write")
        indices = sorted(frames.paths)
        names = [os.path.basename(frames.paths[i]) for i in indices]
        report = None
        if request.report:
            clock.enter("report")
            report = measure_staged(request, staged.partial, names, indices[0], job_id, emit, should_cancel)
        timings = clock.finish()
        sidecar = build_sidecar(request, job_id=job_id, frames=names, first_frame=indices[0], timings=timings,
                                device=_device_info(model, request))
        if report is not None:
            sidecar["report"] = report_record(report)
        moved = staged.commit(lambda: _finalize(request, staged, sidecar))
        if report is not None:
            emit(report_event(report, job_id, lambda path: moved.get(path, path)))

        # 6. Done.
        done = Done(job_id=job_id, output_dir=staged.root, frames=tuple(moved[frames.paths[i]] for i in indices),
                    first_frame=indices[0], timings=timings)
        emit(done)
        return done
    except BaseException as exc:
        if staged is not None:
            staged.discard()
        error = _as_error(exc, request)
        oom = isinstance(error, OutOfMemory) and error is not exc
        if oom:  # drop the engine frames' locals (the tensors) but keep the traceback for the log
            traceback.clear_frames(exc.__traceback__)
        fail(emit, job_id, exc, error)
    finally:
        if oom:  # the engine frames were cleared above, so dropping the cache really frees the memory
            _free_memory(cache)


def fail(emit: Callable[[Event], None], job_id: str, exc: BaseException, error: T2VZError | None) -> typing.NoReturn:
    """Emit the ``Failed`` event of ``exc`` and raise (inside an ``except`` block of ``exc``): ``error`` is what
    reports it to the user, re-raised from ``exc`` when it differs; None means a bug, re-raised with its traceback."""
    emit(Failed.from_error(exc if error is None else error, job_id))
    if error is None or error is exc or isinstance(exc, KeyboardInterrupt):
        raise exc
    raise error from exc


def _finalize(request: AnyRequest, staged: StagedOutput, sidecar: dict[str, Any]) -> list[str]:
    """Write the sidecar (merged with the folder's, for the same job) and preview into staging; called under the
    folder lock by ``StagedOutput.commit``. Returns the names the commit may replace without ``overwrite``."""
    existing = _folder_sidecar(staged.root)
    preview = f"preview.{request.preview}" if request.preview else ""
    replaceable: list[str] = []
    if existing is not None and same_job(existing, sidecar["request"]):  # another range of this job: one sidecar
        sidecar = merge_sidecar(existing, sidecar, present=set(os.listdir(staged.root)))
        # the preview shows the whole folder; a report, when asked, measures this run's frames and replaces the last
        replaceable = [SIDECAR_NAME, preview, *sidecar.get("report", {}).get("files", ())]
    elif existing is not None and not request.overwrite:
        raise OutputError(f"output folder {staged.root} received another job's output while this one ran",
                          hint="choose another folder, or set overwrite (CLI: --overwrite) to replace it",
                          field="output_dir")
    if preview:
        from ..media.writer import write_preview

        mine = set(os.listdir(staged.partial))
        paths = [staged.staged_path(n) if n in mine else staged.final_path(n) for n in sidecar["frames"]]
        write_preview(paths, staged.staged_path(preview), request.fps)
    write_sidecar(staged.staged_path(SIDECAR_NAME), sidecar)
    return replaceable


def _folder_sidecar(root: str) -> dict[str, Any] | None:
    """The output folder's sidecar, or None when it has none; an unreadable one counts as another job's."""
    path = os.path.join(root, SIDECAR_NAME)
    if not os.path.lexists(path):
        return None
    try:
        data = read_sidecar(path)
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _check_cancel(should_cancel: Callable[[], bool]) -> None:
    if should_cancel():
        raise JobCancelled("the job was cancelled", hint="partial output was removed")


def _load_models(request: AnyRequest, cache: ModelCache) -> tuple[Any, list[Any]]:
    """The base model (and the ControlNets of a ControlNet job) from the cache, loading them on first use."""
    kind = "pix2pix" if isinstance(request, EditVideoRequest) else "sd"
    model = cache.base(request.model, kind=kind, device=request.device, dtype=request.dtype,
                       offline=request.offline, allow_pickle=request.allow_pickle, loras=request.loras,
                       config=request.model_config or None)
    controlnets = []
    if isinstance(request, ControlVideoRequest):
        from ..models.loading import default_controlnet_ref

        for spec in request.controls:
            ref = spec.model or default_controlnet_ref(spec.kind, request.model)
            controlnets.append(cache.controlnet(ref, base=model, offline=request.offline,
                                                allow_pickle=request.allow_pickle))
    return model, controlnets


def _engine_for(request: AnyRequest) -> Callable[[Any, Any, list[Any], JobContext], None]:
    """The engine entry point of the request's mode, with one uniform signature."""
    if isinstance(request, TextToVideoRequest):
        from ..pipelines.text_to_video import text_to_video

        return lambda r, model, _controlnets, ctx: text_to_video(r, model, ctx)
    if isinstance(request, ControlVideoRequest):
        from ..pipelines.control_video import control_video

        return control_video
    if isinstance(request, EditVideoRequest):
        from ..pipelines.edit_video import edit_video

        return lambda r, model, _controlnets, ctx: edit_video(r, model, ctx)
    raise TypeError(f"not a job request: {type(request).__name__}")


def _make_context(job_id: str, emit: Callable[[Event], None], should_cancel: Callable[[], bool], clock: _StageClock,
                  frames: _FrameSink) -> JobContext:
    """A JobContext whose callbacks turn the engine's steps, stages and frames into events and files."""
    started: list[float] = []  # (time, work fraction) of the first pass: the ETA ignores warm-up before it

    def on_step(step: int, total: int, fraction: float) -> None:
        frames.staged.heartbeat()
        now = time.perf_counter()
        if clock.stage == "prepare":
            clock.enter("denoise")
        if not started:
            started.extend((now, fraction))
        eta = -1.0
        if fraction > started[1]:  # the rate of the work since the first pass, over the work left
            eta = (now - started[0]) / (fraction - started[1]) * max(1.0 - fraction, 0.0)
        emit(Progress(job_id=job_id, stage=clock.stage or "denoise", step=step, total_steps=total,
                      frames_done=len(frames.paths), total_frames=frames.total, eta_s=round(eta, 2),
                      fraction=round(fraction, 4)))

    def on_stage(stage: str) -> None:
        clock.enter(stage)
        emit(Progress(job_id=job_id, stage=stage, frames_done=len(frames.paths), total_frames=frames.total))

    return JobContext(on_step=on_step, on_frame=frames, should_cancel=should_cancel, on_stage=on_stage)


class _FrameSink:
    """Writes each frame into the staging folder and announces it."""

    def __init__(self, request: AnyRequest, staged: StagedOutput, job_id: str, emit: Callable[[Event], None],
                 previews: bool, preview_size: int) -> None:
        self.first, self.total = expected_frames(request)
        self.staged, self.job_id, self.emit = staged, job_id, emit
        self.previews, self.preview_size = previews, preview_size
        self.paths: dict[int, str] = {}
        self._writer: Any = None

    def __call__(self, index: int, image: Any) -> None:
        from ..media.writer import FrameWriter

        if self._writer is None:
            # The count is only an estimate when it comes from the media: size the writer by the name width instead.
            self._writer = FrameWriter(self.staged.partial, total_frames=LAST_FRAME + 1)
        self.paths[index] = path = self._writer.write(image, index)
        self.staged.heartbeat()
        self.emit(FrameWritten(job_id=self.job_id, index=index, path=path))
        if self.previews:
            self.emit(_preview_event(self.job_id, index, image, self.preview_size))


def _preview_event(job_id: str, index: int, image: Any, size: int) -> Preview:
    """A downscaled PNG of ``image`` as a base64 ``Preview`` event."""
    from PIL import Image

    from ..media.writer import to_uint8

    thumb = Image.fromarray(to_uint8(image))
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return Preview(job_id=job_id, index=index, width=thumb.width, height=thumb.height,
                   png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"))


class _StageClock:
    """Wall time spent per stage (load, prepare, denoise, decode, write) and in total, in seconds."""

    def __init__(self) -> None:
        self.start = self.since = time.perf_counter()
        self.stage = ""
        self.totals: dict[str, float] = {}

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stage:
            self.totals[self.stage] = self.totals.get(self.stage, 0.0) + now - self.since
        self.stage, self.since = stage, now

    def finish(self) -> dict[str, float]:
        self.enter(self.stage)
        return {**{k: round(v, 4) for k, v in self.totals.items()},
                "total": round(time.perf_counter() - self.start, 4)}


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), or a RuntimeError saying "out of memory" (CUDA, MPS, CPU allocators)."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _as_error(exc: BaseException, request: AnyRequest) -> T2VZError | None:
    """The T2VZError that reports ``exc`` to the user, or None when ``exc`` is a bug."""
    if isinstance(exc, T2VZError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return JobCancelled("the job was interrupted", hint="partial output was removed")
    if is_out_of_memory(exc):
        return OutOfMemory(
            f"the device ran out of memory ({str(exc).splitlines()[0][:200]})",
            hint=f"use a smaller chunk_size (now {request.chunk_size}), dtype float16, or a lower resolution "
                 f"(now {request.width}x{request.height}); the model cache was freed",
        )
    return None


def _free_memory(cache: ModelCache) -> None:
    """Drop cached models and return freed blocks to the device after an out-of-memory error."""
    from ..models.devices import free_memory

    cache.clear()
    free_memory()


def _device_info(model: Any, request: AnyRequest) -> dict[str, Any]:
    """The sidecar's description of the device the job ran on (name, VRAM, torch version)."""
    from ..models.devices import describe_device

    device = str(getattr(model, "device", request.device))
    try:
        return describe_device(device).to_dict()
    except T2VZError:
        return {"device": device}
