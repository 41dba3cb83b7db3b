"""The output folder of a farm job: the staged-output rules of every job, plus "unfinished" and resume.

Frames arrive from many workers, in any order. They are written (by the driver, or by the workers themselves with
shared storage) into the job's own staging folder inside ``output_dir`` (``staging.StagedOutput``: private to this
run, claiming the job's frames, refreshed while frames arrive), each one atomically (media/atomic.py), and move
into ``output_dir`` in one commit, under the folder lock, together with the sidecar.

- **Complete:** the preview and the sidecar (listing every frame) are written, everything is committed, and an
  earlier unfinished mark is removed.
- **Retries exhausted:** the frames that did arrive are committed with a sidecar that lists exactly them, and the
  mark ``t2vz-unfinished.json`` (why it stopped, which frames are missing, how to resume) is written beside them:
  the folder holds one job's frames, visibly unfinished, never a mix of two jobs.
- **Cancelled, or failed before any frame:** the staging folder is discarded like any job's.

``resume`` continues such a job: the frames its sidecar lists (and that exist) count as done, only the missing ones
are rendered, and the commit completes the folder. It is refused for another job's folder (other settings).
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import OutputError
from ..protocol import AnyRequest, request_from_dict
from .farm_plan import FrameRange
from .outputs import check_output, resolve
from .sidecar import SIDECAR_NAME, listed_frames, read_sidecar, write_sidecar
from .staging import StagedOutput

UNFINISHED_NAME = "t2vz-unfinished.json"
# Fields that only shape the preview or where the files go: a job that differs only in these makes the same frames.
_NOT_FRAMES = ("output_dir", "overwrite", "preview", "fps")


def job_key(request: AnyRequest) -> dict[str, Any]:
    """What decides the frames of ``request`` (used to refuse resuming another job's frames)."""
    data = request.to_dict()
    for name in _NOT_FRAMES:
        data.pop(name, None)
    return data


def differences(a: AnyRequest, b: AnyRequest) -> list[str]:
    """The names of the fields (that decide frames) in which ``a`` and ``b`` differ."""
    ka, kb = job_key(a), job_key(b)
    return sorted(name for name in set(ka) | set(kb) if ka.get(name) != kb.get(name))


def read_unfinished(output_dir: str) -> dict[str, Any] | None:
    """The unfinished mark of ``output_dir`` (None when there is none or it cannot be read)."""
    try:
        data = read_sidecar(os.path.join(resolve(output_dir), UNFINISHED_NAME))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def committed_frames(output_dir: str, request: AnyRequest) -> tuple[AnyRequest | None, dict[int, str]]:
    """(the request of the job in ``output_dir``, {index: path} of the frames its sidecar lists and that exist)."""
    root = resolve(output_dir)
    try:
        sidecar = read_sidecar(os.path.join(root, SIDECAR_NAME))
        done = request_from_dict(sidecar["request"])
    except Exception:  # noqa: BLE001 - no readable sidecar: no job of ours
        return None, {}
    return done, listed_frames(root, sidecar)


class FarmOutput:
    """The staging folder of one farm job; ``paths`` holds every frame that exists so far (committed or staged)."""

    def __init__(self, staged: StagedOutput, request: AnyRequest, frames: FrameRange, job_id: str,
                 done: dict[int, str] | None = None) -> None:
        self.staged, self.request, self.frames, self.job_id = staged, request, frames, job_id
        self.paths: dict[int, str] = dict(done or {})
        self.earlier = set(self.paths)  # committed by an earlier run (resume)

    @property
    def folder(self) -> str:
        return self.staged.partial

    @classmethod
    def start(cls, request: AnyRequest, frames: FrameRange, job_id: str, *, resume: bool) -> FarmOutput:
        """Stage a fresh job, or (``resume``) the missing frames of the unfinished job in ``output_dir``."""
        done: dict[int, str] = {}
        if resume:
            done = _resumable(request, frames)
        else:
            try:
                check_output(request)
            except OutputError as exc:
                mark = read_unfinished(request.output_dir) if not request.overwrite else None
                if mark is not None:
                    raise OutputError(
                        f"output folder {resolve(request.output_dir)} holds an unfinished farm job "
                        f"({mark.get('done', '?')} of {mark.get('total', '?')} frames: {mark.get('reason', '')})",
                        field="output_dir", hint="add --resume to render only its missing frames, or --overwrite "
                                                 "to render it all again") from exc
                raise
        staged = StagedOutput(request.output_dir, job_id, overwrite=request.overwrite,
                              frames=(frames.first, frames.last))
        staged.open()
        return cls(staged, request, frames, job_id, done)

    def missing(self) -> set[int]:
        return {i for i in self.frames if i not in self.paths}

    def write(self, index: int, data: bytes | None) -> str | None:
        """Record frame ``index``: write ``data`` atomically (None: a worker wrote it in place). Returns its path,
        or None when the frame was already there (a retried range re-sends frames: each is written once)."""
        if index in self.paths or index not in self.frames:
            return None
        if data is None:
            path = frame_path(self.folder, index)
            if not os.path.isfile(path):
                raise OutputError(f"a worker reported frame {index} but {path} does not exist",
                                  hint="--shared-storage needs the output folder at the same path on every worker")
        else:
            path = write_frame(self.folder, index, data)
        self.paths[index] = path
        self.staged.heartbeat()
        return path

    def commit(self, sidecar: dict[str, Any], preview: str = "") -> dict[int, str]:
        """Write the sidecar (and ``preview``, a file name), commit; {index: final path} of every frame."""
        from ..media.writer import write_preview

        def finalize() -> list[str]:  # under the folder lock; this job's own earlier sidecar/preview may be replaced
            if preview:
                indices = sorted(self.paths)
                write_preview([self.paths[i] for i in indices], self.staged.staged_path(preview), self.request.fps)
            write_sidecar(self.staged.staged_path(SIDECAR_NAME), sidecar)
            return [SIDECAR_NAME, preview] if self.earlier else []

        moved = self.staged.commit(finalize)
        self.paths = {i: moved.get(p, p) for i, p in self.paths.items()}
        if not self.missing():
            _remove(os.path.join(self.staged.root, UNFINISHED_NAME))
        return self.paths

    def keep_unfinished(self, sidecar: dict[str, Any], reason: str, resume_hint: str) -> bool:
        """Commit the frames that arrived and mark the folder unfinished; False (and discarded) when none did."""
        if not set(self.paths) - self.earlier:
            self.discard()
            return False
        self.commit(sidecar)
        missing = sorted(self.missing())
        write_sidecar(os.path.join(self.staged.root, UNFINISHED_NAME), {
            "reason": reason, "job_id": self.job_id, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "done": len(self.paths), "total": len(self.frames), "missing": missing, "resume": resume_hint})
        return True

    def discard(self) -> None:
        self.staged.discard()


def _resumable(request: AnyRequest, frames: FrameRange) -> dict[int, str]:
    """The frames already done of the unfinished job in ``request.output_dir``; refuse anything else."""
    root = resolve(request.output_dir)
    earlier, done = committed_frames(root, request)
    mark = read_unfinished(root)
    if earlier is None:
        raise OutputError(f"there is no farm job in {root} to resume", field="output_dir",
                          hint="run it without --resume")
    diff = differences(earlier, request)
    if diff:
        raise OutputError(f"the job in {root} was made with other settings ({', '.join(diff)} differ)",
                          field="output_dir", hint="resume it with its own settings, or use --overwrite")
    if all(i in done for i in frames) and mark is None:
        raise OutputError(f"the farm job in {root} is already complete", field="output_dir",
                          hint="nothing to resume; use --overwrite to render it again")
    return {i: p for i, p in done.items() if i in frames}


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def frame_path(folder: str, index: int) -> str:
    from ..media.writer import frame_name

    return os.path.join(folder, frame_name(index))


def write_frame(folder: str, index: int, data: bytes) -> str:
    """Write the PNG bytes of frame ``index`` into ``folder`` atomically; returns the path."""
    from ..media.atomic import write_bytes

    return write_bytes(frame_path(folder, index), data)
