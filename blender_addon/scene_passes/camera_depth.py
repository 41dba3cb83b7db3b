"""Scene Camera + Depth: per-pixel displacement fields and occlusion masks from the Z pass (docs/camera_motion.md).

Each frame's Z pass is rendered (Cycles on the CPU, one sample at the pixel centres, every setting restored), at
most ``long_side`` pixels on its long side: the engine needs the motion at latent resolution (an eighth of the
output), so a full-size 4K depth render would only cost time. Every pixel of frame k is unprojected with its depth
and projected into frame 0's camera (``core/camera_geometry.depth_reprojection``); background moves as content at
infinity; what frame 0 does not show (hidden, behind its camera, outside its frame) is marked occluded, and the
engine gives it fresh noise.

Blender's Z pass holds the planar depth (along the view axis), for perspective and orthographic cameras alike
(measured by tests/test_camera_oracle.py: a plane facing the camera renders one Z over the whole frame), which is
what the reprojection takes; ``Z_PASS_IS_PLANAR`` records that, and ``camera_geometry.distance_to_planar`` converts
a ray-length pass should a Blender version store one.

Output: ``<out_dir>/flow.npy`` (frames, H, W, 2) float32 pixels and ``<out_dir>/occlusion.npy`` (frames, H, W)
uint8, written frame by frame into memory-mapped files (a long shot never sits in memory at once).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import bpy
import numpy as np

from ..core import camera_geometry as cg
from . import compositor
from .camera_motion import read_views
from .pass_render import render_exr_passes
from .render_settings import ScopedSettings, check_scene, frame_size

Z_PASS_IS_PLANAR = True
FLOW_FILE, OCCLUSION_FILE = "flow.npy", "occlusion.npy"


def depth_size(scene: bpy.types.Scene, long_side: int) -> tuple[int, int]:
    """The render size scaled down (never up) so its long side is at most ``long_side`` (0: no limit)."""
    width, height = frame_size(scene)
    scale = min(1.0, long_side / max(width, height)) if long_side else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def depth_motion_fields(scene: bpy.types.Scene, out_dir: str, long_side: int) -> dict[str, object]:
    """The request fields ``render_depth_motion`` fills (known before it renders): the files and their size."""
    width, height = depth_size(scene, long_side)
    return {"motion_flow": os.path.join(out_dir, FLOW_FILE), "motion_occlusion": os.path.join(out_dir, OCCLUSION_FILE),
            "motion_width": width, "motion_height": height, "motion_x": 0.0, "motion_y": 0.0}


def render_depth_motion(scene: bpy.types.Scene, first: int, last: int, out_dir: str, *, long_side: int = 0
                        ) -> tuple[dict[str, object], list[str]]:
    """Render the Z pass of frames ``first..last`` and write the motion fields; returns (request fields, warnings).

    ``long_side``: the most pixels on the long side of the maps (0: the render's own size)."""
    check_scene(scene, first, last)
    warnings: list[str] = []
    size = depth_size(scene, long_side)
    views = read_views(scene, first, last, size=size, warnings=warnings)[0]
    os.makedirs(out_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="t2vz_motion_")
    try:
        files = render_exr_passes(scene, first, last, scratch, [("depth", compositor.DEPTH_SOCKETS)],
                                  _configure(scene, size))
        count, (width, height) = last - first + 1, size
        flow = np.lib.format.open_memmap(os.path.join(out_dir, FLOW_FILE), mode="w+", dtype=np.float32,
                                         shape=(count, height, width, 2))
        occlusion = np.lib.format.open_memmap(os.path.join(out_dir, OCCLUSION_FILE), mode="w+", dtype=np.uint8,
                                              shape=(count, height, width))
        depth0 = planar_depth(compositor.read_exr_channel(files[0]["depth"]), views[0])
        flow[0], occlusion[0] = 0.0, 0
        hidden = []
        for k in range(1, count):
            depth = planar_depth(compositor.read_exr_channel(files[k]["depth"]), views[k])
            flow[k], occluded = cg.depth_reprojection(depth, views[k], depth0, views[0])
            occlusion[k] = occluded
            hidden.append(float(occluded.mean()))
        flow.flush()
        occlusion.flush()
        del flow, occlusion
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if hidden and max(hidden) > 0.5:
        worst = first + 1 + int(np.argmax(hidden))
        warnings.append(f"frame {worst} shows {max(hidden):.0%} of picture that frame {first} does not: most of it "
                        "gets fresh noise there; a shorter shot or a smaller move keeps more of the first frame")
    return depth_motion_fields(scene, out_dir, long_side), warnings


def planar_depth(z: np.ndarray, view: cg.CameraView) -> np.ndarray:
    """The Z pass as planar depth (what the reprojection takes); background (>= ``BACKGROUND``) stays as it is."""
    if Z_PASS_IS_PLANAR:
        return z
    with np.errstate(invalid="ignore"):
        return np.where(z < cg.BACKGROUND, cg.distance_to_planar(z, view), z)


def _configure(scene: bpy.types.Scene, size: tuple[int, int]):
    def configure(scoped: ScopedSettings, view_layer: bpy.types.ViewLayer) -> None:
        scoped.set(view_layer, "use_pass_z", True)
        render = scene.render
        if size != frame_size(scene):
            scoped.set(render, "resolution_percentage", 100)
            scoped.set(render, "resolution_x", size[0])
            scoped.set(render, "resolution_y", size[1])
    return configure
