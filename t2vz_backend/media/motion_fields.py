"""Per-frame displacement fields and occlusion masks on disk, read one frame at a time (docs/camera_motion.md).

Formats (one entry per frame of the video, frame 0 first; every entry the same size):

- displacement fields, pixels, ``source = p + d_k(p)`` (the point of frame 0 that shows what pixel p of frame k
  shows): a ``.npy`` stack of shape (frames, H, W, 2), float (float32 is what the add-on writes), loaded with
  ``allow_pickle=False`` and memory-mapped; or a folder of EXR images (R = dx, G = dy) or 16-bit PNG images
  (R, G = round(d·64) + 32768: ±512 px in steps of 1/64 px). 8-bit images cannot hold displacements and are refused.
- occlusion masks, where frame k shows what frame 0 does not: a ``.npy`` stack (frames, H, W) of booleans or
  numbers (nonzero = disoccluded), or a folder of images (bright = disoccluded).

Values must be finite; the first bad frame is named in the error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .reader import list_images, read_image_data

PNG_OFFSET = 32768  # 16-bit PNG displacement: value = round(d * PNG_SCALE) + PNG_OFFSET
PNG_SCALE = 64.0


class FieldStack:
    """Frames of a displacement (``kind="flow"``) or occlusion (``kind="occlusion"``) source, read on demand."""

    def __init__(self, path: str, kind: str, field: str) -> None:
        self.path, self.kind, self.field = path, kind, field
        self._array: np.ndarray | None = None
        self._files: list[Path] = []
        if Path(path).is_dir():
            self._files = list_images(path)
            first = self._decode(0)
            self.count, self.size = len(self._files), (first.shape[1], first.shape[0])
        elif path.lower().endswith(".npy"):
            self._array = self._load_npy()
            self.count, self.size = self._array.shape[0], (self._array.shape[2], self._array.shape[1])
        else:
            raise InputError(f"{field} {path!r} is neither a .npy stack nor a folder of images", field=field,
                             hint="give a float32 .npy of shape (frames, H, W, 2) or a folder of EXR/16-bit PNG maps"
                             if kind == "flow" else "give a .npy of shape (frames, H, W) or a folder of masks")

    def _load_npy(self) -> np.ndarray:
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:  # unreadable, truncated, or an object array (pickle)
            raise InputError(f"cannot read {self.field} {self.path!r}: {exc}", field=self.field,
                             hint="save a plain numeric array with numpy.save (no pickled objects)") from exc
        shape = "(frames, H, W, 2)" if self.kind == "flow" else "(frames, H, W)"
        good = (array.ndim == 4 and array.shape[3] == 2) if self.kind == "flow" else array.ndim == 3
        if not good or min(array.shape) < 1:
            raise InputError(f"{self.field} {self.path!r} has shape {array.shape}, not {shape}", field=self.field,
                             hint=f"save one map per frame, stacked as {shape}")
        numeric = np.issubdtype(array.dtype, np.floating) or (self.kind == "occlusion" and (
            array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)))
        if not numeric:
            raise InputError(f"{self.field} {self.path!r} holds {array.dtype} values", field=self.field,
                             hint="save displacements as float32" if self.kind == "flow" else "save booleans or 0/1")
        return array

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k``: (H, W, 2) float32 pixels for a flow, (H, W) bool for an occlusion mask."""
        if not 0 <= k < self.count:
            raise InputError(f"{self.field} {self.path!r} has {self.count} frames, frame {k} needs one",
                             field=self.field, hint="give one map per frame of the video")
        data = np.array(self._array[k]) if self._array is not None else self._decode(k)  # a copy
        if (data.shape[1], data.shape[0]) != self.size:
            raise InputError(f"{self.field}: frame {k} is {data.shape[1]}x{data.shape[0]}, frame 0 is "
                             f"{self.size[0]}x{self.size[1]}", field=self.field, hint="give every frame one size")
        if self.kind == "occlusion":
            return np.asarray(data, dtype=np.float32) > 0.5 if data.dtype.kind == "f" else data != 0
        flow = np.asarray(data, dtype=np.float32)
        if not np.isfinite(flow).all():
            raise InputError(f"{self.field}: the displacement of frame {k} has values that are not finite numbers",
                             field=self.field, hint="replace NaN/inf (e.g. where there is no geometry) by a "
                             "displacement, and mark such pixels in motion_occlusion")
        return flow

    def _decode(self, k: int) -> np.ndarray:
        file = self._files[k]
        image = read_image_data(file)
        if self.kind == "occlusion":
            grey = image if image.ndim == 2 else image[..., :3].mean(axis=2)
            top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
            return grey.astype(np.float32) / top
        if image.ndim != 3 or image.shape[2] < 2:
            raise InputError(f"{self.field}: {file.name} has no second channel for dy", field=self.field,
                             hint="store dx in red and dy in green")
        if image.dtype == np.uint16:
            return (image[..., :2].astype(np.float32) - PNG_OFFSET) / PNG_SCALE
        if image.dtype.kind == "f":
            return image[..., :2].astype(np.float32)
        raise InputError(f"{self.field}: {file.name} is {image.dtype} ({os.path.splitext(file.name)[1]}), which "
                         "cannot hold displacements", field=self.field, hint="save EXR or 16-bit PNG maps")
