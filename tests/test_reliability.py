"""Whole processes under faults a farm or a hostile user causes: concurrent ranges, kills, signals, full disks.

Every test runs the real command line or worker on the tiny model (32 px, 2 steps) in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "32", "--height", "32", "--steps", "2"]


def cli(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "t2vz_backend", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def text2video(out: Path, *extra: str, **kwargs) -> subprocess.Popen:
    return cli("text2video", "--prompt", "a red ball", *TINY, "--out", str(out), *extra, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for_denoising(proc: subprocess.Popen, timeout: float = 180) -> None:
    """Read the progress lines until denoising has begun."""
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        if line.startswith("denoise") or time.monotonic() > deadline:
            return


def frames_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("frame_")}


@pytest.fixture(autouse=True)
def _tiny_model_built(tiny_paths):
    """Build the tiny model once before any subprocess needs it."""


def test_concurrent_range_renders_into_one_folder_equal_a_full_run(tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    procs = [text2video(full, "--frames", "4"),
             text2video(split, "--frames", "4", "--frame-range", "0-1", "--overwrite"),
             text2video(split, "--frames", "4", "--frame-range", "2-3", "--overwrite")]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    assert frames_of(split) == frames_of(full) and len(frames_of(split)) == 4
    merged, single = (json.loads((folder / "t2vz.json").read_text()) for folder in (split, full))
    assert merged["frames"] == single["frames"]
    assert sorted((r["first"], r["last"]) for r in merged["ranges"]) == [(0, 1), (2, 3)]
    assert sorted(os.listdir(split)) == sorted(os.listdir(full))  # no staging folder, no lock file, no temp file


def test_a_rerun_after_sigkill_needs_no_cleanup(tmp_path):
    out = tmp_path / "out"
    proc = text2video(out, "--frames", "2", "--steps", "200")
    wait_for_denoising(proc)
    proc.kill()
    proc.wait()
    assert [p.name.startswith(".partial-") for p in out.iterdir()] == [True]  # what SIGKILL leaves
    code, err = finish(text2video(out, "--frames", "2"))
    assert code == 0, err
    assert sorted(os.listdir(out)) == ["frame_000000.png", "frame_000001.png", "t2vz.json"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_mid_job_removes_the_staging_folder_and_exits_128_plus_n(tmp_path, sig):
    out = tmp_path / "out"
    proc = text2video(out, "--frames", "2", "--steps", "200")
    wait_for_denoising(proc)
    assert [p.name.startswith(".partial-") for p in out.iterdir()] == [True]
    proc.send_signal(sig)
    code, err = finish(proc, timeout=120)
    assert code == 128 + sig, err
    assert "cancelled" in err and not out.exists()  # no staging folder, no frame, not even the folder it made


def test_sigterm_to_the_worker_cancels_its_job_and_cleans_up(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "t2vz_backend", "worker", "--no-previews"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    job = {"type": "text2video", "prompt": "x", "output_dir": str(out), "width": 32, "height": 32, "frames": 2,
           "steps": 200}
    proc.stdin.write(json.dumps({"op": "run", "id": "long", "job": job}) + "\n")
    proc.stdin.flush()
    for line in proc.stdout:
        if json.loads(line).get("step", 0) >= 1:
            break
    proc.send_signal(signal.SIGTERM)
    rest = [json.loads(line) for line in proc.stdout]
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert rest[-1]["type"] == "failed" and rest[-1]["kind"] == "cancelled"
    assert not out.exists()


def test_a_sidecar_write_over_the_file_size_limit_is_an_output_error_and_leaves_nothing(tmp_path):
    import resource

    limit = 1536  # a 16x16 frame (about 900 bytes) fits; the sidecar (a 2000-character prompt) does not

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out"
    proc = cli("text2video", "--prompt", "a red ball " * 200, "--width", "16", "--height", "16", "--steps", "2",
               "--frames", "2", "--out", str(out), preexec_fn=small_files)
    code, err = finish(proc)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "t2vz.json" in lines[0] and "file size limit" in lines[0], lines[0]
    assert not out.exists()
