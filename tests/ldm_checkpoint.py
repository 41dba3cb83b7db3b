"""Test helper: write diffusers weights in the original LDM single-file layout (what users download as .safetensors).

The original CompVis/Stability checkpoints keep the UNet under ``model.diffusion_model.``, the VAE under
``first_stage_model.`` and the CLIP text encoder under ``cond_stage_model.transformer.``, with the LDM module names:

UNet (``layers_per_block`` = L, one ``input_blocks`` entry per resnet/attention pair or downsampler)::

    conv_in                          -> input_blocks.0.0
    down_blocks.b.resnets.j          -> input_blocks.{1 + b(L+1) + j}.0     (resnet names below)
    down_blocks.b.attentions.j       -> input_blocks.{1 + b(L+1) + j}.1     (SpatialTransformer, same inner names)
    down_blocks.b.downsamplers.0.conv-> input_blocks.{(b+1)(L+1)}.0.op
    mid_block.resnets.0 / attentions.0 / resnets.1 -> middle_block.0 / .1 / .2
    up_blocks.b.resnets.j            -> output_blocks.{b(L+1) + j}.0
    up_blocks.b.attentions.j         -> output_blocks.{b(L+1) + j}.1
    up_blocks.b.upsamplers.0.conv    -> output_blocks.{b(L+1) + L}.{2 if the block has attention else 1}.conv
    time_embedding.linear_1/2        -> time_embed.0/2;  conv_norm_out -> out.0;  conv_out -> out.2
    resnet: norm1 -> in_layers.0, conv1 -> in_layers.2, time_emb_proj -> emb_layers.1, norm2 -> out_layers.0,
            conv2 -> out_layers.3, conv_shortcut -> skip_connection

VAE: ``down_blocks.i.resnets.j`` -> ``down.i.block.j``; the decoder's up blocks are numbered in reverse
(``up_blocks.i`` -> ``up.{n-1-i}``); ``mid_block.resnets.0/1`` -> ``mid.block_1/2``; the mid attention's
``group_norm/to_q/to_k/to_v/to_out.0`` -> ``norm/q/k/v/proj_out`` stored as 1x1 convolutions;
``conv_norm_out`` -> ``norm_out``; ``conv_shortcut`` -> ``nin_shortcut``.

ControlNet (``control_model.``): the UNet encoder names above, plus ``controlnet_cond_embedding.conv_in /
blocks.k / conv_out`` -> ``input_hint_block.0 / {2(k+1)} / 14``, ``controlnet_down_blocks.i`` -> ``zero_convs.i.0``
and ``controlnet_mid_block`` -> ``middle_block_out.0``.

This mapping is written from the layouts above for the tests; it is not diffusers' conversion code.
"""

from __future__ import annotations

import re
from typing import Any

from safetensors.torch import save_file

from t2vz_backend.model_refs import is_pickle_file

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_VAE_ATTENTION = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def _unet_encoder_key(key: str, layers: int) -> str | None:
    """LDM name of a UNet key shared by the UNet and the ControlNet (time embedding, input and middle blocks)."""
    span = layers + 1
    if m := re.fullmatch(r"time_embedding\.linear_([12])\.(\w+)", key):
        return f"time_embed.{0 if m[1] == '1' else 2}.{m[2]}"
    if m := re.fullmatch(r"conv_in\.(\w+)", key):
        return f"input_blocks.0.0.{m[1]}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * span + int(m[2])}.0.{_resnet(m[3])}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        return f"input_blocks.{1 + int(m[1]) * span + int(m[2])}.1.{m[3]}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * span}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    return None


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers UNet state dict in LDM names (without the ``model.diffusion_model.`` prefix)."""
    layers = config["layers_per_block"]
    span = layers + 1
    has_attention = ["CrossAttn" in name for name in config["up_block_types"]]
    out = {}
    for key, value in state.items():
        ldm = _unet_encoder_key(key, layers)
        if ldm is None:
            if m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
                ldm = f"output_blocks.{int(m[1]) * span + int(m[2])}.0.{_resnet(m[3])}"
            elif m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
                ldm = f"output_blocks.{int(m[1]) * span + int(m[2])}.1.{m[3]}"
            elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
                block = int(m[1])
                ldm = f"output_blocks.{block * span + layers}.{2 if has_attention[block] else 1}.conv.{m[2]}"
            elif m := re.fullmatch(r"conv_norm_out\.(\w+)", key):
                ldm = f"out.0.{m[1]}"
            elif m := re.fullmatch(r"conv_out\.(\w+)", key):
                ldm = f"out.2.{m[1]}"
            else:
                raise KeyError(f"no LDM name for UNet key {key}")
        out[ldm] = value
    return out


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers AutoencoderKL state dict in LDM names (without the ``first_stage_model.`` prefix)."""
    blocks = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        ldm = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(.+)", ldm):
            ldm = f"encoder.down.{m[1]}.block.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", ldm):
            ldm = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(.+)", ldm):
            ldm = f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", ldm):
            ldm = f"decoder.up.{blocks - 1 - int(m[1])}.upsample.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)", ldm):
            ldm = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", ldm):
            name = dict(_VAE_ATTENTION)[m[2]]
            ldm = f"{m[1]}.mid.attn_1.{name}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:
                value = value[:, :, None, None]  # LDM uses 1x1 convolutions for the attention projections
        out[ldm] = value
    return out


def text_encoder_to_ldm(state: dict[str, Any]) -> dict[str, Any]:
    """A transformers CLIPTextModel state dict in LDM names (without ``cond_stage_model.transformer.``)."""
    return {"text_model." + key.removeprefix("text_model."): value for key, value in state.items()}


def controlnet_to_ldm(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ControlNetModel state dict in LDM names (without the ``control_model.`` prefix)."""
    out = {}
    for key, value in state.items():
        ldm = _unet_encoder_key(key, config["layers_per_block"])
        if ldm is None:
            if m := re.fullmatch(r"controlnet_cond_embedding\.conv_in\.(\w+)", key):
                ldm = f"input_hint_block.0.{m[1]}"
            elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)\.(\w+)", key):
                ldm = f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
            elif m := re.fullmatch(r"controlnet_cond_embedding\.conv_out\.(\w+)", key):
                ldm = f"input_hint_block.14.{m[1]}"
            elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)\.(\w+)", key):
                ldm = f"zero_convs.{m[1]}.0.{m[2]}"
            elif m := re.fullmatch(r"controlnet_mid_block\.(\w+)", key):
                ldm = f"middle_block_out.0.{m[1]}"
            else:
                raise KeyError(f"no LDM name for ControlNet key {key}")
        out[ldm] = value
    return out


def write_sd_checkpoint(path: str, unet: Any, vae: Any, text_encoder: Any) -> None:
    """Save the three models as one original-layout SD checkpoint: .safetensors, or a pickle file (.ckpt, .pth,
    ...) like the original releases (tensors under ``state_dict``)."""
    tensors = {}
    for prefix, part in (("model.diffusion_model.", unet_to_ldm(unet.state_dict(), unet.config)),
                         ("first_stage_model.", vae_to_ldm(vae.state_dict(), vae.config)),
                         ("cond_stage_model.transformer.", text_encoder_to_ldm(text_encoder.state_dict()))):
        tensors.update({prefix + key: value.contiguous() for key, value in part.items()})
    if is_pickle_file(path):
        import torch

        torch.save({"state_dict": tensors}, path)
    else:
        save_file(tensors, path)


def write_controlnet_checkpoint(path: str, controlnet: Any) -> None:
    """Save a ControlNet in the original ``control_model.`` layout (.safetensors)."""
    part = controlnet_to_ldm(controlnet.state_dict(), controlnet.config)
    save_file({"control_model." + key: value.contiguous() for key, value in part.items()}, path)
