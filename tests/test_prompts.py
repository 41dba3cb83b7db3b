"""Prompt embeddings: encoded alone (as diffusers does), kept per text encoder between jobs."""

from __future__ import annotations

import torch

from t2vz_backend.sampling import prompts
from t2vz_backend.sampling.prompts import PromptTable, encode_prompts


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


def test_a_batch_names_each_frames_stack(tiny_sd):
    model = tiny_sd
    table = PromptTable(model.tokenizer, model.text_encoder, model.device, negative="blurry", prompts=["a fox"],
                        per_frame=["a fox", "a cat", "a fox"])
    batch = table.batch(("uncond", "cond"), [0, 1, 2])
    assert batch.branches == 2 and batch.embeds.shape[0] == 6
    assert batch.keys[0] == batch.keys[2] != batch.keys[1]
    for frame, key in enumerate(batch.keys):  # a stack is exactly the one-frame batch of a frame with that key
        assert torch.equal(batch.stack(key), table.batch(("uncond", "cond"), [frame]).embeds)
    pix2pix = table.batch(("cond", "uncond", "uncond"), [0])
    assert pix2pix.keys[0] != batch.keys[0]  # the same prompt in another branch layout is another stack
