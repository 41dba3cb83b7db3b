"""Benchmark (issue 14): t2vz's speed settings against 8 batched SD images, diffusers' T2V-Zero and its own default.

One process, one set of random-weight SD-1.5-topology components (bench/sd_components.py; ``--full`` for SD 1.5's
real sizes), contenders interleaved (the order rotates every round), best of ``--repeats``:

* base: diffusers' ``StableDiffusionPipeline``, ``num_images_per_prompt = frames``; old: diffusers' deprecated
  ``TextToVideoZeroPipeline`` at equal work (the same T/T′ steps and final steps, bench_text2video.py);
* ours: the default request (shared anchor layout), ``exact_anchor``, feature reuse (``--interval``/``--depth``),
  a few-step draft (``--draft-steps`` TCD steps, guidance 1: the draft preset), channels-last, and with ``--compile``
  the compiled UNet alone and with reuse (the first compiled job, which pays the compile, is timed on its own).

Also: the fidelity of reuse against reuse off on the same models (PSNR of the frames, max latent error), peak memory
of every contender on CUDA (``torch.cuda.max_memory_allocated``) and, in fresh processes, the peak at each
``--mem-frames`` count with reuse on. Ratios are against baselines measured in the same run.

    .venv/bin/python bench/bench_speed.py --threads 1 --json /tmp/speed.json            # CPU, reduced widths
    .venv/bin/python bench/bench_speed.py --full --device cuda --dtype float16 --compile  # GPU, 8 x 512^2

``--smoke`` shrinks everything to seconds (the test suite runs it on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # stable CPU timings on a shared machine (bench/README.md)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_report import (  # noqa: E402
    finish,
    measure_memory,
    mem_child,
    rotated,
    run_info,
    sync,
    target_lines,
    target_row,
    timed,
    without_json,
)
from bench_text2video import PROMPT, make_contenders, setup  # noqa: E402

from t2vz_backend.acceleration import compile as compile_module  # noqa: E402
from t2vz_backend.pipelines.text_to_video import text_to_video  # noqa: E402
from t2vz_backend.protocol import PRESETS, TextToVideoRequest  # noqa: E402
from t2vz_backend.sampling.context import JobContext  # noqa: E402
from t2vz_backend.sampling.schedule import plan_schedule  # noqa: E402

TARGETS = {"default_vs_base": 0.95, "default_vs_old": 0.95, "reuse_vs_default": 0.5, "draft_vs_default": 0.12,
           "mem_32_vs_8": 1.3, "compile_vs_default": 1.0}
DEFAULT, EXACT, REUSE, DRAFT = "ours: default", "ours: exact anchor", "ours: reuse", "ours: draft"
CHANNELS_LAST, COMPILED, COMPILED_REUSE = "ours: channels-last", "ours: compiled", "ours: compiled + reuse"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of the default job (default 50)")
    p.add_argument("--size", type=int, default=128, help="width = height in pixels (default 128; --full: 512)")
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--full", action="store_true", help="SD 1.5's real sizes (random weights); implies --size 512")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--chunk", type=int, default=8, help="our chunk size (the product default)")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--interval", type=int, default=PRESETS["fast"]["cache_interval"], help="reuse: cache_interval")
    p.add_argument("--depth", type=int, default=PRESETS["fast"]["cache_depth"], help="reuse: cache_depth")
    p.add_argument("--draft-steps", type=int, default=PRESETS["draft"]["steps"])
    p.add_argument("--draft-scheduler", default=PRESETS["draft"]["scheduler"])
    p.add_argument("--compile", action="store_true", help="also time compiled contenders (the first pays the compile)")
    p.add_argument("--compile-backend", default=compile_module.BACKEND, help="torch.compile backend (default inductor)")
    p.add_argument("--skip", default="", help="contenders to leave out, comma-separated name prefixes (e.g. 'old')")
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (best-of, median); 0 = memory only")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run of each contender")
    p.add_argument("--mem-frames", default=None, help="frame counts of the fresh-process memory runs with reuse on "
                   "(default 8,32; --smoke: none)")
    p.add_argument("--mem-steps", type=int, default=4, help="steps of the memory runs (full and reuse steps both)")
    p.add_argument("--vae-batch", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round, no memory runs: seconds (tests)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)  # internal: one memory run
    args = p.parse_args(argv)
    if args.full:
        args.channels = "320,640,1280,1280"
        args.size = 512 if args.size == 128 else args.size
    if args.smoke:
        args.channels, args.size, args.frames, args.steps, args.repeats = "32,32,64,64", 64, 3, 6, 1
        args.warmup_steps, args.draft_steps, args.chunk = 2, 2, 2
    if args.mem_frames is None:
        args.mem_frames = "" if args.smoke else "8,32"
    args.skip_old = "old" in args.skip.split(",")  # what make_contenders reads
    return args


def request(args, **changes) -> TextToVideoRequest:
    base = TextToVideoRequest(output_dir="(in memory)", prompt=PROMPT, steps=args.steps, guidance=args.guidance,
                              width=args.size, height=args.size, frames=args.frames, chunk_size=args.chunk,
                              seed=0, vae_batch=args.vae_batch)
    return dataclasses.replace(base, **changes)


def variants(args) -> dict[str, dict]:
    """Our contenders as request changes (steps stay the run's, except for the draft)."""
    out = {DEFAULT: {}, EXACT: {"exact_anchor": True},
           REUSE: {"cache_interval": args.interval, "cache_depth": args.depth},
           DRAFT: {"scheduler": args.draft_scheduler, "steps": args.draft_steps, "guidance": 1.0},
           CHANNELS_LAST: {"channels_last": True}}
    if args.compile:
        out[COMPILED] = {"compile": True}
        out[COMPILED_REUSE] = {"compile": True, "cache_interval": args.interval, "cache_depth": args.depth}
    return {name: changes for name, changes in out.items() if not _skipped(args, name)}


def _skipped(args, name: str) -> bool:
    return any(part and name.split(": ", 1)[-1].startswith(part) for part in args.skip.split(",") if part != "old")


def ours(args, model, changes: dict):
    def run(steps):
        seen = []
        job = request(args, steps=steps, **changes) if "steps" not in changes else request(args, **changes)
        text_to_video(job, model, JobContext(on_frame=lambda index, image: seen.append(index)))
        assert seen == list(range(args.frames))
    return run


def work(args, model, name: str, changes: dict) -> str:
    """UNet frame-passes of one run (a CFG pair counts once); reuse: how many of them are full passes."""
    if name.startswith("base"):
        return str(args.steps * args.frames)
    job = request(args, **changes)
    scheduler = model.make_scheduler(job.scheduler)
    plan = plan_schedule(scheduler, job.steps, job.t0, job.t1, may_jump=not name.startswith("old"))
    total = plan.anchor_steps + plan.main_steps * args.frames
    if job.cache_interval > 1:  # full steps: 0, N, ... before T; the anchor's T->T' path; T, T + N, ... (reuse.begin)
        n = job.cache_interval
        path = 1 if plan.jump else plan.t0_index - plan.t1_index
        full = math.ceil(plan.t1_index / n) + math.ceil(path / n) + math.ceil(plan.main_steps / n) * args.frames
        return f"{total} ({full} full)"
    return str(total)


def time_all(args, model) -> dict:
    runs = make_contenders(args, model, args.frames, [], 0)  # base and old (diffusers), same components
    runs = {k: v for k, v in runs.items() if not (k.startswith("base") and "base" in args.skip.split(","))}
    plans = variants(args)
    runs.update({name: ours(args, model, changes) for name, changes in plans.items()})
    names = list(runs)
    compile_s = {}
    compile_module.BACKEND = args.compile_backend
    for name in names:  # untimed warm-up; a compiled contender's first run compiles (timed apart)
        start = time.perf_counter()
        runs[name](args.warmup_steps)
        if name in (COMPILED, COMPILED_REUSE):
            compile_s[name] = time.perf_counter() - start
    times = {n: [] for n in names}
    cpu = {n: [] for n in names}
    peaks = {n: [] for n in names}
    for r, name in rotated(names, args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        wall, used = timed(runs[name], args.steps, args.device)
        times[name].append(wall)
        cpu[name].append(used)
        if args.device.startswith("cuda"):
            peaks[name].append(torch.cuda.max_memory_allocated() / 2**20)
        print(f"  round {r + 1}/{args.repeats}  {name:<34} {wall:8.2f} s wall {used:8.2f} s cpu", flush=True)
    best = {n: min(times[n]) for n in names}
    best_cpu = {n: min(cpu[n]) for n in names}
    base = next((n for n in names if n.startswith("base")), None)
    old = next((n for n in names if n.startswith("old")), None)
    rows = {}
    for name in names:
        rows[name] = {"times_s": times[name], "best_s": best[name], "median_s": statistics.median(times[name]),
                      "best_cpu_s": best_cpu[name], "work": work(args, model, name, plans.get(name, {})),
                      "vs_base": best[name] / best[base] if base else None,
                      "vs_old": best[name] / best[old] if old else None,
                      "cpu_vs_base": best_cpu[name] / best_cpu[base] if base else None,
                      "cpu_vs_old": best_cpu[name] / best_cpu[old] if old else None,
                      "vs_default": best[name] / best[DEFAULT] if DEFAULT in best else None,
                      "cpu_vs_default": best_cpu[name] / best_cpu[DEFAULT] if DEFAULT in best else None,
                      "cuda_peak_mib": max(peaks[name]) if peaks[name] else None}
        if name in compile_s:
            rows[name]["first_run_s"] = compile_s[name]
    return rows


def decoded(args, model, changes: dict) -> tuple[np.ndarray, torch.Tensor]:
    """(frames, latents) of one job: the latents as the VAE receives them, in frame order."""
    latents: list[torch.Tensor] = []
    vae = model.vae
    inner = vae.decode

    def capture(z, *a, **k):
        latents.append(z.float().cpu() * vae.config.scaling_factor)
        return inner(z, *a, **k)

    vae.decode = capture  # an instance attribute shadows the method for this measurement only
    try:
        ctx = JobContext.collecting()
        text_to_video(request(args, **changes), model, ctx)
    finally:
        del vae.decode
    return np.stack([ctx.frames[k] for k in sorted(ctx.frames)]), torch.cat(latents)


def fidelity(args, model) -> dict:
    """Reuse against reuse off, on the same models, seed and schedule."""
    ref_frames, ref_latents = decoded(args, model, {})
    frames, latents = decoded(args, model, {"cache_interval": args.interval, "cache_depth": args.depth})
    mse = float(np.mean((frames.astype(np.float64) - ref_frames.astype(np.float64)) ** 2))
    error = (latents - ref_latents).abs()
    return {"psnr_db": 10 * math.log10(255 ** 2 / mse) if mse else math.inf,
            "max_latent_error": float(error.max()), "mean_latent_error": float(error.mean()),
            "latent_std": float(ref_latents.std())}


def targets(rows: dict, memory: list[dict]) -> dict:
    out = {}
    if DEFAULT in rows:
        d = rows[DEFAULT]
        if d["vs_base"] is not None:
            out[f"{DEFAULT} / {next(n for n in rows if n.startswith('base'))}"] = target_row(
                d["vs_base"], TARGETS["default_vs_base"], d["cpu_vs_base"])
        if d["vs_old"] is not None:
            out[f"{DEFAULT} / diffusers T2V-Zero"] = target_row(d["vs_old"], TARGETS["default_vs_old"],
                                                                d["cpu_vs_old"])
        for name, key in ((REUSE, "reuse_vs_default"), (DRAFT, "draft_vs_default"),
                          (COMPILED, "compile_vs_default"), (COMPILED_REUSE, "reuse_vs_default")):
            if name in rows:
                out[f"{name} / {DEFAULT}"] = target_row(rows[name]["vs_default"], TARGETS[key],
                                                        rows[name]["cpu_vs_default"])
    if len(memory) > 1:
        first, last = memory[0], memory[-1]
        for label, key in (("process peak RSS", "process_peak_rss_ratio"), ("CUDA peak", "cuda_peak_alloc_ratio")):
            if last.get(key) is not None:
                out[f"reuse: {label} {last['frames']} / {first['frames']} frames"] = target_row(
                    last[key], TARGETS["mem_32_vs_8"])
    return out


def report(result: dict) -> str:
    cfg, rows = result["config"], result["timing"]
    lines = [f"t2vz speed benchmark: {cfg['frames']} frames, {cfg['size']}x{cfg['size']}, {cfg['steps']} DDIM steps, "
             f"guidance {cfg['guidance']}, UNet {cfg['model']['unet_channels']}, {cfg['device']} {cfg['dtype']}, "
             f"{cfg['threads']} threads, best of {cfg['repeats']}; reuse interval {cfg['interval']} depth "
             f"{cfg['depth']}; draft {cfg['draft_steps']} {cfg['draft_scheduler']} steps",
             "", f"{'contender':<34} {'frame-passes':>16} {'best s':>8} {'median s':>8} {'vs base':>7} {'vs old':>7} "
             f"{'vs default':>10} {'cpu vs def':>10} {'CUDA MiB':>9}"]
    for name, r in rows.items():
        def fmt(value, spec=".3f"):
            return "-" if value is None else format(value, spec)
        lines.append(f"{name:<34} {r['work']:>16} {r['best_s']:>8.2f} {r['median_s']:>8.2f} {fmt(r['vs_base']):>7} "
                     f"{fmt(r['vs_old']):>7} {fmt(r['vs_default']):>10} {fmt(r['cpu_vs_default']):>10} "
                     f"{fmt(r['cuda_peak_mib'], '.0f'):>9}")
        if "first_run_s" in r:
            lines.append(f"{'':<34} first run (compiles): {r['first_run_s']:.1f} s")
    if result.get("fidelity"):
        f = result["fidelity"]
        lines += ["", f"fidelity of reuse vs off: PSNR {f['psnr_db']:.2f} dB over all frames, max latent error "
                  f"{f['max_latent_error']:.4f} (mean {f['mean_latent_error']:.4f}; latent std {f['latent_std']:.3f})"]
    for m in result["memory"]:
        cuda = f", CUDA peak {m['cuda_peak_alloc_mib']:.0f} MiB" if "cuda_peak_alloc_mib" in m else ""
        lines.append(f"reuse on, {m['frames']} frames, fresh process: peak RSS {m['process_peak_rss_mib']:.0f} MiB, "
                     f"job growth {m.get('job_delta_mib', float('nan')):.1f} MiB{cuda}")
    return "\n".join(lines + target_lines(result["targets"], 60))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg, model = setup(args)
    if args.mem_child:  # internal: one memory run in this fresh process, reuse on
        job = request(args, frames=args.mem_child, steps=args.mem_steps, cache_interval=args.interval,
                      cache_depth=args.depth)
        print("MEM " + json.dumps(mem_child(args, functools.partial(text_to_video, job, model, JobContext()))))
        return 0
    started = time.perf_counter()
    print(f"model: {cfg.describe()}", flush=True)
    rows = time_all(args, model) if args.repeats else {}
    quality = fidelity(args, model) if args.repeats else {}
    del model
    gc.collect()
    sync(args.device)
    counts = [int(f) for f in args.mem_frames.split(",") if f]
    memory = measure_memory(os.path.abspath(__file__), counts, without_json(argv)) if counts else []
    config = {k: getattr(args, k) for k in ("steps", "size", "frames", "chunk", "guidance", "interval", "depth",
                                            "draft_steps", "draft_scheduler", "compile", "compile_backend", "repeats",
                                            "device", "dtype", "mem_steps", "vae_batch", "warmup_steps")}
    config.update(model=cfg.describe(), scheduler="ddim", prompt=PROMPT, **run_info())
    result = {"config": config, "timing": rows, "fidelity": quality, "memory": memory,
              "targets": targets(rows, memory), "wall_s": time.perf_counter() - started}
    finish(result, report(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
