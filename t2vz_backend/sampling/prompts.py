"""Text encoding, once per job (docs/method.md §9): one embedding per distinct prompt, never a per-frame list.

Embeddings are also kept between jobs, per text encoder (a warm worker re-encodes neither the usual empty negative
prompt nor a prompt it has seen). Each prompt is encoded alone, batch 1, as diffusers' pipelines do: a batched
encode may round differently, and then a cached row would depend on which prompts shared its batch.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence

import torch

from ..attention.text import TextBatch

CACHE_SIZE = 32  # prompts kept per text encoder (77x768 floats each: 0.2 MB in float32)
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # text encoder -> OrderedDict[key, embedding]


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """CLIP embeddings (n, tokens, dim) of ``prompts``, computed as diffusers' Stable Diffusion pipelines do.

    Padding to ``model_max_length`` with truncation and the attention mask only when the encoder's config asks
    for it — the same tensors diffusers feeds the UNet, which is what makes frame 0 equal a diffusers still.
    """
    tokens = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    mask = tokens.attention_mask.to(device) if getattr(text_encoder.config, "use_attention_mask", False) else None
    embeds = text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
    return embeds.to(dtype=text_encoder.dtype, device=device)


def cached_embedding(tokenizer, text_encoder, prompt: str, device: torch.device) -> torch.Tensor:
    """The (1, tokens, dim) embedding of ``prompt``, from this text encoder's cache or encoded alone now."""
    cache = _CACHE.setdefault(text_encoder, OrderedDict())
    key = (prompt, str(device), tokenizer.model_max_length)
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    embedding = encode_prompts(tokenizer, text_encoder, [prompt], device)
    cache[key] = embedding
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return embedding


class PromptTable:
    """Embeddings of a job's distinct prompts and the per-frame lookup that builds branch-major batches."""

    def __init__(self, tokenizer, text_encoder, device: torch.device, *, negative: str, prompts: Sequence[str],
                 per_frame: Sequence[str] = ()) -> None:
        distinct = list(dict.fromkeys([negative, *prompts, *per_frame]))
        self._rows = {text: cached_embedding(tokenizer, text_encoder, text, device) for text in distinct}
        self.negative = negative
        self.per_frame = list(per_frame)
        self.prompt = prompts[0] if prompts else ""

    def key(self, frame: int) -> str:
        """The prompt frame ``frame`` is conditioned on."""
        return self.per_frame[frame] if self.per_frame else self.prompt

    def cond(self, frame: int) -> torch.Tensor:
        return self._rows[self.key(frame)]

    def uncond(self) -> torch.Tensor:
        return self._rows[self.negative]

    def stack(self, layout: Sequence[str], key: str) -> torch.Tensor:
        """The branch rows of one frame conditioned on ``key``, in ``layout`` order ("cond" or "uncond")."""
        return torch.cat([self._rows[key] if branch == "cond" else self.uncond() for branch in layout])

    def batch(self, layout: Sequence[str], frames: Sequence[int]) -> TextBatch:
        """The text of a call on ``frames``: rows for each frame in each branch of ``layout``, branch-major, and
        each frame's prompt, so text attention can project each distinct stack once per job."""
        layout = tuple(layout)
        rows = [self.cond(frame) if branch == "cond" else self.uncond() for branch in layout for frame in frames]
        return TextBatch(torch.cat(rows), len(layout), tuple((layout, self.key(frame)) for frame in frames),
                         lambda key: self.stack(*key))
