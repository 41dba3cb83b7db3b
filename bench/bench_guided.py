"""Benchmark: guided video (ControlNet, Video Instruct-Pix2Pix) against diffusers' stock pipelines + the docs recipe.

The recipe is what diffusers' Text2Video-Zero docs told users to do before the pipeline was deprecated: take the
stock ``StableDiffusionControlNetPipeline`` / ``StableDiffusionInstructPix2PixPipeline``, install
``CrossFrameAttnProcessor`` on the UNet (and the ControlNet) and pass the whole clip as one batch::

    pipe.unet.set_attn_processor(CrossFrameAttnProcessor(batch_size=2))        # 3 for Instruct-Pix2Pix
    pipe.controlnet.set_attn_processor(CrossFrameAttnProcessor(batch_size=2))
    latents = torch.randn((1, 4, h, w), generator=...).repeat(F, 1, 1, 1)       # ControlNet: one noise, every frame
    pipe(prompt=[prompt] * F, image=maps, latents=latents)                      # Pix2Pix: image=frames, no latents

Ours is t2vz's ``control_video`` / ``edit_video`` at the product's chunk size (8). Every contender shares the same
random-weight SD-1.5-topology modules (bench/sd_components.py), DDIM with SD 1.5's config, step count, guidance,
size and inputs (PNG folders written here; both sides read them from disk inside the timed run), and decodes to
images. Timing: same process, one untimed warm-up per contender and frame count, then ``--repeats`` rounds with the
order rotated. Peak memory: every contender x frame count in a fresh subprocess (whole job, few steps); the process
peak is the child's own VmHWM (its ru_maxrss would include the parent's peak, inherited across fork/exec).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_guided.py --threads 1 --json /tmp/guided.json

diffusers' pipelines and ``CrossFrameAttnProcessor`` are imported here only as the comparison baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Spinning OpenMP waits make timings on a shared CPU swing 10x (see bench_text2video.py); same for every contender.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_report import finish, measure_memory, mem_child, rotated, run_info, timed, without_json  # noqa: E402
from guided_report import report, targets  # noqa: E402
from sd_components import ModelConfig, build_controlnet, build_model, ddim  # noqa: E402

from t2vz_backend.pipelines.control_video import control_video  # noqa: E402
from t2vz_backend.pipelines.edit_video import edit_video  # noqa: E402
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest  # noqa: E402
from t2vz_backend.sampling.context import JobContext  # noqa: E402

PROMPT = "a robot dancing in the rain"
INSTRUCTION = "make it snow"
MODES = ("controlnet", "pix2pix")
BRANCHES = {"controlnet": 2, "pix2pix": 3}  # CFG rows per frame: [uncond, cond] / [text+image, image, neither]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="controlnet,pix2pix", help="which modes to run (default both)")
    p.add_argument("--frames", default="8,32", help="frame counts to time (default 8,32)")
    p.add_argument("--repeats", default="2,1", help="timed rounds per frame count: one value, or one per --frames "
                   "entry (default 2,1: 2 rounds at 8 frames, 1 at 32, to keep the run near 10 min on one CPU "
                   "thread); 0 = memory only")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps for every contender (default 20)")
    p.add_argument("--size", type=int, default=128, help="width = height in pixels (default 128)")
    p.add_argument("--channels", default="32,64,128,128", help="UNet block_out_channels (SD 1.5: 320,640,1280,1280)")
    p.add_argument("--full", action="store_true", help="SD 1.5's real sizes (random weights); implies --size 512")
    p.add_argument("--chunk", type=int, default=8, help="our chunk size (default 8, the product default)")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--image-guidance", type=float, default=1.5, help="Instruct-Pix2Pix image guidance")
    p.add_argument("--warmup-steps", type=int, default=2, help="steps of each contender's untimed warm-up run")
    p.add_argument("--skip-memory", action="store_true", help="no peak-memory subprocesses")
    p.add_argument("--mem-frames", default="8,32", help="frame counts of the peak-memory runs (ratio: last / first)")
    p.add_argument("--mem-steps", type=int, default=2, help="steps of the memory runs (the peak does not depend on "
                   "it: it is the first step's UNet batch or the VAE)")
    p.add_argument("--recipe-sdpa", action="store_true", help="also time the recipe with diffusers' "
                   "CrossFrameAttnProcessor2_0 (SDPA) instead of the docs' CrossFrameAttnProcessor")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--mem-child", type=int, default=0, help=argparse.SUPPRESS)  # internal: one memory run
    p.add_argument("--mem-mode", default="", help=argparse.SUPPRESS)
    p.add_argument("--mem-who", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.full:
        args.channels = "320,640,1280,1280"
        if args.size == 128:
            args.size = 512
    args.modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in args.modes):
        p.error(f"--modes: use {', '.join(MODES)}")
    args.frames = [int(f) for f in args.frames.split(",") if f]
    reps = [int(r) for r in args.repeats.split(",")]
    if len(reps) not in (1, len(args.frames)):
        p.error("--repeats: one value, or one per --frames entry")
    args.repeats = dict(zip(args.frames, reps * len(args.frames) if len(reps) == 1 else reps))
    return args


# ------------------------------------------------------------------------------------------------ inputs


def write_inputs(folder: str, frames: int, size: int) -> dict[str, str]:
    """Synthetic clips, one PNG per frame: edge maps of moving shapes (ControlNet) and a moving scene (Pix2Pix)."""
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = {"controlnet": os.path.join(folder, "maps"), "pix2pix": os.path.join(folder, "clip")}
    for path in out.values():
        os.makedirs(path, exist_ok=True)
    texture = np.random.default_rng(0).integers(0, 40, (size, size, 1)).astype(np.float32)
    for k in range(frames):
        phase = 2 * np.pi * k / max(frames, 1)
        cx, cy = size * (0.3 + 0.4 * k / max(frames - 1, 1)), size * (0.5 + 0.15 * np.sin(phase))
        radius = size * 0.18
        ring = np.abs(np.hypot(xx - cx, yy - cy) - radius) < 1.0
        bx = int(size * 0.6 - size * 0.3 * k / max(frames - 1, 1))
        box = np.zeros_like(ring)
        box[size // 8:size // 8 + size // 4, bx:bx + size // 4] = True
        box[size // 8 + 1:size // 8 + size // 4 - 1, bx + 1:bx + size // 4 - 1] = False
        limb = np.abs((yy - size * 0.75) - 0.4 * np.sin(phase) * (xx - size / 2)) < 1.0  # a swinging line
        edges = (ring | box | limb).astype(np.uint8) * 255
        Image.fromarray(np.repeat(edges[..., None], 3, axis=2)).save(os.path.join(out["controlnet"], f"{k:04d}.png"))
        scene = np.stack([xx / size * 200, yy / size * 160, np.full_like(xx, 90)], axis=2) + texture
        disc = np.hypot(xx - cx, yy - cy) < radius
        scene[disc] = (230, 60, 40)
        scene[box] = (30, 200, 60)
        Image.fromarray(scene.clip(0, 255).astype(np.uint8)).save(os.path.join(out["pix2pix"], f"{k:04d}.png"))
    return out


def load_pictures(folder: str, frames: int) -> list:
    from PIL import Image

    names = sorted(os.listdir(folder))[:frames]
    return [Image.open(os.path.join(folder, n)).convert("RGB") for n in names]


# ------------------------------------------------------------------------------------------------ contenders


def exact_anchor_variants(request_cls) -> list:
    """[None] on an engine without ``exact_anchor``; else [default, the other value] (both are timed)."""
    fields = {f.name: f for f in dataclasses.fields(request_cls)}
    if "exact_anchor" not in fields:
        return [None]
    default = bool(fields["exact_anchor"].default)
    return [default, not default]


def contender_keys(mode: str, recipe_sdpa: bool = False) -> dict[str, str]:
    """key (used by the memory subprocesses) -> printed name."""
    request_cls = ControlVideoRequest if mode == "controlnet" else EditVideoRequest
    out = {}
    for value in exact_anchor_variants(request_cls):
        if value is None:
            out["ours"] = "ours: chunk {chunk}"
        else:
            default = value == exact_anchor_variants(request_cls)[0]
            out[f"ours-ea-{str(value).lower()}"] = "ours: chunk {chunk}, exact_anchor=" + str(value) + (
                " (default)" if default else "")
    out["recipe"] = "recipe: docs, whole clip in 1 batch"
    if recipe_sdpa:
        out["recipe-sdpa"] = "recipe, CrossFrameAttnProcessor2_0"
    return out


class CallCounter:
    """Counts forward calls, batch rows and seconds of the UNet and ControlNet (one plain wrapper, the same for
    every contender; on CUDA the seconds are only meaningful with a synchronising device)."""

    def __init__(self, modules: dict) -> None:
        self.acc = {name: [0, 0, 0.0] for name in modules}
        for name, module in modules.items():
            inner = module.forward

            def counted(sample, *a, _inner=inner, _slot=self.acc[name], **k):
                start = time.perf_counter()
                out = _inner(sample, *a, **k)
                _slot[0] += 1
                _slot[1] += sample.shape[0]
                _slot[2] += time.perf_counter() - start
                return out

            module.forward = counted  # an instance attribute shadows the method, for this benchmark only

    def take(self) -> dict:
        out = {name: {"calls": c, "rows": r, "s": t} for name, (c, r, t) in self.acc.items()}
        for slot in self.acc.values():
            slot[:] = [0, 0, 0.0]
        return out


@contextlib.contextmanager
def processors(modules: list, make) -> Iterator[None]:
    """Install ``make()`` on every attention layer of ``modules`` (the docs recipe), restore the originals after."""
    saved = [m.attn_processors for m in modules]
    try:
        for m in modules:
            m.set_attn_processor(make())
        yield
    finally:
        for m, procs in zip(modules, saved):
            m.set_attn_processor(procs)


def recipe_processor(sdpa: bool):
    try:
        from diffusers.pipelines.text_to_video_synthesis import pipeline_text_to_video_zero as t2vz
    except ImportError:  # diffusers >= 0.30 moved it under deprecated/
        from diffusers.pipelines.deprecated.text_to_video_synthesis import pipeline_text_to_video_zero as t2vz
    return t2vz.CrossFrameAttnProcessor2_0 if sdpa else t2vz.CrossFrameAttnProcessor


def build_parts(args, mode: str) -> dict:
    cfg = ModelConfig.reduced(tuple(int(c) for c in args.channels.split(",")))
    model = build_model(cfg, args.device, getattr(torch, args.dtype), kind="sd" if mode == "controlnet" else mode)
    parts = {"cfg": cfg, "model": model}
    if mode == "controlnet":
        parts["controlnet"] = build_controlnet(model.unet)
    return parts


def make_runner(args, mode: str, key: str, parts: dict, frames: int, inputs: dict[str, str]):
    """callable(steps) running one whole job of ``key`` at ``frames`` frames (inputs read, frames decoded)."""
    model, size = parts["model"], args.size
    folder = inputs[mode]
    if key.startswith("ours"):
        extra = {} if key == "ours" else {"exact_anchor": key.endswith("true")}
        common = dict(output_dir="(in memory)", steps=args.steps, guidance=args.guidance, width=size, height=size,
                      frames=frames, chunk_size=args.chunk, scheduler="ddim", seed=0, **extra)

        def ours(steps):
            seen = []
            ctx = JobContext(on_frame=lambda index, image: seen.append(index))  # frames discarded, as streamed
            if mode == "controlnet":
                request = ControlVideoRequest(prompt=PROMPT, controls=(ControlSpec(kind="canny", path=folder),),
                                              **{**common, "steps": steps})
                control_video(request, model, [parts["controlnet"]], ctx)
            else:
                request = EditVideoRequest(instruction=INSTRUCTION, input=folder, image_guidance=args.image_guidance,
                                           **{**common, "steps": steps})
                edit_video(request, model, ctx)
            assert seen == list(range(frames)), seen

        return ours

    from diffusers import StableDiffusionControlNetPipeline, StableDiffusionInstructPix2PixPipeline

    components = {k: getattr(model, k) for k in ("unet", "vae", "text_encoder", "tokenizer")}
    common = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    processor = recipe_processor(key.endswith("sdpa"))
    branches = BRANCHES[mode]
    scale = 2 ** (len(model.vae.config.block_out_channels) - 1)
    if mode == "controlnet":
        pipe = StableDiffusionControlNetPipeline(**components, controlnet=parts["controlnet"], scheduler=ddim(model),
                                                 **common)
        patched = [pipe.unet, pipe.controlnet]
    else:
        pipe = StableDiffusionInstructPix2PixPipeline(**components, scheduler=ddim(model), **common)
        patched = [pipe.unet]
    pipe.set_progress_bar_config(disable=True)

    def recipe(steps):
        images = load_pictures(folder, frames)
        generator = torch.Generator("cpu").manual_seed(0)
        with processors(patched, lambda: processor(batch_size=branches)):
            if mode == "controlnet":
                latents = torch.randn((1, 4, size // scale, size // scale), generator=generator)
                latents = latents.repeat(frames, 1, 1, 1).to(model.device, model.dtype)
                out = pipe(prompt=[PROMPT] * frames, image=images, latents=latents, num_inference_steps=steps,
                           guidance_scale=args.guidance, height=size, width=size, output_type="np").images
            else:
                out = pipe(prompt=[INSTRUCTION] * frames, image=images, num_inference_steps=steps,
                           guidance_scale=args.guidance, image_guidance_scale=args.image_guidance,
                           generator=generator, output_type="np").images
        assert len(out) == frames

    return recipe


# ------------------------------------------------------------------------------------------------ timing


def time_mode(args, mode: str, parts: dict, inputs: dict[str, str]) -> dict:
    keys = contender_keys(mode, args.recipe_sdpa)
    modules = {"unet": parts["model"].unet, **({"controlnet": parts["controlnet"]} if "controlnet" in parts else {})}
    counter = CallCounter(modules)
    out = {}
    for frames in args.frames:
        repeats = args.repeats[frames]
        if not repeats:
            continue
        runs = {k: make_runner(args, mode, k, parts, frames, inputs) for k in keys}
        for key in keys:  # untimed warm-up: lazy initialisation, allocator growth, first-call overheads
            runs[key](args.warmup_steps)
        counter.take()
        times: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        calls: dict[str, list[dict]] = {k: [] for k in keys}
        for r, key in rotated(list(keys), repeats):
            wall, used = timed(runs[key], args.steps, args.device)
            times[key].append(wall)
            cpu[key].append(used)
            calls[key].append(counter.take())
            inside = ", ".join(f"{n} {c['calls']} calls {c['s']:.2f} s" for n, c in calls[key][-1].items())
            print(f"  {mode} {frames:3d} frames round {r + 1}/{repeats}  {label(keys[key], args):<48} "
                  f"{wall:8.2f} s wall {used:8.2f} s cpu  ({inside})", flush=True)
        recipe_best, recipe_cpu = min(times["recipe"]), min(cpu["recipe"])
        rows = {}
        for key in keys:
            best = min(range(repeats), key=times[key].__getitem__)
            unet, net = calls[key][best]["unet"], calls[key][best].get("controlnet")
            rows[key] = {"name": label(keys[key], args), "times_s": times[key], "cpu_s": cpu[key],
                         "best_s": min(times[key]), "median_s": statistics.median(times[key]),
                         "best_cpu_s": min(cpu[key]), "vs_recipe": min(times[key]) / recipe_best,
                         "cpu_vs_recipe": min(cpu[key]) / recipe_cpu, "unet_calls": unet["calls"],
                         "unet_frame_steps": unet["rows"] // BRANCHES[mode],
                         "controlnet_calls": net["calls"] if net else None, "best_unet_s": unet["s"],
                         "best_controlnet_s": net["s"] if net else None,
                         "best_other_s": times[key][best] - unet["s"] - (net["s"] if net else 0.0),
                         "calls": calls[key]}
        out[str(frames)] = rows
        del runs
        gc.collect()
    return out


def label(name: str, args) -> str:
    return name.format(chunk=args.chunk)


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    scratch = tempfile.mkdtemp(prefix="t2vz-bench-guided-")
    if args.mem_child:  # internal: one memory run in this fresh process
        inputs = write_inputs(scratch, args.mem_child, args.size)
        parts = build_parts(args, args.mem_mode)
        run = make_runner(args, args.mem_mode, args.mem_who, parts, args.mem_child, inputs)
        row = mem_child(args, functools.partial(run, args.mem_steps))  # process peak: this child's own VmHWM
        print("MEM " + json.dumps(row))
        return 0
    started = time.perf_counter()
    inputs = write_inputs(scratch, max(args.frames + [int(f) for f in args.mem_frames.split(",") if f]), args.size)
    modes = {}
    cfg = None
    for mode in args.modes:
        keys = contender_keys(mode, args.recipe_sdpa)
        names = {k: label(v, args) for k, v in keys.items()}
        parts = build_parts(args, mode)
        cfg = parts["cfg"]
        print(f"{mode}: model {cfg.describe()}", flush=True)
        timing = time_mode(args, mode, parts, inputs)
        del parts
        gc.collect()
        memory = {}
        if not args.skip_memory:
            for key in keys:
                print(f"  {mode} memory: {names[key]}", flush=True)
                memory[key] = measure_memory(os.path.abspath(__file__), [int(f) for f in args.mem_frames.split(",")
                                                                         if f],
                                             without_json(argv) + ["--mem-mode", mode, "--mem-who", key])
        modes[mode] = {"names": names, "timing": timing, "memory": memory}
    config = {k: getattr(args, k) for k in ("steps", "size", "frames", "repeats", "chunk", "guidance",
                                            "image_guidance", "warmup_steps", "mem_frames", "mem_steps", "device",
                                            "dtype", "modes")}
    config["repeats"] = {str(k): v for k, v in args.repeats.items()}
    config.update(model=cfg.describe() if cfg else None, scheduler="ddim", prompt=PROMPT, instruction=INSTRUCTION,
                  exact_anchor_field={m: exact_anchor_variants(r)[0] is not None
                                      for m, r in (("controlnet", ControlVideoRequest), ("pix2pix", EditVideoRequest))},
                  **run_info())
    result = {"config": config, "modes": modes, "targets": targets(modes)}
    result["wall_s"] = time.perf_counter() - started
    finish(result, report(result), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
