"""Camera geometry without Blender (blender_addon/core/camera_geometry.py): homographies and depth reprojection
agree with projecting the same world points, intrinsics follow Blender's view-plane rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blender_addon.core import camera_geometry as cg


def world_matrix(location, rotation_deg, scale=1.0) -> tuple[tuple[float, ...], ...]:
    """Blender's matrix_world for an XYZ Euler rotation (R = Rz·Ry·Rx)."""
    x, y, z = (math.radians(a) for a in rotation_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx * scale
    m[:3, 3] = location
    return tuple(map(tuple, m))


def view(location=(0, -8, 5), rotation=(60, 0, 0), **fields) -> cg.CameraView:
    fields = {"kind": cg.PERSPECTIVE, "width": 64, "height": 48, **fields}
    return cg.CameraView(matrix_world=world_matrix(location, rotation, fields.pop("scale", 1.0)), **fields)


def apply(h, points):
    q = np.hstack([points, np.ones((len(points), 1))]) @ np.reshape(h, (3, 3)).T
    return q[:, :2] / q[:, 2:], q[:, 2]


def ground_points(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return np.hstack([rng.uniform(-3, 3, (n, 2)), np.zeros((n, 1))])


def test_the_principal_point_and_focal_length_follow_blender():
    k = cg.intrinsics(view(lens=50.0))  # 36 mm sensor across 64 px (horizontal fit of a landscape frame)
    assert k[0, 0] == pytest.approx(50 / 36 * 64) and k[1, 1] == pytest.approx(k[0, 0])
    assert (k[0, 2], k[1, 2]) == (32.0, 24.0)
    portrait = cg.intrinsics(view(width=48, height=64, sensor_fit="AUTO"))
    assert portrait[1, 1] == pytest.approx(50 / 36 * 64)  # Auto fits the longer side: the height
    vertical = cg.intrinsics(view(sensor_fit="VERTICAL", sensor_height=24.0))
    assert vertical[1, 1] == pytest.approx(50 / 24 * 48)
    shifted = cg.intrinsics(view(shift_x=0.1, shift_y=0.05))
    assert (shifted[0, 2], shifted[1, 2]) == pytest.approx((32 - 6.4, 24 + 3.2))  # shift up moves content down
    wide = cg.intrinsics(view(pixel_aspect=(2.0, 1.0)))  # pixels twice as wide: rows cover half the height
    assert wide[1, 1] == pytest.approx(2 * wide[0, 0])


def test_the_camera_looks_down_its_minus_z_and_up_is_up():
    v = view(location=(0, 0, 10), rotation=(0, 0, 0))  # straight down at the ground, +y at the top of the frame
    pixels, depth = cg.project(v, np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert depth.tolist() == pytest.approx([10, 10, 10])
    assert pixels[0] == pytest.approx([32, 24])
    assert pixels[1][0] > 32 and pixels[2][1] < 24  # +x to the right, +y up (smaller rows)


def test_object_scale_does_not_change_the_view():
    points = ground_points()
    a, _ = cg.project(view(), points)
    b, _ = cg.project(view(scale=3.0), points)
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("move", [
    {"rotation": (60, 0, 8)},  # pan
    {"rotation": (52, 0, 0)},  # tilt
    {"location": (0, -6, 4)},  # dolly
    {"lens": 70.0},  # zoom
    {"location": (1, -7, 5.5), "rotation": (58, 4, -6), "lens": 40.0, "shift_x": 0.05},  # everything
])
def test_the_plane_homography_maps_frame_k_points_onto_frame_0(move):
    v0, vk = view(), view(**move)
    points = ground_points()
    p0, _ = cg.project(v0, points)
    pk, _ = cg.project(vk, points)
    mapped, w = apply(cg.plane_homography(vk, v0, cg.GROUND), pk)
    np.testing.assert_allclose(mapped, p0, atol=1e-8)
    assert (w > 0).all()


def test_a_moving_plane_carries_its_content():
    v = view()
    plane0 = cg.Plane((0, 0, 0), (1, 0, 0), (0, 1, 0))
    planek = cg.Plane((0.5, 0.2, 0), (1, 0, 0), (0, 1, 0))  # slid by (0.5, 0.2): the picture on it too
    ab = np.random.default_rng(1).uniform(-2, 2, (20, 2))
    p0, _ = cg.project(v, np.hstack([ab, np.zeros((20, 1))]))
    pk, _ = cg.project(v, np.hstack([ab + [0.5, 0.2], np.zeros((20, 1))]))
    mapped, _ = apply(cg.plane_homography(v, v, planek, plane0), pk)
    np.testing.assert_allclose(mapped, p0, atol=1e-8)


def test_pure_rotation_needs_no_plane():
    v0 = view(rotation=(80, 0, 0))
    vk = view(rotation=(75, 3, 10), lens=60.0)
    assert cg.same_position([v0, vk])
    rng = np.random.default_rng(2)
    far = rng.uniform(-1, 1, (30, 3)) * 3 + [0, 30, 5]  # anything in front, at any distance
    p0, _ = cg.project(v0, far)
    pk, _ = cg.project(vk, far)
    mapped, w = apply(cg.infinite_homography(vk, v0), pk)
    np.testing.assert_allclose(mapped, p0, atol=1e-8)
    assert (w > 0).all() and not cg.same_position([v0, view(location=(0, -8, 5.1))])


def test_orthographic_cameras_give_affine_homographies():
    v0 = view(kind=cg.ORTHOGRAPHIC, location=(0, 0, 10), rotation=(0, 0, 0), ortho_scale=6.0)
    vk = view(kind=cg.ORTHOGRAPHIC, location=(0.5, 0.3, 10), rotation=(0, 0, 5), ortho_scale=5.0)
    h = np.reshape(cg.plane_homography(vk, v0, cg.GROUND), (3, 3))
    np.testing.assert_allclose(h[2], [0, 0, 1], atol=1e-12)
    points = ground_points()
    mapped, _ = apply(h, cg.project(vk, points)[0])
    np.testing.assert_allclose(mapped, cg.project(v0, points)[0], atol=1e-8)
    np.testing.assert_allclose(np.reshape(cg.infinite_homography(vk, v0), (3, 3)), h, atol=1e-9)  # facing plane


def test_panoramic_cameras_are_refused():
    with pytest.raises(ValueError, match="no homography"):
        cg.projection(view(kind=cg.PANORAMIC))


def test_the_horizon_in_shot_lowers_the_coverage():
    low = view(location=(0, -8, 1.5), rotation=(85, 0, 0))  # looking nearly level: sky in the top half
    assert cg.plane_coverage(low, low, cg.GROUND) < 0.7
    assert cg.plane_coverage(view(location=(0, -7, 1.5), rotation=(85, 0, 0)), low, cg.GROUND) < 0.7
    assert cg.plane_coverage(view(), view(), cg.GROUND) == 1.0


def test_ground_behind_frame_0s_camera_maps_behind_the_horizon():
    back = view(rotation=(60, 0, 180))  # turned round: the ground it sees is behind frame 0's camera
    assert cg.plane_coverage(back, view(), cg.GROUND) == 0.0
    _, w = apply(cg.plane_homography(back, view(), cg.GROUND), np.array([[32.0, 24.0]]))
    assert w[0] < 0


def test_depth_reprojection_of_a_plane_is_its_homography():
    v0, vk = view(), view(location=(0.3, -7.5, 4.8), rotation=(58, 0, 4))
    depth = {}
    for name, v in (("0", v0), ("k", vk)):
        rays = cg.unproject(v, np.ones((48, 64))) - np.asarray(v.matrix_world)[:3, 3]  # world rays with z_cam = 1
        depth[name] = -np.asarray(v.matrix_world)[2, 3] / rays[..., 2]  # where each ray meets z = 0
    flow, occluded = cg.depth_reprojection(depth["k"], vk, depth["0"], v0)
    target, _ = apply(cg.plane_homography(vk, v0, cg.GROUND), cg.pixel_centres(64, 48).reshape(-1, 2))
    expected = target.reshape(48, 64, 2) - cg.pixel_centres(64, 48)
    np.testing.assert_allclose(flow, expected, atol=1e-3)
    inside = (target[:, 0] >= 0) & (target[:, 0] < 64) & (target[:, 1] >= 0) & (target[:, 1] < 48)
    np.testing.assert_array_equal(occluded.ravel(), ~inside)


def test_depth_reprojection_marks_what_an_object_hid():
    # A camera sliding right past a near post: background the post covered in frame 0 is disoccluded in frame k.
    v0, vk = view(location=(0, -8, 0), rotation=(90, 0, 0)), view(location=(0.4, -8, 0), rotation=(90, 0, 0))
    wall, post = 10.0, 4.0  # planar depths: a wall at y = 2, a post at y = -4 covering world x in [-0.3, 0.3]

    def depth_of(v):
        world = cg.unproject(v, np.full((48, 64), wall))
        x_at_post = cg.unproject(v, np.full((48, 64), post))[..., 0]
        return np.where(np.abs(x_at_post) <= 0.3, post, wall) + 0 * world[..., 0]

    flow, occluded = cg.depth_reprojection(depth_of(vk), vk, depth_of(v0), v0)
    post_k = depth_of(vk) == post
    behind = (~post_k) & (np.abs(cg.unproject(vk, np.full((48, 64), wall))[..., 0]) <= 0.3 * wall / post)
    assert occluded[behind & ~post_k].mean() > 0.5  # much of the wall the post hid in frame 0
    assert not occluded[post_k].any()  # the post itself is seen in both
    assert np.isfinite(flow).all()


def test_background_moves_as_content_at_infinity():
    v0, vk = view(rotation=(90, 0, 0), location=(0, 0, 0)), view(rotation=(90, 0, 6), location=(0, 0, 0))
    empty = np.full((48, 64), 1e10)
    flow, occluded = cg.depth_reprojection(empty, vk, empty, v0)
    target, _ = apply(cg.infinite_homography(vk, v0), cg.pixel_centres(64, 48).reshape(-1, 2))
    np.testing.assert_allclose(flow.reshape(-1, 2), target - cg.pixel_centres(64, 48).reshape(-1, 2), atol=1e-3)
    assert occluded[:, :5].all() != occluded[:, -5:].all()  # one edge comes into view


def test_distance_to_planar_depth():
    v = view(location=(0, 0, 10), rotation=(0, 0, 0))
    rays = cg.unproject(v, np.ones((48, 64))) - [0, 0, 10]
    distance = 10 * np.linalg.norm(rays, axis=-1)  # ray length to the ground, 10 below
    np.testing.assert_allclose(cg.distance_to_planar(distance, v), 10.0)
