"""Make a folder's consistency report: check every input, measure, compare, draw, and write the three files.

``report.json`` (the document, quality/report.py), ``report.png`` (quality/figures.py) and ``report.html``
(quality/page.py) are written next to the frames, or into ``out_dir``, each atomically. Every input is checked
before any pixel is compared: the result and the compared folder (two or more frames, one size), the flow's source
or Vector pass (enough frames). A compared folder is measured exactly as this one (same flow source, CLIP model and
prompt), so the difference is the results', not the measurement's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import OutputError
from ..media.atomic import write_bytes
from .clips import REPORT_NAMES, ResultFrames, result_frames
from .measure import ClipSettings, FlowSettings, measure
from .report import REPORT_FORMAT, build_report, compare_reports

REPORT_JSON, REPORT_PNG, REPORT_HTML = "report.json", "report.png", "report.html"
assert REPORT_NAMES == {REPORT_JSON, REPORT_PNG, REPORT_HTML}


@dataclass(frozen=True)
class ReportSpec:
    """Everything one report needs."""

    folder: str
    flow: FlowSettings = FlowSettings()
    clip: ClipSettings = ClipSettings()
    compare: str = ""  # another result's folder, measured the same way
    job: dict[str, Any] = field(default_factory=dict)  # the job that made the frames, for the reader
    names: tuple[str, ...] = ()  # the frames of ``folder`` when known (a job's); else found as result_frames does
    first: int = 0  # global frame index of names[0]


@dataclass(frozen=True)
class ReportFiles:
    json: str
    png: str
    html: str
    document: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        return self.document["summary"]


def check_report(spec: ReportSpec) -> tuple[ResultFrames, ResultFrames | None]:
    """Every check that needs no pixel: the frames of both results and the flow's source against them."""
    frames = result_frames(spec.folder, names=spec.names, first=spec.first)
    spec.flow.check(frames)
    other = result_frames(spec.compare, role="compared") if spec.compare else None
    if other is not None:
        spec.flow.check(other)
    return frames, other


def make_report(spec: ReportSpec, *, out_dir: str = "", on_pair: Callable[[int, int], None] | None = None
                ) -> ReportFiles:
    """Measure ``spec.folder`` (and ``spec.compare``), then write the report files into ``out_dir`` (default:
    the folder itself). ``on_pair(done, total)`` is called after every measured pair (progress, cancel)."""
    frames, other = check_report(spec)
    out_dir = out_dir or spec.folder
    check_report_folder(out_dir)
    total = len(frames) - 1 + (len(other) - 1 if other else 0)
    progress = on_pair or (lambda done, count: None)
    document = build_report(measure(frames, spec.flow, spec.clip, on_pair=lambda done, _n: progress(done, total)),
                            job=spec.job)
    other_document = None
    if other is not None:
        offset = len(frames) - 1
        measured = measure(other, spec.flow, spec.clip, on_pair=lambda done, _n: progress(offset + done, total))
        other_document = build_report(measured)
        document["compare"] = compare_reports(document, other_document, spec.compare)
    from .figures import render_png
    from .page import render_html

    png = render_png(document, frames.read, other_read=other.read if other else None, other_report=other_document)
    page = render_html(document, png).encode("utf-8")
    paths = {name: os.path.join(out_dir, name) for name in (REPORT_JSON, REPORT_PNG, REPORT_HTML)}
    write_file(paths[REPORT_PNG], png)
    write_file(paths[REPORT_HTML], page)
    write_file(paths[REPORT_JSON], document_bytes(document))  # last: a report.json comes with its picture and page
    return ReportFiles(paths[REPORT_JSON], paths[REPORT_PNG], paths[REPORT_HTML], document)


def check_report_folder(folder: str) -> None:
    """Refuse to replace report files that a t2vz report did not write (someone else's ``report.png``)."""
    if not os.path.isdir(folder):
        raise OutputError(f"report folder {folder} does not exist", hint="create it or choose another --out")
    existing = [name for name in (REPORT_JSON, REPORT_PNG, REPORT_HTML) if os.path.exists(os.path.join(folder, name))]
    if not existing:
        return
    try:
        with open(os.path.join(folder, REPORT_JSON), encoding="utf-8") as handle:
            ours = json.load(handle).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise OutputError(f"{os.path.join(folder, existing[0])} exists and was not written by a t2vz report",
                          hint="write the report elsewhere (--out DIR) or move that file away")


def document_bytes(document: dict[str, Any]) -> bytes:
    """``report.json``'s bytes: indented, keys in a fixed order, no NaN (the same document, the same bytes)."""
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through the one atomic write path (media/atomic.py): no reader sees half a file,
    and a failed write is an ``OutputError`` that names the file and what to do."""
    write_bytes(path, data)
