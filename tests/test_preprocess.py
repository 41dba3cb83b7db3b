"""Control-map preprocessors: canny = cv2.Canny, depth/pose from scene data or passed through, controlnet_aux gated."""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest
from PIL import Image

from t2vz_backend.conditions import preprocess
from t2vz_backend.conditions.pose import draw_pose
from t2vz_backend.conditions.preprocess import (
    PreprocessOptions,
    available_preprocessors,
    count_source_frames,
    preprocessor_problem,
    run_preprocessor,
)
from t2vz_backend.errors import DependencyError, InvalidRequestError


def _scene(seed: int = 0, size=(64, 48)) -> np.ndarray:
    """An RGB frame with a few filled shapes, so Canny finds edges."""
    rng = np.random.default_rng(seed)
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    for _ in range(4):
        x, y = int(rng.integers(0, size[0] - 16)), int(rng.integers(0, size[1] - 16))
        frame[y:y + 14, x:x + 14] = rng.integers(60, 256, 3, dtype=np.uint8)
    return frame


def test_registry_lists_builtins_and_detectors():
    names = available_preprocessors()
    for name in ("none", "raw", "canny", "depth", "pose", "hed", "midas", "openpose", "lineart"):
        assert name in names
    assert set(names) == set(preprocess.PREPROCESSORS)


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(InvalidRequestError, match="unknown preprocessor 'sobel'") as info:
        run_preprocessor("sobel", [_scene()])
    assert "canny" in info.value.hint and "pose" in info.value.hint and info.value.field == "preprocessor"
    problem = preprocessor_problem("sobel", field="controls[1].preprocessor")
    assert "'sobel'" in problem.message and "canny" in problem.hint and problem.field == "controls[1].preprocessor"
    assert preprocessor_problem("canny") is None


def test_canny_matches_opencv_and_has_three_binary_channels():
    frames = [_scene(0), _scene(1)]
    maps = run_preprocessor("canny", frames)
    assert len(maps) == 2
    for frame, edge_map in zip(frames, maps, strict=True):
        expected = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 100, 200)
        assert edge_map.shape == (48, 64, 3) and edge_map.dtype == np.uint8
        assert set(np.unique(edge_map)) <= {0, 255} and edge_map.any()
        assert np.array_equal(edge_map[..., 0], expected)
        assert np.array_equal(edge_map[..., 0], edge_map[..., 2])
    loose = run_preprocessor("canny", frames, PreprocessOptions(canny_low=10, canny_high=20))
    assert np.array_equal(loose[0][..., 0], cv2.Canny(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY), 10, 20))
    with pytest.raises(InvalidRequestError):
        run_preprocessor("canny", frames, PreprocessOptions(canny_low=50, canny_high=10))


def test_canny_from_a_folder_resizes_before_detecting(tmp_path):
    for i in range(3):
        Image.fromarray(_scene(i, (128, 96))).save(tmp_path / f"f_{i}.png")
    maps = run_preprocessor("canny", str(tmp_path), PreprocessOptions(start=1, count=2, size=(64, 48)))
    assert len(maps) == 2 and maps[0].shape == (48, 64, 3)
    assert set(np.unique(maps[0])) <= {0, 255}  # edges detected at the output size, not blurred by a resize


def test_none_passes_frames_through_and_resizes():
    frames = [_scene(0), _scene(1), _scene(2)]
    same = run_preprocessor("none", frames, PreprocessOptions(start=1))
    assert len(same) == 2 and np.array_equal(same[0], frames[1])
    small = run_preprocessor("raw", frames, PreprocessOptions(size=(32, 24)))
    assert small[0].shape == (24, 32, 3)


def test_depth_from_float_frames_uses_one_range_for_the_whole_source():
    shot = [np.full((4, 4), 2.0, np.float32), np.full((4, 4), 4.0, np.float32), np.full((4, 4), 6.0, np.float32)]
    maps = run_preprocessor("depth", shot)
    assert [int(m[0, 0, 0]) for m in maps] == [255, 128, 0]
    piece = run_preprocessor("depth", shot, PreprocessOptions(start=1, count=1))
    assert int(piece[0][0, 0, 0]) == 128  # a sub-range keeps the whole shot's near/far
    fixed = run_preprocessor("depth", shot, PreprocessOptions(depth_near=0.0, depth_far=8.0, count=1))
    assert int(fixed[0][0, 0, 0]) == 191


def test_depth_from_npy_and_drawn_maps_pass_through(tmp_path):
    np.save(tmp_path / "z.npy", np.stack([np.full((6, 8), v, np.float32) for v in (1.0, 3.0)]))
    maps = run_preprocessor("depth", str(tmp_path / "z.npy"), PreprocessOptions(start=1, size=(16, 12)))
    assert len(maps) == 1 and maps[0].shape == (12, 16, 3) and int(maps[0].max()) == 0  # farthest of the shot
    assert count_source_frames(str(tmp_path / "z.npy")) == 2
    drawn = np.full((6, 8, 3), 200, np.uint8)
    assert np.array_equal(run_preprocessor("depth", [drawn])[0], drawn)


def test_depth_from_an_exr_folder_of_blender_z(tmp_path):
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    if os.environ["OPENCV_IO_ENABLE_OPENEXR"] != "1":
        pytest.skip("EXR disabled in this environment")
    for i in range(4):
        z = np.full((24, 32), 2.0 + i, np.float32)
        z[:6] = 1e10  # Blender's empty Z: background
        cv2.imwrite(str(tmp_path / f"Image{i:04d}.exr"), z)
    maps = run_preprocessor("depth", str(tmp_path), PreprocessOptions(start=2, size=(16, 12)))
    assert len(maps) == 2 and maps[0].shape == (12, 16, 3)
    assert maps[0][-1, -1, 0] == 85 and maps[1][-1, -1, 0] == 0  # depths 4 and 5 of the shot's 2..5
    assert (maps[0][:2] == 0).all()  # background stays black after the (bilinear) resize


def test_pose_from_json_is_drawn_at_the_output_size_and_images_pass_through():
    person = [None] * 18
    person[0] = [40.0, 20.0]
    data = {"width": 80, "height": 40, "frames": [{"frame": 0, "people": [person]}, {"frame": 1, "people": []}]}
    assert count_source_frames(data) == 2
    maps = run_preprocessor("pose", data, PreprocessOptions(size=(160, 80)))
    assert len(maps) == 2 and maps[0].shape == (80, 160, 3)
    assert maps[0][40, 80].tolist() == [255, 0, 0] and not maps[1].any()
    skeleton = draw_pose([person], 80, 40)
    assert np.array_equal(run_preprocessor("pose", [skeleton])[0], skeleton)


def test_detector_needs_the_package(monkeypatch):
    monkeypatch.setattr(preprocess, "_aux_installed", lambda: False)
    with pytest.raises(DependencyError, match="controlnet_aux") as info:
        run_preprocessor("hed", [_scene()])
    assert "pip install controlnet-aux" in info.value.hint and "lllyasviel/Annotators" in info.value.hint


def test_detector_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setattr(preprocess, "_aux_installed", lambda: True)
    imported_before = "controlnet_aux" in sys.modules
    with pytest.raises(DependencyError, match="no annotators_dir") as info:
        run_preprocessor("hed", [_scene()])
    assert "lllyasviel/Annotators" in info.value.hint and "annotators_dir" in info.value.hint
    with pytest.raises(DependencyError, match=r"ControlNetHED\.pth are missing"):
        run_preprocessor("hed", [_scene()], PreprocessOptions(annotators_dir=str(tmp_path)))
    problem = preprocessor_problem("openpose", str(tmp_path))
    assert "body_pose_model.pth" in problem.message and "lllyasviel/Annotators" in problem.hint
    assert ("controlnet_aux" in sys.modules) == imported_before  # refused before any import


def test_detector_runs_from_local_weights(monkeypatch, tmp_path):
    """A stand-in controlnet_aux module: checks the call contract without importing the real package."""
    calls = {}

    class FakeHED:
        @classmethod
        def from_pretrained(cls, path):
            calls["path"] = path
            return cls()

        def __call__(self, image, detect_resolution, image_resolution, output_type):
            calls["args"] = (image.shape, detect_resolution, image_resolution, output_type)
            return np.full((32, 32), 255, np.uint8)  # a gray map at the detector's own resolution

    fake = types.ModuleType("controlnet_aux")
    fake.HEDdetector = FakeHED
    monkeypatch.setitem(sys.modules, "controlnet_aux", fake)
    monkeypatch.setattr(preprocess, "_aux_installed", lambda: True)
    (tmp_path / "ControlNetHED.pth").write_bytes(b"weights")
    options = PreprocessOptions(annotators_dir=str(tmp_path), detect_resolution=256)
    maps = run_preprocessor("hed", [_scene()], options)
    assert calls["path"] == str(tmp_path) and calls["args"] == ((48, 64, 3), 256, 256, "np")
    assert maps[0].shape == (48, 64, 3) and (maps[0] == 255).all()  # back at the source size, 3 channels
    assert preprocessor_problem("hed", str(tmp_path)) is None


def test_module_does_not_import_controlnet_aux_or_torch():
    import subprocess
    from pathlib import Path

    code = ("import sys, t2vz_backend.conditions.preprocess; "
            "print(any(m.split('.')[0] in ('controlnet_aux', 'torch', 'torchvision') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "False"
