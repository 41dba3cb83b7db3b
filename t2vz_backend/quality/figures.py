"""``report.png``: a contact sheet of the frames with the worst pairs marked, over a per-pair plot of warp error.

Drawn with matplotlib (imported here, on first use, never by the rest of the backend) on its Agg canvas, without
pyplot's global state, so reports can be drawn from the worker's job thread. A long clip shows ``SHEET_LIMIT``
frames spread over its length, always including the frames of the worst pairs; only those frames are read again,
as thumbnails. With a comparison, the two results' sheets stand side by side and the plot shows both curves.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

THUMB = 128  # long side of a contact-sheet frame, in pixels
SHEET_LIMIT = 24  # frames on a contact sheet at most
COLUMNS = 8
GAP = 6  # pixels between contact-sheet frames
WORST_COLOUR = "#d62728"
WIDTH_IN, DPI = 12.0, 100

ReadFrame = Callable[[int], np.ndarray]  # position in the result -> RGB frame


def sheet_positions(count: int, worst_pairs: Sequence[int], limit: int = SHEET_LIMIT) -> list[int]:
    """Which frames (positions 0..count-1) the sheet shows: all of a short clip; else the worst pairs' frames and
    evenly spread others, ``limit`` at most, in order."""
    if count <= limit:
        return list(range(count))
    chosen = {p for k in worst_pairs for p in (k, k + 1)}
    need = max(limit - len(chosen), 2)
    chosen |= {round(i * (count - 1) / (need - 1)) for i in range(need)}  # first and last frames included
    return sorted(chosen)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(frame)
    image.thumbnail((THUMB, THUMB))
    return np.asarray(image)


def _sheet(report: dict[str, Any], read: ReadFrame
           ) -> tuple[np.ndarray, tuple[int, int], list[tuple[int, int, int, int]]]:
    """The sheet image, the (width, height) of a cell and, per cell, (global frame, x, y, worst-pair rank or -1)."""
    frames = report["frames"]
    worst = report["summary"]["worst_pairs"]
    positions = sheet_positions(frames["count"], worst)
    thumbs = [_thumbnail(read(p)) for p in positions]
    cell_h, cell_w = thumbs[0].shape[:2]
    columns = min(COLUMNS, len(thumbs))
    rows = math.ceil(len(thumbs) / columns)
    canvas = np.full((rows * (cell_h + GAP) + GAP, columns * (cell_w + GAP) + GAP, 3), 255, dtype=np.uint8)
    rank = {p: r for r, k in enumerate(worst) for p in (k, k + 1)}
    cells = []
    for i, (position, thumb) in enumerate(zip(positions, thumbs)):
        x, y = GAP + (i % columns) * (cell_w + GAP), GAP + (i // columns) * (cell_h + GAP)
        canvas[y:y + cell_h, x:x + cell_w] = thumb
        cells.append((frames["first"] + position, x, y, rank.get(position, -1)))
    return canvas, (cell_w, cell_h), cells


def _draw_sheet(ax: Any, report: dict[str, Any], read: ReadFrame, title: str) -> None:
    from matplotlib.patches import Rectangle

    canvas, (width, height), cells = _sheet(report, read)
    ax.imshow(canvas, interpolation="antialiased")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9, loc="left")
    for index, x, y, rank in cells:
        if rank >= 0:
            ax.add_patch(Rectangle((x - 2.5, y - 2.5), width + 4, height + 4, fill=False,
                                   edgecolor=WORST_COLOUR, linewidth=2))
        ax.text(x + 3, y + 11, str(index), color="white", fontsize=7,
                bbox={"facecolor": WORST_COLOUR if rank >= 0 else "black", "alpha": 0.75, "pad": 1,
                      "linewidth": 0})


def _headline(report: dict[str, Any]) -> str:
    s = report["summary"]
    parts = [f"warp error {s['warp_error']:.2f}", f"PSNR {s['psnr']:.1f} dB", f"SSIM {s['ssim']:.3f}"]
    if s.get("clip_consistency") is not None:
        parts.append(f"CLIP frames {s['clip_consistency']:.3f}")
    if s.get("clip_text") is not None:
        parts.append(f"CLIP text {s['clip_text']:.1f}")
    return "  ·  ".join(parts)


def _plot(ax: Any, report: dict[str, Any], compare: dict[str, Any] | None) -> None:
    pairs = report["pairs"]
    x = [p["frames"][0] for p in pairs]
    y = [p["warp_error"] for p in pairs]
    ax.plot(x, y, marker="o", markersize=3, linewidth=1.5, color="#1f77b4", label="this result")
    ax.axhline(report["summary"]["warp_error"], color="#1f77b4", linestyle=":", linewidth=1)
    worst = report["summary"]["worst_pairs"]
    ax.scatter([x[k] for k in worst], [y[k] for k in worst], color=WORST_COLOUR, zorder=3, s=30,
               label="worst pairs")
    if compare is not None:
        other = [p["warp_error"][1] for p in compare["pairs"]]
        ax.plot(x[:len(other)], other, marker="o", markersize=3, linewidth=1.2, color="#7f7f7f", linestyle="--",
                label="compared result")
    ax.set_xlabel("frame t (pair t → t+1)")
    ax.set_ylabel("warp error (0-255)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")


def render_png(report: dict[str, Any], read: ReadFrame, *, other_read: ReadFrame | None = None,
               other_report: dict[str, Any] | None = None) -> bytes:
    """``report.png`` as bytes; ``other_*``: the compared result, drawn beside this one."""
    from matplotlib.figure import Figure

    columns = 2 if other_report is not None else 1
    shown = min(report["frames"]["count"], SHEET_LIMIT)
    rows = math.ceil(shown / min(COLUMNS, shown))
    aspect = report["frames"]["height"] / report["frames"]["width"]
    sheet_in = rows * WIDTH_IN / columns / min(COLUMNS, shown) * min(aspect, 1.5) + 0.8
    figure = Figure(figsize=(WIDTH_IN, sheet_in + 3.2), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(2, columns, height_ratios=[sheet_in, 3.2])
    motion = {"vectors": "Blender's Vector pass", "source": "the source frames' optical flow",
              "output": "the output's own optical flow (no source)"}
    _draw_sheet(figure.add_subplot(grid[0, 0]), report, read, f"this result\n{_headline(report)}")
    if other_report is not None and other_read is not None:
        name = os.path.basename(os.path.normpath(report["compare"]["folder"]))
        _draw_sheet(figure.add_subplot(grid[0, 1]), other_report, other_read,
                    f"compared: {name}\n{_headline(other_report)}")
    _plot(figure.add_subplot(grid[1, :]), report, report.get("compare"))
    figure.suptitle(f"t2vz temporal consistency · motion from {motion[report['flow']['kind']]} · red: the worst "
                    "frame pairs", fontsize=11, x=0.01, ha="left")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
