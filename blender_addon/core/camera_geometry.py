"""Blender camera geometry as plain matrices (no bpy): pixels of a render, homographies between frames, and the
per-pixel reprojection of a depth map (docs/camera_motion.md).

Pixel coordinates are those of the motion contract: origin at the top-left corner of the render, x right, y down,
pixel (i, j) covering [i, i+1) x [j, j+1) (its centre is (i + 0.5, j + 0.5)); a motion maps a point of frame k to
the point of frame 0 that shows the same content. Camera space is the computer-vision one: x right, y down, z
forward (Blender's camera looks down its local -z with +y up: the two differ by a half turn about x). Lengths are
Blender units; depth is *planar* (along the view axis), as Blender's Z pass stores it.

Intrinsics follow Blender's view plane (``BKE_camera_params_compute_viewplane``): the sensor size is the sensor
height for a Vertical fit and the width otherwise; Auto fits the larger side of the frame measured with the pixel
aspect; the fitted side spans the sensor (``viewfac`` pixels), rows are ``ycor = aspect_y / aspect_x`` view-plane
units tall; shift moves the view plane by ``shift · viewfac`` pixels. An orthographic camera's fitted side spans
``ortho_scale`` units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERSPECTIVE, ORTHOGRAPHIC, PANORAMIC = "PERSP", "ORTHO", "PANO"
BACKGROUND = 1e9  # a Z at or beyond this is "no geometry" (Blender writes ~1e10), as in scene_passes/depth.py
_CV_FROM_BLENDER = np.diag([1.0, -1.0, -1.0])  # Blender camera axes -> computer-vision camera axes


@dataclass(frozen=True)
class CameraView:
    """One frame's camera as plain numbers: what the bpy layer reads from the camera and the render settings."""

    kind: str  # PERSPECTIVE, ORTHOGRAPHIC or PANORAMIC
    width: int  # render size in pixels, after the resolution percentage
    height: int
    matrix_world: tuple[tuple[float, ...], ...]  # 4x4 camera -> world (its scale is ignored, as Blender does)
    lens: float = 50.0  # focal length, mm
    ortho_scale: float = 6.0
    sensor_width: float = 36.0  # mm
    sensor_height: float = 24.0
    sensor_fit: str = "AUTO"  # "AUTO", "HORIZONTAL", "VERTICAL"
    shift_x: float = 0.0  # fractions of the fitted side
    shift_y: float = 0.0
    pixel_aspect: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class Plane:
    """A plane in world space: a point on it and two independent directions in it (content moves with it)."""

    origin: tuple[float, float, float]
    axis_u: tuple[float, float, float]
    axis_v: tuple[float, float, float]


GROUND = Plane((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))  # world z = 0


def intrinsics(view: CameraView) -> np.ndarray:
    """3x3 K: camera-space (x/z, y/z, 1) -> pixels for a perspective camera, (x, y, 1) -> pixels for an orthographic
    one (units of the view plane instead of directions)."""
    ax, ay = view.pixel_aspect
    fit = view.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if view.width * ax >= view.height * ay else "VERTICAL"
    ycor = ay / ax
    viewfac = view.width if fit == "HORIZONTAL" else ycor * view.height
    if view.kind == ORTHOGRAPHIC:
        unit = view.ortho_scale / viewfac  # view-plane units per pixel
    else:
        sensor = view.sensor_height if view.sensor_fit == "VERTICAL" else view.sensor_width
        unit = sensor / (view.lens * viewfac)  # tangent units per pixel
    cx = view.width / 2.0 - view.shift_x * viewfac
    cy = view.height / 2.0 + view.shift_y * viewfac / ycor
    return np.array([[1.0 / unit, 0.0, cx], [0.0, 1.0 / (unit * ycor), cy], [0.0, 0.0, 1.0]])


def extrinsics(view: CameraView) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with camera-space point = R·world + t (the world matrix's rotation, its scale removed)."""
    m = np.asarray(view.matrix_world, dtype=np.float64)
    rotation = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
    r = _CV_FROM_BLENDER @ rotation.T
    return r, -r @ m[:3, 3]


def projection(view: CameraView) -> np.ndarray:
    """3x4 P: homogeneous world point -> homogeneous pixel; the third coordinate is the planar depth (perspective)
    or 1 (orthographic)."""
    _check_kind(view)
    k = intrinsics(view)
    r, t = extrinsics(view)
    rt = np.hstack([r, t[:, None]])
    if view.kind == ORTHOGRAPHIC:
        rt = np.vstack([rt[:2], [0.0, 0.0, 0.0, 1.0]])
    return k @ rt


def _check_kind(view: CameraView) -> None:
    if view.kind not in (PERSPECTIVE, ORTHOGRAPHIC):
        raise ValueError(f"camera type {view.kind!r} has no homography")  # the bpy layer refuses it first


def _plane_map(view: CameraView, plane: Plane) -> np.ndarray:
    """3x3 M: plane coordinates (a, b, 1) -> homogeneous pixel of ``view`` (third coordinate: planar depth)."""
    basis = np.array([[*plane.axis_u, 0.0], [*plane.axis_v, 0.0], [*plane.origin, 1.0]]).T  # 4x3
    return projection(view) @ basis


def _positive(h: np.ndarray) -> tuple[float, ...]:
    """H scaled by a positive factor to h22 = 1 (or largest entry 1): the sign carries in front/behind."""
    scale = abs(h[2, 2]) if abs(h[2, 2]) > 1e-12 * np.abs(h).max() else np.abs(h).max()
    return tuple(float(v) for v in (h / scale).ravel())


def plane_homography(view: CameraView, view0: CameraView, plane: Plane, plane0: Plane | None = None
                     ) -> tuple[float, ...]:
    """Frame k -> frame 0 over ``plane`` (where it is at frame k; ``plane0`` where it is at frame 0, if it moves).

    H = M₀·M_k⁻¹ with M the plane-to-pixel map of each frame. A point of the plane in front of both cameras maps
    with w = z₀/z_k > 0; a pixel whose ray misses the plane (above the horizon) maps to w <= 0.
    """
    mk = _plane_map(view, plane)
    if abs(np.linalg.det(mk)) < 1e-12 * max(np.abs(mk).max(), 1.0) ** 3:
        raise ValueError("the camera sees the plane edge-on")
    return _positive(_plane_map(view0, plane0 or plane) @ np.linalg.inv(mk))


def infinite_homography(view: CameraView, view0: CameraView) -> tuple[float, ...]:
    """Frame k -> frame 0 for content infinitely far away (exact for a camera that only turns): K₀·R₀·R_kᵀ·K_k⁻¹.

    An orthographic camera has no points at infinity: its distant background is taken as the plane through frame
    0's camera facing it (exact for pans, rolls and ortho-scale zooms).
    """
    _check_kind(view)
    if view.kind == ORTHOGRAPHIC or view0.kind == ORTHOGRAPHIC:
        r0, _ = extrinsics(view0)
        m = np.asarray(view0.matrix_world, dtype=np.float64)
        facing = Plane(tuple(m[:3, 3]), tuple(r0[0]), tuple(r0[1]))
        return plane_homography(view, view0, facing)
    rk, _ = extrinsics(view)
    r0, _ = extrinsics(view0)
    return _positive(intrinsics(view0) @ r0 @ rk.T @ np.linalg.inv(intrinsics(view)))


def plane_coverage(view: CameraView, view0: CameraView, plane: Plane, plane0: Plane | None = None,
                   samples: int = 9) -> float:
    """Share of frame k (a ``samples`` x ``samples`` grid) whose rays hit the plane in front of both cameras."""
    mk, m0 = _plane_map(view, plane), _plane_map(view0, plane0 or plane)
    u = (np.arange(samples) + 0.5) / samples
    points = np.stack(np.meshgrid(u * view.width, u * view.height), axis=-1).reshape(-1, 2)
    coords = np.linalg.solve(mk, np.hstack([points, np.ones((len(points), 1))]).T)  # (a, b, 1)/z_k
    in_front_k = coords[2] > 0 if view.kind == PERSPECTIVE else np.ones(len(points), bool)
    seen0 = (m0 @ (coords / coords[2]))[2] > 0 if view0.kind == PERSPECTIVE else np.ones(len(points), bool)
    return float(np.mean(in_front_k & seen0))


def same_position(views: Sequence[CameraView], tolerance: float = 1e-6) -> bool:
    """True when the camera only turns (and zooms) over ``views``: every centre within ``tolerance`` of the first,
    relative to the size of the scene the cameras span (1 unit at least)."""
    centres = np.array([np.asarray(v.matrix_world, dtype=np.float64)[:3, 3] for v in views])
    spread = np.abs(centres - centres[0]).max()
    return bool(spread <= tolerance * max(1.0, np.abs(centres).max()))


def pixel_centres(width: int, height: int) -> np.ndarray:
    """(height, width, 2) centres (x, y) of every pixel."""
    v, u = np.mgrid[0:height, 0:width] + 0.5
    return np.stack([u, v], axis=-1)


def distance_to_planar(distance: np.ndarray, view: CameraView) -> np.ndarray:
    """Planar depth (along the view axis) from the distance along each pixel's ray: z = d / |K⁻¹·p|.

    For passes that store ray length (Blender's Mist, other renderers' depth); Blender's Z pass is planar already
    (tests/test_camera_oracle.py measures it). Orthographic rays are parallel to the axis: the two are the same.
    """
    if view.kind == ORTHOGRAPHIC:
        return distance
    rays = _rays(view, pixel_centres(view.width, view.height))
    return distance / np.linalg.norm(rays, axis=-1)


def _rays(view: CameraView, points: np.ndarray) -> np.ndarray:
    """Camera-space directions with z = 1 through pixel points (..., 2) of a perspective camera."""
    k_inv = np.linalg.inv(intrinsics(view))
    return np.concatenate([points, np.ones_like(points[..., :1])], axis=-1) @ k_inv.T


def unproject(view: CameraView, depth: np.ndarray) -> np.ndarray:
    """World points (H, W, 3) seen at each pixel centre of ``view`` at planar ``depth`` (H, W)."""
    points = pixel_centres(view.width, view.height)
    if view.kind == ORTHOGRAPHIC:
        k_inv = np.linalg.inv(intrinsics(view))
        plane = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1) @ k_inv.T
        camera = np.concatenate([plane[..., :2], depth[..., None]], axis=-1)
    else:
        camera = _rays(view, points) * depth[..., None]
    r, t = extrinsics(view)
    return (camera - t) @ r  # Rᵀ·(x − t), row-wise


def project(view: CameraView, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (..., 2), planar depth (...)) of world points (..., 3) in ``view``."""
    r, t = extrinsics(view)
    camera = world @ r.T + t
    k = intrinsics(view)
    depth = camera[..., 2]
    if view.kind == ORTHOGRAPHIC:
        plane = camera[..., :2]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            plane = camera[..., :2] / depth[..., None]
    pixels = plane @ k[:2, :2].T + k[:2, 2]
    return pixels, depth


def sample_nearest(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``image`` (H, W) at the pixel containing each point (..., 2); points outside the image read NaN."""
    h, w = image.shape
    with np.errstate(invalid="ignore"):
        i = np.floor(pixels[..., 0]).astype(np.int64, copy=False)
        j = np.floor(pixels[..., 1]).astype(np.int64, copy=False)
    inside = (i >= 0) & (i < w) & (j >= 0) & (j < h) & np.isfinite(pixels).all(axis=-1)
    out = np.full(pixels.shape[:-1], np.nan)
    out[inside] = image[j[inside], i[inside]]
    return out


def depth_reprojection(depth: np.ndarray, view: CameraView, depth0: np.ndarray, view0: CameraView,
                       tolerance: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of frame k is in frame 0, and whether frame 0 shows it.

    Args:
        depth, depth0: planar depth of frame k and of frame 0 (H, W), background >= ``BACKGROUND``.
        tolerance: relative depth difference above which the point is behind something in frame 0.

    Returns (displacement (H, W, 2) float32 pixels, occluded (H, W) bool). Geometry moves by full reprojection;
    background (no geometry) moves as content at infinity. A pixel is occluded (disoccluded in frame k) when its
    point is behind frame 0's camera, outside frame 0, or hidden there by something nearer; background is occluded
    where frame 0 shows geometry at its place.
    """
    points = pixel_centres(view.width, view.height)
    background = ~(np.isfinite(depth) & (depth < BACKGROUND))
    target = np.zeros_like(points)
    visible = np.zeros(depth.shape, bool)
    solid = ~background
    if solid.any():
        world = unproject(view, np.where(solid, depth, 1.0))
        pixels, z0 = project(view0, world)
        ahead = z0 > 0 if view0.kind == PERSPECTIVE else np.ones_like(z0, bool)
        seen = sample_nearest(np.where(np.isfinite(depth0), depth0, np.inf), np.where(ahead[..., None], pixels, -1))
        with np.errstate(invalid="ignore"):  # NaN (outside frame 0) compares False: not visible
            visible |= solid & ahead & (z0 <= seen * (1 + tolerance) + 1e-6)
        target[solid] = np.where(ahead[..., None], pixels, points)[solid]
    if background.any():
        far = np.asarray(infinite_homography(view, view0)).reshape(3, 3)
        q = np.concatenate([points, np.ones_like(points[..., :1])], axis=-1) @ far.T
        ahead = q[..., 2] > 1e-12
        pixels = np.where(ahead[..., None], q[..., :2] / np.where(ahead, q[..., 2], 1.0)[..., None], points)
        seen = sample_nearest(np.where(np.isfinite(depth0), depth0, np.inf), pixels)
        with np.errstate(invalid="ignore"):
            visible |= background & ahead & (seen >= BACKGROUND)
        target[background] = pixels[background]
    flow = (target - points).astype(np.float32)
    return flow, ~visible
