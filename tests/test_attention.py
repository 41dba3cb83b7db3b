"""Cross-frame attention on a bare diffusers Attention module and on the tiny UNet."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from t2vz_backend.attention.cross_frame import (
    CrossFrameAttnProcessor,
    CrossFrameState,
    cross_frame_attention,
    self_attention_names,
    verify_installed,
)
from t2vz_backend.errors import T2VZError


def _attention() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def _plain(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    return AttnProcessor2_0()(attn, x)


def _cross(attn: Attention, anchor: torch.Tensor, others: torch.Tensor, branches: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    state = CrossFrameState()
    proc = CrossFrameAttnProcessor("layer", state)
    with state.recording(branches):
        out_anchor = proc(attn, anchor)
    with state.replaying(branches):
        out_others = proc(attn, others)
    return out_anchor, out_others


@pytest.mark.parametrize("branches", [1, 2, 3])
def test_identical_frames_equal_plain_self_attention(branches):
    attn = _attention()
    anchor = torch.randn(branches, 10, 16)
    frames = 3
    others = anchor.repeat_interleave(frames, dim=0)  # branch-major: every frame equals its branch's anchor
    out_anchor, out_others = _cross(attn, anchor, others, branches)
    with torch.no_grad():
        torch.testing.assert_close(out_anchor, _plain(attn, anchor))
        torch.testing.assert_close(out_others, _plain(attn, others), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("branches", [1, 2, 3])
def test_keys_and_values_come_from_the_anchor_of_the_same_branch(branches):
    attn = _attention()
    anchor = torch.randn(branches, 10, 16)
    others = torch.randn(branches * 2, 10, 16)
    _, out = _cross(attn, anchor, others, branches)
    with torch.no_grad():
        for row in range(branches * 2):
            g = row // 2
            q = attn.to_q(others[row]).view(10, 2, 8).transpose(0, 1)
            k = attn.to_k(anchor[g]).view(10, 2, 8).transpose(0, 1)
            v = attn.to_v(anchor[g]).view(10, 2, 8).transpose(0, 1)
            expected = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, dim=-1) @ v
            expected = attn.to_out[0](expected.transpose(0, 1).reshape(10, 16))
            torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=1e-5)
        # and it is not ordinary self-attention of each frame
        assert not torch.allclose(out, _plain(attn, others), atol=1e-3)


@pytest.mark.parametrize("branches", [1, 2, 3])
def test_anchor_inside_the_first_chunk_equals_a_separate_anchor_pass(branches):
    """exact_anchor=False: one record call holds the anchor and more frames; K/V still come from the anchor rows."""
    attn = _attention()
    anchor = torch.randn(branches, 10, 16)
    others = torch.randn(branches * 3, 10, 16)
    separate_anchor, separate_others = _cross(attn, anchor, others, branches)
    # branch-major batch whose first frame in every branch is the anchor
    joint = torch.cat([torch.cat([anchor[g:g + 1], others[g * 3:(g + 1) * 3]]) for g in range(branches)])
    state = CrossFrameState()
    proc = CrossFrameAttnProcessor("layer", state)
    with state.recording(branches):
        out = proc(attn, joint).view(branches, 4, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(out[:, 0], separate_anchor, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(out[:, 1:].reshape(-1, 10, 16), separate_others, atol=1e-6, rtol=1e-6)
    key, _ = state.cache["layer"]
    assert key.shape[0] == branches  # projected from the anchor rows only, and kept for later chunks


def test_replay_without_record_is_refused():
    state = CrossFrameState()
    with pytest.raises(RuntimeError), state.replaying(2):
        pass


def test_processors_installed_on_self_attention_only_and_restored(tiny_sd):
    unet = tiny_sd.unet
    before = dict(unet.attn_processors)
    with cross_frame_attention({"unet": unet}, CrossFrameState()):
        now = unet.attn_processors
        for name, proc in now.items():
            assert isinstance(proc, CrossFrameAttnProcessor) == name.endswith("attn1.processor")
        assert self_attention_names(unet)
    assert unet.attn_processors == before


def test_processors_restored_after_an_exception(tiny_sd):
    unet = tiny_sd.unet
    before = dict(unet.attn_processors)
    with pytest.raises(ZeroDivisionError), cross_frame_attention({"unet": unet}, CrossFrameState()):
        1 / 0  # noqa: B018
    assert unet.attn_processors == before


def test_replaced_processors_are_detected_not_silently_lost(tiny_sd):
    unet = tiny_sd.unet
    before = dict(unet.attn_processors)
    with cross_frame_attention({"unet": unet}, CrossFrameState()):
        verify_installed({"unet": unet})
        unet.set_attn_processor(AttnProcessor2_0())  # what enable_attention_slicing/xformers would do
        with pytest.raises(T2VZError, match="replaced"):
            verify_installed({"unet": unet})
    assert unet.attn_processors == before


def test_nested_installation_is_refused(tiny_sd):
    unet = tiny_sd.unet
    with cross_frame_attention({"unet": unet}, CrossFrameState()):
        with pytest.raises(T2VZError, match="already installed"), \
                cross_frame_attention({"unet": unet}, CrossFrameState()):
            pass
