"""Depth maps, object masks and settings restore (scene_passes) with real Cycles CPU renders of a 32 x 32 scene."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy
Image = pytest.importorskip("PIL.Image")

from blender_addon.core import compat  # noqa: E402
from blender_addon.scene_passes import (  # noqa: E402
    SceneError,
    compositor,
    pass_render,
    render_depth_maps,
    render_object_masks,
    render_vector_pass,
)

PLANE_PX, CUBE_PX, EMPTY_PX = (16, 8), (16, 24), (2, 16)  # (row, column) in the 32 x 32 frame
CUBE_Y = {1: -4.0, 2: 0.0, 3: 4.0}  # the cube's front face is 5.5, 9.5, 13.5 from the camera; the plane is at 10


def mesh_object(scene, name, verts, faces):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


@pytest.fixture
def scene():
    """Orthographic camera at y = -10 looking along +y (x, z in -2..2); a plane (left) at y = 0; a cube (right)
    flying from y = -4 to y = 4 over frames 1..3."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 32
    scene.render.resolution_percentage = 100
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 4.0
    camera.location, camera.rotation_euler = (0, -10, 0), (math.radians(90), 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    mesh_object(scene, "Plane", [(-1.8, 0, -1), (-0.2, 0, -1), (-0.2, 0, 1), (-1.8, 0, 1)], [(0, 1, 2, 3)])
    cube = mesh_object(scene, "Cube", [(x, y, z) for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)],
                       [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    for frame, y in CUBE_Y.items():
        cube.location = (1.0, y, 0.0)
        cube.keyframe_insert("location", frame=frame)
    scene.frame_set(1)
    return scene


def read(path):
    return np.asarray(Image.open(path))


def test_depth_is_normalised_per_shot(scene, tmp_path):
    paths = render_depth_maps(scene, 1, 3, str(tmp_path / "depth"), source="z")
    assert [os.path.basename(p) for p in paths] == ["depth_0001.png", "depth_0002.png", "depth_0003.png"]
    maps = [read(p) for p in paths]
    assert all(m.dtype == np.uint16 and m.shape == (32, 32) for m in maps)
    plane = [int(m[PLANE_PX]) for m in maps]
    cube = [int(m[CUBE_PX]) for m in maps]
    # one near/far for the shot (5.5 .. 13.5): the static plane keeps its level although each frame's own
    # min/max change (per-frame normalisation would give it 0 on frame 1 and 1 on frame 3)
    assert plane[0] == plane[1] == plane[2]
    assert plane[0] == pytest.approx(65535 * (13.5 - 10) / 8, abs=700)
    assert cube[0] == 65535 and cube[0] > plane[0] > cube[2]  # nearer is brighter
    assert cube[1] == pytest.approx(65535 * 0.5, abs=700)
    assert all(int(m[EMPTY_PX]) == 0 for m in maps)  # background is black


def test_depth_with_explicit_range_and_8_bit(scene, tmp_path):
    paths = render_depth_maps(scene, 1, 2, str(tmp_path), source="z", near=8.0, far=12.0, bit_depth=8)
    first, second = (read(p) for p in paths)
    assert first.dtype == np.uint8
    assert int(first[PLANE_PX]) == pytest.approx(128, abs=3)
    assert int(first[CUBE_PX]) == 255  # nearer than near: clamped white
    assert int(second[CUBE_PX]) == pytest.approx(255 * (12 - 9.5) / 4, abs=3)


def test_mist_uses_the_world_settings(scene, tmp_path):
    scene.world = bpy.data.worlds.new("World")
    scene.world.mist_settings.start, scene.world.mist_settings.depth = 5.0, 10.0
    scene.world.mist_settings.falloff = "QUADRATIC"
    scene.view_layers[0].use_pass_mist = True  # "auto" picks Mist when the user has set it up
    (path,) = render_depth_maps(scene, 1, 1, str(tmp_path))
    assert int(read(path)[PLANE_PX]) == pytest.approx(65535 * 0.5, abs=1500)  # linear: 10 is half-way in 5..15
    assert int(read(path)[EMPTY_PX]) == 0
    assert scene.world.mist_settings.falloff == "QUADRATIC"
    (path,) = render_depth_maps(scene, 1, 1, str(tmp_path), source="mist", near=8.0, far=12.0)
    assert int(read(path)[PLANE_PX]) == pytest.approx(65535 * 0.5, abs=1500)  # 10 is half-way in 8..12
    assert int(read(path)[CUBE_PX]) == 65535  # nearer than near
    mist = scene.world.mist_settings
    assert (mist.start, mist.depth, mist.falloff) == (5.0, 10.0, "QUADRATIC")


def test_depth_errors(scene, tmp_path):
    with pytest.raises(SceneError, match="empty"):
        render_depth_maps(scene, 3, 1, str(tmp_path))
    with pytest.raises(SceneError, match="source"):
        render_depth_maps(scene, 1, 1, str(tmp_path), source="lidar")
    with pytest.raises(SceneError, match="World"):
        render_depth_maps(scene, 1, 1, str(tmp_path), source="mist")
    with pytest.raises(SceneError, match="beyond"):
        render_depth_maps(scene, 1, 1, str(tmp_path), near=5.0, far=2.0)
    scene.camera = None
    with pytest.raises(SceneError, match="camera") as info:
        render_depth_maps(scene, 1, 1, str(tmp_path))
    assert info.value.hint


def user_state(scene):
    """The settings a user cares about that the renders change on the way."""
    render, layer = scene.render, scene.view_layers[0]
    state = {
        "engine": render.engine, "view": scene.view_settings.view_transform, "look": scene.view_settings.look,
        "format": render.image_settings.file_format, "range": (scene.frame_start, scene.frame_end),
        "frame": scene.frame_current, "samples": scene.cycles.samples, "filepath": render.filepath,
        "passes": (layer.use_pass_z, layer.use_pass_mist, layer.use_pass_object_index, layer.use_pass_vector),
        "extension": render.use_file_extension, "compositing": render.use_compositing,
        "depth": render.image_settings.color_depth,
        "sequencer": render.use_sequencer, "blur": render.use_motion_blur, "index": scene.objects["Cube"].pass_index,
        "groups": sorted(g.name for g in bpy.data.node_groups),
    }
    api = compat.compositor_api(scene)
    if api == compat.EFFECTS:
        state["effects"] = [(e.name, e.node_group, e.enable_for_render, e.is_active) for e in scene.compositor_effects]
    elif api == compat.NODE_GROUP:
        state["compositor"] = scene.compositing_node_group
    else:
        state["use_nodes"] = scene.use_nodes
        state["nodes"] = sorted((n.name, n.mute) for n in scene.node_tree.nodes) if scene.node_tree else None
    return state


def add_user_file_output(scene, folder):
    """A user's compositor that writes every render into ``folder``, in the spelling of this Blender."""
    api = compat.compositor_api(scene)
    if api == compat.NODE_TREE:  # 4.x: the scene's own tree, switched off (our render switches it on)
        scene.use_nodes = True
        tree = scene.node_tree
        layers = tree.nodes["Render Layers"]
    else:
        tree = bpy.data.node_groups.new("user compositor", "CompositorNodeTree")
        if api == compat.EFFECTS:
            scene.compositor_effects.new("user effect").node_group = tree
            scene.compositor_effects.new("user grade")  # a second effect: which one is active must come back
            scene.compositor_effects.active = scene.compositor_effects[0]
        else:
            scene.compositing_node_group = tree
        layers = tree.nodes.new("CompositorNodeRLayers")
    node, inputs = compositor.add_exr_output(tree, ["user"])
    compositor.set_output_directory(node, str(folder))
    tree.links.new(layers.outputs["Image"], inputs["user"])
    if api == compat.NODE_TREE:
        scene.use_nodes = False


def customise(scene, tmp_path):
    """Settings unlike the render's, as a user's scene might have them."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.view_settings.view_transform, scene.view_settings.look = "AgX", "AgX - Punchy"
    scene.render.image_settings.file_format = "JPEG"
    scene.frame_start, scene.frame_end = 10, 20
    scene.frame_set(15)
    scene.cycles.samples = 77
    scene.render.filepath = str(tmp_path / "user_render_")
    scene.render.use_sequencer = scene.render.use_motion_blur = True
    scene.objects["Cube"].pass_index = 3


@pytest.mark.parametrize("fail", [False, True], ids=["success", "render-raises"])
def test_user_settings_are_restored(scene, tmp_path, monkeypatch, fail):
    customise(scene, tmp_path)
    user_output = tmp_path / "user_file_output"
    add_user_file_output(scene, user_output)  # it must not run, and must come back as it was
    before = user_state(scene)
    if fail:
        calls = []
        real = pass_render._render

        def flaky(scene):
            calls.append(1)
            if len(calls) == 2:
                raise SceneError("render failed on purpose", "none")
            real(scene)

        monkeypatch.setattr(pass_render, "_render", flaky)
        with pytest.raises(SceneError, match="on purpose"):
            render_depth_maps(scene, 1, 3, str(tmp_path / "d"))
    else:
        render_depth_maps(scene, 1, 2, str(tmp_path / "d"))
        render_object_masks(scene, [scene.objects["Cube"]], 1, 1, str(tmp_path / "m"))
        render_vector_pass(scene, 1, 2, str(tmp_path / "v"))  # before 4.5 the render itself, not the compositor
    assert user_state(scene) == before
    assert not user_output.exists()
    assert not any(p.name.startswith("user_render_") for p in tmp_path.iterdir())


def test_masks_are_white_on_the_chosen_objects(scene, tmp_path):
    paths = render_object_masks(scene, [scene.objects["Cube"]], 1, 2, str(tmp_path / "masks"))
    assert [os.path.basename(p) for p in paths] == ["mask_0001.png", "mask_0002.png"]
    for path in paths:
        mask = read(path)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert mask[CUBE_PX] == 255 and mask[PLANE_PX] == 0 and mask[EMPTY_PX] == 0
        assert 40 <= int((mask == 255).sum()) <= 80  # the cube is 8 x 8 px


def test_masks_follow_children_and_skip_hidden_helpers(scene, tmp_path):
    parent = bpy.data.objects.new("Character", None)
    scene.collection.objects.link(parent)
    scene.objects["Plane"].parent = parent
    helper = bpy.data.objects.new("Helper", None)
    scene.collection.objects.link(helper)
    helper.hide_render = True
    (path,) = render_object_masks(scene, [parent, helper], 1, 1, str(tmp_path))
    mask = read(path)
    assert mask[PLANE_PX] == 255 and mask[CUBE_PX] == 0
    with pytest.raises(SceneError, match="renders"):
        render_object_masks(scene, [helper], 1, 1, str(tmp_path))
    with pytest.raises(SceneError, match="no objects"):
        render_object_masks(scene, [], 1, 1, str(tmp_path))
