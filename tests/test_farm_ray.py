"""The Ray farm on a real local cluster: splits equal the single run, faults are retried, progress is monotonic.

Ray binds the machine's external address unless it has none, so the cluster runs inside a private network
namespace with only loopback up (``unshare -n``), where ``RAY_AUTH_MODE=disabled`` is allowed (t2vz refuses it
anywhere else). All scenarios run in one script (tests/farm_scenarios.py) on one two-node cluster, started once;
the tests below check what it recorded. Without Ray or without a namespace the tests are skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "farm_scenarios.py"
TIMEOUT_S = 900


def _namespace_problem() -> str:
    """Why a private network namespace cannot be made here ("" when it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    try:
        probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -n failed: {exc}"
    return "" if probe.returncode == 0 else f"unshare -n failed: {probe.stderr.strip()[:200]}"


@pytest.fixture(scope="module")
def scenarios():
    pytest.importorskip("ray", reason="Ray is not installed (python3 install_deps.py --farm): farm tests skipped")
    problem = _namespace_problem()
    if problem:
        print(f"\nfarm tests skipped: cannot make a private network namespace: {problem}", file=sys.stderr)
        pytest.skip(f"cannot make a private network namespace for the Ray cluster: {problem}")
    work = tempfile.mkdtemp(prefix="t2vzfarm")  # short: Ray's socket paths live below it
    result = os.path.join(work, "result.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = (f"ip link set lo up && RAY_AUTH_MODE=disabled exec {sys.executable} {SCRIPT} {result} {work}")
    try:
        run = subprocess.run(["unshare", "-n", "sh", "-c", command], env=env, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
        if not os.path.isfile(result):
            pytest.fail(f"the farm scenarios did not finish (exit {run.returncode}):\n{run.stderr[-4000:]}")
        data = json.loads(Path(result).read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert "crash" not in data, data["crash"]
    print(f"\nfarm scenario timings (s): {json.dumps({k: round(v, 1) for k, v in data['timings'].items()})}",
          file=sys.stderr)
    return data


def _runs(data):
    for mode in data["splits"].values():
        yield from mode["runs"].values()
    for name in ("sigkill", "resumed", "overwritten", "node_lost", "shared"):
        yield data[name]


@pytest.mark.parametrize("mode", ["text2video", "controlnet", "pix2pix"])
def test_every_split_equals_the_single_run_byte_for_byte(scenarios, mode):
    result = scenarios["splits"][mode]
    assert len(result["reference"]) == 5
    for ranges, run in result["runs"].items():  # 1 range; 0-2 + 3-4; 0 + 1-2 + 3-4 on two workers
        assert run["error"] is None, (ranges, run["error"])
        assert run["digests"] == result["reference"], ranges
        assert set(run["written"].values()) == {1}, ranges


def test_a_sigkilled_worker_is_retried_from_its_first_missing_frame(scenarios):
    run = scenarios["sigkill"]
    assert run["killed_pid"] and run["error"] is None
    assert [(f["span"], f["attempt"]) for f in run["faults"]] == [("0-2", 1)]
    assert run["digests"] == scenarios["reference6"]
    assert run["written"] == {str(i): 1 for i in range(6)}  # every frame written once, the killed range included


def test_exhausted_retries_fail_naming_the_range_and_keep_the_frames_unfinished(scenarios):
    run = scenarios["exhausted"]
    assert run["error"]["kind"] == "farm" and run["error"]["keep"]
    assert "frames 0-2 failed" in run["error"]["message"]
    assert run["digests"] == {}
    # The frames that arrived are kept, with a sidecar listing exactly them, and the folder is marked unfinished.
    assert run["left"] == [f"frame_00000{i}.png" for i in (0, 3, 4, 5)] + ["t2vz-unfinished.json", "t2vz.json"]
    assert run["mark"]["missing"] == [1, 2] and "frames 0-2" in run["mark"]["reason"]
    rerun = scenarios["rerun_without_resume"]
    assert rerun["error"]["kind"] == "output" and "unfinished farm job" in rerun["error"]["message"]
    resumed = scenarios["resumed"]
    assert resumed["error"] is None and resumed["digests"] == scenarios["reference6"]
    assert resumed["written"] == {"1": 1, "2": 1}  # only the missing frames were written


def test_a_finished_farm_job_is_refused_unless_overwrite(scenarios):
    assert scenarios["finished_again"]["error"]["kind"] == "output"
    overwritten = scenarios["overwritten"]
    assert overwritten["error"] is None and overwritten["digests"] == scenarios["reference6"]


def test_a_lost_node_range_finishes_on_another_node(scenarios):
    run = scenarios["node_lost"]
    assert run["removed"] and run["error"] is None and run["digests"] == scenarios["reference_slow"]
    assert len(run["faults"]) == 1
    span = [int(x) for x in run["faults"][0]["span"].split("-")]
    nodes = {int(i): node for i, node in run["frame_nodes"].items()}
    after = [i for i in range(span[0], span[1] + 1) if nodes[i] != run["removed_node"]]
    assert after and after[-1] == span[1]  # the rest of the range came from the surviving node
    assert set(run["written"].values()) == {1}


def test_shared_storage_workers_write_in_place(scenarios):
    run = scenarios["shared"]
    assert run["error"] is None and run["digests"] == scenarios["reference6"]
    assert set(run["written"].values()) == {1}


def test_a_cancelled_farm_job_leaves_nothing(scenarios):
    run = scenarios["cancelled"]
    assert run["error"]["kind"] == "cancelled"
    assert run["left"] is False  # the output folder it created is gone again


def test_the_farm_command_connects_by_address_and_prints_a_line_per_frame(scenarios):
    run = scenarios["cli"]
    assert run["rc"] == 0, run["stderr"]
    assert run["stdout"].strip().endswith("cli") and run["digests"] == scenarios["reference6"]
    assert sum(line.startswith("frame ") for line in run["stderr"].splitlines()) == 6


def test_progress_is_monotonic_and_counts_each_frame_once(scenarios):
    for run in _runs(scenarios):
        done = [d for d, _ in run["progress"]]
        assert done == sorted(done) and done[-1] == run["progress"][-1][1]
        assert max(run["written"].values()) == 1
