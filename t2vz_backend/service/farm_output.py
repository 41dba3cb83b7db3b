"""The output folder of a farm job: the same staged-output rules as every job, plus "unfinished" and resume.

Frames arrive from many workers, in any order, each at most once per attempt. They are written (by the driver, or
by the workers themselves with shared storage) into the job's staging folder inside ``output_dir``, each frame
atomically (temporary file + rename), and moved into ``output_dir`` only when every frame is there
(``outputs.StagedOutput``). A farm job that fails after its retries keeps its staging folder, marked unfinished by
the manifest ``.farm.json`` in it, so ``--resume`` can render only the missing frames; the final folder never holds
a mix of two jobs. A cancelled farm job is discarded like any job.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from ..errors import OutputError
from ..protocol import AnyRequest, request_from_dict
from .farm_plan import FrameRange
from .outputs import PARTIAL_PREFIX, StagedOutput, check_output, resolve
from .sidecar import SIDECAR_NAME, read_sidecar, write_sidecar

MANIFEST = ".farm.json"  # a dot name: StagedOutput.commit never moves it into the output folder
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


@dataclass(frozen=True)
class Unfinished:
    """An unfinished farm job found in an output folder."""

    partial: str
    request: AnyRequest
    frames: FrameRange
    reason: str
    done: int  # frames already in its staging folder


def find_unfinished(output_dir: str) -> list[Unfinished]:
    """Every farm staging folder with a readable manifest in ``output_dir`` (unreadable ones are skipped)."""
    root = resolve(output_dir)
    found = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    for name in names:
        partial = os.path.join(root, name)
        if not name.startswith(PARTIAL_PREFIX) or not os.path.isfile(os.path.join(partial, MANIFEST)):
            continue
        try:
            with open(os.path.join(partial, MANIFEST), encoding="utf-8") as handle:
                data = json.load(handle)
            request = request_from_dict(data["request"])
            frames = FrameRange(*data["frames"])
        except (OSError, ValueError, KeyError, TypeError, Exception):  # noqa: BLE001 - any damage: not resumable
            continue
        found.append(Unfinished(partial, request, frames, str(data.get("reason", "")), len(frame_files(partial))))
    return found


def frame_files(folder: str) -> dict[int, str]:
    """{global index: path} of the complete frame files in ``folder`` (``frame_000042.png``)."""
    from ..media.writer import FRAME_PREFIX

    out = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        if name.startswith(FRAME_PREFIX) and ext == ".png" and stem[len(FRAME_PREFIX):].isdigit():
            out[int(stem[len(FRAME_PREFIX):])] = os.path.join(folder, name)
    return out


class FarmOutput:
    """The staging folder of one farm job; ``done`` holds the frames already in it."""

    def __init__(self, staged: StagedOutput, request: AnyRequest, frames: FrameRange, job_id: str,
                 done: dict[int, str] | None = None) -> None:
        self.staged, self.request, self.frames, self.job_id = staged, request, frames, job_id
        self.paths: dict[int, str] = dict(done or {})

    @property
    def folder(self) -> str:
        return self.staged.partial

    @classmethod
    def start(cls, request: AnyRequest, frames: FrameRange, job_id: str, *, resume: bool) -> FarmOutput:
        """Stage a fresh job, or (``resume``) adopt the unfinished staging folder of the same job."""
        unfinished = find_unfinished(request.output_dir) if os.path.isdir(resolve(request.output_dir)) else []
        if resume:
            return cls._adopt(request, frames, job_id, unfinished)
        try:
            check_output(request)
        except OutputError as exc:
            if unfinished and not request.overwrite:
                job = unfinished[0]
                raise OutputError(
                    f"output folder {resolve(request.output_dir)} holds an unfinished farm job ({job.done} of "
                    f"{len(job.frames)} frames; {job.reason or 'it was interrupted'})", field="output_dir",
                    hint="add --resume to render only its missing frames, or --overwrite to start it again") from exc
            raise
        staged = StagedOutput(request.output_dir, job_id)
        staged.open()
        out = cls(staged, request, frames, job_id)
        out._write_manifest("running", "")
        return out

    @classmethod
    def _adopt(cls, request: AnyRequest, frames: FrameRange, job_id: str, unfinished: list[Unfinished]
               ) -> FarmOutput:
        root = resolve(request.output_dir)
        same = [job for job in unfinished if not differences(job.request, request) and job.frames == frames]
        if not same:
            if unfinished:
                diff = differences(unfinished[0].request, request) or ["frame range"]
                raise OutputError(f"the unfinished farm job in {root} was made with other settings "
                                  f"({', '.join(diff)} differ)", field="output_dir",
                                  hint="resume it with its own settings, or use --overwrite to start again")
            if _finished_same_job(root, request, frames):
                raise OutputError(f"the farm job in {root} is already complete", field="output_dir",
                                  hint="nothing to resume; use --overwrite to render it again")
            raise OutputError(f"there is no unfinished farm job in {root} to resume", field="output_dir",
                              hint="run it without --resume")
        job = same[0]
        staged = StagedOutput(root, job_id)
        staged.partial = job.partial  # adopt its folder: frames already there count as done
        out = cls(staged, request, frames, job_id, frame_files(job.partial))
        out._write_manifest("running", "")
        return out

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
        return path

    def mark_unfinished(self, reason: str) -> None:
        """Keep the staging folder for ``--resume`` and say why it stopped."""
        self._write_manifest("unfinished", reason)

    def discard(self) -> None:
        self.staged.discard()

    def _write_manifest(self, state: str, reason: str) -> None:
        write_sidecar(os.path.join(self.folder, MANIFEST), {
            "state": state, "reason": reason, "job_id": self.job_id, "updated": time.time(),
            "frames": [self.frames.first, self.frames.last], "request": self.request.to_dict()})


def _finished_same_job(root: str, request: AnyRequest, frames: FrameRange) -> bool:
    try:
        sidecar = read_sidecar(os.path.join(root, SIDECAR_NAME))
        done = request_from_dict(sidecar["request"])
    except Exception:  # noqa: BLE001 - no readable sidecar: not a finished job of ours
        return False
    present = frame_files(root)
    return not differences(done, request) and all(i in present for i in frames)


def frame_path(folder: str, index: int) -> str:
    from ..media.writer import frame_name

    return os.path.join(folder, frame_name(index))


def write_frame(folder: str, index: int, data: bytes) -> str:
    """Write the PNG bytes of frame ``index`` into ``folder`` atomically; returns the path."""
    from pathlib import Path

    from ..media.writer import _atomic_write

    path = frame_path(folder, index)

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            handle.write(data)

    _atomic_write(Path(path), write)
    return path
