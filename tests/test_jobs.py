"""run_job: events, files, output safety, cancel and errors (with a fake engine and model cache: fast and exact)."""

from __future__ import annotations

import base64
import io
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from t2vz_backend.errors import InvalidRequestError, JobCancelled, OutOfMemory, OutputError
from t2vz_backend.protocol import Done, EditVideoRequest, Failed, FrameWritten, Preview, Progress, TextToVideoRequest
from t2vz_backend.service import jobs
from t2vz_backend.service.jobs import run_job
from t2vz_backend.validation import frame_range


class FakeCache:
    """Stands in for models.cache.ModelCache: counts loads, returns a model-like object."""

    def __init__(self) -> None:
        self.models: dict[tuple, SimpleNamespace] = {}
        self.cleared = 0

    def base(self, ref, *, kind, device, dtype, offline, allow_pickle, loras, config=None):
        key = (ref, kind, device, dtype, loras, config)
        return self.models.setdefault(key, SimpleNamespace(device="cpu", ref=ref, kind=kind))

    def clear(self) -> int:
        count, self.cleared = len(self.models), self.cleared + 1
        self.models.clear()
        return count


def fake_engine(request, model, controlnets, ctx, *, fail_at_step=-1, error=None, before_decode=None):
    """Follows the engine contract: plan, two UNet passes (of one frame each) per step, then every frame in order."""
    frames = request.frames or 3
    first, last = frame_range(request, frames)
    ctx.on_stage("prepare")
    ctx.plan(request.steps, 2 * request.steps)
    ctx.on_stage("denoise")
    for call in range(2 * request.steps):
        if call == fail_at_step:
            raise error
        ctx.advance(1, call // 2 + 1 if call % 2 else None)
    if before_decode is not None:
        before_decode()
    ctx.on_stage("decode")
    for index in range(first, last + 1):
        rng = np.random.default_rng(request.seed * 1000 + index)
        ctx.frame(index, rng.integers(0, 256, (request.height or 16, request.width or 16, 3), dtype=np.uint8))


@pytest.fixture
def engine(monkeypatch):
    options: dict = {}
    monkeypatch.setattr(jobs, "_engine_for", lambda request: lambda *a: fake_engine(*a, **options))
    return options


def t2v(out, **changes) -> TextToVideoRequest:
    values = {"prompt": "a cat", "frames": 3, "width": 32, "height": 16, "steps": 2, **changes}
    return TextToVideoRequest(output_dir=str(out), **values)


def run(request, **kwargs):
    events: list = []
    try:
        done = run_job(request, cache=kwargs.pop("cache", FakeCache()), emit=events.append, **kwargs)
    except BaseException as exc:
        return events, exc
    return events, done


def test_frames_sidecar_and_events(engine, tmp_path):
    out = tmp_path / "out"
    events, done = run(t2v(out, preview="gif"), job_id="j1", previews=True)
    assert isinstance(done, Done) and events[-1] == done
    assert [os.path.basename(p) for p in done.frames] == [f"frame_00000{i}.png" for i in range(3)]
    assert sorted(os.listdir(out)) == ["frame_000000.png", "frame_000001.png", "frame_000002.png", "preview.gif",
                                       "t2vz.json"]
    assert Image.open(done.frames[1]).size == (32, 16)
    assert {"load", "prepare", "denoise", "decode", "write", "total"} <= set(done.timings)
    steps = [e for e in events if isinstance(e, Progress) and e.total_steps]
    # steps of the schedule (2), not UNet passes (4); the bar's share of the work moves with every pass
    assert [e.step for e in steps] == [0, 1, 1, 2] and [e.total_steps for e in steps] == [2] * 4
    assert [e.fraction for e in steps] == [0.25, 0.5, 0.75, 1.0]
    assert steps[0].eta_s == -1 and steps[-1].eta_s == 0
    assert events[0] == Progress(job_id="j1", stage="load", message="loading tiny")
    assert [e.index for e in events if isinstance(e, FrameWritten)] == [0, 1, 2]
    preview = next(e for e in events if isinstance(e, Preview))
    assert Image.open(io.BytesIO(base64.b64decode(preview.png_base64))).size == (preview.width, preview.height)
    sidecar = json.loads((out / "t2vz.json").read_text())
    assert sidecar["request"] == t2v(out, preview="gif").to_dict()
    assert sidecar["frames"] == [os.path.basename(p) for p in done.frames]
    assert {"t2vz", "torch", "diffusers", "transformers", "python"} <= set(sidecar["versions"])
    assert sidecar["device"]["device"] == "cpu" and sidecar["timings"] == done.timings


def test_committed_files_get_the_usual_permissions(engine, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    _, done = run(t2v(tmp_path / "out"))
    modes = {os.stat(p).st_mode & 0o777 for p in [*done.frames, tmp_path / "out" / "t2vz.json"]}
    assert modes == {0o666 & ~umask}


def test_frame_range_writes_global_indices(engine, tmp_path):
    _, done = run(t2v(tmp_path / "o", frames=5, frame_start=2, frame_end=3))
    assert done.first_frame == 2
    assert [os.path.basename(p) for p in done.frames] == ["frame_000002.png", "frame_000003.png"]


def test_validation_error_writes_nothing(engine, tmp_path):
    events, error = run(t2v(tmp_path / "o", width=30))
    assert isinstance(error, InvalidRequestError) and error.field == "width"
    assert events == [Failed(kind="invalid_request", message=error.message, hint=error.hint, field="width")]
    assert os.listdir(tmp_path) == []


def test_non_empty_output_is_refused_and_left_alone(engine, tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    events, error = run(t2v(tmp_path))
    assert isinstance(error, OutputError) and error.field == "output_dir" and "not empty" in error.message
    assert error.hint and isinstance(events[-1], Failed) and events[-1].kind == "output"
    assert os.listdir(tmp_path) == ["mine.txt"]
    _, done = run(t2v(tmp_path, overwrite=True))
    assert isinstance(done, Done) and (tmp_path / "mine.txt").read_text() == "keep"


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "0001.png")
    return folder


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("where", ["equal", "inside", "dotdot", "symlink"])
def test_output_inside_the_source_folder_is_refused_whatever_the_flags(engine, tmp_path, source, where, overwrite):
    if where == "symlink":
        os.symlink(source, tmp_path / "link")
    out = {"equal": source, "inside": source / "edited", "dotdot": tmp_path / "elsewhere" / ".." / "src" / "x",
           "symlink": tmp_path / "link" / "edited"}[where]
    request = EditVideoRequest(output_dir=str(out), input=str(source), instruction="snow", steps=2, overwrite=overwrite)
    events, error = run(request)
    assert isinstance(error, OutputError) and "source" in error.message and error.field == "output_dir"
    assert "--overwrite" not in error.hint  # overwrite is no way around it
    assert sorted(os.listdir(source)) == ["0001.png"]
    assert not (tmp_path / "elsewhere").exists()


def test_job_id_cannot_steer_writes_outside_the_output(engine, tmp_path):
    out = tmp_path / "a" / "b"
    _, done = run(t2v(out), job_id="../../../evil/" + "x" * 100)
    assert isinstance(done, Done)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["a", "a/b", *sorted(f"a/b/{name}" for name in os.listdir(out))]


@pytest.mark.parametrize("existed", [False, True])
def test_cancel_removes_partial_output(engine, tmp_path, existed):
    out = tmp_path / "out"
    if existed:
        out.mkdir()
    polls = []
    events, error = run(t2v(out), should_cancel=lambda: polls.append(1) or len(polls) > 4)
    assert isinstance(error, JobCancelled)
    assert events[-1].kind == "cancelled"
    assert any(isinstance(e, Progress) and e.step for e in events)
    assert (os.listdir(out) == []) if existed else not out.exists()


def test_engine_input_error_before_denoising_writes_nothing(engine, tmp_path):
    from t2vz_backend.errors import InputError

    engine.update(fail_at_step=0, error=InputError("3 masks for 4 frames", hint="one mask per frame", field="mask_dir"))
    events, error = run(t2v(tmp_path / "out"))
    assert isinstance(error, InputError) and events[-1] == Failed(kind="input", message="3 masks for 4 frames",
                                                                  hint="one mask per frame", field="mask_dir")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("message", ["CUDA out of memory. Tried to allocate 2.00 GiB",
                                     "MPS backend out of memory (MPS allocated: 9 GB)"])
def test_out_of_memory_is_reported_with_a_hint_and_frees_the_cache(engine, tmp_path, message):
    engine.update(fail_at_step=1, error=RuntimeError(message))
    cache = FakeCache()
    events, error = run(t2v(tmp_path / "out", chunk_size=4), cache=cache)
    assert isinstance(error, OutOfMemory) and isinstance(error.__cause__, RuntimeError)
    assert events[-1].kind == "out_of_memory" and "chunk_size" in events[-1].hint and "float16" in events[-1].hint
    assert cache.cleared == 1 and not (tmp_path / "out").exists()


def test_internal_error_is_reported_and_re_raised(engine, tmp_path):
    engine.update(fail_at_step=1, error=ZeroDivisionError("boom"))
    events, error = run(t2v(tmp_path / "out"))
    assert isinstance(error, ZeroDivisionError)
    assert events[-1].kind == "internal" and "ZeroDivisionError: boom" in events[-1].message
    assert not (tmp_path / "out").exists()


def test_mp4_preview(engine, tmp_path):
    _, done = run(t2v(tmp_path / "out", preview="mp4", width=64, height=64))
    assert os.path.getsize(tmp_path / "out" / "preview.mp4") > 0


def _frames_of(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("frame_")}


def test_frame_ranges_rendered_separately_equal_one_full_run(engine, tmp_path):
    _, full = run(t2v(tmp_path / "full", frames=6, preview="gif"), job_id="full")
    split = tmp_path / "split"
    for number, (first, last) in enumerate(((4, 5), (0, 1), (2, 3))):
        _, done = run(t2v(split, frames=6, preview="gif", frame_start=first, frame_end=last, overwrite=number > 0),
                      job_id=f"r{number}")
        assert isinstance(done, Done), done
    assert _frames_of(split) == _frames_of(tmp_path / "full")
    merged, single = (json.loads((folder / "t2vz.json").read_text()) for folder in (split, tmp_path / "full"))
    assert merged["frames"] == single["frames"] and merged["first_frame"] == single["first_frame"] == 0
    assert [(r["first"], r["last"]) for r in merged["ranges"]] == [(4, 5), (0, 1), (2, 3)]
    assert (merged["request"]["frame_start"], merged["request"]["frame_end"]) == (0, 5)
    assert Image.open(split / "preview.gif").n_frames == 6  # the preview shows the whole folder
    assert sorted(os.listdir(split)) == sorted(os.listdir(tmp_path / "full"))


def test_concurrent_ranges_of_one_job_merge_without_overwrite(engine, tmp_path):
    import threading

    barrier = threading.Barrier(2, timeout=30)
    engine.update(before_decode=barrier.wait)  # both runs are in flight before either commits
    out, results = tmp_path / "out", {}
    threads = [threading.Thread(target=lambda r=r: results.setdefault(r, run(t2v(out, frames=4, frame_start=r[0],
                                                                                  frame_end=r[1]), job_id=f"{r}")))
               for r in ((0, 1), (2, 3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(done, Done) for _, done in results.values()), results
    assert json.loads((out / "t2vz.json").read_text())["frames"] == [f"frame_{i:06d}.png" for i in range(4)]
    assert not [name for name in os.listdir(out) if name.startswith(".")]


def test_another_jobs_output_arriving_mid_run_refuses_the_commit(engine, tmp_path):
    out = tmp_path / "out"
    engine.update(before_decode=lambda: engine.pop("before_decode") and run(t2v(out, seed=7, frames=4, frame_start=2)))
    events, error = run(t2v(out, frames=4, frame_end=1))
    assert isinstance(error, OutputError) and "another job's output" in error.message and events[-1].kind == "output"
    assert json.loads((out / "t2vz.json").read_text())["request"]["seed"] == 7  # the other job's files are intact
    assert sorted(_frames_of(out)) == ["frame_000002.png", "frame_000003.png"]


def test_a_sidecar_write_failure_is_an_output_error_and_leaves_nothing(engine, tmp_path, monkeypatch):
    import errno

    from t2vz_backend.media import atomic

    real = atomic.write_bytes

    def half_then_full(temp):
        with open(temp, "wb") as handle:
            handle.write(b'{"half": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk(path, data, **kwargs):
        if str(path).endswith("t2vz.json"):
            return atomic.atomic_write(path, half_then_full)
        return real(path, data, **kwargs)

    monkeypatch.setattr(atomic, "write_bytes", full_disk)
    events, error = run(t2v(tmp_path / "out"))
    assert isinstance(error, OutputError) and "t2vz.json" in error.message and "disk is full" in error.hint
    assert events[-1].kind == "output" and not (tmp_path / "out").exists()
