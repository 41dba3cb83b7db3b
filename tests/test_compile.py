"""Opt-in compile and channels-last (acceleration/compile.py): same frames, constant call shapes, undone after."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from t2vz_backend.acceleration import compile as compile_module
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import TextToVideoRequest
from t2vz_backend.sampling.context import JobContext

BASE = TextToVideoRequest(output_dir="unused", prompt="a red fox running", frames=6, width=64, height=64, steps=3,
                          seed=2, chunk_size=4)


def run(model, **changes) -> tuple[dict[int, np.ndarray], list[int]]:
    rows: list[int] = []
    hook = model.unet.conv_in.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        ctx = JobContext.collecting()
        text_to_video(dataclasses.replace(BASE, **changes), model, ctx)
    finally:
        hook.remove()
    return ctx.frames, rows


def max_diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("exact", [False, True])
def test_compiled_jobs_have_two_call_shapes_and_the_same_frames(tiny_sd, monkeypatch, exact):
    monkeypatch.setattr(compile_module, "BACKEND", "eager")  # dynamo's graphs without code generation: quick
    plain, plain_rows = run(tiny_sd, exact_anchor=exact)
    frames, rows = run(tiny_sd, exact_anchor=exact, compile=True)
    # 6 frames, chunk 4: plainly 4 + 2 frames (or anchor, 4, 1); compiled: equal calls, the short one padded
    assert set(plain_rows) == ({2, 8} if exact else {2, 4, 8})
    assert set(rows) == {2, 6} and len(rows) == len(plain_rows)
    assert sorted(frames) == list(range(6)) and max(max_diff(frames[k], plain[k]) for k in plain) <= 1
    layers = compile_module.compiled_layers(tiny_sd.unet)
    assert layers and all("forward" not in layer.__dict__ for layer in layers)  # the plain model is back
    assert all(hasattr(layer, compile_module._ATTR) for layer in layers)  # compiled code kept for the next job


def test_channels_last_is_undone_after_the_job(tiny_sd):
    plain, _ = run(tiny_sd, frames=2)
    frames, _ = run(tiny_sd, frames=2, channels_last=True)
    assert max(max_diff(frames[k], plain[k]) for k in plain) <= 1
    weight = tiny_sd.unet.conv_in.weight
    assert weight.is_contiguous() and not weight.is_contiguous(memory_format=torch.channels_last)
