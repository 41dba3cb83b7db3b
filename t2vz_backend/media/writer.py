"""Write generated frames (PNG sequences) and previews (MP4 / GIF).

Frame files are named from the GLOBAL frame index, ``frame_000042.png``: a render of frames 40..49 writes the same
names as the full run would, so a partial re-render replaces exactly its own frames. Names are zero-padded to
``digits`` (at least 6 by default, more when the last index needs it), so file order is frame order.

Every file goes through the one atomic write path (media/atomic.py): a reader (Blender's sequencer, a cancelled
job's cleanup) never sees a half-written frame, and a failed write is an ``OutputError`` with a hint. Which folder
a job may write to is decided by service/outputs.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .atomic import atomic_write

PathLike = str | os.PathLike
FRAME_PREFIX = "frame_"
MOVIE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def frame_name(index: int, digits: int = 6) -> str:
    """File name of global frame ``index``: ``frame_000042.png``."""
    return f"{FRAME_PREFIX}{index:0{digits}d}.png"


def to_uint8(frame) -> np.ndarray:
    """A PIL image, a uint8 array or a float array in 0..1 (H x W, H x W x 3/4) as a uint8 array."""
    array = np.asarray(frame)
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        return np.floor(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise TypeError(f"frames must be uint8 or float arrays, got {array.dtype}")


class FrameWriter:
    """Writes frames ``first_index .. first_index + total_frames - 1`` of a run as atomic PNG files."""

    def __init__(self, out_dir: PathLike, *, total_frames: int, first_index: int = 0, digits: int | None = None):
        if total_frames < 1 or first_index < 0:
            raise ValueError(f"need total_frames >= 1 and first_index >= 0, got {total_frames}, {first_index}")
        self.out_dir = Path(out_dir)
        self.first_index = first_index
        self.total_frames = total_frames
        needed = len(str(first_index + total_frames - 1))
        self.digits = max(6, needed) if digits is None else digits
        if self.digits < max(4, needed):
            raise ValueError(f"digits={digits} is too few for frame index {first_index + total_frames - 1}")
        self.written: list[str] = []

    def path_for(self, index: int) -> str:
        """Path of global frame ``index`` (whether written yet or not)."""
        return str(self.out_dir / frame_name(index, self.digits))

    def write(self, frame, index: int | None = None) -> str:
        """Write one frame (array or PIL image) as global frame ``index`` (default: the next one); returns its path."""
        from PIL import Image

        if index is None:
            index = self.first_index + len(self.written)
        if not self.first_index <= index < self.first_index + self.total_frames:
            raise ValueError(f"frame {index} is outside this writer's range {self.first_index}.."
                             f"{self.first_index + self.total_frames - 1}")
        path = Path(self.path_for(index))
        image = Image.fromarray(to_uint8(frame))
        atomic_write(path, lambda temp: image.save(temp, format="PNG"))
        self.written.append(str(path))
        return str(path)


def _load_frames(frames: Sequence) -> list[np.ndarray]:
    """Frames given as paths or arrays, as uint8 RGB arrays of one size."""
    from .reader import read_image, to_rgb8

    out = []
    for number, frame in enumerate(frames):
        array = read_image(frame) if isinstance(frame, (str, os.PathLike)) else to_rgb8(to_uint8(frame))
        if out and array.shape != out[0].shape:
            raise OutputError(f"preview frame {number} is {array.shape[1]}x{array.shape[0]}, frame 0 is "
                              f"{out[0].shape[1]}x{out[0].shape[0]}", hint="write previews of one run only")
        out.append(array)
    return out


def write_preview(frames: Sequence, path: PathLike, fps: float) -> str:
    """Write frames (paths or arrays) as an MP4/MOV/MKV (H.264, else MPEG-4 Part 2) or a GIF, chosen by extension.

    Video is yuv420p, so odd sizes get one edge-replicated row/column. GIF merges identical consecutive frames.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".gif" and suffix not in MOVIE_FORMATS:
        raise OutputError(f"cannot write preview {path}: unknown type {suffix or '(none)'}",
                          hint=f"use one of .gif, {', '.join(MOVIE_FORMATS)}", field="preview")
    if not fps > 0:
        raise OutputError(f"preview frame rate {fps} must be positive", hint="use e.g. 8 fps", field="fps")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write preview {path}: folder {path.parent} does not exist",
                          hint="create the folder first", field="preview")
    arrays = _load_frames(frames)
    if not arrays:
        raise OutputError(f"no frames to write to preview {path}", hint="generate frames first", field="preview")
    if suffix == ".gif":
        atomic_write(path, lambda temp: _write_gif(arrays, temp, fps))
    else:
        atomic_write(path, lambda temp: _write_movie(arrays, temp, MOVIE_FORMATS[suffix], fps))
    return str(path)


def _write_gif(arrays: list[np.ndarray], temp: str, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(array) for array in arrays]
    images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def _write_movie(arrays: list[np.ndarray], temp: str, container_format: str, fps: float) -> None:
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    height, width = arrays[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))  # yuv420p needs even sizes
    try:
        with av.open(temp, mode="w", format=container_format) as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "18"}
            else:
                stream.bit_rate = 8_000_000
            for array in arrays:
                frame = av.VideoFrame.from_ndarray(np.pad(array, pad, mode="edge"), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())  # flush the encoder
    except av.FFmpegError as exc:
        raise OSError(f"{codec} encoding failed: {exc}") from exc
