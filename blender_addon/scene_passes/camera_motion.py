"""Camera-driven motion from the scene (docs/camera_motion.md): per-frame homographies of the scene camera, or
per-pixel displacement fields from its Z pass (``camera_depth``), as request fields.

The maths is in ``core/camera_geometry.py`` (plain matrices, tested without Blender); this module reads the camera
(the evaluated object, so animation, constraints and parents count), the render size and the plane per frame, and
turns them into ``motion_homographies`` (render pixels: ``motion_width``/``motion_height``) with warnings about
shots the motion cannot follow exactly. The current frame is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import bpy

from ..backend.t2vz_backend import homography
from ..core import camera_geometry as cg
from ..core import motion_choices as mc
from .errors import SceneError
from .render_settings import frame_size, pass_view_layer

FULL_COVERAGE = 0.999
STILL_TOLERANCE = 1e-6  # a homography this close to the identity is float32 noise of a camera that did not move
T = TypeVar("T")


def sample_frames(scene: bpy.types.Scene, first: int, last: int, read: Callable[[], T]) -> list[T]:
    """``read()`` at every frame ``first..last`` (after ``frame_set``); the current frame comes back afterwards."""
    current, subframe = scene.frame_current, scene.frame_subframe
    try:
        out = []
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            out.append(read())
        return out
    finally:
        scene.frame_set(current, subframe=subframe)


def read_view(scene: bpy.types.Scene, size: tuple[int, int] | None = None) -> cg.CameraView:
    """The active camera of ``scene`` at the current frame, as plain numbers (evaluated: animation included)."""
    camera = scene.camera
    if camera is None:
        raise SceneError(f"scene '{scene.name}' has no active camera",
                         "add a camera and set it in Scene Properties > Scene > Camera")
    evaluated = camera.evaluated_get(pass_view_layer(scene).depsgraph)
    data = evaluated.data
    if data.type not in (cg.PERSPECTIVE, cg.ORTHOGRAPHIC):
        raise SceneError(f"camera '{camera.name}' is panoramic, and a panorama's motion is no homography",
                         "use a perspective or orthographic camera, or Motion: Constant Drift")
    width, height = size or frame_size(scene)
    render = scene.render
    return cg.CameraView(
        kind=data.type, width=width, height=height, matrix_world=tuple(tuple(row) for row in evaluated.matrix_world),
        lens=data.lens, ortho_scale=data.ortho_scale, sensor_width=data.sensor_width,
        sensor_height=data.sensor_height, sensor_fit=data.sensor_fit, shift_x=data.shift_x, shift_y=data.shift_y,
        pixel_aspect=(render.pixel_aspect_x, render.pixel_aspect_y))


def read_views(scene: bpy.types.Scene, first: int, last: int, size: tuple[int, int] | None = None,
               warnings: list[str] | None = None, plane_object: Any = None
               ) -> tuple[list[cg.CameraView], list[cg.Plane]]:
    """The camera and the plane (``plane_object``'s, else the ground) of every frame ``first..last``, in one pass.

    A change of active camera (a cut made with camera markers) is added to ``warnings``.
    """
    samples = sample_frames(scene, first, last, lambda: (read_view(scene, size), scene.camera.name,
                                                         _plane_at(plane_object, scene)))
    cameras = [name for _, name, _ in samples]
    cuts = [first + k for k in range(1, len(cameras)) if cameras[k] != cameras[k - 1]]
    if cuts and warnings is not None:
        warnings.append(f"the active camera changes at frame {cuts[0]} ({cameras[0]} -> {cameras[cuts[0] - first]}):"
                        " the motion treats the cut as a camera move; render each shot as its own job")
    return [view for view, _, _ in samples], [plane for _, _, plane in samples]


def _plane(settings: Any) -> tuple[str, Any]:
    """(the plane choice, its object) with Auto left to the caller."""
    choice = settings.motion_plane
    obj = settings.motion_plane_object if choice == mc.OBJECT else None
    if choice == mc.OBJECT and obj is None:
        raise SceneError("Motion Plane is set to Plane Object but no object is chosen",
                         "choose an empty or a plane mesh as Motion Plane Object, or use Ground")
    return choice, obj


def _plane_at(obj: Any, scene: bpy.types.Scene) -> cg.Plane:
    if obj is None:
        return cg.GROUND
    m = obj.evaluated_get(pass_view_layer(scene).depsgraph).matrix_world
    return cg.Plane(tuple(m.translation), tuple(m.col[0][:3]), tuple(m.col[1][:3]))


def camera_homographies(scene: bpy.types.Scene, settings: Any, first: int, last: int
                        ) -> tuple[dict[str, Any], list[str]]:
    """Request fields moving the picture as the scene camera moves over ``first..last``, and warnings."""
    warnings: list[str] = []
    choice, obj = _plane(settings)
    views, planes = read_views(scene, first, last, warnings=warnings, plane_object=obj)
    if choice == mc.DISTANT or (choice == mc.AUTO and cg.same_position(views)):
        planes = []  # content at infinity
    mats, partial = [homography.IDENTITY], []
    for k in range(1, len(views)):
        if not planes:
            mats.append(cg.infinite_homography(views[k], views[0]))
            continue
        try:
            mats.append(cg.plane_homography(views[k], views[0], planes[k], planes[0]))
        except ValueError:
            raise SceneError(f"the camera sees the motion plane edge-on at frame {first + k}",
                             "choose Motion Plane: Distant, another plane, or Scene Camera + Depth") from None
        if cg.plane_coverage(views[k], views[0], planes[k], planes[0]) < FULL_COVERAGE:
            partial.append(first + k)
    if planes and cg.plane_coverage(views[0], views[0], planes[0], planes[0]) < FULL_COVERAGE:
        partial.insert(0, first)
    if partial:
        name = "the ground plane" if obj is None else f"the plane of '{obj.name}'"
        warnings.append(f"{name} does not fill the view in {_frames_text(partial)} (the horizon or its edge is in "
                        "shot): what lies off the plane moves as if it were on it; for a far background choose "
                        "Motion Plane: Distant, or use Scene Camera + Depth")
    if all(homography.is_identity(m, STILL_TOLERANCE) for m in mats):
        mats = [homography.IDENTITY] * len(mats)  # exactly: the engine then moves nothing at all
        warnings.append(f"the scene camera does not move over frames {first}-{last}: the video has no camera motion")
    width, height = views[0].width, views[0].height
    fields = {"motion_homographies": tuple(mats), "motion_width": width, "motion_height": height,
              "motion_x": 0.0, "motion_y": 0.0}
    return fields, warnings


def _frames_text(frames: list[int]) -> str:
    if len(frames) == 1:
        return f"frame {frames[0]}"
    if frames == list(range(frames[0], frames[-1] + 1)):
        return f"frames {frames[0]}-{frames[-1]}"
    shown = ", ".join(str(f) for f in frames[:6])
    return f"frames {shown}{' ...' if len(frames) > 6 else ''}"
