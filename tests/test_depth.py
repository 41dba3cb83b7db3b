"""Depth maps: one near/far per shot (no per-frame stretching), near = bright, background black, nan/inf safe."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from t2vz_backend.conditions.depth import (
    depth_range,
    normalize_depth_shot,
    read_depth,
    read_depth_frames,
    shot_depth_range,
)
from t2vz_backend.errors import InputError, InvalidRequestError


def _ramp(lo: float, hi: float, size=(8, 4)) -> np.ndarray:
    return np.linspace(lo, hi, size[0] * size[1], dtype=np.float32).reshape(size[1], size[0])


def test_one_range_for_the_shot_maps_equal_depths_equally():
    wide, narrow = _ramp(1.0, 10.0), _ramp(4.0, 5.0)
    wide[0, 0] = narrow[0, 0] = 4.5
    a, b = normalize_depth_shot([wide, narrow])
    assert a.shape == (4, 8, 3) and a.dtype == np.uint8
    assert a[0, 0].tolist() == b[0, 0].tolist()  # same depth, same grey in both frames
    assert int(b.max()) - int(b.min()) < 40  # the narrow frame is not stretched to 0..255
    assert a.max() == 255 and a.min() == 0  # the shot's nearest point is white, its farthest black


def test_polarity_near_is_bright():
    near, far = normalize_depth_shot([np.array([[1.0, 10.0]], np.float32)], near=1.0, far=10.0)[0][0]
    assert near.tolist() == [255, 255, 255] and far.tolist() == [0, 0, 0]
    mid = normalize_depth_shot([np.array([[5.5]], np.float32)], near=1.0, far=10.0, dtype="float32")[0]
    assert mid.dtype == np.float32 and mid[0, 0, 0] == pytest.approx(0.5)


def test_explicit_range_clamps_and_is_not_recomputed():
    maps = normalize_depth_shot([np.array([[0.5, 2.0, 3.0, 20.0]], np.float32)], near=1.0, far=3.0)
    assert maps[0][0, :, 0].tolist() == [255, 128, 0, 0]


def test_background_and_non_finite_values_are_black():
    depth = np.array([[1.0, 2.0, 1e10, np.nan, np.inf, -np.inf]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps = normalize_depth_shot([depth])
    assert maps[0][0, :, 0].tolist() == [255, 0, 0, 0, 0, 0]
    assert depth_range([depth]) == (1.0, 2.0)


def test_range_ignores_background_over_all_frames():
    frames = [np.array([[3.0, 1e10]], np.float32), np.array([[np.nan, 7.0]], np.float32)]
    assert depth_range(frames) == (3.0, 7.0)
    assert depth_range(frames, invert=False) == (7.0, 3.0)
    assert depth_range(iter(frames)) == (3.0, 7.0)  # a generator works: long shots stream
    with pytest.raises(InputError, match="no depth values"):
        depth_range([np.full((2, 2), 1e10, np.float32)])


def test_inverse_depth_data_and_inverse_mapping():
    disparity = np.array([[0.9, 0.1]], np.float32)  # larger = nearer
    maps = normalize_depth_shot([disparity], invert=False)
    assert maps[0][0, :, 0].tolist() == [255, 0]
    inverse = normalize_depth_shot([np.array([[1.0, 2.0, 4.0]], np.float32)], mapping="inverse", dtype="float32")
    assert inverse[0][0, :, 0].tolist() == pytest.approx([1.0, 1 / 3, 0.0])  # linear in 1/d: 1, 1/2, 1/4
    with pytest.raises(InvalidRequestError):
        normalize_depth_shot([disparity], mapping="log")


def test_flat_shot_is_white_not_nan():
    maps = normalize_depth_shot([np.full((2, 2), 5.0, np.float32)])
    assert (maps[0] == 255).all()


def test_read_depth_sources(tmp_path):
    stack = np.stack([_ramp(1, 2), _ramp(3, 4), _ramp(5, 6)])
    np.save(tmp_path / "shot.npy", stack)
    frames = read_depth_frames(tmp_path / "shot.npy", start=1, count=2)
    assert len(frames) == 2 and np.array_equal(frames[0], stack[1]) and frames[1].dtype == np.float32
    assert shot_depth_range(tmp_path / "shot.npy") == (1.0, 6.0)
    with pytest.raises(InputError, match="has 3 frames"):
        read_depth_frames(tmp_path / "shot.npy", start=2, count=2)

    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(folder / "d_10.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(folder / "d_2.png")
    first, second = read_depth_frames(folder)
    assert first.max() == 0.0 and second.min() == pytest.approx(1.0)  # natural order, 16-bit scaled to 0..1


def test_read_exr_depth(tmp_path):
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    if os.environ["OPENCV_IO_ENABLE_OPENEXR"] != "1":
        pytest.skip("EXR disabled in this environment")
    z = _ramp(2.0, 50.0)
    z[0, 0] = 1e10
    cv2.imwrite(str(tmp_path / "z.exr"), z)
    depth = read_depth(tmp_path / "z.exr")
    assert depth.dtype == np.float32 and depth[0, 1] == pytest.approx(z[0, 1]) and depth[0, 0] > 1e9
    assert normalize_depth_shot([depth])[0][0, 0, 0] == 0  # empty Z is background
