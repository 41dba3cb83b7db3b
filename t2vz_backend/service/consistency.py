"""The report step of a job (``report`` option): measure the staged frames, record it in the sidecar, announce it.

``run_job`` calls ``measure_staged`` once every frame is written, before anything moves into the output folder, so
the report files (quality/consistency.py) commit together with the frames, and a cancel during the measurement
(checked after every pair) leaves nothing behind. The ``Report`` event follows the commit, with the final paths.
Only the protocol is imported at the top: the add-on reads report files through ``headline``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from ..errors import JobCancelled
from ..protocol import AnyRequest, Event, Progress, Report


def measure_staged(request: AnyRequest, folder: str, names: list[str], first: int, job_id: str,
                   emit: Callable[[Event], None], should_cancel: Callable[[], bool]) -> Any:
    """The ``ReportFiles`` of the frames ``names`` (from global frame ``first``) in the staging ``folder``."""
    from ..quality.consistency import make_report
    from ..quality.job_report import report_spec

    emit(Progress(job_id=job_id, stage="report", message="measuring temporal consistency"))
    spec = dataclasses.replace(report_spec(request, folder), names=tuple(names), first=first)

    def on_pair(done: int, total: int) -> None:
        emit(Progress(job_id=job_id, stage="report", step=done, total_steps=total, frames_done=len(names),
                      total_frames=len(names)))
        if should_cancel():
            raise JobCancelled("the job was cancelled", hint="partial output was removed")

    return make_report(spec, on_pair=on_pair)


def report_record(files: Any) -> dict[str, Any]:
    """What the ``t2vz.json`` sidecar keeps of the report: its files, where the motion came from, the headline."""
    document = files.document
    return {"files": [os.path.basename(p) for p in (files.json, files.png, files.html)],
            "flow": document["flow"]["kind"], "clip": document["clip"]["computed"], "summary": files.summary}


def report_event(files: Any, job_id: str, final: Callable[[str], str]) -> Report:
    """The ``Report`` event of a job's report; ``final`` maps a staged path to where the commit moved it."""
    return headline(files.document, path=final(files.json), image=final(files.png), page=final(files.html),
                    job_id=job_id)


def headline(document: dict[str, Any], *, path: str, image: str, page: str, job_id: str = "") -> Report:
    """A report document's headline as a ``Report`` event (also how the add-on reads a report.json it finds)."""
    summary = document["summary"]
    worst = max(document["pairs"], key=lambda p: p["warp_error"])["frames"][0]
    compare = document.get("compare")

    def figure(value: float | None) -> float:
        return -1.0 if value is None else float(value)

    return Report(job_id=job_id, path=path, image=image, page=page, flow=document["flow"]["kind"],
                  warp_error=summary["warp_error"], warp_error_max=summary["warp_error_max"], worst_pair=worst,
                  psnr=summary["psnr"], ssim=summary["ssim"], clip_consistency=figure(summary["clip_consistency"]),
                  clip_text=figure(summary["clip_text"]),
                  compared_warp_error=figure(compare["summary"]["warp_error"] if compare else None))
