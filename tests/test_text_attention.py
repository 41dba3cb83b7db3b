"""Text cross-attention with keys/values projected once per job: same result as the stock processor, less work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from t2vz_backend.attention import text as text_attention
from t2vz_backend.attention.cross_frame import CrossFrameState, cross_attention_names, cross_frame_attention
from t2vz_backend.attention.text import TextAttnProcessor, TextBatch
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import TextToVideoRequest
from t2vz_backend.sampling.context import JobContext

TOKENS, TEXT_DIM = 7, 12


def _attention() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=16, cross_attention_dim=TEXT_DIM, heads=2, dim_head=8).eval()


def _table(names: list[str]) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {name: torch.randn(1, TOKENS, TEXT_DIM) for name in names}


def _batch(rows: dict[str, torch.Tensor], layout: tuple[str, ...], keys: tuple[str, ...]) -> TextBatch:
    """Branch-major text like PromptTable.batch: branch "neg" is the negative prompt, "cond" the frame's own."""
    def row(branch: str, key: str) -> torch.Tensor:
        return rows[key] if branch == "cond" else rows["neg"]

    embeds = torch.cat([row(branch, key) for branch in layout for key in keys])
    return TextBatch(embeds, len(layout), keys, lambda key: torch.cat([row(branch, key) for branch in layout]))


class _Spy:
    """The layer's original processor, counting the calls it gets."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return AttnProcessor2_0()(*args, **kwargs)


def _announce(state: CrossFrameState, batch: TextBatch) -> TextBatch:
    state.text = batch
    return batch


def _processor(state: CrossFrameState) -> tuple[TextAttnProcessor, _Spy]:
    spy = _Spy()
    return TextAttnProcessor("layer", state, spy), spy


@torch.no_grad()
@pytest.mark.parametrize("layout", [("cond",), ("neg", "cond"), ("cond", "neg", "neg")])
@pytest.mark.parametrize("keys", [("a",), ("a", "a", "a"), ("a", "b", "a", "c")])
def test_equals_the_stock_processor(layout, keys):
    attn, rows = _attention(), _table(["neg", "a", "b", "c"])
    batch = _batch(rows, layout, keys)
    hidden = torch.randn(len(layout) * len(keys), 10, 16)
    state = CrossFrameState(text=batch)
    proc, spy = _processor(state)
    out = proc(attn, hidden, encoder_hidden_states=batch.embeds)
    assert spy.calls == 0  # the cached path ran
    expected = AttnProcessor2_0()(attn, hidden, encoder_hidden_states=batch.embeds)
    if len(keys) == 1:  # one frame: the very computation of a diffusers still, bit for bit
        assert torch.equal(out, expected)
    else:
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_each_stack_is_projected_once_per_layer_and_job():
    attn, rows = _attention(), _table(["neg", "a", "b"])
    calls = []
    attn.to_k.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    state = CrossFrameState()
    proc, _ = _processor(state)
    for keys in [("a",), ("a", "a", "b"), ("b", "a"), ("a", "b", "b", "a")] * 3:  # 12 calls, 2 distinct prompts
        state.text = _batch(rows, ("neg", "cond"), keys)
        proc(attn, torch.randn(2 * len(keys), 10, 16), encoder_hidden_states=state.text.embeds)
    assert calls == [2, 2]  # one (negative, prompt) stack per prompt, never the per-frame batch
    assert state.text_cache.projections == 2
    proc.name = "another layer"  # its own K/V: a layer never reads another's
    batch = _announce(state, _batch(rows, ("neg", "cond"), ("a",)))
    proc(attn, torch.randn(2, 10, 16), encoder_hidden_states=batch.embeds)
    assert calls == [2, 2, 2] and state.text_cache.projections == 3


@torch.no_grad()
def test_anything_unannounced_goes_to_the_original_processor():
    attn, rows = _attention(), _table(["neg", "a"])
    batch = _batch(rows, ("neg", "cond"), ("a", "a"))
    hidden = torch.randn(4, 10, 16)
    state = CrossFrameState()
    proc, spy = _processor(state)
    expected = AttnProcessor2_0()(attn, hidden, encoder_hidden_states=batch.embeds)
    torch.testing.assert_close(proc(attn, hidden, encoder_hidden_states=batch.embeds), expected)  # no batch told
    state.text = batch
    other = batch.embeds.clone()  # equal values, but not the tensor the loop announced
    torch.testing.assert_close(proc(attn, hidden, encoder_hidden_states=other), expected)
    mask = torch.zeros(4, 1, TOKENS)
    proc(attn, hidden, encoder_hidden_states=batch.embeds, attention_mask=mask)
    assert spy.calls == 3 and state.text_cache.projections == 0


@torch.no_grad()
def test_many_distinct_prompts_stay_correct_beyond_the_cache_bound(monkeypatch):
    monkeypatch.setattr(text_attention, "MAX_STACKS", 2)
    attn = _attention()
    keys = ("a", "b", "c", "d", "e")
    rows = _table(["neg", *keys])
    state = CrossFrameState(text=_batch(rows, ("neg", "cond"), keys))
    proc, _ = _processor(state)
    hidden = torch.randn(10, 10, 16)
    for _ in range(2):
        out = proc(attn, hidden, encoder_hidden_states=state.text.embeds)
        expected = AttnProcessor2_0()(attn, hidden, encoder_hidden_states=state.text.embeds)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert len(state.text_cache.keys) == 2 and state.text_cache.projections == 2 + 2 * 3


def test_installed_on_every_text_layer_and_restored(tiny_sd):
    unet = tiny_sd.unet
    before = dict(unet.attn_processors)
    names = cross_attention_names(unet)
    assert names
    with cross_frame_attention({"unet": unet}, CrossFrameState()):
        now = unet.attn_processors
        assert all(isinstance(now[name], TextAttnProcessor) for name in names)
        assert all(now[name].original is before[name] for name in names)
    assert unet.attn_processors == before


def test_a_job_projects_text_once_per_prompt_and_matches_the_stock_processor(tiny_sd, monkeypatch):
    """End to end: per-frame prompts, chunked; the same frames as with the stock attn2, far fewer projections."""
    request = TextToVideoRequest(output_dir="unused", prompt="a fox", negative_prompt="blurry", frames=4, width=64,
                                 height=64, steps=6, seed=5, chunk_size=2,
                                 frame_prompts=("a fox", "a fox", "a blue fox", "a fox"))
    layers = [module for name, module in tiny_sd.unet.named_modules() if name.endswith("attn2")]
    calls: list[int] = []
    unet_calls: list[int] = []
    hooks = [layer.to_k.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
             for layer in layers]
    hooks.append(tiny_sd.unet.register_forward_pre_hook(lambda m, args: unet_calls.append(1)))
    try:
        cached = JobContext.collecting()
        text_to_video(request, tiny_sd, cached)
        projected = list(calls)
        calls.clear()
        unet_calls.clear()
        monkeypatch.setattr(TextAttnProcessor, "__call__",
                            lambda self, attn, hidden, *args, **kwargs: self.original(attn, hidden, *args, **kwargs))
        stock = JobContext.collecting()
        text_to_video(request, tiny_sd, stock)
    finally:
        for hook in hooks:
            hook.remove()
    assert projected == [2] * (2 * len(layers))  # two distinct prompts, each a (negative, prompt) stack, per layer
    assert len(calls) == len(layers) * len(unet_calls) > 4 * len(projected)  # stock: every layer at every call
    diff = max(int(np.abs(cached.frames[k].astype(int) - stock.frames[k].astype(int)).max()) for k in stock.frames)
    assert diff <= 1  # float rounding of differently sized projections only
    assert np.array_equal(cached.frames[0], stock.frames[0])  # the anchor's calls are the stock computation
    again = JobContext.collecting()
    monkeypatch.undo()
    text_to_video(dataclasses.replace(request, chunk_size=3), tiny_sd, again)
    assert max(int(np.abs(again.frames[k].astype(int) - cached.frames[k].astype(int)).max())
               for k in again.frames) <= 1
