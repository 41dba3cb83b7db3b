"""Input media for farm workers without shared storage: the driver ships them, each worker unpacks them once.

A ControlNet or Pix2Pix job reads frames (and a text->video job with background smoothing reads masks) from paths
on the driver's machine, which a worker on another machine does not have. The driver packs every file the job
reads into one object in Ray's object store (``ray.put``, once per job); a worker materialises it into a private
temporary folder, keyed by its digest so every range of the job on that worker reuses one copy, and renders the
request with its paths pointing there. File names are kept, so the frame order the reader sees is the same.
With ``--shared-storage`` nothing is shipped: the paths must be valid on every worker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Any

from ..errors import InputError
from ..protocol import AnyRequest, ControlVideoRequest, EditVideoRequest, TextToVideoRequest

MAX_SHIP_BYTES = 2 * 1024**3  # beyond this, shipping through the object store is the wrong tool
_KEEP = 2  # unpacked jobs kept per worker process
_UNPACKED: dict[str, str] = {}  # digest -> folder (insertion order = age)


def source_paths(request: AnyRequest) -> dict[str, str]:
    """{request field: path} of every file or folder the job reads."""
    if isinstance(request, EditVideoRequest):
        return {"input": request.input} if request.input else {}
    if isinstance(request, ControlVideoRequest):
        return {f"controls[{i}].path": c.path for i, c in enumerate(request.controls) if c.path}
    if isinstance(request, TextToVideoRequest) and request.mask_dir:
        return {"mask_dir": request.mask_dir}
    return {}


def pack(request: AnyRequest) -> dict[str, Any] | None:
    """The job's input files as one picklable bundle (None when it reads none)."""
    items: dict[str, Any] = {}
    digest = hashlib.sha256()
    total = 0
    for name, path in source_paths(request).items():
        real = os.path.realpath(os.path.expanduser(path))
        if os.path.isdir(real):
            files = {entry: _read(os.path.join(real, entry), name) for entry in sorted(os.listdir(real))
                     if os.path.isfile(os.path.join(real, entry))}
            items[name] = {"kind": "dir", "name": os.path.basename(real), "files": files}
        else:
            items[name] = {"kind": "file", "name": os.path.basename(real), "files": {os.path.basename(real):
                                                                                     _read(real, name)}}
        for entry, data in items[name]["files"].items():
            total += len(data)
            digest.update(f"{name}\0{entry}\0{len(data)}\0".encode())
            digest.update(data)
        if total > MAX_SHIP_BYTES:
            raise InputError(f"the job's input media are larger than {MAX_SHIP_BYTES // 1024**3} GiB", field=name,
                             hint="put them on storage every worker can read and use --shared-storage")
    return {"digest": digest.hexdigest()[:32], "items": items} if items else None


def ship_inputs(ray: Any, request: AnyRequest) -> Any:
    """``ray.put`` of the bundle (None when the job reads no media)."""
    bundle = pack(request)
    return None if bundle is None else ray.put(bundle)


def materialize(job: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    """``job`` (a request dict) with its source paths pointing at this worker's copy of ``bundle``."""
    folder = _UNPACKED.get(bundle["digest"])
    if folder is None or not os.path.isdir(folder):
        folder = _unpack(bundle)
    job = dict(job)
    for name, item in bundle["items"].items():
        local = os.path.join(folder, _slot(name), item["name"])
        if name.startswith("controls["):
            index = int(name[len("controls["):name.index("]")])
            controls = [dict(c) for c in job["controls"]]
            controls[index]["path"] = local
            job["controls"] = controls
        else:
            job[name] = local
    return job


def _unpack(bundle: dict[str, Any]) -> str:
    while len(_UNPACKED) >= _KEEP:
        shutil.rmtree(_UNPACKED.pop(next(iter(_UNPACKED))), ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="t2vz-farm-inputs-")
    for name, item in bundle["items"].items():
        base = os.path.join(folder, _slot(name))
        target = os.path.join(base, item["name"]) if item["kind"] == "dir" else base
        os.makedirs(target, exist_ok=True)
        for entry, data in item["files"].items():
            if os.path.basename(entry) != entry or entry in (".", ".."):
                raise InputError(f"refusing input file name {entry!r}", field=name)
            with open(os.path.join(target, entry), "wb") as handle:
                handle.write(data)
    _UNPACKED[bundle["digest"]] = folder
    return folder


def _slot(name: str) -> str:
    """A folder name for one request field (``controls[1].path`` -> ``controls_1_path``)."""
    return "".join(c if c.isalnum() else "_" for c in name)


def _read(path: str, name: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field=name, hint="check the path") from None
