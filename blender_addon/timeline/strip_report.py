"""A generated strip's consistency report: its headline kept on the strip, or read from the frames' report.json."""

from __future__ import annotations

import json
import os
from typing import Any

import bpy

from ..backend.t2vz_backend.service import consistency

REPORT_KEY = "t2vz_report"  # custom property: the Report event's headline and files, as JSON
_read_cache: dict[str, tuple[float, dict | None]] = {}  # report.json path -> (mtime, headline)


def fields(event: Any) -> dict[str, Any]:
    """A ``Report`` event as a plain dict (its protocol fields, without the job id)."""
    return {name: value for name, value in event.to_dict().items() if name not in ("type", "job_id")}


def store(strip: Any, event: Any) -> None:
    """Keep a job's ``Report`` event on its strip (the Consistency panel draws it without reading files)."""
    strip[REPORT_KEY] = json.dumps(fields(event))


def headline(strip: Any) -> dict[str, Any] | None:
    """The strip's report headline (the fields of ``protocol.Report``), or None when it has no report.

    A strip made without the report option still shows one made later with ``python -m t2vz_backend report`` on
    its frames' folder (read once per change of the file).
    """
    text = strip.get(REPORT_KEY) if strip is not None else None
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and os.path.isfile(data.get("image", "")):
            return data
    directory = getattr(strip, "directory", "")
    return _from_file(os.path.join(bpy.path.abspath(directory), "report.json")) if directory else None


def _from_file(path: str) -> dict[str, Any] | None:
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return None
    cached = _read_cache.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        folder = os.path.dirname(path)
        event = consistency.headline(document, path=path, image=os.path.join(folder, "report.png"),
                                     page=os.path.join(folder, "report.html"))
        data = fields(event)
    except (OSError, ValueError, KeyError, TypeError):
        data = None
    _read_cache[path] = (mtime, data)
    return data

