"""Displacement fields and occlusion masks on disk (media/motion_fields.py): the three formats agree, bad files are
refused naming the frame."""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # before cv2 is imported: the tests write EXR files

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from t2vz_backend.errors import InputError  # noqa: E402
from t2vz_backend.media.motion_fields import PNG_OFFSET, PNG_SCALE, FieldStack  # noqa: E402


def field(frames: int = 3, h: int = 8, w: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    flow = np.round(rng.uniform(-40, 40, (frames, h, w, 2)) * PNG_SCALE) / PNG_SCALE  # exact in 16-bit PNG
    flow[0] = 0
    return flow.astype(np.float32)


def write_exr(folder, flow):
    folder.mkdir()
    for k, d in enumerate(flow):
        bgr = np.stack([np.zeros_like(d[..., 0]), d[..., 1], d[..., 0]], axis=-1)  # R = dx, G = dy
        assert cv2.imwrite(str(folder / f"flow_{k:04d}.exr"), bgr)


def write_png16(folder, flow):
    folder.mkdir()
    for k, d in enumerate(flow):
        rg = np.round(d * PNG_SCALE + PNG_OFFSET).astype(np.uint16)
        bgr = np.stack([np.zeros_like(rg[..., 0]), rg[..., 1], rg[..., 0]], axis=-1)
        assert cv2.imwrite(str(folder / f"flow_{k:04d}.png"), bgr)


def test_npy_exr_and_png16_give_the_same_displacements(tmp_path):
    flow = field()
    np.save(tmp_path / "flow.npy", flow)
    write_exr(tmp_path / "exr", flow)
    write_png16(tmp_path / "png", flow)
    for source in (tmp_path / "flow.npy", tmp_path / "exr", tmp_path / "png"):
        stack = FieldStack(str(source), "flow", "motion_flow")
        assert (stack.count, stack.size) == (3, (12, 8))
        for k in range(3):
            np.testing.assert_array_equal(stack.frame(k), flow[k])


def test_occlusion_masks_from_npy_and_images(tmp_path):
    masks = np.zeros((2, 8, 12), bool)
    masks[1, :, 9:] = True
    np.save(tmp_path / "occ.npy", masks)
    (tmp_path / "occ").mkdir()
    for k, m in enumerate(masks):
        cv2.imwrite(str(tmp_path / "occ" / f"m_{k}.png"), m.astype(np.uint8) * 255)
    for source in (tmp_path / "occ.npy", tmp_path / "occ"):
        stack = FieldStack(str(source), "occlusion", "motion_occlusion")
        np.testing.assert_array_equal(stack.frame(1), masks[1])


@pytest.mark.parametrize(("make", "words"), [
    (lambda d: np.save(d / "f.npy", np.zeros((3, 8, 12), np.float32)), "not (frames, H, W, 2)"),
    (lambda d: np.save(d / "f.npy", np.zeros((3, 8, 12, 2), np.int32)), "holds int32 values"),
    (lambda d: np.save(d / "f.npy", np.array([None, {"x": 1}], dtype=object), allow_pickle=True), "cannot read"),
    (lambda d: (d / "f.npy").write_bytes(b"\x93NUMPY garbage"), "cannot read"),
])
def test_bad_npy_stacks_are_refused(tmp_path, make, words):
    make(tmp_path)
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        FieldStack(str(tmp_path / "f.npy"), "flow", "motion_flow")
    assert info.value.field == "motion_flow" and info.value.hint


def test_non_finite_displacements_name_the_frame(tmp_path):
    flow = field()
    flow[2, 3, 4, 0] = np.inf
    np.save(tmp_path / "flow.npy", flow)
    stack = FieldStack(str(tmp_path / "flow.npy"), "flow", "motion_flow")
    stack.frame(1)
    with pytest.raises(InputError, match="displacement of frame 2 has values that are not finite"):
        stack.frame(2)


def test_eight_bit_maps_cannot_hold_displacements(tmp_path):
    (tmp_path / "png").mkdir()
    cv2.imwrite(str(tmp_path / "png" / "a.png"), np.zeros((8, 12, 3), np.uint8))
    with pytest.raises(InputError, match="cannot hold displacements"):
        FieldStack(str(tmp_path / "png"), "flow", "motion_flow")
