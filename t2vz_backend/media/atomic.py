"""The one way t2vz writes a file: complete or not at all, and a failure is an ``OutputError`` with a hint.

``atomic_write(path, write)`` lets ``write`` fill a hidden temporary file next to ``path`` and then moves it over
``path`` with ``os.replace``, which is atomic on one file system: a reader (Blender's sequencer, another job, a
cleanup) sees the old file or the new one, never a half-written one. Any ``OSError`` on the way (a full disk, a file
size limit, a read-only mount, a vanished folder) removes the temporary file and becomes an ``OutputError`` whose
hint says what to do about that particular failure. The temporary file is created with mode 0666 less the umask,
so the final file has the permissions any new file in that folder gets.

Standard library only: frames and previews (media/writer.py), the sidecar and staging records (service/) and the
add-on's scene passes all write through here.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import OutputError

TEMP_PREFIX = ".t2vz-tmp-"  # hidden, and known: output-folder checks and commits skip these names

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or choose a folder on another disk",
    errno.EFBIG: "the file is larger than this system allows (a file size limit such as `ulimit -f`, or the file "
                 "system's maximum): raise the limit or choose another disk",
    errno.EROFS: "the file system is read-only: choose a folder you can write to",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.ENOENT: "the folder disappeared while writing: check that nothing else removes it",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter output folder",
}
if hasattr(errno, "EDQUOT"):
    _HINTS[errno.EDQUOT] = "the disk quota is exceeded: free some space or ask for a larger quota"


def write_hint(exc: OSError) -> str:
    """What to do about a failed write, from its errno."""
    return _HINTS.get(exc.errno or 0, "check free disk space and folder permissions")


def output_error(action: str, path: str | os.PathLike, exc: OSError, field: str = "output_dir") -> OutputError:
    """The ``OutputError`` for ``action`` ("write", "move", "create") on ``path`` failing with ``exc``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"cannot {action} {os.fspath(path)}: {reason}", hint=write_hint(exc), field=field)


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any], *, field: str = "output_dir") -> str:
    """Call ``write(temp_path)`` on a new hidden file next to ``path``, then move it over ``path``; returns ``path``.

    On any failure the temporary file is removed and ``path`` is untouched; an ``OSError`` is raised again as an
    ``OutputError`` naming ``path`` (other exceptions propagate unchanged).
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    stem, suffix = os.path.splitext(name)
    temp = ""
    try:
        temp = _create_temp(folder or ".", stem, suffix)
        write(temp)
        os.replace(temp, path)
        temp = ""
    except OSError as exc:
        raise output_error("write", path, exc, field) from exc
    finally:
        if temp:
            try:
                os.remove(temp)
            except OSError:
                pass
    return path


def write_bytes(path: str | os.PathLike, data: bytes, *, field: str = "output_dir") -> str:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""

    def fill(temp: str) -> None:
        with open(temp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, fill, field=field)


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2, field: str = "output_dir") -> str:
    """Write ``data`` as JSON (UTF-8, no NaN, a final newline) to ``path`` atomically."""
    separators = None if indent is not None else (",", ":")
    text = json.dumps(data, indent=indent, separators=separators, allow_nan=False) + "\n"
    return write_bytes(path, text.encode("utf-8"), field=field)


def _create_temp(folder: str, stem: str, suffix: str) -> str:
    """A new, empty, hidden file in ``folder`` (mode 0666 less the umask); its path."""
    for _ in range(100):
        temp = os.path.join(folder, f"{TEMP_PREFIX}{stem[:80]}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return temp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)
