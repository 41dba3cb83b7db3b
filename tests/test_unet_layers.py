"""The layer-by-layer UNet/ControlNet walk: bit-identical to diffusers' forward, and a branch fed the deep feature of
the same inputs returns exactly the full pass (acceleration/unet_layers.py)."""

from __future__ import annotations

import pytest
import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from t2vz_backend.acceleration.unet_layers import (
    check_structure,
    control_branch,
    skip_count,
    unet_branch,
    unet_pass,
)
from t2vz_backend.errors import InvalidRequestError


def sd15_like(**extra) -> UNet2DConditionModel:
    """SD 1.5's block structure (3 cross-attention down blocks + a plain one, mirrored, 2 layers each), tiny widths."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(8, 16, 16, 16),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8, **extra).eval()


@pytest.fixture(scope="module")
def unet():
    return sd15_like()


@pytest.fixture(scope="module")
def controlnet(unet):
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 8))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero convolutions get weights, so the residuals are not all zero
        for conv in (*net.controlnet_down_blocks, net.controlnet_mid_block):
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.1)
    return net.eval()


def inputs(rows=3, h=16, w=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, 4, h, w, generator=generator), torch.tensor(761),
            torch.randn(rows, 7, 16, generator=generator))


@torch.no_grad()
@pytest.mark.parametrize("size", [(16, 16), (12, 20)])  # 12x20: not a multiple of 8, the upsamplers get sizes
def test_full_pass_equals_diffusers_forward_bit_for_bit(unet, size):
    sample, t, text = inputs(h=size[0], w=size[1])
    expected = unet(sample, t, encoder_hidden_states=text, return_dict=False)[0]
    out, deep = unet_pass(unet, sample, t, text, keep=3)
    assert torch.equal(out, expected)
    assert deep is not None and deep.shape[0] == 3


@torch.no_grad()
@pytest.mark.parametrize("depth", [1, 2, 3, 5, 11, 12])
def test_branch_with_the_same_steps_deep_feature_is_the_full_pass(unet, depth):
    sample, t, text = inputs()
    full, deep = unet_pass(unet, sample, t, text, keep=depth)
    assert torch.equal(unet_branch(unet, sample, t, text, deep=deep, depth=depth), full)
    other, _ = inputs(seed=1)[0], None  # a different input through the branch gives a different answer
    assert not torch.equal(unet_branch(unet, other, t, text, deep=deep, depth=depth), full)


@torch.no_grad()
def test_controlnet_residuals_and_their_branch(unet, controlnet):
    sample, t, text = inputs()
    cond = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    down, mid = controlnet(sample, t, encoder_hidden_states=text, controlnet_cond=cond, conditioning_scale=0.7,
                           return_dict=False)
    expected = unet(sample, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid, return_dict=False)[0]
    full, deep = unet_pass(unet, sample, t, text, keep=2, down_residuals=down, mid_residual=mid)
    assert torch.equal(full, expected)
    shallow = control_branch(controlnet, sample, t, text, cond, scale=0.7, depth=2)
    assert len(shallow) == 2 and all(torch.equal(a, b) for a, b in zip(shallow, down[:2]))
    assert torch.equal(unet_branch(unet, sample, t, text, deep=deep, depth=2, down_residuals=shallow), full)


@torch.no_grad()
def test_guidance_embedding_of_distilled_models():
    unet = sd15_like(time_cond_proj_dim=8)
    sample, t, text = inputs()
    cond = torch.randn(1, 8)
    expected = unet(sample, t, encoder_hidden_states=text, timestep_cond=cond, return_dict=False)[0]
    full, deep = unet_pass(unet, sample, t, text, keep=2, timestep_cond=cond)
    assert torch.equal(full, expected)
    assert torch.equal(unet_branch(unet, sample, t, text, deep=deep, depth=2, timestep_cond=cond), full)


def test_depth_is_checked_against_the_model(unet, controlnet, tiny_sd):
    assert skip_count(unet) == 12 and skip_count(controlnet) == 12  # SD 1.5: conv_in + 4x2 layers + 3 downsamplers
    assert skip_count(tiny_sd.unet) == 4
    check_structure(unet, "UNet", depth=12)
    for depth in (0, 13):
        with pytest.raises(InvalidRequestError, match=f"cache_depth={depth}") as info:
            check_structure(unet, "UNet", depth=depth)
        assert info.value.field == "cache_depth" and "between 1 and 12" in info.value.hint
    with pytest.raises(InvalidRequestError, match="cache_depth=5 is deeper than this UNet"):
        check_structure(tiny_sd.unet, "UNet", depth=5)


def test_unusual_models_are_refused_not_computed_differently():
    unet = sd15_like(class_embed_type="timestep")
    with pytest.raises(InvalidRequestError, match="class_embed_type") as info:
        check_structure(unet, "UNet", depth=2)
    assert info.value.field == "cache_interval" and "cache_interval to 1" in info.value.hint
