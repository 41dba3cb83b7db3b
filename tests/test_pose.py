"""OpenPose COCO-18 rasteriser: palette, limb order, 60 % limbs, joints on top, missing keypoints, JSON format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2vz_backend.conditions.pose import (
    COLORS,
    KEYPOINT_NAMES,
    LIMBS,
    draw_pose,
    draw_pose_sequence,
    keypoints_from_json,
    keypoints_to_json,
)
from t2vz_backend.errors import InputError

W, H = 120, 80


def _person(**points) -> list:
    """18 keypoints, None except the named ones, e.g. _person(neck=(50, 40))."""
    person = [None] * 18
    for name, xy in points.items():
        person[KEYPOINT_NAMES.index(name)] = xy
    return person


def _limb_color(a: str, b: str) -> list[int]:
    pair = (KEYPOINT_NAMES.index(a), KEYPOINT_NAMES.index(b))
    return [int(c * 0.6) for c in COLORS[LIMBS.index(pair)]]


def test_palette_and_limb_order_match_the_reference():
    assert len(KEYPOINT_NAMES) == len(COLORS) == 18 and len(LIMBS) == 17
    assert COLORS[0] == (255, 0, 0) and COLORS[1] == (255, 85, 0) and COLORS[17] == (255, 0, 85)
    assert LIMBS[0] == (1, 2) and LIMBS[12] == (1, 0) and LIMBS[-1] == (15, 17)
    assert (2, 16) not in LIMBS and (5, 17) not in LIMBS


def test_joints_in_full_colour_and_limbs_at_sixty_percent():
    image = draw_pose([_person(neck=(40, 40), right_shoulder=(80, 40))], W, H)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert image[40, 40].tolist() == [255, 85, 0]  # neck joint, on top of the limb
    assert image[40, 80].tolist() == [255, 170, 0]  # right shoulder joint
    assert image[40, 60].tolist() == _limb_color("neck", "right_shoulder") == [153, 0, 0]  # limb 0 takes colour 0
    assert image[43, 60].tolist() == [153, 0, 0]  # within the 4 px minor half-axis
    assert image[46, 60].tolist() == [0, 0, 0]  # outside it
    assert image[0, 0].tolist() == [0, 0, 0] and image[H - 1, W - 1].tolist() == [0, 0, 0]


def test_vertical_limb_is_rotated_along_the_segment():
    image = draw_pose([_person(right_hip=(60, 10), right_knee=(60, 70))], W, H)
    assert image[40, 60].tolist() == _limb_color("right_hip", "right_knee")
    assert image[40, 63].tolist() == _limb_color("right_hip", "right_knee")
    assert image[40, 66].tolist() == [0, 0, 0]
    assert image[10, 60].tolist() == list(COLORS[KEYPOINT_NAMES.index("right_hip")])
    assert image[70, 60].tolist() == list(COLORS[KEYPOINT_NAMES.index("right_knee")])


def test_joint_radius_is_four_pixels():
    image = draw_pose([_person(nose=(60, 40))], W, H)
    assert image[40, 64].tolist() == [255, 0, 0]
    assert image[40, 65].tolist() == [0, 0, 0]
    assert image[44, 60].tolist() == [255, 0, 0] and image[45, 60].tolist() == [0, 0, 0]


def test_missing_keypoints_draw_nothing_of_theirs():
    only_nose = draw_pose([_person(nose=(60, 40))], W, H)
    assert np.count_nonzero(only_nose.any(axis=2)) <= 49  # one disc of radius 4, no limbs
    empty = draw_pose([_person()], W, H)
    assert not empty.any()
    assert not draw_pose([], W, H).any()
    # a limb with one end missing is not drawn, while its other end's joint still is
    image = draw_pose([_person(neck=(40, 40))], W, H)
    assert image[40, 60].tolist() == [0, 0, 0] and image[40, 40].tolist() == [255, 85, 0]


def test_several_people_share_the_palette():
    image = draw_pose([_person(nose=(20, 20)), _person(nose=(100, 60))], W, H)
    assert image[20, 20].tolist() == image[60, 100].tolist() == [255, 0, 0]


def test_bad_people_are_refused():
    with pytest.raises(InputError, match="18 keypoints"):
        draw_pose([[None] * 17], W, H)
    with pytest.raises(InputError, match="finite"):
        draw_pose([_person(nose=(float("nan"), 3.0))], W, H)


def _pose_json() -> dict:
    return {
        "width": W,
        "height": H,
        "frames": [
            {"frame": 5, "people": [_person(neck=[40.0, 40.0], right_shoulder=[80.0, 40.0])]},
            {"frame": 6, "people": []},
            {"frame": 7, "people": [_person(nose=[60.5, 40.25])]},
        ],
    }


def test_json_round_trip(tmp_path):
    sequence = keypoints_from_json(_pose_json())
    assert sequence.frames == [5, 6, 7] and (sequence.width, sequence.height) == (W, H)
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(keypoints_to_json(sequence)))
    again = keypoints_from_json(path)
    assert again == sequence
    assert keypoints_to_json(again)["frames"][2]["people"][0][0] == [60.5, 40.25]
    images = draw_pose_sequence(path)
    assert len(images) == 3 and not images[1].any()
    assert np.array_equal(images[0], draw_pose(sequence.people[0], W, H))
    assert len(draw_pose_sequence(path, start=1, count=2)) == 2


def test_draw_at_another_size_scales_keypoints():
    small, = draw_pose_sequence(_pose_json(), size=(60, 40), count=1)
    assert small.shape == (40, 60, 3)
    assert small[20, 20].tolist() == [255, 85, 0] and small[20, 40].tolist() == [255, 170, 0]


def test_json_errors_name_the_file_and_frame(tmp_path):
    bad = _pose_json()
    bad["frames"][1]["people"] = [[None] * 3]
    with pytest.raises(InputError, match="frame 6, person 0"):
        keypoints_from_json(bad)
    gap = _pose_json()
    del gap["frames"][1]
    with pytest.raises(InputError, match=r"not consecutive, missing \[6\]"):
        keypoints_from_json(gap)
    twice = _pose_json()
    twice["frames"][1]["frame"] = 5
    with pytest.raises(InputError, match="appears twice"):
        keypoints_from_json(twice)
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match=r"broken\.json"):
        keypoints_from_json(path)
    with pytest.raises(InputError, match="width and height"):
        keypoints_from_json({"width": 0, "height": 10, "frames": [{"frame": 0, "people": []}]})
    with pytest.raises(InputError, match="has 3 frames"):
        draw_pose_sequence(_pose_json(), start=2, count=2)
