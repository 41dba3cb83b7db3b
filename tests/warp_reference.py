"""Independent reference warps (numpy) for the motion tests: the conventions of docs/camera_motion.md, written out.

Coordinates: pixel (or latent cell) (i, j) covers [i, i+1) x [j, j+1), its centre is (i + 0.5, j + 0.5).
"""

from __future__ import annotations

import numpy as np


def fold(index: np.ndarray, size: int) -> np.ndarray:
    """Symmetric reflection of integer indices (…, 1, 0 | 0, 1, …)."""
    index = np.mod(index, 2 * size)
    return np.where(index >= size, 2 * size - 1 - index, index)


def bilinear(image: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``image`` (C, h, w) sampled at ``source`` (h', w', 2) continuous coordinates, reflected at the borders."""
    _, h, w = image.shape
    x, y = source[..., 0] - 0.5, source[..., 1] - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    out = np.zeros((image.shape[0], *x.shape))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            out += image[:, fold(y0 + dy, h), fold(x0 + dx, w)] * (wy * wx)
    return out


def centres(h: int, w: int) -> np.ndarray:
    """(h, w, 2) centres (x, y) of every pixel."""
    v, u = np.mgrid[0:h, 0:w] + 0.5
    return np.stack([u, v], axis=-1)


def apply_homography(m: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mapped points, w) of ``points`` (..., 2) under the 3x3 ``m``."""
    q = np.einsum("ij,...j->...i", np.asarray(m, dtype=np.float64).reshape(3, 3),
                  np.concatenate([points, np.ones_like(points[..., :1])], axis=-1))
    return q[..., :2] / q[..., 2:], q[..., 2]


def warp_homography(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``image`` (C, h, w) of frame 0 seen in frame k, for ``m`` mapping frame-k points to frame 0."""
    source, _ = apply_homography(m, centres(*image.shape[1:]))
    return bilinear(image, source)


def to_cells(m: np.ndarray, scale: float) -> np.ndarray:
    """A pixel homography in latent cells of ``scale`` pixels: cell centre c is the pixel point scale·c."""
    s = np.diag([scale, scale, 1.0])
    return np.linalg.inv(s) @ np.asarray(m, dtype=np.float64).reshape(3, 3) @ s
