"""End to end in the bpy module: the operator runs a real worker (the package's own backend copy, tiny model).

One worker serves the whole module (the add-on keeps it between jobs while the preferences stay the same), so the
model loads once. Jobs are 32x32 pixels, 2 steps, 2-3 frames.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from addon_helpers import (  # noqa: F401  # fixtures
    addon,
    generated_strips,
    image_strip,
    movie_file,
    movie_strip,
    prefs,
    scene,
    strip_start,
    submodule,
    worker_has_torch,
    write_frames,
)

bpy = pytest.importorskip("bpy")
if not worker_has_torch():  # the test process itself never imports torch (with bpy loaded it can hang at exit)
    pytest.skip("the worker Python has no torch", allow_module_level=True)


def check_strip(strip, channel: int, frame_start: int, length: int) -> None:
    assert (strip.channel, strip_start(strip), len(strip.elements)) == (channel, frame_start, length)
    folder = Path(bpy.path.abspath(strip.directory))
    assert all((folder / element.filename).is_file() for element in strip.elements)


def test_check_backend_reports_python_torch_device(scene):  # noqa: F811
    assert bpy.ops.t2vz.check_backend() == {"FINISHED"}
    text = submodule("operators.backend").last_check["text"]
    assert "Python 3." in text and "torch 2." in text and "cpu" in text.lower()


def test_text_to_video(scene):  # noqa: F811
    scene.frame_start = 3
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 1, 3, 3)
    assert json.loads(strip["t2vz_request"])["type"] == "text2video"


def test_restyle_image_strips_with_canny(scene, tmp_path):  # noqa: F811
    image_strip(scene, "src", write_frames(tmp_path / "src", 3), channel=2, frame_start=4)
    scene.t2vz.mode = "CONTROLNET"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 3, 4, 3)


def test_edit_image_strip_range(scene, tmp_path):  # noqa: F811
    image_strip(scene, "src", write_frames(tmp_path / "src", 3), channel=1, frame_start=1)
    settings = scene.t2vz
    settings.mode, settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = \
        "PIX2PIX", True, 2, 3
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 2, 2, 2)


def test_edit_movie_strip(scene, tmp_path):  # noqa: F811
    movie_strip(scene, "clip", movie_file(tmp_path / "clip.mp4", frames=3), channel=1, frame_start=5)
    scene.t2vz.mode = "PIX2PIX"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 2, 5, 3)


def _camera_scene(target):
    target.render.resolution_x = target.render.resolution_y = 32
    target.render.resolution_percentage = 100
    target.frame_start, target.frame_end = 1, 2
    camera = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    camera.location, camera.rotation_euler = (0.0, -8.0, 1.0), (math.pi / 2, 0.0, 0.0)
    target.collection.objects.link(camera)
    target.camera = camera


def _rig(target):
    """A stick figure whose bone names the pose export recognises (metarig spelling)."""
    armature = bpy.data.armatures.new("rig")
    rig = bpy.data.objects.new("rig", armature)
    target.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {"spine.004": ((0, 0, 1.5), (0, 0, 1.8)), "head": ((0, 0, 1.8), (0, 0, 2.2))}
    for side, x in (("L", 1), ("R", -1)):
        bones |= {f"upper_arm.{side}": ((0.3 * x, 0, 1.5), (0.7 * x, 0, 1.1)),
                  f"forearm.{side}": ((0.7 * x, 0, 1.1), (0.9 * x, 0, 0.7)),
                  f"thigh.{side}": ((0.2 * x, 0, 0.9), (0.25 * x, 0, 0.4)),
                  f"shin.{side}": ((0.25 * x, 0, 0.4), (0.3 * x, 0, 0.0))}
    for name, (head, tail) in bones.items():
        bone = armature.edit_bones.new(name)
        bone.head, bone.tail = head, tail
    bpy.ops.object.mode_set(mode="OBJECT")
    return rig


def test_scene_passes_pose_and_depth(scene):  # noqa: F811
    _camera_scene(scene)
    _rig(scene)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 1.0))
    settings = scene.t2vz
    settings.mode, settings.pass_pose, settings.pass_depth, settings.pass_canny = "SCENE", True, True, False
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 1, 1, 2)
    request = json.loads(strip["t2vz_request"])
    assert [c["kind"] for c in request["controls"]] == ["pose", "depth"]
    assert request["controls"][0]["path"].endswith("pose.json") and len(os.listdir(request["controls"][1]["path"])) == 2


def test_scene_passes_with_the_consistency_report_and_its_baseline(scene):  # noqa: F811
    """The Vector pass reaches the worker's report, the Report event reaches the strip, the baseline compares."""
    _camera_scene(scene)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 1.0))
    cube = bpy.context.active_object
    for frame, x in ((1, -0.3), (2, 0.3)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    settings = scene.t2vz
    settings.mode, settings.pass_pose, settings.pass_depth, settings.report = "SCENE", False, True, True
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    request = json.loads(strip["t2vz_request"])
    assert request["report"] and sorted(os.listdir(request["report_vectors"])) == ["vector_0001.exr",
                                                                                  "vector_0002.exr"]
    stored = json.loads(strip["t2vz_report"])
    assert stored["flow"] == "vectors" and os.path.isfile(stored["image"]) and stored["warp_error"] >= 0
    document = json.loads(Path(stored["path"]).read_text())
    assert document["flow"]["path"] == request["report_vectors"] and document["frames"]["count"] == 2
    scene.sequence_editor.active_strip = strip
    assert bpy.ops.t2vz.baseline(strip=strip.name) == {"FINISHED"}
    stills = next(s for s in generated_strips(scene) if s != strip)
    assert stills.name.endswith("stills") and stills.channel > strip.channel
    baseline = json.loads(stills["t2vz_request"])
    assert baseline["baseline"] and os.path.samefile(baseline["report_compare"], bpy.path.abspath(strip.directory))
    compared = json.loads(stills["t2vz_report"])
    assert compared["compared_warp_error"] == stored["warp_error"]


def test_text_to_video_with_background_smoothing(scene):  # noqa: F811
    _camera_scene(scene)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 1.0))
    collection = bpy.data.collections.new("fg")
    collection.objects.link(bpy.context.active_object)
    settings = scene.t2vz
    settings.frames, settings.smooth_bg, settings.mask_collection = 2, True, collection
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    check_strip(strip, 1, 1, 2)
    request = json.loads(strip["t2vz_request"])
    assert request["smooth_bg"] and len(os.listdir(request["mask_dir"])) == 2


def test_edges_from_scene_renders_restore_settings(scene, tmp_path):  # noqa: F811
    _camera_scene(scene)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.filepath = "//keep/"
    files = submodule("scene_passes.job_inputs").render_color_frames(scene, 1, 2, str(tmp_path / "r"))
    assert [os.path.basename(f) for f in files] == ["000000.png", "000001.png"] and all(map(os.path.isfile, files))
    assert scene.render.filepath == "//keep/" and scene.render.use_sequencer and scene.frame_current == 1


def test_cancel_real_job_leaves_no_strip(scene):  # noqa: F811
    jobs, runner = submodule("jobs"), submodule("core.runner")
    scene.t2vz.steps = 50
    job = jobs.launch(jobs.prepare(scene, scene.t2vz, prefs()))
    runner.run_sync(job, interval=0.02, should_cancel=lambda: job.step >= 1)
    assert job.status == runner.CANCELLED
    with pytest.raises(submodule("core.errors").T2VZAddonError, match="cancelled"):
        jobs.finish(job)
    assert generated_strips(scene) == []
    assert not os.path.exists(job.request.output_dir) or not os.listdir(job.request.output_dir)


@pytest.mark.parametrize("script", ["exit 3", "read line; echo boom >&2; exit 3"])
def test_worker_crash_is_reported(scene, tmp_path, script):  # noqa: F811
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    prefs().python_path = str(fake)
    with pytest.raises(RuntimeError, match="backend"):
        bpy.ops.t2vz.generate()
    assert generated_strips(scene) == [] and not submodule("core.runner").is_running()


IN_PROCESS_SCRIPT = """
import os, sys, bpy, addon_utils
sys.path.insert(0, sys.argv[-2])
addon_utils.enable("t2vz", default_set=True, handle_error=None)
p = bpy.context.preferences.addons["t2vz"].preferences
p.backend_mode, p.base_model, p.device, p.dtype, p.output_root = "IN_PROCESS", "tiny", "cpu", "float32", sys.argv[-1]
s = bpy.context.scene
s.t2vz.steps, s.t2vz.width, s.t2vz.height, s.t2vz.frames = 2, 32, 32, 2
result = bpy.ops.t2vz.generate()
strips = [(st.channel, len(st.elements)) for st in s.sequence_editor.strips_all]
print("RESULT", result == {"FINISHED"}, strips, flush=True)
os._exit(0)  # torch and bpy in one process can deadlock in bpy's exit handlers
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="in-process mode needs torch in this Python")
def test_in_process_mode(addon, tmp_path):  # noqa: F811
    """Blender's own Python runs the job (in a child process: this one must not import torch)."""
    package_parent = str(Path(addon.__file__).parent.parent)
    result = subprocess.run([sys.executable, "-c", IN_PROCESS_SCRIPT, package_parent, str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert "RESULT True [(1, 2)]" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_cli_generate_and_help(scene, tmp_path, capsys):  # noqa: F811
    cli = submodule("cli")
    assert cli.execute(["--help"]) == 0
    assert "blender --command t2vz" in capsys.readouterr().out
    assert cli.execute(["generate", "--frame-range", "5-1"]) == 2
    assert "is empty" in capsys.readouterr().err
    code = cli.execute(["generate", "--prompt", "a boat", "--frames", "2", "--seed", "3", "--out", str(tmp_path / "c"),
                        "--python", prefs().python_path])
    assert code == 0, capsys.readouterr().err
    (strip,) = generated_strips(scene)
    check_strip(strip, 1, 1, 2)
    assert strip.name == "3_a boat" and Path(bpy.path.abspath(strip.directory)).is_relative_to(tmp_path / "c")
