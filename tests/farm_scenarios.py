"""The Ray farm scenarios of tests/test_farm_ray.py, run as one script inside a private network namespace.

``python tests/farm_scenarios.py RESULT.json WORKDIR`` starts a two-node Ray cluster on loopback
(``ray.cluster_utils.Cluster``: a head node and a second node with one logical GPU each, actors with ``num_cpus=0``,
so two cores are enough), runs every scenario on the tiny model and writes what it saw as JSON; the test module
asserts on it. One cluster for all scenarios keeps the suite fast (Ray and torch start once per worker).

Scenarios: each mode split into 1, 2 and 3 uneven ranges against the single-machine run; a worker SIGKILLed
mid-range; retries exhausted, then resumed; a finished job run again (refused, then --overwrite); the second node
removed mid-range. Every run records its frame hashes, how often each frame was written, and the farm progress.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

FRAMES = 5
SIZE = 32


def digests(paths) -> dict[str, str]:
    return {os.path.basename(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


class Recorder:
    """Collects the events and observer calls of one farm run."""

    def __init__(self, on_observe=None) -> None:
        self.written: dict[int, int] = {}
        self.progress: list[tuple[int, int]] = []
        self.faults: list[dict] = []
        self.frame_nodes: dict[int, str] = {}
        self.on_observe = on_observe
        self.nodes: dict[str, str] = {}  # worker -> node of its current range

    def emit(self, event) -> None:
        if event.TYPE == "frame":
            self.written[event.index] = self.written.get(event.index, 0) + 1
        elif event.TYPE == "progress" and event.stage == "farm":
            self.progress.append((event.frames_done, event.total_frames))

    def observe(self, kind, **info) -> None:
        if kind == "start":
            self.nodes[info["worker"]] = info["node"]
        elif kind == "frame":
            self.frame_nodes[info["index"]] = self.nodes.get(info["worker"], "")
        elif kind == "fault":
            self.faults.append({k: (v.label if hasattr(v, "label") else v) for k, v in info.items()})
        if self.on_observe is not None:
            self.on_observe(kind, **info)

    def summary(self, done=None, error=None) -> dict:
        return {"digests": digests(done.frames) if done else {}, "written": self.written, "progress": self.progress,
                "faults": self.faults, "frame_nodes": self.frame_nodes,
                "error": None if error is None else {"kind": error.kind, "message": error.message,
                                                      "keep": getattr(error, "keep_output", False)}}


def farm(request, spec, on_observe=None, should_cancel=lambda: False) -> dict:
    from t2vz_backend.errors import T2VZError
    from t2vz_backend.service.farm import run_farm

    recorder = Recorder(on_observe)
    try:
        done = run_farm(request, spec, emit=recorder.emit, observer=recorder.observe, should_cancel=should_cancel)
    except T2VZError as exc:
        return recorder.summary(error=exc)
    return recorder.summary(done)


def single(request) -> dict[str, str]:
    from t2vz_backend.models.cache import ModelCache
    from t2vz_backend.service.jobs import run_job

    return digests(run_job(request, cache=ModelCache(), emit=lambda _e: None).frames)


def write_clip(folder: Path) -> str:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    for k in range(FRAMES):
        Image.fromarray(np.roll(base, 2 * k, axis=1)).save(folder / f"clip_{k:04d}.png")
    return str(folder)


def requests(work: Path) -> dict:
    from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, TextToVideoRequest

    clip = write_clip(work / "clip")
    common = {"model": "tiny", "steps": 2, "device": "cpu", "seed": 3, "chunk_size": 2}  # grid cells: 0, 1-2, 3-4
    return {
        "text2video": TextToVideoRequest(output_dir="", prompt="a fox", frames=FRAMES, width=SIZE, height=SIZE,
                                         **common),
        "controlnet": ControlVideoRequest(output_dir="", prompt="a fox", frames=FRAMES, long_side=SIZE,
                                          controls=(ControlSpec(kind="canny", path=clip),), **common),
        "pix2pix": EditVideoRequest(output_dir="", instruction="make it snow", input=clip, frames=FRAMES,
                                    long_side=SIZE, **common),
    }


def kill_first_frame_of(span_first: int):
    """An observer that SIGKILLs the worker process rendering the range that starts at ``span_first``, right after
    that range delivered its first frame (so the retry must resume mid-range)."""
    state = {"killed": 0}

    def observe(kind, **info) -> None:
        if kind == "frame" and info["span"].first == span_first and not state["killed"]:
            state["killed"] = info["pid"]
            os.kill(info["pid"], signal.SIGKILL)
    return observe, state


def main(result_path: str, work: str) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from t2vz_backend.protocol import FarmSpec
    from t2vz_backend.service import farm_ray

    torch.set_num_threads(1)  # the workers render with cpus_per_worker=1 thread: CPU results depend on threads
    work_dir = Path(work)
    results: dict = {"timings": {}}
    clock = time.perf_counter()
    temp = os.path.join(work, "ray")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 1, "temp_dir": temp,
                                                            "include_dashboard": False})
    second = cluster.add_node(num_cpus=0, num_gpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    results["timings"]["cluster"] = time.perf_counter() - clock
    spec = FarmSpec(workers=2, gpus_per_worker=1.0, cpus_per_worker=1, retries=2)
    try:
        jobs = requests(work_dir)
        results["splits"] = {}
        for mode, base in jobs.items():
            clock = time.perf_counter()
            reference = single(dataclasses.replace(base, output_dir=str(work_dir / mode / "single")))
            runs = {n: farm(dataclasses.replace(base, output_dir=str(work_dir / mode / f"farm{n}")),
                            dataclasses.replace(spec, ranges=n)) for n in (1, 2, 3)}
            results["splits"][mode] = {"reference": reference, "runs": runs}
            results["timings"][mode] = time.perf_counter() - clock

        t2v = dataclasses.replace(jobs["text2video"], frames=6)
        clock = time.perf_counter()
        results["reference6"] = single(dataclasses.replace(t2v, output_dir=str(work_dir / "ref6")))

        observe, state = kill_first_frame_of(0)
        results["sigkill"] = farm(dataclasses.replace(t2v, output_dir=str(work_dir / "kill")),
                                  dataclasses.replace(spec, ranges=2), observe)
        results["sigkill"]["killed_pid"] = state["killed"]
        results["timings"]["sigkill"] = time.perf_counter() - clock

        clock = time.perf_counter()
        out = work_dir / "exhausted"
        observe, state = kill_first_frame_of(0)
        exhausted = farm(dataclasses.replace(t2v, output_dir=str(out)), dataclasses.replace(spec, ranges=2,
                                                                                            retries=0), observe)
        exhausted["left"] = sorted(os.listdir(out))
        exhausted["mark"] = json.loads((out / "t2vz-unfinished.json").read_text())
        results["exhausted"] = exhausted
        again = farm(dataclasses.replace(t2v, output_dir=str(out)), spec)
        results["rerun_without_resume"] = again
        results["resumed"] = farm(dataclasses.replace(t2v, output_dir=str(out)), dataclasses.replace(spec,
                                                                                                    resume=True))
        results["finished_again"] = farm(dataclasses.replace(t2v, output_dir=str(out)), spec)
        results["overwritten"] = farm(dataclasses.replace(t2v, output_dir=str(out), overwrite=True), spec)
        results["timings"]["exhausted_resume"] = time.perf_counter() - clock
        results["shared"] = farm(dataclasses.replace(t2v, output_dir=str(work_dir / "shared")),
                                 dataclasses.replace(spec, ranges=2, shared_storage=True))

        clock = time.perf_counter()
        for worker in farm_ray._POOL.workers:  # both workers up again after the kills above, one on each node
            worker.info, worker.ready = ray.get(worker.actor.ready.remote(), timeout=300), True
        second_id = second.node_id
        removed = {"done": False}

        def remove_second(kind, **info) -> None:
            # Lose the second node as soon as one of its ranges is under way (its frames are small enough to
            # travel inside Ray's messages, so waiting for its first frame could let the whole range through).
            if kind == "start" and not removed["done"] and info["node"] == second_id:
                removed["done"] = True
                cluster.remove_node(second, allow_graceful=False)

        # More steps: the range must still be under way when the node goes (a 2-step range can finish first, and a
        # 12-step one did once on a loaded machine); the tiny model makes 40 steps a matter of seconds.
        slow = dataclasses.replace(t2v, steps=40)
        results["reference_slow"] = single(dataclasses.replace(slow, output_dir=str(work_dir / "ref-slow")))
        lost = farm(dataclasses.replace(slow, output_dir=str(work_dir / "node")), dataclasses.replace(spec, ranges=2),
                    remove_second)
        lost["removed_node"], lost["removed"] = second_id, removed["done"]
        results["node_lost"] = lost
        results["timings"]["node_lost"] = time.perf_counter() - clock

        cancel = {"now": False}
        out = work_dir / "cancelled"
        results["cancelled"] = farm(dataclasses.replace(t2v, output_dir=str(out)), dataclasses.replace(spec, ranges=2),
                                    lambda kind, **info: cancel.update(now=cancel["now"] or kind == "frame"),
                                    should_cancel=lambda: cancel["now"])
        results["cancelled"]["left"] = out.exists() and sorted(os.listdir(out))

        # The command line as a user runs it: its own driver, connecting to the cluster by address.
        clock = time.perf_counter()
        farm_ray.drop_pool()  # free the GPU(s) for the new driver's workers
        job = work_dir / "job.json"
        job.write_text(json.dumps({"request": t2v.to_dict(), "farm": {"ranges": 2}}))
        out = work_dir / "cli"
        run = subprocess.run([sys.executable, "-m", "t2vz_backend", "farm", str(job), "--out", str(out),
                              "--address", cluster.address, "--retries", "1"], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
        results["cli"] = {"rc": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-3000:],
                          "digests": digests(sorted(out.glob("frame_*.png"))) if out.is_dir() else {}}
        results["timings"]["cli"] = time.perf_counter() - clock
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        results["crash"] = traceback.format_exc()
    finally:
        farm_ray.drop_pool()
        ray.shutdown()
        cluster.shutdown()
        Path(result_path).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
