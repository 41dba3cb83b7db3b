"""The farm without a cluster: range planning on the batching grid, staged output and resume, progress, the
authentication guard, the contract, the command line and a range rendered by the worker body (tiny model)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from t2vz_backend import cli
from t2vz_backend.errors import DependencyError, FarmError, OutputError
from t2vz_backend.protocol import FarmSpec, RunJob, TextToVideoRequest, dumps, loads_command
from t2vz_backend.service import farm_ray
from t2vz_backend.service.farm_output import UNFINISHED_NAME, FarmOutput, read_unfinished
from t2vz_backend.service.farm_plan import FrameRange, Grid, grid_for, pending_parts, resume_point, split_frames
from t2vz_backend.service.farm_progress import FarmProgress
from t2vz_backend.validation import validate_farm

R = FrameRange


def t2v(out, **changes) -> TextToVideoRequest:
    fields = {"prompt": "a fox", "model": "tiny", "frames": 6, "width": 32, "height": 32, "steps": 2, "device": "cpu"}
    return TextToVideoRequest(output_dir=str(out), **{**fields, **changes})


# -- planning ---------------------------------------------------------------------------------------------------


def test_ranges_start_on_the_batching_grid():
    grid = grid_for(t2v("o", chunk_size=4, vae_batch=2), 0)
    assert grid == Grid(origin=1, unit=4, chunk=4)  # the shared layout (the default)
    assert grid_for(t2v("o", chunk_size=4, vae_batch=2, exact_anchor=True), 0) == Grid(origin=1, unit=4)
    assert split_frames(0, 16, ranges=3, grid=grid) == [R(0, 4), R(5, 12), R(13, 16)]
    assert split_frames(0, 4, ranges=5, grid=Grid(1, 2)) == [R(0, 0), R(1, 2), R(3, 4)]  # never more than cells
    assert split_frames(0, 20, range_frames=5, grid=Grid(1, 2)) == [R(0, 4), R(5, 10), R(11, 16), R(17, 20)]
    # A sub-range job starts its grid at its own first frame, as its single run batches from there.
    assert grid_for(t2v("o", chunk_size=4, vae_batch=2), 5) == Grid(origin=5, unit=4, chunk=4)
    assert split_frames(5, 20, ranges=2, grid=Grid(5, 4)) == [R(5, 12), R(13, 20)]


def test_no_range_starts_in_a_short_final_chunk_of_the_shared_layout():
    # Shared layout, chunk 4: the single run's calls hold frames 0-3, 4-7, 8-... A range starting at 9 holds the
    # anchor and the final chunk's frames; when that chunk has fewer than 3 frames the anchor would run in a
    # smaller call than in the single run, so those frames join the range before.
    for frames, tail_is_a_range in ((10, False), (11, False), (12, True), (13, True)):
        request = t2v("o", frames=frames, chunk_size=4, vae_batch=1)
        grid = grid_for(request, 0, frames - 1)
        starts = [r.first for r in split_frames(0, frames - 1, range_frames=4, grid=grid)]
        assert (9 in starts) == tail_is_a_range, (frames, starts)
        assert (grid.cell_start(frames - 1) == 9) == tail_is_a_range  # a retry resumes there too
    # unknown end, or the exact layout: every grid point is a start
    assert 9 in [r.first for r in split_frames(0, 9, range_frames=4, grid=grid_for(t2v("o", chunk_size=4), 0))]
    exact = grid_for(t2v("o", chunk_size=4, exact_anchor=True), 0, 9)
    assert 9 in [r.first for r in split_frames(0, 9, range_frames=4, grid=exact)]


def test_every_split_covers_each_frame_once():
    for count in range(1, 30):
        for parts in range(1, 8):
            ranges = split_frames(0, count - 1, ranges=parts, grid=Grid(1, 3))
            frames = [i for r in ranges for i in r]
            assert frames == list(range(count))
            assert all(r.first == 0 or (r.first - 1) % 3 == 0 for r in ranges)


def test_a_retry_resumes_at_the_grid_cell_of_the_first_missing_frame():
    assert resume_point(R(0, 8), {0, 1, 2}, Grid(1, 2)) == R(3, 8)
    assert resume_point(R(0, 8), {0, 1}, Grid(1, 2)) == R(1, 8)  # frame 2 shares a batch with frame 1
    assert resume_point(R(3, 4), {3, 4}, Grid(1, 2)) is None
    assert pending_parts(R(0, 10), {0, 1, 2, 5, 6, 7}, Grid(1, 2)) == [R(3, 4), R(7, 10)]


# -- progress ---------------------------------------------------------------------------------------------------


def test_progress_counts_frames_once_and_estimates_from_the_farm_rate():
    now = [100.0]
    progress = FarmProgress(total=10, done=2, clock=lambda: now[0])
    assert progress.eta() == -1.0
    progress.frame_done("w0")
    now[0] += 4.0
    progress.frame_done("w1")
    progress.frame_done("w0")
    assert progress.done == 5 and progress.eta() == pytest.approx(4.0 / 2 * 5)
    event = progress.event("j")
    assert (event.stage, event.frames_done, event.total_frames) == ("farm", 5, 10)
    assert progress.workers["w0"].frames == 2


# -- output: staging, unfinished, resume -------------------------------------------------------------------------


def sidecar_for(request, output):
    from t2vz_backend.service.sidecar import build_sidecar

    names = [os.path.basename(output.paths[i]) for i in sorted(output.paths)]
    return build_sidecar(request, job_id="j", frames=names, first_frame=min(output.paths), timings={}, device={})


def test_an_unfinished_job_is_committed_marked_refused_without_resume_and_resumed(tmp_path):
    out = tmp_path / "out"
    request = t2v(out)
    output = FarmOutput.start(request, R(0, 5), "farm-a", resume=False)
    assert output.write(0, b"zero") and output.write(3, b"three")
    assert output.write(3, b"again") is None  # each frame once
    assert output.keep_unfinished(sidecar_for(request, output), "frames 0-2 failed", "resume it")
    assert sorted(os.listdir(out)) == ["frame_000000.png", "frame_000003.png", UNFINISHED_NAME, "t2vz.json"]
    mark = read_unfinished(str(out))
    assert (mark["done"], mark["total"], mark["missing"]) == (2, 6, [1, 2, 4, 5])
    with pytest.raises(OutputError, match="unfinished farm job.*frames 0-2 failed") as info:
        FarmOutput.start(request, R(0, 5), "farm-b", resume=False)
    assert "--resume" in info.value.hint
    with pytest.raises(OutputError, match="other settings.*seed"):
        FarmOutput.start(dataclasses.replace(request, seed=9), R(0, 5), "farm-b", resume=True)
    resumed = FarmOutput.start(dataclasses.replace(request, preview="gif"), R(0, 5), "farm-b", resume=True)
    assert resumed.missing() == {1, 2, 4, 5} and resumed.write(0, b"zero") is None
    for i in (1, 2, 4, 5):
        resumed.write(i, b"x")
    resumed.commit(sidecar_for(request, resumed))
    assert UNFINISHED_NAME not in os.listdir(out) and len([n for n in os.listdir(out) if n.endswith(".png")]) == 6
    with pytest.raises(OutputError, match="already complete"):
        FarmOutput.start(request, R(0, 5), "farm-c", resume=True)


def test_resume_without_a_job_is_refused_and_a_failure_before_any_frame_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match="no farm job"):
        FarmOutput.start(t2v(tmp_path / "empty"), R(0, 5), "farm-a", resume=True)
    request = t2v(tmp_path / "out")
    output = FarmOutput.start(request, R(0, 5), "farm-a", resume=False)
    assert not output.keep_unfinished({}, "no worker", "")
    assert not (tmp_path / "out").exists()


def test_a_worker_that_claims_a_frame_it_did_not_write_is_an_output_error(tmp_path):
    output = FarmOutput.start(t2v(tmp_path / "out"), R(0, 5), "farm-a", resume=False)
    with pytest.raises(OutputError, match="same path on every worker"):
        output.write(1, None)
    output.discard()
    assert not (tmp_path / "out").exists()


# -- security, contract, CLI -------------------------------------------------------------------------------------


def test_disabled_ray_auth_is_refused_outside_a_private_namespace(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr(farm_ray, "loopback_only", lambda: False)
    with pytest.raises(FarmError, match="RAY_AUTH_MODE=disabled"):
        farm_ray.configure_auth(FarmSpec())
    monkeypatch.setattr(farm_ray, "loopback_only", lambda: True)
    farm_ray.configure_auth(FarmSpec())  # the tests' namespace: nobody else can reach it


def test_token_auth_is_switched_on_and_given_the_token_file(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    token = tmp_path / "token"
    token.write_text("secret")
    farm_ray.configure_auth(FarmSpec(token_file=str(token)))
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token)


def test_farm_spec_travels_in_run_commands_and_is_validated():
    command = RunJob(id="j", job=t2v("out"), farm=FarmSpec(ranges=3, address="auto"))
    assert loads_command(dumps(command)) == command
    assert loads_command(dumps(RunJob(id="j", job=t2v("out")))).farm is None
    problems = validate_farm(FarmSpec(ranges=2, range_frames=8, retries=-1, token_file="/nope"))
    assert {p.field for p in problems} == {"farm.range_frames", "farm.retries", "farm.token_file"}


def test_without_ray_farm_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DependencyError, match="Ray") as info:
        farm_ray.import_ray()
    assert "install_deps.py --farm" in info.value.hint
    job = tmp_path / "job.json"
    job.write_text(dumps(t2v(tmp_path / "out")))
    assert cli.main(["farm", str(job), "--ranges", "2"]) == 2
    assert "install_deps.py --farm" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_farm_options_name_the_option(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"request": t2v(tmp_path / "out").to_dict(), "farm": {"ranges": 2}}))
    assert cli.main(["farm", str(job), "--range-frames", "4"]) == 2  # the file's ranges and the option's both set
    assert "--range-frames" in capsys.readouterr().err
    assert cli.main(["run", str(job), "--retries", "1"]) == 2  # run takes no farm options...
    data = {**t2v(tmp_path / "out").to_dict(), "farm": {"workers": -1}}
    job.write_text(json.dumps(data))
    assert cli.main(["run", str(job)]) == 2  # ...but a job file's "farm" entry makes it a farm job
    err = capsys.readouterr().err  # named as the job file's entry: `run` has no --workers (issue 16, class 7)
    assert "error: farm.workers: " in err and "--workers" not in err


# -- the worker body, without Ray --------------------------------------------------------------------------------


def test_a_range_streams_the_png_bytes_a_single_run_writes(tiny_paths, tmp_path):
    import torch

    from t2vz_backend.models.cache import ModelCache
    from t2vz_backend.service.farm_range import RangeRenderer
    from t2vz_backend.service.jobs import run_job

    torch.set_num_threads(1)
    request = t2v(tmp_path / "single", frames=4, chunk_size=2)
    cache = ModelCache()
    single = run_job(request, cache=cache, emit=lambda _e: None)
    renderer = RangeRenderer(threads=1, cache=cache)
    items = list(renderer.render(request.to_dict(), 3, 3))
    assert [i["kind"] for i in items][:2] == ["start", "load"] and items[-1]["kind"] == "frame"
    assert items[-1]["index"] == 3 and items[-1]["png"] == Path(single.frames[3]).read_bytes()
    shared = tmp_path / "shared"
    shared.mkdir()
    (item,) = [i for i in renderer.render(request.to_dict(), 3, 3, str(shared)) if i["kind"] == "frame"]
    assert item["png"] is None and (shared / "frame_000003.png").read_bytes() == Path(single.frames[3]).read_bytes()
    failed = list(renderer.render(dataclasses.replace(request, model="/no/such/model").to_dict(), 1, 2))
    assert failed[-1]["kind"] == "failed" and "does not exist" in failed[-1]["message"]


def test_the_worker_runs_a_run_command_with_a_farm_spec_on_the_farm(monkeypatch, tmp_path):
    from t2vz_backend.protocol import Done
    from t2vz_backend.service import farm, worker

    seen = {}

    def fake_run_farm(request, spec, *, emit, should_cancel, job_id, observer=None):
        seen.update(spec=spec, job_id=job_id, cancelled=should_cancel())
        done = Done(job_id=job_id, output_dir=request.output_dir)
        emit(done)
        return done

    monkeypatch.setattr(farm, "run_farm", fake_run_farm)
    events = []
    dispatcher = worker.Dispatcher(events.append, cache=object())
    dispatcher.start()
    dispatcher.handle_line(dumps(RunJob(id="f1", job=t2v(tmp_path / "o"), farm=FarmSpec(ranges=2))))
    dispatcher.handle_line(dumps(RunJob(id="f2", job=t2v(tmp_path / "o"), farm=FarmSpec(ranges=-1))))
    dispatcher.close(cancel=False)
    assert seen == {"spec": FarmSpec(ranges=2), "job_id": "f1", "cancelled": False}
    assert [e.TYPE for e in events if e.job_id == "f1"] == ["done"]
    assert [(e.TYPE, e.field) for e in events if e.job_id == "f2"] == [("failed", "farm.ranges")]


def test_headless_farm_progress_prints_a_line_per_frame():
    import io

    from t2vz_backend.farm_cli import FarmProgressBar
    from t2vz_backend.protocol import FrameWritten, Log, Progress

    stream = io.StringIO()
    bar = FarmProgressBar(stream)
    bar(Progress(stage="load", message="farm: 2 worker(s), 1 GPU each"))
    progress = FarmProgress(total=3)
    for index in (2, 0):  # the driver sends the count, then the frame
        progress.frame_done("w0")
        bar(progress.event(""))
        bar(FrameWritten(index=index, path=f"/o/frame_00000{index}.png"))
    bar(Log(level="warning", message="w1 lost during frames 1-2"))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "farm: 2 worker(s), 1 GPU each"
    assert lines[1].startswith("frame 2 done (1/3 frames") and lines[2].startswith("frame 0 done (2/3 frames")
    assert lines[3] == "warning: w1 lost during frames 1-2"


def test_planned_ranges_give_the_single_runs_final_latents_bit_for_bit(tiny_sd, monkeypatch):
    # The shared layout with a short final chunk (6 frames, chunk 4: calls 0-3 and 4-5): the planner keeps frames 4-5
    # with the range before, so every range's anchor runs in a call of the single run's shape. Compared on the final
    # latents, which show a rounding difference that an 8-bit PNG may hide.
    import torch

    from t2vz_backend.pipelines import text_to_video as module
    from t2vz_backend.sampling.context import JobContext

    final: dict[int, torch.Tensor] = {}
    stream = module.stream_frames

    def keep(vae, latents, frames, wanted, ctx, batch):
        final.update({k: latents[i].clone() for i, k in enumerate(frames) if k in wanted})
        return stream(vae, latents, frames, wanted, ctx, batch=batch)

    monkeypatch.setattr(module, "stream_frames", keep)
    request = t2v("o", frames=6, chunk_size=4, vae_batch=1, guidance=1.0, steps=3, seed=3)

    def latents(first: int, last: int) -> dict[int, torch.Tensor]:
        final.clear()
        module.text_to_video(dataclasses.replace(request, frame_start=first, frame_end=last), tiny_sd,
                             JobContext.collecting())
        return dict(final)

    single = latents(0, 5)
    ranges = split_frames(0, 5, range_frames=1, grid=grid_for(request, 0, 5))
    assert [r.first for r in ranges] == [0, 1]  # 5 is a grid point, but it would start the short final chunk
    for r in ranges:
        part = latents(r.first, r.last)
        assert sorted(part) == list(r) and all(torch.equal(part[k], single[k]) for k in part), r.label
