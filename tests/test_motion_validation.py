"""The motion fields of every mode are validated like every field: shapes, finite values, singular matrices, and
which frame is at fault (validation.py, homography.py)."""

from __future__ import annotations

import pytest

from t2vz_backend import homography
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, MotionKey, TextToVideoRequest
from t2vz_backend.validation import motion_source, validate_request

ID = homography.IDENTITY
ZOOM = (0.5, 0.0, 16.0, 0.0, 0.5, 16.0, 0.0, 0.0, 1.0)  # a 2x zoom into the centre of a 64x64 frame


def problems(**fields):
    request = TextToVideoRequest(output_dir="o", prompt="p", frames=3, width=64, height=64, **fields)
    return {p.field: p for p in validate_request(request)}


def test_good_homographies_pass_in_every_mode(tmp_path):
    assert problems(motion_homographies=(ID, ZOOM, ZOOM)) == {}
    for request in (ControlVideoRequest(output_dir="o", controls=(ControlSpec("canny", str(tmp_path)),),
                                        motion_homographies=(ID, ZOOM)),
                    EditVideoRequest(output_dir="o", instruction="snow", input=str(tmp_path),
                                     motion_homographies=(ID, ZOOM))):
        assert validate_request(request) == []
        assert motion_source(request) == "motion_homographies"


@pytest.mark.parametrize(("mats", "field", "words"), [
    ((ID, ZOOM), "motion_homographies", "2 entries in motion_homographies for 3 frames"),
    ((ID, ZOOM, (1.0, 2.0, 0.0, 2.0, 4.0, 0.0, 0.0, 0.0, 1.0)), "motion_homographies[2]", "frame 2 is singular"),
    ((ID, (0.0,) * 9, ZOOM), "motion_homographies[1]", "frame 1 is singular"),
    ((ID, ZOOM, (1.0, 0.0, float("nan"), 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)), "motion_homographies[2]", "not a finite"),
    ((ID, (1.0, 0.0), ZOOM), "motion_homographies[1]", "has 2 numbers, not 9"),
    ((ZOOM, ZOOM, ZOOM), "motion_homographies[0]", "frame 0 is not the identity"),
    ((ID, tuple(-v for v in ZOOM), ZOOM), "motion_homographies[1]", "behind the horizon"),
])
def test_bad_homographies_name_the_frame(mats, field, words):
    found = problems(motion_homographies=mats)
    assert field in found and words in found[field].message and found[field].hint, found


def test_a_scaled_homography_is_the_same_motion():
    assert problems(motion_homographies=(tuple(3 * v for v in ID), ZOOM, tuple(0.01 * v for v in ZOOM))) == {}


def test_one_motion_source_and_consistent_fields():
    both = problems(motion_homographies=(ID, ZOOM, ZOOM), motion_path=(MotionKey(),) * 3)
    assert "both give the camera motion" in both["motion_path"].message
    assert "needs displacement fields" in problems(motion_occlusion="occ.npy")["motion_occlusion"].message
    assert "do not exist" in problems(motion_flow="/no/such/flow.npy")["motion_flow"].message
    assert "both be set" in problems(motion_width=640)["motion_width"].message
    assert "above the maximum" in problems(motion_width=9000, motion_height=10)["motion_width"].message


def test_motion_width_changes_the_frame_the_check_uses():
    # The 2x zoom about (16, 16) is about the centre of a 32x32 frame: still fine, measured in that frame.
    assert problems(motion_homographies=(ID, ZOOM, ZOOM), motion_width=32, motion_height=32) == {}


def test_without_a_size_the_engine_judges_singularity(tmp_path):
    # A ControlNet job sized by its maps: a 600 px pan is fine once the size is known, so validation leaves it.
    pan = homography.translation(600.0, 0.0)
    request = ControlVideoRequest(output_dir="o", controls=(ControlSpec("canny", str(tmp_path)),),
                                  motion_homographies=(ID, pan))
    assert validate_request(request) == []
    assert problems(motion_homographies=(ID, pan, pan)) == {}


def test_guided_modes_have_no_motion_unless_asked(tmp_path):
    control = ControlVideoRequest(output_dir="o", controls=(ControlSpec("canny", str(tmp_path)),))
    assert motion_source(control) == "" and motion_source(TextToVideoRequest()) == "motion_x"
    assert motion_source(EditVideoRequest(motion_y=0.01)) == "motion_x"
