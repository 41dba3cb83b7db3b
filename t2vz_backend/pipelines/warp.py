"""Warp kernels for latents (n, C, h, w), all in latent-cell coordinates (docs/method.md §3.4; docs/camera_motion.md).

Coordinates: cell (u, v) covers [u, u+1) x [v, v+1), its centre is (u + 0.5, v + 0.5). Every kernel reads the
source at a position given per output cell and leaves "holes" to the caller (cells with no source content).
Borders use symmetric reflection (…, 1, 0 | 0, 1, …), the reference implementation's ``padding_mode="reflection"``.

- ``translate``: one (sx, sy) per latent, by index arithmetic and linear interpolation along each axis; exact (bit
  for bit) for whole shifts. The constant drift of Text2Video-Zero.
- ``homography_warp``: one 3x3 matrix per latent, bilinear (``grid_sample``). Cells whose source lies at or behind
  the horizon (w <= 0 in homogeneous coordinates: a plane seen from frame k that frame 0 does not see in front of
  it) are holes.
- ``flow_warp``: one displacement per cell and latent, bilinear; the holes come with the field.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HORIZON_EPS = 1e-6  # w below this (relative to the row's scale) counts as "at or behind the horizon"


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
    w = frac.view(-1, 1, 1, 1)
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


def cell_centres(h: int, w: int) -> torch.Tensor:
    """(h, w, 2) float64 centres (u + 0.5, v + 0.5) of every cell, x first."""
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return torch.stack([u + 0.5, v + 0.5], dim=-1)


def homography_warp(latents: torch.Tensor, matrices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp latent i by ``matrices[i]`` (3x3, latent-cell coordinates, output cell -> source point).

    Returns (warped latents, holes (n, 1, h, w) bool: the source lies at or behind the horizon).
    """
    n, _, h, w = latents.shape
    if matrices.shape != (n, 3, 3):
        raise ValueError(f"{n} latents but homographies of shape {tuple(matrices.shape)}")
    p = torch.cat([cell_centres(h, w), torch.ones(h, w, 1, dtype=torch.float64)], dim=-1)  # (h, w, 3)
    q = torch.einsum("nij,hwj->nhwi", matrices.to(torch.float64), p)
    scale = matrices.to(torch.float64)[:, 2].abs().amax(dim=1).clamp_min(1e-300)[:, None, None]
    holes = q[..., 2] <= HORIZON_EPS * scale
    depth = torch.where(holes, torch.ones_like(q[..., 2]), q[..., 2])
    source = q[..., :2] / depth[..., None]
    return _sample(latents, source, holes)


def flow_warp(latents: torch.Tensor, flow: torch.Tensor, holes: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp latent i by the displacement ``flow[i]`` (2, h, w) in cells: cell centre c reads the source at c + d."""
    n, _, h, w = latents.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(f"latents {tuple(latents.shape)} but a flow of shape {tuple(flow.shape)}")
    source = cell_centres(h, w)[None] + flow.to(torch.float64).permute(0, 2, 3, 1)
    holes = torch.zeros(n, h, w, dtype=torch.bool) if holes is None else holes.reshape(n, h, w).cpu()
    return _sample(latents, source, holes)


def _sample(latents: torch.Tensor, source: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear samples at ``source`` (n, h, w, 2) continuous cell coordinates, reflected at the borders."""
    n, _, h, w = latents.shape
    # grid_sample with align_corners=False puts cell centres at (2u + 1)/w - 1: continuous x maps to 2x/w - 1.
    # Far-away points are clamped first (reflection is periodic, and float32 would lose the fraction).
    limit = 4.0 * max(h, w)
    source = source.clamp(-limit, limit)
    grid = torch.stack([2 * source[..., 0] / w - 1, 2 * source[..., 1] / h - 1], dim=-1)
    grid = grid.to(device=latents.device, dtype=torch.float32)
    out = F.grid_sample(latents.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(latents.dtype), holes.to(latents.device)[:, None]
