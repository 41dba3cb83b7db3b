"""Free-channel search for new strips, on plain tuples (no bpy), so it is tested without Blender.

Blender shuffles a new strip that overlaps another to some free place of its own choosing; the add-on picks the
channel itself instead: the first one at or above ``min_channel`` where nothing overlaps the new strip's frames.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import T2VZAddonError

MAX_CHANNEL = 128  # the sequencer has channels 1..128


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Whether the half-open frame ranges ``[a_start, a_end)`` and ``[b_start, b_end)`` share a frame."""
    return a_start < b_end and b_start < a_end


def find_free_channel(
    occupied: Iterable[tuple[int, int, int]], frame_start: int, frame_end: int, min_channel: int = 1
) -> int:
    """The lowest channel >= ``min_channel`` where no ``(channel, start, end)`` overlaps ``[frame_start, frame_end)``.

    Raises ``T2VZAddonError`` when every channel up to 128 is taken there.
    """
    busy = {channel for channel, start, end in occupied if overlaps(start, end, frame_start, frame_end)}
    for channel in range(max(1, min_channel), MAX_CHANNEL + 1):
        if channel not in busy:
            return channel
    raise T2VZAddonError(
        f"no free channel between {max(1, min_channel)} and {MAX_CHANNEL} for frames {frame_start}-{frame_end - 1}",
        "move or delete some strips above the source, or select a source on a lower channel",
    )
