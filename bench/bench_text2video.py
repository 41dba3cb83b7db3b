"""Benchmark: t2vz text->video against 8 independent SD images and diffusers' deprecated TextToVideoZeroPipeline.

All contenders share the same random-weight SD-1.5-topology components (bench/sd_components.py), the same DDIM
schedule, step count, guidance and size, and are timed in the same process, interleaved (the order rotates every
round), best-of ``--repeats``. Peak memory of our engine at 8/16/32 frames is measured in fresh subprocesses.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_text2video.py --json bench/results.json

diffusers' ``TextToVideoZeroPipeline`` is imported here only as a comparison baseline, never by the product.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP threads that spin while waiting turn a shared, loaded CPU into 10x timing swings (measured: the same UNet
# batch took 0.8-12.5 s); sleeping waits cost ~25 % when idle but are stable. Same for every contender. Override by
# setting OMP_WAIT_POLICY=ACTIVE in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from sd_components import ModelConfig, build_model, ddim  # noqa: E402

from t2vz_backend.context import JobContext  # noqa: E402
from t2vz_backend.protocol import TextToVideoRequest  # noqa: E402
from t2vz_backend.sampler import chunks  # noqa: E402
from t2vz_backend.schedule import plan_schedule  # noqa: E402
from t2vz_backend.text_to_video import text_to_video  # noqa: E402

PROMPT = "a cat running on the beach"
TARGETS = {"ours_vs_base": 1.00, "ours_vs_old": 0.90, "mem_32_vs_8": 1.15}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps for every contender (default 50)")
    p.add_argument("--size", type=int, default=128, help="width = height in pixels (default 128)")
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--full", action="store_true", help="SD 1.5's real sizes (random weights); implies --size 512")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--chunks", default="8,4", help="our chunk sizes to time")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--repeats", type=int, default=2, help="timed rounds per contender (best-of and median)")
    p.add_argument("--warmup-steps", type=int, default=3, help="steps of the untimed warm-up run of each contender")
    p.add_argument("--mem-frames", default="8,16,32", help="frame counts for the peak-memory runs ('' = skip)")
    p.add_argument("--mem-chunk", type=int, default=4)
    p.add_argument("--mem-steps", type=int, default=10, help="steps of the memory runs (peak does not depend on it)")
    p.add_argument("--vae-batch", type=int, default=2, help="our VAE decode batch (the product default)")
    p.add_argument("--skip-old", action="store_true", help="do not time diffusers' TextToVideoZeroPipeline")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)  # internal: one memory run
    args = p.parse_args(argv)
    if args.full:
        args.channels = "320,640,1280,1280"
        if args.size == 128:
            args.size = 512
    return args


def setup(args) -> tuple[ModelConfig, object]:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    cfg = ModelConfig.reduced(tuple(int(c) for c in args.channels.split(",")))
    return cfg, build_model(cfg, args.device, getattr(torch, args.dtype))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ contenders


def request(args, frames: int, chunk: int, steps: int) -> TextToVideoRequest:
    return TextToVideoRequest(output_dir="(in memory)", prompt=PROMPT, steps=steps, guidance=args.guidance,
                              width=args.size, height=args.size, frames=frames, chunk_size=chunk,
                              scheduler="ddim", seed=0, vae_batch=args.vae_batch)


def make_contenders(args, model) -> dict:
    """name -> callable(steps) running one whole job (text encoding, denoising, decoding to uint8/float images)."""
    from diffusers import StableDiffusionPipeline

    parts = {k: getattr(model, k) for k in ("unet", "vae", "text_encoder", "tokenizer")}
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    sd = StableDiffusionPipeline(**parts, scheduler=ddim(model), **common)
    sd.set_progress_bar_config(disable=True)
    frames = args.frames
    out: dict = {}

    def base(steps):
        images = sd(PROMPT, num_images_per_prompt=frames, num_inference_steps=steps, guidance_scale=args.guidance,
                    height=args.size, width=args.size, generator=torch.Generator("cpu").manual_seed(0),
                    output_type="np").images
        assert len(images) == frames

    out["base: 8 SD images"] = base

    def ours(chunk):
        def run(steps):
            count = []
            ctx = JobContext(on_frame=lambda index, image: count.append(index))  # frames discarded, as streamed
            text_to_video(request(args, frames, chunk, steps), model, ctx)
            assert count == list(range(frames))
        return run

    for chunk in (int(c) for c in args.chunks.split(",")):
        out[f"ours: chunk {chunk}"] = ours(chunk)

    if not args.skip_old:
        from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
            TextToVideoZeroPipeline,
        )

        old = TextToVideoZeroPipeline(**parts, scheduler=ddim(model), **common)
        old.set_progress_bar_config(disable=True)

        def old_run(steps):
            t1, t0 = old_indices(model, steps)
            video = old(PROMPT, video_length=frames, num_inference_steps=steps, guidance_scale=args.guidance,
                        height=args.size, width=args.size, generator=torch.Generator("cpu").manual_seed(0),
                        t0=t0, t1=t1, output_type="np").images
            assert len(video) == frames

        out["old: diffusers T2V-Zero"] = old_run
    return out


def old_indices(model, steps: int) -> tuple[int, int]:
    """diffusers' (t1, t0) indices from the end of the schedule that put T/T' where our engine puts them.

    At 50 steps this is diffusers' own default (47, 44) = timesteps 941/881; at other step counts it avoids the
    IndexError of method.md §11.1 and gives both engines the same schedule.
    """
    plan = plan_schedule(ddim(model), steps, 881, 941)
    return steps - 1 - plan.t1_index, steps - 1 - plan.t0_index


def frame_steps(name: str, model, args, steps: int) -> tuple[int, int]:
    """(UNet frame-steps, UNet calls) of one run, from the schedule (method.md §12.3; a CFG pair counts once)."""
    plan = plan_schedule(ddim(model), steps, 881, 941)
    f = args.frames
    if name.startswith("base"):
        return steps * f, steps
    if name.startswith("old"):
        return plan.t0_index + plan.main_steps * f, plan.t0_index + plan.main_steps
    chunk = int(name.rsplit(" ", 1)[1])
    return plan.t0_index + plan.main_steps * f, plan.t0_index + plan.main_steps * (1 + len(chunks(f, chunk)))


def time_contenders(args, model) -> dict:
    runs = make_contenders(args, model)
    names = list(runs)
    for name in names:  # untimed warm-up: lazy initialisation, allocator growth, first-call overheads
        runs[name](args.warmup_steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}  # process CPU time: less sensitive to other load
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            gc.collect()
            sync(args.device)
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name](args.steps)
            sync(args.device)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            print(f"  round {r + 1}/{args.repeats}  {name:<26} {times[name][-1]:8.2f} s wall "
                  f"{cpu[name][-1]:8.2f} s cpu", flush=True)
    rows = {}
    base, base_cpu = min(times[names[0]]), min(cpu[names[0]])
    old_name = names[-1] if not args.skip_old else None
    for name in names:
        fs, calls = frame_steps(name, model, args, args.steps)
        best, best_cpu = min(times[name]), min(cpu[name])
        rows[name] = {"times_s": times[name], "cpu_s": cpu[name], "best_s": best,
                      "median_s": statistics.median(times[name]), "best_cpu_s": best_cpu,
                      "unet_frame_steps": fs, "unet_calls": calls, "vs_base": best / base,
                      "vs_old": best / min(times[old_name]) if old_name else None,
                      "cpu_vs_base": best_cpu / base_cpu,
                      "cpu_vs_old": best_cpu / min(cpu[old_name]) if old_name else None}
    return rows


# ------------------------------------------------------------------------------------------------ peak memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mem_child(args) -> None:
    """One fresh-process run of our engine at ``--mem-child`` frames; prints one JSON line."""
    _, model = setup(args)
    gc.collect()
    rss_before = _status_kib("VmRSS")
    try:  # reset VmHWM to the current RSS, so the job's own peak is visible (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        reset = True
    except OSError:
        reset = False
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    text_to_video(request(args, args.mem_child, args.mem_chunk, args.mem_steps), model, JobContext())
    result = {"frames": args.mem_child, "rss_before_job_mib": rss_before / 1024,
              "job_peak_rss_mib": _status_kib("VmHWM") / 1024 if reset else None,
              "process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        result["cuda_peak_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print("MEM " + json.dumps(result), flush=True)


def measure_memory(args, argv: list[str]) -> list[dict]:
    out = []
    for frames in (int(f) for f in args.mem_frames.split(",") if f):
        cmd = [sys.executable, os.path.abspath(__file__), *argv, "--mem-child", str(frames)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("MEM ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"memory run at {frames} frames failed:\n{proc.stderr[-3000:]}")
        row = json.loads(line[4:])
        if row["job_peak_rss_mib"] is not None:
            row["job_delta_mib"] = row["job_peak_rss_mib"] - row["rss_before_job_mib"]
        out.append(row)
        print(f"  {frames:3d} frames: process peak {row['process_peak_rss_mib']:.0f} MiB", flush=True)
    first = out[0] if out else {}
    for row in out:
        for key in ("process_peak_rss_mib", "job_peak_rss_mib", "job_delta_mib", "cuda_peak_alloc_mib"):
            if row.get(key) is not None and first.get(key):
                row[key.replace("_mib", "_ratio")] = row[key] / first[key]
    return out


# ------------------------------------------------------------------------------------------------ report


def report(result: dict) -> str:
    rows, mem, cfg = result["timing"], result["memory"], result["config"]
    lines = [f"t2vz text->video benchmark: {cfg['frames']} frames, {cfg['size']}x{cfg['size']}, {cfg['steps']} DDIM "
             f"steps, guidance {cfg['guidance']}, UNet {cfg['model']['unet_channels']}, {cfg['device']} "
             f"{cfg['dtype']}, {cfg['threads']} threads (OMP_WAIT_POLICY={cfg['omp_wait_policy']}), "
             f"best of {cfg['repeats']}",
             "", f"{'contender':<24} {'frame-steps':>11} {'calls':>5} {'best s':>7} {'median s':>8} "
             f"{'vs base':>7} {'vs old':>6} | {'cpu s':>7} {'vs base':>7} {'vs old':>6}"]
    for name, r in rows.items():
        vs_old = f"{r['vs_old']:.3f}" if r["vs_old"] else "-"
        cpu_old = f"{r['cpu_vs_old']:.3f}" if r["cpu_vs_old"] else "-"
        lines.append(f"{name:<24} {r['unet_frame_steps']:>11} {r['unet_calls']:>5} {r['best_s']:>7.2f} "
                     f"{r['median_s']:>8.2f} {r['vs_base']:>7.3f} {vs_old:>6} | {r['best_cpu_s']:>7.2f} "
                     f"{r['cpu_vs_base']:>7.3f} {cpu_old:>6}")
    if mem:
        lines += ["", f"peak memory, ours, chunk {cfg['mem_chunk']}, {cfg['mem_steps']} steps, fresh process each, "
                  "frames discarded:", f"{'frames':>6} {'process peak MiB':>17} {'ratio':>6} {'job peak MiB':>13} "
                  f"{'job delta MiB':>14} {'ratio':>6}"]
        for m in mem:
            job = f"{m['job_peak_rss_mib']:>13.0f} {m['job_delta_mib']:>14.1f} {m['job_delta_ratio']:>6.2f}" \
                if m.get("job_peak_rss_mib") is not None else "-"
            cuda = f"  cuda peak {m['cuda_peak_alloc_mib']:.0f} MiB" if "cuda_peak_alloc_mib" in m else ""
            lines.append(f"{m['frames']:>6} {m['process_peak_rss_mib']:>17.0f} {m['process_peak_rss_ratio']:>6.3f} "
                         f"{job}{cuda}")
    lines += ["", "targets (reported, not asserted):"]
    for key, value in result["targets"].items():
        lines.append(f"  {key:<38} {value['measured']:.3f}  (target <= {value['target']:.2f})  "
                     f"{'MET' if value['met'] else 'NOT MET'}")
    return "\n".join(lines)


def targets(rows: dict, mem: list[dict]) -> dict:
    out = {}
    base_key = "ours: chunk 8" if "ours: chunk 8" in rows else next(k for k in rows if k.startswith("ours"))
    ours = rows[base_key]
    out[f"{base_key} / 8 SD images"] = (ours["vs_base"], TARGETS["ours_vs_base"])
    if ours["vs_old"]:
        out[f"{base_key} / diffusers T2V-Zero"] = (ours["vs_old"], TARGETS["ours_vs_old"])
    if mem:
        last = mem[-1]
        out[f"process peak RSS {last['frames']} / {mem[0]['frames']} frames"] = (
            last["process_peak_rss_ratio"], TARGETS["mem_32_vs_8"])
        if last.get("job_delta_ratio") is not None:
            out[f"job RSS growth {last['frames']} / {mem[0]['frames']} frames"] = (
                last["job_delta_ratio"], TARGETS["mem_32_vs_8"])
    return {k: {"measured": m, "target": t, "met": m <= t} for k, (m, t) in out.items()}


def without_json(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.mem_child:
        mem_child(args)
        return 0
    started = time.perf_counter()
    cfg, model = setup(args)
    print(f"model: {cfg.describe()}", flush=True)
    timing = time_contenders(args, model)
    del model
    gc.collect()
    child_argv = without_json(argv)
    memory = measure_memory(args, child_argv)
    config = {k: getattr(args, k) for k in ("steps", "size", "frames", "chunks", "guidance", "repeats", "device",
                                            "dtype", "mem_chunk", "mem_steps", "vae_batch", "warmup_steps")}
    config.update(model=cfg.describe(), threads=torch.get_num_threads(), scheduler="ddim", prompt=PROMPT,
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                  machine=f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}",
                  versions={"torch": torch.__version__, "diffusers": __import__("diffusers").__version__})
    result = {"config": config, "timing": timing, "memory": memory, "targets": targets(timing, memory)}
    result["wall_s"] = time.perf_counter() - started
    print("\n" + report(result) + f"\n\nwall time {result['wall_s']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
