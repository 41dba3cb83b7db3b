"""The command line: ``python -m t2vz_backend {text2video,controlnet,pix2pix,run,farm,worker,report,tiny,check}``.

Job options are generated from the request dataclasses: ``--motion-x`` sets ``motion_x`` and its default is the
dataclass default, so the CLI, the worker and the add-on can never disagree. A few fields have friendlier forms:
``--out`` (output_dir), ``--frame-range A-B`` (frame_start/frame_end), ``--lora PATH[:SCALE]``, ``--frame-prompt``,
``--preset`` (protocol.PRESETS, under any explicit option) and, for ControlNet, ``--control KIND=PATH[:SCALE]``,
``--control-model KIND=REF`` and ``--preprocess KIND=NAME``.

Exit status: 0 done; 2 the job could not run as asked (bad option or value, input, model, output folder, out of
memory), with one line ``error: <message> (<hint>)`` on stderr and nothing written; 1 an internal error (traceback on
stderr); 128 + N stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP (partial output removed; the first
signal cancels after the current step, a second stops at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import signal
import sys
import threading
import time
import traceback
import typing
from typing import Any

from .errors import InvalidRequestError, JobCancelled, T2VZError
from .protocol import (
    PRESETS,
    ControlSpec,
    ControlVideoRequest,
    Done,
    EditVideoRequest,
    Event,
    Failed,
    FarmSpec,
    FrameWritten,
    JobRequest,
    LoraSpec,
    MotionRequest,
    Progress,
    TextToVideoRequest,
    parse_json,
    preset_values,
    request_from_dict,
)
from .validation import CHOICES as FIELD_CHOICES

_MOTION = "as a fraction of the frame {} per frame (the request's unit: 0.0234 = 12 px of 512; positive moves the " \
          "content {})"
HELP = {
    "prompt": "what the video shows", "negative_prompt": "what it must not show", "instruction": "the edit to make",
    "model": "'tiny' (built-in random smoke-test model), a hub id, a diffusers folder or a .safetensors file",
    "seed": "random seed", "steps": "scheduler steps of the full schedule", "guidance": "classifier-free guidance",
    "width": "frame width, a multiple of 8", "height": "frame height, a multiple of 8", "frames": "number of frames",
    "chunk_size": "frames denoised together: lower needs less memory, never changes the result",
    "model_config": "single-file checkpoints: a diffusers folder or hub id with the configs and tokenizer to use "
                    "(needed offline unless SD 1.5's are in the Hugging Face cache)",
    "exact_anchor": "give frame 0 its own UNet call per step so it is bit-identical to a still (slower, "
                    "most on a GPU); off: frame 0 rides in the first chunk, equal to the still up to float rounding",
    "cache_interval": "feature reuse: one step in N runs the whole UNet, the others only its shallow branch "
                      "(1 = off; 3 = the fast preset, about 2x faster at 50 steps)",
    "cache_depth": "feature reuse: layers of the shallow branch (1-12 for SD 1.5; deeper: slower, closer to off)",
    "compile": "torch.compile the UNet/ControlNet layers (the first job pays minutes of compiling; a warm worker "
               "reuses them)",
    "channels_last": "channels-last memory format for the UNet/ControlNet",
    "scheduler": "sampler", "device": "auto, cpu, cuda, cuda:N or mps", "dtype": "precision",
    "offline": "use local files only, never the network", "overwrite": "allow a non-empty output folder",
    "allow_pickle": "allow .ckpt/.bin/.pt checkpoints (they can run arbitrary code when loaded)",
    "preview": "also write preview.mp4 or preview.gif", "fps": "frame rate of the preview",
    "vae_batch": "frames decoded at a time", "motion_x": "horizontal camera motion " + _MOTION.format("width", "left"),
    "motion_y": "vertical camera motion " + _MOTION.format("height", "up"), "motion_mode": "clean or parity shifts",
    "t0": "T' of the paper, as a training timestep (noise level) where the anchor is warped",
    "t1": "T of the paper, as a training timestep from which all frames are denoised",
    "smooth_bg": "background smoothing (needs --mask-dir)", "mask_dir": "foreground masks, one image per frame",
    "smooth_bg_strength": "weight kept from each frame's own background", "input": "folder of frames or a movie",
    "input_start": "first source frame", "input_fps": "resample a movie to this rate (0 = native)",
    "image_guidance": "how closely to follow the input frames", "long_side": "scale the input's long side to this",
    "annotators_dir": "local copy of lllyasviel/Annotators: weights of the controlnet_aux preprocessors (hed, ...)",
    # camera motion (docs/camera_motion.md)
    "motion_flow": "per-frame displacement fields in pixels (frame k -> frame 0): a float32 .npy (frames, H, W, 2) "
                   "or a folder of EXR / 16-bit PNG maps; overrides the other motion options",
    "motion_occlusion": "with --motion-flow: where frame k shows what frame 0 does not (fresh noise there): a .npy "
                        "(frames, H, W) or a folder of masks, white = disoccluded",
    "motion_width": "the frame width the homographies/flows are measured in (0: the output width)",
    "motion_height": "the frame height the homographies/flows are measured in (0: the output height)",
}
HELP.update({  # the consistency report (quality/) and its baseline
    "report": "also write report.json/.png/.html next to the frames: warp error, flow-compensated PSNR/SSIM and "
              "CLIP metrics of the result, with a contact sheet marking its worst frame pairs",
    "report_clip": "CLIP model (hub id or folder) for the report's CLIP metrics; offline it must be on disk "
                   "('' = not computed)",
    "report_vectors": "folder of Blender Vector-pass EXRs (one per frame): exact motion for the report",
    "report_compare": "another result's frame folder: the report measures it the same way and shows both",
    "baseline": "render independent stills (cross-frame attention and motion off, the same seeds) to measure the "
                "method against",
})
CHOICES = {name: values for name, values in FIELD_CHOICES.items() if name != "device"}  # device: also cuda:N
SPECIAL = {"output_dir", "loras", "frame_start", "frame_end", "controls", "frame_prompts", "motion_path",
           "motion_homographies"}
# Request fields (list indices dropped) whose option is not "--" + the field's name; a field without an option of the
# command is named as it is in the request.
OPTION_OF = {"output_dir": "--out", "frame_start": "--frame-range", "frame_end": "--frame-range", "loras": "--lora",
             "loras.path": "--lora", "loras.scale": "--lora", "controls": "--control", "controls.kind": "--control",
             "controls.path": "--control", "controls.scale": "--control", "controls.model": "--control-model",
             "controls.preprocessor": "--preprocess", "frame_prompts": "--frame-prompt"}
MODES = {"text2video": TextToVideoRequest, "controlnet": ControlVideoRequest, "pix2pix": EditVideoRequest}


class UsageError(Exception):
    """A command-line syntax error, reported on one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m t2vz_backend", description="Text2Video-Zero video generation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cls in MODES.items():
        _add_request_options(sub.add_parser(name, help=cls.__doc__.splitlines()[0], description=cls.__doc__), cls)
    run = sub.add_parser("run", help="run one job file (JSON request, or a t2vz.json sidecar to redo a job)")
    run.add_argument("job", help="path of the job file")
    run.add_argument("--out", dest="output_dir", default=None, help="write to this folder instead of the file's")
    run.add_argument("--overwrite", action="store_true", default=None, help="allow a non-empty output folder")
    from .farm_cli import add_farm_command  # issue 15: the farm command (options from protocol.FarmSpec)

    add_farm_command(sub)
    assemble = sub.add_parser("assemble", help="check a folder rendered in ranges is complete and write its preview")
    assemble.add_argument("folder", help="the job's output folder")
    assemble.add_argument("--frames", metavar="A-B", type=_frame_range, default=(0, -1),
                          help="the job's frames, all of which must be there (default: lowest to highest present)")
    assemble.add_argument("--fps", type=float, default=TextToVideoRequest.fps, help="preview frame rate")
    assemble.add_argument("--preview", choices=[p for p in FIELD_CHOICES["preview"] if p], default="mp4",
                          help="preview format")
    worker = sub.add_parser("worker", help="serve JSON-line commands on stdin, events on stdout (for the add-on)")
    worker.add_argument("--no-previews", action="store_true", help="do not send preview thumbnails")
    _add_report_command(sub)
    sub.add_parser("tiny", help="build the tiny random smoke-test model and print its folder")
    check = sub.add_parser("check", help="print Python, torch, the device and its memory")
    check.add_argument("--device", default="auto", help="device to describe (default: auto)")
    return parser


def _add_report_command(sub: Any) -> None:
    """``report OUT_DIR``: the consistency report of any folder of frames (quality/command.py)."""
    report = sub.add_parser("report", help="measure the temporal consistency of a folder of frames (ours or any)",
                            description="Write report.json, report.png and report.html for the frames in FOLDER.")
    report.add_argument("folder", metavar="OUT_DIR", help="the folder of frames to measure")
    report.add_argument("--source", metavar="DIR", default="",
                        help="the frames (folder or movie) the result was made from: the motion is measured there")
    report.add_argument("--source-start", metavar="N", type=int, default=0, help="source frame of frame 0")
    report.add_argument("--vectors", metavar="DIR", default="", help="Blender Vector-pass EXRs: exact motion")
    report.add_argument("--compare", metavar="OTHER_DIR", default="", help="another result to show side by side")
    report.add_argument("--clip-model", metavar="REF", default=None,
                        help="CLIP model (hub id or folder) for the CLIP metrics (default: the job's, else none)")
    report.add_argument("--prompt", default=None, help="the text for CLIP text alignment (default: the job's)")
    report.add_argument("--offline", action="store_true", help="never touch the network (CLIP model from disk)")
    report.add_argument("--device", default="cpu", help="device for the CLIP model (default: cpu)")
    report.add_argument("--out", dest="report_dir", metavar="DIR", default="",
                        help="write the report files here (default: OUT_DIR)")


def _add_request_options(parser: argparse.ArgumentParser, cls: type[JobRequest]) -> None:
    """One option per request field, typed and defaulted from the dataclass."""
    hints = typing.get_type_hints(cls)
    parser.add_argument("--out", dest="output_dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="output folder: a fresh folder for this job's frames (required)")
    parser.add_argument("--frame-range", metavar="A-B", type=_frame_range, default=argparse.SUPPRESS,
                        help="render only global frames A..B (0-based, inclusive; 'A-' = from A to the end)")
    parser.add_argument("--lora", dest="loras", metavar="PATH[:SCALE]", action="append", type=_lora,
                        default=argparse.SUPPRESS, help="apply a LoRA (repeatable)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=argparse.SUPPRESS,
                        help="speed preset, set before the other options: " + "; ".join(
                            f"{name}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults")
                            for name, values in PRESETS.items()) + " (draft needs an LCM/TCD LoRA, README 'Speed')")
    own = [spec for spec in dataclasses.fields(cls) if spec.name not in JobRequest.__dataclass_fields__]
    common = [spec for spec in dataclasses.fields(cls) if spec.name in JobRequest.__dataclass_fields__]
    for spec in own + common:  # the mode's own options first, as --help lists them
        if spec.name in SPECIAL or not spec.init:
            continue
        tp, default = hints[spec.name], spec.default
        text = f"{HELP.get(spec.name, spec.name.replace('_', ' '))} (default: {default!r})"
        flag = "--" + spec.name.replace("_", "-")
        if tp is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
            continue
        metavar = "{" + ",".join(CHOICES[spec.name]) + "}" if spec.name in CHOICES else spec.name.upper()
        parser.add_argument(flag, type=tp, metavar=metavar, default=argparse.SUPPRESS, help=text)
    if issubclass(cls, MotionRequest):
        parser.add_argument("--motion-homographies", metavar="FILE", type=_homographies, default=argparse.SUPPRESS,
                            help="one 3x3 homography per frame mapping frame k's pixels to frame 0's: a JSON list "
                                 "of 9 numbers (row by row) or 3x3 lists per frame, or a .npy of shape (frames, 3, 3)")
    if cls is TextToVideoRequest:
        parser.add_argument("--frame-prompt", dest="frame_prompts", action="append", default=argparse.SUPPRESS,
                            metavar="TEXT", help="one prompt per frame, in order (repeat once per frame)")
    if cls is ControlVideoRequest:
        parser.add_argument("--control", dest="controls", metavar="KIND=PATH[:SCALE]", action="append",
                            type=_control, default=[], help="a ControlNet and its frames (repeatable)")
        parser.add_argument("--control-model", metavar="KIND=REF", action="append", type=_pair, default=[],
                            help="the ControlNet model (hub id, folder, .safetensors) for KIND")
        parser.add_argument("--preprocess", metavar="KIND=NAME", action="append", type=_pair, default=[],
                            help="turn KIND's frames into control maps first (canny, depth, pose, ...)")


def request_from_args(args: argparse.Namespace) -> JobRequest:
    """The request the parsed options describe (only given options are set; the rest keep dataclass defaults)."""
    cls = MODES[args.command]
    names = {spec.name for spec in dataclasses.fields(cls)}
    values = preset_values(args.preset, cls) if "preset" in vars(args) else {}
    values.update({k: v for k, v in vars(args).items() if k in names and k not in ("controls", "frame_range")})
    if "frame_range" in vars(args):
        values["frame_start"], values["frame_end"] = args.frame_range
    for key in ("loras", "frame_prompts"):
        if key in values:
            values[key] = tuple(values[key])
    if cls is ControlVideoRequest:
        values["controls"] = _apply_control_options(args)
    return cls(**values)


def _apply_control_options(args: argparse.Namespace) -> tuple[ControlSpec, ...]:
    controls = list(args.controls)
    kinds = [c.kind for c in controls]
    for option, field in (("control_model", "model"), ("preprocess", "preprocessor")):
        for kind, value in getattr(args, option):
            if kind not in kinds:
                raise UsageError(f"--{option.replace('_', '-')} {kind}={value}: no --control {kind}=... given "
                                 f"(add --control {kind}=PATH)")
            controls = [dataclasses.replace(c, **{field: value}) if c.kind == kind else c for c in controls]
    return tuple(controls)


def _frame_range(text: str) -> tuple[int, int]:
    """``"A-B"`` -> (A, B); ``"A-"`` -> (A, -1); ``"A"`` -> (A, A)."""
    first, sep, last = text.partition("-")
    try:
        if not sep:
            return int(first), int(first)
        return int(first), int(last) if last else -1
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame range {text!r} is not A-B (e.g. 0-15)") from None


def _split_scale(text: str) -> tuple[str, float]:
    """``PATH:SCALE`` -> (PATH, SCALE); a colon that is not followed by a number belongs to the path (C:\\...)."""
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text, 1.0


def _lora(text: str) -> LoraSpec:
    path, scale = _split_scale(text)
    return LoraSpec(path=path, scale=scale)


def _pair(text: str) -> tuple[str, str]:
    kind, sep, value = text.partition("=")
    if not sep or not kind or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND=VALUE")
    return kind, value


def _control(text: str) -> ControlSpec:
    kind, value = _pair(text)
    path, scale = _split_scale(value)
    return ControlSpec(kind=kind, path=path, scale=scale)


MAX_JOB_FILE_BYTES = 64 * 2**20  # far above any real job (a sidecar of 10 000 frames is about 1 MB)


def _homographies(path: str) -> tuple[tuple[float, ...], ...]:
    """``--motion-homographies FILE``: a JSON list (9 numbers or 3x3 per frame) or a .npy (frames, 3, 3)."""
    try:
        if path.lower().endswith(".npy"):
            import numpy as np

            rows = np.load(path, allow_pickle=False).tolist()
        else:
            with open(path, "rb") as handle:
                rows = parse_json(handle.read(MAX_JOB_FILE_BYTES + 1)[:MAX_JOB_FILE_BYTES], "homographies file")
    except (OSError, ValueError, InvalidRequestError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read homographies from {path}: {exc}") from None
    if not isinstance(rows, list):
        raise argparse.ArgumentTypeError(f"{path} holds no list of homographies")
    out = []
    for k, m in enumerate(rows):
        flat = [v for row in m for v in (row if isinstance(row, list) else [None])] \
            if isinstance(m, list) and m and isinstance(m[0], list) else m
        if not isinstance(flat, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in flat):
            raise argparse.ArgumentTypeError(f"{path}: entry {k} is not a list of numbers")
        out.append(tuple(float(v) for v in flat))
    return tuple(out)


def _load_job_file(args: argparse.Namespace) -> tuple[JobRequest, FarmSpec | None]:
    """The job file's request (with --out/--overwrite applied) and its farm entry (None: not a farm job); any damage
    to the file is one InvalidRequestError."""
    from .farm_cli import split_farm_entry

    try:
        with open(args.job, "rb") as handle:
            raw = handle.read(MAX_JOB_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read job file {args.job}: {exc.strerror or exc}",
                                  hint="check the path") from None
    if len(raw) > MAX_JOB_FILE_BYTES:
        raise InvalidRequestError(f"job file {args.job} is larger than {MAX_JOB_FILE_BYTES // 2**20} MiB",
                                  hint="give a job file (JSON request) or a t2vz.json sidecar")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"job file {args.job} is not UTF-8 text (byte {exc.start})",
                                  hint="give a job file (JSON request) or a t2vz.json sidecar") from None
    data, farm = split_farm_entry(parse_json(text, what=f"job file {args.job}"))  # issue 15: a "farm" object
    if isinstance(data, dict) and "request" in data and "type" not in data:
        data = data["request"]  # a t2vz.json sidecar: redo its job
    request = request_from_dict(data)
    changes = {k: v for k, v in (("output_dir", args.output_dir), ("overwrite", args.overwrite)) if v is not None}
    return dataclasses.replace(request, **changes), farm


def run_request(request: JobRequest, *, stream: typing.TextIO | None = None) -> int:
    """Run one job in this process with a progress bar; returns the exit status."""
    from .service.outputs import check_output
    from .validation import check_request

    check_request(request)  # run_job checks again; here it answers before torch is even imported
    check_output(request)
    from .models.cache import ModelCache
    from .service.jobs import run_job

    stream = stream or sys.stderr
    return run_cancellable(lambda cancelled: run_job(request, cache=ModelCache(), emit=ProgressBar(stream),
                                                     should_cancel=cancelled), stream)


def run_cancellable(run: typing.Callable[[typing.Callable[[], bool]], Done], stream: typing.TextIO,
                    cancelled_text: str = "cancelled; partial output removed") -> int:
    """``run(should_cancel)`` with SIGINT (Ctrl-C), SIGTERM and SIGHUP as a cancel (a second one stops at once);
    prints the output folder. Returns the exit status: 0 done, 128 + the signal when cancelled (130 for Ctrl-C)."""
    from .service.signals import exit_status, on_stop_signals, signal_name

    cancel = threading.Event()
    stopped_by: list[int] = []

    def on_stop(signum: int) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt  # a second signal: stop at once (run_job still removes the staging folder)
        stopped_by.append(signum)
        cancel.set()
        _say(stream, f"\n{signal_name(signum)}: cancelling after this step (again to stop at once)\n")

    try:
        with on_stop_signals(on_stop):
            done = run(cancel.is_set)
    except (JobCancelled, KeyboardInterrupt):
        _say(stream, cancelled_text + "\n")
        return exit_status(stopped_by[0] if stopped_by else signal.SIGINT)
    print(done.output_dir)
    return 0


def _say(stream: typing.TextIO, text: str) -> None:
    """Write a status line where the terminal may be gone already (SIGHUP)."""
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status (see the module docstring)."""
    args = argparse.Namespace(command="")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "worker":
            from .service.worker import main as worker_main

            return worker_main(previews=not args.no_previews)
        if args.command == "check":
            return _check(args.device)
        if args.command == "report":
            from .quality.command import run_report_command

            return run_report_command(args)
        if args.command == "assemble":  # issue 15: the last task of a job rendered in ranges
            from .service.assemble import assemble

            first, last = args.frames
            print(assemble(args.folder, first=first, count=last - first + 1 if last >= first else 0, fps=args.fps,
                           preview=args.preview))
            return 0
        if args.command == "tiny":
            from .models.tiny import LABEL, ensure_tiny_models

            paths = ensure_tiny_models()
            print(f"{paths.root}\n  sd: {paths.sd}\n  controlnet: {paths.controlnet}\n  pix2pix: {paths.pix2pix}\n"
                  f"  ({LABEL})")
            return 0
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # before torch is imported
        farm = None
        if args.command in ("run", "farm"):
            request, farm = _load_job_file(args)
        else:
            request = request_from_args(args)
        if args.command == "farm" or farm is not None:
            from .farm_cli import farm_from_args, run_farm_request

            return run_farm_request(request, farm_from_args(args, farm))
        return run_request(request)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except T2VZError as exc:
        where = option_for(exc.field, args.command) or exc.field
        print(f"error: {where + ': ' if where else ''}{_one_line(str(exc))}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print("error: internal error (this is a bug in t2vz; please report it with the traceback above)",
              file=sys.stderr)
        return 1


def option_for(field: str, command: str) -> str:
    """The option of ``command`` that sets request field ``field`` (``controls[0].model`` -> ``--control-model``),
    or "" when the command has none."""
    name = re.sub(r"\[\d+\]", "", field).removeprefix("farm.")  # issue 15: farm options are --ranges, ...
    option = OPTION_OF.get(name) or "--" + name.replace("_", "-")
    return option if option in command_options(command) else ""


@functools.cache
def command_options(command: str) -> frozenset[str]:
    """Every option string of ``command`` (``--out``, ``--frame-range``, ...); empty for an unknown command."""
    for action in build_parser()._actions:  # argparse lists its sub-commands nowhere public
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return frozenset(o for a in action.choices[command]._actions for o in a.option_strings)
    return frozenset()


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def _check(device: str) -> int:
    """Print what a "Check backend" button shows: versions, the device and its memory."""
    import platform

    from .models.devices import describe_device
    from .service.sidecar import library_versions

    versions = library_versions()
    info = describe_device(device)
    memory = f"{info.vram_total_gb:.1f} GB, {info.vram_free_gb:.1f} GB free" if info.vram_total_gb else "n/a"
    print(f"t2vz {versions['t2vz']} (protocol {versions['protocol']})")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"torch {versions['torch']}, diffusers {versions['diffusers']}, transformers {versions['transformers']}")
    print(f"device {info.device}: {info.name}; VRAM {memory}; auto dtype {info.dtype}")
    return 0


class ProgressBar:
    """Shows job events on a stream: a redrawn ``\\r`` bar on a terminal, at most a line a second otherwise."""

    def __init__(self, stream: typing.TextIO, width: int = 24) -> None:
        self.stream: typing.TextIO | None = stream
        self.width = width
        self.tty = stream.isatty()
        self.frames = 0
        self._last = 0.0
        self._drawn = 0  # length of the bar line on screen

    def __call__(self, event: Event) -> None:
        """Show ``event``; a stream that cannot be written any more (a closed terminal: SIGHUP) is dropped, because
        progress must never be the reason a job fails."""
        if self.stream is None:
            return
        try:
            self._show(event)
        except (OSError, ValueError):
            self.stream = None

    def _show(self, event: Event) -> None:
        if isinstance(event, FrameWritten):
            self.frames += 1
        elif isinstance(event, Done):
            self._end()
            self.stream.write(f"wrote {len(event.frames)} frames to {event.output_dir} "
                              f"in {event.timings.get('total', 0.0):.1f} s\n")
        elif isinstance(event, Failed):
            self._end()
        elif isinstance(event, Progress) and event.stage == "load":
            self._end()
            self.stream.write((event.message or "loading the model") + "\n")
        elif isinstance(event, Progress) and event.total_steps:
            share = event.fraction if event.fraction >= 0 else event.step / event.total_steps
            filled = min(self.width, int(self.width * share))
            eta = "?" if event.eta_s < 0 else f"{int(event.eta_s) // 60}:{int(event.eta_s) % 60:02d}"
            text = (f"{event.stage:<8}[{'#' * filled}{'.' * (self.width - filled)}] step {event.step}/"
                    f"{event.total_steps}  {self.frames}/{event.total_frames or '?'} frames  ETA {eta}")
            self._draw(text, force=event.step == event.total_steps and share >= 1)
        self.stream.flush()

    def _draw(self, text: str, force: bool) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._drawn))
            self._drawn = len(text)
        elif force or now - self._last >= 1.0:
            self.stream.write(text + "\n")
            self._last = now

    def _end(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = 0
