"""Which guidance branches a text-conditioned job runs, and the guidance embedding of distilled (LCM) UNets.

Classifier-free guidance doubles the UNet's rows ([uncond, cond]); it is off for ``guidance <= 1`` (diffusers'
rule), which is how few-step LoRAs (LCM, TCD) are usually run. An LCM-*distilled* UNet (its config has
``time_cond_proj_dim``) was trained with the guidance scale as an input instead: it runs the cond branch alone and
gets w = guidance − 1 as a sinusoidal embedding added to its timestep embedding, exactly as diffusers'
``StableDiffusionPipeline`` feeds it, so frame 0 still equals that pipeline's still.
"""

from __future__ import annotations

import torch

COND_ONLY = ("cond",)
WITH_CFG = ("uncond", "cond")


def embeds_guidance(unet) -> bool:
    """True for UNets that take the guidance scale as an embedding (LCM-distilled checkpoints)."""
    return bool(unet.config.get("time_cond_proj_dim"))


def text_branches(unet, guidance: float) -> tuple[str, ...]:
    """The prompt branches of each frame's rows: [uncond, cond] with classifier-free guidance, else [cond]."""
    return WITH_CFG if guidance > 1 and not embeds_guidance(unet) else COND_ONLY


def guidance_embedding(unet, guidance: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    """(1, time_cond_proj_dim) embedding of w = guidance − 1 for a distilled UNet, else None.

    Sinusoids of w·1000 at frequencies 10000^(−i/(half − 1)), sines then cosines (a zero pad for an odd width),
    computed in float32 as diffusers does, so the still's embedding is the same tensor.
    """
    if not embeds_guidance(unet):
        return None
    width = int(unet.config.time_cond_proj_dim)
    half = width // 2
    w = torch.tensor([guidance - 1.0]) * 1000.0
    step = torch.log(torch.tensor(10000.0)) / (half - 1)
    angles = w[:, None] * torch.exp(torch.arange(half, dtype=torch.float32) * -step)[None, :]
    out = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if width % 2:
        out = torch.nn.functional.pad(out, (0, 1))
    return out.to(device=device, dtype=dtype)
