"""The ``t2vz.json`` sidecar: everything needed to reproduce (or redo) a job, written next to its frames.

It holds the request exactly as the protocol serialises it (so ``python -m t2vz_backend run`` can read its
``request`` back), the job's timings, the frames written, the device and the versions of the libraries that made
them. The add-on reads it to offer "redo from strip".
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any

from ..protocol import PROTOCOL_VERSION, JobRequest

SIDECAR_NAME = "t2vz.json"
SIDECAR_FORMAT = 1
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
    return {
        "format": SIDECAR_FORMAT,
        "job_id": job_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "request": request.to_dict(),
        "frames": frames,
        "first_frame": first_frame,
        "timings": timings,
        "device": device,
        "versions": library_versions(),
        "platform": platform.platform(),
    }


def write_sidecar(path: str, data: dict[str, Any]) -> str:
    """Write ``data`` as indented JSON, atomically (temporary file + rename); returns ``path``."""
    folder = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".t2vz_", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, allow_nan=False)
            handle.write("\n")
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    return path


def read_sidecar(path: str) -> dict[str, Any]:
    """Read a sidecar back (its ``request`` entry decodes with ``protocol.request_from_dict``)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
