"""``python -m t2vz_backend assemble DIR``: check that a folder rendered in ranges is complete, then make its preview.

The last task of a farm job (the Flamenco job type's ``preview`` task, integrations/flamenco/t2vz.js) runs this
after every range task: it refuses a folder with a missing frame (naming the gap), so a job whose ranges did not all
land never looks finished, and writes ``preview.mp4`` (or ``.gif``) atomically from the frames in order.
"""

from __future__ import annotations

import os

from ..errors import OutputError
from .outputs import resolve


def frames_in(folder: str) -> dict[int, str]:
    """{global index: path} of the frame files (``frame_000042.png``) in ``folder``."""
    from ..media.writer import FRAME_PREFIX

    out = {}
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        digits = stem[len(FRAME_PREFIX):]
        if stem.startswith(FRAME_PREFIX) and ext == ".png" and digits.isdigit():
            out[int(digits)] = os.path.join(folder, name)
    return out


def assemble(folder: str, *, first: int = 0, count: int = 0, fps: float = 8.0, preview: str = "mp4") -> str:
    """Check frames ``first .. first + count - 1`` (``count`` 0: from the lowest to the highest present) are all
    in ``folder`` and write ``preview.<preview>`` from them; returns its path."""
    from ..media.writer import write_preview

    root = resolve(folder)
    if not os.path.isdir(root):
        raise OutputError(f"{root} is not a folder", field="output_dir", hint="give the job's output folder")
    present = frames_in(root)
    if not present:
        raise OutputError(f"{root} holds no frames", field="output_dir", hint="render the job's ranges first")
    first = first if count else min(present)
    last = first + count - 1 if count else max(present)
    missing = [i for i in range(first, last + 1) if i not in present]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise OutputError(f"{len(missing)} of {last - first + 1} frames are missing in {root} ({shown})",
                          field="output_dir", hint="render the ranges that hold them again, then assemble")
    return write_preview([present[i] for i in range(first, last + 1)], os.path.join(root, f"preview.{preview}"),
                         fps)
