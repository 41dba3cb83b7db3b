"""Synthetic clips with known motion for the consistency-report tests: a smooth texture moved by exact sub-pixel
shifts (evaluated at the shifted coordinates, so no resampling error), static clips, and folders of PNG frames."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

_RNG = np.random.default_rng(0)
WAVES = [(_RNG.uniform(-0.5, 0.5), _RNG.uniform(-0.5, 0.5), _RNG.uniform(0, 2 * np.pi), _RNG.uniform(10, 30))
         for _ in range(12)]


def texture(height: int, width: int, dx: float = 0.0, dy: float = 0.0, waves=WAVES) -> np.ndarray:
    """An RGB texture whose content is moved by (dx, dy) pixels (right, down): frame(x) = texture(x - d)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    value = np.full((height, width), 127.5)
    for kx, ky, phase, amplitude in waves:
        value += amplitude * np.sin(kx * (x - dx) + ky * (y - dy) + phase) / 2
    rgb = np.stack([value, 255 - value, value * 0.5 + 60], axis=-1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def moving_clip(frames: int, step: tuple[float, float], size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """``frames`` frames of the texture moving ``step`` = (dx, dy) pixels per frame; ``size`` = (width, height)."""
    return [texture(size[1], size[0], step[0] * t, step[1] * t) for t in range(frames)]


def save_clip(folder, frames: list[np.ndarray], prefix: str = "frame_") -> str:
    os.makedirs(folder, exist_ok=True)
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, f"{prefix}{k:06d}.png"))
    return str(folder)
