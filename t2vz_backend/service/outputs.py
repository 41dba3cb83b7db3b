"""Where a job's files go, and the guarantee that they go nowhere else.

Rules (checked before any work, enforced again on every write):

1. The output folder is the job's own: it must be empty unless ``overwrite`` (media/writer.py), and it may
   not lie inside a folder the job reads (``EditVideoRequest.input``, ``ControlSpec.path``, ``mask_dir``,
   ``motion_flow``, ``motion_occlusion``) unless ``overwrite`` says so. A source that is one file (a movie, an image,
   a pose JSON, a ``.npy`` stack) only forbids writing over that file: the output may not be the file or hold it,
   but may sit beside it (a job folder next to the movie of a .blend file). Paths are compared after ``realpath``,
   so ``..`` and symlinks cannot dodge the check.
2. Frames are written into ``<output_dir>/.partial-<job id>/`` and moved into ``output_dir`` only when the job is
   complete, so a cancelled or failed job leaves nothing half-written; the user's own files are never touched
   (``overwrite`` replaces frames with the same names, nothing else).
3. Every file name is made by the backend, checked to be a plain name, and its folder is checked (by realpath) to be
   the output folder: nothing is ever written outside ``output_dir``, whatever the request or the job id says.
"""

from __future__ import annotations

import os
import re
import shutil

from ..errors import OutputError
from ..protocol import ControlVideoRequest, EditVideoRequest, JobRequest, MotionRequest, TextToVideoRequest

PARTIAL_PREFIX = ".partial-"


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


def check_output(request: JobRequest) -> None:
    """Raise ``OutputError`` if the job may not write to ``request.output_dir``. Pure: creates nothing."""
    from ..media.writer import check_output_dir  # imported here: the client (stdlib only) uses this module's helpers

    folder = resolve(request.output_dir)
    for name, source in source_paths(request):  # even with overwrite: a source is never written over
        if not os.path.isdir(source) and is_inside(source, folder):
            raise OutputError(f"output folder {folder} is or holds the source file {source} ({name})",
                              hint="choose an output folder that does not contain the job's sources",
                              field="output_dir")
    problem = check_output_dir(folder, request.overwrite)
    if problem is not None:
        # media.writer words its problems "message (hint)", the project's convention for one-line errors.
        message, _, hint = problem.rpartition(" (") if problem.endswith(")") else (problem, "", "")
        raise OutputError(message, hint=hint.rstrip(")"), field="output_dir")
    if request.overwrite:
        return
    for name, source in source_folders(request):
        if is_inside(folder, source):
            raise OutputError(
                f"output folder {folder} is inside the folder of the source frames ({name}: {source})",
                hint="choose a separate output folder, or set overwrite (--overwrite) to write there anyway",
                field="output_dir",
            )


def safe_job_tag(job_id: str) -> str:
    """A file-name-safe form of ``job_id`` (job ids come from clients; they never become paths as given)."""
    tag = re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:48]
    return tag or "job"


def partial_dir(output_dir: str, job_id: str) -> str:
    """The staging folder of job ``job_id`` inside ``output_dir``."""
    return os.path.join(resolve(output_dir), PARTIAL_PREFIX + safe_job_tag(job_id))


class StagedOutput:
    """The output folder of one job: files are staged in a hidden partial folder and committed at the end."""

    def __init__(self, output_dir: str, job_id: str) -> None:
        self.root = resolve(output_dir)
        self.partial = partial_dir(self.root, job_id)
        self.created_root = False
        self.committed: list[str] = []

    def open(self) -> None:
        """Create the output folder (if needed) and a fresh partial folder inside it."""
        from ..media.writer import prepare_output_dir

        self.created_root = not os.path.exists(self.root)
        prepare_output_dir(self.root, overwrite=True)  # emptiness was checked by check_output before any work
        if resolve(self.root) != self.root:
            raise OutputError(f"output folder {self.root} changed while the job started", field="output_dir",
                              hint="do not replace the output folder by a link while a job starts")
        try:
            os.mkdir(self.partial)
        except FileExistsError as exc:
            raise OutputError(f"job folder {self.partial} already exists", field="output_dir",
                              hint="another job with the same id writes here; use a new job id or delete it") from exc
        except OSError as exc:
            raise OutputError(f"cannot create {self.partial}: {exc}", hint="check folder permissions",
                              field="output_dir") from exc

    def staged_path(self, name: str) -> str:
        """Where the file ``name`` is written while the job runs."""
        return os.path.join(self.partial, _plain_name(name))

    def final_path(self, name: str) -> str:
        """Where the file ``name`` ends up once the job is complete."""
        path = os.path.join(self.root, _plain_name(name))
        if resolve(os.path.dirname(path)) != self.root:
            raise OutputError(f"refusing to write {path}: it is outside {self.root}", field="output_dir")
        return path

    def commit(self) -> dict[str, str]:
        """Move every staged file into the output folder; returns {staged path: final path}."""
        moved: dict[str, str] = {}
        mode = _default_file_mode(self.partial)
        for name in sorted(os.listdir(self.partial)):
            staged = os.path.join(self.partial, name)
            if not os.path.isfile(staged) or name.startswith("."):
                continue  # the frame writer's temporary files; the partial folder is removed below
            final = self.final_path(name)
            if os.path.isdir(final):
                raise OutputError(f"cannot replace folder {final} by a file", hint="move that folder away",
                                  field="output_dir")
            try:
                os.chmod(staged, mode)  # staged files come from mkstemp (0600); frames are for sharing
                os.replace(staged, final)
            except OSError as exc:
                raise OutputError(f"cannot move {name} into {self.root}: {exc}", field="output_dir",
                                  hint="check free disk space and folder permissions") from exc
            moved[staged] = final
            self.committed.append(final)
        shutil.rmtree(self.partial, ignore_errors=True)
        return moved

    def discard(self) -> None:
        """Remove the partial folder (and the output folder when this job created it and it is empty)."""
        remove_partial(self.partial, self.root if self.created_root else "")


def remove_partial(partial: str, created_root: str = "") -> None:
    """Delete a job's partial folder, then ``created_root`` if it is left empty. Used by jobs and by the client."""
    if os.path.basename(partial).startswith(PARTIAL_PREFIX):  # never delete anything that is not ours
        shutil.rmtree(partial, ignore_errors=True)
    if created_root:
        try:
            os.rmdir(created_root)  # fails (and is left alone) when anything is in it
        except OSError:
            pass


def _default_file_mode(folder: str) -> int:
    """The permissions a new file gets in ``folder`` (0666 less the umask), read from a probe file (thread-safe)."""
    probe = os.path.join(folder, ".mode-probe")
    fd = os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        os.remove(probe)


def _plain_name(name: str) -> str:
    """``name`` if it is one plain file name (no folders, no ``..``), else ``OutputError``."""
    bad = (not name or name in (".", "..") or "\0" in name or os.path.basename(name) != name
           or (os.altsep is not None and os.altsep in name))
    if bad:
        raise OutputError(f"refusing to write file {name!r}: not a plain file name", field="output_dir")
    return name
