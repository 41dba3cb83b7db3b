"""Depth control maps from rendered depth (Blender Z or Mist passes), normalised once per shot.

Why one near/far per shot, never per-frame min-max: per-frame normalisation re-maps the grey levels every time the
nearest or farthest visible point changes, so static geometry "breathes" as objects move and the ControlNet video
flickers (dream-textures and the original Text2Video-Zero depth mode both do this; docs/blender.md §4).
A frame whose own depth range is narrow therefore stays low-contrast instead of being stretched to 0..1. When a shot
is rendered in pieces, compute ``depth_range`` over the whole shot once and pass near/far to every piece.

Polarity: ControlNet depth models expect near = bright, far = dark (MiDaS-style). ``near`` is the input value drawn
white and ``far`` the value drawn black; for distances (Z, Mist) near < far, for inverse-depth data near > far.

Background: pixels that are not finite (nan, inf) or lie at/beyond ``background`` (Blender writes ~1e10 where a ray
hits nothing) are drawn black and ignored when near/far are computed.

Sources of float depth: ``.exr`` (raw Z / Mist; channel R when there are several) and ``.npy`` (an H x W array, or
F x H x W for a whole shot). 8- and 16-bit images are read as 0..1 (value / max); an 8/16-bit image that is already a
depth *map* (near bright) needs no normalisation: see the ``depth`` preprocessor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, InvalidRequestError
from ..media.reader import IMAGE_EXTENSIONS, check_frame_range, check_same_size, natural_key, read_image_data

DEFAULT_BACKGROUND = 1e9  # at or beyond this a depth value is "no geometry"; Blender's empty Z is about 1e10
FLOAT_DEPTH_EXTENSIONS = frozenset({".exr", ".npy"})
MAPPINGS = ("linear", "inverse")
PathLike = str | os.PathLike


def valid_mask(depth: np.ndarray, background: float = DEFAULT_BACKGROUND) -> np.ndarray:
    """True where ``depth`` holds geometry: finite and below ``background``."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth < background)


def depth_range(depths: Iterable[np.ndarray], *, invert: bool = True,
                background: float = DEFAULT_BACKGROUND) -> tuple[float, float]:
    """(near, far) over ALL frames of a shot: (min, max) for distances, (max, min) when ``invert`` is False.

    ``depths`` may be a generator, so a long shot can be scanned one frame at a time.
    """
    lo, hi, frames = math.inf, -math.inf, 0
    for depth in depths:
        frames += 1
        depth = np.asarray(depth, dtype=np.float32)
        values = depth[valid_mask(depth, background)]
        if values.size:
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    if lo > hi:
        raise InputError(f"no depth values below the background level {background:g} in any of {frames} frames",
                         hint="check that the depth pass sees geometry, or pass near and far explicitly")
    return (lo, hi) if invert else (hi, lo)


def _as_depth(depth: np.ndarray, number: int) -> np.ndarray:
    """One frame as a 2-D float32 array (first channel of a multi-channel image)."""
    depth = np.asarray(depth)
    if depth.ndim == 3:
        depth = depth[..., 0]
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise InputError(f"depth frame {number} has shape {depth.shape} and type {depth.dtype}",
                         hint="pass H x W float depth arrays")
    return depth.astype(np.float32, copy=False)


def normalize_depth_shot(depths: Sequence[np.ndarray], *, near: float | None = None, far: float | None = None,
                         invert: bool = True, background: float = DEFAULT_BACKGROUND, mapping: str = "linear",
                         dtype: str = "uint8") -> list[np.ndarray]:
    """Map a shot's depth frames to H x W x 3 control maps with ONE near/far: near -> 1 (white), far -> 0 (black).

    Args:
        depths: H x W float depth per frame (H x W x C uses channel 0).
        near: input value drawn white; None takes it from the whole shot (min distance, or max if not ``invert``).
        far: input value drawn black; None takes it from the whole shot.
        invert: True for distances (larger = farther: Z, Mist); False for inverse-depth data (larger = nearer).
        background: values at or beyond it (and nan/inf) are background, drawn black.
        mapping: ``"linear"`` in depth, or ``"inverse"`` (linear in 1/depth, closer to MiDaS' relative inverse
            depth; needs positive distances).
        dtype: ``"uint8"`` (0..255) or ``"float32"`` (0..1).
    """
    if mapping not in MAPPINGS:
        raise InvalidRequestError(f"depth mapping {mapping!r} is unknown", hint=f"use one of {MAPPINGS}",
                                  field="mapping")
    if dtype not in ("uint8", "float32"):
        raise InvalidRequestError(f"depth output type {dtype!r} is unknown", hint="use uint8 or float32", field="dtype")
    frames = [_as_depth(depth, number) for number, depth in enumerate(depths)]
    if not frames:
        raise InputError("no depth frames to normalise", hint="pass at least one depth frame")
    if near is None or far is None:
        auto_near, auto_far = depth_range(frames, invert=invert, background=background)
        near = auto_near if near is None else near
        far = auto_far if far is None else far
    if mapping == "inverse":
        if not invert or near <= 0 or far <= 0:
            raise InvalidRequestError(f"inverse mapping needs positive distances, got near {near:g}, far {far:g}",
                                      hint="use mapping='linear' for this data", field="mapping")
        near, far = 1.0 / near, 1.0 / far
    span = near - far
    out = []
    for depth in frames:
        mask = valid_mask(depth, background)
        values = np.where(mask, depth, far)
        if mapping == "inverse":
            values = 1.0 / np.maximum(values, 1e-12)
        # near == far (a flat shot): every valid pixel is "nearest", so white.
        level = np.ones_like(values) if span == 0 else np.clip((values - far) / span, 0.0, 1.0)
        level = np.where(mask, level, 0.0).astype(np.float32)
        rgb = np.repeat(level[..., None], 3, axis=2)
        out.append(np.floor(rgb * 255.0 + 0.5).astype(np.uint8) if dtype == "uint8" else rgb)
    return out


def read_depth(path: PathLike) -> np.ndarray:
    """One depth frame as H x W float32: raw values from EXR/npy, value / max for 8- and 16-bit images."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read depth array {path}: {exc}", hint="save it with numpy.save") from exc
    else:
        data = read_image_data(path)
        if data.dtype == np.uint8:
            data = data.astype(np.float32) / 255.0
        elif data.dtype == np.uint16:
            data = data.astype(np.float32) / 65535.0
    if data.ndim == 3 and path.suffix.lower() != ".npy":
        data = data[..., 0]
    if data.ndim != 2:
        raise InputError(f"depth file {path} has shape {data.shape}, expected H x W",
                         hint="save one 2-D depth array per frame")
    return data.astype(np.float32, copy=False)


def is_float_depth_source(path: PathLike) -> bool:
    """True when ``path`` is (or is a folder of) .exr / .npy files, i.e. raw depth that needs normalising."""
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in FLOAT_DEPTH_EXTENSIONS for p in path.iterdir() if not p.name.startswith("."))
    return path.suffix.lower() in FLOAT_DEPTH_EXTENSIONS


def _depth_source(path: Path) -> tuple[list[str], Callable[[int], np.ndarray]]:
    """(frame names, loader by frame index) for a depth folder, image or .npy file."""
    if not path.exists():
        raise InputError(f"depth source {path} does not exist", hint="check the path of the depth frames")
    if path.suffix.lower() == ".npy":
        try:
            stack = np.load(path, allow_pickle=False, mmap_mode="r")  # memory-mapped: frames load on demand
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read depth array {path}: {exc}", hint="save it with numpy.save") from exc
        if stack.ndim not in (2, 3):
            raise InputError(f"depth array {path} has shape {stack.shape}", hint="save H x W or F x H x W")
        stack = stack[None] if stack.ndim == 2 else stack
        return [f"frame {i} of {path}" for i in range(len(stack))], lambda i: np.array(stack[i], dtype=np.float32)
    if path.is_dir():
        suffixes = IMAGE_EXTENSIONS | {".npy"}
        files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in suffixes), key=lambda p: natural_key(p.name))
        if not files:
            raise InputError(f"no depth frames in folder {path}", hint="export the depth pass as EXR, PNG or .npy")
    else:
        files = [path]
    return [str(file) for file in files], lambda i: read_depth(files[i])


def read_depth_frames(path: PathLike, *, start: int = 0, count: int | None = None) -> list[np.ndarray]:
    """Depth frames ``start .. start+count-1`` of a folder (natural order), an image, or .npy (H x W / F x H x W)."""
    names, load = _depth_source(Path(path))
    n = check_frame_range(path, start, count, len(names))
    frames = [load(i) for i in range(start, start + n)]
    for name, frame in zip(names[start + 1:start + n], frames[1:], strict=True):
        check_same_size(frame, frames[0], name, names[start])
    return frames


def count_depth_frames(path: PathLike) -> int:
    """Number of depth frames in a folder, image or .npy (no pixel data is read for .npy; folders are listed)."""
    return len(_depth_source(Path(path))[0])


def shot_depth_range(path: PathLike, *, invert: bool = True, background: float = DEFAULT_BACKGROUND
                     ) -> tuple[float, float]:
    """``depth_range`` over every frame of a depth source, read one frame at a time (for sub-range renders)."""
    names, load = _depth_source(Path(path))
    return depth_range((load(i) for i in range(len(names))), invert=invert, background=background)
