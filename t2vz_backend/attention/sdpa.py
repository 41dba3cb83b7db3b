"""Scaled-dot-product helpers shared by the cross-frame and the text attention processors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def plain_sd_attention(attn) -> bool:
    """True when an ``Attention`` module uses only the options of Stable Diffusion 1.5's layers, the ones both our
    processors implement (no spatial/group/cross/q/k norms, residual connection or output rescaling)."""
    return (attn.spatial_norm is None and attn.group_norm is None and attn.norm_cross is None
            and not attn.residual_connection and attn.rescale_output_factor == 1.0 and attn.norm_q is None
            and attn.norm_k is None)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(rows, tokens, h·d) → (rows, h, tokens, d), a view."""
    rows, tokens, _ = x.shape
    return x.view(rows, tokens, heads, -1).transpose(1, 2)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` with the module's own scale.

    SDPA's default 1/sqrt(d) equals Stable Diffusion's scale, but that is not guaranteed for every model.
    """
    return F.scaled_dot_product_attention(q, k, v, scale=scale)
