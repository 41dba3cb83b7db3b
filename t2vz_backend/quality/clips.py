"""The clips a consistency report reads: checked completely before any pixel is compared, then streamed.

- **the result**: a folder of frames. A t2vz output folder lists its frames in ``t2vz.json`` (a sub-range render
  knows its first global frame); any other folder is read in natural file order, without the report's own files.
- **the flow's source**, when there is one: the frames the result was made from (a folder or a movie); global frame
  g of the result matches frame ``start + g`` of the source, resized to the result's size for the flow.
- **Blender's Vector pass**: a folder of EXR files, file g for global frame g (quality/vectors.py).

Each is read one frame at a time, in order, so a long clip is never held in memory. Bad input (one frame, frames
of different sizes, a source or a vector folder with fewer frames than the result) is an ``InputError`` that names
the folder and the fix, raised before any work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

REPORT_NAMES = frozenset({"report.json", "report.png", "report.html"})


@dataclass(frozen=True)
class ResultFrames:
    """The frames of one result, in order; ``first`` is the global frame index of ``names[0]``."""

    folder: str
    names: tuple[str, ...]
    first: int
    size: tuple[int, int]  # (width, height)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def indices(self) -> range:
        """The global frame index of each frame."""
        return range(self.first, self.first + len(self.names))

    def path(self, k: int) -> str:
        return os.path.join(self.folder, self.names[k])

    def read(self, k: int) -> np.ndarray:
        from ..media.reader import read_image

        return read_image(self.path(k))

    def stream(self) -> Iterator[np.ndarray]:
        for k in range(len(self.names)):
            yield self.read(k)


def result_frames(folder: str, *, role: str = "result", names: tuple[str, ...] = (), first: int = 0
                  ) -> ResultFrames:
    """The frames of ``folder`` (``names`` from global frame ``first``; else its ``t2vz.json`` list when it has
    one; else every image in it), checked: two or more frames, one size."""
    from ..media.reader import list_images

    if not os.path.isdir(folder):
        raise InputError(f"{role} folder {folder} does not exist or is not a folder",
                         hint="give the folder that holds the frames")
    listed = _sidecar_frames(folder) if not names else (tuple(names), first)
    if listed is not None:
        names, first = listed
    else:
        names, first = tuple(p.name for p in list_images(folder, exclude=REPORT_NAMES)), 0
    if len(names) < 2:
        raise InputError(f"{role} folder {folder} has {len(names)} frame: a consistency report compares "
                         "consecutive frames", hint="give a folder with two or more frames")
    return ResultFrames(folder, names, first, _one_size([os.path.join(folder, n) for n in names]))


def _sidecar_frames(folder: str) -> tuple[tuple[str, ...], int] | None:
    """(frame names, first global index) from a t2vz output folder's sidecar, when every listed frame is there."""
    from ..service.sidecar import SIDECAR_NAME, read_sidecar

    path = os.path.join(folder, SIDECAR_NAME)
    if not os.path.isfile(path):
        return None
    try:
        data = read_sidecar(path)
        names, first = tuple(str(n) for n in data["frames"]), int(data.get("first_frame", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not ours, or damaged: read the folder as any folder of frames
    ok = names and all(os.path.basename(n) == n and os.path.isfile(os.path.join(folder, n)) for n in names)
    return (names, first) if ok else None


def _one_size(paths: list[str]) -> tuple[int, int]:
    """The (width, height) every image shares, read from the file headers; ``InputError`` naming two that differ."""
    first = _image_size(paths[0])
    for path in paths[1:]:
        size = _image_size(path)
        if size != first:
            raise InputError(f"{path} is {size[0]}x{size[1]} but {paths[0]} is {first[0]}x{first[1]}: the frames "
                             "of a clip need one size", hint="re-export the frames at one resolution")
    return first


def _image_size(path: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError):  # EXR and other formats PIL does not know: decode it
        from ..media.reader import read_image

        height, width = read_image(path).shape[:2]
        return width, height


@dataclass(frozen=True)
class SourceClip:
    """The frames a result was made from (a folder or a movie), the flow's source."""

    path: str
    start: int = 0  # source frame of global frame 0
    fps: float | None = None  # resample a movie to this rate first

    def check(self, frames: ResultFrames) -> None:
        """Raise when the source has fewer frames than the result needs."""
        from ..media.reader import count_frames

        available = count_frames(self.path, fps=self.fps) - self.start
        last = frames.indices[-1]
        if available <= last:
            raise InputError(f"source {self.path} has {max(available, 0)} frames from frame {self.start}, but the "
                             f"result needs frames up to {last} ({len(frames)} frames from {frames.first})",
                             hint="give the source the result was made from, with at least as many frames")

    def stream(self, frames: ResultFrames) -> Iterator[np.ndarray]:
        """The source frame of each result frame, at the result's size."""
        from ..media.reader import iter_frames, resize_frames

        for frame in iter_frames(self.path, start=self.start + frames.first, count=len(frames), fps=self.fps):
            yield resize_frames([frame], frames.size, resample="bilinear")[0]


@dataclass(frozen=True)
class VectorClip:
    """A folder of Blender Vector-pass EXRs, file g for global frame g."""

    folder: str

    def files(self) -> list[str]:
        if not os.path.isdir(self.folder):
            raise InputError(f"motion-vector folder {self.folder} does not exist",
                             hint="render the Vector pass again, or leave the vector folder unset")
        from ..media.reader import natural_key

        names = sorted((n for n in os.listdir(self.folder) if n.lower().endswith(".exr") and not n.startswith(".")),
                       key=natural_key)
        return [os.path.join(self.folder, n) for n in names]

    def check(self, frames: ResultFrames) -> None:
        count, last = len(self.files()), frames.indices[-1]
        if count <= last:
            raise InputError(f"motion-vector folder {self.folder} has {count} EXR files, but the result needs "
                             f"frames up to {last}", hint="render the Vector pass for every frame of the job")

    def stream(self, frames: ResultFrames) -> Iterator[np.ndarray]:
        """Each frame's vectors at the result's size (the render may be larger: vectors scale with the image)."""
        from .vectors import read_vector_pass, resize_vectors

        files = self.files()
        for index in frames.indices:
            yield resize_vectors(read_vector_pass(files[index]), frames.size)
