"""Map armature bone names to the 18 OpenPose COCO keypoints: pure Python on names, no bpy (docs/blender.md §5).

Priority, per keypoint:

1. an explicit tag on a bone: the custom property ``t2vz_keypoint`` (a name from ``KEYPOINT_NAMES``, e.g.
   ``"left_wrist"``) and optionally ``t2vz_end`` (``"head"``, the default, or ``"tail"``): which end of the bone is the
   joint. In Blender: Bone properties > Custom Properties, or ``armature.bones["hand.L"]["t2vz_keypoint"] = ...``;
2. name rules for Rigify (metarig, generated ``ORG-`` / ``DEF-`` bones), Mixamo (``mixamorig:`` or any other
   ``prefix:`` stripped) and generic / game-engine names (``upperarm_l``, ``calf_r``, ``neck_01`` ...), first matching
   rule wins. Rules name the bone end: shoulder = head of the upper arm, elbow = its tail, wrist = tail of the forearm,
   hip = head of the thigh, knee = its tail, ankle = tail of the shin; eyes and ears = head of their bone; the nose =
   the tip of Rigify's ``nose.001`` or the tail of a ``nose`` bone, else the middle of the head bone.

"Right" is the character's right: ``.R``, ``_r``, ``Right...``. Names are compared case-insensitively with ``_``,
``-`` and spaces removed, so ``UpperArm.L``, ``upper_arm.L`` and ``upperarm_l`` are the same bone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)  # COCO-18 order, identical to t2vz_backend.conditions.pose.KEYPOINT_NAMES (a test checks it)
TAG_KEYPOINT = "t2vz_keypoint"
TAG_END = "t2vz_end"
ENDS = ("head", "tail", "middle")  # "middle" is only used by name rules (nose from the head bone)
TAG_ENDS = ("head", "tail")

# Name rules: (base name, bone end). Sided rules apply to the keypoint's side; the base is the normalised name.
_SIDED_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "shoulder": (("upperarm", "head"), ("uparm", "head"), ("arm", "head"), ("clavicle", "tail"),
                 ("shoulder", "tail")),
    "elbow": (("upperarm", "tail"), ("uparm", "tail"), ("forearm", "head"), ("lowerarm", "head"), ("elbow", "head"),
              ("arm", "tail")),
    "wrist": (("forearm", "tail"), ("lowerarm", "tail"), ("hand", "head"), ("wrist", "head")),
    "hip": (("thigh", "head"), ("upleg", "head"), ("upperleg", "head"), ("hip", "head")),
    "knee": (("thigh", "tail"), ("upleg", "tail"), ("upperleg", "tail"), ("shin", "head"), ("lowerleg", "head"),
             ("calf", "head"), ("knee", "head"), ("leg", "head")),
    "ankle": (("shin", "tail"), ("lowerleg", "tail"), ("calf", "tail"), ("foot", "head"), ("ankle", "head"),
              ("leg", "tail")),
    "eye": (("eye", "head"), ("eyeball", "head")),
    "ear": (("ear", "head"),),
}
_CENTRE_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    # Rigify's human metarig: spine.004 is the neck, spine.006 the head, nose.001 ends at the tip of the nose.
    "neck": (("neck", "head"), ("neck01", "head"), ("spine.004", "head")),
    "nose": (("nose.001", "tail"), ("nose", "tail"), ("head", "middle"), ("spine.006", "middle")),
}
# Bone-name prefixes of generated Rigify rigs: ORG- bones follow the whole deformation chain, DEF- bones may be
# split into segments, so an ORG- bone wins over a plain name, which wins over a DEF- bone.
_PREFIX_RANK = {"org": 0, "": 1, "def": 2}
_SIDE_WORDS = {"l": "left", "left": "left", "r": "right", "right": "right"}


class BoneTagError(ValueError):
    """A bone carries a t2vz keypoint tag with an unknown keypoint or end."""


@dataclass(frozen=True)
class BoneInfo:
    """A bone as the mapper sees it: its name and its t2vz tag custom properties (None when absent)."""

    name: str
    keypoint: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class KeypointSource:
    """Where a keypoint comes from: ``end`` ("head", "tail" or "middle") of bone ``bone``."""

    bone: str
    end: str
    explicit: bool = False


def split_name(name: str) -> tuple[str, str | None, str]:
    """``(base, side, prefix)`` of a bone name: ``"mixamorig:LeftForeArm"`` -> ``("forearm", "left", "")``.

    ``side`` is "left", "right" or None; ``prefix`` is "org", "def", "" or another Rigify prefix ("mch" ...).
    Numbered duplicates keep their number in the base (``"upper_arm.L.001"`` -> ``"upperarm.001"``) and so match no
    rule: they are segments, not whole limbs.
    """
    text = name.rsplit(":", 1)[-1].strip()  # Mixamo and other exporters: "namespace:Bone"
    prefix = ""
    match = re.match(r"^(ORG|DEF|MCH)-(.+)$", text)  # generated Rigify rigs
    if match:
        prefix, text = match.group(1).lower(), match.group(2)
    number = ""
    match = re.search(r"(\.\d{3})$", text)
    if match:
        number, text = match.group(1), text[: match.start()]
    side = None
    match = re.search(r"[._\- ](l|r|left|right)$", text, re.IGNORECASE)  # upper_arm.L, calf_r, Arm-Left
    if match:
        side, text = _SIDE_WORDS[match.group(1).lower()], text[: match.start()]
    else:
        match = re.match(r"^([Ll]eft|[Rr]ight)(?=[_\- .A-Z])[_\- .]?", text) or re.match(
            r"^(l|r)[_\- .]", text, re.IGNORECASE)  # LeftArm (Mixamo), left_arm, L_arm
        if match:
            side, text = _SIDE_WORDS[match.group(1).lower()], text[match.end():]
    base = re.sub(r"[\s_\-]", "", text).lower() + number
    return base, side, prefix


def _rule_table() -> dict[str, tuple[tuple[str, str], ...]]:
    """Keypoint name -> ordered (base, end) rules."""
    table = dict(_CENTRE_RULES)
    for side in ("left", "right"):
        for joint, rules in _SIDED_RULES.items():
            table[f"{side}_{joint}"] = rules
    return table


def _check_tag(bone: BoneInfo) -> None:
    """Raise ``BoneTagError`` when a bone's tag is not a keypoint name or its end is not head/tail."""
    if bone.keypoint not in KEYPOINT_NAMES:
        raise BoneTagError(f"bone '{bone.name}' has {TAG_KEYPOINT} = {bone.keypoint!r}, which is not a keypoint; "
                           f"use one of {', '.join(KEYPOINT_NAMES)}")
    if bone.end is not None and bone.end not in TAG_ENDS:
        raise BoneTagError(f"bone '{bone.name}' has {TAG_END} = {bone.end!r}; use 'head' or 'tail'")


def _last_segment(name: str, names: set[str]) -> str:
    """The last bone of a segmented chain ``name``, ``name.001`` ... (Rigify DEF- bones): its tail is the joint."""
    number = 0
    while f"{name}.{number + 1:03d}" in names:
        number += 1
    return f"{name}.{number:03d}" if number else name


def map_bones(bones: Iterable[BoneInfo | str]) -> dict[str, KeypointSource]:
    """Keypoint name -> its bone and end, for every keypoint a tag or a name rule finds; missing ones are absent.

    Raises ``BoneTagError`` for a malformed tag or for two bones tagged with the same keypoint.
    """
    infos = [BoneInfo(b) if isinstance(b, str) else b for b in bones]
    mapping: dict[str, KeypointSource] = {}
    for bone in infos:
        if bone.keypoint is None:
            continue
        _check_tag(bone)
        if bone.keypoint in mapping:
            raise BoneTagError(f"bones '{mapping[bone.keypoint].bone}' and '{bone.name}' are both tagged "
                               f"{bone.keypoint!r}; tag one bone per keypoint")
        mapping[bone.keypoint] = KeypointSource(bone.name, bone.end or "head", explicit=True)
    names = {bone.name for bone in infos}
    # (base, side) -> the best-ranked bone name with that base and side
    by_base: dict[tuple[str, str | None], tuple[int, str]] = {}
    for bone in infos:
        base, side, prefix = split_name(bone.name)
        if prefix not in _PREFIX_RANK:
            continue  # MCH- and other helper bones
        candidate = (_PREFIX_RANK[prefix], bone.name)
        by_base[(base, side)] = min(by_base.get((base, side), candidate), candidate)
    for keypoint, rules in _rule_table().items():
        if keypoint in mapping:
            continue
        side = keypoint.split("_", 1)[0] if "_" in keypoint else None
        for base, end in rules:
            found = by_base.get((base, side))
            if found is not None:
                bone = _last_segment(found[1], names) if end == "tail" else found[1]
                mapping[keypoint] = KeypointSource(bone, end)
                break
    return {name: mapping[name] for name in KEYPOINT_NAMES if name in mapping}


def missing_keypoints(mapping: Mapping[str, KeypointSource]) -> list[str]:
    """Keypoint names (COCO-18 order) that ``mapping`` does not cover."""
    return [name for name in KEYPOINT_NAMES if name not in mapping]


def tag_hint() -> str:
    """How a user tags a bone by hand (the fix quoted by errors about unrecognised rigs)."""
    return (f"rename the bones to Rigify or Mixamo names, or tag them: select the bone, Bone Properties > Custom "
            f"Properties, add '{TAG_KEYPOINT}' = a keypoint name such as 'left_wrist' and optionally "
            f"'{TAG_END}' = 'head' or 'tail' (the end of the bone at the joint)")
