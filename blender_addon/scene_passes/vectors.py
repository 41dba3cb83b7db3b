"""Blender's Vector pass for the consistency report: the exact motion of every pixel, one EXR per frame.

The backend's report (t2vz_backend/quality/vectors.py) reads these instead of estimating the motion, so a job made
from scene passes is measured against how the scene really moves. Rendered with the other data passes' settings
(render_settings: Cycles on the CPU, one sample, pixel-centre filter, motion blur off, which the Vector pass
needs); files are ``<out_dir>/vector_<frame>.exr`` with channels X, Y, Z, W (pixels; X, Y towards the previous
frame, Z, W from the next).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import bpy

from . import compositor
from .pass_render import render_exr_passes
from .render_settings import ScopedSettings, check_scene

FILE_PREFIX = "vector_"


def _enable_vectors(scoped: ScopedSettings, view_layer: bpy.types.ViewLayer) -> None:
    scoped.set(view_layer, "use_pass_vector", True)


def render_vector_pass(scene: bpy.types.Scene, frame_start: int, frame_end: int, out_dir: str) -> list[str]:
    """Render the Vector pass of frames ``frame_start..frame_end`` into ``out_dir``; the EXR paths in frame order."""
    check_scene(scene, frame_start, frame_end)
    out_dir = bpy.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="t2vz_vectors_")
    try:
        frames = render_exr_passes(scene, frame_start, frame_end, scratch, [("vector", compositor.VECTOR_SOCKETS)],
                                   _enable_vectors, vectors=("vector",))
        paths = []
        for frame, files in zip(range(frame_start, frame_end + 1), frames):
            path = os.path.join(out_dir, f"{FILE_PREFIX}{frame:04d}.exr")
            shutil.move(files["vector"], path)
            paths.append(path)
        return paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
