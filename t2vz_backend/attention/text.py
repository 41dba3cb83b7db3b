"""Text cross-attention (``attn2``) with keys/values projected once per job (docs/method.md §4.5).

The text keys/values of a layer depend only on the layer and the prompt embeddings, and a job has a handful of
distinct prompts, so projecting them from a (G·f, 77, dim) batch at every step and for every frame (what the stock
processor does) repeats the same work G·f·steps times. Here a call's text comes as a :class:`TextBatch`: which
prompt *stack* each frame uses (the G branch rows of one frame, e.g. [negative, prompt]) and how to build it. The
processor projects each stack once per job and layer, keeps it, and folds all frames of a branch that share a stack
into one query sequence (softmax is per query row, so this is exactly per-frame attention).

Exactness: a stack is projected from the same contiguous (G, 77, dim) tensor a single-frame call holds, so the
anchor's call computes bit for bit what diffusers' ``AttnProcessor2_0`` computes for a still. Anything the cache is
not sure about — a text tensor other than the batch the loop announced, an attention mask, unusual module options —
goes to the layer's original processor unchanged: the cache can only ever skip work, never change what is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

from .sdpa import plain_sd_attention, sdpa, split_heads

MAX_STACKS = 8  # distinct prompt stacks cached per job; more (many per-frame prompts) are projected per call


@dataclass(frozen=True)
class TextBatch:
    """The text of one branch-major UNet call: ``embeds`` (G·f, tokens, dim) and, per frame, its stack key."""

    embeds: torch.Tensor
    branches: int
    keys: tuple[Hashable, ...]  # one per frame of the call; equal keys ⇔ equal stacks (layout and prompt)
    stack: Callable[[Hashable], torch.Tensor]  # key → (G, tokens, dim), the rows of one frame, branch order


class TextKVCache:
    """Per-job store of projected text K/V, keyed by (layer, stack key); at most ``MAX_STACKS`` keys."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, Hashable], tuple[torch.Tensor, torch.Tensor]] = {}
        self.keys: set[Hashable] = set()
        self.projections = 0  # stacks projected (tests and benchmarks read it)

    def clear(self) -> None:
        self.entries.clear()
        self.keys.clear()
        self.projections = 0

    def get(self, layer: str, key: Hashable, attn, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries.get((layer, key))
        if entry is None:
            stack = batch.stack(key)
            entry = (split_heads(attn.to_k(stack), attn.heads), split_heads(attn.to_v(stack), attn.heads))
            self.projections += 1
            if key in self.keys or len(self.keys) < MAX_STACKS:
                self.keys.add(key)
                self.entries[(layer, key)] = entry
        return entry


class TextAttnProcessor:
    """SDPA text cross-attention against per-job cached K/V; the original processor for anything else."""

    def __init__(self, name: str, state, original) -> None:
        self.name = name
        self.state = state  # CrossFrameState: .text (the current TextBatch), .text_cache, .scope
        self.original = original

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        batch: TextBatch | None = self.state.text
        if (batch is None or encoder_hidden_states is not batch.embeds or attention_mask is not None or args
                or kwargs or hidden_states.ndim != 3 or not plain_sd_attention(attn)
                or hidden_states.shape[0] != batch.branches * len(batch.keys)):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        g, f = batch.branches, len(batch.keys)
        rows, tokens, _ = hidden_states.shape
        query = attn.to_q(hidden_states)
        layer = self.state.scope + self.name
        groups = _groups(batch.keys)
        if len(groups) == 1:  # the usual case: one prompt for every frame of the call, no copies
            key, value = self.state.text_cache.get(layer, batch.keys[0], attn, batch)
            out = self._attend(query.view(g, f * tokens, attn.heads, -1), key, value, attn.scale)
        else:  # per-frame prompts: attend each group of frames that share a stack, then put the rows back
            per_frame = query.view(g, f, tokens, -1)
            out = torch.empty_like(per_frame)
            for stack_key, index in groups:
                key, value = self.state.text_cache.get(layer, stack_key, attn, batch)
                q = per_frame[:, index].reshape(g, len(index) * tokens, attn.heads, -1)
                out[:, index] = self._attend(q, key, value, attn.scale).view(g, len(index), tokens, -1)
        out = attn.to_out[0](out.reshape(rows, tokens, -1).to(query.dtype))
        return attn.to_out[1](out)

    def _attend(self, q: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> torch.Tensor:
        """(G, n, h, d) queries against (G, h, 77, d) K/V → (G, n, h·d)."""
        g, n = q.shape[:2]
        out = sdpa(q.transpose(1, 2), key, value, scale)
        return out.transpose(1, 2).reshape(g, n, -1)


def _groups(keys: Sequence[Hashable]) -> list[tuple[Hashable, list[int]]]:
    found: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        found.setdefault(key, []).append(i)
    return list(found.items())
