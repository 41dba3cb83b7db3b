"""The add-on's camera-motion choices (add-on-owned settings: the request carries their result, not the choice).

The identifiers are what the scene settings store and ``blender -c t2vz generate --motion-source/--motion-plane``
take; see docs/camera_motion.md for what each does.
"""

from __future__ import annotations

DRIFT, CAMERA, CAMERA_DEPTH = "drift", "camera", "camera_depth"
MOTION_SOURCES = (
    (DRIFT, "Constant Drift", "Text → Video: the Drift vector, the same translation every frame (the paper's "
     "motion). Scene passes: no motion"),
    (CAMERA, "Scene Camera", "Move the generated world as the scene camera moves over the frame range: one "
     "homography per frame, over the motion plane (or at infinity)"),
    (CAMERA_DEPTH, "Scene Camera + Depth", "Move every pixel by its own depth (a Z-pass render per frame): "
     "parallax, and fresh noise where the camera reveals what was hidden"),
)
AUTO, GROUND, OBJECT, DISTANT = "auto", "ground", "object", "distant"
MOTION_PLANES = (
    (AUTO, "Auto", "Distant when the camera only turns (exact for any scene), else the ground"),
    (GROUND, "Ground (Z = 0)", "The world's ground plane carries the picture"),
    (OBJECT, "Plane Object", "The local XY plane of the Motion Plane Object (an empty or a plane mesh); the "
     "picture moves with it if it moves"),
    (DISTANT, "Distant", "No plane: the picture is infinitely far away, like a sky or distant scenery"),
)
CAMERA_SOURCES = (CAMERA, CAMERA_DEPTH)
PLANE_OBJECT_TYPES = frozenset({"EMPTY", "MESH"})


def is_plane_object(_settings, obj) -> bool:
    """Poll of the Motion Plane Object: an empty or a mesh (its local XY plane carries the picture)."""
    return obj.type in PLANE_OBJECT_TYPES
