"""Background smoothing (paper Sect. 3.3 "background smoothing"; docs/method.md §3.5), with masks from the caller.

The reference detects the foreground with a salient-object model after a first full generation (and crashes: the
detector is never defined). Here the foreground masks come with the job (Blender renders object masks), so the
blend happens once, at T, before the only denoising pass.

For each non-anchor frame k, with M_FGᵏ its dilated latent-size foreground mask and a = ``smooth_bg_strength``:
    M_BGᵏ = (1 − M_FGᵏ)·(1 − W_k(M_FG¹))            background in frame k and in the warped anchor
    x̂ᵏ   = W_k(x¹_T ⊙ (1 − M_FG¹))                  the anchor's background, moved with the camera
    x̄ᵏ_T = (1 − M_BGᵏ)·xᵏ_T + M_BGᵏ·(a·xᵏ_T + (1 − a)·x̂ᵏ)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .motion import MotionPlan


def load_masks(mask_dir: str, frames: Sequence[int], latent_size: tuple[int, int],
               device: torch.device) -> dict[int, torch.Tensor]:
    """Foreground masks for ``frames`` (global indices into the folder's sorted images), at latent size, dilated.

    Masks are resized with nearest sampling (no grey edges) and dilated by a 5×5 maximum so the blend never eats
    into the subject.
    """
    from ..media.reader import count_frames, read_frames

    available = count_frames(mask_dir)
    if max(frames) >= available:
        raise InputError(f"mask folder {mask_dir!r} has {available} images, frame {max(frames)} needs a mask",
                         hint="render one mask per frame of the video")
    out: dict[int, torch.Tensor] = {}
    for frame in frames:
        image = read_frames(mask_dir, start=frame, count=1).frames[0]  # RGB uint8
        gray = image.astype(np.float32).mean(axis=-1) / 255.0
        mask = torch.from_numpy((gray > 0.5).astype(np.float32))[None, None]
        mask = F.interpolate(mask, size=latent_size, mode="nearest")
        out[frame] = F.max_pool2d(mask, kernel_size=5, stride=1, padding=2).to(device)
    return out


def smooth_background(anchor_t1: torch.Tensor, others_t1: torch.Tensor, frames: Sequence[int],
                      masks: dict[int, torch.Tensor], strength: float, motion: MotionPlan) -> torch.Tensor:
    """Blend each non-anchor latent's background with the warped anchor background (see the module notation).

    Holes of the warp (cells that show nothing of frame 0) are left to the frame's own latent: there is no anchor
    background to blend in.
    """
    dtype = others_t1.dtype
    anchor_fg = masks[0].to(dtype)
    warped_fg, holes = motion.warp(anchor_fg, frames)
    x_hat, _ = motion.warp(anchor_t1 * (1 - anchor_fg), frames)
    own_fg = torch.cat([masks[k] for k in frames]).to(dtype)
    background = (1 - own_fg) * (1 - (warped_fg > 0.5).to(dtype)) * (~holes).to(dtype)
    a = strength
    return (1 - background) * others_t1 + background * (a * others_t1 + (1 - a) * x_hat)
