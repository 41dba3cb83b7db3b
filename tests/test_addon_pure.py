"""The add-on's bpy-free logic: free channels, version shims on fakes, job state, paths, request building."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from blender_addon.backend.t2vz_backend import model_refs, protocol
from blender_addon.core import (
    channels,
    compat,
    contract,
    environment,
    imagesize,
    paths,
    request_builder,
    runner,
    settings_table,
)
from blender_addon.core.errors import T2VZAddonError

# -- free-channel search ---------------------------------------------------------------------------------------


def test_free_channel_skips_only_overlapping_strips():
    occupied = [(1, 0, 10), (2, 5, 15), (3, 20, 30)]
    assert channels.find_free_channel(occupied, 0, 10, min_channel=1) == 3  # channel 3 is busy only at 20-30
    assert channels.find_free_channel(occupied, 10, 20, min_channel=1) == 1  # half-open: 1 ends where we start
    assert channels.find_free_channel(occupied, 0, 10, min_channel=2) == 3
    assert channels.find_free_channel([], 0, 1, min_channel=0) == 1


def test_free_channel_full_timeline_is_an_error_with_a_hint():
    occupied = [(c, 0, 100) for c in range(1, 129)]
    with pytest.raises(T2VZAddonError) as info:
        channels.find_free_channel(occupied, 10, 20)
    assert info.value.hint


# -- compat shims on both API spellings --------------------------------------------------------------------------


def _strip(name, channel=1, start=1, length=3, select=True):
    return SimpleNamespace(name=name, channel=channel, frame_final_start=float(start),
                           frame_final_duration=length, select=select)


@pytest.mark.parametrize("spelling", ["sequences", "strips"])
def test_compat_reads_either_spelling(spelling):
    a, b = _strip("a"), _strip("b", channel=2, start=10, select=False)
    top = SimpleNamespace(new_image=lambda **kw: None)
    fields = {spelling: top, f"{spelling}_all": [a, b], "active_strip": b}
    scene = SimpleNamespace(sequence_editor=SimpleNamespace(**fields))
    assert compat.top_strips(scene.sequence_editor) is top
    assert compat.selected_strips(scene) == [a]
    assert compat.find_strip(scene, "b") is b
    assert compat.active_strip(scene) is b
    assert compat.occupied_ranges(scene) == [(1, 1, 4), (2, 10, 13)]


class Deprecated:
    """A strip of Blender 5.3: the old timing names still answer, but reading one is an error here."""

    def __init__(self, **names):
        self.__dict__.update(names)

    def __getattr__(self, name):
        if name in ("frame_final_start", "frame_final_duration", "frame_start", "animation_offset_start"):
            raise AssertionError(f"read the deprecated {name}")
        raise AttributeError(name)


def test_compat_strip_timing_in_both_spellings():
    old = SimpleNamespace(frame_final_start=12.0, frame_final_duration=3, frame_start=12.0, animation_offset_start=2)
    new = Deprecated(left_handle=12, duration=3, content_start=12.0, content_trim_start=2)
    for strip in (old, new):
        assert compat.strip_range(strip) == (12, 15)
        assert compat.source_frame_zero(strip) == 10  # two source frames are trimmed off the front


def test_compat_knows_where_the_compositor_drops_the_vector_pass_w():
    assert not compat.compositor_keeps_vector_w((4, 2, 23))
    assert compat.compositor_keeps_vector_w((4, 5, 0)) and compat.compositor_keeps_vector_w((5, 3, 0))


def test_compat_names_the_compositor_of_each_version():
    assert compat.compositor_api(SimpleNamespace(node_tree=None, use_nodes=False)) == compat.NODE_TREE
    assert compat.compositor_api(SimpleNamespace(compositing_node_group=None)) == compat.NODE_GROUP
    assert compat.compositor_api(SimpleNamespace(compositing_node_group=None, compositor_effects=[])) == compat.EFFECTS


def test_compat_sequencer_scene_prefers_5x_attribute():
    old, new = object(), object()
    assert compat.sequencer_scene(SimpleNamespace(scene=old)) is old
    assert compat.sequencer_scene(SimpleNamespace(scene=old, sequencer_scene=new)) is new
    assert compat.sequencer_scene(SimpleNamespace(scene=old, sequencer_scene=None)) is old
    assert list(compat.iter_all_strips(SimpleNamespace(sequence_editor=None))) == []


def test_prefetch_off_restores_settings():
    sed = SimpleNamespace(use_prefetch=True, use_cache_raw=True)  # no use_cache_final: skipped
    with compat.prefetch_off(sed):
        assert sed.use_prefetch is False and sed.use_cache_raw is False
    assert sed.use_prefetch is True and sed.use_cache_raw is True


def test_progress_falls_back_to_a_label():
    calls = []
    compat.draw_progress(SimpleNamespace(label=lambda text: calls.append(text)), 0.5, "denoise")
    assert calls == ["denoise (50%)"]


# -- job state ------------------------------------------------------------------------------------------------


class ScriptedClient:
    def __init__(self, events, alive=True):
        self.events, self.alive, self.cancelled, self.stopped = list(events), alive, [], False

    def submit(self, request, job_id=None):
        return "job1"

    def poll(self):
        out, self.events = self.events, []
        return out

    def cancel(self, job_id=""):
        self.cancelled.append(job_id)

    def stop(self):
        self.stopped = True


def _run(events, alive=True):
    runner.forget()
    job = runner.start(ScriptedClient(events, alive), protocol.TextToVideoRequest(output_dir="x"))
    return runner.run_sync(job, interval=0.01)


def test_runner_follows_events_to_done():
    done = protocol.Done(job_id="job1", output_dir="o", frames=("o/a.png", "o/b.png"))
    seen = []
    runner.forget()
    job = runner.start(ScriptedClient([
        protocol.Progress(job_id="job1", step=1, total_steps=4, eta_s=65),
        protocol.Progress(job_id="other", step=3, total_steps=4),  # another job's event is ignored
        protocol.FrameWritten(job_id="job1", index=0, path="o/a.png"), done,
    ]), protocol.TextToVideoRequest(output_dir="x"))
    runner.run_sync(job, lambda state, event: seen.append(event), interval=0.01)
    assert job.status == runner.DONE and job.done is done and job.fraction == 1.0
    assert len(seen) == 3 and job.frames == {0: "o/a.png"}
    assert runner.current() is job and not runner.is_running()


def test_runner_progress_text():
    job = runner.JobState("j", None)
    job.apply(protocol.Progress(step=2, total_steps=8, frames_done=1, total_frames=3, eta_s=75))
    assert job.fraction == 0.25 and job.eta_text() == "1:15 left"
    assert "step 2/8" in job.status_line() and "frames 1/3" in job.status_line()
    # the bar follows the share of the work (every UNet pass), the text the schedule's steps
    job.apply(protocol.Progress(step=2, total_steps=8, fraction=0.4))
    assert job.fraction == 0.4 and job.step_text() == "step 2/8"


def test_runner_failure_and_cancel():
    job = _run([protocol.Failed(job_id="job1", kind="model", message="no such model", hint="check it")])
    assert job.status == runner.FAILED and job.error_text() == "no such model. check it"
    job = _run([protocol.Failed(job_id="job1", kind="cancelled", message="cancelled")])
    assert job.status == runner.CANCELLED


def test_runner_dead_worker_without_event_fails(monkeypatch):
    monkeypatch.setattr(runner, "DEAD_GRACE_S", 0.0)
    job = _run([], alive=False)
    assert job.status == runner.FAILED and job.failure.kind == "worker_died"


def test_runner_cancel_without_answer_stops_the_worker(monkeypatch):
    monkeypatch.setattr(runner, "CANCEL_GRACE_S", 0.0)
    runner.forget()
    client = ScriptedClient([])
    job = runner.start(client, protocol.TextToVideoRequest(output_dir="x"))
    runner.run_sync(job, interval=0.01, should_cancel=lambda: True)
    assert job.status == runner.CANCELLED and client.cancelled == ["job1"] and client.stopped


# -- paths, image sizes ------------------------------------------------------------------------------------------


def test_job_dirs_are_fresh_and_named(tmp_path):
    first = paths.new_job_dir(tmp_path, "A cat, on a roof!", 42)
    second = paths.new_job_dir(tmp_path, "A cat, on a roof!", 42)
    assert first != second and first.name.endswith("_42_a-cat-on-a-roof")
    assert paths.strip_name("  a cat  ", 3) == "3_a cat" and paths.strip_name("", 3) == "3_t2vz"


def test_stage_frames_orders_and_links(tmp_path):
    src = [tmp_path / "z.png", tmp_path / "a.png"]
    for f in src:
        f.write_bytes(b"x")
    out = paths.stage_frames([str(f) for f in src], tmp_path / "in")
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png"]
    assert (out / "000000.png").resolve() == src[0].resolve()


def test_frame_range_parsing():
    assert paths.frame_list_range("3-7") == (3, 7) and paths.frame_list_range("-5--1") == (-5, -1)
    for bad in ("7-3", "x"):
        with pytest.raises(T2VZAddonError):
            paths.frame_list_range(bad)


def test_image_size_png_and_jpeg(tmp_path):
    from addon_helpers import write_png

    assert imagesize.image_size(str(write_png(tmp_path / "a.png", 48, 16))) == (48, 16)
    jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x0b\x08\x00\x10\x00\x30\x01\x01\x11\x00"
    (tmp_path / "a.jpg").write_bytes(jpeg)
    assert imagesize.image_size(str(tmp_path / "a.jpg")) == (48, 16)
    assert imagesize.image_size(str(tmp_path / "missing.png")) is None


# -- backend environment ---------------------------------------------------------------------------------------


def test_user_data_dir_is_the_installers():
    env = {"XDG_DATA_HOME": "/x", "LOCALAPPDATA": "C:/l"}
    assert environment.user_data_dir("Linux", env, Path("/h")) == Path("/x/t2vz")
    assert environment._installer().__file__ == str(environment.installer_script())


def test_marker_found_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(environment.platform, "system", lambda: "Linux")
    with pytest.raises(T2VZAddonError, match="no backend environment") as info:
        environment.resolve_backend(environment.EnvChoice("AUTO"))
    assert "Install dependencies" in info.value.hint
    marker = tmp_path / "t2vz" / "venv" / environment.MARKER_NAME
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"python": sys.executable, "env": {"PYTHONNOUSERSITE": "1"}}))
    found = environment.resolve_backend(environment.EnvChoice("AUTO"))
    assert found.python == sys.executable and found.worker_env()["PYTHONNOUSERSITE"] == "1"
    with pytest.raises(T2VZAddonError, match="does not exist"):
        environment.resolve_backend(environment.EnvChoice("CUSTOM", str(tmp_path / "nope")))


# -- requests --------------------------------------------------------------------------------------------------


def settings(**changes):
    """Plain settings: every setting at its (first mode's) default, then ``changes``."""
    base = {setting.name: contract.default(setting, setting.modes[0]) for setting in settings_table.SCENE_SETTINGS}
    base.update(mode="TEXT2VIDEO", prompt="a cat", seed=1, steps=2, width=64, height=32, long_side=64, frames=3,
                motion=(2.0, -1.0), chunk_size=2, exact_anchor=False, control_scale=0.8)
    base.update(changes)
    return SimpleNamespace(**base)


def test_the_consistency_report_setting_reaches_the_request():
    view = request_builder.PrefsView(base_model="tiny", report_clip="openai/clip-vit-base-patch32")
    on = request_builder.build_request(settings(report=True), view, "/o")
    assert on.report and on.report_clip == "openai/clip-vit-base-patch32"
    assert not request_builder.build_request(settings(), view, "/o").report  # the contract's default: off
    scene = request_builder.build_request(settings(mode="SCENE", report=True), view, "/o", report_vectors="/v")
    assert scene.report_vectors == "/v"


def test_request_per_mode():
    view = request_builder.PrefsView(base_model="tiny", pix2pix_model="p2p", controlnet_models={"canny": "cn"})
    t2v = request_builder.build_request(settings(), view, "/o")
    assert isinstance(t2v, protocol.TextToVideoRequest) and (t2v.motion_x, t2v.motion_y) == (0.02, -0.01)
    assert t2v.exact_anchor is False and t2v.chunk_size == 2
    assert request_builder.build_request(settings(use_frame_range=True), view, "/o").frames == 8
    source = request_builder.SourceInput("/in", start=4, frames=5)
    cn = request_builder.build_request(settings(mode="CONTROLNET"), view, "/o", source=source)
    assert cn.controls[0] == protocol.ControlSpec(kind="canny", path="/in", model="cn", scale=0.8,
                                                  preprocessor="canny", start_frame=4)
    assert (cn.width, cn.height, cn.long_side, cn.frames) == (0, 0, 64, 5)
    edit = request_builder.build_request(settings(mode="PIX2PIX", fit_source=False), view, "/o", source=source)
    assert (edit.model, edit.instruction, edit.input, edit.input_start, edit.width) == ("p2p", "a cat", "/in", 4, 64)


def test_speed_settings_reach_the_request():
    view = request_builder.PrefsView(base_model="tiny", compile=True, few_step_lora="/l/tcd.safetensors")
    draft = request_builder.build_request(settings(use_few_step_lora=True, cache_interval=3, cache_depth=2,
                                                   scheduler="tcd"), view, "/o")
    assert draft.loras == (protocol.LoraSpec("/l/tcd.safetensors"),) and draft.scheduler == "tcd"
    assert (draft.cache_interval, draft.cache_depth, draft.compile, draft.channels_last) == (3, 2, True, False)
    assert request_builder.build_request(settings(), view, "/o").loras == ()  # the LoRA only where asked for
    assert request_builder.PrefsView().few_step_lora == model_refs.DEFAULT_FEW_STEP_LORA
    problems = request_builder.preview_problems(settings(cache_interval=0), view)
    assert "cache_interval" in problems


def test_model_config_goes_with_a_single_file_base_model_only():
    files = request_builder.PrefsView(base_model="/m/sd15.safetensors", model_config="/m/sd15-configs")
    assert request_builder.build_request(settings(), files, "/o").model_config == "/m/sd15-configs"
    folder = request_builder.PrefsView(base_model="/m/sd15", model_config="/m/sd15-configs")
    assert request_builder.build_request(settings(), folder, "/o").model_config == ""
    problems = request_builder.preview_problems(settings(), request_builder.PrefsView(
        base_model=__file__.replace(".py", ".safetensors"), model_config="/no/such/configs"))
    assert "prefs.model_config" in problems


def test_preview_problems_are_keyed_by_setting():
    view = request_builder.PrefsView(base_model="/no/such/model.safetensors")
    problems = request_builder.preview_problems(settings(width=60, t0=950), view)
    assert set(problems) == {"width", "t0", "prefs.base_model"}
    assert "use width=64" in problems["width"][0].hint
    # Source-mode requests have no staged inputs while the panel draws: those fields are not reported.
    assert request_builder.preview_problems(settings(mode="PIX2PIX"), request_builder.PrefsView()) == {}
