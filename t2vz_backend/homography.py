"""3x3 homographies as 9 numbers (row-major), in pixel coordinates: the torch-free maths the contract needs.

Conventions (docs/camera_motion.md): the origin is the top-left corner of the frame, x right, y down, pixel (i, j)
covers [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). A motion homography H_k maps a point of frame k
to the point of frame 0 that shows the same content: (x0, y0, w)ᵀ = H_k (xk, yk, 1)ᵀ, then divide by w.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Matrix = Sequence[float]  # 9 numbers, row by row

IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def multiply(a: Matrix, b: Matrix) -> tuple[float, ...]:
    """a·b."""
    return tuple(sum(a[3 * i + t] * b[3 * t + j] for t in range(3)) for i in range(3) for j in range(3))


def determinant(m: Matrix) -> float:
    return (m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
            + m[2] * (m[3] * m[7] - m[4] * m[6]))


def translation(dx: float, dy: float) -> tuple[float, ...]:
    """The homography that reads frame 0 at p + (dx, dy): content moves by (-dx, -dy)."""
    return (1.0, 0.0, dx, 0.0, 1.0, dy, 0.0, 0.0, 1.0)


def scaling(sx: float, sy: float) -> tuple[float, ...]:
    return (sx, 0.0, 0.0, 0.0, sy, 0.0, 0.0, 0.0, 1.0)


def change_of_size(m: Matrix, size: tuple[float, float], new_size: tuple[float, float]) -> tuple[float, ...]:
    """``m`` (pixels of a ``size`` frame) for the same frame stretched to ``new_size``: S·M·S⁻¹, S = new/old.

    Corners map to corners, so pixel centres keep their meaning: the centre of a block of pixels maps to the centre
    of the cell it becomes (docs/camera_motion.md, "latent resolution").
    """
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    return multiply(multiply(scaling(sx, sy), m), scaling(1 / sx, 1 / sy))


def normalised_determinant(m: Matrix, width: float = 0, height: float = 0) -> float:
    """How far from singular ``m`` is, independent of its scale and (given the frame size) of the pixel units.

    The matrix is taken to frame-normalised coordinates (the frame spans -1..1 on both axes) and scaled so that its
    largest entry is 1; the determinant is then 1 for the identity, 0.01 for a 10x zoom, 0 for a matrix that
    squashes the frame onto a line. Without a size the pixel matrix itself is used (its translations, in pixels,
    then weigh more than its scale: only a test for exact singularity).
    """
    if width and height:
        to_unit = (2.0 / width, 0.0, -1.0, 0.0, 2.0 / height, -1.0, 0.0, 0.0, 1.0)
        from_unit = (width / 2.0, 0.0, width / 2.0, 0.0, height / 2.0, height / 2.0, 0.0, 0.0, 1.0)
        m = multiply(multiply(to_unit, m), from_unit)
    top = max(abs(v) for v in m)
    return determinant([v / top for v in m]) if top > 0 and math.isfinite(top) else 0.0


def in_front(m: Matrix, width: float, height: float) -> bool:
    """True when ``m`` maps some of the frame's corners or its centre to w > 0 (in front, not behind the horizon)."""
    points = ((0, 0), (width, 0), (0, height), (width, height), (width / 2, height / 2))
    return any(m[6] * x + m[7] * y + m[8] > 0 for x, y in points)


def is_identity(m: Matrix, tolerance: float = 1e-6) -> bool:
    """True when ``m`` is the identity up to its (free) scale."""
    if not m[8]:
        return False
    return all(abs(v / m[8] - e) <= tolerance for v, e in zip(m, IDENTITY))


def is_translation(m: Matrix) -> bool:
    """True when ``m`` (up to scale) only shifts: exactly the motion ``translate`` performs."""
    return bool(m[8]) and all(abs(m[i] / m[8] - e) == 0 for i, e in ((0, 1), (1, 0), (3, 0), (4, 1), (6, 0), (7, 0)))


def key_homography(dx: float, dy: float, zoom: float, rotation: float, width: float, height: float
                   ) -> tuple[float, ...]:
    """A camera key (pan as fractions of the frame, zoom > 1 zooms in, roll in degrees) as a pixel homography.

    Frame k reads frame 0 at c + R(θ)·(p − c)/zoom + (dx·W, dy·H), c the frame centre: a pure pan moves content
    exactly like the constant drift with the same fractions.
    """
    a = math.radians(rotation)
    cos, sin = math.cos(a) / zoom, math.sin(a) / zoom
    cx, cy = width / 2.0, height / 2.0
    return (cos, -sin, cx + dx * width - cos * cx + sin * cy,
            sin, cos, cy + dy * height - sin * cx - cos * cy,
            0.0, 0.0, 1.0)
