"""Cross-frame attention (Text2Video-Zero, Sect. 3.2 of the paper; docs/method.md §4, §5).

Every self-attention layer (``attn1``) of the UNet and of each ControlNet lets each frame's queries attend to the
keys/values of the **anchor frame of its own guidance branch** (frame 0). Text cross-attention (``attn2``) computes
what it always did, with its keys/values projected once per job (attention/text.py). The batch layout is never
guessed from the batch size: the caller says how many branches there are.

The loop is step-major (docs/method.md §5). At each step the first call runs in ``record`` mode: its batch holds the
anchor as the first frame of every branch, optionally followed by more frames. Keys/values are projected from the
anchor rows only, every row attends to them (for the anchor itself that is ordinary self-attention), and they are
left in a cache. Any further chunks of frames run in ``replay`` mode against that cache. Nothing of the anchor is
recomputed per chunk, and because the anchor never looks at other frames, chunking cannot change the result beyond
the float rounding of differently sized batches. Running the anchor inside the first chunk, not in a call of its
own, saves one UNet call per step: a 2-row call costs far more than its share of a batched one (docs/benchmarks.md).

Notation: G = guidance branches (1 without CFG, 2 with CFG, 3 for Instruct-Pix2Pix), f = frames in the current
batch, N = tokens per frame, h = heads, d = head dim. Batches are branch-major: rows [g*f, (g+1)*f) are branch g.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from ..errors import T2VZError
from .sdpa import plain_sd_attention, sdpa, split_heads
from .text import TextAttnProcessor, TextBatch, TextKVCache

OFF, RECORD, REPLAY = "off", "record", "replay"


@dataclass
class CrossFrameState:
    """Shared by every cross-frame processor of one installation: the current mode, layout and anchor K/V cache."""

    branches: int = 2
    mode: str = OFF
    scope: str = ""  # which model call is running: one ControlNet may serve two controls with different maps
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    text: TextBatch | None = None  # the text of the model call in progress (set by the noise predictor)
    text_cache: TextKVCache = field(default_factory=TextKVCache)  # per-job text K/V of every attn2
    per_frame: bool = False  # baseline (pipelines/baseline.py): every frame attends to itself only, as a still

    @contextlib.contextmanager
    def recording(self, branches: int) -> Iterator[None]:
        """Run a batch whose first frame in every branch is the anchor: K/V from the anchor rows, kept for replay."""
        self.cache.clear()
        self.mode, self.branches = RECORD, branches
        try:
            yield
        finally:
            self.mode = OFF

    @contextlib.contextmanager
    def replaying(self, branches: int) -> Iterator[None]:
        """Run a chunk of non-anchor frames (``branches`` * f rows) against the recorded anchor K/V."""
        if not self.cache and not self.per_frame:
            raise RuntimeError("replay without a recorded anchor pass")  # an internal ordering bug
        self.mode, self.branches = REPLAY, branches
        try:
            yield
        finally:
            self.mode = OFF


class CrossFrameAttnProcessor:
    """SDPA self-attention whose keys/values come from the anchor frame of the same guidance branch."""

    def __init__(self, name: str, state: CrossFrameState) -> None:
        self.name = name
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise T2VZError(f"{self.name}: cross-frame attention was installed on a cross-attention layer")
        _check_supported(attn, hidden_states, self.name)
        state = self.state
        rows, tokens, _ = hidden_states.shape
        heads = attn.heads
        query = attn.to_q(hidden_states)
        if state.mode == OFF or state.per_frame:  # outside the loop, or a baseline: per-row self-attention
            key = split_heads(attn.to_k(hidden_states), heads)
            value = split_heads(attn.to_v(hidden_states), heads)
            out = sdpa(split_heads(query, heads), key, value, attn.scale)
            out = out.transpose(1, 2).reshape(rows, tokens, -1)
        else:
            branches = state.branches
            if rows % branches:
                raise RuntimeError(f"{self.name}: {rows} rows do not split into {branches} branches")
            per_branch = rows // branches
            if state.mode == REPLAY:
                key, value = state.cache[state.scope + self.name]  # (G, h, N, d), projected once from the anchor
            else:  # RECORD: row 0 of every branch is the anchor; project K/V from those rows only
                anchor = hidden_states.view(branches, per_branch, tokens, -1)[:, 0] if per_branch > 1 else hidden_states
                key = split_heads(attn.to_k(anchor), heads)
                value = split_heads(attn.to_v(anchor), heads)
                state.cache[state.scope + self.name] = (key, value)
            # Fold every frame of a branch into one long query sequence: softmax is per query row, so attending
            # (f*N) queries to the anchor's N keys is exactly f separate per-frame attentions, in one SDPA call.
            q = query.view(branches, per_branch * tokens, heads, -1).transpose(1, 2)
            out = sdpa(q, key, value, attn.scale)
            out = out.transpose(1, 2).reshape(rows, tokens, -1)
        out = attn.to_out[0](out.to(query.dtype))
        return attn.to_out[1](out)


def _check_supported(attn, hidden_states: torch.Tensor, name: str) -> None:
    """Refuse module options the stock SD UNet does not use, instead of silently computing something else."""
    if hidden_states.ndim != 3:
        raise T2VZError(f"{name}: cross-frame attention expects (batch, tokens, channels) input")
    if not plain_sd_attention(attn):
        raise T2VZError(f"{name}: this attention layer uses options cross-frame attention does not implement",
                        hint="use a Stable Diffusion 1.5-class UNet")


def self_attention_names(model: torch.nn.Module) -> list[str]:
    """Processor names of the self-attention layers (``...attn1.processor``) of a UNet or ControlNet."""
    return [name for name in model.attn_processors if name.endswith("attn1.processor")]


def cross_attention_names(model: torch.nn.Module) -> list[str]:
    """Processor names of the text cross-attention layers (``...attn2.processor``)."""
    return [name for name in model.attn_processors if name.endswith("attn2.processor")]


@contextlib.contextmanager
def cross_frame_attention(models: dict[str, torch.nn.Module], state: CrossFrameState) -> Iterator[CrossFrameState]:
    """Install cross-frame processors on every ``attn1`` of ``models`` (name → UNet/ControlNet), text processors
    with per-job K/V on every ``attn2``, and always restore the originals.

    The original processors are saved and put back in ``finally``, so an exception (or a cancel) never leaves a
    model patched. ``verify_installed`` lets the loop detect code that swapped processors mid-job.
    """
    saved: dict[str, dict] = {}
    try:
        for prefix, model in models.items():
            current = model.attn_processors
            if any(isinstance(p, CrossFrameAttnProcessor) for p in current.values()):
                raise T2VZError(f"{prefix}: cross-frame attention is already installed on this model",
                                hint="run one job per model at a time")
            saved[prefix] = current
            new = dict(current)
            for name in self_attention_names(model):
                new[name] = CrossFrameAttnProcessor(f"{prefix}.{name}", state)
            for name in cross_attention_names(model):
                new[name] = TextAttnProcessor(f"{prefix}.{name}", state, current[name])
            model.set_attn_processor(new)
        yield state
    finally:
        for prefix, processors in saved.items():
            models[prefix].set_attn_processor(processors)
        state.cache.clear()
        state.text_cache.clear()
        state.text = None
        state.mode = OFF


def verify_installed(models: dict[str, torch.nn.Module]) -> None:
    """Raise if something (attention slicing, xformers, ``set_default_attn_processor``) replaced our processors.

    Those switches call ``set_attn_processor`` and would silently turn cross-frame attention off, which shows up
    only as flicker (diffusers issue #2898). Memory options would belong inside our processor.
    Called every step, so it reads the ``attn1`` modules' processors directly from a list made once per model.
    """
    for prefix, model in models.items():
        for name, module in _self_attention_modules(model):
            if not isinstance(module.processor, CrossFrameAttnProcessor):
                raise T2VZError(
                    f"{prefix}.{name}: cross-frame attention was replaced during the job",
                    hint="do not enable attention slicing/xformers on a model in use; t2vz slices attention itself",
                )


_ATTN1_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _self_attention_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    if model not in _ATTN1_MODULES:
        _ATTN1_MODULES[model] = [(name, module) for name, module in model.named_modules()
                                 if name.endswith("attn1") and hasattr(module, "processor")]
    return _ATTN1_MODULES[model]
