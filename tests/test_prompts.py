"""Prompt embeddings: encoded alone (as diffusers does), kept per text encoder between jobs."""

from __future__ import annotations

import torch

from t2vz_backend import prompts
from t2vz_backend.prompts import PromptTable, encode_prompts


def count_calls(module) -> tuple[list, object]:
    calls: list = []
    return calls, module.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))


def test_a_second_job_reuses_the_embeddings(tiny_sd):
    model = tiny_sd
    prompts._CACHE.pop(model.text_encoder, None)
    calls, hook = count_calls(model.text_encoder)
    try:
        first = PromptTable(model.tokenizer, model.text_encoder, model.device, negative="", prompts=["a red fox"])
        assert calls == [1, 1]  # each prompt alone, batch 1
        second = PromptTable(model.tokenizer, model.text_encoder, model.device, negative="",
                             prompts=["a blue fox"])
        assert calls == [1, 1, 1]  # only the new prompt; the empty negative prompt came from the cache
    finally:
        hook.remove()
    assert torch.equal(second.uncond(), first.uncond())
    alone = encode_prompts(model.tokenizer, model.text_encoder, ["a blue fox"], model.device)
    assert torch.equal(second.cond(0), alone)


def test_the_cache_is_bounded(tiny_sd, monkeypatch):
    model = tiny_sd
    monkeypatch.setattr(prompts, "CACHE_SIZE", 3)
    prompts._CACHE.pop(model.text_encoder, None)
    for n in range(5):
        prompts.cached_embedding(model.tokenizer, model.text_encoder, f"prompt {n}", model.device)
    assert [key[0] for key in prompts._CACHE[model.text_encoder]] == ["prompt 2", "prompt 3", "prompt 4"]
