"""Foreground masks: white where the chosen objects are visible, black elsewhere, one 8-bit grey PNG per frame.

How: the chosen objects (and their children, so choosing an armature or an empty picks the character's meshes) get
a pass index no other object uses, for the duration of the render; Cycles renders the Object Index pass (one sample
at the pixel centre, so indices are never blended) and a pixel is white when its index is ours. Occlusion is
respected: a chosen object hidden behind another object is black there. Every change is restored afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable

import bpy
import numpy as np

from . import compositor
from .errors import SceneError
from .pass_render import render_exr_passes
from .png import write_png
from .render_settings import ScopedSettings, check_scene

FILE_PREFIX = "mask_"
MAX_PASS_INDEX = 32767  # Object.pass_index is a short


def chosen_objects(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object]) -> list[bpy.types.Object]:
    """The given objects of ``scene`` that render, with their render-visible descendants.

    Objects disabled in renders or not in the scene are skipped (a collection may hold helpers); ``SceneError`` when
    nothing is left.
    """
    roots = list(objects)
    if not roots:
        raise SceneError("no objects were chosen for the mask", "choose the foreground objects first")
    chosen: dict[str, bpy.types.Object] = {}
    for obj in roots:
        if scene.objects.get(obj.name) != obj:
            continue
        for member in (obj, *obj.children_recursive):
            if not member.hide_render and scene.objects.get(member.name) == member:
                chosen[member.name] = member
    if not chosen:
        names = ", ".join(obj.name for obj in roots[:5]) + (" ..." if len(roots) > 5 else "")
        raise SceneError(f"none of the mask objects ({names}) renders in scene '{scene.name}'",
                         "link them to this scene and enable them in renders (the camera icon in the Outliner)")
    return list(chosen.values())


def render_object_masks(scene: bpy.types.Scene, objects: Iterable[bpy.types.Object], frame_start: int,
                        frame_end: int, out_dir: str) -> list[str]:
    """Render ``<out_dir>/mask_<frame>.png`` (white = the chosen objects) for frames ``frame_start..frame_end``.

    Renders the Object Index pass with Cycles on the CPU and restores every changed setting and pass index
    afterwards. Returns the PNG paths in frame order.
    """
    check_scene(scene, frame_start, frame_end)
    chosen = chosen_objects(scene, objects)
    index = max((obj.pass_index for obj in bpy.data.objects), default=0) + 1
    if index > MAX_PASS_INDEX:
        raise SceneError(f"an object already uses the largest pass index, {MAX_PASS_INDEX}",
                         "lower the Pass Index of that object (Object Properties > Relations)")
    out_dir = bpy.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    def configure(scoped: ScopedSettings, view_layer: bpy.types.ViewLayer) -> None:
        scoped.set(view_layer, "use_pass_object_index", True)
        for obj in chosen:
            scoped.set(obj, "pass_index", index)

    scratch = tempfile.mkdtemp(prefix="t2vz_mask_")
    try:
        frames = render_exr_passes(scene, frame_start, frame_end, scratch, [("index", compositor.INDEX_SOCKETS)],
                                   configure)
        paths = []
        for frame, entry in zip(range(frame_start, frame_end + 1), frames):
            mask = np.abs(compositor.read_exr_channel(entry["index"]) - index) < 0.5
            paths.append(write_png(os.path.join(out_dir, f"{FILE_PREFIX}{frame:04d}.png"),
                                   np.where(mask, 255, 0).astype(np.uint8)))
        return paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
