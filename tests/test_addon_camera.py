"""The Motion choice in the add-on (docs/camera_motion.md): text->video and scene-pass jobs carry the scene camera's
homographies or depth displacement fields, headless too (bpy.ops, ``blender -c t2vz``); bad cameras are refused
before anything is written, shots the motion cannot follow are warned about and still run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from addon_helpers import (  # noqa: F401  # fixtures
    addon,
    fake_client,
    generated_strips,
    prefs,
    scene,
    strip_start,
    submodule,
    worker_has_torch,
)

bpy = pytest.importorskip("bpy")
import camera_scenes as cs  # noqa: E402

PAN = cs.PLANE_MOVES["pan"]


def camera_shot(scene, end=PAN, size=(32, 32), frames=(1, 3)):  # noqa: F811
    cs.populate(scene, size=size)
    cs.animate(scene.camera, end, first=frames[0])
    scene.frame_start, scene.frame_end = frames
    return scene


def job_dirs(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(out.iterdir()) if out.exists() else []


def test_text_to_video_follows_the_scene_camera(scene, fake_client, tmp_path, capsys):  # noqa: F811
    camera_shot(scene, frames=(4, 6))
    scene.t2vz.motion_source, scene.t2vz.frames = "camera", 8  # the scene range decides, not Frames
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (request,) = fake_client.requests
    assert request.frames == 3 and len(request.motion_homographies) == 3
    assert (request.motion_width, request.motion_height, request.motion_x, request.motion_y) == (32, 32, 0.0, 0.0)
    assert request.motion_homographies[0] == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert request.motion_homographies[2] != request.motion_homographies[1]
    (strip,) = generated_strips(scene)
    assert (strip_start(strip), len(strip.elements)) == (4, 3)
    assert "T2V-Zero warning" not in capsys.readouterr().out


def test_scene_passes_with_depth_motion(scene, fake_client, tmp_path):  # noqa: F811
    camera_shot(scene, end=cs.DEPTH_MOVES["box, orbit"], size=(40, 30))
    settings = scene.t2vz
    settings.mode, settings.pass_pose, settings.pass_depth = "SCENE", False, True
    settings.motion_source, settings.width, settings.height = "camera_depth", 32, 32
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (request,) = fake_client.requests
    (job,) = job_dirs(tmp_path)
    assert request.motion_flow == str(job / "motion" / "flow.npy")
    assert request.motion_occlusion == str(job / "motion" / "occlusion.npy")
    flow = np.load(request.motion_flow)
    # the depth renders keep the render's shape, their long side the output's (32): 32 x 24
    assert flow.shape == (3, 24, 32, 2) and (request.motion_width, request.motion_height) == (32, 24)
    assert np.abs(flow[2]).max() > 1.0 and not flow[0].any()


def test_scene_passes_with_the_camera_homographies(scene, fake_client):  # noqa: F811
    camera_shot(scene)
    settings = scene.t2vz
    settings.mode, settings.pass_pose, settings.pass_depth, settings.motion_source = "SCENE", False, True, "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (request,) = fake_client.requests
    assert type(request).__name__ == "ControlVideoRequest" and len(request.motion_homographies) == 3


def test_a_shot_off_the_plane_warns_and_still_runs(scene, fake_client, capsys):  # noqa: F811
    camera_shot(scene, end={"rotation": (88.0, 0.0, 0.0), "location": (0, -6, 1.0)})
    scene.t2vz.motion_source = "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    out = capsys.readouterr().out
    assert "T2V-Zero warning: the ground plane does not fill the view in frames 2-3" in out
    assert len(fake_client.requests) == 1 and generated_strips(scene)


def test_a_still_camera_says_so_and_makes_no_motion(scene, fake_client, capsys):  # noqa: F811
    cs.populate(scene, size=(32, 32))
    scene.frame_start, scene.frame_end = 1, 3
    scene.t2vz.motion_source = "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    assert "does not move" in capsys.readouterr().out
    (request,) = fake_client.requests
    assert all(m == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0) for m in request.motion_homographies)


def test_a_stretched_output_is_warned_about(scene, fake_client, capsys):  # noqa: F811
    camera_shot(scene, size=(64, 32))  # 2:1 render, 32 x 32 output
    scene.t2vz.motion_source = "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    assert "another shape than the camera's render (64x32)" in capsys.readouterr().out


@pytest.mark.parametrize(("problem", "words"), [
    ("panoramic", "camera 'Camera' is panoramic.*Constant Drift"),
    ("no camera", "has no active camera for the motion.*make it active"),
    ("no plane object", "no object is chosen.*plane mesh"),
])
def test_bad_cameras_are_refused_before_anything_is_written(scene, fake_client, tmp_path, problem,  # noqa: F811
                                                             words):
    camera_shot(scene)
    settings = scene.t2vz
    settings.motion_source = "camera"
    if problem == "panoramic":
        scene.camera.data.type = "PANO"
    elif problem == "no camera":
        scene.camera = None
    else:
        settings.motion_plane = "object"
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.t2vz.generate()
    assert not fake_client.requests and job_dirs(tmp_path) == [] and not generated_strips(scene)


def test_the_blender_command_line_takes_the_motion(scene, fake_client, tmp_path, capsys):  # noqa: F811
    camera_shot(scene)
    empty = bpy.data.objects.new("Floor", None)
    scene.collection.objects.link(empty)
    cli = submodule("cli")
    assert cli.execute(["generate", "--mode", "text2video", "--motion-source", "camera", "--motion-plane", "object",
                        "--motion-plane-object", "Floor"]) == 0
    (request,) = fake_client.requests
    assert len(request.motion_homographies) == 3
    assert (scene.t2vz.motion_source, scene.t2vz.motion_plane) == ("camera", "object")
    assert cli.execute(["generate", "--motion-source", "camera", "--motion-plane-object", "Nope"]) == 2
    assert "no empty or mesh object 'Nope'" in capsys.readouterr().err


def test_load_parameters_restores_the_motion_choice(scene, fake_client):  # noqa: F811
    camera_shot(scene)
    scene.t2vz.motion_source = "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    scene.t2vz.motion_source = "drift"
    (strip,) = generated_strips(scene)
    submodule("operators.settings").apply_request(scene.t2vz, json.loads(strip["t2vz_request"]))
    assert scene.t2vz.motion_source == "camera"


@pytest.mark.skipif(not worker_has_torch(), reason="the worker Python has no torch")
def test_a_real_worker_renders_the_camera_motion(scene, tmp_path):  # noqa: F811
    camera_shot(scene)
    scene.t2vz.motion_source = "camera"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert len(strip.elements) == 3
    stored = json.loads(strip["t2vz_request"])
    assert len(stored["motion_homographies"]) == 3
    submodule("core.session").stop()
