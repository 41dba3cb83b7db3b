"""Motion dynamics: warping the anchor latent per frame (Text2Video-Zero, Sect. 3.1, Alg. 1; method.md §4).

Notation: frame k (0-based, global) gets the translation δᵏ = k·(λx, λy). Here λ is given as a **fraction of the
frame per frame** (``motion_x`` = λx / frame width), so the same value moves content by the same share of the
picture at any resolution; the paper's/original app's λ = 12 on its 512 grid is ``12/512 ≈ 0.0234``.

Direction: output pixel p reads the source at p + s, so **content moves by −s**: positive values move the content
left/up, as if the camera panned right/down (the reference implementations' convention).

Two modes:
- ``clean`` (default): the shift is exactly k·λ·w latent pixels, sampled bilinearly between pixels, so motion is
  uniform. The reference rounds to whole latent pixels with a half-pixel bias, which at λ = 12, 512² gives the
  uneven 0, 1, 3, 4, 6, 7, … (1-2-1-2 steps) and a background that judders; we chose sub-pixel sampling over
  rounding because it keeps the speed constant at every resolution, and it is exact for integer shifts.
- ``parity``: reproduces the reference formula (nearest sampling of p + (λk − 0.5)·w/512 in 512-grid units) so
  results can be compared with the original implementation.
Borders use symmetric reflection (the reference's ``padding_mode="reflection"``).

Everything works directly at latent resolution with index arithmetic; no flow field at 512² is ever built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..protocol import MotionKey


def translation_shifts(frames: Sequence[int], motion_x: float, motion_y: float, width: int, height: int,
                       mode: str = "clean") -> torch.Tensor:
    """Per-frame source offsets (sx, sy) in latent pixels for latents of ``width`` × ``height``; shape (n, 2)."""
    k = torch.tensor(list(frames), dtype=torch.float64)
    sx, sy = k * motion_x * width, k * motion_y * height
    if mode == "parity":
        # The reference normalises x + flow by 512 where grid_sample expects (2x+1)/W: a −0.5/512 bias per axis,
        # then nearest sampling. Frame 0 is never warped by the caller.
        sx = torch.round(sx - 0.5 * width / 512)
        sy = torch.round(sy - 0.5 * height / 512)
    elif mode != "clean":
        raise ValueError(f"unknown motion mode {mode!r}")
    return torch.stack([sx, sy], dim=1)


def translate(latents: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each of the n latents (n, C, H, W) by its own (sx, sy): out[p] = in[p + s], reflected at the borders."""
    if latents.shape[0] != shifts.shape[0]:
        raise ValueError(f"{latents.shape[0]} latents but {shifts.shape[0]} shifts")
    out = _shift_axis(latents, shifts[:, 0], dim=3)
    return _shift_axis(out, shifts[:, 1], dim=2)


def _shift_axis(x: torch.Tensor, shift: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation along one axis between the two source pixels around p + s (exact when s is whole)."""
    if bool((shift == 0).all()):
        return x.clone()
    size = x.shape[dim]
    whole = torch.floor(shift)
    frac = (shift - whole).to(x.dtype)
    pos = torch.arange(size, dtype=torch.float64)
    idx0 = _reflect((pos[None, :] + whole[:, None]).long(), size)  # (n, size)
    idx1 = _reflect((pos[None, :] + whole[:, None] + 1).long(), size)
    lo, hi = _gather(x, idx0, dim), _gather(x, idx1, dim)
    shape = [-1, 1, 1, 1]
    w = frac.view(shape)
    # (1 - w)·lo + w·hi, written so that w == 0 returns lo bit for bit.
    return torch.where(w == 0, lo, lo + w * (hi - lo))


def _reflect(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Symmetric reflection (…, 1, 0 | 0, 1, …, n-1 | n-1, n-2, …), periodic with period 2·size."""
    idx = idx % (2 * size)
    return torch.where(idx >= size, 2 * size - 1 - idx, idx)


def _gather(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    n, c, h, w = x.shape
    idx = idx.to(x.device)
    if dim == 3:
        return torch.gather(x, 3, idx[:, None, None, :].expand(n, c, h, w))
    return torch.gather(x, 2, idx[:, None, :, None].expand(n, c, h, w))


def affine(latents: torch.Tensor, keys: Sequence[MotionKey]) -> torch.Tensor:
    """Warp each latent by its camera key: pan (fraction of the frame), zoom (>1 zooms in), roll (degrees).

    Output pixel p reads the source at c + R(θ)·(p − c)/zoom + (dx·W, dy·H), with c the frame centre, so a pure
    pan key moves content exactly like ``translate`` with the same fractions.
    """
    n, _, h, w = latents.shape
    if n != len(keys):
        raise ValueError(f"{n} latents but {len(keys)} motion keys")
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    for i, key in enumerate(keys):
        a = math.radians(key.rotation)
        cos, sin = math.cos(a) / key.zoom, math.sin(a) / key.zoom
        # affine_grid works in normalised [-1, 1] coordinates; scale x/y separately so rotation stays circular
        # in pixels on non-square frames.
        theta[i, 0] = torch.tensor([cos, -sin * h / w, 2 * key.dx])
        theta[i, 1] = torch.tensor([sin * w / h, cos, 2 * key.dy])
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False).to(latents.device, torch.float32)
    out = F.grid_sample(latents.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(latents.dtype)


def warp_frames(anchor: torch.Tensor, frames: Sequence[int], *, motion_x: float, motion_y: float,
                motion_path: Sequence[MotionKey] = (), mode: str = "clean") -> torch.Tensor:
    """The anchor latent (1, C, H, W) warped for each global frame index in ``frames``; shape (len(frames), C, H, W)."""
    batch = anchor.expand(len(frames), -1, -1, -1)
    if motion_path:
        return affine(batch, [motion_path[k] for k in frames])
    _, _, h, w = anchor.shape
    return translate(batch, translation_shifts(frames, motion_x, motion_y, w, h, mode))
