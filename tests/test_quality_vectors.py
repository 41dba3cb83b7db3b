"""The report's Vector-pass path on a real Cycles render agrees with the DIS path on the same frames.

Scene: an orthographic camera over a plane with an emissive noise texture, moving 1.5 px right and 0.5 px down per
frame at 64 x 48. Bounds: the two flows differ by less than 0.5 px on average over the pixels both call visible,
and the two warp errors by less than 1.0 level of 255 per pair (both are below 3: the frames are 8-bit and
rendered with one sample at pixel centres).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.bpy

from blender_addon.scene_passes import render_vector_pass  # noqa: E402
from blender_addon.scene_passes.job_inputs import render_color_frames  # noqa: E402
from t2vz_backend.quality.clips import VectorClip, result_frames  # noqa: E402
from t2vz_backend.quality.flow import DisFlow, visible_mask  # noqa: E402
from t2vz_backend.quality.measure import FlowSettings, measure  # noqa: E402
from t2vz_backend.quality.vectors import read_vector_pass, vector_flows  # noqa: E402

STEP = (1.5, 0.5)  # pixels per frame, x right and y down
FLOW_BOUND, WARP_BOUND = 0.5, 1.0


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.filter_width = "CPU", 1, 0.01
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 6.4  # 10 px per unit
    camera.location, camera.rotation_euler = (0, -10, 0), (math.radians(90), 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    mesh = bpy.data.meshes.new("Plane")
    mesh.from_pydata([(-6, 0, -6), (6, 0, -6), (6, 0, 6), (-6, 0, 6)], [], [(0, 1, 2, 3)])
    plane = bpy.data.objects.new("Plane", mesh)
    scene.collection.objects.link(plane)
    material = bpy.data.materials.new("Texture")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 1.5
    contrast = nodes.new("ShaderNodeMapRange")  # the noise's 0.35-0.65 stretched to 0-1: texture DIS can follow
    contrast.inputs["From Min"].default_value, contrast.inputs["From Max"].default_value = 0.35, 0.65
    emission, output = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial")
    links.new(noise.outputs["Fac"], contrast.inputs["Value"])
    links.new(contrast.outputs["Result"], emission.inputs["Strength"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    mesh.materials.append(material)
    for frame in (1, 2, 3, 4):  # a key on every frame: the pass holds the motion between whole frames
        plane.location = (STEP[0] / 10 * (frame - 1), 0, -STEP[1] / 10 * (frame - 1))
        plane.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, 4
    return scene


def test_the_vector_pass_agrees_with_dis_on_the_same_frames(scene, tmp_path):
    colour = str(tmp_path / "colour")
    render_color_frames(scene, 1, 4, colour)
    paths = render_vector_pass(scene, 1, 4, str(tmp_path / "vectors"))
    assert [os.path.basename(p) for p in paths] == [f"vector_000{k}.exr" for k in range(1, 5)]
    frames = result_frames(colour)
    assert frames.size == (64, 48)
    exact = measure(frames, FlowSettings(vectors=VectorClip(str(tmp_path / "vectors")))).pairs
    estimated = measure(frames, FlowSettings()).pairs
    for vec, dis in zip(exact, estimated):
        assert vec.warp_error < 3.0 and dis.warp_error < 3.0
        assert abs(vec.warp_error - dis.warp_error) < WARP_BOUND, (vec, dis)
    vectors = [read_vector_pass(p) for p in paths]
    first = vector_flows(vectors[1], vectors[2])
    assert np.allclose(first.forward[5:-5, 5:-5].mean(axis=(0, 1)), STEP, atol=0.05)
    dis_flows = DisFlow().pair(frames.read(1), frames.read(2))
    both = visible_mask(first) & visible_mask(dis_flows)
    error = np.linalg.norm(first.forward - dis_flows.forward, axis=2)[both]
    assert both.mean() > 0.8 and error.mean() < FLOW_BOUND
