"""Benchmark: t2vz text->video against 8 independent SD images and diffusers' deprecated TextToVideoZeroPipeline.

All contenders share the same random-weight SD-1.5-topology components (bench/sd_components.py), the same DDIM
schedule, step count, guidance and size, and are timed in the same process, interleaved (the order rotates every
round), best-of ``--repeats``. Peak memory of our engine at 8/16/32 frames is measured in fresh subprocesses.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_text2video.py --json /tmp/t2v.json

diffusers' ``TextToVideoZeroPipeline`` is imported here only as a comparison baseline, never by the product.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# OpenMP threads that spin while waiting turn a shared, loaded CPU into 10x timing swings (measured: the same 5 UNet
# calls took 0.8-12.5 s); sleeping waits cost ~25 % when idle but are stable. Same for every contender. Override by
# setting OMP_WAIT_POLICY=ACTIVE in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from bench_report import (  # noqa: E402
    finish,
    measure_memory,
    mem_child,
    report,
    rotated,
    run_info,
    sync,
    targets,
    timed,
    without_json,
)
from sd_components import ModelConfig, build_model, ddim  # noqa: E402

from t2vz_backend.pipelines.text_to_video import text_to_video  # noqa: E402
from t2vz_backend.protocol import TextToVideoRequest  # noqa: E402
from t2vz_backend.sampling.context import JobContext  # noqa: E402
from t2vz_backend.sampling.sampler import chunks  # noqa: E402
from t2vz_backend.sampling.schedule import plan_schedule  # noqa: E402

PROMPT = "a cat running on the beach"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps for every contender (default 50)")
    p.add_argument("--size", type=int, default=128, help="width = height in pixels (default 128)")
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--full", action="store_true", help="SD 1.5's real sizes (random weights); implies --size 512")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--chunks", default="8,4", help="our chunk sizes to time")
    p.add_argument("--layouts", default="exact,shared",
                   help="our anchor layouts to time: exact (exact_anchor=True) and/or shared (False)")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (best-of, median); 0 = memory only")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of the untimed warm-up run of each contender")
    p.add_argument("--mem-frames", default="8,16,32", help="frame counts for the peak-memory runs ('' = skip)")
    p.add_argument("--mem-chunk", type=int, default=4)
    p.add_argument("--mem-steps", type=int, default=5, help="steps of the memory runs (peak does not depend on it)")
    p.add_argument("--vae-batch", type=int, default=2, help="our VAE decode batch (the product default)")
    p.add_argument("--long-frames", type=int, default=0, help="also time a long video (e.g. 24; 0 = skip) ...")
    p.add_argument("--long-chunk", type=int, default=8, help="... ours and diffusers' docs chunk loop at this chunk")
    p.add_argument("--breakdown", action="store_true", help="time each UNet call and VAE decode inside the jobs")
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


# ------------------------------------------------------------------------------------------------ contenders


def request(args, frames: int, chunk: int, steps: int, exact: bool = True) -> TextToVideoRequest:
    return TextToVideoRequest(output_dir="(in memory)", prompt=PROMPT, steps=steps, guidance=args.guidance,
                              width=args.size, height=args.size, frames=frames, chunk_size=chunk,
                              exact_anchor=exact, scheduler="ddim", seed=0, vae_batch=args.vae_batch)


def old_indices(model, steps: int) -> tuple[int, int]:
    """diffusers' (t1, t0) indices from the end of the schedule that put T/T' where our engine puts them.

    At 50 steps this is diffusers' own default (47, 44) = timesteps 941/881; at other step counts it avoids the
    IndexError (docs/method.md §2.1) and gives both engines the same schedule.
    """
    plan = plan_schedule(ddim(model), steps, 881, 941)
    return steps - 1 - plan.t1_index, steps - 1 - plan.t0_index


def old_chunk_ids(frames: int, chunk: int) -> list[list[int]]:
    """diffusers' documented long-video loop: chunk starts every chunk-1 frames, each chunk is [0] + its frames."""
    starts = list(range(0, frames, chunk - 1))
    ends = starts[1:] + [frames]
    return [[0, *range(a, b)] for a, b in zip(starts, ends)]


def make_contenders(args, model, frames: int, our_chunks: list[int], old_chunk: int) -> dict:
    """name -> callable(steps) running one whole job (text encoding, denoising, decoding to images).

    ``old_chunk`` 0 times diffusers' pipeline in one call; N > 0 times its documented chunk loop (docs/method.md §5.3).
    """
    from diffusers import StableDiffusionPipeline

    parts = {k: getattr(model, k) for k in ("unet", "vae", "text_encoder", "tokenizer")}
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    sd = StableDiffusionPipeline(**parts, scheduler=ddim(model), **common)
    sd.set_progress_bar_config(disable=True)
    size = {"height": args.size, "width": args.size, "guidance_scale": args.guidance}
    out: dict = {}

    def base(steps):
        images = sd(PROMPT, num_images_per_prompt=frames, num_inference_steps=steps, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(0), **size).images
        assert len(images) == frames

    out[f"base: {frames} SD images"] = base

    def ours(chunk, exact):
        def run(steps):
            seen = []
            ctx = JobContext(on_frame=lambda index, image: seen.append(index))  # frames discarded, as streamed
            text_to_video(request(args, frames, chunk, steps, exact), model, ctx)
            assert seen == list(range(frames))
        return run

    for chunk in our_chunks:
        for layout in args.layouts.split(","):
            out[f"ours: chunk {chunk}" + (", shared anchor" if layout == "shared" else "")] = \
                ours(chunk, layout == "exact")
    if args.skip_old:
        return out
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
        TextToVideoZeroPipeline,
    )

    old = TextToVideoZeroPipeline(**parts, scheduler=ddim(model), **common)
    old.set_progress_bar_config(disable=True)
    groups = old_chunk_ids(frames, old_chunk) if old_chunk else [list(range(frames))]

    def old_run(steps):
        t1, t0 = old_indices(model, steps)
        kept = 0
        for ids in groups:  # the docs loop re-seeds before every chunk and drops each chunk's output 0
            video = old(PROMPT, video_length=len(ids), num_inference_steps=steps, output_type="np", t0=t0, t1=t1,
                        generator=torch.Generator("cpu").manual_seed(0), frame_ids=ids, **size).images
            kept += len(video) - (1 if old_chunk else 0)
        assert kept == frames

    out["old: diffusers T2V-Zero" + (f", docs loop chunk {old_chunk}" if old_chunk else "")] = old_run
    return out


def frame_steps(name: str, model, frames: int, steps: int, old_chunk: int) -> tuple[int, int]:
    """(UNet frame-steps, UNet calls) of one run, from the schedule (docs/method.md §10.1; a CFG pair counts once)."""
    plan = plan_schedule(ddim(model), steps, 881, 941)
    pre, main = plan.t0_index, plan.main_steps
    if name.startswith("base"):
        return steps * frames, steps
    if name.startswith("old"):
        groups = old_chunk_ids(frames, old_chunk) if old_chunk else [list(range(frames))]
        return len(groups) * pre + main * sum(map(len, groups)), len(groups) * (pre + main)
    chunk = int(name.split(",")[0].rsplit(" ", 1)[1])
    return pre + main * frames, pre + main * len(chunks(frames, chunk, exact_anchor="shared" not in name))


class Breakdown:
    """``--breakdown``: time every UNet forward (by batch size) and VAE decode of a job, to locate overheads."""

    def __init__(self, model, device: str) -> None:
        self.acc: dict[str, list] = {}
        for module, label in ((model.unet, "unet b{}"), (model.vae, "vae")):
            attr = "forward" if label.startswith("unet") else "decode"
            inner = getattr(module, attr)

            def timed(x, *a, _inner=inner, _label=label, **k):
                sync(device)
                start = time.perf_counter()
                out = _inner(x, *a, **k)
                sync(device)
                slot = self.acc.setdefault(_label.format(x.shape[0]), [0, 0.0])
                slot[0] += 1
                slot[1] += time.perf_counter() - start
                return out

            setattr(module, attr, timed)  # an instance attribute shadows the method for this benchmark only

    def take(self, total: float) -> dict:
        out = {k: {"calls": n, "s": t} for k, (n, t) in sorted(self.acc.items())}
        out["other_s"] = total - sum(t for _, t in self.acc.values())
        self.acc.clear()
        return out


def time_contenders(args, model, frames: int, our_chunks: list[int], old_chunk: int = 0) -> dict:
    runs = make_contenders(args, model, frames, our_chunks, old_chunk)
    names = list(runs)
    for name in names:  # untimed warm-up: lazy initialisation, allocator growth, first-call overheads
        runs[name](args.warmup_steps)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}  # process CPU time: less sensitive to other load
    parts: dict[str, list[dict]] = {n: [] for n in names}
    probe = Breakdown(model, args.device) if args.breakdown else None
    for r, name in rotated(names, args.repeats):
        wall, used = timed(runs[name], args.steps, args.device)
        times[name].append(wall)
        cpu[name].append(used)
        print(f"  round {r + 1}/{args.repeats}  {name:<46} {wall:8.2f} s wall {used:8.2f} s cpu", flush=True)
        if probe:
            parts[name].append(probe.take(wall))
            print("    " + ", ".join(f"{k}: {v['calls']} calls {v['s']:.2f} s" if isinstance(v, dict)
                                     else f"other {v:.2f} s" for k, v in parts[name][-1].items()), flush=True)
    base = names[0]
    old = names[-1] if not args.skip_old else None
    rows = {}
    for name in names:
        fs, calls = frame_steps(name, model, frames, args.steps, old_chunk)
        best, best_cpu = min(times[name]), min(cpu[name])
        rows[name] = {"times_s": times[name], "cpu_s": cpu[name], "best_s": best,
                      "median_s": statistics.median(times[name]), "best_cpu_s": best_cpu,
                      "unet_frame_steps": fs, "unet_calls": calls, "vs_base": best / min(times[base]),
                      "vs_old": best / min(times[old]) if old else None,
                      "cpu_vs_base": best_cpu / min(cpu[base]),
                      "cpu_vs_old": best_cpu / min(cpu[old]) if old else None}
        if parts[name]:
            rows[name]["breakdown"] = parts[name]
    return rows


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cfg, model = setup(args)
    if args.mem_child:  # internal: one memory run in this fresh process
        job = request(args, args.mem_child, args.mem_chunk, args.mem_steps)
        print("MEM " + json.dumps(mem_child(args, functools.partial(text_to_video, job, model, JobContext()))))
        return 0
    started = time.perf_counter()
    print(f"model: {cfg.describe()}", flush=True)
    timing = time_contenders(args, model, args.frames, [int(c) for c in args.chunks.split(",")]) \
        if args.repeats else {}
    long = time_contenders(args, model, args.long_frames, [args.long_chunk], args.long_chunk) \
        if args.long_frames and args.repeats else {}
    del model
    gc.collect()
    memory = measure_memory(os.path.abspath(__file__), [int(f) for f in args.mem_frames.split(",") if f],
                            without_json(argv))
    config = {k: getattr(args, k) for k in ("steps", "size", "frames", "chunks", "guidance", "repeats", "device",
                                            "dtype", "mem_chunk", "mem_steps", "vae_batch", "warmup_steps",
                                            "long_frames", "long_chunk")}
    config.update(model=cfg.describe(), scheduler="ddim", prompt=PROMPT, **run_info())
    result = {"config": config, "timing": timing, "long": long, "memory": memory,
              "targets": targets(timing, memory, long)}
    result["wall_s"] = time.perf_counter() - started
    finish(result, report(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
