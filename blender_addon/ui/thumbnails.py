"""Pictures in the panels: the live thumbnail of a running job and a report's contact sheet, as preview icons.

The backend sends a small PNG of every finished frame (``Preview`` events); ``runner`` keeps the newest. The job's
timer (operators/generate.py, main thread) calls ``update`` after draining the events: the PNG is written to a
private temporary folder and (re)loaded into a ``bpy.utils.previews`` collection, so the panel's draw code only
looks an icon up. Files shown after a job (``report.png``) load the same way, once per change of the file.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from typing import Any

import bpy
import bpy.utils.previews

_state: dict[str, Any] = {"previews": None, "folder": "", "live": None}  # live: (job id, frame index, key)
_stamps: dict[str, float] = {}  # file icon key -> the file's mtime when it was loaded


def _collection() -> Any:
    if _state["previews"] is None:
        _state["previews"] = bpy.utils.previews.new()
        _state["folder"] = tempfile.mkdtemp(prefix="t2vz_thumbnails_")
    return _state["previews"]


def _load(key: str, path: str) -> Any:
    previews = _collection()
    if key in previews:
        preview = previews[key]
        preview.reload()
        return preview
    return previews.load(key, path, "IMAGE")


def update(job: Any) -> None:
    """Show ``job``'s newest frame thumbnail (main thread; called by the job's timer after ``runner.pump``)."""
    event = getattr(job, "preview", None)
    if event is None or not event.png_base64:
        return
    shown = _state["live"]
    if shown is not None and shown[:2] == (job.job_id, event.index):
        return
    _collection()
    path = os.path.join(_state["folder"], "live.png")
    with open(path, "wb") as handle:
        handle.write(base64.b64decode(event.png_base64))
    key = "live"
    _load(key, path)
    _state["live"] = (job.job_id, event.index, key)


def live_icon(job: Any) -> int:
    """The icon of ``job``'s newest frame, or 0 before its first one."""
    shown = _state["live"]
    if shown is None or shown[0] != getattr(job, "job_id", None) or _state["previews"] is None:
        return 0
    return _state["previews"][shown[2]].icon_id


def file_icon(path: str) -> int:
    """The icon of an image file (a report's contact sheet); 0 when it is missing. Reloaded when the file changes."""
    try:
        stamp = os.path.getmtime(path)
    except OSError:
        return 0
    key = f"file:{path}"
    previews = _collection()
    if key in previews and _stamps.get(key) == stamp:
        return previews[key].icon_id
    _stamps[key] = stamp
    return _load(key, path).icon_id


def frame_of_live() -> int:
    """The frame index the live thumbnail shows (-1: none)."""
    return _state["live"][1] if _state["live"] is not None else -1


classes = ()


def register() -> None:
    pass  # the collection is made on first use, so registering stays cheap


def unregister() -> None:
    previews, folder = _state["previews"], _state["folder"]
    _state.update(previews=None, folder="", live=None)
    _stamps.clear()
    if previews is not None:
        bpy.utils.previews.remove(previews)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
