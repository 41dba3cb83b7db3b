"""How much one frame pair differs once the motion between them is taken out: warp error, PSNR and SSIM.

Frame t+1 is warped back onto frame t with the forward flow (quality/flow.py) and compared with frame t over the
pixels that are visible in both (the forward/backward check). With the true motion a steady video scores a warp
error near 0; flicker, popping textures and colour drift raise it.

- **warp error**: mean absolute difference in 8-bit levels (0-255), averaged over the R, G and B channels;
- **PSNR**: 10·log10(255² / MSE) over the same pixels, in dB; ``PSNR_MAX`` when the pixels are identical;
- **SSIM**: structural similarity (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03) per
  channel, its map averaged over the visible pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .flow import FlowPair, visible_mask, warp

PSNR_MAX = 100.0  # dB reported for a pair with no difference at all (the true value is infinite)
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


@dataclass(frozen=True)
class PairMetrics:
    warp_error: float  # 0-255 levels
    psnr: float  # dB, at most PSNR_MAX
    ssim: float  # -1..1, 1 = identical
    occluded: float  # fraction of frame t left out (occluded, inconsistent flow, or leaving the frame)


def measure_pair(frame: np.ndarray, following: np.ndarray, flows: FlowPair) -> PairMetrics:
    """The metrics of frame t (``frame``) against frame t+1 (``following``) warped back by ``flows``."""
    mask = visible_mask(flows)
    reference = np.asarray(frame, dtype=np.float32)
    warped = warp(following, flows.forward)
    if not mask.any():  # nothing of frame t is seen in frame t+1: a cut, or a flow that failed everywhere
        return PairMetrics(warp_error=255.0, psnr=0.0, ssim=0.0, occluded=1.0)
    difference = reference - warped
    visible = difference[mask]
    error = float(np.abs(visible).mean())
    mse = float(np.square(visible).mean())
    psnr = PSNR_MAX if mse == 0 else min(PSNR_MAX, 10.0 * math.log10(255.0 ** 2 / mse))
    return PairMetrics(warp_error=error, psnr=psnr, ssim=float(ssim_map(reference, warped)[mask].mean()),
                       occluded=float(1.0 - mask.mean()))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The per-pixel SSIM of two float images (levels 0-255), averaged over their channels."""
    import cv2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a ** 2 + mu_b ** 2 + _C1) * (var_a + var_b + _C2))
    return value.mean(axis=2) if value.ndim == 3 else value
