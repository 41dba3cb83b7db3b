"""Exact motion from Blender: the Vector pass as flow fields (quality/flow.py's convention).

Blender's Vector pass (Cycles; the add-on renders it with the scene passes, blender_addon/scene_passes/vectors.py)
stores four values per pixel, in pixels, with y pointing up (Blender's image space):

- ``X, Y``: where the surface seen at this pixel was in the previous frame, relative to here (previous - current);
- ``Z, W``: here relative to where it will be in the next frame (current - next).

So, with y turned to point down, the forward flow of frame t is ``(-Z, W)`` of frame t's file and the backward flow
of frame t+1 is ``(X, -Y)`` of frame t+1's file. The files are single-layer OpenEXR images (channels ``X Y Z W``, or
``R G B A`` from other exporters, or a multilayer file's ``….Vector.X`` …), read with the OpenEXR library. Where no
geometry is (the world background) the vectors are 0: the sky does not move.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import DependencyError, InputError
from .flow import FlowPair

_LAYOUTS = (("X", "Y", "Z", "W"), ("R", "G", "B", "A"))


def read_vector_pass(path: str) -> np.ndarray:
    """One Vector-pass EXR as an H x W x 4 float32 array (X, Y, Z, W), top row first."""
    try:
        import OpenEXR
    except ImportError as exc:
        raise DependencyError("reading Blender's Vector pass needs the OpenEXR library",
                              hint="install it into the backend environment: pip install openexr") from exc
    try:
        with OpenEXR.File(os.fspath(path)) as exr:
            channels = {name: channel.pixels for name, channel in exr.channels().items()}
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot read motion vectors {path}: {exc}",
                         hint="render the Vector pass again (OpenEXR, single layer)") from exc
    names = _vector_channels(channels, path)
    planes = [np.asarray(channels[name], dtype=np.float32) for name in names]
    return np.stack(planes, axis=-1)


def _vector_channels(channels: dict, path: str) -> tuple[str, ...]:
    for layout in _LAYOUTS:
        if all(name in channels for name in layout):
            return layout
    for suffix in ("Vector.", "vector."):
        names = tuple(next((n for n in channels if n.endswith(suffix + axis)), "") for axis in "XYZW")
        if all(names):
            return names
    raise InputError(f"{path} holds no Vector pass (channels: {', '.join(sorted(channels)) or 'none'})",
                     hint="render the Vector pass (View Layer > Passes > Data > Vector) to OpenEXR")


def vector_flows(current: np.ndarray, following: np.ndarray) -> FlowPair:
    """The flows between frame t and t+1 from their Vector-pass arrays (``read_vector_pass``)."""
    forward = np.stack([-current[..., 2], current[..., 3]], axis=-1)
    backward = np.stack([following[..., 0], -following[..., 1]], axis=-1)
    return FlowPair(np.ascontiguousarray(forward), np.ascontiguousarray(backward))


def resize_vectors(vectors: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Vector-pass values for an image of ``size`` = (width, height): resampled (nearest, so no motion is blended
    across an object's edge) and scaled by the change of size along each axis."""
    import cv2

    height, width = vectors.shape[:2]
    if (width, height) == tuple(size):
        return vectors
    scaled = cv2.resize(vectors, tuple(size), interpolation=cv2.INTER_NEAREST)
    factors = np.array([size[0] / width, size[1] / height] * 2, dtype=np.float32)
    return scaled * factors
