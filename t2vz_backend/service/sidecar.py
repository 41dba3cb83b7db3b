"""The ``t2vz.json`` sidecar: everything needed to reproduce (or redo) a job, written next to its frames.

It holds the request exactly as the protocol serialises it (so ``python -m t2vz_backend run`` can read its
``request`` back), the job's timings, the frames written, the device and the versions of the libraries that made
them. The add-on reads it to offer "redo from strip".

Frame ranges of one job rendered into one folder (a farm's split, a resume, or a rerun of some frames) share one
sidecar: when a commit finds a sidecar of the **same job** (the same request apart from ``EXECUTION_FIELDS``, which
never change a frame), ``merge_sidecar`` makes one that lists every frame of the job the folder holds, the ranges
committed (``ranges``: job id, first, last, created, timings) and the request with ``frame_start``/``frame_end``
spanning those frames, so redoing it renders exactly what the folder holds. Commits are serialised by the folder
lock (service/staging.py), so concurrent ranges never lose each other's entries. A sidecar of another job is
replaced (with ``overwrite``) or refuses the commit (without). ``committed_frames`` tells a farm which frames of a
job a folder already holds.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import sys
import time
from typing import Any

from ..media.atomic import write_json
from ..protocol import PROTOCOL_VERSION, JobRequest

SIDECAR_NAME = "t2vz.json"
SIDECAR_FORMAT = 1
# Request fields that say where and how a job runs, never what its frames look like (README § Reproducibility).
# The consistency report's options only measure the frames (``baseline`` changes them, so it is not here).
EXECUTION_FIELDS = frozenset({"output_dir", "frame_start", "frame_end", "overwrite", "chunk_size", "vae_batch",
                              "offline", "allow_pickle", "preview", "fps",
                              "report", "report_clip", "report_vectors", "report_compare"})
_FRAME_NAME = re.compile(r"^frame_(\d{6,})\.png$")
_LIBRARIES = ("torch", "diffusers", "transformers")


def package_version() -> str:
    """The t2vz version: the package's ``__version__``, else the installed distribution's, else the source tree's
    ``pyproject.toml``, else "0+unknown"."""
    from importlib import metadata

    package = sys.modules.get(__name__.rsplit(".", 2)[0])  # t2vz_backend (or the add-on's bundled copy)
    if getattr(package, "__version__", None):
        return str(package.__version__)
    try:
        return metadata.version("t2vz")
    except metadata.PackageNotFoundError:
        pass
    repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    pyproject = os.path.join(repository, "pyproject.toml")
    try:
        import tomllib

        with open(pyproject, "rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (ImportError, OSError, ValueError):
        return "0+unknown"
    return str(project.get("version", "0+unknown")) if project.get("name") == "t2vz" else "0+unknown"


def library_versions() -> dict[str, str]:
    """Versions of t2vz, Python and the ML libraries (only those already imported or importable)."""
    versions = {"t2vz": package_version(), "python": platform.python_version(), "protocol": str(PROTOCOL_VERSION)}
    for name in _LIBRARIES:
        try:
            versions[name] = str(importlib.import_module(name).__version__)
        except ImportError:
            versions[name] = "not installed"
    return versions


def build_sidecar(request: JobRequest, *, job_id: str, frames: list[str], first_frame: int,
                  timings: dict[str, float], device: dict[str, Any]) -> dict[str, Any]:
    """The sidecar's content; ``frames`` are file names relative to the sidecar."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "format": SIDECAR_FORMAT,
        "job_id": job_id,
        "created": created,
        "request": request.to_dict(),
        "frames": frames,
        "first_frame": first_frame,
        "ranges": [{"job_id": job_id, "first": first_frame, "last": _index(frames[-1]) if frames else first_frame,
                    "created": created, "timings": timings}],
        "timings": timings,
        "device": device,
        "versions": library_versions(),
        "platform": platform.platform(),
    }


def job_key(request: dict[str, Any]) -> dict[str, Any]:
    """What makes two requests the same job: every field except ``EXECUTION_FIELDS``."""
    return {k: v for k, v in request.items() if k not in EXECUTION_FIELDS}


def same_job(sidecar: dict[str, Any], request: dict[str, Any]) -> bool:
    """True when ``sidecar`` describes the job of serialised ``request``."""
    theirs = sidecar.get("request")
    return isinstance(theirs, dict) and job_key(theirs) == job_key(request)


def merge_sidecar(existing: dict[str, Any], new: dict[str, Any], present: set[str]) -> dict[str, Any]:
    """``new`` extended by the frames and ranges of ``existing`` (the same job) that are still in ``present``."""
    frames = {name for name in _list(existing, "frames") if isinstance(name, str) and name in present}
    frames = sorted(frames | set(new["frames"]), key=_index)
    ranges = [r for r in _list(existing, "ranges") if isinstance(r, dict)] + new["ranges"]
    request = dict(new["request"], frame_start=_index(frames[0]), frame_end=_index(frames[-1]))
    return {**new, "request": request, "frames": frames, "first_frame": _index(frames[0]), "ranges": ranges}


def committed_frames(output_dir: str, request: JobRequest) -> dict[int, str]:
    """{global frame index: path} of the frames of ``request``'s job that ``output_dir`` already holds.

    The sidecar is the record: a frame counts when the sidecar of the same job lists it and its file exists (frames
    are committed before the sidecar, so a listed frame is complete). Empty when there is no such sidecar.
    """
    try:
        sidecar = read_sidecar(os.path.join(output_dir, SIDECAR_NAME))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(sidecar, dict) or not same_job(sidecar, request.to_dict()):
        return {}
    return listed_frames(output_dir, sidecar)


def listed_frames(output_dir: str, sidecar: dict[str, Any]) -> dict[int, str]:
    """{global frame index: path} of the frames ``sidecar`` lists that exist in ``output_dir``, in frame order."""
    paths = {_index(n): os.path.join(output_dir, n) for n in _list(sidecar, "frames") if _FRAME_NAME.match(str(n))}
    return {index: path for index, path in sorted(paths.items()) if os.path.isfile(path)}


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _index(name: str) -> int:
    match = _FRAME_NAME.match(name)
    return int(match.group(1)) if match else -1


def write_sidecar(path: str, data: dict[str, Any]) -> str:
    """Write ``data`` as indented JSON through the one atomic write path (``OutputError`` on failure)."""
    return write_json(path, data)


def read_sidecar(path: str) -> dict[str, Any]:
    """Read a sidecar back (its ``request`` entry decodes with ``protocol.request_from_dict``)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
