"""Put a finished job's frames on the timeline as an image-sequence strip, with its request stored on it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import bpy

from ..core import compat
from ..core.channels import find_free_channel
from ..core.errors import T2VZAddonError

REQUEST_KEY = "t2vz_request"  # custom property: the job's request JSON (for Redo and Show Parameters)
JOB_KEY = "t2vz_job"  # custom property: the job folder


def add_image_strip(scene: Any, files: Sequence[str], name: str, frame_start: int, min_channel: int = 1,
                    request_json: str = "", job_dir: str = "") -> Any:
    """A new image strip showing ``files`` in order from ``frame_start`` on the first free channel >= min_channel.

    All files must be in one folder (a job's ``frames/``). Prefetch is off while the strip is made.
    """
    if not files:
        raise T2VZAddonError("the job wrote no frames", "run it again; if it repeats, check the backend log")
    folder = os.path.dirname(os.path.abspath(files[0]))
    if any(os.path.dirname(os.path.abspath(f)) != folder for f in files):
        raise T2VZAddonError("the job's frames are not in one folder", "this is a bug; please report it")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise T2VZAddonError(f"{len(missing)} frames of the job are missing (first: {missing[0]})",
                             "run the job again; something removed its output")
    sed = scene.sequence_editor or scene.sequence_editor_create()
    channel = find_free_channel(compat.occupied_ranges(scene), frame_start, frame_start + len(files), min_channel)
    with compat.prefetch_off(sed):
        strip = compat.top_strips(sed).new_image(name=name, filepath=os.path.abspath(files[0]), channel=channel,
                                                 frame_start=frame_start, fit_method="ORIGINAL")
        for path in files[1:]:
            strip.elements.append(os.path.basename(path))
    if bpy.data.filepath:  # keep the project movable: //t2vz/... rather than an absolute path
        try:
            relative = bpy.path.relpath(strip.directory)
            strip.directory = relative if relative.endswith(("/", "\\")) else relative + "/"  # Blender's form
        except ValueError:  # another drive on Windows
            pass
    if request_json:
        strip[REQUEST_KEY] = request_json
    if job_dir:
        strip[JOB_KEY] = job_dir
    return strip


def strip_request(strip: Any) -> dict | None:
    """The request stored on a generated strip, parsed; None for other strips."""
    text = strip.get(REQUEST_KEY) if strip is not None else None
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def strip_frame_start(strip: Any) -> int:
    return compat.strip_range(strip)[0]
