"""Benchmark: what the consistency report adds to a job (issue #13: at most 5 % of a 16-frame 512x512 job, CPU).

The job the 5 % is relative to: ``run_job`` of a text->video request, 16 frames, 512 x 512, ``--steps`` DDIM steps
(default 50, the contract's default), guidance 7.5, chunk 8, exact anchor, frames written as PNGs with the sidecar:
the whole job path a user runs, on the random-weight SD-1.5-topology model of bench/sd_components.py. Timed in one
process, interleaved (the order rotates every round), best of ``--repeats``:

- ``job``: the job with the report off (the baseline);
- ``job + report``: the same request with ``report=True`` (no CLIP model, the default);
- ``report``: ``make_report`` alone on the job's 16 frames (the same files), i.e. what the report stage costs.

The reduced-width UNet is far cheaper than SD 1.5's, so report / job here is an upper bound of the ratio with a real
model. ``--unet-spot`` also times one UNet call of SD 1.5's real widths at the job's size (a CFG batch of 2) in the
same run and multiplies it by the job's UNet passes: a lower bound of the real job's time (UNet only), and the
report's fraction of that. ``--clip`` adds the CLIP metrics with a random CLIP model of ViT-B/32's size built in
code. Memory: the report's peak RSS on 16 and 64 frames at 512 x 512 (``--mem-frames``), a fresh process each; the
report streams frames, so the peak does not grow with the clip.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_consistency.py --json /tmp/consistency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_text2video.py: stable timings on a shared CPU
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_report import finish, measure_memory, mem_child, rotated, run_info, without_json  # noqa: E402

TARGET = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=512, help="width = height (default 512)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of the job (default 50)")
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels of the job's model")
    p.add_argument("--repeats", type=int, default=2, help="timed rounds (best-of); 0 = memory only")
    p.add_argument("--clip", action="store_true", help="also time the report with CLIP metrics (ViT-B/32 size)")
    p.add_argument("--unet-spot", action="store_true", help="time one UNet call at SD 1.5's real widths")
    p.add_argument("--mem-frames", default="16,64", help="frame counts of the report memory runs ('' = skip)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)  # internal: one memory run
    return p.parse_args(argv)


class BenchCache:
    """Stands in for ModelCache: ``run_job`` gets the benchmark's model (no loading is timed)."""

    def __init__(self, model) -> None:
        self.model = model

    def base(self, *args, **kwargs):
        return self.model

    def clear(self) -> int:
        return 0


def build_clip(folder: str) -> str:
    """A random-weight CLIP model with ViT-B/32's sizes (image 224, patch 32, 12 layers of 768; text 12 x 512)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from t2vz_backend.models.tiny_vocab import MERGES, vocabulary

    tokenizer = CLIPTokenizer(vocab=vocabulary(), merges=[tuple(m.split(" ")) for m in MERGES], model_max_length=77)
    text = {"vocab_size": len(tokenizer), "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
            "num_attention_heads": 8, "max_position_embeddings": 77, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
              "image_size": 224, "patch_size": 32}
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def unet_spot(size: int, steps: int, frames: int) -> dict:
    """One UNet call of SD 1.5's real widths at ``size`` (batch 2: one frame with CFG), and the job's pass count."""
    import torch
    from sd_components import ModelConfig, build_model, ddim

    from t2vz_backend.protocol import TextToVideoRequest
    from t2vz_backend.sampling.sampler import passes_per_step
    from t2vz_backend.sampling.schedule import plan_schedule

    model = build_model(ModelConfig.full())
    latents = torch.randn(2, 4, size // 8, size // 8)
    text = torch.randn(2, 77, 768)
    with torch.no_grad():
        model.unet(latents, 500, encoder_hidden_states=text)  # warm-up
        start = time.perf_counter()
        model.unet(latents, 500, encoder_hidden_states=text)
        seconds = time.perf_counter() - start
    request = TextToVideoRequest()
    plan = plan_schedule(ddim(model), steps, request.t0, request.t1)
    # frame-steps: the anchor's pre-path alone, then every frame for every main step (CFG pairs count once)
    frame_steps = plan.t0_index + plan.main_steps * frames
    calls = plan.t0_index + plan.main_steps * passes_per_step(frames, request.chunk_size, request.exact_anchor)
    return {"unet_call_s": seconds, "frame_steps": frame_steps, "unet_calls": calls,
            "job_lower_bound_s": seconds * frame_steps}


def write_clip(folder: str, frames: int, size: int) -> None:
    """``frames`` PNGs of a blurred-noise texture moving 3 px a frame (what the report measures needs no model)."""
    import cv2
    import numpy as np

    from t2vz_backend.media.writer import FrameWriter

    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8), (9, 9), 3)
    writer = FrameWriter(folder, total_frames=frames)
    for k in range(frames):
        writer.write(np.roll(texture, 3 * k, axis=1), k)


def memory_child(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="t2vz-bench-report-")
    write_clip(folder, args.mem_child, args.size)
    from t2vz_backend.quality.consistency import ReportSpec, make_report

    args.device = "cpu"
    row = mem_child(args, lambda: make_report(ReportSpec(folder=folder)))
    print("MEM " + json.dumps(row), flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.mem_child:
        memory_child(args)
        return 0
    import torch
    from sd_components import ModelConfig, build_model

    from t2vz_backend.protocol import TextToVideoRequest
    from t2vz_backend.quality.consistency import ReportSpec, make_report
    from t2vz_backend.quality.measure import ClipSettings
    from t2vz_backend.service.jobs import run_job

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    channels = tuple(int(c) for c in args.channels.split(","))
    model = build_model(ModelConfig.reduced(channels))
    cache = BenchCache(model)
    root = tempfile.mkdtemp(prefix="t2vz-bench-consistency-")
    clip = build_clip(os.path.join(root, "clip")) if args.clip else ""
    request = TextToVideoRequest(output_dir="", prompt="a cat running on the beach", frames=args.frames,
                                 width=args.size, height=args.size, steps=args.steps, seed=0, device="cpu",
                                 dtype="float32")
    runs = {"job": {}, "job + report": {"report": True}, "report": None}
    if clip:
        runs["job + report with CLIP"] = {"report": True, "report_clip": clip}
        runs["report with CLIP"] = None
    times: dict[str, list[float]] = {name: [] for name in runs}
    counter = iter(range(10**6))

    def job(changes: dict) -> str:
        import dataclasses

        out = os.path.join(root, f"out{next(counter)}")
        run_job(dataclasses.replace(request, output_dir=out, **changes), cache=cache, emit=lambda e: None)
        return out

    frames_dir = job({})  # untimed warm-up; its frames are what the "report" rows measure
    make_report(ReportSpec(folder=frames_dir, clip=ClipSettings(model=clip)), out_dir=tempfile.mkdtemp(dir=root))
    for _, name in rotated(list(runs), args.repeats):
        start = time.perf_counter()
        if runs[name] is None:
            make_report(ReportSpec(folder=frames_dir, clip=ClipSettings(model=clip if "CLIP" in name else "")),
                        out_dir=tempfile.mkdtemp(dir=root))
        else:
            job(runs[name])
        times[name].append(time.perf_counter() - start)
        print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    result = {"config": {**vars(args), **run_info(), "model": ModelConfig.reduced(channels).describe()},
              "timing": {}, "memory": [], "targets": {}}
    if args.repeats:
        base = min(times["job"])
        for name, values in times.items():
            result["timing"][name] = {"best_s": min(values), "median_s": statistics.median(values),
                                      "vs_job": min(values) / base}
        report_cost = min(times["report"]) / base
        overhead = min(times["job + report"]) / base - 1.0
        result["targets"] = {"report / job": {"measured": report_cost, "target": TARGET,
                                              "met": report_cost <= TARGET},
                             "(job + report) / job - 1": {"measured": overhead, "target": TARGET,
                                                          "met": overhead <= TARGET}}
        if args.unet_spot:
            spot = unet_spot(args.size, args.steps, args.frames)
            spot["report_vs_lower_bound"] = min(times["report"]) / spot["job_lower_bound_s"]
            result["unet_spot"] = spot
    if args.mem_frames:
        counts = [int(n) for n in args.mem_frames.split(",")]
        print("report memory (fresh processes):", flush=True)
        result["memory"] = measure_memory(os.path.abspath(__file__), counts,
                                          without_json(sys.argv[1:] if argv is None else list(argv)))
    result["wall_s"] = time.perf_counter() - started
    finish(result, text_report(result), args.json)
    return 0


def text_report(result: dict) -> str:
    cfg = result["config"]
    lines = [f"consistency report cost: text->video, {cfg['frames']} frames, {cfg['size']}x{cfg['size']}, "
             f"{cfg['steps']} DDIM steps, UNet {cfg['model']['unet_channels']}, {cfg['threads']} threads, best of "
             f"{cfg['repeats']}", f"{'run':<28} {'best s':>8} {'median s':>9} {'vs job':>8}"]
    for name, row in result["timing"].items():
        lines.append(f"{name:<28} {row['best_s']:>8.2f} {row['median_s']:>9.2f} {row['vs_job']:>8.3f}")
    spot = result.get("unet_spot")
    if spot:
        lines.append(f"SD 1.5 real widths: one UNet call (batch 2) {spot['unet_call_s']:.2f} s x "
                     f"{spot['frame_steps']} frame-steps = {spot['job_lower_bound_s']:.0f} s at least; the report "
                     f"is {spot['report_vs_lower_bound'] * 100:.2f} % of that")
    for row in result["memory"]:
        lines.append(f"report on {row['frames']} frames: peak RSS {row['job_peak_rss_mib'] or 0:.0f} MiB "
                     f"(growth {row.get('job_delta_mib', 0):.0f} MiB, ratio {row.get('job_delta_ratio', 1):.2f})")
    lines.append("targets:")
    for name, row in result["targets"].items():
        lines.append(f"  {name:<26} {row['measured'] * 100:6.2f} %  (target <= {row['target'] * 100:.0f} %)  "
                     f"{'MET' if row['met'] else 'NOT MET'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
