"""Depth control maps from the scene: Cycles Z or Mist pass -> one near/far per shot -> 16-bit grey PNG per frame.

Why per shot: per-frame min-max re-maps the grey levels whenever the nearest or farthest visible point changes, so
static geometry "breathes" as objects move and the generated video flickers (docs/blender.md §4). The mapping is the
backend's own, called here: ``t2vz_backend.conditions.depth`` (numpy only, shipped inside the add-on) finds a shot's
near/far and maps each frame linearly: near -> white, far -> black, background (no geometry, Blender's ~1e10 Z) ->
black; values outside near..far are clamped. This module only renders the passes and writes 8/16-bit PNGs.

Sources:
- ``"z"``: the Z pass, raw distances along the camera axis. near/far default to the min/max of the geometry's depth
  over ALL frames of the range (one extra read of the EXRs, no extra render); either can be given instead.
- ``"mist"``: the Mist pass, already 0 at ``world.mist_settings.start`` and 1 at ``start + depth``. near/far, when
  given, replace start and start + depth for the render; the falloff is set to linear. Needs a World.
- ``"auto"``: Mist when the view layer already has the Mist pass enabled and the scene has a World (the user has set
  mist up), else Z.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence

import bpy
import numpy as np

from ..backend.t2vz_backend.conditions.depth import depth_range, normalize_depth_shot
from ..backend.t2vz_backend.errors import InputError
from . import compositor
from .errors import SceneError
from .pass_render import render_exr_passes
from .png import write_png
from .render_settings import ScopedSettings, check_scene, pass_view_layer

SOURCES = ("auto", "z", "mist")
FILE_PREFIX = "depth_"


def depth_levels(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Grey levels 0..1 of one frame (the backend's per-shot normalisation with this shot's near/far)."""
    return normalize_depth_shot([depth], near=near, far=far, dtype="float32")[0][..., 0]


def quantise(levels: np.ndarray, bit_depth: int) -> np.ndarray:
    """0..1 levels as uint8 (``bit_depth`` 8) or uint16 (16) grey values."""
    top = 255 if bit_depth == 8 else 65535
    return np.floor(np.clip(levels, 0.0, 1.0) * top + 0.5).astype(np.uint8 if bit_depth == 8 else np.uint16)


def resolve_source(scene: bpy.types.Scene, source: str) -> str:
    """"z" or "mist" for ``source``; ``SceneError`` for an unknown source or Mist without a World."""
    if source not in SOURCES:
        raise SceneError(f"depth source {source!r} is unknown", f"use one of {', '.join(SOURCES)}")
    if source == "auto":
        return "mist" if scene.world is not None and pass_view_layer(scene).use_pass_mist else "z"
    if source == "mist" and scene.world is None:
        raise SceneError(f"scene '{scene.name}' has no World, which holds the mist settings",
                         "add a World in Scene Properties > World, or use the Z depth source")
    return source


def _check_range(near: float | None, far: float | None) -> None:
    """``SceneError`` unless near/far are finite, non-negative and near < far (where given)."""
    for name, value in (("near", near), ("far", far)):
        if value is not None and not (math.isfinite(value) and value >= 0.0):
            raise SceneError(f"depth {name} = {value} is not a distance", "use a distance of 0 or more")
    if near is not None and far is not None and far <= near:
        raise SceneError(f"depth far ({far}) must lie beyond near ({near})", "set far greater than near")


def _configure(scene: bpy.types.Scene, source: str, near: float | None, far: float | None):
    """The scoped set-up for the render: enable the pass; for Mist, linear falloff and the requested range."""
    def configure(scoped: ScopedSettings, view_layer: bpy.types.ViewLayer) -> None:
        if source == "z":
            scoped.set(view_layer, "use_pass_z", True)
            return
        scoped.set(view_layer, "use_pass_mist", True)
        mist = scene.world.mist_settings
        scoped.set(mist, "falloff", "LINEAR")
        start = mist.start if near is None else near
        if near is not None:
            scoped.set(mist, "start", near)
        if far is not None:
            if far <= start:
                raise SceneError(f"depth far ({far}) must lie beyond the mist start ({start})",
                                 "set far greater than the mist start or near")
            scoped.set(mist, "depth", far - start)
    return configure


def render_depth_maps(scene: bpy.types.Scene, frame_start: int, frame_end: int, out_dir: str, *,
                      source: str = "auto", near: float | None = None, far: float | None = None,
                      bit_depth: int = 16) -> list[str]:
    """Render depth control maps ``<out_dir>/depth_<frame>.png`` for frames ``frame_start..frame_end``.

    Renders with Cycles on the CPU (one sample) and restores every changed setting afterwards, also on errors.
    ``near``/``far`` are distances (Z) or the mist range (Mist); see the module docstring. Returns the PNG paths in
    frame order. Raises ``SceneError`` for no camera, an empty range, a bad source or range, or no visible geometry.
    """
    check_scene(scene, frame_start, frame_end)
    if bit_depth not in (8, 16):
        raise SceneError(f"depth maps can be 8- or 16-bit, not {bit_depth}-bit", "use bit_depth 8 or 16")
    _check_range(near, far)
    source = resolve_source(scene, source)
    out_dir = bpy.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="t2vz_depth_")
    try:
        sockets = compositor.DEPTH_SOCKETS if source == "z" else compositor.MIST_SOCKETS
        frames = render_exr_passes(scene, frame_start, frame_end, scratch, [("depth", sockets)],
                                   _configure(scene, source, near, far))
        files = [entry["depth"] for entry in frames]
        if source == "mist":
            lo, hi = 0.0, 1.0  # the pass itself is normalised by the mist settings
        else:
            lo, hi = _z_range(files, near, far, frame_start, frame_end)
        paths = []
        for frame, file in zip(range(frame_start, frame_end + 1), files):
            levels = depth_levels(compositor.read_exr_channel(file), lo, hi)
            paths.append(write_png(os.path.join(out_dir, f"{FILE_PREFIX}{frame:04d}.png"), quantise(levels, bit_depth)))
        return paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _z_range(files: Sequence[str], near: float | None, far: float | None, frame_start: int,
             frame_end: int) -> tuple[float, float]:
    """near/far of a Z shot: the given values, the rest from the geometry's depth over all frames."""
    if near is not None and far is not None:
        return near, far
    try:
        found = depth_range(compositor.read_exr_channel(file) for file in files)  # one frame in memory at a time
    except InputError:  # no frame shows any geometry
        raise SceneError(f"the camera sees no geometry in frames {frame_start}..{frame_end}",
                         "aim the camera at the objects, or pass near and far explicitly") from None
    lo, hi = (found[0] if near is None else near), (found[1] if far is None else far)
    if hi < lo:
        raise SceneError(f"depth far ({hi:g}) lies before near ({lo:g})", "set near below the nearest geometry")
    return lo, hi
