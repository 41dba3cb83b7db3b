"""Selected sequencer strips as a job's input: checks first, then the frames staged in the job folder.

Image strips are read directly: the element files of the visible (or requested) frames are linked into
``<job>/input/`` in timeline order, so nothing is rendered. A movie strip is passed as its file plus the first frame
and frame count. Several selected strips are one source, joined in timeline order: they must follow one another
without overlaps and have one frame size. Every problem is a ``T2VZAddonError`` that says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy

from ..core import compat, imagesize, paths
from ..core.errors import T2VZAddonError
from ..core.request_builder import SourceInput

EFFECT_HINT = "select the image or movie strip under it (effects, transforms and colour grading are not applied)"
SCENE_HINT = "render the scene to an image sequence, add that as an image strip and select it (scene strips are " \
             "not rendered by the add-on yet)"


@dataclass(frozen=True)
class StripSource:
    """Checked strips: what the job reads, before anything is written."""

    frame_start: int  # first timeline frame of the source range: where the result strip starts
    frames: int
    channel: int  # highest channel of the source strips: the result goes above it
    size: tuple[int, int] | None  # (width, height) when known
    strip_names: tuple[str, ...]
    files: tuple[str, ...] = ()  # image strips: the element files shown, in timeline order
    movie: SourceInput | None = None  # a movie strip: its file, first frame and frame count

    def input_at(self, input_dir: str | os.PathLike) -> SourceInput:
        """The job's input once staged into ``input_dir`` (a movie is read where it is, never copied)."""
        return self.movie or SourceInput(path=str(input_dir), start=0, frames=len(self.files))

    def stage(self, input_dir: str | os.PathLike) -> None:
        """Link the image frames into ``input_dir`` in timeline order (nothing to do for a movie)."""
        if self.movie is None:
            paths.stage_frames(self.files, input_dir)


def _strip_size(strip: Any, first_file: str | None) -> tuple[int, int] | None:
    size = imagesize.image_size(first_file) if first_file else None
    if size is None and len(strip.elements):
        element = strip.elements[0]
        if getattr(element, "orig_width", 0) > 0:
            size = (element.orig_width, element.orig_height)
    return size


def check_readable(strip: Any) -> None:
    """Refuse strips whose frames the add-on cannot read directly."""
    kind = strip.type
    if kind == compat.SOUND:
        raise T2VZAddonError(f"strip {strip.name!r} is a sound strip", "select an image-sequence or movie strip")
    if kind == compat.SCENE:
        raise T2VZAddonError(f"strip {strip.name!r} is a scene strip", SCENE_HINT)
    if kind not in compat.READABLE_TYPES:
        raise T2VZAddonError(f"strip {strip.name!r} is a {kind.lower().replace('_', ' ')} strip", EFFECT_HINT)
    if getattr(strip, "use_reverse_frames", False):
        raise T2VZAddonError(f"strip {strip.name!r} plays its frames in reverse",
                             "turn off Reverse Frames on it, or render it to an image sequence")


def image_files(strip: Any, first: int, last: int) -> list[str]:
    """The element files shown at timeline frames ``first..last`` (inclusive), checked to exist."""
    directory = bpy.path.abspath(strip.directory)
    offset = compat.source_frame_zero(strip)
    files, missing = [], []
    for frame in range(first, last + 1):
        index = frame - offset
        if not 0 <= index < len(strip.elements):
            raise T2VZAddonError(f"strip {strip.name!r} has no image for frame {frame}",
                                 "remove the hold frames of the strip, or choose a range inside its images")
        path = os.path.normpath(os.path.join(directory, strip.elements[index].filename))
        files.append(path)
        if not os.path.isfile(path):
            missing.append(path)
    if missing:
        raise T2VZAddonError(f"strip {strip.name!r} is missing {len(missing)} of its {len(files)} files "
                             f"(first: {missing[0]})", "find the missing files (File > External Data) or "
                             "select another strip")
    return files


def _timeline_span(strips: list[Any]) -> tuple[int, int]:
    """The joined strips' inclusive frame span; refuses overlaps and gaps (frames would not line up)."""
    ordered = sorted(strips, key=lambda s: compat.strip_range(s)[0])
    for before, after in zip(ordered, ordered[1:]):
        end, start = compat.strip_range(before)[1], compat.strip_range(after)[0]
        if start < end:
            raise T2VZAddonError(f"strips {before.name!r} and {after.name!r} overlap at frame {start}",
                                 "select strips that follow one another (one video), not stacked strips")
        if start > end:
            raise T2VZAddonError(f"there is a gap between strips {before.name!r} and {after.name!r} "
                                 f"(frames {end}-{start - 1})", "close the gap, or select only one of them")
    return compat.strip_range(ordered[0])[0], compat.strip_range(ordered[-1])[1] - 1


def collect(strips: list[Any], frame_range: tuple[int, int] | None) -> StripSource:
    """Check ``strips`` and the range; nothing is written (``StripSource.stage`` links the frames)."""
    if not strips:
        raise T2VZAddonError("no strip is selected", "select the image-sequence or movie strips to use as the "
                             "source in the sequencer (CLI: --strips NAME)")
    for strip in strips:
        check_readable(strip)
    span = _timeline_span(strips)
    first, last = frame_range or span
    if first < span[0] or last > span[1]:
        raise T2VZAddonError(f"frame range {first}-{last} goes beyond the selected strips (frames {span[0]}-"
                             f"{span[1]})", f"choose a range within {span[0]}-{span[1]}, or turn Frame Range off")
    ordered = sorted(strips, key=lambda s: compat.strip_range(s)[0])
    movies = [s for s in ordered if s.type == compat.MOVIE]
    if movies and len(ordered) > 1:
        raise T2VZAddonError("a movie strip can only be used on its own", "select one movie strip, or image "
                             "strips only (several strips are joined into one video)")
    sizes, files = {}, []
    for strip in ordered:
        s_first, s_last = compat.strip_range(strip)
        lo, hi = max(first, s_first), min(last, s_last - 1)
        if lo > hi:
            continue
        if strip.type == compat.IMAGE:
            strip_files = image_files(strip, lo, hi)
            files.extend(strip_files)
            sizes[strip.name] = _strip_size(strip, strip_files[0])
        else:
            sizes[strip.name] = _strip_size(strip, None)
    known = {name: size for name, size in sizes.items() if size}
    if len(set(known.values())) > 1:
        text = ", ".join(f"{name} is {w}x{h}" for name, (w, h) in known.items())
        raise T2VZAddonError(f"the selected strips have different sizes ({text})",
                             "select strips of one size, or scale them to one size first")
    movie_input = None
    if movies:
        movie = movies[0]
        path = bpy.path.abspath(movie.filepath)
        if not os.path.isfile(path):
            raise T2VZAddonError(f"the movie of strip {movie.name!r} is missing ({path})",
                                 "find the file (File > External Data) or select another strip")
        start = first - compat.source_frame_zero(movie)
        movie_input = SourceInput(path=path, start=start, frames=last - first + 1)
    size = next(iter(known.values()), None)
    return StripSource(first, last - first + 1, max(s.channel for s in strips), size, tuple(s.name for s in ordered),
                       tuple(files), movie_input)
