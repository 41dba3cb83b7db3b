"""Validate a request completely before any work, without torch, models or decoding media.

``validate_request`` returns every problem it finds, each naming the field, the bad value and the fix, so the
Blender panel can show them beside the settings; ``check_request`` raises the first as ``InvalidRequestError``.
Checks that need the media (frame counts, image sizes) or the model (family, channels) happen in the engine's own
``check_inputs`` step, still before any denoising.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from . import homography, model_refs
from .errors import Problem
from .protocol import ControlVideoRequest, EditVideoRequest, FarmSpec, JobRequest, MotionRequest, TextToVideoRequest

SCHEDULERS = ("ddim", "ddpm", "pndm", "dpm++", "dpm++sde", "unipc", "euler", "euler_a", "lms", "tcd", "lcm")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float16", "bfloat16", "float32")
PREVIEWS = ("", "mp4", "gif")
MOTION_MODES = ("clean", "parity")
# Request fields whose value is one of a list (``device`` also takes "cuda:N"): the CLI and the add-on offer these.
CHOICES: dict[str, tuple[str, ...]] = {
    "scheduler": SCHEDULERS, "device": DEVICES, "dtype": DTYPES, "preview": PREVIEWS, "motion_mode": MOTION_MODES,
}
MAX_TRAIN_TIMESTEP = 999  # SD 1.x schedules have 1000 training timesteps
MAX_SIZE = 4096  # pixels per side
SD15_SKIPS = 12  # skip connections (= up layers) of SD 1.5's UNet: the deepest feature-reuse branch
# Frames of one video (job): every rendered frame's latents, and every frame's control maps or source frames, stay
# in memory for the whole job (10 000 control maps at 512x512 are 7.5 GB). Far below the 6-digit frame names
# (frame_999999.png); render longer material as several jobs.
MAX_FRAMES = 10_000
MAX_SOURCE_FRAME = 1_000_000  # first source frame to use: an 11-hour movie at 24 fps (movies decode from the start)
MAX_FPS = 120.0  # resampling a source above its own rate only repeats frames; previews play at most this fast
MAX_GIF_FPS = 50.0  # GIF delays are whole 1/100 s, and players slow delays below 2/100 s down to 1/10 s
PREPROCESSORS = ("none", "raw", "canny", "depth", "pose",  # built in (conditions/preprocess.py)
                 "hed", "midas", "openpose", "lineart", "lineart_anime", "mlsd", "pidi", "normalbae")  # controlnet_aux


@dataclass(frozen=True)
class Limit:
    """The accepted range of one numeric request field (inclusive), and the range a UI slider should span.

    ``soft_min``/``soft_max`` are what a slider shows by default (typed values may go to ``min``/``max``);
    ``typical`` completes the hint of an out-of-range value ("20-50 is typical"); ``reason`` says why the maximum
    is where it is, in the message of a value above it.
    """

    min: float
    max: float
    soft_min: float | None = None
    soft_max: float | None = None
    typical: str = ""
    reason: str = ""


_IN_MEMORY = "every frame's latents and control maps or source frames stay in memory; render longer videos as " \
             "several jobs"
# Every numeric bound of the contract, in one place: validation checks against it and the add-on builds its
# properties' min/max from it. Keys are request fields; nested specs use "controls.<field>" / "loras.<field>"; the
# key of a list field ("controls", "loras") bounds its length.
LIMITS: dict[str, Limit] = {
    "seed": Limit(0, 2**63 - 1),
    "steps": Limit(2, 1000, soft_max=100, typical="20-50 is typical", reason="SD has 1000 training timesteps"),
    "guidance": Limit(0.0, 50.0, soft_max=20.0, typical="use 0-1 for no guidance, 7.5 typical"),
    "width": Limit(8, MAX_SIZE, soft_max=1024, typical="SD 1.5: 512"),
    "height": Limit(8, MAX_SIZE, soft_max=1024, typical="SD 1.5: 512"),
    "long_side": Limit(8, MAX_SIZE, soft_max=1024, typical="e.g. 512, or 0 for native"),
    "frames": Limit(0, MAX_FRAMES, soft_max=64, reason=_IN_MEMORY),
    "chunk_size": Limit(1, 64, soft_max=32, typical="use 1 to 16", reason="64 frames x 3 guidance branches in one "
                        "UNet call fill the largest GPUs"),
    "vae_batch": Limit(1, 32, soft_max=16, typical="use 1-4", reason="32 frames decoded at once fill the largest GPUs"),
    "fps": Limit(0.1, MAX_FPS, soft_max=60.0, typical="use e.g. 8 or 24"),
    "t0": Limit(1, MAX_TRAIN_TIMESTEP - 1, typical="the default is 881"),
    "t1": Limit(2, MAX_TRAIN_TIMESTEP, typical="the default is 941"),
    "motion_x": Limit(-1.0, 1.0, soft_min=-0.1, soft_max=0.1, typical="use values like 0.02"),
    "motion_y": Limit(-1.0, 1.0, soft_min=-0.1, soft_max=0.1, typical="use values like 0.02"),
    "smooth_bg_strength": Limit(0.0, 1.0, typical="0.4 is the default"),
    "image_guidance": Limit(0.0, 50.0, soft_max=5.0, typical="1.0-1.5 is typical"),
    "input_start": Limit(0, MAX_SOURCE_FRAME, typical="use 0 or more"),
    "input_fps": Limit(0.0, MAX_FPS, soft_max=60.0, typical="use 0 for the source rate"),
    "controls.scale": Limit(-10.0, 10.0, soft_min=0.0, soft_max=2.0),
    "controls.start_frame": Limit(0, MAX_SOURCE_FRAME, typical="use 0 or more"),
    "controls.fps": Limit(0.0, MAX_FPS, soft_max=60.0, typical="use 0 for the source rate"),
    "loras.scale": Limit(-10.0, 10.0, soft_min=0.0, soft_max=2.0),
    # Canny's gradient magnitude (L1, 3x3 Sobel, 8-bit input) never exceeds 8 x 255.
    "controls.low_threshold": Limit(0, 2040, soft_max=500, typical="100 is the default"),
    "controls.high_threshold": Limit(0, 2040, soft_max=500, typical="200 is the default"),
    "controls": Limit(0, 8, reason="each ControlNet is a model of its own in memory and a pass per step"),
    "loras": Limit(0, 16),
    # speed (feature reuse, acceleration/feature_reuse.py); the engine checks cache_depth against the model's UNet
    "cache_interval": Limit(1, 1000, soft_max=10, typical="1 = off; 2-5 is typical, the Fast preset uses 3"),
    "cache_depth": Limit(1, SD15_SKIPS, typical=f"1 is the default; SD 1.5's UNet has {SD15_SKIPS} layers"),
    # Farm options (protocol.FarmSpec, issue 15): checked by validate_farm.
    "farm.ranges": Limit(0, 100_000, soft_max=64, typical="0 = one range per worker"),
    "farm.range_frames": Limit(0, 1_000_000, soft_max=240, typical="0 = split by --ranges"),
    "farm.workers": Limit(0, 10_000, soft_max=64, typical="0 = one per GPU (or per CPU worker)"),
    "farm.gpus_per_worker": Limit(0.0, 64.0, soft_max=8.0, typical="1 is typical; 0 = CPU workers"),
    "farm.cpus_per_worker": Limit(1, 1024, soft_max=64, typical="1 is typical for GPU workers"),
    "farm.retries": Limit(0, 100, soft_max=10, typical="3 is the default"),
    # motion dynamics (docs/camera_motion.md)
    "motion_width": Limit(0, MAX_SIZE, typical="the width the homographies were made for, or 0 for the output's"),
    "motion_height": Limit(0, MAX_SIZE, typical="the height the homographies were made for, or 0 for the output's"),
}


def check_request(request: JobRequest) -> None:
    """Raise ``InvalidRequestError`` for the first problem of ``request``."""
    problems = validate_request(request)
    if problems:
        raise problems[0].to_error()


def validate_request(request: JobRequest) -> list[Problem]:
    """Every problem of ``request`` that can be seen without loading a model or decoding media."""
    out: list[Problem] = []
    _common(request, out)
    if isinstance(request, TextToVideoRequest):
        _text2video(request, out)
    elif isinstance(request, ControlVideoRequest):
        _controlnet(request, out)
    elif isinstance(request, EditVideoRequest):
        _pix2pix(request, out)
    if isinstance(request, MotionRequest):
        _motion(request, out)
    return out


def frame_range(request: JobRequest, frames: int) -> tuple[int, int]:
    """The inclusive (first, last) global frame indices to render out of ``frames``."""
    first = 0 if request.frame_start < 0 else request.frame_start
    last = frames - 1 if request.frame_end < 0 else request.frame_end
    return first, last


def check_render_range(request: JobRequest, frames: int) -> None:
    """Raise if the requested sub-range does not fit ``frames`` (known only once the input is counted)."""
    problem = _range_problem(request, frames)
    if problem is not None:
        raise problem.to_error()


def _range_problem(request: JobRequest, frames: int) -> Problem | None:
    first, last = frame_range(request, frames)
    if 0 <= first <= last <= frames - 1:
        return None
    return Problem("frame_start" if first > frames - 1 or first > last else "frame_end",
                   f"frame range {first}-{last} is outside the video's frames 0-{frames - 1}",
                   f"choose a range within 0-{frames - 1}, or leave it empty to render every frame")


def _common(r: JobRequest, out: list[Problem]) -> None:
    if not r.output_dir:
        out.append(Problem("output_dir", "no output folder given", "set output_dir (CLI: --out DIR)"))
    if not r.model:
        out.append(Problem("model", "no model given", "use 'tiny', a hub id, a diffusers folder or a .safetensors"))
    else:
        _model_ref(out, "model", r.model, "model")
    if r.model_config:
        if not model_refs.is_checkpoint_file(r.model):
            out.append(Problem("model_config", "model_config is only used with a single-file checkpoint model",
                               "leave model_config empty for a diffusers folder or hub id"))
        elif model_refs.looks_like_path(r.model_config) and not os.path.isdir(os.path.expanduser(r.model_config)):
            out.append(Problem("model_config", f"model_config folder {r.model_config!r} does not exist",
                               "give a local diffusers SD 1.5 folder (model_index.json, unet/, tokenizer/ ...)"))
    _in_limits(out, "loras", len(r.loras), unit="the number of LoRAs")
    for i, lora in enumerate(r.loras):
        if not lora.path:
            out.append(Problem(f"loras[{i}].path", "a LoRA entry has no path", "give the LoRA .safetensors file"))
        elif model_refs.looks_like_path(lora.path) and not os.path.exists(os.path.expanduser(lora.path)):
            out.append(Problem(f"loras[{i}].path", f"LoRA file {lora.path!r} does not exist", "check the path"))
        _in_limits(out, f"loras[{i}].scale", lora.scale, "loras.scale")
    if not 0 <= r.seed < 2**63:
        out.append(Problem("seed", f"seed {r.seed} is out of range", "use a seed between 0 and 2**63-1"))
    if r.steps < LIMITS["steps"].min:
        out.append(Problem("steps", f"steps={r.steps} is too few", "use at least 2 steps (20-50 is typical)"))
    if r.steps > LIMITS["steps"].max:
        out.append(Problem("steps", f"steps={r.steps} exceeds the 1000 training timesteps", "use at most 1000"))
    _in_limits(out, "guidance", r.guidance)
    _size(r, out)
    _in_limits(out, "frames", r.frames)
    if r.frame_start < -1 or r.frame_end < -1:
        out.append(Problem("frame_start", "frame indices are 0-based", "use -1 for 'from the start'/'to the end'"))
    elif max(r.frame_start, r.frame_end) >= MAX_FRAMES:
        name = "frame_start" if r.frame_start >= MAX_FRAMES else "frame_end"
        out.append(Problem(name, f"{name}={getattr(r, name)} is above the last frame a job can have, "
                                 f"{MAX_FRAMES - 1} ({_IN_MEMORY})", f"use a frame index below {MAX_FRAMES}"))
    elif r.frame_start >= 0 and r.frame_end >= 0 and r.frame_start > r.frame_end:
        out.append(Problem("frame_end", f"frame range {r.frame_start}-{r.frame_end} is empty", "swap the two ends"))
    elif r.frames > 0 and (problem := _range_problem(r, r.frames)) is not None:
        out.append(problem)
    _in_limits(out, "chunk_size", r.chunk_size)
    _in_limits(out, "vae_batch", r.vae_batch)
    _in_limits(out, "cache_interval", r.cache_interval)
    _in_limits(out, "cache_depth", r.cache_depth)
    _choice(out, "scheduler", r.scheduler, SCHEDULERS)
    if r.device.split(":")[0] not in DEVICES:
        out.append(Problem("device", f"unknown device {r.device!r}", f"use one of {', '.join(DEVICES)} (or cuda:N)"))
    _choice(out, "dtype", r.dtype, DTYPES)
    _choice(out, "preview", r.preview, PREVIEWS)
    if _in_limits(out, "fps", r.fps) and r.preview == "gif" and r.fps > MAX_GIF_FPS:
        out.append(Problem("fps", f"fps={r.fps:g} is above the {MAX_GIF_FPS:g} fps a GIF can play (its frame delays "
                                  "are whole 1/100 s, and players slow delays below 2/100 s down)",
                           f"use at most {MAX_GIF_FPS:g} fps for a GIF preview, or preview mp4"))
    _report(r, out)


def _report(r: JobRequest, out: list[Problem]) -> None:
    """The consistency report's options (t2vz_backend/quality/): they need ``report``, and their paths must exist."""
    for name in ("report_vectors", "report_compare"):  # (a CLIP model preference may stay set: it waits unused)
        if getattr(r, name) and not r.report:
            out.append(Problem(name, f"{name} is set but the report is off", "turn the report on (CLI: --report)"))
    if r.report_vectors and not os.path.isdir(os.path.expanduser(r.report_vectors)):
        out.append(Problem("report_vectors", f"motion-vector folder {r.report_vectors!r} does not exist",
                           "give the folder of the Vector-pass EXRs, or leave it empty to estimate the motion"))
    if r.report_compare:
        compare = os.path.expanduser(r.report_compare)
        if not os.path.isdir(compare):
            out.append(Problem("report_compare", f"folder to compare with {r.report_compare!r} does not exist",
                               "give the folder of another result's frames"))
        elif r.output_dir and os.path.realpath(compare) == os.path.realpath(os.path.expanduser(r.output_dir)):
            out.append(Problem("report_compare", "report_compare is the job's own output folder",
                               "compare with another result's folder"))
    clip = r.report_clip
    if clip and model_refs.looks_like_path(clip) and not os.path.isdir(os.path.expanduser(clip)):
        out.append(Problem("report_clip", f"CLIP model folder {r.report_clip!r} does not exist",
                           "give a CLIP model folder or a hub id such as openai/clip-vit-base-patch32"))


def _size(r: JobRequest, out: list[Problem]) -> None:
    allows_auto = not isinstance(r, TextToVideoRequest)
    for name in ("width", "height"):
        value = getattr(r, name)
        if value == 0 and allows_auto:
            continue
        if value < 8 or value % 8:
            fixed = max(8, round(value / 8) * 8)
            out.append(Problem(name, f"{name}={value} is not a positive multiple of 8", f"use {name}={fixed}"))
        elif value > LIMITS[name].max:
            out.append(Problem(name, f"{name}={value} is larger than {MAX_SIZE}",
                               f"use at most {MAX_SIZE} (SD 1.5: 512)"))
    if allows_auto and (r.width == 0) != (r.height == 0):
        out.append(Problem("width", "width and height must both be set or both be 0", "set both, or 0 for auto"))


def _text2video(r: TextToVideoRequest, out: list[Problem]) -> None:
    if r.frames < 1:
        out.append(Problem("frames", f"frames={r.frames}: a video needs at least 1 frame", "use frames >= 1"))
    if r.frame_prompts and len(r.frame_prompts) != r.frames:
        out.append(Problem(
            "frame_prompts", f"{len(r.frame_prompts)} frame prompts for {r.frames} frames", "give one per frame"
        ))
    if not LIMITS["t0"].min <= r.t0 < r.t1 <= LIMITS["t1"].max:
        out.append(Problem(
            "t0" if r.t0 >= r.t1 or r.t0 <= 0 else "t1",
            f"need 0 < t0 < t1 <= {MAX_TRAIN_TIMESTEP}, got t0={r.t0}, t1={r.t1}",
            "t0/t1 are training timesteps (noise levels); the defaults are t0=881, t1=941",
        ))
    _in_limits(out, "smooth_bg_strength", r.smooth_bg_strength)
    if r.smooth_bg:
        if not r.mask_dir:
            out.append(Problem("mask_dir", "background smoothing needs foreground masks", "set mask_dir"))
        elif not os.path.exists(r.mask_dir):
            out.append(Problem("mask_dir", f"mask folder {r.mask_dir!r} does not exist", "check the path"))


def _controlnet(r: ControlVideoRequest, out: list[Problem]) -> None:
    if not r.controls:
        out.append(Problem("controls", "no ControlNet given", "add a control, e.g. --control pose=FOLDER"))
    _in_limits(out, "controls", len(r.controls), unit="the number of controls")
    for i, c in enumerate(r.controls):
        name = f"controls[{i}]"
        if not c.kind:
            out.append(Problem(f"{name}.kind", "a control has no kind", "use pose, depth, canny, ..."))
        if not c.path:
            out.append(Problem(f"{name}.path", f"control {c.kind!r} has no frames", "give a folder or movie"))
        elif not os.path.exists(c.path):
            out.append(Problem(f"{name}.path", f"control frames {c.path!r} do not exist", "check the path"))
        if c.model:
            _model_ref(out, f"{name}.model", c.model, "ControlNet")
        _in_limits(out, f"{name}.scale", c.scale, "controls.scale")
        if _finite(out, f"{name}.start", c.start) and _finite(out, f"{name}.end", c.end):
            if not 0 <= c.start < c.end <= 1:
                out.append(Problem(f"{name}.start", f"need 0 <= start < end <= 1, got {c.start}-{c.end}",
                                   "start/end are fractions of the schedule; 0 and 1 use it all"))
        _in_limits(out, f"{name}.start_frame", c.start_frame, "controls.start_frame")
        _in_limits(out, f"{name}.fps", c.fps, "controls.fps")
        _choice(out, f"{name}.preprocessor", c.preprocessor, PREPROCESSORS)
        if (_in_limits(out, f"{name}.low_threshold", c.low_threshold, "controls.low_threshold")
                & _in_limits(out, f"{name}.high_threshold", c.high_threshold, "controls.high_threshold")
                and c.low_threshold > c.high_threshold):
            out.append(Problem(f"{name}.low_threshold", f"canny thresholds need low <= high, got {c.low_threshold} > "
                                                        f"{c.high_threshold}", "100 and 200 are the defaults"))
    _long_side(r.long_side, out)
    if r.annotators_dir and not os.path.isdir(os.path.expanduser(r.annotators_dir)):
        out.append(Problem("annotators_dir", f"annotators folder {r.annotators_dir!r} does not exist",
                           "give a local download of lllyasviel/Annotators"))


def _pix2pix(r: EditVideoRequest, out: list[Problem]) -> None:
    if not r.instruction.strip():
        out.append(Problem("instruction", "the edit instruction is empty", 'say what to change, e.g. "make it snow"'))
    if not r.input:
        out.append(Problem("input", "no input video given", "give a folder of frames or a movie file"))
    elif not os.path.exists(r.input):
        out.append(Problem("input", f"input {r.input!r} does not exist", "check the path"))
    _in_limits(out, "image_guidance", r.image_guidance)
    _in_limits(out, "input_start", r.input_start)
    _in_limits(out, "input_fps", r.input_fps)
    _long_side(r.long_side, out)


# --- Motion dynamics (docs/camera_motion.md) ------------------------------------------------------------------------

MOTION_SOURCES = ("motion_flow", "motion_homographies", "motion_path")  # in priority order; at most one per job
MIN_HOMOGRAPHY_DET = 1e-6  # |det| of a homography in frame-normalised coordinates (largest entry 1): below = singular
IDENTITY_TOLERANCE = 1e-6


def motion_source(r: MotionRequest) -> str:
    """The field that gives the job's motion ("motion_x" for the constant drift, "" when a mode has none asked)."""
    for name in MOTION_SOURCES:
        if getattr(r, name):
            return name
    drift = r.motion_x != 0 or r.motion_y != 0
    return "motion_x" if drift or isinstance(r, TextToVideoRequest) else ""


def motion_size(r: JobRequest, width: int = 0, height: int = 0) -> tuple[int, int]:
    """(width, height) in pixels that the request's homographies and flows are measured in (0, 0 if not yet known)."""
    if isinstance(r, MotionRequest) and r.motion_width:
        return r.motion_width, r.motion_height
    return (width or r.width, height or r.height)


def _motion(r: MotionRequest, out: list[Problem]) -> None:
    unit = "motion is a fraction of the frame per frame"
    _in_limits(out, "motion_x", r.motion_x, unit=unit)
    _in_limits(out, "motion_y", r.motion_y, unit=unit)
    _choice(out, "motion_mode", r.motion_mode, MOTION_MODES)
    given = [name for name in MOTION_SOURCES if getattr(r, name)]
    if len(given) > 1:
        out.append(Problem(given[1], f"{given[0]} and {given[1]} both give the camera motion", "give only one"))
    for name, items in (("motion_path", r.motion_path), ("motion_homographies", r.motion_homographies)):
        if items and r.frames and len(items) != r.frames:
            out.append(Problem(name, f"{len(items)} entries in {name} for {r.frames} frames", "give one per frame"))
    for i, key in enumerate(r.motion_path):
        for name in ("dx", "dy", "zoom", "rotation"):
            _finite(out, f"motion_path[{i}].{name}", getattr(key, name))
        if math.isfinite(key.zoom) and key.zoom <= 0:
            out.append(Problem(f"motion_path[{i}].zoom", f"zoom={key.zoom} must be positive", "1.0 = no zoom"))
    sized = [_in_limits(out, name, getattr(r, name)) for name in ("motion_width", "motion_height")]
    if all(sized) and (r.motion_width == 0) != (r.motion_height == 0):
        out.append(Problem("motion_width", "motion_width and motion_height must both be set or both be 0",
                           "give the frame size the motion was made for, or 0 for the output size"))
    out.extend(homography_problems(r.motion_homographies, *motion_size(r)))
    if r.motion_flow and not os.path.exists(r.motion_flow):
        out.append(Problem("motion_flow", f"displacement fields {r.motion_flow!r} do not exist", "check the path"))
    if r.motion_occlusion and not r.motion_flow:
        out.append(Problem("motion_occlusion", "an occlusion mask needs displacement fields",
                           "set motion_flow too, or leave motion_occlusion empty"))
    elif r.motion_occlusion and not os.path.exists(r.motion_occlusion):
        out.append(Problem("motion_occlusion", f"occlusion masks {r.motion_occlusion!r} do not exist",
                           "check the path"))


def homography_problems(matrices, width: int = 0, height: int = 0) -> list[Problem]:
    """Problems of per-frame homographies (9 numbers each), each naming its frame; see ``homography`` for the test.

    Singularity and the horizon need the frame size: without one (an output size only the input media will tell)
    they are left to the engine, which checks again with the size before any work.
    """
    out: list[Problem] = []
    hint = "each matrix maps a pixel of its frame to frame 0, 9 numbers row by row (docs/camera_motion.md)"
    for k, m in enumerate(matrices):
        name = f"motion_homographies[{k}]"
        if len(m) != 9:
            out.append(Problem(name, f"the homography of frame {k} has {len(m)} numbers, not 9", hint))
        elif not all(math.isfinite(v) for v in m):
            out.append(Problem(name, f"the homography of frame {k} has a value that is not a finite number", hint))
        elif width and height and abs(det := homography.normalised_determinant(m, width, height)) < MIN_HOMOGRAPHY_DET:
            out.append(Problem(name, f"the homography of frame {k} is singular (normalised determinant {det:.2g}): "
                               "it squashes the frame onto a line or a point", hint))
        elif width and height and not homography.in_front(m, width, height):
            out.append(Problem(name, f"the homography of frame {k} maps the whole frame behind the horizon (w <= 0)",
                               "a homography counts up to a positive factor: multiply this one by -1"))
        elif k == 0 and not homography.is_identity(m, IDENTITY_TOLERANCE):
            out.append(Problem(name, "the homography of frame 0 is not the identity",
                               "frame 0 is the anchor the other frames are warped from: give it the identity"))
    return out


def _long_side(value: int, out: list[Problem]) -> None:
    if value and (value < 8 or value % 8):
        out.append(Problem("long_side", f"long_side={value} is not a multiple of 8", "use e.g. 512, or 0 for native"))
    elif value:
        _in_limits(out, "long_side", value)


def _in_limits(out: list[Problem], name: str, value: float, key: str = "", unit: str = "") -> bool:
    """Check ``value`` of field ``name`` against ``LIMITS[key or name]``; True when it is finite and within them."""
    if not _finite(out, name, value):
        return False
    limit = LIMITS[key or name]
    if limit.min <= value <= limit.max:
        return True
    if value < limit.min:
        side = f"below the minimum {_number(limit.min)}"
    else:
        side = f"above the maximum {_number(limit.max)}" + (f" ({limit.reason})" if limit.reason else "")
    if math.isinf(limit.max):
        hint = f"use {name} of at least {_number(limit.min)}"
    elif math.isinf(limit.min):
        hint = f"use {name} of at most {_number(limit.max)}"
    else:
        hint = f"use {name} between {_number(limit.min)} and {_number(limit.max)}"
    if unit:
        hint = f"{unit}: {hint}"
    out.append(Problem(name, f"{name}={value} is {side}", f"{hint}; {limit.typical}" if limit.typical else hint))
    return False


def _number(value: float) -> str:
    return f"{value:g}"


def _finite(out: list[Problem], name: str, value: float) -> bool:
    if not math.isfinite(value):
        out.append(Problem(name, f"{name}={value} is not a finite number", f"give {name} a finite value"))
        return False
    return True


def _choice(out: list[Problem], name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        out.append(Problem(name, f"unknown {name} {value!r}", f"use one of {', '.join(o or repr(o) for o in options)}"))


def _model_ref(out: list[Problem], name: str, ref: str, what: str) -> None:
    """A model reference must exist when it is written as a path, and be ``tiny``, a path or a hub id at all."""
    if os.path.exists(os.path.expanduser(ref)):
        return
    if model_refs.looks_like_path(ref):
        out.append(Problem(name, f"{what} path {ref!r} does not exist", "check the path, or give a hub id"))
    elif ref != model_refs.TINY and not model_refs.is_hub_id(ref):
        out.append(Problem(name, f"{what} {ref!r} is neither a path nor a hub id",
                           "give 'tiny', a hub id like org/name, a folder or a checkpoint file"))


# Farm options (issue 15) ---------------------------------------------------------------------------------------------


def validate_farm(spec: FarmSpec) -> list[Problem]:
    """Every problem of a farm spec (``farm.<field>``), checked before Ray is even imported."""
    out: list[Problem] = []
    for name in ("ranges", "range_frames", "workers", "gpus_per_worker", "cpus_per_worker", "retries"):
        _in_limits(out, f"farm.{name}", getattr(spec, name))
    if spec.ranges and spec.range_frames:
        out.append(Problem("farm.range_frames", "both ranges and range_frames are set",
                           "give one of them (--ranges N or --range-frames F)"))
    if spec.token_file and not os.path.isfile(os.path.expanduser(spec.token_file)):
        out.append(Problem("farm.token_file", f"Ray token file {spec.token_file!r} does not exist",
                           "give the file holding the cluster's token (see docs/farm.md)"))
    return out
