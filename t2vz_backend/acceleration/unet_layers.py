"""Stable Diffusion's UNet and ControlNet run layer by layer, so a pass can stop at any skip connection.

This is what feature reuse (acceleration/feature_reuse.py) needs: diffusers' ``forward`` runs whole blocks, and the
cut between the part that is recomputed and the part that is reused falls inside a block.

Vocabulary. The down path builds a stack of skip features: s₀ is ``conv_in``'s output (plus the conditioning
embedding in a ControlNet), then one skip per down *layer* (a resnet, followed by its transformer in a
cross-attention block) and one per downsampler. The up path has exactly as many layers, L (12 in SD 1.5); each
concatenates the newest unconsumed skip to its input, so the j-th up layer from the output end reads s_{j-1}.

A *branch of depth D* (1 ≤ D ≤ L) is ``conv_in``, the down layers that make s₀…s_{D−1}, the last D up layers and
``conv_out``; nothing else reads those skips. Everything between — deeper down layers, the mid block, the first
L − D up layers — is the *deep part*, and its whole effect on the branch is one tensor: the hidden state that enters
up layer L − D, the *deep feature*. So ``unet_pass(..., keep=D)`` returns it with the noise prediction, and
``unet_branch(..., deep=feature, depth=D)`` computes the noise prediction from a fresh branch and that feature. Fed
the feature of the same inputs, the branch returns exactly (bit for bit) what the full pass returns; the tests
check that, and that ``unet_pass`` equals diffusers' ``UNet2DConditionModel.forward`` bit for bit.

Every module is called with the arguments diffusers' own block ``forward`` methods pass, in the same order, so the
arithmetic is the same. Only SD 1.5's block types are walked (``STRUCTURE`` below); anything else is refused by
:func:`check_structure` with a clear error instead of being computed differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidRequestError

DOWN_BLOCKS = frozenset({"CrossAttnDownBlock2D", "DownBlock2D"})
UP_BLOCKS = frozenset({"CrossAttnUpBlock2D", "UpBlock2D"})
MID_BLOCKS = frozenset({"UNetMidBlock2DCrossAttn"})
# Config options that change what a UNet/ControlNet forward computes beyond the walk below.
_UNSUPPORTED_OPTIONS = ("class_embed_type", "addition_embed_type", "encoder_hid_dim_type", "time_embedding_act_fn",
                        "num_class_embeds")


def skip_count(model) -> int:
    """L: the number of skip features of a UNet's (or ControlNet's) down path, = the UNet's up layers."""
    count = 1  # conv_in
    for block in model.down_blocks:
        count += len(block.resnets) + (1 if block.downsamplers is not None else 0)
    return count


def check_structure(model, what: str, *, depth: int, field: str = "cache_depth") -> None:
    """Refuse models this walk does not reproduce exactly, and branch depths deeper than the model."""
    names = [type(b).__name__ for b in model.down_blocks]
    if hasattr(model, "up_blocks"):
        names += [type(b).__name__ for b in model.up_blocks]
    names.append(type(model.mid_block).__name__)
    unknown = sorted(set(names) - DOWN_BLOCKS - UP_BLOCKS - MID_BLOCKS)
    options = [key for key in _UNSUPPORTED_OPTIONS if model.config.get(key)]
    if model.config.get("center_input_sample"):
        options.append("center_input_sample")
    if any(getattr(b, "s1", None) for b in getattr(model, "up_blocks", ())):
        options.append("FreeU")
    if unknown or options:
        raise InvalidRequestError(
            f"feature reuse cannot run this {what}: {', '.join(unknown + options)} is not part of SD 1.5's UNet",
            field="cache_interval", hint="set cache_interval to 1 (feature reuse off) for this model")
    total = skip_count(model)
    if not 1 <= depth <= total:
        raise InvalidRequestError(
            f"cache_depth={depth} is deeper than this {what}: its branch can be 1 to {total} layers deep",
            field=field, hint=f"use a cache_depth between 1 and {total} (1 is the default)")


def time_embedding(model, sample: torch.Tensor, timestep, timestep_cond: torch.Tensor | None) -> torch.Tensor:
    """The timestep embedding of every row, computed as diffusers' UNet and ControlNet compute it."""
    from diffusers.utils.torch_utils import maybe_adjust_dtype_for_device

    timesteps = timestep
    if not torch.is_tensor(timesteps):
        dtype = maybe_adjust_dtype_for_device(torch.float64 if isinstance(timestep, float) else torch.int64,
                                              sample.device)
        timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
    elif len(timesteps.shape) == 0:
        timesteps = timesteps[None].to(sample.device)
    t_emb = model.time_proj(timesteps.expand(sample.shape[0])).to(dtype=sample.dtype)
    return model.time_embedding(t_emb, timestep_cond)


def _attend(attention, hidden: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return attention(hidden, encoder_hidden_states=text, cross_attention_kwargs=None, attention_mask=None,
                     encoder_attention_mask=None, return_dict=False)[0]


def down_path(model, hidden: torch.Tensor, emb: torch.Tensor, text: torch.Tensor,
              stop: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(skips, hidden) after the down blocks, ``hidden`` being s₀; with ``stop``, only until ``stop`` skips exist."""
    skips = [hidden]
    for block in model.down_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            if stop is not None and len(skips) >= stop:
                return skips, hidden
            hidden = resnet(hidden, emb)
            if attentions is not None:
                hidden = _attend(attentions[j], hidden, text)
            skips.append(hidden)
        if block.downsamplers is not None:
            if stop is not None and len(skips) >= stop:
                return skips, hidden
            for downsampler in block.downsamplers:
                hidden = downsampler(hidden)
            skips.append(hidden)
    return skips, hidden


def _mid(model, hidden: torch.Tensor, emb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return model.mid_block(hidden, emb, encoder_hidden_states=text, attention_mask=None, cross_attention_kwargs=None,
                           encoder_attention_mask=None)


def up_path(unet, hidden: torch.Tensor, emb: torch.Tensor, text: torch.Tensor, skips: list[torch.Tensor], *,
            start: int, keep_at: int | None, resize: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the up layers from index ``start`` (0-based over all L); return (output, hidden entering ``keep_at``).

    ``skips`` must hold exactly the skips those layers read (consumed from the end). ``resize``: the latent size is
    not a multiple of the total upsampling factor, so each upsampler is told the size of the next skip.
    """
    index, kept = 0, None
    last = len(unet.up_blocks) - 1
    for i, block in enumerate(unet.up_blocks):
        if index + len(block.resnets) <= start:
            index += len(block.resnets)
            continue
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            if index >= start:
                if index == keep_at:
                    kept = hidden
                hidden = resnet(torch.cat([hidden, skips.pop()], dim=1), emb)
                if attentions is not None:
                    hidden = _attend(attentions[j], hidden, text)
            index += 1
        if block.upsamplers is not None:
            size = skips[-1].shape[2:] if resize and i != last else None
            for upsampler in block.upsamplers:
                hidden = upsampler(hidden, size)
    return hidden, kept


def _resize(unet, sample: torch.Tensor) -> bool:
    factor = 2 ** unet.num_upsamplers
    return any(dim % factor for dim in sample.shape[-2:])


def _out(unet, hidden: torch.Tensor) -> torch.Tensor:
    if unet.conv_norm_out:
        hidden = unet.conv_act(unet.conv_norm_out(hidden))
    return unet.conv_out(hidden)


def _with_residuals(skips: list[torch.Tensor], residuals: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    if residuals is None:
        return skips
    return [skip + residual for skip, residual in zip(skips, residuals)]


def unet_pass(unet, sample: torch.Tensor, timestep, text: torch.Tensor, *, keep: int = 0,
              timestep_cond: torch.Tensor | None = None, down_residuals: Sequence[torch.Tensor] | None = None,
              mid_residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole UNet (= ``unet(...)``); with ``keep=D`` also the deep feature of the depth-D branch."""
    if (down_residuals is None) != (mid_residual is None):
        raise ValueError("ControlNet residuals come as down and mid residuals together")  # caller bug
    emb = time_embedding(unet, sample, timestep, timestep_cond)
    skips, hidden = down_path(unet, unet.conv_in(sample), emb, text)
    skips = _with_residuals(skips, down_residuals)
    hidden = _mid(unet, hidden, emb, text)
    if mid_residual is not None:
        hidden = hidden + mid_residual
    keep_at = len(skips) - keep if keep else None
    hidden, kept = up_path(unet, hidden, emb, text, skips, start=0, keep_at=keep_at, resize=_resize(unet, sample))
    return _out(unet, hidden), kept


def unet_branch(unet, sample: torch.Tensor, timestep, text: torch.Tensor, *, deep: torch.Tensor, depth: int,
                timestep_cond: torch.Tensor | None = None,
                down_residuals: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """The noise prediction from the depth-``depth`` branch and a deep feature (from ``unet_pass(keep=depth)``)."""
    emb = time_embedding(unet, sample, timestep, timestep_cond)
    skips, _ = down_path(unet, unet.conv_in(sample), emb, text, stop=depth)
    skips = _with_residuals(skips, down_residuals)
    start = skip_count(unet) - depth
    hidden, _ = up_path(unet, deep, emb, text, skips, start=start, keep_at=None, resize=_resize(unet, sample))
    return _out(unet, hidden)


def control_branch(net, sample: torch.Tensor, timestep, text: torch.Tensor, cond: torch.Tensor, *, scale: float,
                   depth: int) -> list[torch.Tensor]:
    """The first ``depth`` residuals of a ControlNet (= the start of ``net(...)[0]``), without its deep part.

    On a reuse step the UNet reads only those; the deeper residuals and the mid residual acted through the deep
    feature of the last full step, which already holds them.
    """
    if net.config.controlnet_conditioning_channel_order == "bgr":
        cond = torch.flip(cond, dims=[1])
    emb = time_embedding(net, sample, timestep, None)
    hidden = net.conv_in(sample) + net.controlnet_cond_embedding(cond)
    skips, _ = down_path(net, hidden, emb, text, stop=depth)
    out = [block(skip) * scale for skip, block in zip(skips, net.controlnet_down_blocks)]
    if net.config.global_pool_conditions:
        out = [torch.mean(residual, dim=(2, 3), keepdim=True) for residual in out]
    return out
