"""``python -m t2vz_backend report OUT_DIR [--source DIR] [--vectors DIR] [--compare OTHER_DIR] ...``.

Any folder of frames can be measured. A t2vz output folder brings its job along (``t2vz.json``): the motion then
comes from where the job's own report would take it (quality/job_report.py), the prompt and CLIP model from the
request; options given on the command line win. The report files go into OUT_DIR (or ``--out``); measuring a t2vz
output folder in place also records the headline in its ``t2vz.json``. Exit status 2 with one ``error:`` line for
bad input (one frame, frames of mixed sizes, a source with fewer frames than the result, ...), nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

from .clips import SourceClip, VectorClip
from .consistency import ReportFiles, ReportSpec, make_report, write_file
from .measure import FLOW_TEXT, FlowSettings


def _job_request(folder: str) -> Any:
    """The request in ``folder``'s ``t2vz.json``, or None when it has none (or not one this version reads)."""
    from ..errors import T2VZError
    from ..protocol import request_from_dict
    from ..service.sidecar import SIDECAR_NAME, read_sidecar

    path = os.path.join(folder, SIDECAR_NAME)
    if not os.path.isfile(path):
        return None
    try:
        return request_from_dict(read_sidecar(path)["request"])
    except (OSError, ValueError, KeyError, TypeError, T2VZError):
        return None


def spec_from_args(args: Any) -> ReportSpec:
    """The report the command line asks for."""
    request = _job_request(args.folder)
    if request is not None:
        from .job_report import report_spec

        spec = dataclasses.replace(report_spec(request, args.folder), compare="")
    else:
        spec = ReportSpec(folder=args.folder)
    flow = spec.flow
    if args.vectors:
        flow = FlowSettings(vectors=VectorClip(args.vectors))
    elif args.source:
        flow = FlowSettings(source=SourceClip(args.source, args.source_start), source_role="--source")
    clip = dataclasses.replace(spec.clip, offline=spec.clip.offline or args.offline, device=args.device)
    if args.clip_model is not None:
        clip = dataclasses.replace(clip, model=args.clip_model)
    if args.prompt is not None:
        clip = dataclasses.replace(clip, prompts=(args.prompt,))
    return dataclasses.replace(spec, flow=flow, clip=clip, compare=args.compare)


def run_report_command(args: Any) -> int:
    spec = spec_from_args(args)
    out_dir = args.report_dir or args.folder

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rmeasuring pair {done}/{total}" + ("\n" if done == total else ""))
            sys.stderr.flush()

    files = make_report(spec, out_dir=out_dir, on_pair=progress)
    if os.path.realpath(out_dir) == os.path.realpath(args.folder):
        _record_in_sidecar(args.folder, files)
    print(describe(files.document))
    print(f"wrote {files.json}, {files.png} and {files.html}")
    return 0


def _record_in_sidecar(folder: str, files: ReportFiles) -> None:
    """Put the headline into a t2vz output folder's ``t2vz.json`` (as a job's report does)."""
    from ..service.consistency import report_record
    from ..service.sidecar import SIDECAR_NAME, read_sidecar

    path = os.path.join(folder, SIDECAR_NAME)
    if _job_request(folder) is None:
        return
    data = read_sidecar(path)
    data["report"] = report_record(files)
    write_file(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def describe(document: dict[str, Any]) -> str:
    """The headline of a report in a few lines of text."""
    s = document["summary"]
    lines = [f"warp error {s['warp_error']:.3f} (0-255, lower is steadier; worst pair {s['warp_error_max']:.3f})",
             f"  motion: {FLOW_TEXT[document['flow']['kind']]}",
             f"flow-compensated PSNR {s['psnr']:.2f} dB, SSIM {s['ssim']:.4f}; "
             f"{s['occluded'] * 100:.1f} % of the pixels left out as occluded"]
    if s["worst_pairs"]:
        first = document["frames"]["first"]
        lines.append("worst pairs: " + ", ".join(f"{first + k}→{first + k + 1}" for k in s["worst_pairs"]))
    clip = document["clip"]
    if clip["computed"]:
        text = f", text alignment {s['clip_text']:.2f}" if s["clip_text"] is not None else ""
        lines.append(f"CLIP ({clip['model']}): frame consistency {s['clip_consistency']:.4f}{text}")
    else:
        lines.append(f"CLIP metrics not computed: {clip['reason']}")
    compare = document.get("compare")
    if compare is not None:
        d = compare["difference"]
        lines.append(f"compared with {compare['folder']}: warp error {compare['summary']['warp_error']:.3f} there, "
                     f"difference {d['warp_error']:+.3f}; PSNR {d['psnr']:+.2f} dB, SSIM {d['ssim']:+.4f}")
    return "\n".join(lines)
