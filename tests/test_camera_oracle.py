"""Blender renders are the oracle of camera motion (docs/camera_motion.md): warping the first render by the
add-on's per-frame homography (or displacement field) reproduces the later renders.

64 x 48 Cycles CPU renders of a textured ground plane (and a box on it), emission only. Over the pixels seen in
both frames the error must stay within 4/255 for the plane alone, and for every scene below the best single
translation fitted to the same pair (the paper's motion). bench/camera_oracle.py prints the same figures.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

import camera_scenes as cs  # noqa: E402
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from blender_addon.core import camera_geometry as cg  # noqa: E402
from blender_addon.scene_passes import SceneError, camera_depth, camera_motion, compositor, pass_render  # noqa: E402
from t2vz_backend import homography  # noqa: E402
from t2vz_backend.validation import homography_problems  # noqa: E402

PLANE_LIMIT = 4.0  # 8-bit levels


@pytest.mark.parametrize("move", [*cs.PLANE_MOVES, "orthographic pan, roll and zoom"])
def test_plane_moves_reproduce_the_renders(move, tmp_path):
    ortho = move.startswith("orthographic")
    scene, camera = cs.build(ortho=ortho)
    cs.animate(camera, cs.ORTHO_MOVE if ortho else cs.PLANE_MOVES[move])
    fields, warnings = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    assert warnings == [] and (fields["motion_width"], fields["motion_height"]) == (cs.W, cs.H)
    assert homography_problems(fields["motion_homographies"], cs.W, cs.H) == []
    for row in cs.homography_errors(cs.render_frames(scene, str(tmp_path)), fields["motion_homographies"]):
        assert row["motion"] <= PLANE_LIMIT and row["motion"] < row["translation"], row
        assert row["still"] > 2 * PLANE_LIMIT  # the camera really moved the picture


@pytest.mark.parametrize("move", list(cs.DEPTH_MOVES))
def test_depth_moves_reproduce_the_renders(move, tmp_path):
    scene, camera = cs.build(box=True)
    cs.animate(camera, cs.DEPTH_MOVES[move])
    fields, _ = camera_depth.render_depth_motion(scene, 1, 3, str(tmp_path / "motion"), long_side=64)
    flow, occlusion = np.load(fields["motion_flow"]), np.load(fields["motion_occlusion"])
    assert flow.shape == (3, cs.H, cs.W, 2) and flow.dtype == np.float32 and occlusion.shape == (3, cs.H, cs.W)
    assert not flow[0].any() and not occlusion[0].any() and occlusion[2].any()  # the box hides and reveals
    plane, _ = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    for row in cs.flow_errors(cs.render_frames(scene, str(tmp_path / "frames")), flow, occlusion,
                              plane["motion_homographies"]):
        assert row["motion"] < row["plane"] < row["translation"], row  # parallax: depth beats the plane


def test_the_z_pass_holds_planar_depth(tmp_path):
    # A plane facing the camera: planar depth is one value over the frame; a ray length would grow to the corners.
    scene, camera = cs.build()
    camera.location, camera.rotation_euler = (0, 0, 10), (0, 0, 0)
    camera.data.lens = 18.0  # wide: the corners' rays are 1.4x longer than the centre's
    files = pass_render.render_exr_passes(scene, 1, 1, str(tmp_path), [("depth", compositor.DEPTH_SOCKETS)],
                                          lambda scoped, layer: scoped.set(layer, "use_pass_z", True))
    z = compositor.read_exr_channel(files[0]["depth"])
    assert camera_depth.Z_PASS_IS_PLANAR
    np.testing.assert_allclose(z, 10.0, rtol=1e-4)


@pytest.mark.parametrize("camera_settings", [
    {}, {"shift_x": 0.12, "shift_y": -0.07}, {"sensor_fit": "VERTICAL", "sensor_height": 18.0},
    {"sensor_fit": "HORIZONTAL", "lens": 80.0}, {"type": "ORTHO", "ortho_scale": 5.0, "shift_x": 0.1},
])
@pytest.mark.parametrize("render_settings", [{}, {"resolution_x": 48, "resolution_y": 64},
                                             {"pixel_aspect_x": 2.0}, {"resolution_percentage": 50}])
def test_projection_agrees_with_blender(camera_settings, render_settings):
    scene, camera = cs.build()
    for name, value in camera_settings.items():
        setattr(camera.data, name, value)
    for name, value in render_settings.items():
        setattr(scene.render, name, value)
    scene.frame_set(1)
    view = camera_motion.read_view(scene)
    points = np.random.default_rng(0).uniform([-4, -2, 0], [4, 6, 2], (40, 3))
    pixels, _ = cg.project(view, points)
    expected = []
    for p in points:
        x, y, _ = world_to_camera_view(scene, camera, Vector(p))
        expected.append((x * view.width, (1 - y) * view.height))
    np.testing.assert_allclose(pixels, expected, atol=1e-3)


def test_an_orthographic_camera_gives_affine_homographies():
    scene, camera = cs.build(ortho=True)
    cs.animate(camera, cs.ORTHO_MOVE)
    fields, _ = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    for m in fields["motion_homographies"]:
        assert m[6:] == pytest.approx((0.0, 0.0, 1.0), abs=1e-12)


def test_a_panoramic_camera_is_refused():
    scene, camera = cs.build()
    camera.data.type = "PANO"
    with pytest.raises(SceneError, match="panoramic") as info:
        camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    assert "Constant Drift" in info.value.hint


def test_a_camera_without_animation_gives_no_motion():
    scene, _ = cs.build()
    fields, warnings = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    assert all(homography.is_identity(m, 1e-12) for m in fields["motion_homographies"])
    assert len(warnings) == 1 and "does not move" in warnings[0]


def test_a_plane_leaving_the_view_is_warned_about():
    scene, camera = cs.build()
    cs.animate(camera, {"rotation": (88.0, 0.0, 0.0), "location": (0, -6, 1.0)})  # tilt up: the horizon comes in
    fields, warnings = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    assert len(fields["motion_homographies"]) == 3
    assert any("does not fill the view in frames 2-3" in w and "Distant" in w for w in warnings), warnings


def test_pure_rotation_and_distant_need_no_plane():
    scene, camera = cs.build()
    cs.animate(camera, {"rotation": (62.0, 0.0, 10.0), "lens": 40.0})  # turns and zooms in place
    auto, _ = camera_motion.camera_homographies(scene, SimpleNamespace(motion_plane="auto",
                                                                       motion_plane_object=None), 1, 3)
    scene.frame_set(1)
    view0 = camera_motion.read_view(scene)
    scene.frame_set(3)
    expected = cg.infinite_homography(camera_motion.read_view(scene), view0)
    np.testing.assert_allclose(auto["motion_homographies"][2], expected, atol=1e-9)


def test_a_plane_object_carries_the_picture():
    scene, camera = cs.build()
    cs.animate(camera, cs.PLANE_MOVES["dolly"])
    empty = bpy.data.objects.new("Wall", None)
    scene.collection.objects.link(empty)
    empty.location = (0.0, 0.0, 0.0)  # its XY plane is the ground: the same homographies as Ground
    on_object = SimpleNamespace(motion_plane="object", motion_plane_object=empty)
    a, _ = camera_motion.camera_homographies(scene, on_object, 1, 3)
    b, _ = camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    np.testing.assert_allclose(a["motion_homographies"], b["motion_homographies"], atol=1e-9)
    with pytest.raises(SceneError, match="no object is chosen"):
        camera_motion.camera_homographies(scene, SimpleNamespace(motion_plane="object", motion_plane_object=None),
                                          1, 3)


def test_the_current_frame_comes_back():
    scene, camera = cs.build()
    cs.animate(camera, cs.PLANE_MOVES["pan"])
    scene.frame_set(2)
    camera_motion.camera_homographies(scene, cs.GROUND, 1, 3)
    assert scene.frame_current == 2
