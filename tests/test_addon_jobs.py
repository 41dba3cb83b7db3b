"""The job path with a fake backend: strip placement, failure, cancel, redo, and every bad input refused."""

from __future__ import annotations

import importlib
import json
import os
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest
from addon_helpers import (  # noqa: F401  # fixtures
    PACKAGE,
    addon,
    fake_client,
    generated_strips,
    image_strip,
    movie_file,
    movie_strip,
    prefs,
    scene,
    strip_start,
    submodule,
    write_frames,
)

bpy = pytest.importorskip("bpy")


def job_dirs(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(out.iterdir()) if out.exists() else []


def test_text_to_video_strip_at_scene_start(scene, fake_client, tmp_path):  # noqa: F811
    scene.frame_start = 5
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert (strip.channel, strip_start(strip), len(strip.elements)) == (1, 5, 3)
    assert strip.name == "7_a red ball" and strip.type == "IMAGE"
    request = json.loads(strip["t2vz_request"])
    assert request["type"] == "text2video" and request["prompt"] == "a red ball" and request["seed"] == 7
    folder = Path(bpy.path.abspath(strip.directory))
    assert all((folder / e.filename).is_file() for e in strip.elements)
    (job,) = job_dirs(tmp_path)
    assert json.loads((job / "request.json").read_text())["output_dir"] == str(job / "frames")


def test_saved_file_puts_jobs_beside_it_with_relative_paths(scene, fake_client, tmp_path):  # noqa: F811
    (tmp_path / "project").mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "project" / "edit.blend"))
    prefs().output_root = "//t2vz/"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(bpy.context.scene)
    assert strip.directory.startswith("//t2vz/") and strip.directory.endswith("/frames/")
    assert (tmp_path / "project" / "t2vz").is_dir() and Path(bpy.path.abspath(strip.directory)).is_dir()


def test_restyle_goes_above_the_source_on_a_free_channel(scene, fake_client, tmp_path):  # noqa: F811
    source = image_strip(scene, "src", write_frames(tmp_path / "src", 3), channel=2, frame_start=10)
    blocker = image_strip(scene, "blocker", write_frames(tmp_path / "b", 2, prefix="b"), channel=3, frame_start=11,
                          select=False)
    scene.t2vz.mode = "CONTROLNET"
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert (strip.channel, strip_start(strip), len(strip.elements)) == (4, 10, 3)
    request = fake_client.requests[0]
    staged = Path(request.controls[0].path)
    assert sorted(p.name for p in staged.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert request.controls[0].preprocessor == "canny" and request.width == 0 and request.long_side == 32
    assert (source.channel, blocker.channel, len(source.elements)) == (2, 3, 3)  # the sources are untouched


def test_edit_uses_the_frame_range_of_joined_strips(scene, fake_client, tmp_path):  # noqa: F811
    image_strip(scene, "a", write_frames(tmp_path / "a", 2, prefix="a"), channel=1, frame_start=1)
    image_strip(scene, "b", write_frames(tmp_path / "b", 3, prefix="b"), channel=1, frame_start=3)
    settings = scene.t2vz
    settings.mode, settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = \
        "PIX2PIX", True, 2, 4
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert (strip.channel, strip_start(strip), len(strip.elements)) == (2, 2, 3)
    request = fake_client.requests[0]
    staged = sorted(Path(request.input).iterdir())
    assert [os.path.basename(os.readlink(p)) for p in staged] == ["a_0001.png", "b_0000.png", "b_0001.png"]
    assert request.instruction == "a red ball" and request.frames == 3


def test_movie_strip_passes_file_start_and_count(scene, fake_client, tmp_path):  # noqa: F811
    movie = movie_file(tmp_path / "clip.mp4", frames=4)
    movie_strip(scene, "clip", movie, channel=2, frame_start=10)
    settings = scene.t2vz
    settings.mode, settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = \
        "CONTROLNET", True, 11, 12
    assert bpy.ops.t2vz.generate() == {"FINISHED"}
    (strip,) = generated_strips(scene)
    assert (strip.channel, strip_start(strip), len(strip.elements)) == (3, 11, 2)
    (control,) = fake_client.requests[0].controls
    assert (control.path, control.start_frame, fake_client.requests[0].frames) == (str(movie), 1, 2)


def test_a_movie_beside_the_job_folders_needs_no_overwrite(scene, fake_client, tmp_path):  # noqa: F811
    """The movie lies in the folder that holds the job folders (as beside a .blend file): no overwrite needed."""
    movie_strip(scene, "clip", movie_file(tmp_path / "clip.mp4", frames=2), frame_start=1)
    scene.t2vz.mode = "PIX2PIX"
    jobs = submodule("jobs")
    plan = jobs.prepare(scene, scene.t2vz, prefs())
    assert plan.request.overwrite is False and plan.request.input == str(tmp_path / "clip.mp4")
    importlib.import_module(f"{PACKAGE}.backend.t2vz_backend.service.outputs").check_output(plan.request)
    jobs.run_blocking(plan)
    (strip,) = generated_strips(scene)
    assert json.loads(strip["t2vz_request"])["overwrite"] is False


def test_redo_never_writes_into_an_existing_folder(scene, fake_client, tmp_path):  # noqa: F811
    bpy.ops.t2vz.generate()
    (first,) = generated_strips(scene)
    old = tmp_path / "old job" / "frames"
    old.mkdir(parents=True)
    (old / "keep.png").write_bytes(b"user file")
    stored = json.loads(first["t2vz_request"])
    stored.update(output_dir=str(old), overwrite=True)  # as an older version could have stored it
    first["t2vz_request"] = json.dumps(stored)
    before = set(job_dirs(tmp_path))
    scene.sequence_editor.active_strip = first
    assert bpy.ops.t2vz.redo() == {"FINISHED"}
    redo = fake_client.requests[-1]
    new_job = Path(redo.output_dir).parent
    assert redo.overwrite is False and new_job not in before and new_job in job_dirs(tmp_path)
    assert sorted(p.name for p in old.iterdir()) == ["keep.png"]
    second = next(s for s in generated_strips(scene) if s != first)
    assert json.loads(second["t2vz_request"])["overwrite"] is False


def test_movie_cannot_be_joined_with_other_strips(scene, fake_client, tmp_path):  # noqa: F811
    movie_strip(scene, "clip", movie_file(tmp_path / "clip.mp4", frames=2), frame_start=1)
    image_strip(scene, "after", write_frames(tmp_path / "src", 2), frame_start=3)
    scene.t2vz.mode = "PIX2PIX"
    _refused(scene, tmp_path, "a movie strip can only be used on its own")


def test_failed_job_adds_nothing_and_reports(scene, fake_client, tmp_path):  # noqa: F811
    source = image_strip(scene, "src", write_frames(tmp_path / "src", 3))
    scene.t2vz.mode = "PIX2PIX"
    fake_client.fail = "the input frames are unreadable"
    with pytest.raises(RuntimeError, match="unreadable"):
        bpy.ops.t2vz.generate()
    assert generated_strips(scene) == [] and source.channel == 1 and len(source.elements) == 3
    assert "unreadable" in bpy.data.texts["t2vz_log"].as_string()


def test_cancel_leaves_no_strip(scene, fake_client):  # noqa: F811
    jobs, runner = submodule("jobs"), submodule("core.runner")
    fake_client.hang = True
    plan = jobs.prepare(scene, scene.t2vz, prefs())
    job = jobs.launch(plan)
    runner.run_sync(job, interval=0.01, should_cancel=lambda: True)
    assert job.status == runner.CANCELLED and fake_client.cancelled == [job.job_id]
    with pytest.raises(submodule("core.errors").T2VZAddonError, match="cancelled"):
        jobs.finish(job)
    assert generated_strips(scene) == []


def test_modal_tick_adds_the_strip_when_done(scene, fake_client):  # noqa: F811
    """The GUI path: the timer tick drains events, updates the status bar and ends with the strip."""
    ops, jobs = submodule("operators.generate"), submodule("jobs")
    reports, status = [], []
    op = type("Op", (ops.JobDriver,), {"report": lambda self, kind, text: reports.append((kind, text))})()
    op._job, op._timer = jobs.launch(jobs.prepare(scene, scene.t2vz, prefs())), "timer"
    context = SimpleNamespace(window_manager=SimpleNamespace(event_timer_remove=lambda timer: None),
                              workspace=SimpleNamespace(status_text_set=status.append), screen=None)
    assert op.tick(context) == {"FINISHED"} and op._timer is None
    assert status[0].startswith("T2V-Zero") and status[-1] is None
    assert reports == [({"INFO"}, "T2V-Zero: added strip '7_a red ball' on channel 1")]
    assert len(generated_strips(scene)) == 1


class GuiContext:
    """What a modal operator sees in the GUI: a window, timers, a status bar."""

    def __init__(self):
        self.window, self.screen, self.handlers, self.timers, self.status = object(), None, [], [], []
        self.window_manager = SimpleNamespace(
            event_timer_add=lambda step, window: self.timers.append("t") or "t",
            event_timer_remove=self.timers.remove, modal_handler_add=self.handlers.append)
        self.workspace = SimpleNamespace(status_text_set=self.status.append)


def test_gui_path_is_modal_and_esc_cancels(scene, fake_client, monkeypatch):  # noqa: F811
    ops, jobs, runner = submodule("operators.generate"), submodule("jobs"), submodule("core.runner")
    monkeypatch.setattr(ops, "headless", lambda context: False)
    fake_client.hang = True
    reports = []
    op = type("Op", (ops.JobDriver,), {"report": lambda self, kind, text: reports.append((kind, text))})()
    context = GuiContext()
    assert op.run_plan(context, jobs.prepare(scene, scene.t2vz, prefs())) == {"RUNNING_MODAL"}
    assert context.handlers == [op] and context.timers == ["t"] and runner.is_running()
    assert op.modal(context, SimpleNamespace(type="MOUSEMOVE", value="NOTHING")) == {"PASS_THROUGH"}
    assert op.modal(context, SimpleNamespace(type="TIMER", value="NOTHING")) == {"PASS_THROUGH"}
    assert "step 1/2" in context.status[-1]
    assert op.modal(context, SimpleNamespace(type="ESC", value="PRESS")) == {"RUNNING_MODAL"}
    assert op.modal(context, SimpleNamespace(type="TIMER", value="NOTHING")) == {"CANCELLED"}
    assert context.timers == [] and context.status[-1] is None and not runner.is_running()
    assert reports[-1][0] == {"ERROR"} and "cancelled" in reports[-1][1]
    assert generated_strips(scene) == []


def test_redo_show_and_load_parameters(scene, fake_client):  # noqa: F811
    bpy.ops.t2vz.generate()
    (first,) = generated_strips(scene)
    scene.sequence_editor.active_strip = first
    scene.t2vz.prompt, scene.t2vz.seed = "something else", 99
    assert bpy.ops.t2vz.redo() == {"FINISHED"}
    second = next(s for s in generated_strips(scene) if s != first)
    assert (second.channel, strip_start(second)) == (first.channel + 1, strip_start(first))
    old, new = (json.loads(s["t2vz_request"]) for s in (first, second))
    assert old.pop("output_dir") != new.pop("output_dir") and old == new
    assert bpy.ops.t2vz.show_parameters() == {"FINISHED"}
    assert json.loads(bpy.data.texts["t2vz_parameters.json"].as_string())["prompt"] == "a red ball"
    assert bpy.ops.t2vz.load_parameters() == {"FINISHED"}
    assert (scene.t2vz.prompt, scene.t2vz.seed) == ("a red ball", 7)


# -- bad input: a clear message with the fix, nothing on the timeline, no job folder ----------------------------


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\x00\x00" * 8000)
    return path


def _refused(target, tmp_path, match):
    before = {s.name for s in submodule("core.compat").iter_all_strips(target)}
    with pytest.raises(RuntimeError, match=match):
        bpy.ops.t2vz.generate()
    assert {s.name for s in submodule("core.compat").iter_all_strips(target)} == before
    assert job_dirs(tmp_path) == []


def test_no_strip_selected(scene, fake_client, tmp_path):  # noqa: F811
    scene.t2vz.mode = "CONTROLNET"
    _refused(scene, tmp_path, "no strip is selected.*select the image-sequence or movie strips")


@pytest.mark.parametrize("kind", ["sound", "color", "scene"])
def test_unreadable_strip_kinds(scene, fake_client, tmp_path, kind):  # noqa: F811
    sed = scene.sequence_editor_create()
    strips = submodule("core.compat").top_strips(sed)
    if kind == "sound":
        try:
            strip = strips.new_sound("s", str(_wav(tmp_path / "a.wav")), 1, 1)
        except RuntimeError as exc:  # the bpy 4.2 wheel is built without audio
            pytest.skip(str(exc))
        match = "sound strip.*select an image-sequence or movie strip"
    elif kind == "color":
        try:  # 5.0 takes a length instead of an end frame
            strip = strips.new_effect(name="c", type="COLOR", channel=1, frame_start=1, length=3)
        except TypeError:
            strip = strips.new_effect(name="c", type="COLOR", channel=1, frame_start=1, frame_end=4)
        match = "color strip.*select the image or movie strip under it"
    else:
        strip = strips.new_scene("sc", bpy.data.scenes.new("Other"), 1, 1)
        match = "scene strip.*render the scene to an image sequence"
    strip.select = True
    scene.t2vz.mode = "PIX2PIX"
    _refused(scene, tmp_path, match)


def test_missing_files(scene, fake_client, tmp_path):  # noqa: F811
    files = write_frames(tmp_path / "src", 3)
    image_strip(scene, "src", files)
    files[1].unlink()
    scene.t2vz.mode = "PIX2PIX"
    _refused(scene, tmp_path, "missing 1 of its 3 files.*find the missing files")


def test_strips_of_different_sizes(scene, fake_client, tmp_path):  # noqa: F811
    image_strip(scene, "small", write_frames(tmp_path / "a", 2, (32, 32), "a"), frame_start=1)
    image_strip(scene, "big", write_frames(tmp_path / "b", 2, (64, 32), "b"), frame_start=3)
    scene.t2vz.mode = "CONTROLNET"
    _refused(scene, tmp_path, "different sizes.*small is 32x32, big is 64x32")


def test_frame_range_beyond_the_strip(scene, fake_client, tmp_path):  # noqa: F811
    image_strip(scene, "src", write_frames(tmp_path / "src", 3), frame_start=1)
    settings = scene.t2vz
    settings.mode, settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = \
        "PIX2PIX", True, 2, 10
    _refused(scene, tmp_path, "frame range 2-10 goes beyond the selected strips.*within 1-3")


def test_gap_between_strips(scene, fake_client, tmp_path):  # noqa: F811
    image_strip(scene, "a", write_frames(tmp_path / "a", 2, prefix="a"), frame_start=1)
    image_strip(scene, "b", write_frames(tmp_path / "b", 2, prefix="b"), frame_start=6)
    scene.t2vz.mode = "PIX2PIX"
    _refused(scene, tmp_path, "gap between strips")


def test_no_backend_environment(scene, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "empty"))
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    prefs().python_source = "AUTO"
    _refused(scene, tmp_path, "no backend environment found.*Install dependencies")


def test_model_path_that_does_not_exist(scene, fake_client, tmp_path):  # noqa: F811
    prefs().base_model = str(tmp_path / "models" / "nope.safetensors")
    _refused(scene, tmp_path, "nope.safetensors' does not exist.*check the path")
    prefs().base_model = "tiny"
    image_strip(scene, "src", write_frames(tmp_path / "src", 2))
    scene.t2vz.mode = "CONTROLNET"
    prefs().controlnet_canny = str(tmp_path / "cn")
    _refused(scene, tmp_path, "ControlNet path .*cn' does not exist")
