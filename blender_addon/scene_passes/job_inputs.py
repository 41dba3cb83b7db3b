"""A job's inputs from the 3D scene: the switched-on passes as ControlNet specs, and masks for background smoothing.

Pose, depth and object masks come from this package's exports; edges are the backend's canny preprocessor over
ordinary renders of the scene, made here. Each export writes into the job folder. Planning and writing are apart:
``scene_controls``/``mask_dir`` return where the inputs will be plus the writers that render them, so the job's
request is validated before any render starts.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

from ..core import motion_choices
from ..core.errors import T2VZAddonError
from ..core.request_builder import PrefsView, control_spec
from .camera_depth import depth_motion_fields, render_depth_motion
from .camera_motion import camera_homographies
from .depth import render_depth_maps
from .masks import render_object_masks
from .pose_keypoints import export_pose_keypoints
from .vectors import render_vector_pass


def scene_range(scene: Any, settings: Any) -> tuple[int, int]:
    """The inclusive timeline frames of a scene job: the settings' range, else the scene's."""
    if settings.use_frame_range:
        return settings.frame_range_start, settings.frame_range_end
    return scene.frame_start, scene.frame_end


def check_scene_passes(scene: Any, settings: Any) -> None:
    """Cheap checks before any render."""
    if not (settings.pass_pose or settings.pass_depth or settings.pass_canny):
        raise T2VZAddonError("no scene pass is switched on", "turn on Pose, Depth or Edges in Properties > "
                             "Scene > T2V-Zero Scene Passes", setting="pass_pose")
    if scene.camera is None:
        raise T2VZAddonError(f"scene {scene.name!r} has no active camera", "add a camera and make it active "
                             "(Ctrl+Numpad 0)")
    first, last = scene_range(scene, settings)
    if first > last:
        raise T2VZAddonError(f"the frame range {first}-{last} is empty", "set an end frame after the start frame",
                             setting="frame_range_end")


def render_color_frames(scene: Any, first: int, last: int, out_dir: str) -> list[str]:
    """Render frames ``first..last`` of ``scene`` to PNGs (for edge maps); the scene's settings are restored."""
    render = scene.render
    settings = image_settings = render.image_settings
    saved = {"filepath": render.filepath, "use_sequencer": render.use_sequencer,
             "use_compositing": render.use_compositing}
    saved_format = (image_settings.file_format, image_settings.color_mode)
    saved_media = getattr(settings, "media_type", None)
    saved_frame = scene.frame_current
    files = []
    try:
        render.use_sequencer = False  # the scene itself, not its sequencer strips
        render.use_compositing = False
        if saved_media is not None:  # 5.x: media_type before file_format
            settings.media_type = "IMAGE"
        image_settings.file_format, image_settings.color_mode = "PNG", "RGB"
        os.makedirs(out_dir, exist_ok=True)
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            render.filepath = os.path.join(out_dir, f"{frame - first:06d}.png")
            bpy.ops.render.render(write_still=True, scene=scene.name)
            files.append(render.filepath)
    finally:
        for key, value in saved.items():
            setattr(render, key, value)
        if saved_media is not None:
            settings.media_type = saved_media
        image_settings.file_format, image_settings.color_mode = saved_format
        scene.frame_set(saved_frame)
    return files


Writer = Callable[[], object]


def scene_controls(scene: Any, settings: Any, prefs: PrefsView, job_dir: Path
                   ) -> tuple[tuple[Any, ...], list[Writer]]:
    """The ControlNet specs of the switched-on passes (in ``job_dir/controls/``) and the writers that export them."""
    first, last = scene_range(scene, settings)
    controls, writers = [], []
    if settings.pass_pose:
        path = str(job_dir / "controls" / "pose.json")
        writers.append(functools.partial(export_pose_keypoints, scene, first, last, path))
        controls.append(control_spec(settings, prefs, "pose", path))
    if settings.pass_depth:
        out_dir = str(job_dir / "controls" / "depth")
        writers.append(functools.partial(render_depth_maps, scene, first, last, out_dir,
                                         source=settings.depth_source))
        controls.append(control_spec(settings, prefs, "depth", out_dir))
    if settings.pass_canny:
        out_dir = str(job_dir / "controls" / "render")
        writers.append(functools.partial(render_color_frames, scene, first, last, out_dir))
        controls.append(control_spec(settings, prefs, "canny", out_dir, extract=True))
    return tuple(controls), writers


def mask_dir(scene: Any, settings: Any, frames: tuple[int, int], job_dir: Path) -> tuple[str, Writer]:
    """Where the mask collection's objects are rendered (Text → Video background smoothing), and the writer."""
    collection = settings.mask_collection
    objects = list(collection.all_objects) if collection is not None else []
    if not objects:
        raise T2VZAddonError("background smoothing needs objects to mask",
                             "choose a Mask Objects collection with the foreground objects, or turn Smooth "
                             "Background off", setting="mask_collection")
    out_dir = str(job_dir / "masks")
    return out_dir, functools.partial(render_object_masks, scene, objects, frames[0], frames[1], out_dir)


def vector_dir(scene: Any, settings: Any, job_dir: Path) -> tuple[str, Writer]:
    """Where the scene's Vector pass goes (the consistency report's exact motion), and the writer that renders it."""
    first, last = scene_range(scene, settings)
    out_dir = str(job_dir / "controls" / "vectors")
    return out_dir, functools.partial(render_vector_pass, scene, first, last, out_dir)


def camera_motion(scene: Any, settings: Any, frames: tuple[int, int], job_dir: Path, request: Any,
                  warnings: list[str]) -> tuple[dict[str, Any], list[Writer]]:
    """Request fields for a camera Motion over timeline ``frames``, and the writers of its files (after the check).

    Scene Camera reads the camera now (cheap: homographies in the request); Scene Camera + Depth plans
    ``job_dir/motion/flow.npy`` and ``occlusion.npy`` at no more than the output's long side (``request``'s size,
    or its ``long_side`` when the source sizes it) and renders them in its writer. Warnings go to ``warnings`` (the
    depth path's as it renders); an output of another shape than the render is one: the engine stretches the
    camera's view to it.
    """
    if scene.camera is None:
        raise T2VZAddonError(f"scene {scene.name!r} has no active camera for the motion",
                             "add a camera and make it active (Ctrl+Numpad 0), or use Motion: Constant Drift",
                             setting="motion_source")
    width, height = request.width, request.height
    writers: list[Writer] = []
    if settings.motion_source == motion_choices.CAMERA:
        fields, found = camera_homographies(scene, settings, *frames)
        warnings.extend(found)
    else:
        long_side = max(width, height) or getattr(request, "long_side", 0)
        out_dir = str(job_dir / "motion")
        fields = depth_motion_fields(scene, out_dir, long_side)
        writers.append(lambda: warnings.extend(render_depth_motion(scene, *frames, out_dir,
                                                                   long_side=long_side)[1]))
    size = fields["motion_width"], fields["motion_height"]
    if width and height and abs(width / height - size[0] / size[1]) > 0.01 * size[0] / size[1]:
        warnings.append(f"the output ({width}x{height}) has another shape than the camera's render ({size[0]}x"
                        f"{size[1]}): the camera's view is stretched to it; match the two for undistorted motion")
    return fields, writers
