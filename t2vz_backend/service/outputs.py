"""Where a job's files go, and the guarantee that they go nowhere else: the rules, checked before any work.

Rules (enforced again on every write by service/staging.py):

1. The output folder is the job's own: it must hold no earlier output unless ``overwrite`` (``output_dir_problem``;
   staging folders, the commit lock and OS litter do not count), and it may never be, or lie inside, a folder the
   job reads (``EditVideoRequest.input``, ``ControlSpec.path``, ``mask_dir``, ``motion_flow``, ``motion_occlusion``),
   whatever the flags: ``overwrite`` means "replace my earlier output", never "replace my footage". A source that is
   one file (a movie, an image, a pose JSON, a ``.npy`` stack) only forbids writing over that file: the output may
   not be the file or hold it, but may sit beside it (a job folder next to the movie of a .blend file). Paths are
   compared after ``realpath``, so ``..`` and symlinks cannot dodge the check.
2. Frames are written into a staging folder private to one run and moved into ``output_dir`` only when the job is
   complete (service/staging.py), so a cancelled, failed or killed job leaves nothing half-written; the user's own
   files are never touched (``overwrite`` replaces frames with the same names, nothing else).
3. Every file name is made by the backend, checked to be a plain name, and its folder is checked (by realpath) to be
   the output folder: nothing is ever written outside ``output_dir``, whatever the request or the job id says.

Standard library only: the client and the add-on use these checks.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ..errors import OutputError, Problem
from ..media.atomic import TEMP_PREFIX, output_error
from ..protocol import ControlVideoRequest, EditVideoRequest, JobRequest, MotionRequest, TextToVideoRequest

STAGING_PREFIX = ".partial-"  # a run's private staging folder: .partial-<job tag>-<unique token>
LOCK_NAME = ".t2vz.lock"  # held (briefly) while a run claims frames or commits them; removed when released
_IGNORED_ENTRIES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # OS litter does not make a folder "used"


def resolve(path: str) -> str:
    """The absolute, symlink-free form of ``path`` (``~`` expanded), used for every comparison."""
    try:
        return os.path.realpath(os.path.expanduser(path))
    except (ValueError, OSError) as exc:  # NUL bytes, overlong names
        raise OutputError(f"invalid path {path!r}: {exc}", hint="choose another folder", field="output_dir") from exc


def is_inside(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies below it (both resolved)."""
    path, root = resolve(path), resolve(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def source_paths(request: JobRequest) -> list[tuple[str, str]]:
    """(request field, resolved path) of every source the job reads: folders and single files."""
    sources: list[tuple[str, str]] = []
    if isinstance(request, EditVideoRequest):
        sources.append(("input", request.input))
    elif isinstance(request, ControlVideoRequest):
        sources.extend((f"controls[{i}].path", spec.path) for i, spec in enumerate(request.controls))
    elif isinstance(request, TextToVideoRequest) and request.mask_dir:
        sources.append(("mask_dir", request.mask_dir))
    if isinstance(request, MotionRequest):  # camera motion fields (docs/camera_motion.md)
        sources.extend((name, getattr(request, name)) for name in ("motion_flow", "motion_occlusion"))
    return [(name, resolve(path)) for name, path in sources if path]


def source_folders(request: JobRequest) -> list[tuple[str, str]]:
    """(request field, folder) of every folder source: the job's output may not lie inside one of them."""
    return [(name, path) for name, path in source_paths(request) if os.path.isdir(path)]


def is_bookkeeping(name: str) -> bool:
    """True for entries of an output folder that are not output: staging folders, the commit lock, a file being
    written (media/atomic.py), OS litter."""
    return name in _IGNORED_ENTRIES or name == LOCK_NAME or name.startswith((STAGING_PREFIX, TEMP_PREFIX))


def output_entries(folder: str) -> list[str]:
    """The names in ``folder`` that are output (earlier frames, a sidecar, the user's own files)."""
    return [name for name in os.listdir(folder) if not is_bookkeeping(name)]


def output_dir_problem(path: str | os.PathLike, overwrite: bool) -> Problem | None:
    """What is wrong with ``path`` as an output folder, or None. Pure: creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return Problem("output_dir", f"output path {path} is a file, not a folder", "choose a folder")
    if path.is_dir():
        try:
            entries = output_entries(str(path))
        except OSError as exc:
            return Problem("output_dir", f"cannot list output folder {path}: {exc}",
                           "choose a folder you can read and write")
        if entries and not overwrite:
            return Problem("output_dir", f"output folder {path} is not empty ({len(entries)} entries)",
                           "choose an empty folder, or set overwrite (CLI: --overwrite) to replace earlier output")
        existing = path
    else:
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return Problem("output_dir", f"cannot create output folder {path}: {existing} is a file",
                           "choose a location inside a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        return Problem("output_dir", f"output folder {path} is not writable ({existing} denies writing)",
                       "choose a folder you can write to")
    return None


def check_output(request: JobRequest) -> None:
    """Raise ``OutputError`` if the job may not write to ``request.output_dir``. Pure: creates nothing."""
    folder = resolve(request.output_dir)
    for name, source in source_paths(request):  # even with overwrite: a source is never written over
        if not os.path.isdir(source) and is_inside(source, folder):
            raise OutputError(f"output folder {folder} is or holds the source file {source} ({name})",
                              hint="choose an output folder that does not contain the job's sources",
                              field="output_dir")
    for name, source in source_folders(request):
        if is_inside(folder, source):  # whatever the flags: overwrite never reaches the user's footage
            raise OutputError(
                f"output folder {folder} is inside the folder of the source frames ({name}: {source})",
                hint="choose an output folder outside the source's folder; the source is never written to",
                field="output_dir",
            )
    problem = output_dir_problem(folder, request.overwrite)
    if problem is not None:
        raise problem.to_error(OutputError)


def prepare_output_dir(path: str) -> str:
    """Create the output folder (and its parents) and prove it writable with a probe file; its resolved path."""
    folder = resolve(path)
    problem = output_dir_problem(folder, overwrite=True)  # emptiness was checked before any work
    if problem is not None:
        raise problem.to_error(OutputError)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise output_error("create output folder", folder, exc) from exc
    # os.access cannot see read-only mounts, ACLs or root on some file systems; a real file can.
    probe = os.path.join(folder, f"{TEMP_PREFIX}probe-{secrets.token_hex(6)}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.remove(probe)
    except OSError as exc:
        raise output_error("write in", folder, exc) from exc
    return folder


def safe_job_tag(job_id: str) -> str:
    """A file-name-safe form of ``job_id`` (job ids come from clients; they never become paths as given)."""
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:48]
    return tag or "job"


def plain_name(name: str) -> str:
    """``name`` if it is one plain file name (no folders, no ``..``), else ``OutputError``."""
    bad = (not name or name in (".", "..") or "\0" in name or os.path.basename(name) != name
           or (os.altsep is not None and os.altsep in name))
    if bad:
        raise OutputError(f"refusing to write file {name!r}: not a plain file name", field="output_dir")
    return name
