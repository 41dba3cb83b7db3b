"""VAE decoding in micro-batches, streaming frames to the caller as they finish (docs/method.md §9)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .context import JobContext


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> np.ndarray:
    """Latents (n, 4, h, w) → uint8 images (n, H, W, 3), rounded exactly as diffusers' PIL output is.

    fp16 VAEs overflow to NaN on some GPUs and models (black frames, Text2Video-Zero issue #80): a batch that comes
    out non-finite is decoded again in float32.
    """
    scaled = latents.to(vae.dtype) / vae.config.scaling_factor
    images = vae.decode(scaled, return_dict=False)[0]
    if vae.dtype != torch.float32 and not bool(torch.isfinite(images).all()):
        dtype = vae.dtype
        vae.to(torch.float32)
        try:
            images = vae.decode(scaled.float(), return_dict=False)[0]
        finally:
            vae.to(dtype)
    images = (images / 2 + 0.5).clamp(0, 1)
    array = images.cpu().permute(0, 2, 3, 1).float().numpy()
    return (array * 255).round().astype(np.uint8)


def stream_frames(vae, latents: torch.Tensor, frames: Sequence[int], wanted: Sequence[int], ctx: JobContext, *,
                  batch: int) -> None:
    """Decode the rows of ``latents`` whose frame index is in ``wanted``, ``batch`` at a time, in frame order."""
    row_of = {frame: row for row, frame in enumerate(frames)}
    order = sorted(wanted)
    # The anchor is decoded alone, with the batch shape a still has, so frame 0 matches diffusers bit for bit.
    groups = [order[:1]] + [order[i:i + batch] for i in range(1, len(order), batch)] if order[:1] == [0] else \
        [order[i:i + batch] for i in range(0, len(order), batch)]
    for group in groups:
        images = decode_latents(vae, latents[[row_of[f] for f in group]])
        for frame, image in zip(group, images):
            ctx.frame(frame, image)
        ctx.check_cancel()
