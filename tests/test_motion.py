"""The latent warp of motion dynamics (docs/method.md §3, docs/camera_motion.md): drift, camera keys, homographies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from warp_reference import bilinear

from t2vz_backend import homography
from t2vz_backend.errors import InvalidRequestError
from t2vz_backend.pipelines.baseline import independent_stills
from t2vz_backend.pipelines.motion import DRIFT, HOMOGRAPHY, MotionPlan, plan_motion, translation_shifts
from t2vz_backend.pipelines.warp import homography_warp, translate
from t2vz_backend.protocol import ControlVideoRequest, EditVideoRequest, MotionKey, TextToVideoRequest


def _latent(h: int = 16, w: int = 24) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 4, h, w)


def drift(x: torch.Tensor, frames, mx: float, my: float, mode: str = "clean") -> torch.Tensor:
    return MotionPlan(DRIFT, tuple(x.shape[2:]), drift=(mx, my, mode)).warp(x, frames)[0]


def planned(x: torch.Tensor, frames, scale: int = 8, **fields):
    """The plan of a text->video request with ``fields`` for latents like ``x`` (output = latent size x scale)."""
    h, w = x.shape[2:]
    count = max(len(fields.get("motion_homographies", ())), len(fields.get("motion_path", ())), max(frames) + 1)
    request = TextToVideoRequest(output_dir="o", frames=count, width=w * scale, height=h * scale, **fields)
    return plan_motion(request, frames, count, (w * scale, h * scale), (h, w))


def test_zero_motion_is_the_identity():
    x = _latent()
    assert torch.equal(drift(x, [0, 1, 5], 0.0, 0.0), x.expand(3, -1, -1, -1))


def test_frame_zero_is_never_moved():
    x = _latent()
    assert torch.equal(drift(x, [0], 0.3, -0.2)[0], x[0])


def test_known_motion_moves_content_by_the_stated_amount():
    # 1/8 of the width per frame on a 24-px-wide latent: 3 px per frame; content moves left (out[p] = in[p + s]).
    x = _latent()
    out = drift(x, [2], 1 / 8, 1 / 16)  # 6 px right, 2 px down in the source
    assert torch.equal(out[0, :, : 16 - 2, : 24 - 6], x[0, :, 2:, 6:])


def test_subpixel_motion_is_uniform_and_interpolated():
    x = torch.arange(24, dtype=torch.float32).repeat(1, 4, 16, 1)  # a horizontal ramp: value = x coordinate
    out = drift(x, [1, 2, 3], 1.5 / 24, 0.0)  # 1.5 px per frame
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
    out = drift(x, [1, 2], 0.05, 0.02)
    assert out.shape == (2, 4, 16, 24) and out.dtype == torch.float16


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        translation_shifts([1], 0.1, 0.1, 8, 8, mode="wobbly")


# --- homographies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [(3.0, 2.0), (1.25, -0.5), (-7.75, 30.5), (50.0, 0.0)])
def test_a_translation_homography_equals_translate(shift):
    # The general kernel (grid_sample) against the index arithmetic of the drift, borders included.
    x = _latent().expand(2, -1, -1, -1)
    matrices = torch.tensor([homography.translation(*shift)] * 2, dtype=torch.float64).view(2, 3, 3)
    warped, holes = homography_warp(x, matrices)
    expected = translate(x, torch.tensor([shift] * 2, dtype=torch.float64))
    torch.testing.assert_close(warped, expected, atol=2e-5, rtol=1e-5)
    assert not holes.any()


def test_translation_homographies_take_the_exact_drift_path():
    x = _latent()
    frames = [1, 2, 3]
    # 3 latent cells (24 output pixels) right and 1 cell (8 pixels) down per frame: the drift of 3/24, 1/16.
    mats = tuple(homography.translation(24.0 * k, 8.0 * k) for k in range(4))
    plan = planned(x, frames, motion_homographies=mats)
    assert plan.kind == HOMOGRAPHY
    assert torch.equal(plan.warp(x, frames)[0], drift(x, frames, 3 / 24, 1 / 16))


def test_identity_homography_is_no_motion():
    x = _latent()
    plan = planned(x, [1, 2], motion_homographies=(homography.IDENTITY,) * 3)
    warped, holes = plan.warp(x, [1, 2])
    assert torch.equal(warped, x.expand(2, -1, -1, -1)) and not holes.any()


def _old_affine(latents: torch.Tensor, keys) -> torch.Tensor:
    """The camera-key warp as it was before homographies (affine_grid in normalised coordinates)."""
    n, _, h, w = latents.shape
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    for i, key in enumerate(keys):
        a = math.radians(key.rotation)
        cos, sin = math.cos(a) / key.zoom, math.sin(a) / key.zoom
        theta[i, 0] = torch.tensor([cos, -sin * h / w, 2 * key.dx])
        theta[i, 1] = torch.tensor([sin * w / h, cos, 2 * key.dy])
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False).to(torch.float32)
    return F.grid_sample(latents.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def test_camera_keys_give_the_same_latents_as_before():
    x = _latent()
    keys = (MotionKey(), MotionKey(dx=3 / 24, dy=2 / 16), MotionKey(zoom=1.3, rotation=12.0),
            MotionKey(dx=-0.05, dy=0.02, zoom=0.8, rotation=-30.0))
    plan = planned(x, [1, 2, 3], motion_path=keys)
    warped, _ = plan.warp(x, [1, 2, 3])
    torch.testing.assert_close(warped, _old_affine(x.expand(3, -1, -1, -1), keys[1:]), atol=2e-5, rtol=1e-5)


def test_homography_warp_matches_an_independent_reference():
    x = _latent()
    m = np.array([[1.05, 0.08, -1.5], [-0.04, 0.97, 0.8], [0.004, -0.002, 1.0]])
    warped, holes = homography_warp(x, torch.tensor(m)[None])
    v, u = np.mgrid[0:16, 0:24] + 0.5
    q = np.einsum("ij,jhw->hwi", m, np.stack([u, v, np.ones_like(u)]))
    expected = bilinear(x[0].double().numpy(), q[..., :2] / q[..., 2:])
    np.testing.assert_allclose(warped[0].numpy(), expected, atol=2e-5)
    assert not holes.any()


def test_the_latent_homography_keeps_pixel_centres():
    # A smooth picture at 256x192: warping it in pixels and averaging 8x8 blocks must match warping the averaged
    # (latent-size) picture with the engine's cell homography. A half-cell error in the convention would not.
    v, u = np.mgrid[0:192, 0:256] + 0.5
    image = np.stack([np.sin(u / 60.0) + np.cos(v / 45.0), np.sin((u + v) / 70.0)])[None]
    m = np.array([[0.97, 0.05, 9.0], [-0.03, 1.02, -6.0], [2e-4, 1e-4, 1.0]])
    q = np.einsum("ij,jhw->hwi", m, np.stack([u, v, np.ones_like(u)]))
    full = bilinear(image[0], q[..., :2] / q[..., 2:])
    expected = full.reshape(2, 24, 8, 32, 8).mean(axis=(2, 4))
    small = torch.tensor(image).reshape(1, 2, 24, 8, 32, 8).mean(dim=(3, 5)).float()
    request_h = tuple(m.ravel())
    plan = plan_motion(TextToVideoRequest(output_dir="o", frames=2, width=256, height=192,
                                          motion_homographies=(homography.IDENTITY, request_h)),
                       [1], 2, (256, 192), (24, 32))
    warped = plan.warp(small, [1])[0][0].double().numpy()
    inner = (slice(None), slice(3, -3), slice(3, -3))  # away from the reflected borders
    good = np.abs(warped - expected)[inner].mean()  # measured 0.0015: bilinear interpolation of the small picture
    # The same with pixel indices scaled (centres at integers): off by 3.5 px = 0.44 cells (measured 0.0047).
    shifted = homography.multiply(homography.translation(-3.5 / 8, -3.5 / 8), homography.multiply(
        homography.change_of_size(request_h, (256, 192), (32, 24)), homography.translation(3.5 / 8, 3.5 / 8)))
    wrong = homography_warp(small, torch.tensor(shifted).view(1, 3, 3))[0][0].double().numpy()
    assert good < 0.002 and 2 * good < np.abs(wrong - expected)[inner].mean()


def test_cells_beyond_the_horizon_are_holes():
    # A ground plane seen towards its horizon: the top rows of the frame map behind it (w <= 0).
    x = _latent()
    m = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.2, -1.0]], dtype=torch.float64)[None]  # w = 0.2y - 1
    _, holes = homography_warp(x, m)
    rows = holes[0, 0].any(dim=1).tolist()
    assert rows == [v + 0.5 <= 5.0 for v in range(16)]


def test_plan_refuses_a_homography_count_that_does_not_match_the_video():
    x = _latent()
    request = TextToVideoRequest(output_dir="o", frames=0, width=192, height=128,
                                 motion_homographies=(homography.IDENTITY,) * 2)
    with pytest.raises(InvalidRequestError) as info:
        plan_motion(request, [1, 2], 3, (192, 128), tuple(x.shape[2:]))
    assert info.value.field == "motion_homographies" and "3 frames" in info.value.message


@pytest.mark.parametrize("cls", [TextToVideoRequest, ControlVideoRequest, EditVideoRequest])
def test_the_baseline_has_no_camera_motion_in_any_mode(cls):
    moved = cls(output_dir="o", baseline=True, motion_homographies=(homography.IDENTITY,) * 2, motion_flow="f.npy",
                motion_occlusion="o.npy", motion_width=64, motion_height=48, motion_y=0.1)
    still, _ = independent_stills(moved, None)
    assert (still.motion_homographies, still.motion_flow, still.motion_occlusion, still.motion_y) == ((), "", "", 0)
