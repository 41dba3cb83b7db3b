"""WorkerClient (a real worker subprocess) and InProcessRunner: the same interface, the same events."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from t2vz_backend.protocol import PROTOCOL_VERSION, Done, Failed, Pong, TextToVideoRequest
from t2vz_backend.service.client import BackendError, InProcessRunner, WorkerClient, describe_exit

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def process_gone(pid: int) -> bool:
    """True once ``pid`` is neither running nor a zombie (signal 0 still reaches an unreaped zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def t2v(out: Path, **changes) -> TextToVideoRequest:
    values = {"prompt": "a red ball", "frames": 2, "width": 32, "height": 32, "steps": 2, **changes}
    return TextToVideoRequest(output_dir=str(out), **values)


@pytest.fixture(scope="module")
def cache():
    """One model cache for the in-process runs of this module (the tiny model is loaded once)."""
    from t2vz_backend.models.cache import ModelCache

    return ModelCache()


@pytest.fixture
def client(tmp_path):
    worker = WorkerClient(sys.executable, cwd=str(ROOT), log_path=str(tmp_path / "worker.log"))
    worker.start()
    yield worker
    worker.stop(grace=5)


def test_ping_stop_and_no_process_left(client):
    pong = client.ping(timeout=60)
    assert isinstance(pong, Pong) and pong.protocol == PROTOCOL_VERSION
    pid = client.pid
    assert client.alive
    assert client.stop(grace=10) == 0
    assert not client.alive and process_gone(pid)


def test_sigkill_is_reported_and_leaves_no_zombie(client):
    client.ping(timeout=60)
    pid = client.pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not client.alive)
    events = []
    assert wait_for(lambda: events.extend(client.poll()) or events)
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == "worker_died"
    assert "SIGKILL" in failed.message and client.log_path in failed.hint
    assert wait_for(lambda: process_gone(pid))
    with pytest.raises(BackendError):
        client.submit(t2v(Path("unused")))


def test_a_missing_interpreter_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError) as info:
        WorkerClient(str(tmp_path / "no-python"), log_path=str(tmp_path / "log")).start()
    assert "cannot start the backend" in info.value.message and info.value.hint


def test_describe_exit():
    assert describe_exit(-9) == "killed by signal SIGKILL (9)"
    assert describe_exit(3) == "exit code 3"


def test_sigkill_mid_job_fails_the_job_and_cleans_its_partial_output(client, tmp_path):
    out = tmp_path / "killed"
    job_id = client.submit(t2v(out, steps=200))
    for event in client.iter_events(job_id, timeout=120):
        if getattr(event, "step", 0) >= 1:
            break
    assert [p.name.startswith(f".partial-{job_id}-") for p in out.iterdir()] == [True]
    pid = client.pid
    os.kill(pid, signal.SIGKILL)
    failed = list(client.iter_events(job_id, timeout=30))[-1]
    assert failed.kind == "worker_died" and "SIGKILL" in failed.message and "restart" in failed.hint
    assert wait_for(lambda: process_gone(pid)) and not client.alive
    assert not out.exists()  # the client removed what the dead worker could not


def test_worker_and_in_process_runs_give_identical_frames(client, cache, tmp_path):
    request = t2v(tmp_path / "worker", seed=3, frames=3)
    seen = []
    done = client.run(request, on_event=seen.append, timeout=120)
    assert isinstance(done, Done), done
    assert {type(e).__name__ for e in seen} >= {"Progress", "FrameWritten", "Preview", "Done"}
    with InProcessRunner(cache=cache) as runner:
        local = runner.run(dataclasses.replace(request, output_dir=str(tmp_path / "local")))
        assert isinstance(local, Done), local
        assert runner.ping().protocol == PROTOCOL_VERSION
    assert len(done.frames) == len(local.frames) == 3
    for a, b in zip(done.frames, local.frames, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_in_process_cancel(cache, tmp_path):
    runner = InProcessRunner(previews=False, cache=cache)
    job_id = runner.submit(t2v(tmp_path / "long", steps=200))
    for event in runner.iter_events(job_id, timeout=60):
        if getattr(event, "step", 0) >= 1:
            break
    runner.cancel(job_id)
    final = list(runner.iter_events(job_id, timeout=60))[-1]
    assert isinstance(final, Failed) and final.kind == "cancelled"
    assert not (tmp_path / "long").exists()
    done = runner.run(t2v(tmp_path / "next"), timeout=60)
    assert isinstance(done, Done) and runner.poll() == []
    runner.stop()


def test_the_client_imports_only_the_standard_library():
    """The add-on imports the client inside Blender, whose Python has no numpy or torch."""
    import subprocess

    script = ("import sys, t2vz_backend.service.client; "
              "bad = {'numpy', 'torch', 'PIL', 'diffusers', 'bpy'} & set(sys.modules); sys.exit(sorted(bad) or 0)")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_backend_that_cannot_start_reports_its_exit_and_log(tmp_path):
    """A broken backend environment (here: torch missing) must say why, not just 'broken pipe'."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 3\n")
    fake.chmod(0o755)
    client = WorkerClient(str(fake), log_path=str(tmp_path / "log"))
    client.start()
    with pytest.raises(BackendError) as info:
        client.ping(timeout=30)
    assert "exit code 3" in info.value.message and "No module named 'torch'" in info.value.message
    assert str(tmp_path / "log") in info.value.hint
    assert client.stop() == 3
