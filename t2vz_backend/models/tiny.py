"""The built-in ``tiny`` model: a SMOKE-TEST model with RANDOM weights. It draws noise, not pictures.

``model="tiny"`` exercises the whole pipeline (loading, cross-frame attention, ControlNet, Instruct-Pix2Pix,
decoding, frame writing) in seconds on a CPU, with no download. Its components are shaped like Stable Diffusion
1.5 so that every code path a real model takes is taken, only with tiny channel counts:

* UNet: SD-1.5 block structure (CrossAttnDownBlock2D + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D, a cross-attention
  mid block, so every transformer block has self-attention ``attn1`` and cross-attention ``attn2``), 4 latent
  channels, ``block_out_channels=(32, 64)``, ``layers_per_block=1``, ``cross_attention_dim=32``, heads (2, 4);
* VAE: four blocks, so it downsamples by 8 like SD's (``block_out_channels=(8, 8, 8, 8)``, 4 latent channels);
* text encoder: CLIP with ``hidden_size=32``, 2 layers, 77 positions; tokenizer from a small byte-level BPE
  vocabulary written by :mod:`t2vz_backend.models.tiny_vocab`;
* scheduler: SD 1.5's (PNDM config: scaled_linear 0.00085..0.012, 1000 steps, ``steps_offset=1``);
* ControlNet: the UNet's encoder plus a conditioning embedding that takes full-resolution RGB (8x the latent size);
* Instruct-Pix2Pix: the same pipeline with an 8-channel UNet input (noisy latents + image latents).

:func:`ensure_tiny_models` builds them deterministically (fixed seed: a rebuild gives identical weights) and saves
them once, as safetensors diffusers folders, into ``$T2VZ_CACHE/tiny-v1`` (default ``~/.cache/t2vz/tiny-v1``).
The loader then reads them like any user's model folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from .tiny_vocab import MERGES, vocabulary, write_vocab

LABEL = "tiny (built-in smoke-test model with random weights: it draws noise, not pictures)"

VERSION = "tiny-v1"  # bump when any config or the seed changes, so old caches are not reused
SEED = 0

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,  # latent size; pipelines default to 8 * 8 = 64 pixels
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "cross_attention_dim": 32,  # = text encoder hidden size
    "attention_head_dim": (2, 4),  # SD 1.5 semantics: number of heads per block
    "norm_num_groups": 32,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,  # three 2x downsamples: factor 8 like SD
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (8, 8, 8, 8),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 64,
    "scaling_factor": 0.18215,  # SD 1.x
}
TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "projection_dim": 32,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}
CONTROLNET_CONDITIONING_CHANNELS = (4, 8, 8, 16)  # four stages: three stride-2 convs, RGB at 8x the latent size
SCHEDULER_CONFIG: dict[str, Any] = {  # Stable Diffusion 1.5's scheduler/scheduler_config.json
    "_class_name": "PNDMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

README = f"""\
t2vz built-in model "{VERSION}"
================================

THIS IS A SMOKE-TEST MODEL WITH RANDOM WEIGHTS. IT DRAWS NOISE, NOT PICTURES.

It exists so that the whole Text2Video-Zero pipeline (text-to-video, ControlNet video, Video Instruct-Pix2Pix)
can be run and tested in seconds, on a CPU, without downloading anything. To make real videos choose a real
Stable Diffusion 1.5 model (for example stable-diffusion-v1-5/stable-diffusion-v1-5).

Folders (diffusers format, safetensors weights):
  sd/          StableDiffusionPipeline: UNet {UNET_CONFIG['block_out_channels']} channels, 4 latent channels,
               cross-attention dim {UNET_CONFIG['cross_attention_dim']}; VAE 4 blocks of 8 channels (downsampling 8x);
               CLIP text encoder hidden size 32, 2 layers; SD 1.5 scheduler config
  controlnet/  ControlNetModel matching sd/'s UNet; RGB conditioning images at full resolution
  pix2pix/     StableDiffusionInstructPix2PixPipeline: like sd/ with an 8-channel UNet input

Built by t2vz_backend.models.tiny with torch.manual_seed({SEED}); deleting this folder is safe: it is rebuilt
identically the next time the tiny model is used.
"""


@dataclass(frozen=True)
class TinyPaths:
    """Where the tiny model's folders are."""

    root: str  # the tiny-v1 folder
    sd: str  # StableDiffusionPipeline folder
    controlnet: str  # ControlNetModel folder
    pix2pix: str  # StableDiffusionInstructPix2PixPipeline folder


def cache_root() -> str:
    """``$T2VZ_CACHE``, else ``~/.cache/t2vz``."""
    return os.path.expanduser(os.environ.get("T2VZ_CACHE") or os.path.join("~", ".cache", "t2vz"))


def tiny_paths(root: str | None = None) -> TinyPaths:
    """The tiny model's paths under ``root`` (default :func:`cache_root`), whether or not they are built yet."""
    folder = os.path.join(os.path.abspath(os.path.expanduser(root or cache_root())), VERSION)
    return TinyPaths(folder, os.path.join(folder, "sd"), os.path.join(folder, "controlnet"),
                     os.path.join(folder, "pix2pix"))


def is_tiny_ref(ref: str) -> bool:
    """True for ``"tiny"`` and for paths inside a tiny model folder (under any cache root)."""
    if ref == "tiny":
        return True
    path = os.path.realpath(os.path.expanduser(ref))
    return os.path.basename(os.path.dirname(path)) == VERSION and os.path.isfile(
        os.path.join(os.path.dirname(path), "README.txt"))


def ensure_tiny_models(root: str | None = None) -> TinyPaths:
    """Build and save the tiny models once under ``root`` (default :func:`cache_root`) and return their paths.

    The build happens in a temporary folder that is renamed into place, so a crash or a concurrent build never
    leaves a half-written model behind; ``README.txt`` is written last and marks a complete build.
    """
    paths = tiny_paths(root)
    if os.path.isfile(os.path.join(paths.root, "README.txt")):
        return paths
    parent = os.path.dirname(paths.root)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(paths.root):  # left behind by something other than this function: rebuild it
        shutil.rmtree(paths.root)
    staging = tempfile.mkdtemp(prefix=f".{VERSION}-building-", dir=parent)
    try:
        build_tiny_models(staging)
        try:
            os.rename(staging, paths.root)
        except OSError:
            if not os.path.isfile(os.path.join(paths.root, "README.txt")):
                raise
            # another process finished the same (identical) build first; keep its copy
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def build_tiny_models(folder: str) -> None:
    """Build the three tiny folders (``sd``, ``controlnet``, ``pix2pix``) and ``README.txt`` into ``folder``."""
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    tokenizer = _tokenizer()
    sd = _components(tokenizer, in_channels=4)
    StableDiffusionPipeline(**sd).save_pretrained(os.path.join(folder, "sd"), safe_serialization=True)
    _controlnet(sd["unet"]).save_pretrained(os.path.join(folder, "controlnet"), safe_serialization=True)
    pix2pix = _components(tokenizer, in_channels=8)  # noisy latents + encoded input image, concatenated
    StableDiffusionInstructPix2PixPipeline(**pix2pix).save_pretrained(
        os.path.join(folder, "pix2pix"), safe_serialization=True)
    for name in ("sd", "pix2pix"):  # also the slow-tokenizer files, for readers that want vocab.json + merges.txt
        write_vocab(os.path.join(folder, name, "tokenizer"))
    with open(os.path.join(folder, "README.txt"), "w", encoding="utf-8") as handle:
        handle.write(README)


def _tokenizer() -> Any:
    """A CLIP tokenizer over the tiny vocabulary (transformers 5 constructor: vocabulary dict and merge pairs)."""
    from transformers import CLIPTokenizer

    merges = [tuple(merge.split(" ")) for merge in MERGES]
    return CLIPTokenizer(vocab=vocabulary(), merges=merges, model_max_length=77)


def _components(tokenizer: Any, *, in_channels: int) -> dict[str, Any]:
    """Seeded random components; every model is seeded on its own so that one change does not shift the others."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "in_channels": in_channels})
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(SEED + 2)
    text_config = CLIPTextConfig(
        **TEXT_ENCODER_CONFIG,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(text_config)
    scheduler = PNDMScheduler.from_config(SCHEDULER_CONFIG)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler,
            "safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def _controlnet(unet: Any) -> Any:
    """A ControlNet copied from the UNet whose zero convolutions get small random weights.

    A real ControlNet starts with zero output convolutions and learns them; left at zero the tiny ControlNet would
    add nothing, and tests could not see that the control images reach the UNet.
    """
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(SEED + 3)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROLNET_CONDITIONING_CHANNELS)
    with torch.no_grad():
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                     controlnet.controlnet_cond_embedding.conv_out]:
            conv.weight.normal_(0.0, 0.05)
            conv.bias.normal_(0.0, 0.01)
    return controlnet
