"""The one contract between the Blender add-on, the command line, batch scripts and the engine.

Requests (what to make) and events (what happened) are frozen dataclasses that serialise to plain JSON. This module
imports neither bpy nor torch: the add-on ships it inside its zip and the worker speaks it over stdin/stdout.

JSON shapes::

    request  {"type": "text2video" | "controlnet" | "pix2pix", ...fields}
    event    {"type": "progress" | "frame" | "preview" | "report" | "done" | "failed" | ..., ...fields}
    command  {"op": "run", "id": "...", "job": <request>} | {"op": "cancel", "id": "..."} | {"op": "unload"}
             | {"op": "ping", "version": "..."} | {"op": "shutdown"}

Field-by-field validation that needs no model and no media decoding lives in :mod:`t2vz_backend.validation`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from .codec import decode, describe_value, encode
from .errors import InvalidRequestError, T2VZError

PROTOCOL_VERSION = 1
MAX_DEPTH = 16  # JSON nesting levels a command may have; the deepest real one (run > job > controls > [i]) has 4

# --------------------------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA file applied on top of the base model."""

    path: str  # a .safetensors LoRA (kohya or diffusers format), or a hub id / folder holding one
    scale: float = 1.0  # strength; 0 disables it


@dataclass(frozen=True)
class MotionKey:
    """The camera pose of one frame relative to frame 0, for affine motion dynamics.

    ``dx``/``dy`` are fractions of the frame width/height (0.1 = a tenth of the frame), ``zoom`` is a scale factor
    (>1 zooms in) and ``rotation`` is in degrees, counter-clockwise, about the frame centre.
    """

    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 1.0
    rotation: float = 0.0


@dataclass(frozen=True)
class ControlSpec:
    """One ControlNet and the frame sequence that drives it."""

    kind: str  # "pose", "depth", "canny", ... or any name when ``model`` is given
    path: str  # a folder of images, a movie, one image, or (pose) a keypoint JSON file
    model: str = ""  # ControlNet hub id, folder or .safetensors; "" = the default for ``kind``
    scale: float = 1.0  # controlnet_conditioning_scale
    start: float = 0.0  # fraction of the schedule where this ControlNet starts acting
    end: float = 1.0  # ... and where it stops
    preprocessor: str = "none"  # "none" (frames are control maps already), "canny", "depth", "pose", "hed", ...
    low_threshold: int = 100  # canny only
    high_threshold: int = 200  # canny only
    start_frame: int = 0  # first source frame to use
    fps: float = 0.0  # resample a movie source to this rate; 0 = native


@dataclass(frozen=True)
class JobRequest:
    """Options every job has. Subclasses set the defaults that suit their mode."""

    TYPE: ClassVar[str] = ""

    output_dir: str = ""  # a fresh folder for this job's frames; must be empty unless ``overwrite``
    model: str = "tiny"  # "tiny" (built-in random smoke-test model), a hub id, a diffusers folder or a .safetensors
    # single-file checkpoints only: a diffusers folder (or hub id) whose configs and tokenizer to use; needed offline
    # unless SD 1.5's configs are already in the Hugging Face cache
    model_config: str = ""
    loras: tuple[LoraSpec, ...] = ()
    seed: int = 0
    steps: int = 50  # scheduler steps of the full schedule (frame 0 matches a still made with this many)
    guidance: float = 7.5  # classifier-free guidance scale; <= 1 disables CFG
    negative_prompt: str = ""
    width: int = 512  # multiples of 8; 0 = take it from the input frames where a mode has them
    height: int = 512
    frames: int = 8  # number of frames; 0 = as many as the input has where a mode has input
    frame_start: int = -1  # render only frames frame_start..frame_end (inclusive, 0-based); -1 = from the first
    frame_end: int = -1  # -1 = to the last
    chunk_size: int = 8  # frames denoised together (memory), never changes the result
    # False (default): the anchor (frame 0) rides in the first chunk, one UNet call per step for a clip that fits in
    # a chunk; frame 0 equals diffusers' still up to float rounding (at most one 8-bit level). True: the anchor gets
    # a call of its own each step (its 2-row call leaves a GPU mostly idle), so it is bit-identical to the still.
    exact_anchor: bool = False
    scheduler: str = "ddim"
    device: str = "auto"  # "auto", "cuda", "cuda:1", "mps", "cpu"
    dtype: str = "auto"  # "auto", "float16", "bfloat16", "float32"
    offline: bool = False  # local files only: never touch the network
    allow_pickle: bool = False  # allow .ckpt/.bin/.pt checkpoints (they can run arbitrary code when loaded)
    overwrite: bool = False  # allow a non-empty output folder (its frames are replaced)
    preview: str = ""  # "", "mp4" or "gif": also write preview.<ext> of the frames
    fps: float = 8.0  # frame rate of the preview
    vae_batch: int = 2  # frames decoded by the VAE at a time
    # Speed (README "Speed"; acceleration/). Feature reuse: one step in cache_interval runs the whole UNet, the
    # others only its shallow branch, cache_depth layers deep, with the deep features of the last full step
    # (1 = off). compile: torch.compile the UNet's and ControlNets' layers (the first job in a worker pays the
    # compile). channels_last: channels-last weights and activations.
    cache_interval: int = 1
    cache_depth: int = 1
    compile: bool = False
    channels_last: bool = False
    # --- Temporal-consistency report (t2vz_backend/quality/) and its baseline ---
    report: bool = False  # also write report.json/.png/.html: warp error, PSNR/SSIM, CLIP metrics of the result
    report_clip: str = ""  # CLIP model (hub id or folder) for the report's CLIP metrics; "" = not computed
    report_vectors: str = ""  # folder of Blender Vector-pass EXRs, one per frame: the report's exact motion
    report_compare: str = ""  # another result's folder: the report measures it the same way and shows both
    # independent stills: cross-frame attention, motion dynamics and background smoothing off, the same seeds,
    # so a report of it against the normal job shows what the method adds (pipelines/baseline.py)
    baseline: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **encode(self)}


# --- Motion dynamics (camera motion; docs/camera_motion.md) --------------------------------------------------------


@dataclass(frozen=True)
class MotionRequest(JobRequest):
    """The motion-dynamics fields every mode shares: how the anchor latent is warped for each frame.

    One motion source is used, the first given of: ``motion_flow`` (per-pixel displacement fields, e.g. from depth),
    ``motion_homographies`` (one 3x3 matrix per frame, e.g. from the Blender camera), ``motion_path`` (pan, zoom,
    roll keys) and the constant drift ``motion_x``/``motion_y``. Conventions (docs/camera_motion.md): pixel
    coordinates have their origin at the top-left corner of the frame, x right, y down, pixel (i, j) covering
    [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5); a homography or a displacement maps a pixel of frame k
    to where the same content is in frame 0.
    """

    motion_x: float = 0.0  # translation per frame, as a fraction of the frame width (paper's lambda / 512)
    motion_y: float = 0.0  # ... and of the frame height. Content moves left/up for positive values
    motion_path: tuple[MotionKey, ...] = ()  # optional per-frame camera pose; overrides motion_x/motion_y
    motion_mode: str = "clean"  # "clean": exact sub-pixel shifts; "parity": the reference implementation's rounding
    # One 3x3 matrix per frame (9 numbers, row-major): (x0, y0, 1) ~ H_k (xk, yk, 1) in pixels; H_0 = identity.
    motion_homographies: tuple[tuple[float, ...], ...] = ()
    # Per-frame displacement fields (pixels): source = p + d_k(p). A float32 .npy stack (frames, H, W, 2) or a
    # folder of EXR (R = dx, G = dy) / 16-bit PNG maps (docs/camera_motion.md), one per frame.
    motion_flow: str = ""
    # With motion_flow: where frame k shows what frame 0 does not (disoccluded). A .npy stack (frames, H, W) or a
    # folder of masks, white/nonzero = disoccluded; those latent cells get fresh noise, never warped content.
    motion_occlusion: str = ""
    motion_width: int = 0  # the frame size, in pixels, homographies and flows are measured in; 0 = the output size
    motion_height: int = 0


@dataclass(frozen=True)
class TextToVideoRequest(MotionRequest):
    """Text2Video-Zero text->video: motion dynamics in the latents plus cross-frame attention (paper Sect. 3)."""

    TYPE: ClassVar[str] = "text2video"

    prompt: str = ""
    frame_prompts: tuple[str, ...] = ()  # optional, one prompt per frame (overrides ``prompt`` frame by frame)
    motion_x: float = 12 / 512  # the paper's constant drift: 12 px of 512 per frame
    motion_y: float = 12 / 512
    t0: int = 881  # T' as a training timestep (noise level) where the anchor latent is warped
    t1: int = 941  # T as a training timestep: all frames are denoised from here
    smooth_bg: bool = False  # background smoothing with the warped anchor (paper Sect. 3.3), needs ``mask_dir``
    smooth_bg_strength: float = 0.4  # weight kept from each frame's own latent in the background
    mask_dir: str = ""  # per-frame foreground masks (white = foreground), one image per frame


@dataclass(frozen=True)
class ControlVideoRequest(MotionRequest):
    """ControlNet-guided video: shared initial noise, cross-frame attention in the UNet and every ControlNet."""

    TYPE: ClassVar[str] = "controlnet"

    prompt: str = ""
    controls: tuple[ControlSpec, ...] = ()
    steps: int = 20
    guidance: float = 9.0
    width: int = 0
    height: int = 0
    frames: int = 0
    long_side: int = 512  # when width/height are 0: scale the control frames so their long side is this
    # Motion dynamics are off by default (no motion field given): the control maps drive the video.
    # a local copy of the hub repository lllyasviel/Annotators: the weights of the controlnet_aux preprocessors
    # (hed, midas, openpose, ...); they are loaded from here only, never downloaded
    annotators_dir: str = ""


@dataclass(frozen=True)
class EditVideoRequest(MotionRequest):
    """Video Instruct-Pix2Pix: edit a frame sequence with an instruction, 3-way guidance, cross-frame attention.

    Motion dynamics are off by default (no motion field given): each frame starts from its own noise.
    """

    TYPE: ClassVar[str] = "pix2pix"

    instruction: str = ""
    input: str = ""  # folder of images or a movie
    input_start: int = 0  # first source frame
    input_fps: float = 0.0  # resample a movie to this rate; 0 = native
    image_guidance: float = 1.5
    steps: int = 20
    width: int = 0
    height: int = 0
    frames: int = 0
    long_side: int = 512  # input resized so its long side is this (multiples of 8, aspect kept); 0 = native size


# --------------------------------------------------------------------------------------------------------------------
# Farm (issue 15): how one job is split across a Ray cluster. Bounds in validation.LIMITS ("farm.<field>").
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FarmSpec:
    """Render one job as contiguous frame ranges on a Ray cluster (``python -m t2vz_backend farm``, a job file's
    ``"farm"`` entry, or a worker ``run`` command's ``"farm"``). Frames equal the single-machine run's."""

    address: str = ""  # Ray cluster: "" = Ray's default (RAY_ADDRESS, else a new local instance), "auto", HOST:PORT
    ranges: int = 0  # split into this many contiguous ranges; 0 = one per worker (unless range_frames is set)
    range_frames: int = 0  # or: ranges of this many frames each (the last may be shorter); 0 = use ``ranges``
    workers: int = 0  # actors to start; 0 = one per GPU of the cluster, or one per cpus_per_worker CPUs without GPUs
    gpus_per_worker: float = 1.0  # GPUs each actor reserves (0.5 = two actors share a GPU); 0 = CPU workers
    cpus_per_worker: int = 1  # CPU workers: cores reserved, and torch threads of any worker that renders on a CPU
    retries: int = 3  # how often a range may be retried (on any worker) after a worker or node is lost
    shared_storage: bool = False  # output_dir is the same path on every worker: workers write frames in place
    token_file: str = ""  # the cluster's Ray auth token file (RAY_AUTH_TOKEN_PATH); "" = Ray's (~/.ray/auth_token)
    resume: bool = False  # continue an unfinished farm job in output_dir: render only its missing frames


REQUEST_TYPES: dict[str, type[JobRequest]] = {
    cls.TYPE: cls for cls in (TextToVideoRequest, ControlVideoRequest, EditVideoRequest)
}
AnyRequest = Union[TextToVideoRequest, ControlVideoRequest, EditVideoRequest]

# Speed presets: the request fields each sets (the add-on's preset buttons, the CLI's --preset). "quality" puts
# them back to the mode's defaults. "draft" needs a few-step model: a TCD or LCM LoRA (README "Speed") or an
# LCM-distilled checkpoint; guidance 1 turns classifier-free guidance off (half the UNet rows). TCD, not LCM: with
# eta 0 it steps deterministically, where LCM re-noises every frame with fresh noise at every step (flicker).
PRESET_FIELDS = ("scheduler", "steps", "guidance", "cache_interval", "cache_depth")
PRESETS: dict[str, dict[str, Any]] = {
    "quality": {},
    "fast": {"cache_interval": 3, "cache_depth": 1},
    "draft": {"scheduler": "tcd", "steps": 4, "guidance": 1.0, "cache_interval": 1},
}


def preset_values(preset: str, cls: type[JobRequest]) -> dict[str, Any]:
    """Every ``PRESET_FIELDS`` value of ``preset`` for request class ``cls`` (its defaults where the preset is
    silent), so applying a preset always gives the same settings whatever was set before."""
    if preset not in PRESETS:
        raise InvalidRequestError(f"unknown preset {preset!r}", field="preset",
                                  hint=f"use one of {', '.join(PRESETS)}")
    defaults = cls()
    return {name: PRESETS[preset].get(name, getattr(defaults, name)) for name in PRESET_FIELDS}

# --------------------------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    TYPE: ClassVar[str] = ""

    job_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.TYPE, **encode(self)}


@dataclass(frozen=True)
class Progress(Event):
    """Denoising progress in the user's units: ``step`` of ``total_steps`` denoising steps of the schedule (the
    request's ``steps``, whatever the frames, chunks or anchor layout), ``frames_done`` of ``total_frames`` frames
    written, and ``fraction``, the share of the denoising work done (UNet frame-passes), for smooth bars."""

    TYPE: ClassVar[str] = "progress"

    stage: str = "denoise"  # "load", "prepare", "denoise", "decode", "report" (steps = frame pairs measured)
    step: int = 0
    total_steps: int = 0
    frames_done: int = 0
    total_frames: int = 0
    eta_s: float = -1.0  # seconds left, -1 while unknown
    message: str = ""
    fraction: float = -1.0  # share of the denoising work done, 0-1; -1 outside the denoising stage


@dataclass(frozen=True)
class FrameWritten(Event):
    TYPE: ClassVar[str] = "frame"

    index: int = 0  # global frame index
    path: str = ""


@dataclass(frozen=True)
class Preview(Event):
    """A small PNG of a finished frame, base64-encoded, for a live thumbnail."""

    TYPE: ClassVar[str] = "preview"

    index: int = 0
    width: int = 0
    height: int = 0
    png_base64: str = ""


@dataclass(frozen=True)
class Done(Event):
    TYPE: ClassVar[str] = "done"

    output_dir: str = ""
    frames: tuple[str, ...] = ()  # written frame files, in frame order
    first_frame: int = 0  # global index of frames[0]
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, prepare, denoise, decode, total


@dataclass(frozen=True)
class Report(Event):
    """The job's consistency report is written (``report`` option): its files and headline figures.

    Sent after the files are in the output folder and before ``Done``. Figures: warp error in 8-bit levels (lower
    is steadier), PSNR in dB, SSIM 0-1, CLIP frame consistency 0-1 and text alignment (100 x cosine), -1 where not
    computed; ``flow`` says where the motion came from: "vectors", "source" or "output".
    """

    TYPE: ClassVar[str] = "report"

    path: str = ""  # report.json
    image: str = ""  # report.png (contact sheet + warp error per pair)
    page: str = ""  # report.html
    flow: str = ""
    warp_error: float = 0.0
    warp_error_max: float = 0.0
    worst_pair: int = 0  # global frame t of the worst pair t -> t+1
    psnr: float = 0.0
    ssim: float = 0.0
    clip_consistency: float = -1.0
    clip_text: float = -1.0
    compared_warp_error: float = -1.0  # the compared result's (report_compare), -1 without one


@dataclass(frozen=True)
class Failed(Event):
    TYPE: ClassVar[str] = "failed"

    kind: str = "error"  # invalid_request, input, model, dependency, output, cancelled, out_of_memory, internal
    message: str = ""
    hint: str = ""
    field: str = ""  # the request field at fault, when there is one

    @classmethod
    def from_error(cls, error: BaseException, job_id: str = "") -> Failed:
        """The event that reports ``error``: a ``T2VZError``'s kind, message, hint and field unchanged; anything
        else is a bug in t2vz, reported as ``internal`` (its traceback belongs in the backend log)."""
        if isinstance(error, T2VZError):
            return cls(job_id=job_id, kind=error.kind, message=error.message, hint=error.hint, field=error.field)
        return cls(job_id=job_id, kind="internal", message=f"{type(error).__name__}: {error}"[:2000],
                   hint="this is a bug in t2vz; the backend log has the traceback")


@dataclass(frozen=True)
class Pong(Event):
    TYPE: ClassVar[str] = "pong"

    version: str = ""
    protocol: int = PROTOCOL_VERSION
    python: str = ""
    torch: str = ""
    device: str = ""


@dataclass(frozen=True)
class Unloaded(Event):
    TYPE: ClassVar[str] = "unloaded"

    models: int = 0  # how many cached pipelines were dropped


@dataclass(frozen=True)
class Log(Event):
    TYPE: ClassVar[str] = "log"

    level: str = "info"
    message: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (Progress, FrameWritten, Preview, Done, Failed, Pong, Unloaded, Log, Report)
}

# --------------------------------------------------------------------------------------------------------------------
# Worker commands
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    OP: ClassVar[str] = "run"
    id: str
    job: AnyRequest
    farm: FarmSpec | None = None  # render on a Ray cluster instead of in the worker (service/farm.py)

    def to_dict(self) -> dict[str, Any]:
        data = {"op": self.OP, "id": self.id, "job": self.job.to_dict()}
        if self.farm is not None:
            data["farm"] = encode(self.farm)
        return data


@dataclass(frozen=True)
class Cancel:
    OP: ClassVar[str] = "cancel"
    id: str = ""  # "" cancels whatever runs

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.OP, "id": self.id}


@dataclass(frozen=True)
class Unload:
    OP: ClassVar[str] = "unload"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.OP}


@dataclass(frozen=True)
class Ping:
    OP: ClassVar[str] = "ping"
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.OP, "version": self.version}


@dataclass(frozen=True)
class Shutdown:
    OP: ClassVar[str] = "shutdown"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.OP}


Command = Union[RunJob, Cancel, Unload, Ping, Shutdown]

# --------------------------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------------------------


def dumps(message: JobRequest | Event | Command) -> str:
    """One JSON line (no newline) for a request, event or command."""
    return json.dumps(message.to_dict(), separators=(",", ":"), allow_nan=False)


def request_from_dict(data: Any) -> AnyRequest:
    """Build a request from parsed JSON, strictly: unknown fields and wrong types are errors naming the field."""
    if not isinstance(data, dict):
        raise InvalidRequestError("a job must be a JSON object", hint='send {"type": "text2video", ...}')
    kind = data.get("type")
    cls = REQUEST_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidRequestError(f"unknown job type {describe_value(kind)}", field="type",
                                  hint=f"use one of {', '.join(sorted(REQUEST_TYPES))}")
    return decode(cls, {k: v for k, v in data.items() if k != "type"}, "")


def farm_from_dict(data: Any) -> FarmSpec | None:
    """A ``FarmSpec`` from parsed JSON (``None`` stays None: no farm), strictly, errors naming ``farm.<field>``."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InvalidRequestError("'farm' must be a JSON object", field="farm", hint='e.g. {"ranges": 4}')
    return decode(FarmSpec, data, "farm.")


def event_from_dict(data: Any) -> Event:
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        raise InvalidRequestError(f"not an event: {describe_value(data)}", field="type")
    return decode(EVENT_TYPES[kind], {k: v for k, v in data.items() if k != "type"}, "")


def command_from_dict(data: Any) -> Command:
    """Parse one worker command (``{"op": ...}``)."""
    if not isinstance(data, dict):
        raise InvalidRequestError("a command must be a JSON object", field="op", hint='send {"op": "ping"}')
    op = data.get("op")
    rest = {k: v for k, v in data.items() if k != "op"}
    if op == "run":
        unknown = set(rest) - {"id", "job", "farm"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidRequestError(f"unknown field {name!r} in a run command", field=name,
                                      hint="use id, job and (optionally) farm")
        job_id = rest.get("id", "")
        if not isinstance(job_id, str):
            raise InvalidRequestError("field 'id' must be a string", field="id")
        return RunJob(id=job_id, job=request_from_dict(rest.get("job")), farm=farm_from_dict(rest.get("farm")))
    simple = {"cancel": Cancel, "unload": Unload, "ping": Ping, "shutdown": Shutdown}
    cls = simple.get(op) if isinstance(op, str) else None
    if cls is None:
        raise InvalidRequestError(f"unknown command {describe_value(op)}", field="op",
                                  hint="use one of run, cancel, unload, ping, shutdown")
    return decode(cls, rest, "")


def parse_json(text: str | bytes, what: str = "command") -> Any:
    """``json.loads`` whose every failure (syntax, nesting, numbers Python cannot hold) is an InvalidRequestError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "send one JSON object per line" if what == "command" else "fix the file"
        raise InvalidRequestError(f"invalid JSON in the {what}: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                  hint=hint) from None
    except (ValueError, RecursionError) as exc:  # over 4300 digits, nesting deeper than the interpreter allows
        raise InvalidRequestError(f"the {what} cannot be read: {str(exc)[:200] or type(exc).__name__}",
                                  hint="give numbers of normal size and a shallow JSON object") from None
    _check_depth(data, what)
    return data


def _check_depth(data: Any, what: str) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` (checked without recursion)."""
    level: list[Any] = [data]
    for _ in range(MAX_DEPTH + 1):
        level = [v for item in level if isinstance(item, (dict, list))
                 for v in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise InvalidRequestError(f"the {what} is nested more than {MAX_DEPTH} levels deep",
                              hint="requests are flat objects with a few lists of objects")


def loads_command(line: str) -> Command:
    return command_from_dict(parse_json(line))


def loads_event(line: str) -> Event:
    return event_from_dict(json.loads(line))
