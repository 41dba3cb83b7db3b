"""Bone-name -> OpenPose keypoint mapping (blender_addon/scene_passes/bone_map.py): pure Python, no bpy needed."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from rigify_metarig import rigify_human_metarig

ROOT = Path(__file__).resolve().parents[1]


def _load_bone_map():
    """Import bone_map.py by path, so neither bpy nor the add-on package is needed."""
    spec = importlib.util.spec_from_file_location("t2vz_test_bone_map", ROOT / "blender_addon/scene_passes/bone_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bm = _load_bone_map()

MIXAMO = [f"mixamorig:{name}" for name in (
    "Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End", "LeftEye", "RightEye", "LeftShoulder",
    "LeftArm", "LeftForeArm", "LeftHand", "LeftHandIndex1", "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase")]
BASIC_METARIG = [
    "spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.005", "spine.006", "pelvis.L", "pelvis.R",
    "thigh.L", "thigh.R", "shin.L", "shin.R", "foot.L", "foot.R", "toe.L", "toe.R", "heel.02.L", "heel.02.R",
    "shoulder.L", "shoulder.R", "upper_arm.L", "upper_arm.R", "forearm.L", "forearm.R", "hand.L", "hand.R"]


def mapped(names):
    """keypoint -> (bone, end) for a list of bone names."""
    return {key: (src.bone, src.end) for key, src in bm.map_bones(names).items()}


def test_keypoint_names_match_the_backend():
    pose = pytest.importorskip("t2vz_backend.conditions.pose")
    assert bm.KEYPOINT_NAMES == tuple(pose.KEYPOINT_NAMES)


@pytest.mark.parametrize(("name", "expected"), [
    ("mixamorig:LeftForeArm", ("forearm", "left", "")),
    ("mixamorig1:RightUpLeg", ("upleg", "right", "")),
    ("upper_arm.L", ("upperarm", "left", "")),
    ("ORG-upper_arm.R", ("upperarm", "right", "org")),
    ("DEF-upper_arm.L.001", ("upperarm.001", "left", "def")),
    ("calf_r", ("calf", "right", "")),
    ("neck_01", ("neck01", None, "")),
    ("spine.004", ("spine.004", None, "")),
    ("Leftover", ("leftover", None, "")),
    ("L_Hand", ("hand", "left", "")),
])
def test_split_name(name, expected):
    assert bm.split_name(name) == expected


def test_mixamo_with_prefix():
    m = mapped(MIXAMO)
    assert m["left_shoulder"] == ("mixamorig:LeftArm", "head")
    assert m["left_elbow"] == ("mixamorig:LeftForeArm", "head")  # = the tail of LeftArm in Mixamo rigs
    assert m["left_wrist"] == ("mixamorig:LeftForeArm", "tail")
    assert m["right_hip"] == ("mixamorig:RightUpLeg", "head")
    assert m["right_knee"] == ("mixamorig:RightUpLeg", "tail")
    assert m["right_ankle"] == ("mixamorig:RightFoot", "head")  # a foot's head is the ankle in every rig
    assert m["neck"] == ("mixamorig:Neck", "head")
    assert m["nose"] == ("mixamorig:Head", "middle")
    assert m["left_eye"] == ("mixamorig:LeftEye", "head")
    assert bm.missing_keypoints(bm.map_bones(MIXAMO)) == ["right_ear", "left_ear"]


def test_basic_metarig():
    m = mapped(BASIC_METARIG)
    assert m["left_shoulder"] == ("upper_arm.L", "head")
    assert m["right_elbow"] == ("upper_arm.R", "tail")
    assert m["right_wrist"] == ("forearm.R", "tail")
    assert m["left_hip"] == ("thigh.L", "head")
    assert m["left_knee"] == ("thigh.L", "tail")
    assert m["left_ankle"] == ("shin.L", "tail")
    assert m["neck"] == ("spine.004", "head")
    assert m["nose"] == ("spine.006", "middle")
    assert bm.missing_keypoints(bm.map_bones(BASIC_METARIG)) == ["right_eye", "left_eye", "right_ear", "left_ear"]


def test_rigify_human_metarig_names_map_all_18():
    source = rigify_human_metarig()
    if source is None:
        pytest.skip("Rigify's human metarig is not bundled here")
    names = re.findall(r"edit_bones\.new\('([^']+)'\)", source.read_text())
    m = mapped(names)
    assert bm.missing_keypoints(bm.map_bones(names)) == []
    assert m["nose"] == ("nose.001", "tail")  # the tip of the nose
    assert m["left_ear"] == ("ear.L", "head") and m["right_eye"] == ("eye.R", "head")


def test_generated_rigify_prefers_org_and_joins_def_segments():
    names = ["DEF-upper_arm.L", "DEF-upper_arm.L.001", "ORG-upper_arm.L", "upper_arm_fk.L", "MCH-upper_arm.L",
             "DEF-forearm.R", "DEF-forearm.R.001", "DEF-thigh.R", "DEF-thigh.R.001"]
    m = mapped(names)
    assert m["left_shoulder"] == ("ORG-upper_arm.L", "head")
    assert m["left_elbow"] == ("ORG-upper_arm.L", "tail")
    assert m["right_wrist"] == ("DEF-forearm.R.001", "tail")  # tail of the last segment, not mid-forearm
    assert m["right_hip"] == ("DEF-thigh.R", "head")
    assert m["right_knee"] == ("DEF-thigh.R.001", "tail")


def test_game_engine_names():
    names = ["clavicle_l", "upperarm_l", "lowerarm_l", "hand_l", "thigh_r", "calf_r", "foot_r", "neck_01", "head"]
    m = mapped(names)
    assert m["left_shoulder"] == ("upperarm_l", "head")
    assert m["left_elbow"] == ("upperarm_l", "tail")
    assert m["left_wrist"] == ("lowerarm_l", "tail")
    assert m["right_knee"] == ("thigh_r", "tail")
    assert m["right_ankle"] == ("calf_r", "tail")
    assert m["neck"] == ("neck_01", "head")


def test_explicit_tag_wins_over_name_rule():
    bones = [bm.BoneInfo("upper_arm.L"), bm.BoneInfo("forearm.L"),
             bm.BoneInfo("MyWristHelper", keypoint="left_wrist", end="tail"),
             bm.BoneInfo("Snout", keypoint="nose")]
    m = bm.map_bones(bones)
    assert (m["left_wrist"].bone, m["left_wrist"].end, m["left_wrist"].explicit) == ("MyWristHelper", "tail", True)
    assert (m["nose"].bone, m["nose"].end) == ("Snout", "head")  # head is the default end
    assert m["left_elbow"].bone == "upper_arm.L" and not m["left_elbow"].explicit


def test_bad_tags_are_reported():
    with pytest.raises(bm.BoneTagError, match="left_hand"):
        bm.map_bones([bm.BoneInfo("b", keypoint="left_hand")])
    with pytest.raises(bm.BoneTagError, match="middle"):
        bm.map_bones([bm.BoneInfo("b", keypoint="nose", end="middle")])
    with pytest.raises(bm.BoneTagError, match="both tagged"):
        bm.map_bones([bm.BoneInfo("a", keypoint="nose"), bm.BoneInfo("b", keypoint="nose")])


def test_unrecognised_rig_lists_every_keypoint_missing():
    mapping = bm.map_bones(["Bone", "Bone.001", "wheel_front", "chassis"])
    assert mapping == {}
    assert bm.missing_keypoints(mapping) == list(bm.KEYPOINT_NAMES)
    assert bm.TAG_KEYPOINT in bm.tag_hint() and bm.TAG_END in bm.tag_hint()


def test_sides_are_the_characters_sides():
    m = mapped(["hand.L", "hand.R", "LeftHand", "RightFoot"])
    assert m["left_wrist"][0] in {"hand.L", "LeftHand"}
    assert m["right_wrist"] == ("hand.R", "head")
    assert m["right_ankle"] == ("RightFoot", "head")
