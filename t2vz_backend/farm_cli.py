"""``python -m t2vz_backend farm JOB.json --out DIR [farm options]``: one job split across a Ray cluster.

The farm options are generated from ``protocol.FarmSpec`` (``--ranges`` sets ``ranges``, defaults from the
dataclass), exactly as the job options come from the request dataclasses. A job file may carry them too, as a
``"farm"`` object beside the request (``{"request": {...}, "farm": {"ranges": 4}}``, or ``"farm"`` inside a flat
request object); options given on the command line win. ``run JOB.json`` with a ``"farm"`` entry runs on the farm.

Headless output: a redrawn bar on a terminal (frames done/total across all workers, ETA, each worker's state),
otherwise one log line per frame as it lands, and one per lost worker.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from typing import Any

from .protocol import Done, Event, Failed, FarmSpec, FrameWritten, JobRequest, Log, Progress, farm_from_dict

FARM_HELP = {
    "address": "Ray cluster: auto, HOST:PORT, or empty for Ray's default (RAY_ADDRESS, else a new local instance)",
    "ranges": "split into N contiguous frame ranges (0: one per worker)",
    "range_frames": "or ranges of about F frames each (whole batching cells of chunk_size)",
    "workers": "workers to start (0: one per GPU, or per --cpus-per-worker CPUs without GPUs)",
    "gpus_per_worker": "GPUs each worker reserves (0.5: two share a GPU; 0: CPU workers)",
    "cpus_per_worker": "CPUs (and torch threads) of a CPU worker",
    "retries": "how often a range may be retried after a worker or node is lost",
    "shared_storage": "the output folder is the same path on every worker: workers write frames in place",
    "token_file": "the cluster's Ray auth token file (default: RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)",
    "resume": "finish an unfinished farm job in --out: render only its missing frames",
}


def add_farm_command(sub: Any) -> None:
    """The ``farm`` subcommand."""
    farm = sub.add_parser("farm", help="render one job file on a Ray cluster (contiguous ranges, one per GPU)",
                          description=__doc__.split("\n\n")[0])
    farm.add_argument("job", help="path of the job file (JSON request, or a t2vz.json sidecar)")
    farm.add_argument("--out", dest="output_dir", default=None, help="write to this folder instead of the file's")
    farm.add_argument("--overwrite", action="store_true", default=None, help="allow a non-empty output folder")
    add_farm_options(farm)


def add_farm_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``FarmSpec`` field, typed and defaulted from the dataclass."""
    hints = typing.get_type_hints(FarmSpec)
    for spec in dataclasses.fields(FarmSpec):
        flag = "--" + spec.name.replace("_", "-")
        text = f"{FARM_HELP[spec.name]} (default: {spec.default!r})"
        if hints[spec.name] is bool:
            parser.add_argument(flag, dest=f"farm_{spec.name}", action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=text)
        else:
            parser.add_argument(flag, dest=f"farm_{spec.name}", type=hints[spec.name], default=argparse.SUPPRESS,
                                metavar=spec.name.upper(), help=text)


def farm_from_args(args: argparse.Namespace, base: FarmSpec | None = None) -> FarmSpec:
    """``base`` (a job file's farm entry, or the defaults) with the options given on the command line."""
    given = {name[len("farm_"):]: value for name, value in vars(args).items() if name.startswith("farm_")}
    return dataclasses.replace(base or FarmSpec(), **given)


def split_farm_entry(data: Any) -> tuple[Any, FarmSpec | None]:
    """(the job file without its farm entry, the farm entry or None). The entry may sit beside a sidecar's or a
    job's ``"request"`` or inside a flat request object."""
    if not isinstance(data, dict) or "farm" not in data:
        return data, None
    data = dict(data)
    return data, farm_from_dict(data.pop("farm"))


def run_farm_request(request: JobRequest, spec: FarmSpec, *, stream: typing.TextIO | None = None) -> int:
    """Run one job on the farm with a progress display; returns the exit status (as ``run``)."""
    from .cli import run_cancellable
    from .service.farm import check_farm, run_farm

    check_farm(request, spec)  # answers before Ray (or torch) is imported
    stream = stream or sys.stderr
    return run_cancellable(lambda cancelled: run_farm(request, spec, emit=FarmProgressBar(stream),
                                                      should_cancel=cancelled), stream,
                           "cancelled; the farm job's staging folder was removed")


class FarmProgressBar:
    """Farm events on a stream: a redrawn bar on a terminal, else a line per frame (and per lost worker)."""

    def __init__(self, stream: typing.TextIO, width: int = 24) -> None:
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.last: Progress | None = None
        self._drawn = 0
        self._started = time.monotonic()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress) and event.stage == "farm":
            self.last = event
            if self.tty:
                self._draw(self._bar(event))
        elif isinstance(event, Progress) and event.message:
            self._line(event.message)
        elif isinstance(event, FrameWritten) and not self.tty:
            done, total = (self.last.frames_done, self.last.total_frames) if self.last else (0, 0)
            self._line(f"frame {event.index} done ({done}/{total or '?'} frames, "
                       f"ETA {_eta(self.last.eta_s if self.last else -1)}, {time.monotonic() - self._started:.0f} s)")
        elif isinstance(event, Log):
            self._line(f"{event.level}: {event.message}")
        elif isinstance(event, Done):
            self._line(f"wrote {len(event.frames)} frames to {event.output_dir} in "
                       f"{event.timings.get('total', 0.0):.1f} s")
        elif isinstance(event, Failed):
            self._end()
        self.stream.flush()

    def _bar(self, event: Progress) -> str:
        filled = self.width * event.frames_done // max(event.total_frames, 1)
        return (f"farm [{'#' * filled}{'.' * (self.width - filled)}] {event.frames_done}/{event.total_frames} "
                f"frames  ETA {_eta(event.eta_s)}  {event.message}")

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self._drawn))
        self._drawn = len(text)

    def _line(self, text: str) -> None:
        self._end()
        self.stream.write(text + "\n")

    def _end(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = 0


def _eta(seconds: float) -> str:
    return "?" if seconds < 0 else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
