"""A test helper: which text cross-attention calls used the per-job K/V cache, and which fell back."""

from __future__ import annotations

from t2vz_backend.attention.text import TextAttnProcessor


class FallbackCounter:
    """Installed with monkeypatch: counts, per model prefix, the attn2 calls that went to the original processor."""

    def __init__(self, monkeypatch) -> None:
        self.fallbacks: dict[str, int] = {}
        self.cached: dict[str, int] = {}
        real = TextAttnProcessor.__call__
        counter = self

        def counting(proc, attn, hidden, *args, **kwargs):
            prefix = proc.name.split(".")[0]
            before = proc.original
            calls = []
            proc.original = lambda *a, **k: calls.append(1) or before(*a, **k)
            try:
                return real(proc, attn, hidden, *args, **kwargs)
            finally:
                proc.original = before
                bucket = counter.fallbacks if calls else counter.cached
                bucket[prefix] = bucket.get(prefix, 0) + 1

        monkeypatch.setattr(TextAttnProcessor, "__call__", counting)
