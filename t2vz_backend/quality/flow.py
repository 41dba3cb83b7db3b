"""Optical flow between consecutive frames, the forward/backward occlusion check, and warping by a flow.

A flow field is an H x W x 2 float32 array in pixels, x to the right and y down: ``flow[y, x] = (dx, dy)`` says that
the point at pixel (x, y) of frame a is at (x + dx, y + dy) in frame b. Estimates come from OpenCV's DIS optical
flow (Kroeger et al. 2016: dense inverse search, coarse to fine, with variational refinement), run in both
directions on the grey levels of the two frames. DIS is fast enough on a CPU to measure every pair of a clip
(docs/benchmarks.md) and deterministic.

Occlusion: a pixel counts as visible in both frames when following the forward flow and then the backward flow
brings it back to where it started, up to the tolerance of Sundaram et al. (2010) used by the video-consistency
literature: ``|f + b|² <= 0.01 (|f|² + |b|²) + 0.5`` with ``b`` sampled at the forward target. Pixels whose target
falls outside the frame are excluded too. Everything excluded is left out of the error, so uncovered background
and objects leaving the frame do not count as flicker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRESET = "medium"  # DIS preset: ultrafast, fast or medium
OCCLUSION_ALPHA = 0.01  # the forward/backward tolerance's relative term ...
OCCLUSION_BETA = 0.5  # ... and its absolute term, in squared pixels


@dataclass(frozen=True)
class FlowPair:
    """The flows of one frame pair: ``forward`` from frame t to t+1, ``backward`` from t+1 to t."""

    forward: np.ndarray
    backward: np.ndarray


class DisFlow:
    """OpenCV's DIS optical flow, created once and reused for every pair of a clip."""

    def __init__(self, preset: str = PRESET) -> None:
        import cv2

        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(presets[preset])

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from RGB (or grey) frame ``a`` to frame ``b``."""
        return self._dis.calc(_grey(a), _grey(b), None)

    def pair(self, a: np.ndarray, b: np.ndarray) -> FlowPair:
        """Both directions between ``a`` (frame t) and ``b`` (frame t+1)."""
        return FlowPair(self.flow(a, b), self.flow(b, a))


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def sample_points(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) for ``cv2.remap``: where each pixel of frame t lands in frame t+1."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return grid_x + flow[..., 0], grid_y + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (frame t+1) sampled at ``x + flow(x)``: frame t+1 brought back onto frame t (bilinear, float32)."""
    import cv2

    map_x, map_y = sample_points(flow)
    return cv2.remap(np.asarray(image, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def visible_mask(flows: FlowPair) -> np.ndarray:
    """True where a pixel of frame t is seen in frame t+1: inside the frame and forward/backward consistent."""
    import cv2

    forward = flows.forward
    height, width = forward.shape[:2]
    map_x, map_y = sample_points(forward)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    back = cv2.remap(flows.backward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = np.sum((forward + back) ** 2, axis=2)
    tolerance = OCCLUSION_ALPHA * (np.sum(forward ** 2, axis=2) + np.sum(back ** 2, axis=2)) + OCCLUSION_BETA
    return inside & (loop <= tolerance)
