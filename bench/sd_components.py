"""Random-weight Stable Diffusion 1.5-topology components for the benchmarks (no download, HF_HUB_OFFLINE-safe).

The UNet has SD 1.5's exact block structure (CrossAttnDownBlock2D x3 + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D
x3, a cross-attention mid block, ``layers_per_block=2``, ``attention_head_dim=8`` i.e. 8 heads per block, 4 latent
channels); only the widths shrink. Every other width follows the UNet's first block width ``c0`` (SD 1.5: 320):

* UNet ``block_out_channels = (c0, 2c0, 4c0, 4c0)`` by default (SD 1.5: 320, 640, 1280, 1280);
* text width = ``cross_attention_dim`` = 768·c0/320 rounded to a multiple of 16 (SD 1.5: 768);
* VAE: 4 blocks (downsampling 8x), ``block_out_channels`` = (128, 256, 512, 512)·c0/320 rounded up to multiples of 8;
* CLIP text encoder: 77 positions, 2 layers / 4 heads when reduced, CLIP ViT-L/14's 12 layers / 12 heads at full
  size; tokenizer: a byte-less letters-and-digits vocabulary written here (no merges).

``build_controlnet`` makes a ControlNet of the same topology and ``build_model(..., kind="pix2pix")`` an
Instruct-Pix2Pix UNet (8 input channels), for the guided-video benchmark.

``full=True`` gives SD 1.5's real sizes (random weights), for a spot check on a GPU.
"""

from __future__ import annotations

import json
import math
import os
import string
import tempfile
import types
from dataclasses import asdict, dataclass

import torch

# Stable Diffusion 1.5's scheduler/scheduler_config.json (a PNDM config; DDIM is built from it, as users do).
SD15_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "trained_betas": None, "skip_prk_steps": True, "set_alpha_to_one": False, "steps_offset": 1,
    "clip_sample": False, "prediction_type": "epsilon", "timestep_spacing": "leading",
}
SD15_CHANNELS = (320, 640, 1280, 1280)


@dataclass(frozen=True)
class ModelConfig:
    unet_channels: tuple[int, ...]
    text_dim: int
    text_layers: int
    text_heads: int
    vae_channels: tuple[int, ...]
    vae_layers: int

    @classmethod
    def reduced(cls, channels: tuple[int, ...]) -> ModelConfig:
        c0 = channels[0]
        if tuple(channels) == SD15_CHANNELS:
            return cls.full()
        text_dim = max(32, round(768 * c0 / 320 / 16) * 16)
        vae = tuple(max(8, math.ceil(c * c0 / 320 / 8) * 8) for c in (128, 256, 512, 512))
        return cls(tuple(channels), text_dim, 2, 4, vae, 2)

    @classmethod
    def full(cls) -> ModelConfig:
        return cls(SD15_CHANNELS, 768, 12, 12, (128, 256, 512, 512), 2)

    def describe(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _groups(channels) -> int:
    return math.gcd(32, *channels)


def build_tokenizer():
    """A CLIP tokenizer over single letters and digits (each also with the end-of-word marker)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + ".,!?-'":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    folder = tempfile.mkdtemp(prefix="t2vz-bench-tok-")
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as handle:
        json.dump(vocab, handle)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n")
    return CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), model_max_length=77)


def build_components(cfg: ModelConfig, seed: int = 0, in_channels: int = 4) -> dict:
    """Seeded random UNet, VAE, text encoder and tokenizer (eval mode, float32, CPU).

    ``in_channels=8`` gives an Instruct-Pix2Pix UNet (noisy latents + image latents), otherwise the same topology.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=in_channels, out_channels=4, layers_per_block=2,
        block_out_channels=cfg.unet_channels,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=cfg.text_dim, attention_head_dim=8, norm_num_groups=_groups(cfg.unet_channels),
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=cfg.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=cfg.vae_layers, norm_num_groups=_groups(cfg.vae_channels), sample_size=512,
        scaling_factor=0.18215,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_dim, intermediate_size=4 * cfg.text_dim,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads, max_position_embeddings=77,
        hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=cfg.text_dim,
    ))
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer}


class BenchModel(types.SimpleNamespace):
    """The duck-typed model ``text_to_video`` takes: components, scheduler config, device, dtype, make_scheduler."""

    def make_scheduler(self, name: str):
        from t2vz_backend.sampling.schedulers import make_scheduler

        return make_scheduler(name, self.scheduler_config)


def build_model(cfg: ModelConfig, device: str = "cpu", dtype: torch.dtype = torch.float32,
                kind: str = "sd") -> BenchModel:
    """``kind="pix2pix"``: the UNet takes 8 input channels, as Instruct-Pix2Pix's does."""
    parts = build_components(cfg, in_channels=8 if kind == "pix2pix" else 4)
    for name in ("unet", "vae", "text_encoder"):
        parts[name].to(device=device, dtype=dtype)
    return BenchModel(**parts, scheduler_config=dict(SD15_SCHEDULER_CONFIG), device=torch.device(device),
                      dtype=dtype, ref="bench-random", kind=kind)


def build_controlnet(unet, seed: int = 3):
    """A ControlNet of the UNet's topology (``ControlNetModel.from_unet``) whose zero convolutions get small random
    weights, so its residuals are not all zero; on the UNet's device and dtype, eval mode."""
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in (*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 1e-2)
    return net.to(device=unet.device, dtype=unet.dtype).eval().requires_grad_(False)


def ddim(model: BenchModel):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(model.scheduler_config)
