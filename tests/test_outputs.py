"""Output folders and staging: the folder rules, private staging per run, stale owners, claims, lock, commit."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from t2vz_backend.errors import OutputError
from t2vz_backend.media.writer import FrameWriter
from t2vz_backend.protocol import TextToVideoRequest
from t2vz_backend.service import staging
from t2vz_backend.service.outputs import LOCK_NAME, output_dir_problem, prepare_output_dir
from t2vz_backend.service.sidecar import SIDECAR_NAME, build_sidecar, committed_frames, merge_sidecar, write_sidecar
from t2vz_backend.service.staging import OWNER_NAME, FolderLock, Owner, StagedOutput, clear_stale


def _frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)


def test_non_empty_folder_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"x")
    problem = output_dir_problem(out, False)
    assert problem and problem.field == "output_dir" and str(out) in problem.message and "--overwrite" in problem.hint
    assert output_dir_problem(out, True) is None
    assert prepare_output_dir(str(out)) == str(out)
    assert (out / "old.png").exists()  # overwrite deletes nothing
    FrameWriter(out, total_frames=1).write(_frame())
    FrameWriter(out, total_frames=1).write(_frame())  # same name again: replaced
    assert sorted(os.listdir(out)) == ["frame_000000.png", "old.png"]


def test_missing_folder_is_created_but_check_creates_nothing(tmp_path):
    out = tmp_path / "a" / "b"
    assert output_dir_problem(out, False) is None
    assert not (tmp_path / "a").exists()
    assert prepare_output_dir(str(out)) == str(out)
    assert out.is_dir() and os.listdir(out) == []  # the probe file is gone
    (tmp_path / "empty").mkdir()
    # OS litter and t2vz bookkeeping (another run's staging, the lock, a file being written) are not output
    for litter in (".DS_Store", ".partial-job-1-ab", LOCK_NAME, ".t2vz-tmp-frame_000000.1f2e3d4c.png"):
        (tmp_path / "empty" / litter).mkdir()
    assert output_dir_problem(tmp_path / "empty", False) is None


def test_unwritable_location_is_named(tmp_path):
    blocker = tmp_path / "some_file"
    blocker.write_text("a regular file, so nothing can be created under it (even as root)")
    problem = output_dir_problem(blocker / "out", False)
    assert problem and str(blocker / "out") in problem.message
    with pytest.raises(OutputError, match="some_file"):
        prepare_output_dir(str(blocker / "out"))
    with pytest.raises(OutputError, match="is a file"):
        prepare_output_dir(str(blocker))


def _fake_run(root, name: str, **changes) -> str:
    """A staging folder with an owner record (by default: this process, frames 0-9)."""
    owner = dataclasses.replace(Owner.mine("tok-" + name, name, 0, 9), **changes)
    folder = root / f".partial-{name}-tok"
    folder.mkdir(parents=True)
    (folder / OWNER_NAME).write_text(json.dumps(dataclasses.asdict(owner)))
    return str(folder)


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_each_run_stages_privately_and_discards_only_its_own(tmp_path):
    a, b = StagedOutput(str(tmp_path), "same-id", frames=(0, 1)), StagedOutput(str(tmp_path), "same-id", frames=(2, 3))
    a.open()
    b.open()
    assert a.partial != b.partial and os.path.isdir(a.partial) and os.path.isdir(b.partial)
    assert json.loads(open(os.path.join(a.partial, OWNER_NAME)).read())["token"] == a.token
    a.discard()
    assert not os.path.exists(a.partial) and os.path.isdir(b.partial)
    os.replace(b.partial, a.partial)  # b's folder now sits at a's path: a must still not delete it
    a.discard()
    assert os.path.isdir(a.partial)


def test_stale_staging_of_dead_owners_is_cleared_and_live_ones_kept(tmp_path, dead_pid, live_process):
    dead = _fake_run(tmp_path, "dead", pid=dead_pid)
    reused = _fake_run(tmp_path, "reused", pid=live_process.pid, started="1")  # the pid now belongs to another process
    alive = _fake_run(tmp_path, "alive", pid=live_process.pid, started=staging._start_time(live_process.pid))
    remote = _fake_run(tmp_path, "remote", host="render-node-7", pid=dead_pid)
    old_remote = _fake_run(tmp_path, "old-remote", host="render-node-8", pid=dead_pid)
    hour_ago = time.time() - staging.STALE_AFTER_S - 60
    os.utime(os.path.join(old_remote, OWNER_NAME), (hour_ago, hour_ago))
    young_unowned, old_unowned = tmp_path / ".partial-a-1", tmp_path / ".partial-b-2"
    young_unowned.mkdir()
    old_unowned.mkdir()
    os.utime(old_unowned, (hour_ago, hour_ago))
    removed = clear_stale(str(tmp_path))
    assert sorted(removed) == sorted([dead, reused, old_remote, str(old_unowned)])
    assert all(os.path.isdir(p) for p in (alive, remote, young_unowned))
    assert not (tmp_path / LOCK_NAME).exists()  # the lock file goes with the lock
    assert clear_stale(str(tmp_path), dead_hosts={"render-node-7"}) == [remote]  # a farm knows that node is down


def test_a_zombie_owner_is_dead(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not yet reaped: signal 0 still reaches it
    try:
        if not os.path.exists(f"/proc/{proc.pid}/stat"):
            pytest.skip("no /proc on this system")
        zombie = _fake_run(tmp_path, "zombie", pid=proc.pid, started=staging._start_time(proc.pid))
        assert clear_stale(str(tmp_path)) == [zombie]
    finally:
        proc.wait()


def test_overlapping_claims_are_refused_disjoint_ones_allowed(tmp_path, live_process):
    _fake_run(tmp_path, "other", pid=live_process.pid, started=staging._start_time(live_process.pid), first=4, last=7)
    with pytest.raises(OutputError, match="frames 4-7 .* overlaps this run's frames 6-9") as info:
        StagedOutput(str(tmp_path), "mine", frames=(6, 9)).open()
    assert "do not overlap" in info.value.hint and info.value.field == "output_dir"
    StagedOutput(str(tmp_path), "mine", frames=(8, 9)).open()
    StagedOutput(str(tmp_path), "mine", frames=(0, 3)).open()


def test_the_folder_lock_is_exclusive_across_processes_and_leaves_no_file(tmp_path):
    code = ("import sys, time; from t2vz_backend.service.staging import FolderLock\n"
            "with FolderLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match="locked by another t2vz run"):
            with FolderLock(str(tmp_path), timeout=0.3):
                pass
        started = time.monotonic()
        with FolderLock(str(tmp_path), timeout=30):  # released when the holder ends
            assert time.monotonic() - started > 0.5
    finally:
        holder.wait()
    assert os.listdir(tmp_path) == []


def test_commit_without_overwrite_never_replaces_a_file(tmp_path):
    run = StagedOutput(str(tmp_path), "j", frames=(0, 0))
    run.open()
    FrameWriter(run.partial, total_frames=1).write(_frame())
    (tmp_path / "frame_000000.png").write_bytes(b"someone else's")
    with pytest.raises(OutputError, match="frame_000000.png appeared"):
        run.commit()
    assert (tmp_path / "frame_000000.png").read_bytes() == b"someone else's"
    run.discard()
    assert sorted(os.listdir(tmp_path)) == ["frame_000000.png"]


def test_sidecars_of_one_job_merge_and_committed_frames_reads_them(tmp_path):
    request = TextToVideoRequest(output_dir=str(tmp_path), prompt="p", frames=6)

    def sidecar(first, last, **changes):
        names = [f"frame_{i:06d}.png" for i in range(first, last + 1)]
        ranged = dataclasses.replace(request, frame_start=first, frame_end=last, **changes)
        return build_sidecar(ranged, job_id=f"r{first}", frames=names, first_frame=first, timings={}, device={})

    for i in (0, 1, 4, 5):
        (tmp_path / f"frame_{i:06d}.png").write_bytes(b"x")
    merged = merge_sidecar(sidecar(4, 5), sidecar(0, 1, chunk_size=1), present=set(os.listdir(tmp_path)))
    assert merged["frames"] == [f"frame_{i:06d}.png" for i in (0, 1, 4, 5)] and merged["first_frame"] == 0
    assert (merged["request"]["frame_start"], merged["request"]["frame_end"]) == (0, 5)
    assert [(r["first"], r["last"]) for r in merged["ranges"]] == [(4, 5), (0, 1)]
    write_sidecar(str(tmp_path / SIDECAR_NAME), merged)
    assert sorted(committed_frames(str(tmp_path), request)) == [0, 1, 4, 5]
    os.remove(tmp_path / "frame_000004.png")
    assert sorted(committed_frames(str(tmp_path), request)) == [0, 1, 5]
    assert committed_frames(str(tmp_path), dataclasses.replace(request, seed=1)) == {}  # another job
