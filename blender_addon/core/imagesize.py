"""Read an image's pixel size from its header, without decoding it (no bpy, no PIL).

Blender fills ``StripElement.orig_width`` only once it has loaded a frame, which a headless run may never do, so the
size check of source strips reads PNG and JPEG headers directly; other formats return None (the check falls back
to what Blender knows).
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry the size (baseline, progressive, ...), not DHT (C4) / JPG (C8) / DAC (CC).
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG file; None for other formats or unreadable files."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(PNG_SIGNATURE) and head[12:16] == b"IHDR":
                return struct.unpack(">II", head[16:24])
            if head.startswith(b"\xff\xd8"):
                f.seek(2)
                return _jpeg_size(f)
    except OSError:
        return None
    return None


def _jpeg_size(f) -> tuple[int, int] | None:
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if marker in SOF_MARKERS:
            data = f.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height
        f.seek(length - 2, 1)
