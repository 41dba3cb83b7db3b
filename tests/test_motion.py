"""The latent warp of motion dynamics (method.md §4)."""

from __future__ import annotations

import math

import pytest
import torch

from t2vz_backend.pipelines.motion import affine, translate, translation_shifts, warp_frames
from t2vz_backend.protocol import MotionKey


def _latent(h: int = 16, w: int = 24) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 4, h, w)


def test_zero_motion_is_the_identity():
    x = _latent()
    out = warp_frames(x, [0, 1, 5], motion_x=0.0, motion_y=0.0)
    assert torch.equal(out, x.expand(3, -1, -1, -1))


def test_frame_zero_is_never_moved():
    x = _latent()
    out = warp_frames(x, [0], motion_x=0.3, motion_y=-0.2)
    assert torch.equal(out[0], x[0])


def test_known_motion_moves_content_by_the_stated_amount():
    # 1/8 of the width per frame on a 24-px-wide latent: 3 px per frame; content moves left (out[p] = in[p + s]).
    x = _latent()
    out = warp_frames(x, [2], motion_x=1 / 8, motion_y=1 / 16)  # 6 px right, 2 px down in the source
    assert torch.equal(out[0, :, : 16 - 2, : 24 - 6], x[0, :, 2:, 6:])


def test_subpixel_motion_is_uniform_and_interpolated():
    x = torch.arange(24, dtype=torch.float32).repeat(1, 4, 16, 1)  # a horizontal ramp: value = x coordinate
    out = warp_frames(x, [1, 2, 3], motion_x=1.5 / 24, motion_y=0.0)  # 1.5 px per frame
    for i, k in enumerate([1, 2, 3]):
        torch.testing.assert_close(out[i, 0, 0, 5], torch.tensor(5 + 1.5 * k))


def test_reflection_at_the_border():
    x = torch.arange(8, dtype=torch.float32).repeat(1, 1, 1, 1).expand(1, 1, 2, 8).contiguous()
    out = translate(x, torch.tensor([[3.0, 0.0]]))
    assert out[0, 0, 0].tolist() == [3, 4, 5, 6, 7, 7, 6, 5]  # symmetric: ..., 7 | 7, 6, ...


def test_parity_mode_reproduces_the_reference_rounding():
    # 512x512 output -> 64x64 latent, lambda = 12 on the 512 grid: the reference's uneven 0, 1, 3, 4, 6, 7, 9, 10.
    shifts = translation_shifts(range(8), 12 / 512, 12 / 512, 64, 64, mode="parity")
    assert shifts[:, 0].tolist() == [0, 1, 3, 4, 6, 7, 9, 10]
    assert shifts[:, 1].tolist() == [0, 1, 3, 4, 6, 7, 9, 10]


def test_clean_mode_is_uniform():
    shifts = translation_shifts(range(8), 12 / 512, 0.0, 64, 64, mode="clean")
    assert [s / 1.5 for s in shifts[:, 0].tolist()] == list(range(8))


def test_shape_and_dtype_preserved():
    x = _latent().to(torch.float16)
    out = warp_frames(x, [1, 2], motion_x=0.05, motion_y=0.02)
    assert out.shape == (2, 4, 16, 24) and out.dtype == torch.float16


def test_affine_pan_matches_translation():
    x = _latent()
    pan = affine(x.expand(1, -1, -1, -1), [MotionKey(dx=3 / 24, dy=2 / 16)])
    shifted = translate(x, torch.tensor([[3.0, 2.0]]))
    torch.testing.assert_close(pan[:, :, :-2, :-3], shifted[:, :, :-2, :-3], atol=1e-5, rtol=1e-5)


def test_affine_identity_and_zoom():
    x = _latent()
    torch.testing.assert_close(affine(x, [MotionKey()]), x, atol=1e-5, rtol=1e-5)
    zoomed = affine(x, [MotionKey(zoom=2.0)])
    assert not torch.allclose(zoomed, x)
    rotated = affine(torch.ones(1, 1, 8, 8), [MotionKey(rotation=90.0)])
    torch.testing.assert_close(rotated, torch.ones(1, 1, 8, 8))
    assert math.isclose(float(affine(x, [MotionKey(rotation=360.0)]).sub(x).abs().max()), 0.0, abs_tol=1e-4)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        translation_shifts([1], 0.1, 0.1, 8, 8, mode="wobbly")
