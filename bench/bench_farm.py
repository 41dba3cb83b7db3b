"""Benchmark: one job on 2 CPU farm workers (one thread each) against 1 worker, on Ray (issue 15).

A random-weight model with Stable Diffusion 1.5's topology (bench/sd_components.py) is saved as a safetensors
diffusers folder and requested as ``model=<folder>``. A local Ray instance with 2 CPUs runs the same text->video
job (default 8 frames, chunk 4) with ``FarmSpec(workers=N, ranges=N, gpus_per_worker=0, cpus_per_worker=1)``:

* ``farm1`` / ``farm2``: 1 and 2 workers, each run twice: ``cold`` (new actors: process start, imports, model load)
  and ``warm`` (the same actors again: models cached). Speed-up = farm1 warm / farm2 warm, measured in this run.
* per-range overhead, in this process with one thread and the model loaded (no Ray): the whole job, then the job
  cut as farm2 cuts it (range A holds frame 0, range B recomputes the anchor): ``A + B - whole`` is what a split
  adds (the anchor's extra UNet row per step, prompt encoding, the range's fixed costs).
* model load per worker: ``cold - warm`` of each farm run.

Every farm run's frames are compared with the single run's (bit for bit). Ray binds the machine's external address
unless it has none, so the script re-runs itself in a private network namespace (``unshare -n``, loopback only),
where Ray's authentication may be off; ``--no-namespace`` runs it as is (with token auth on).

    .venv/bin/python bench/bench_farm.py --json /tmp/farm.json                   # the documented run
    .venv/bin/python bench/bench_farm.py --steps 4 --size 64 --channels 32,64,64,64   # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--channels", default="32,64,128,128", help="UNet block widths (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--chunk-size", type=int, default=4, help="UNet batch; ranges start on its grid")
    p.add_argument("--exact-anchor", action="store_true", help="the job with Exact First Frame (its own anchor call: "
                   "ranges need no padding in that layout)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--no-namespace", action="store_true", help="do not enter a private network namespace")
    return p.parse_args(argv)


def digests(paths) -> list[str]:
    return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths]


def main(argv=None) -> int:
    args = parse_args(argv)
    from t2vz_backend.service.farm_ray import loopback_only

    if not args.no_namespace and not loopback_only():
        command = f"ip link set lo up && RAY_AUTH_MODE=disabled exec {sys.executable} {' '.join(sys.argv)}"
        return subprocess.call(["unshare", "-n", "sh", "-c", command], env={**os.environ, "PYTHONPATH": ROOT})

    import ray
    import torch
    from bench_worker import save_model
    from sd_components import ModelConfig

    from t2vz_backend.models.cache import ModelCache
    from t2vz_backend.protocol import FarmSpec, TextToVideoRequest
    from t2vz_backend.service.farm import run_farm
    from t2vz_backend.service.farm_plan import grid_for, split_frames
    from t2vz_backend.service.jobs import run_job

    torch.set_num_threads(1)
    scratch = tempfile.mkdtemp(prefix="t2vz-bench-farm-")
    results: dict = {"args": vars(args), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                     "torch": torch.__version__, "ray": ray.__version__}}
    try:
        cfg = ModelConfig.reduced(tuple(int(c) for c in args.channels.split(",")))
        model_dir = os.path.join(scratch, "model")
        save_model(cfg, model_dir, threads=1)
        base = TextToVideoRequest(output_dir="", prompt="a fox running in the snow", model=model_dir, device="cpu",
                                  dtype="float32", frames=args.frames, width=args.size, height=args.size,
                                  steps=args.steps, chunk_size=args.chunk_size, seed=1,
                                  exact_anchor=args.exact_anchor)

        # Per-range overhead, in this process: the whole job vs the job cut as farm2 cuts it.
        cache = ModelCache()
        run_job(dataclasses.replace(base, output_dir=os.path.join(scratch, "warmup"), frames=2), cache=cache,
                emit=lambda _e: None)
        parts = split_frames(0, args.frames - 1, ranges=2, grid=grid_for(base, 0, args.frames - 1))
        timed = {}
        for name, (first, last) in [("whole", (0, args.frames - 1))] + [(p.label, (p.first, p.last)) for p in parts]:
            start = time.perf_counter()
            done = run_job(dataclasses.replace(base, output_dir=os.path.join(scratch, f"single-{name}"),
                                               frame_start=first, frame_end=last), cache=cache, emit=lambda _e: None)
            timed[name] = time.perf_counter() - start
            if name == "whole":
                reference = digests(done.frames)
        split_sum = sum(timed[p.label] for p in parts)
        results["single"] = {"seconds": timed, "ranges": [p.label for p in parts],
                             "split_overhead_s": split_sum - timed["whole"],
                             "split_overhead_ratio": split_sum / timed["whole"]}

        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
        for workers in (1, 2):
            spec = FarmSpec(workers=workers, ranges=workers, gpus_per_worker=0.0, cpus_per_worker=1)
            runs = {}
            for phase in ("cold", "warm"):
                start = time.perf_counter()
                done = run_farm(dataclasses.replace(base, output_dir=os.path.join(scratch, f"farm{workers}{phase}")),
                                spec, emit=lambda _e: None)
                runs[phase] = time.perf_counter() - start
                assert digests(done.frames) == reference, f"farm{workers} {phase}: frames differ from the single run"
            runs["model_load_and_start_s"] = runs["cold"] - runs["warm"]
            results[f"farm{workers}"] = runs
        ray.shutdown()
        results["speedup_warm"] = results["farm1"]["warm"] / results["farm2"]["warm"]
        results["speedup_cold"] = results["farm1"]["cold"] / results["farm2"]["cold"]
        results["identical_frames"] = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results, indent=1))
    print(f"speed-up 2 workers vs 1 (warm): {results['speedup_warm']:.2f}x, cold: {results['speedup_cold']:.2f}x; "
          f"split overhead {results['single']['split_overhead_s']:.2f} s "
          f"({(results['single']['split_overhead_ratio'] - 1) * 100:.0f} % of the whole job); model load and start "
          f"per worker ~{results['farm2']['model_load_and_start_s']:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
