"""How a farm job is cut into work: contiguous frame ranges, and what is left of them after a fault (no Ray here).

Every frame sub-range of a job reproduces exactly the frames the full run makes (each range recomputes the anchor,
frame 0, for itself), so the only rule a split must keep is that a range is one contiguous run of global frames.
Ranges are cut as evenly as possible; a range that loses its worker resumes at its first missing frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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


def split_frames(first: int, last: int, *, ranges: int = 0, range_frames: int = 0, workers: int = 1
                 ) -> list[FrameRange]:
    """Cut frames ``first..last`` into contiguous ranges.

    ``range_frames`` > 0: ranges of that many frames (the last one may be shorter). Otherwise ``ranges`` (or, when
    that is 0, ``workers``) ranges whose lengths differ by at most one frame, never more ranges than frames.
    """
    if first < 0 or last < first:
        raise InvalidRequestError(f"nothing to split: frames {first}-{last}", field="frame_start",
                                  hint="give a frame range with at least one frame")
    count = last - first + 1
    if range_frames > 0:
        return [FrameRange(a, min(a + range_frames - 1, last)) for a in range(first, last + 1, range_frames)]
    parts = max(1, min(ranges if ranges > 0 else workers, count))
    size, extra = divmod(count, parts)
    out, start = [], first
    for i in range(parts):
        length = size + (1 if i < extra else 0)
        out.append(FrameRange(start, start + length - 1))
        start += length
    return out


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


def resume_point(span: FrameRange, done: set[int] | frozenset[int]) -> FrameRange | None:
    """What is left to render of ``span``: from its first missing frame to its end (None when complete).

    Frames after that point that did arrive are rendered again but never written twice (the driver keeps the
    first copy; both are identical anyway).
    """
    for index in span:
        if index not in done:
            return FrameRange(index, span.last)
    return None


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
