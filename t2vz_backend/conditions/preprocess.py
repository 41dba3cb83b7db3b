"""Control-map preprocessors by name: a source (path or frames) -> H x W x 3 uint8 maps for a ControlNet.

Built in (numpy / OpenCV / PIL only, no weights):
- ``canny``: ``cv2.Canny`` (low 100, high 200 by default) on the frames after resizing to the output size, as the
  original Text2Video-Zero does; the edge map is replicated to 3 channels (0 or 255).
- ``depth``: raw float depth (``.exr`` / ``.npy`` sources, or 2-D float arrays) -> ``depth.normalize_depth_shot``
  with ONE near/far for the whole source (also for a sub-range, so pieces of a shot match). Any other image, movie
  or uint8 array is taken as an already-drawn depth map (near bright) and passes through.
- ``pose``: pose keypoint JSON (a ``.json`` path, a dict or a ``PoseSequence``) -> ``pose.draw_pose_sequence``
  drawn directly at the output size. Images and movies are taken as already-drawn skeleton maps and pass through.
- ``none`` / ``raw``: the frames are already control maps.

Weight-based detectors from ``controlnet_aux`` (``AUX_DETECTORS``: hed, midas, openpose, lineart, ...) run only when
the package is installed AND its weights are in a local folder (``annotators_dir``, a download of the hub repository
``lllyasviel/Annotators``); they are loaded from that folder only, never from the network. ``controlnet_aux`` is
imported inside the function, never at module import (it imports torchvision and torch). They run on the CPU, and
note that their MiDaS output is normalised per frame (a flicker source; prefer scene depth from Blender).

Every preprocessor returns maps at ``options.size`` when given, else at the source's size.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DependencyError, InputError, InvalidRequestError, Problem
from ..media.reader import check_frame_range, count_frames, read_frames, resize_frames, to_rgb8
from ..validation import PREPROCESSORS as PREPROCESSOR_NAMES
from .depth import (
    DEFAULT_BACKGROUND,
    count_depth_frames,
    depth_range,
    is_float_depth_source,
    normalize_depth_shot,
    read_depth_frames,
    shot_depth_range,
)
from .pose import PoseSequence, draw_pose_sequence, keypoints_from_json

Source = str | os.PathLike | Sequence[np.ndarray] | Mapping | PoseSequence

# name -> (controlnet_aux class, weight files it loads from a local folder)
AUX_DETECTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hed": ("HEDdetector", ("ControlNetHED.pth",)),
    "midas": ("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",)),
    "openpose": ("OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")),
    "lineart": ("LineartDetector", ("sk_model.pth", "sk_model2.pth")),
    "lineart_anime": ("LineartAnimeDetector", ("netG.pth",)),
    "mlsd": ("MLSDdetector", ("mlsd_large_512_fp32.pth",)),
    "pidi": ("PidiNetDetector", ("table5_pidinet.pth",)),
    "normalbae": ("NormalBaeDetector", ("scannet.pt",)),
}
AUX_HINT = ("pip install controlnet-aux into the backend environment, download the hub repository "
            "lllyasviel/Annotators to a folder (e.g. `hf download lllyasviel/Annotators --local-dir DIR`) "
            "and give that folder as annotators_dir (CLI: --annotators-dir)")


@dataclass(frozen=True)
class PreprocessOptions:
    """Frame range, output size and per-preprocessor settings."""

    start: int = 0  # first frame of the source (after fps resampling)
    count: int | None = None  # number of frames; None = to the end
    fps: float | None = None  # resample a movie (or a folder with source_fps) to this rate; None = native
    source_fps: float | None = None  # frame rate of an image folder
    size: tuple[int, int] | None = None  # (width, height) of the maps; None = the source's size
    canny_low: int = 100
    canny_high: int = 200
    depth_near: float | None = None  # depth value drawn white; None = from the whole source
    depth_far: float | None = None  # depth value drawn black; None = from the whole source
    depth_invert: bool = True  # True: the source holds distances (Blender Z / Mist)
    depth_background: float = DEFAULT_BACKGROUND  # depth at/beyond this is "no geometry" (black)
    annotators_dir: str | None = None  # local copy of lllyasviel/Annotators for controlnet_aux detectors
    detect_resolution: int = 512  # controlnet_aux detectors' working resolution


Preprocessor = Callable[[Source, PreprocessOptions], list[np.ndarray]]


def _is_path(source: Source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _rgb_frames(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
    """The selected frames of a path or an in-memory sequence as RGB uint8, at their own size."""
    if _is_path(source):
        return read_frames(source, start=options.start, count=options.count, fps=options.fps,
                           source_fps=options.source_fps).frames
    if isinstance(source, (Mapping, PoseSequence)):
        raise InputError("pose keypoints can only be used with the 'pose' preprocessor",
                         hint="use preprocessor 'pose' or give image frames")
    if options.fps is not None:
        raise InputError("frames given in memory cannot be resampled to another fps",
                         hint="resample when reading the source (media.read_frames) or leave fps unset")
    n = check_frame_range("the frames given", options.start, options.count, len(source))
    return [to_rgb8(np.asarray(frame), f"frame {i}") for i, frame in enumerate(source[options.start:options.start + n])]


def _sized(frames: list[np.ndarray], options: PreprocessOptions) -> list[np.ndarray]:
    # bilinear: Lanczos would ring around the hard edges of control maps (faint halos on a black background)
    return frames if options.size is None else resize_frames(frames, options.size, resample="bilinear")


def passthrough(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
    """The frames are control maps already: read, convert to RGB, resize."""
    return _sized(_rgb_frames(source, options), options)


def canny(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
    """Canny edges (cv2.Canny, L1 gradient, aperture 3) of each frame, white on black, 3 channels."""
    import cv2

    if not 0 <= options.canny_low <= options.canny_high:
        raise InvalidRequestError(f"canny thresholds need 0 <= low <= high, got {options.canny_low}, "
                                  f"{options.canny_high}", hint="100 and 200 are the defaults", field="low_threshold")
    maps = []
    for frame in _sized(_rgb_frames(source, options), options):
        edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), options.canny_low, options.canny_high)
        maps.append(np.repeat(edges[..., None], 3, axis=2))
    return maps


def depth(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
    """Raw float depth -> per-shot normalised maps (near white); drawn depth maps pass through."""
    if _is_path(source) and is_float_depth_source(source):
        if options.fps is not None:
            raise InputError(f"depth frames {source} cannot be resampled to another fps",
                             hint="render the depth pass at the output frame rate or leave fps unset")
        frames = read_depth_frames(source, start=options.start, count=options.count)

        def whole_range() -> tuple[float, float]:
            return shot_depth_range(source, invert=options.depth_invert, background=options.depth_background)
    elif _is_frames(source) and len(source) and _is_raw_depth(source[0]):
        n = check_frame_range("the depth frames given", options.start, options.count, len(source))
        frames = list(source[options.start:options.start + n])

        def whole_range() -> tuple[float, float]:
            return depth_range(source, invert=options.depth_invert, background=options.depth_background)
    else:
        return passthrough(source, options)
    near, far = options.depth_near, options.depth_far
    if near is None or far is None:  # over the WHOLE source, not only the selected range, so pieces of a shot match
        auto_near, auto_far = whole_range()
        near, far = (auto_near if near is None else near), (auto_far if far is None else far)
    maps = normalize_depth_shot(frames, near=near, far=far, invert=options.depth_invert,
                                background=options.depth_background)
    return _sized(maps, options)


def _is_frames(source: Source) -> bool:
    return not _is_path(source) and not isinstance(source, (Mapping, PoseSequence))


def _is_raw_depth(frame) -> bool:
    frame = np.asarray(frame)
    return frame.ndim == 2 and np.issubdtype(frame.dtype, np.floating)


def pose(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
    """Pose keypoint JSON -> OpenPose skeleton maps drawn at the output size; skeleton images pass through."""
    keypoints = isinstance(source, (Mapping, PoseSequence))
    if not keypoints and not (_is_path(source) and Path(source).suffix.lower() == ".json"):
        return passthrough(source, options)
    if options.fps is not None:
        raise InputError("pose keypoints cannot be resampled to another fps",
                         hint="export the keypoints at the output frame rate or leave fps unset")
    return draw_pose_sequence(source, size=options.size, start=options.start, count=options.count)


def _aux_installed() -> bool:
    """Whether controlnet_aux can be imported, found without importing it (or torch)."""
    return importlib.util.find_spec("controlnet_aux") is not None


def aux_problem(name: str, annotators_dir: str | None, field: str = "preprocessor") -> Problem | None:
    """Why controlnet_aux detector ``name`` cannot run here, or None. Imports nothing."""
    if not _aux_installed():
        return Problem(field, f"preprocessor {name!r} needs the controlnet_aux package, which is not installed",
                       AUX_HINT)
    files = AUX_DETECTORS[name][1]
    if not annotators_dir:
        return Problem(field, f"preprocessor {name!r} needs its weights ({', '.join(files)}) and no annotators_dir "
                              "is set", AUX_HINT)
    missing = [f for f in files if not (Path(annotators_dir) / f).is_file()]
    if missing:
        return Problem(field, f"preprocessor {name!r}: weights {', '.join(missing)} are missing from "
                              f"{annotators_dir}", AUX_HINT)
    return None


def _aux_detector(name: str) -> Preprocessor:
    def run(source: Source, options: PreprocessOptions) -> list[np.ndarray]:
        problem = aux_problem(name, options.annotators_dir)
        if problem is not None:
            raise problem.to_error(DependencyError)
        import controlnet_aux  # heavy (torch, torchvision): only here, and only once the weights are known present

        detector = getattr(controlnet_aux, AUX_DETECTORS[name][0]).from_pretrained(options.annotators_dir)
        maps = []
        for frame in _rgb_frames(source, options):
            result = detector(frame, detect_resolution=options.detect_resolution,
                              image_resolution=options.detect_resolution, output_type="np")
            height, width = frame.shape[:2]
            detected = to_rgb8(np.asarray(result), f"{name} output")
            maps.extend(resize_frames([detected], options.size or (width, height), resample="bilinear"))
        return maps

    run.__doc__ = f"controlnet_aux {AUX_DETECTORS[name][0]} on each frame (weights from annotators_dir)."
    return run


_BUILT_IN: dict[str, Preprocessor] = {"none": passthrough, "raw": passthrough, "canny": canny, "depth": depth,
                                      "pose": pose}
# validation.PREPROCESSORS is the one list of names: every name there is implemented here (or by controlnet_aux).
PREPROCESSORS: dict[str, Preprocessor] = {name: _BUILT_IN.get(name) or _aux_detector(name)
                                          for name in PREPROCESSOR_NAMES}


def available_preprocessors() -> list[str]:
    """Every registered preprocessor name (the controlnet_aux ones may still lack their package or weights)."""
    return list(PREPROCESSORS)


def preprocessor_problem(name: str, annotators_dir: str | None = None, field: str = "preprocessor") -> Problem | None:
    """Pure check for panels and request preflight: why ``name`` cannot run here, or None."""
    if name not in PREPROCESSORS:
        return Problem(field, f"unknown preprocessor {name!r}", f"use one of {', '.join(PREPROCESSORS)}")
    return aux_problem(name, annotators_dir, field) if name in AUX_DETECTORS else None


def count_source_frames(source: Source, *, fps: float | None = None, source_fps: float | None = None) -> int:
    """Frames a control source holds: pose JSON frames, raw depth (.npy / .exr) frames, else ``media.count_frames``."""
    if isinstance(source, PoseSequence):
        return len(source)
    if isinstance(source, Mapping) or (_is_path(source) and Path(source).suffix.lower() == ".json"):
        return len(keypoints_from_json(source))
    if not _is_path(source):
        return len(source)
    if is_float_depth_source(source) and fps is None:
        return count_depth_frames(source)
    return count_frames(source, fps=fps, source_fps=source_fps)


def run_preprocessor(name: str, source: Source, options: PreprocessOptions | None = None) -> list[np.ndarray]:
    """Run preprocessor ``name`` on ``source`` (a path, a list of frames, or pose keypoints) -> uint8 RGB maps."""
    if name not in PREPROCESSORS:
        raise preprocessor_problem(name).to_error()  # type: ignore[union-attr]
    return PREPROCESSORS[name](source, options or PreprocessOptions())
