"""Random draws keyed on (seed, frame index, purpose), so no result depends on chunking or on the frames rendered.

Frame 0 (the anchor) draws its initial noise from ``torch.Generator("cpu").manual_seed(seed)`` exactly as diffusers'
pipelines do, so a still previewed with diffusers is frame 0 of the video. Every other draw gets its own generator,
seeded by a stable hash of (seed, frame, purpose): rendering frames a..b alone, or with another chunk size, draws
the very same numbers for those frames (what lets a render farm split a job).
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, frame: int, purpose: str) -> int:
    """A 63-bit seed that depends only on (seed, frame, purpose); stable across runs, machines and versions."""
    digest = hashlib.sha256(f"t2vz:{seed}:{frame}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def anchor_generator(seed: int) -> torch.Generator:
    """The generator diffusers would use for a still with this seed."""
    return torch.Generator("cpu").manual_seed(seed)


def frame_generator(seed: int, frame: int, purpose: str) -> torch.Generator:
    """A CPU generator private to one frame and one purpose ("renoise", "init", "step", ...)."""
    return torch.Generator("cpu").manual_seed(derive_seed(seed, frame, purpose))


def frame_noise(seed: int, frame: int, purpose: str, shape: tuple[int, ...], *, device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise of ``shape`` for one frame, drawn on the CPU (identical on every device)."""
    noise = torch.randn(shape, generator=frame_generator(seed, frame, purpose), dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)
