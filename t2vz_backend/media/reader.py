"""Read source frames (image folders, single images, movies) as RGB ``uint8`` arrays.

Sources:
- a folder of images (``IMAGE_EXTENSIONS``), in natural order (``frame_2`` before ``frame_10``); one image type per
  folder; hidden files are ignored;
- a single image file, which is a 1-frame sequence;
- a movie file, decoded with PyAV (``av``), one frame at a time: only the selected frames are kept.

Frame ranges and frame rates: with ``fps=None`` the frames are the source's own. With ``fps`` the source is resampled:
output frame ``j`` lies at time ``j / fps`` and takes the source frame nearest to it (no blending). ``start`` and
``count`` count output frames. A variable-frame-rate movie is treated as constant at its average rate. An image
folder has no frame rate of its own: pass ``source_fps`` to resample one (it is also the fallback for a movie whose
header gives no rate).

Pixels: grayscale becomes RGB; alpha is composited over black (the background of control maps); 16-bit and float
images are scaled to 8 bits (floats clipped to 0..1). Float data that must keep its range (depth) is read with
``read_image_data`` (conditions/depth.py). EXR is read with OpenCV, which needs ``OPENCV_IO_ENABLE_OPENEXR=1``; it is
set for this process on the first EXR read. EXIF orientation is not applied.

All frames of a sequence must have one size: a differing image is refused (naming it and both sizes) rather than
resized, because a silent resize would distort it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DependencyError, InputError, InvalidRequestError
from ..validation import MAX_FRAMES, MAX_SOURCE_FRAME

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr"})
PathLike = str | os.PathLike


@dataclass
class FrameSequence:
    """Frames read from one source; ``indices[k]`` is the source frame index of ``frames[k]``."""

    frames: list[np.ndarray]  # H x W x 3 uint8 RGB
    indices: list[int]
    fps: float | None  # output frame rate; None for an image folder without source_fps
    total: int  # frames the whole source has at this frame rate (for validating ranges)
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        height, width = self.frames[0].shape[:2]
        return width, height

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[index]


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``frame_2`` < ``frame_10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower()))


def list_images(folder: PathLike, exclude: Collection[str] = ()) -> list[Path]:
    """Image files of ``folder`` in natural order; refuses an empty folder or one that mixes image types.

    ``exclude``: file names that are not frames (a consistency report's ``report.png`` next to the frames).
    """
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_EXTENSIONS and p.name not in exclude]
    if not files:
        raise InputError(f"no images in folder {folder}",
                         hint=f"put frames ({', '.join(sorted(IMAGE_EXTENSIONS))}) in it or choose another folder")
    types = sorted({p.suffix.lower().replace(".jpeg", ".jpg").replace(".tiff", ".tif") for p in files})
    if len(types) > 1:
        raise InputError(f"folder {folder} mixes image types ({', '.join(types)})",
                         hint="keep one image type per frame folder")
    return sorted(files, key=lambda p: natural_key(p.name))


def source_kind(path: PathLike) -> str:
    """``"folder"``, ``"image"`` or ``"movie"`` (any other file is tried as a movie)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"source {path} does not exist", hint="check the path of the source frames or movie")
    if path.is_dir():
        return "folder"
    return "image" if path.suffix.lower() in IMAGE_EXTENSIONS else "movie"


def read_image_data(path: PathLike) -> np.ndarray:
    """Decode one image with its own depth (uint8, uint16 or float32), channels in RGB(A) order."""
    import cv2

    path = Path(path)
    is_exr = path.suffix.lower() == ".exr"
    if is_exr:
        # OpenCV reads this variable on the first EXR decode; it is off by default for security reasons.
        os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths on Windows
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc}", hint="check that the file exists and is readable") from exc
    except cv2.error as exc:
        if is_exr:
            raise DependencyError(f"cannot read EXR image {path}: OpenCV's EXR support is disabled",
                                  hint="start the backend with OPENCV_IO_ENABLE_OPENEXR=1 or save 16-bit PNG") from exc
        image = None
    if image is None or image.size == 0:
        raise InputError(f"cannot decode image {path}: the file is corrupt or not an image",
                         hint="re-export this frame or remove it from the folder")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., [2, 1, 0, 3][: image.shape[2]]]  # OpenCV's BGR(A) -> RGB(A)
    return image


def to_rgb8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Convert gray / gray+alpha / RGB / RGBA of any depth to H x W x 3 uint8 (alpha over black)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{name} has unsupported shape {image.shape}", hint="use gray, RGB or RGBA images")
    if image.dtype == np.uint8 and image.shape[2] in (1, 3):
        return image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    if image.dtype == np.uint8:
        values = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        values = image.astype(np.float32) / 65535.0
    elif np.issubdtype(image.dtype, np.floating):
        values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    else:
        raise InputError(f"{name} has unsupported pixel type {image.dtype}", hint="use 8-bit, 16-bit or float images")
    if values.shape[2] in (2, 4):  # composite over black
        values = values[..., :-1] * np.clip(values[..., -1:], 0.0, 1.0)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.floor(np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def read_image(path: PathLike) -> np.ndarray:
    """One image file as H x W x 3 uint8 RGB."""
    return to_rgb8(read_image_data(path), name=f"image {path}")


def resample_indices(n_source: int, source_fps: float, fps: float) -> list[int]:
    """Source index nearest to each output time ``j / fps``, for every output frame inside the source's duration."""
    if source_fps <= 0 or fps <= 0:
        raise InvalidRequestError(f"frame rates must be positive, got source {source_fps} and output {fps}",
                                  hint="use a positive fps")
    n_out = max(1, math.ceil(n_source * fps / source_fps - 1e-9))
    if n_out > MAX_SOURCE_FRAME + MAX_FRAMES:  # a broken header (a rate near 0) must not build a list of billions
        raise InputError(f"resampling {n_source} frames at {source_fps:g} fps to {fps:g} fps would make {n_out} frames",
                         hint="check the source's frame rate, or resample to a lower fps")
    return [min(n_source - 1, math.floor(j * source_fps / fps + 0.5)) for j in range(n_out)]


def _open_movie(path: Path):
    """Open a movie and its first video stream; errors name the file."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open {path} as a movie or image: {exc}",
                         hint="use a folder of images, an image file or a movie that ffmpeg can read") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"movie {path} has no video stream", hint="choose a file that contains video")
    return container, container.streams.video[0]


def _movie_info(path: Path) -> tuple[int, float | None]:
    """(frame count, native fps) of a movie; counts packets when the header has no frame count."""
    import av

    container, stream = _open_movie(path)
    try:
        rate = stream.average_rate or stream.guessed_rate
        count = stream.frames
        if count <= 0:
            count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.FFmpegError as exc:
        raise InputError(f"cannot read movie {path}: {exc}", hint="re-encode the movie or export it as images") from exc
    finally:
        container.close()
    return count, float(rate) if rate else None


def _timeline(path: PathLike, fps: float | None, source_fps: float | None) -> tuple[str, list, list[int], float | None]:
    """(kind, source items, source index of each output frame, output fps) for a source path."""
    kind = source_kind(path)
    if kind == "folder":
        items: list = list_images(path)
        native = source_fps
    elif kind == "image":
        items, native = [Path(path)], source_fps
    else:
        count, rate = _movie_info(Path(path))
        items, native = list(range(count)), rate or source_fps
        if count == 0:
            raise InputError(f"movie {path} has no frames", hint="choose a movie that contains video frames")
    if fps is None:
        return kind, items, list(range(len(items))), native
    if native is None:
        raise InputError(f"{path} has no frame rate of its own, so it cannot be resampled to {fps} fps",
                         hint="pass source_fps (the rate the frames were made at) or leave fps unset")
    return kind, items, resample_indices(len(items), native, fps), float(fps)


def count_frames(path: PathLike, *, fps: float | None = None, source_fps: float | None = None) -> int:
    """Number of frames ``read_frames`` can return for this source and frame rate (reads headers only)."""
    return len(_timeline(path, fps, source_fps)[2])


def check_frame_range(path: PathLike, start: int, count: int | None, total: int, fps: float | None = None) -> int:
    """Validate output frames ``start .. start+count-1`` against a source of ``total`` frames; returns the count."""
    if start < 0:
        raise InvalidRequestError(f"start frame {start} is negative", hint="use a start frame >= 0")
    if count is not None and count < 1:
        raise InvalidRequestError(f"frame count {count} must be at least 1", hint="use count >= 1")
    at = f" at {fps:g} fps" if fps else ""
    end = total if count is None else start + count
    if start >= total or end > total:
        wanted = f"start frame {start} is" if count is None else f"frames {start}..{end - 1} are"
        raise InputError(f"{wanted} outside {path}, which has {total} frames{at} (0..{total - 1})",
                         hint="choose a start and count inside the source")
    return end - start


def check_same_size(frame: np.ndarray, first: np.ndarray, name: str, first_name: str) -> None:
    """Refuse a frame whose size differs from the first frame's, naming both."""
    if frame.shape[:2] != first.shape[:2]:
        (h0, w0), (h1, w1) = first.shape[:2], frame.shape[:2]
        raise InputError(f"{name} is {w1}x{h1} but {first_name} is {w0}x{h0}: all frames of a sequence need one size",
                         hint="re-export the frames at one resolution")


def read_frames(path: PathLike, *, start: int = 0, count: int | None = None, fps: float | None = None,
                source_fps: float | None = None, size: tuple[int, int] | None = None) -> FrameSequence:
    """Read output frames ``start .. start+count-1`` (all when ``count`` is None) of a folder, image or movie.

    Args:
        path: folder of images, image file or movie file.
        start: first output frame (0-based, counted after fps resampling).
        count: number of frames; None reads to the end.
        fps: output frame rate; None keeps the source's frames.
        source_fps: frame rate of an image folder (movies know theirs).
        size: (width, height) to resize each frame to while reading (see ``resize_frames``); None keeps the size.
    """
    kind, items, all_picks, out_fps = _timeline(path, fps, source_fps)
    n = check_frame_range(path, start, count, len(all_picks), out_fps)
    picks = all_picks[start:start + n]
    decoded: dict[int, np.ndarray] = {}
    first: tuple[np.ndarray, str] | None = None
    for index, frame, name in _decode_items(kind, Path(path), items, set(picks)):
        if first is None:
            first = (frame, name)
        check_same_size(frame, first[0], name, first[1])
        decoded[index] = frame if size is None else resize_frames([frame], size)[0]
    frames, seen = [], set()
    for index in picks:  # upsampling repeats a source frame: give each repeat its own array
        frames.append(decoded[index].copy() if index in seen else decoded[index])
        seen.add(index)
    return FrameSequence(frames, picks, out_fps, len(all_picks), str(path))


def _decode_items(kind: str, path: Path, items: list, wanted: set[int]) -> Iterator[tuple[int, np.ndarray, str]]:
    """Yield (source index, RGB frame, name for messages) for the wanted source frames, in order."""
    if kind != "movie":
        for index in sorted(wanted):
            yield index, read_image(items[index]), str(items[index])
        return
    import av

    last = max(wanted)
    container, stream = _open_movie(path)
    try:
        index = -1
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                yield index, frame.to_ndarray(format="rgb24"), f"frame {index} of {path}"
            if index >= last:
                break
    except av.FFmpegError as exc:
        raise InputError(f"cannot decode frame {index + 1} of movie {path}: {exc}",
                         hint="re-encode the movie or export it as images") from exc
    finally:
        container.close()
    if index < last:
        raise InputError(f"movie {path} ends after {index + 1} frames, before frame {last} that its header promises",
                         hint="re-encode the movie or choose a shorter range")


def fit_size(width: int, height: int, *, long_side: int | None = None, multiple: int = 8) -> tuple[int, int]:
    """(w, h) keeping the aspect ratio, the long side scaled to ``long_side``, both rounded to ``multiple`` (>= it)."""
    if width <= 0 or height <= 0:
        raise InvalidRequestError(f"frame size {width}x{height} must be positive", hint="check the source frames")
    if long_side is not None and long_side < multiple:
        raise InvalidRequestError(f"long side {long_side} is smaller than {multiple}",
                                  hint=f"use a resolution of at least {multiple}", field="long_side")
    scale = 1.0 if long_side is None else long_side / max(width, height)

    def snap(value: int) -> int:
        return max(multiple, math.floor(value * scale / multiple + 0.5) * multiple)

    return snap(width), snap(height)


def resize_frames(frames: Sequence[np.ndarray], size: tuple[int, int], *, resample: str = "lanczos"
                  ) -> list[np.ndarray]:
    """Resize frames to ``size`` = (width, height); frames already that size are kept as they are.

    ``resample``: ``"lanczos"`` (sharpest, for photographic frames), ``"bilinear"`` (no ringing: control maps, as
    the original Text2Video-Zero resizes its inputs) or ``"nearest"``. PIL antialiases when shrinking.
    """
    from PIL import Image

    filters = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST}
    width, height = size
    return [frame if frame.shape[:2] == (height, width)
            else np.asarray(Image.fromarray(frame).resize((width, height), filters[resample])) for frame in frames]


# --- Streaming reads (quality/ reports): one frame at a time, for clips too long to hold in memory -------------------


def iter_frames(path: PathLike, *, start: int = 0, count: int | None = None, fps: float | None = None,
                source_fps: float | None = None) -> Iterator[np.ndarray]:
    """The frames ``read_frames`` returns (same range, rate and size checks), decoded only as they are consumed."""
    kind, items, all_picks, out_fps = _timeline(path, fps, source_fps)
    n = check_frame_range(path, start, count, len(all_picks), out_fps)
    picks = all_picks[start:start + n]
    decoded = _decode_items(kind, Path(path), items, set(picks))
    first: tuple[np.ndarray, str] | None = None
    index, frame = -1, None
    try:
        for pick in picks:  # non-decreasing; a repeated pick (upsampling) yields the same frame again
            while index < pick:
                index, frame, name = next(decoded)
                if first is None:
                    first = (frame, name)
                check_same_size(frame, first[0], name, first[1])
            yield frame
    finally:
        decoded.close()  # a movie's container closes here, even when the consumer stops early
