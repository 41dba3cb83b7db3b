"""Consistency metrics on synthetic clips with known motion: flow, occlusion mask, warp error, PSNR/SSIM, vectors.

Bounds: a smooth texture moved by whole or sub-pixel shifts scores a warp error below 1.0 of 255 levels (what is
left is the frames' 8-bit rounding and bilinear warping); a static clip scores exactly 0; the same frames out of
order, measured with their source's flow, score more than 10.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_clips import moving_clip, save_clip, texture

from t2vz_backend.quality.clips import SourceClip, result_frames
from t2vz_backend.quality.flow import DisFlow, FlowPair, visible_mask, warp
from t2vz_backend.quality.measure import FlowSettings, measure
from t2vz_backend.quality.pair_metrics import PSNR_MAX, measure_pair
from t2vz_backend.quality.vectors import resize_vectors, vector_flows

MOTION_BOUND = 1.0  # levels of 255


@pytest.mark.parametrize("step", [(1.0, 0.0), (2.0, -1.0), (1.5, 0.5), (0.25, 0.75)])
def test_known_motion_gives_a_warp_error_near_zero(tmp_path, step):
    folder = save_clip(tmp_path / "clip", moving_clip(4, step))
    result = measure(result_frames(folder), FlowSettings())
    assert len(result.pairs) == 3
    for pair in result.pairs:
        assert pair.warp_error < MOTION_BOUND, pair
        assert pair.psnr > 35 and pair.ssim > 0.98 and pair.occluded < 0.15


def test_a_static_clip_scores_zero(tmp_path):
    folder = save_clip(tmp_path / "static", [texture(48, 64)] * 3)
    for pair in measure(result_frames(folder), FlowSettings()).pairs:
        assert pair.warp_error == 0.0 and pair.psnr == PSNR_MAX and pair.occluded == 0.0
        assert pair.ssim == pytest.approx(1.0, abs=1e-6)


def test_shuffled_frames_measured_with_their_source_flow_score_large(tmp_path):
    frames = moving_clip(6, (1.5, 0.5))
    source = save_clip(tmp_path / "source", frames)
    in_order = save_clip(tmp_path / "ordered", frames)
    shuffled = save_clip(tmp_path / "shuffled", [frames[k] for k in (3, 0, 5, 1, 4, 2)])
    flow = FlowSettings(source=SourceClip(source))
    steady = measure(result_frames(in_order), flow).pairs
    broken = measure(result_frames(shuffled), flow).pairs
    assert max(p.warp_error for p in steady) < MOTION_BOUND
    assert np.mean([p.warp_error for p in broken]) > 10.0
    assert min(p.warp_error for p in broken) > 3 * MOTION_BOUND


def square_scene(step: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, FlowPair]:
    """A background moving ``step`` px right behind a static checkered square: frames t, t+1, the band of frame t
    that the square covers at t+1, and the exact flows."""
    square = np.zeros((20, 20, 3), np.uint8)
    square[::4], square[:, ::4] = 255, 255
    frames = []
    for t in range(2):
        image = texture(64, 64, step * t, 0).copy()
        image[22:42, 22:42] = square
        frames.append(image)
    covered = np.zeros((64, 64), bool)
    covered[22:42, 22 - step:22] = True
    inside = np.zeros((64, 64), bool)
    inside[22:42, 22:42] = True
    forward = np.where(inside[..., None], 0.0, [step, 0.0]).astype(np.float32)
    backward = np.where(inside[..., None], 0.0, [-step, 0.0]).astype(np.float32)
    return frames[0], frames[1], covered, FlowPair(forward, backward)


def test_an_occluding_square_is_excluded_by_the_mask():
    a, b, covered, exact = square_scene()
    mask = visible_mask(exact)
    error = np.abs(a.astype(np.float32) - warp(b, exact.forward)).mean(axis=2)
    assert not mask[covered].any()  # the background the square covers next frame is left out ...
    assert error[covered].mean() > 5.0  # ... where warping can only compare it with the square
    assert error[mask].max() < 0.5  # everything else matches
    assert measure_pair(a, b, exact).warp_error < 0.5
    estimated = visible_mask(DisFlow().pair(a, b))  # DIS finds the occlusion too (its flow is smooth at edges)
    assert (~estimated[covered]).mean() > 0.7


def test_the_vector_pass_layout_becomes_forward_and_backward_flow():
    current = np.zeros((4, 6, 4), np.float32)
    following = np.zeros((4, 6, 4), np.float32)
    current[..., 2:] = (-2.0, -1.0)  # here minus next, y up: the surface moves 2 px right and 1 px up
    following[..., :2] = (-2.0, -1.0)  # previous minus here, y up
    flows = vector_flows(current, following)
    assert np.array_equal(flows.forward[0, 0], [2.0, -1.0]) and np.array_equal(flows.backward[0, 0], [-2.0, 1.0])
    assert visible_mask(flows)[1:, :4].all()
    bigger = resize_vectors(current, (12, 8))
    assert bigger.shape == (8, 12, 4) and np.array_equal(bigger[3, 3], [0.0, 0.0, -4.0, -2.0])
