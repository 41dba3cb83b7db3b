"""Benchmark: a worker's cold start against a warm worker's second job (issue #5), through the real client.

A random-weight model with Stable Diffusion 1.5's topology (bench/sd_components.py) is saved as a safetensors
diffusers folder and requested as ``model=<folder>``, the path a user's model takes. For each of ``--repeats`` fresh
workers (``WorkerClient``, ``python -m t2vz_backend worker``):

* cold: from just before ``WorkerClient.start()`` to the arrival of job 1's first ``Progress`` with ``step >= 1``,
  i.e. the first UNet pass of the job done (the anchor's first denoising step); split into process start -> ``Pong``
  (interpreter, imports, torch, handshake) and ``submit`` -> first step (model load, prepare, first UNet pass);
* warm: job 2 in the same worker, same model, another seed, prompt and output folder: ``submit`` -> first step.

Each job is also split by the first ``Progress`` of each stage: submit -> "load" (queue, request checks), "load" ->
"prepare" (model load or cache hit), "prepare" -> "denoise" (prompt encoding, schedule), then the UNet passes; the
same instants at "denoise" give the cold/warm ratio without the first UNet pass.

Each job is cancelled after its second step (the worker stops within one more step) and its ``Failed{cancelled}``
awaited before the next job is submitted. The model folder is freshly written, so it is in the OS page cache: "cold"
here is a new process, not a cold disk.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_worker.py --threads 1 --json /tmp/w.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_text2video.py: spinning OpenMP waits on a shared CPU
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sd_components import SD15_SCHEDULER_CONFIG, ModelConfig, build_components  # noqa: E402

from t2vz_backend.protocol import Done, Failed, Progress, TextToVideoRequest  # noqa: E402
from t2vz_backend.service.client import WorkerClient  # noqa: E402

PROMPTS = ("a cat running on the beach", "a dog walking in the snow")
TARGET = 0.10  # warm time to first step <= 10 % of the cold one


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--full", action="store_true", help="SD 1.5's real sizes (random weights, ~4 GB on disk)")
    p.add_argument("--size", type=int, default=128, help="width = height in pixels (default 128)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="fresh workers started (default 3)")
    p.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of the worker (default 1)")
    p.add_argument("--device", default="cpu", help="the jobs' device: cpu, cuda, mps (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    if args.full:
        args.channels = "320,640,1280,1280"
    return args


def save_model(cfg: ModelConfig, folder: str, threads: int) -> int:
    """Write the components as a StableDiffusionPipeline folder (as models/tiny.py does); returns its size in bytes."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    torch.set_num_threads(threads)

    default_tmp, tempfile.tempdir = tempfile.tempdir, os.path.dirname(folder)  # the tokenizer's files land in scratch
    try:
        parts = build_components(cfg)
    finally:
        tempfile.tempdir = default_tmp
    scheduler = PNDMScheduler.from_config({"_class_name": "PNDMScheduler", **SD15_SCHEDULER_CONFIG})
    pipe = StableDiffusionPipeline(**parts, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


def timed_job(client: WorkerClient, request: TextToVideoRequest, origin: float) -> dict:
    """Submit, note when each stage's first event arrives (seconds after submit), cancel after the second step.

    Step 2 is one steady-state UNet pass, to compare with the first (the worker stops within one more step).
    """
    submitted = time.perf_counter()
    marks = {"submitted_at": submitted - origin}  # seconds after the worker was started
    job_id = client.submit(request)
    for event in client.iter_events(job_id, timeout=900):
        now = time.perf_counter() - submitted
        if isinstance(event, Progress):
            marks.setdefault(event.stage, now)
            if event.step == 1:
                marks["first_step"] = now
            elif event.step == 2:
                marks["second_step"] = now
                client.cancel(job_id)
        elif isinstance(event, Failed) and event.kind != "cancelled":
            raise RuntimeError(f"job failed: {event.kind}: {event.message}\n{client.stderr_tail()}")
        elif isinstance(event, (Done, Failed)):
            marks["ended"] = now
    if "second_step" not in marks:
        raise RuntimeError(f"job ended before its second step: {marks}")
    return marks


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_worker(args, model_dir: str, scratch: str, n: int, env: dict) -> dict:
    client = WorkerClient(sys.executable, env=env, cwd=ROOT, log_path=os.path.join(scratch, f"worker{n}.log"))
    started = time.perf_counter()
    client.start()
    try:
        client.ping(timeout=600)
        pong = time.perf_counter() - started
        jobs = []
        for k, prompt in enumerate(PROMPTS):
            request = TextToVideoRequest(
                output_dir=os.path.join(scratch, f"out-{n}-{k}"), model=model_dir, prompt=prompt, seed=k,
                steps=args.steps, width=args.size, height=args.size, frames=args.frames,
                device=args.device, dtype=args.dtype, offline=True)
            jobs.append(timed_job(client, request, started))
        rss = peak_rss_mib(client.pid)
    finally:
        client.stop()
    cold = jobs[0]["submitted_at"] + jobs[0]["first_step"]
    return {"start_to_pong_s": pong, "cold_s": cold, "cold_job": jobs[0], "warm_job": jobs[1],
            "warm_s": jobs[1]["first_step"], "ratio": jobs[1]["first_step"] / cold, "peak_rss_mib": rss,
            # the same instants without the first UNet pass: when the engine is ready to denoise
            "cold_ready_s": jobs[0]["submitted_at"] + jobs[0]["denoise"], "warm_ready_s": jobs[1]["denoise"]}


def stages(marks: dict) -> dict:
    """Seconds between the job's events: queue/validate, load (or cache hit), prepare, first UNet pass."""
    return {"submit->load": marks["load"], "load": marks["prepare"] - marks["load"],
            "prepare": marks["denoise"] - marks["prepare"], "first UNet pass": marks["first_step"] - marks["denoise"],
            "second UNet pass": marks["second_step"] - marks["first_step"]}


def summary(runs: list[dict]) -> dict:
    def stats(values):
        return {"best": min(values), "median": statistics.median(values)}

    out = {"cold_s": stats([r["cold_s"] for r in runs]),
           "start_to_pong_s": stats([r["start_to_pong_s"] for r in runs]),
           "cold_submit_to_step_s": stats([r["cold_job"]["first_step"] for r in runs]),
           "warm_s": stats([r["warm_s"] for r in runs]),
           "cold_ready_s": stats([r["cold_ready_s"] for r in runs]),
           "warm_ready_s": stats([r["warm_ready_s"] for r in runs]),
           "ratio_per_worker": [r["ratio"] for r in runs],
           "peak_rss_mib": stats([r["peak_rss_mib"] for r in runs])}
    out["ratio_of_medians"] = out["warm_s"]["median"] / out["cold_s"]["median"]
    out["target_met"] = out["ratio_of_medians"] <= TARGET
    out["ready_ratio_of_medians"] = out["warm_ready_s"]["median"] / out["cold_ready_s"]["median"]
    for name in ("cold_job", "warm_job"):
        per = [stages(r[name]) for r in runs]
        out[f"{name}_stages_median_s"] = {k: statistics.median(p[k] for p in per) for k in per[0]}
    return out


def report(runs: list[dict], s: dict) -> str:
    lines = ["worker | start->pong | submit->step 1 | cold total | warm submit->step 1 | warm/cold | peak RSS",
             "---|---|---|---|---|---|---"]
    for n, r in enumerate(runs, 1):
        lines.append(f"{n} | {r['start_to_pong_s']:.2f} s | {r['cold_job']['first_step']:.2f} s | "
                     f"{r['cold_s']:.2f} s | {r['warm_s']:.3f} s | {100 * r['ratio']:.1f} % | "
                     f"{r['peak_rss_mib']:.0f} MiB")
    for key in ("best", "median"):
        lines.append(f"{key} | {s['start_to_pong_s'][key]:.2f} s | {s['cold_submit_to_step_s'][key]:.2f} s | "
                     f"{s['cold_s'][key]:.2f} s | {s['warm_s'][key]:.3f} s | "
                     f"{100 * s['warm_s'][key] / s['cold_s'][key]:.1f} % | {s['peak_rss_mib'][key]:.0f} MiB")
    lines.append(f"\nwithout the first UNet pass (submit/start -> denoise stage), median: cold "
                 f"{s['cold_ready_s']['median']:.2f} s, warm {s['warm_ready_s']['median']:.3f} s = "
                 f"{100 * s['ready_ratio_of_medians']:.1f} %")
    lines += ["", "stage (median, s) | cold job | warm job", "---|---|---"]
    for k, cold in s["cold_job_stages_median_s"].items():
        lines.append(f"{k} | {cold:.3f} | {s['warm_job_stages_median_s'][k]:.3f}")
    verdict = "met" if s["target_met"] else "NOT met"
    lines.append(f"\nwarm/cold of the medians = {100 * s['ratio_of_medians']:.1f} %: "
                 f"target <= {100 * TARGET:.0f} % {verdict}")
    return "\n".join(lines)


def machine() -> dict:
    import diffusers
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo", encoding="utf-8")
                if line.startswith("model name")), platform.processor())
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {"machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}", "cpu": cpu,
            "python": platform.python_version(), "git": git.stdout.strip(),
            "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                         "transformers": transformers.__version__}}


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = ModelConfig.reduced(tuple(int(c) for c in args.channels.split(",")))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "HF_HUB_OFFLINE": "1"}
    scratch = tempfile.mkdtemp(prefix="t2vz-bench-worker-")
    try:
        model_dir = os.path.join(scratch, "model")
        t = time.perf_counter()
        size = save_model(cfg, model_dir, args.threads)
        print(f"model {cfg.describe()}: {size / 2**20:.0f} MiB saved in {time.perf_counter() - t:.0f} s", flush=True)
        runs = []
        for n in range(1, args.repeats + 1):
            runs.append(run_worker(args, model_dir, scratch, n, env))
            print(f"worker {n}: cold {runs[-1]['cold_s']:.2f} s, warm {runs[-1]['warm_s']:.3f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    s = summary(runs)
    print("\n" + report(runs, s))
    if args.json:
        config = {k: getattr(args, k) for k in ("size", "steps", "frames", "repeats", "threads")}
        config.update(model=cfg.describe(), model_bytes=size, prompts=PROMPTS, device=args.device, dtype=args.dtype,
                      omp_wait_policy=env.get("OMP_WAIT_POLICY"), **machine())
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"config": config, "measured": "seconds to the arrival of job's first Progress with step >= 1",
                       "summary": s, "runs": runs}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
