"""Blender's Vector pass for the consistency report: the exact motion of every pixel, one EXR per frame.

The backend's report (t2vz_backend/quality/vectors.py) reads these instead of estimating the motion, so a job made
from scene passes is measured against how the scene really moves. Rendered with the other data passes' settings
(render_settings: Cycles on the CPU, one sample, pixel-centre filter, motion blur off, which the Vector pass
needs); files are ``<out_dir>/vector_<frame>.exr`` with channels X, Y, Z, W (pixels; X, Y towards the previous
frame, Z, W from the next).

Before Blender 4.5 the compositor keeps only three components of a vector, so there the File Output node would drop
W: each frame's render is saved itself, as a multilayer OpenEXR whose ``<view layer>.Vector.X`` … ``W`` channels the
backend reads the same way (``core/compat.compositor_keeps_vector_w``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import bpy

from ..core import compat
from . import compositor, pass_render
from .errors import SceneError
from .pass_render import render_exr_passes
from .render_settings import ScopedSettings, check_scene, data_pass_settings, pass_view_layer

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
        if compat.compositor_keeps_vector_w(bpy.app.version):
            frames = render_exr_passes(scene, frame_start, frame_end, scratch,
                                       [("vector", compositor.VECTOR_SOCKETS)], _enable_vectors, vectors=("vector",))
            files = [entry["vector"] for entry in frames]
        else:
            files = _render_multilayer(scene, frame_start, frame_end, scratch)
        paths = []
        for frame, file in zip(range(frame_start, frame_end + 1), files):
            path = os.path.join(out_dir, f"{FILE_PREFIX}{frame:04d}.exr")
            shutil.move(file, path)
            paths.append(path)
        return paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _render_multilayer(scene: bpy.types.Scene, frame_start: int, frame_end: int, scratch: str) -> list[str]:
    """Each frame's render saved as a multilayer EXR, the compositor off (the user's nodes do not run either)."""
    view_layer = pass_view_layer(scene)
    files = []
    with data_pass_settings(scene, view_layer, frame_start, frame_end, os.path.join(scratch, "vector_")) as scoped:
        _enable_vectors(scoped, view_layer)
        render = scene.render
        scoped.set(render, "use_compositing", False)
        scoped.set(render, "use_file_extension", True)
        scoped.set(render.image_settings, "file_format", "OPEN_EXR_MULTILAYER")
        scoped.set(render.image_settings, "color_depth", "32")
        for frame in range(frame_start, frame_end + 1):
            frame_dir = os.path.join(scratch, f"frame_{frame - frame_start:06d}")  # a still's name has no number
            os.makedirs(frame_dir, exist_ok=True)
            scoped.set(render, "filepath", os.path.join(frame_dir, "vector"))
            scene.frame_set(frame)
            pass_render._render(scene, write_still=True)
            path = compositor.find_output(frame_dir, "vector")
            if path is None:
                raise SceneError(f"the render of frame {frame} wrote no Vector pass into {frame_dir}",
                                 "check free disk space and that the scene renders with F12 in Cycles")
            files.append(path)
    return files
