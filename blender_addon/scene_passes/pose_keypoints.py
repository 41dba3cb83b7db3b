"""OpenPose COCO-18 keypoints from armatures: bones -> keypoints (``bone_map``) -> camera pixels, written as JSON.

The JSON is the format ``t2vz_backend.conditions.pose`` draws (see its docstring)::

    {"format": "t2vz-openpose-coco18", "version": 1, "width": W, "height": H,
     "frames": [{"frame": N, "people": [[[x, y] or null] * 18, ...]}, ...]}

with pixels from the top-left corner, y down, W x H the render size after the resolution percentage; one entry per
frame of the range, one person per armature that shows at least one keypoint. A keypoint behind the camera or outside
the frame is null. Without a neck bone, the neck is the midpoint of the shoulders (how OpenPose's COCO-18 defines it).

Limitations: no occlusion test (limbs behind the body are still drawn), armatures are filtered by ``hide_render``
only, body keypoints only (no hands or face).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import bpy
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from ..backend.t2vz_backend.media.atomic import write_json
from .bone_map import (
    KEYPOINT_NAMES,
    TAG_END,
    TAG_KEYPOINT,
    BoneInfo,
    BoneTagError,
    KeypointSource,
    map_bones,
    missing_keypoints,
    tag_hint,
)
from .errors import SceneError
from .render_settings import check_scene, frame_size

JSON_FORMAT = "t2vz-openpose-coco18"


def _tag(bone: bpy.types.Bone, pose_bone: bpy.types.PoseBone | None, key: str) -> str | None:
    """A tag custom property from the bone (Bone properties), else from the pose bone; None when absent."""
    for owner in (bone, pose_bone):
        value = owner.get(key) if owner is not None else None
        if value is not None:
            return str(value).strip().lower().replace(" ", "_").replace("-", "_")
    return None


def keypoint_mapping(armature: bpy.types.Object) -> dict[str, KeypointSource]:
    """Keypoint name -> bone and end for one armature object (tags first, then name rules); may be empty."""
    bones = []
    for bone in armature.data.bones:
        pose_bone = armature.pose.bones.get(bone.name) if armature.pose is not None else None
        bones.append(BoneInfo(bone.name, _tag(bone, pose_bone, TAG_KEYPOINT), _tag(bone, pose_bone, TAG_END)))
    try:
        return map_bones(bones)
    except BoneTagError as exc:
        raise SceneError(f"armature '{armature.name}': {exc}", tag_hint()) from exc


def _unrecognised(armature: bpy.types.Object) -> SceneError:
    """The error for an armature none of whose bones map to a keypoint."""
    return SceneError(f"armature '{armature.name}' has no bones that map to OpenPose keypoints "
                      f"(missing: {', '.join(missing_keypoints({}))})", tag_hint())


def choose_armatures(scene: bpy.types.Scene, armatures: Iterable[bpy.types.Object] | None = None,
                     ) -> list[tuple[bpy.types.Object, dict[str, KeypointSource]]]:
    """(armature, mapping) for the given armatures, or for every render-visible armature of the scene that maps.

    Given armatures must all be recognisable; found ones that are not (props, vehicles) are skipped, and
    ``SceneError`` is raised only when none is left.
    """
    if armatures is not None:
        rigs = list(armatures)
        for obj in rigs:
            if obj.type != "ARMATURE":
                raise SceneError(f"object '{obj.name}' is a {obj.type.lower()}, not an armature",
                                 "choose armature objects for the pose export")
        mapped = [(obj, keypoint_mapping(obj)) for obj in rigs]
        for obj, mapping in mapped:
            if not mapping:
                raise _unrecognised(obj)
    else:
        rigs = [obj for obj in scene.objects if obj.type == "ARMATURE" and not obj.hide_render]
        mapped = [(obj, mapping) for obj in rigs if (mapping := keypoint_mapping(obj))]
        if rigs and not mapped:
            raise _unrecognised(rigs[0]) if len(rigs) == 1 else SceneError(
                f"none of the armatures {', '.join(obj.name for obj in rigs)} has bones that map to OpenPose "
                f"keypoints", tag_hint())
    if not rigs:
        raise SceneError(f"scene '{scene.name}' has no armature visible in renders",
                         "add a character armature (e.g. a Rigify or Mixamo rig) or enable it in renders")
    return mapped


def _bone_point(armature: bpy.types.Object, source: KeypointSource) -> Vector | None:
    """World position of a keypoint source on the evaluated armature; None if the bone is gone."""
    pose_bone = armature.pose.bones.get(source.bone)
    if pose_bone is None:
        return None
    local = {"head": pose_bone.head, "tail": pose_bone.tail}.get(source.end)
    if local is None:  # "middle"
        local = (pose_bone.head + pose_bone.tail) / 2.0
    return armature.matrix_world @ local


def world_points(armature: bpy.types.Object, mapping: dict[str, KeypointSource]) -> list[Vector | None]:
    """World positions of the 18 keypoints (COCO-18 order, None where unmapped); neck from the shoulders if needed."""
    points = {name: _bone_point(armature, source) for name, source in mapping.items()}
    left, right = points.get("left_shoulder"), points.get("right_shoulder")
    if points.get("neck") is None and left is not None and right is not None:
        points["neck"] = (left + right) / 2.0
    return [points.get(name) for name in KEYPOINT_NAMES]


def project(scene: bpy.types.Scene, camera: bpy.types.Object, point: Vector | None, width: int,
            height: int) -> list[float] | None:
    """Pixel position [x, y] (top-left origin) of a world point, or None behind the camera or outside the frame."""
    if point is None:
        return None
    ndc = world_to_camera_view(scene, camera, point)  # x, y in 0..1 from the bottom-left; z = depth
    if ndc.z <= 0.0 or not (0.0 <= ndc.x <= 1.0 and 0.0 <= ndc.y <= 1.0):
        return None
    return [round(ndc.x * width, 3), round((1.0 - ndc.y) * height, 3)]


def _depsgraph(scene: bpy.types.Scene) -> bpy.types.Depsgraph:
    """The evaluated dependency graph of ``scene`` (the context's when it is the context scene)."""
    if getattr(bpy.context, "scene", None) == scene:
        return bpy.context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


def export_pose_keypoints(scene: bpy.types.Scene, frame_start: int, frame_end: int, out_path: str, *,
                          armatures: Iterable[bpy.types.Object] | None = None) -> str:
    """Write the pose JSON for frames ``frame_start..frame_end`` to ``out_path`` and return its path.

    ``armatures`` defaults to every armature with ``hide_render`` off whose bones map to keypoints. Bones map by
    their ``t2vz_keypoint`` / ``t2vz_end`` custom properties, else by Rigify / Mixamo / generic names (``bone_map``).
    The current frame is restored afterwards. Raises ``SceneError`` for no camera, an empty range, no armature or
    an armature with no recognisable bones.
    """
    check_scene(scene, frame_start, frame_end)
    rigs = choose_armatures(scene, armatures)
    width, height = frame_size(scene)
    frame_current, subframe = scene.frame_current, scene.frame_subframe
    frames = []
    try:
        for frame in range(frame_start, frame_end + 1):
            scene.frame_set(frame)
            depsgraph = _depsgraph(scene)
            camera = scene.camera.evaluated_get(depsgraph)  # markers may switch the camera per frame
            people = []
            for armature, mapping in rigs:
                evaluated = armature.evaluated_get(depsgraph)
                person = [project(scene, camera, p, width, height) for p in world_points(evaluated, mapping)]
                if any(p is not None for p in person):
                    people.append(person)
            frames.append({"frame": frame, "people": people})
    finally:
        scene.frame_set(frame_current, subframe=subframe)
    data = {"format": JSON_FORMAT, "version": 1, "width": width, "height": height, "frames": frames}
    return _write_json(bpy.path.abspath(out_path), data)


def _write_json(path: str, data: dict) -> str:
    """Write ``data`` to ``path`` atomically through the backend's one write path, creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_json(path, data, indent=None)
