"""Control maps from the Blender scene: depth (Z / Mist), OpenPose keypoints from armatures, object masks.

Public API (what the operators and the CLI call; all raise ``SceneError`` with a hint for problems the user can fix):

- ``render_depth_maps(scene, frame_start, frame_end, out_dir, *, source="auto", near=None, far=None)`` -> PNG paths
- ``export_pose_keypoints(scene, frame_start, frame_end, out_path, *, armatures=None)`` -> JSON path
- ``render_object_masks(scene, objects, frame_start, frame_end, out_dir)`` -> PNG paths
- ``render_vector_pass(scene, frame_start, frame_end, out_dir)`` -> EXR paths (exact motion for the report)
- ``keypoint_mapping(armature)`` -> which bone (and end) gives each keypoint, for panels

Renders use Cycles on the CPU with one sample and restore every render setting they change (``render_settings``);
nothing here uses the ``gpu`` module, threads or timers, so it all works headless. Bone tags: the custom properties
``t2vz_keypoint`` (e.g. "left_wrist") and ``t2vz_end`` ("head" or "tail") on a bone (``bone_map``).
"""

from __future__ import annotations

from .bone_map import KEYPOINT_NAMES, TAG_END, TAG_KEYPOINT
from .depth import render_depth_maps
from .errors import SceneError
from .masks import render_object_masks
from .pose_keypoints import export_pose_keypoints, keypoint_mapping
from .vectors import render_vector_pass

__all__ = [
    "KEYPOINT_NAMES",
    "TAG_END",
    "TAG_KEYPOINT",
    "SceneError",
    "export_pose_keypoints",
    "keypoint_mapping",
    "render_depth_maps",
    "render_object_masks",
    "render_vector_pass",
]
