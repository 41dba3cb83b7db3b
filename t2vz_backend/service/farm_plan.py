"""How a farm job is cut into work: contiguous frame ranges, and what is left of them after a fault (no Ray here).

A frame sub-range of a job renders the frames of the full run (each range recomputes the anchor, frame 0, for
itself). Bit for bit, that holds when every frame is computed in the same batches as in the full run: the UNet
denoises the frames after the anchor in chunks of ``chunk_size`` and the VAE en/decodes them ``vae_batch`` at a
time, both counted from the first frame after the anchor (sampling/sampler.py, sampling/decoding.py), and matrix
kernels round differently for different batch shapes (up to one 8-bit level). So ranges are cut on a grid: every
range starts at the job's first frame or at ``origin + k * unit`` with ``unit = lcm(chunk_size, vae_batch)``, and a
retried range resumes at the grid cell of its first missing frame. With ``exact_anchor=False`` (the default) the
anchor shares a range's first batch, in the row of the frame the single run has there, and the sampler pads a
range's last batch to the single run's shape (sampling/sampler.py ``single_run_rows``), so the same grid holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequestError


@dataclass(frozen=True, order=True)
class FrameRange:
    """Global frames ``first..last`` (inclusive)."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last:
            raise ValueError(f"not a frame range: {self.first}-{self.last}")

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __iter__(self):
        return iter(range(self.first, self.last + 1))

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.first <= index <= self.last

    @property
    def label(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True)
class Grid:
    """Where a range may start without changing any frame's batches: ``origin + k * unit`` (and the job's first
    frame). ``origin`` is the first frame after the anchor that the job renders.

    ``chunk`` and ``end`` (the shared anchor layout only): the chunk size and the job's last frame. A range that
    starts inside the job's final chunk when that chunk has fewer than ``chunk - 1`` frames would run its anchor in
    a smaller call than the single run does (one rounding away), so such a point is not a start: the frames there
    belong to the range before."""

    origin: int = 1
    unit: int = 1
    chunk: int = 0
    end: int = -1

    def is_start(self, point: int) -> bool:
        """Whether a range may begin at grid point ``point``."""
        return not (self.chunk > 1 and 0 <= self.end - point + 1 < self.chunk - 1 and point > self.origin)

    def cell_start(self, index: int) -> int:
        """The grid point at or before ``index`` (frames before the origin are their own cells)."""
        if index <= self.origin:
            return index
        point = self.origin + (index - self.origin) // self.unit * self.unit
        return point if self.is_start(point) else max(self.origin, point - self.unit)


def grid_for(request: Any, first: int, end: int = -1) -> Grid:
    """The batching grid of ``request`` whose rendered frames start at global frame ``first``; ``end``: the job's
    last frame when the request renders up to it (-1: unknown, or a job that stops before its last frame)."""
    chunk = 0 if getattr(request, "exact_anchor", True) else max(1, request.chunk_size)
    return Grid(origin=max(first, 1), unit=math.lcm(max(1, request.chunk_size), max(1, request.vae_batch)),
                chunk=chunk, end=end)


def cells(first: int, last: int, grid: Grid) -> list[FrameRange]:
    """Frames ``first..last`` cut at every grid point: the smallest ranges a split may use."""
    starts = sorted({first} | {p for p in range(grid.origin, last + 1, grid.unit) if p > first and grid.is_start(p)}
                    | ({grid.origin} if first < grid.origin <= last else set()))
    return [FrameRange(a, b - 1) for a, b in zip(starts, starts[1:] + [last + 1])]


def split_frames(first: int, last: int, *, ranges: int = 0, range_frames: int = 0, workers: int = 1,
                 grid: Grid = Grid()) -> list[FrameRange]:
    """Cut frames ``first..last`` into contiguous ranges made of whole grid cells.

    ``range_frames`` > 0: ranges of at least that many frames (whole cells; the last one may be shorter).
    Otherwise ``ranges`` (or, when that is 0, ``workers``) ranges of work as even as the cells allow (a range
    without frame 0 also denoises the anchor), never more ranges than cells.
    """
    if first < 0 or last < first:
        raise InvalidRequestError(f"nothing to split: frames {first}-{last}", field="frame_start",
                                  hint="give a frame range with at least one frame")
    units = cells(first, last, grid)
    if range_frames > 0:
        groups: list[list[FrameRange]] = [[]]
        for cell in units:
            if sum(len(c) for c in groups[-1]) >= range_frames:
                groups.append([])
            groups[-1].append(cell)
    else:
        parts = max(1, min(ranges if ranges > 0 else workers, len(units)))
        # Even work, not even frames: a range that does not hold frame 0 denoises the anchor as an extra row.
        extra = 1 if first == 0 else 0
        share = (last - first + 1 + extra * (parts - 1)) / parts  # rows (frames + recomputed anchors) per range
        cuts: list[int] = []
        starts = [cell.first for cell in units[1:]]  # where a range may begin
        for i in range(1, parts):  # each cut at the grid point nearest its share, leaving room for the rest
            after = [p for p in starts if p > (cuts[-1] if cuts else first)]
            after = after[:len(after) - (parts - 1 - i)]
            ideal = first + i * share - extra * (i - 1)
            cuts.append(min(after, key=lambda p: (abs(p - ideal), p)))
        bounds = [first, *cuts, last + 1]
        return [FrameRange(a, b - 1) for a, b in zip(bounds, bounds[1:])]
    return [FrameRange(g[0].first, g[-1].last) for g in groups if g]


def missing_runs(frames: Iterable[int], done: set[int] | frozenset[int]) -> list[FrameRange]:
    """The maximal contiguous runs of ``frames`` (ascending) that are not in ``done``."""
    out: list[FrameRange] = []
    run_start = previous = None
    for index in sorted(set(frames) - set(done)):
        if run_start is None:
            run_start = previous = index
        elif index == previous + 1:
            previous = index
        else:
            out.append(FrameRange(run_start, previous))
            run_start = previous = index
    if run_start is not None:
        out.append(FrameRange(run_start, previous))
    return out


def resume_point(span: FrameRange, done: set[int] | frozenset[int], grid: Grid = Grid()) -> FrameRange | None:
    """What is left to render of ``span``: from the grid cell of its first missing frame to its end (None when
    complete). Frames in there that did arrive are rendered again but never written twice."""
    for index in span:
        if index not in done:
            return FrameRange(max(span.first, grid.cell_start(index)), span.last)
    return None


def pending_parts(span: FrameRange, done: set[int] | frozenset[int], grid: Grid = Grid()) -> list[FrameRange]:
    """The parts of ``span`` to render so that every missing frame is made (each part starts on the grid)."""
    parts: list[FrameRange] = []
    for run in missing_runs(span, done):
        start = max(span.first, grid.cell_start(run.first))
        if parts and start <= parts[-1].last + 1:
            parts[-1] = FrameRange(parts[-1].first, run.last)
        else:
            parts.append(FrameRange(start, run.last))
    return parts


def parse_range(text: str) -> FrameRange:
    """``"A-B"`` (or ``"A"``) as a ``FrameRange``; ``InvalidRequestError`` for anything else (e.g. ``"1-3,5"``)."""
    head, sep, tail = text.strip().partition("-")
    try:
        first = int(head)
        last = int(tail) if sep else first
        return FrameRange(first, last)
    except ValueError:
        raise InvalidRequestError(f"frame range {text!r} is not one contiguous range A-B", field="frame_start",
                                  hint="write it like 0-47") from None
