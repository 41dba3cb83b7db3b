"""OpenPose keypoints from armatures (scene_passes.pose_keypoints) with the bpy module: projection and errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from rigify_metarig import rigify_human_metarig

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

from blender_addon.scene_passes import SceneError, export_pose_keypoints, keypoint_mapping  # noqa: E402
from blender_addon.scene_passes.bone_map import KEYPOINT_NAMES  # noqa: E402

K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
SCALE, TOP = 6.0, 4.0  # the orthographic camera sees x in -3..3 and z in -2..4


def px(x: float, z: float) -> tuple[float, float]:
    """Expected pixel of world (x, 0, z) in the 64 x 64 frame of the test camera."""
    return (x + SCALE / 2) / SCALE * 64, (TOP - z) / SCALE * 64


@pytest.fixture
def scene():
    """An empty scene, 128 x 128 at 50 % (so 64 x 64), with an orthographic camera at y = -10 looking along +y."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 128
    scene.render.resolution_percentage = 50
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = SCALE
    camera.location = (0.0, -10.0, 1.0)
    camera.rotation_euler = (math.radians(90), 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.frame_set(1)
    return scene


def add_armature(scene, bones: dict[str, tuple[tuple, tuple]], parents: dict[str, str] | None = None, name="Rig"):
    """An armature object with ``bones`` (name -> (head, tail)); ``parents`` connects child -> parent."""
    obj = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (head, tail) in bones.items():
        edit_bone = obj.data.edit_bones.new(bone_name)
        edit_bone.head, edit_bone.tail = head, tail
    for child, parent in (parents or {}).items():
        obj.data.edit_bones[child].parent = obj.data.edit_bones[parent]
        obj.data.edit_bones[child].use_connect = True
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


BODY = {
    "spine.004": ((0, 0, 1.5), (0, 0, 1.8)),
    "upper_arm.L": ((0.5, 0, 1.4), (1.5, 0, 1.4)),
    "forearm.L": ((1.5, 0, 1.4), (2.5, 0, 1.4)),
    "upper_arm.R": ((-0.5, 0, 1.4), (-1.5, 0, 1.4)),
    "forearm.R": ((-1.5, 0, 1.4), (-3.5, 0, 1.4)),  # the right wrist is outside the frame
    "thigh.R": ((-0.3, 0, 0.5), (-0.3, 0, -0.5)),
    "shin.R": ((-0.3, 0, -0.5), (-0.3, 0, -1.5)),
    "thigh.L": ((0.3, -12, 0.5), (0.3, -12, -0.5)),  # behind the camera
}


def load(path):
    return json.loads(Path(path).read_text())


def assert_near(point, expected, tol=1.0):
    assert point is not None, f"expected a keypoint at {expected}"
    assert abs(point[0] - expected[0]) <= tol and abs(point[1] - expected[1]) <= tol, (point, expected)


def test_projection_hits_expected_pixels_and_follows_animation(scene, tmp_path):
    rig = add_armature(scene, BODY, parents={"forearm.L": "upper_arm.L"})
    rig.location = (0, 0, 0)
    rig.keyframe_insert("location", frame=1)
    rig.location = (0.6, 0, 0)
    rig.keyframe_insert("location", frame=2)
    arm = rig.pose.bones["upper_arm.L"]
    arm.rotation_mode = "XYZ"
    arm.keyframe_insert("rotation_euler", frame=1)
    arm.rotation_euler = (math.radians(90), 0, 0)  # the left arm points up on frame 2
    arm.keyframe_insert("rotation_euler", frame=2)
    scene.frame_set(7)

    data = load(export_pose_keypoints(scene, 1, 2, str(tmp_path / "pose.json")))

    assert (data["width"], data["height"]) == (64, 64) and data["format"] == "t2vz-openpose-coco18"
    assert [f["frame"] for f in data["frames"]] == [1, 2]
    first, second = (f["people"][0] for f in data["frames"])
    assert_near(first[K["neck"]], px(0, 1.5))
    assert_near(first[K["left_shoulder"]], px(0.5, 1.4))
    assert_near(first[K["left_elbow"]], px(1.5, 1.4))
    assert_near(first[K["left_wrist"]], px(2.5, 1.4))
    assert_near(first[K["right_shoulder"]], px(-0.5, 1.4))
    assert_near(first[K["right_elbow"]], px(-1.5, 1.4))
    assert_near(first[K["right_hip"]], px(-0.3, 0.5))
    assert_near(first[K["right_knee"]], px(-0.3, -0.5))
    assert_near(first[K["right_ankle"]], px(-0.3, -1.5))
    assert first[K["right_wrist"]] is None  # outside the frame
    assert first[K["left_hip"]] is None and first[K["left_knee"]] is None  # behind the camera
    assert first[K["nose"]] is None and first[K["left_eye"]] is None  # no bones for them
    assert_near(second[K["right_shoulder"]], px(0.1, 1.4))  # the whole rig moved 0.6 to the right
    assert_near(second[K["left_elbow"]], px(1.1, 2.4))  # ... and the left arm points up
    assert_near(second[K["left_wrist"]], px(1.1, 3.4))
    assert scene.frame_current == 7


def test_json_reads_back_in_the_backend(scene, tmp_path):
    pose = pytest.importorskip("t2vz_backend.conditions.pose")
    add_armature(scene, BODY)
    sequence = pose.keypoints_from_json(export_pose_keypoints(scene, 3, 5, str(tmp_path / "sub" / "p.json")))
    assert sequence.frames == [3, 4, 5] and (sequence.width, sequence.height) == (64, 64)


def test_bone_tags_win_and_neck_falls_back_to_the_shoulders(scene, tmp_path):
    bones = {key: BODY[key] for key in ("upper_arm.L", "upper_arm.R")}
    bones["Snout"] = ((0, -0.2, 1.9), (0, -0.4, 1.9))
    bones["Helper"] = ((2.0, 0, 0.0), (2.0, 0, 1.0))
    rig = add_armature(scene, bones)
    rig.data.bones["Snout"]["t2vz_keypoint"] = "nose"
    rig.data.bones["Helper"]["t2vz_keypoint"] = "Left Wrist"  # spelling is forgiving
    rig.pose.bones["Helper"]["t2vz_end"] = "tail"  # pose-bone properties work too
    mapping = keypoint_mapping(rig)
    assert mapping["nose"].explicit and mapping["left_wrist"].bone == "Helper"

    person = load(export_pose_keypoints(scene, 1, 1, str(tmp_path / "p.json")))["frames"][0]["people"][0]
    assert_near(person[K["nose"]], px(0, 1.9))
    assert_near(person[K["left_wrist"]], px(2.0, 1.0))
    assert_near(person[K["neck"]], px(0, 1.4))  # midpoint of the shoulders


def test_rigify_human_metarig_faces_the_camera(scene, tmp_path):
    source = rigify_human_metarig()
    if source is None:
        pytest.skip("Rigify's human metarig is not bundled here")
    number = r"(-?[\d.]+), (-?[\d.]+), (-?[\d.]+)"
    blocks = re.findall(rf"new\('([^']+)'\)\n\s+bone\.head = {number}\n\s+bone\.tail = {number}", source.read_text())
    bones = {b[0]: (tuple(map(float, b[1:4])), tuple(map(float, b[4:7]))) for b in blocks}
    rig = add_armature(scene, bones, name="metarig")  # the metarig faces -y, i.e. the camera
    rig.location = (0, 0, -1.0)
    person = load(export_pose_keypoints(scene, 1, 1, str(tmp_path / "p.json"), armatures=[rig]))["frames"][0]
    points = person["people"][0]
    assert all(p is not None for p in points), [n for n, p in zip(KEYPOINT_NAMES, points) if p is None]
    assert points[K["right_shoulder"]][0] < points[K["neck"]][0] < points[K["left_shoulder"]][0]
    assert points[K["right_eye"]][0] < points[K["nose"]][0] < points[K["left_eye"]][0]
    assert points[K["nose"]][1] < points[K["neck"]][1] < points[K["right_hip"]][1] < points[K["right_ankle"]][1]


def test_errors_name_the_problem(scene, tmp_path):
    out = str(tmp_path / "p.json")
    with pytest.raises(SceneError, match="no armature"):
        export_pose_keypoints(scene, 1, 2, out)
    rig = add_armature(scene, {"Bone": ((0, 0, 0), (0, 0, 1)), "Bone.001": ((0, 0, 1), (0, 0, 2))})
    with pytest.raises(SceneError, match="left_wrist") as info:
        export_pose_keypoints(scene, 1, 2, out)
    assert "t2vz_keypoint" in info.value.hint
    with pytest.raises(SceneError, match="not an armature"):
        export_pose_keypoints(scene, 1, 2, out, armatures=[scene.camera])
    rig.data.bones["Bone"]["t2vz_keypoint"] = "left_hand"
    with pytest.raises(SceneError, match="left_hand"):
        export_pose_keypoints(scene, 1, 2, out, armatures=[rig])
    with pytest.raises(SceneError, match="empty"):
        export_pose_keypoints(scene, 3, 2, out)
    scene.camera = None
    with pytest.raises(SceneError, match="camera"):
        export_pose_keypoints(scene, 1, 2, out)


def test_unrecognised_armatures_are_skipped_when_another_maps(scene, tmp_path):
    add_armature(scene, {"wheel": ((0, 0, 0), (0, 0, 1))}, name="Car")
    add_armature(scene, BODY, name="Person")
    hidden = add_armature(scene, BODY, name="Hidden")
    hidden.hide_render = True
    data = load(export_pose_keypoints(scene, 1, 1, str(tmp_path / "p.json")))
    assert len(data["frames"][0]["people"]) == 1
