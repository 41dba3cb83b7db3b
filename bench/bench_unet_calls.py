"""Micro-benchmark: the UNet cost of ONE main-phase denoising step of an F-frame video, by batch layout.

It isolates what the whole-job benchmark (bench_text2video.py) cannot: how much the engine's separate anchor pass
(step-major loop, sampling/sampler.py ``denoise``: one UNet call of G rows for the anchor, then one call per
chunk) costs against a single batched call, at a given model width and resolution.

    .venv/bin/python bench/bench_unet_calls.py --channels 32,64,128,128 --size 128

Layouts, all with CFG (G = 2 branches), interleaved, best of ``--repeats``:
  base      one call, 2F rows, stock SDPA processors            (F independent SD images)
  old       one call, 2F rows, diffusers' CrossFrameAttnProcessor2_0 (TextToVideoZeroPipeline)
  ours/cN   anchor call (2 rows, record) + one call per chunk of <= N other frames (replay), t2vz processors
            (text keys/values announced as a job does; projected once per timed step, a job does it once)
  shared/cN the anchor inside the first chunk's call (exact_anchor=False), then chunks
  anchor    the anchor call alone, against its share of the batched call (2/2F of base)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_text2video.py
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (  # noqa: E402
    CrossFrameAttnProcessor2_0,
)
from sd_components import ModelConfig, build_model  # noqa: E402

from t2vz_backend.attention.cross_frame import CrossFrameState, cross_frame_attention  # noqa: E402
from t2vz_backend.attention.text import TextBatch  # noqa: E402
from t2vz_backend.sampling.sampler import chunks  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", default="32,64,128,128")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--chunks", default="8,4")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    cfg = ModelConfig.reduced(tuple(int(c) for c in args.channels.split(",")))
    dtype = getattr(torch, args.dtype)
    model = build_model(cfg, args.device, dtype)
    unet, f, side = model.unet, args.frames, args.size // 8
    torch.manual_seed(0)
    x = torch.randn(2 * f, 4, side, side, device=args.device, dtype=dtype)
    prompt = torch.randn(2, 77, cfg.text_dim, device=args.device, dtype=dtype)  # [negative, prompt], as in a job
    text = prompt.repeat_interleave(f, dim=0)  # branch-major: every frame of a branch has the same text
    t = torch.tensor(500, device=args.device)
    stock = unet.attn_processors
    state = CrossFrameState()

    def rows(idx):  # the same frames in both CFG branches (branch-major), as every engine lays them out
        sel = list(idx) + [f + i for i in idx]
        return x[sel], text[sel]

    def call(idx, announce=False):
        a, b = rows(idx)
        if announce:  # what our noise predictor does: tell text attention which prompt stack each frame uses
            state.text = TextBatch(b, 2, ("prompt",) * len(idx), lambda key: prompt)
        unet(a, t, encoder_hidden_states=b)

    @contextlib.contextmanager
    def old_processors():
        unet.set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=2))
        try:
            yield
        finally:
            unet.set_attn_processor(dict(stock))  # set_attn_processor consumes the dict

    def ours(size, exact=True):
        def run():
            first, *rest = chunks(f, size, exact)
            with state.recording(2):
                call(range(first.start, first.stop), announce=True)
            with state.replaying(2):
                for part in rest:
                    call(range(part.start, part.stop), announce=True)
        return run

    def anchor():
        with state.recording(2):
            call([0], announce=True)

    # name -> (processor installation, one step); processors are installed outside the timed region, as in a job
    ours_ctx = lambda: cross_frame_attention({"unet": unet}, state)  # noqa: E731
    layouts = {"base": (contextlib.nullcontext, lambda: call(range(f))),
               "old": (old_processors, lambda: call(range(f))), "anchor": (ours_ctx, anchor)}
    layouts.update({f"ours/c{c}": (ours_ctx, ours(int(c))) for c in args.chunks.split(",")})
    layouts.update({f"shared/c{c}": (ours_ctx, ours(int(c), False)) for c in args.chunks.split(",")})
    best = {name: float("inf") for name in layouts}
    for r in range(args.repeats + 1):  # round 0 is a warm-up
        for name, (installed, fn) in layouts.items():
            with installed():
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                fn()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                if r:
                    best[name] = min(best[name], time.perf_counter() - start)
    share = best["base"] * 2 / (2 * f)
    print(f"one denoising step, {f} frames, CFG, UNet {list(cfg.unet_channels)}, {args.size}x{args.size}, "
          f"{args.device} {args.dtype}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'layout':<10} {'UNet calls':>10} {'ms':>9} {'vs base':>8}")
    for name, value in best.items():
        calls = {"base": 1, "old": 1, "anchor": 1}.get(name) or len(chunks(f, int(name.split("/c")[1]),
                                                                            name.startswith("ours")))
        print(f"{name:<10} {calls:>10} {value * 1e3:>9.1f} {value / best['base']:>8.3f}")
    print(f"anchor call alone {best['anchor'] * 1e3:.1f} ms vs its share of the batched call {share * 1e3:.1f} ms: "
          f"+{(best['anchor'] - share) * 1e3:.1f} ms per step ({(best['anchor'] - share) / best['base']:.1%} of base)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"config": vars(args), "model": cfg.describe(), "best_s": best, "anchor_share_s": share},
                      handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
