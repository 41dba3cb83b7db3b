"""Read and preprocess every ControlNet's frames for a job, at one output size, before any model work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..media.reader import fit_size, read_frames
from ..protocol import ControlSpec, ControlVideoRequest
from .pose import keypoints_from_json
from .preprocess import PreprocessOptions, count_source_frames, run_preprocessor

# With preprocessor "none", these kinds still route through their own preprocessor: it passes drawn maps through
# unchanged and turns raw sources (pose keypoint JSON, float depth) into maps.
_KIND_DEFAULT = {"pose": "pose", "depth": "depth"}


@dataclass
class ControlMaps:
    maps: list[list[np.ndarray]]  # [control][frame] → H×W×3 uint8
    frames: int
    size: tuple[int, int]  # (width, height)


def preprocessor_for(spec: ControlSpec) -> str:
    if spec.preprocessor in ("none", "raw"):
        return _KIND_DEFAULT.get(spec.kind, spec.preprocessor)
    return spec.preprocessor


def load_control_maps(request: ControlVideoRequest) -> ControlMaps:
    """All maps of all controls; frame counts must agree with each other and with ``request.frames``."""
    counts = []
    for i, spec in enumerate(request.controls):
        counts.append(count_source_frames(spec.path, fps=spec.fps or None) - spec.start_frame)
        if counts[-1] < 1:
            raise InputError(f"control {i} ({spec.kind}) has no frames from start_frame {spec.start_frame} on",
                             field=f"controls[{i}].start_frame", hint="lower start_frame")
    frames = request.frames or counts[0]
    for i, (spec, count) in enumerate(zip(request.controls, counts)):
        if count < frames or (not request.frames and count != frames):
            raise InputError(
                f"control {i} ({spec.kind}, {spec.path}) has {count} frames but the video needs {frames}",
                field=f"controls[{i}].path",
                hint="give every control the same number of frames, or set frames to at most the shortest",
            )
    size = (request.width, request.height) if request.width else auto_size(request.controls[0], request.long_side)
    maps = []
    for spec in request.controls:
        options = PreprocessOptions(start=spec.start_frame, count=frames, fps=spec.fps or None, size=size,
                                    canny_low=spec.low_threshold, canny_high=spec.high_threshold,
                                    annotators_dir=request.annotators_dir or None)
        maps.append(run_preprocessor(preprocessor_for(spec), spec.path, options))
    return ControlMaps(maps, frames, size)


def auto_size(spec: ControlSpec, long_side: int) -> tuple[int, int]:
    """The first control's own size, long side scaled to ``long_side`` (0 = native), multiples of 8."""
    if Path(spec.path).suffix.lower() == ".json":
        poses = keypoints_from_json(spec.path)
        width, height = poses.width, poses.height
    else:
        width, height = read_frames(spec.path, start=spec.start_frame, count=1).size
    return fit_size(width, height, long_side=long_side or None)
