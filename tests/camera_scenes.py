"""Small Blender scenes for the camera-motion oracle (tests/test_camera_oracle.py, bench/camera_oracle.py).

A 40 x 40 textured ground plane (a smooth procedural picture, emission only: no lights, no shading noise) seen by an
animated camera at 64 x 48 pixels, rendered with Cycles on the CPU (16 samples, no denoising, no dither); optionally
a textured box standing on it (for the depth path). Renders are the oracle: warping the first frame by the add-on's
motion must reproduce the later frames.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import bpy
import numpy as np
from PIL import Image
from warp_reference import apply_homography, bilinear, centres

W, H = 64, 48
START = {"location": (0.0, -6.0, 4.0), "rotation": (60.0, 0.0, 0.0), "lens": 35.0, "ortho_scale": 8.0}
PLANE_MOVES = {  # frame 3's camera; frame 1 is START, frame 2 half-way (linear keys)
    "pan": {"rotation": (60.0, 0.0, 8.0)},
    "tilt": {"rotation": (54.0, 0.0, 0.0)},
    "dolly": {"location": (0.0, -4.8, 4.0)},
    "lens zoom": {"lens": 46.0},
    "combined": {"location": (0.6, -5.2, 3.7), "rotation": (57.0, 3.0, 6.0), "lens": 41.0},
}
ORTHO_MOVE = {"location": (1.0, -5.2, 4.0), "rotation": (60.0, 0.0, 8.0), "ortho_scale": 6.5}
DEPTH_MOVES = {
    "box, dolly and pan": {"location": (0.8, -5.0, 3.6), "rotation": (60.0, 0.0, 6.0)},
    "box, orbit": {"location": (1.5, -5.8, 4.0), "rotation": (60.0, 0.0, 14.0)},
}
GROUND = SimpleNamespace(motion_plane="ground", motion_plane_object=None)  # the scene settings the motion reads


def picture(size: int = 256, seed: int = 7) -> np.ndarray:
    """RGBA float pixels (bottom row first, as Blender stores them): a few low-frequency waves per channel."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:size, 0:size] / size
    out = np.ones((size, size, 4))
    for c in range(3):
        waves = sum(np.sin(2 * np.pi * rng.uniform(2, 6) * (u * math.cos(a) + v * math.sin(a)) + rng.uniform(0, 6))
                    for a in rng.uniform(0, 2 * np.pi, 4))
        out[..., c] = 0.5 + 0.12 * waves
    return out


def build(*, box: bool = False, ortho: bool = False):
    """A fresh file with the ground (and the box); returns (scene, camera) at START."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return populate(bpy.context.scene, box=box, ortho=ortho)


def populate(scene, *, box: bool = False, ortho: bool = False, size: tuple[int, int] = (W, H)):
    """Add the ground (and the box) and an active camera at START to ``scene``; returns (scene, camera)."""
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = *size, 100
    render.engine, render.dither_intensity = "CYCLES", 0.0
    render.image_settings.file_format = "PNG"
    scene.cycles.device, scene.cycles.samples = "CPU", 16
    scene.cycles.use_denoising = scene.cycles.use_adaptive_sampling = False
    scene.view_settings.view_transform = "Standard"
    texture = picture()
    image = bpy.data.images.new("picture", texture.shape[1], texture.shape[0])
    image.pixels.foreach_set(texture.astype(np.float32).ravel())
    image.pack()
    material = bpy.data.materials.new("picture")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    tex, emission = nodes.new("ShaderNodeTexImage"), nodes.new("ShaderNodeEmission")
    tex.image = image
    links.new(tex.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
    ground = _mesh(scene, "ground", [(-20, -20, 0), (20, -20, 0), (20, 20, 0), (-20, 20, 0)], [(0, 1, 2, 3)])
    ground.data.materials.append(material)
    if box:
        s, c = 0.6, (0.0, -0.5, 0.6)  # a 1.2 cube standing on the ground
        corners = [(c[0] + x * s, c[1] + y * s, c[2] + z * s) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        cube = _mesh(scene, "box", corners, faces, uv_scale=10.0, uv_offset=(0.2, 0.7))  # its own piece of picture
        cube.data.materials.append(material)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.data.type = "ORTHO" if ortho else "PERSP"
    pose(camera, {})
    scene.frame_start, scene.frame_end = 1, 3
    return scene, camera


def _mesh(scene, name, verts, faces, uv_scale: float = 40.0, uv_offset=(0.5, 0.5)):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    uv = mesh.uv_layers.new()
    for poly in mesh.polygons:  # planar UVs from the face's two widest axes
        for index in poly.loop_indices:
            x, y, z = mesh.vertices[mesh.loops[index].vertex_index].co
            n = poly.normal
            a, b = (x, y) if abs(n.z) > 0.5 else ((x, z) if abs(n.y) > 0.5 else (y, z))
            uv.data[index].uv = (a / uv_scale + uv_offset[0], b / uv_scale + uv_offset[1])
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def pose(camera, changes: dict) -> None:
    values = {**START, **changes}
    camera.location = values["location"]
    camera.rotation_euler = [math.radians(a) for a in values["rotation"]]
    camera.data.lens, camera.data.ortho_scale = values["lens"], values["ortho_scale"]


def animate(camera, end: dict, first: int = 1) -> None:
    """Linear keys: START at frame ``first`` (1), ``end`` two frames later."""
    for frame, changes in ((first, {}), (first + 2, end)):
        pose(camera, changes)
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
        camera.data.keyframe_insert("lens", frame=frame)
        camera.data.keyframe_insert("ortho_scale", frame=frame)
    for owner in (camera, camera.data):
        for curve in _fcurves(owner.animation_data.action):
            for key in curve.keyframe_points:
                key.interpolation = "LINEAR"


def _fcurves(action):
    if hasattr(action, "fcurves"):  # 4.x
        return action.fcurves
    return [c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]


def render_frames(scene, folder: str, frames=(1, 2, 3)) -> dict[int, np.ndarray]:
    """Each frame rendered to a PNG and read back as (H, W, 3) floats in 0..1."""
    os.makedirs(folder, exist_ok=True)
    out = {}
    for frame in frames:
        scene.frame_set(frame)
        scene.render.filepath = os.path.join(folder, f"frame_{frame}.png")
        bpy.ops.render.render(write_still=True, scene=scene.name)
        out[frame] = np.asarray(Image.open(scene.render.filepath).convert("RGB"), dtype=np.float64) / 255
    return out


def warp(image: np.ndarray, source: np.ndarray) -> np.ndarray:
    return bilinear(image.transpose(2, 0, 1), source).transpose(1, 2, 0)


def inside(source: np.ndarray) -> np.ndarray:
    return (source[..., 0] >= 0) & (source[..., 0] <= W) & (source[..., 1] >= 0) & (source[..., 1] <= H)


def error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error over ``mask``, in 8-bit levels."""
    return float(np.abs(a - b)[mask].mean() * 255)


def best_translation(first: np.ndarray, later: np.ndarray, mask: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The smallest error any single translation of ``first`` reaches against ``later`` over ``mask`` (and the
    shift): a 2 px grid, then a pattern search down to 1/16 px."""
    grid = centres(H, W)

    def cost(shift) -> float:
        source = grid + shift
        mask_t = mask & inside(source)
        return error(warp(first, source), later, mask_t) if mask_t.sum() > 0.25 * mask.sum() else math.inf

    best = min((cost(np.array([dx, dy], float)), (dx, dy)) for dx in range(-24, 25, 2) for dy in range(-18, 19, 2))
    value, shift, step = best[0], np.array(best[1], float), 1.0
    while step >= 1 / 16:
        trials = [(cost(shift + d), tuple(shift + d)) for d in ((step, 0), (-step, 0), (0, step), (0, -step))]
        better = min(trials)
        if better[0] < value:
            value, shift = better[0], np.array(better[1])
        else:
            step /= 2
    return value, (float(shift[0]), float(shift[1]))


def homography_errors(frames: dict[int, np.ndarray], mats) -> list[dict]:
    """Per later frame: the homography's error over pixels seen in both, and the best translation's."""
    rows = []
    for k in (2, 3):
        source, w = apply_homography(np.reshape(mats[k - 1], (3, 3)), centres(H, W))
        seen = (w > 0) & inside(source)
        translation, shift = best_translation(frames[1], frames[k], seen)
        rows.append({"frame": k, "motion": error(warp(frames[1], source), frames[k], seen),
                     "translation": translation, "shift": shift, "seen": float(seen.mean()),
                     "still": error(frames[1], frames[k], seen)})
    return rows


def flow_errors(frames: dict[int, np.ndarray], flow: np.ndarray, occlusion: np.ndarray, mats) -> list[dict]:
    """Per later frame: the displacement field's error over pixels seen in both (not occluded), the ground-plane
    homography's and the best translation's over the same pixels."""
    rows = []
    for k in (2, 3):
        seen = occlusion[k - 1] == 0
        plane, _ = apply_homography(np.reshape(mats[k - 1], (3, 3)), centres(H, W))
        translation, shift = best_translation(frames[1], frames[k], seen)
        rows.append({"frame": k, "motion": error(warp(frames[1], centres(H, W) + flow[k - 1]), frames[k], seen),
                     "plane": error(warp(frames[1], plane), frames[k], seen), "translation": translation,
                     "shift": shift, "seen": float(seen.mean()), "still": error(frames[1], frames[k], seen)})
    return rows
