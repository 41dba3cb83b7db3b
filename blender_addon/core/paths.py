"""Job folders, strip names and source-frame staging (no bpy).

A job lives in ``<output root>/<job name>/``: ``frames/`` (the backend's output, what the strip points to),
``input/`` (the source frames, linked in timeline order), ``controls/`` (scene passes) and ``request.json``.
The folder stays after the job, so strips keep working and Redo can run the same request again.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import T2VZAddonError

STRIP_NAME_MAX = 63  # Blender's name limit


def slug(text: str, limit: int = 30) -> str:
    """A file-name-safe short form of ``text``: lowercase words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = "-".join(words)[:limit].strip("-")
    return out or "untitled"


def strip_name(prompt: str, seed: int) -> str:
    """``"<seed>_<prompt start>"``, within Blender's name length."""
    return f"{seed}_{prompt.strip()[:30]}"[:STRIP_NAME_MAX] if prompt.strip() else f"{seed}_t2vz"


def new_job_dir(root: str | os.PathLike, prompt: str, seed: int, now: datetime.datetime | None = None) -> Path:
    """Create and return a fresh, empty job folder under ``root`` (never reusing an existing one)."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise T2VZAddonError(f"cannot create the output folder {root} ({exc.strerror})",
                             "choose another output folder in the add-on preferences",
                             setting="prefs.output_root") from exc
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}_{seed}_{slug(prompt)}"
    for n in range(1000):
        path = root / (base if n == 0 else f"{base}_{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise T2VZAddonError(f"too many job folders named {base} in {root}", "clean up the output folder")


def stage_frames(files: Sequence[str], folder: str | os.PathLike) -> Path:
    """Put ``files`` into ``folder`` as 000000.ext, 000001.ext, ... (symlinks, else hard links, else copies).

    The backend reads a folder in natural order, so this fixes the order and drops files the strip does not show.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(files):
        target = folder / f"{index:06d}{Path(source).suffix.lower()}"
        _link_or_copy(os.path.abspath(source), target)
    return folder


def _link_or_copy(source: str, target: Path) -> None:
    for link in (os.symlink, os.link):
        try:
            link(source, target)
            return
        except (OSError, NotImplementedError):  # no symlink rights (Windows), other file system, ...
            continue
    shutil.copyfile(source, target)


def frame_list_range(text: str) -> tuple[int, int]:
    """Parse ``"A-B"`` (inclusive timeline frames, A <= B; negative frames allowed as ``-5--1``)."""
    match = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", text)
    if not match:
        raise T2VZAddonError(f"frame range {text!r} is not of the form A-B", "write it like 1-48")
    first, last = int(match.group(1)), int(match.group(2))
    if first > last:
        raise T2VZAddonError(f"frame range {text!r} is empty", f"write it as {last}-{first}")
    return first, last
