"""A minimal PNG writer (numpy + zlib): 8- or 16-bit grey and 8-bit RGB, with no colour management in the way.

Blender's own image writers apply the scene's view transform and display space to what they save; control maps are
data, so they are written byte for byte here. The file appears atomically through the backend's one write path
(``t2vz_backend/media/atomic.py``), so a reader never sees half a frame and a failed write is an ``OutputError``.
Grey 16-bit PNGs read as uint16 in OpenCV and PIL; the backend scales them to 0..1.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..backend.t2vz_backend.media.atomic import write_bytes

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, CRC of tag + data."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an H x W uint8/uint16 grey image or an H x W x 3 uint8 RGB image (top row first)."""
    array = np.asarray(image)
    grey_or_rgb = array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    if array.dtype not in (np.uint8, np.uint16) or not grey_or_rgb or (array.ndim == 3 and array.dtype != np.uint8):
        raise ValueError(f"write H x W uint8/uint16 or H x W x 3 uint8 images, got {array.shape} {array.dtype}")
    height, width = array.shape[:2]
    color_type = 0 if array.ndim == 2 else 2
    bit_depth = 16 if array.dtype == np.uint16 else 8
    rows = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1)  # filter byte 0 (None) per row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + _chunk(b"IEND", b""))


def write_png(path: str, image: np.ndarray) -> str:
    """Write ``image`` (see ``encode_png``) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, encode_png(image))
