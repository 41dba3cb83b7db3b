"""OpenPose COCO-18 body rasteriser: keypoints -> the skeleton image that ControlNet pose models expect.

No model and no GPU: the Blender add-on projects armature bones to pixel keypoints and exports them as JSON; this
module draws them the way ``controlnet_aux`` (``open_pose/util.py::draw_bodypose``, current version) does, which is
what the pose ControlNets were trained on (docs/blender.md §5):

- black background at the output size;
- limbs first, in ``LIMBS`` order, limb *i* in colour *i* of ``COLORS``: a filled ellipse centred on the segment
  midpoint, half-axes (half the segment length, ``STICKWIDTH``), rotated along the segment, drawn only when both ends
  exist. Variant: each limb is filled with ``floor(0.6 * colour)``, exactly as current controlnet_aux does; on the
  black canvas this equals "draw limbs at full colour, multiply the canvas by 0.6" but does not dim the joints of
  people drawn earlier. (Older annotators blended 0.4 canvas + 0.6 limb and drew joints first; not used.)
- then the joints: filled circles of radius ``JOINT_RADIUS`` in full colour;
- pixel centres are truncated to integers and the angle to whole degrees, as in the reference;
- people are drawn one after the other (limbs then joints of each), sharing one palette.

JSON format (one file per shot, written by the add-on)::

    {
      "format": "t2vz-openpose-coco18",      # optional tag
      "version": 1,                          # optional
      "width": 1920, "height": 1080,         # pixel frame of the coordinates (the render size)
      "frames": [                            # consecutive scene frames, ascending
        {"frame": 1, "people": [
            [[x, y], [x, y], null, ...]      # one person: 18 entries in COCO-18 order, null = missing
        ]},
        {"frame": 2, "people": []}           # nobody visible: a black image
      ]
    }

Coordinates are pixels from the top-left corner, y down, as floats. Drawing at another size scales x and y by
size / (width, height). "Right" keypoints are the character's right side.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0), (0, 255, 85),
    (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
    (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
# 0-based keypoint pairs in drawing order; the reference's extra pairs 2-16 and 5-17 are not drawn there either.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0),
    (0, 14), (14, 16), (0, 15), (15, 17),
)
STICKWIDTH = 4  # minor half-axis of a limb ellipse, pixels
JOINT_RADIUS = 4  # pixels
LIMB_INTENSITY = 0.6
JSON_FORMAT = "t2vz-openpose-coco18"
_MAX_COORD = 1e6  # OpenCV draws with int32 coordinates

Point = tuple[float, float] | None
Person = Sequence[Sequence[float] | None]
PathLike = str | os.PathLike


def _point(entry, where: str) -> Point:
    """Validate one keypoint entry: None or two finite numbers."""
    if entry is None:
        return None
    if isinstance(entry, np.ndarray):
        entry = entry.tolist()
    if (not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in entry)):
        raise InputError(f"{where}: keypoint {entry!r} must be [x, y] or null", hint="fix the pose export")
    x, y = float(entry[0]), float(entry[1])
    if not (math.isfinite(x) and math.isfinite(y) and abs(x) < _MAX_COORD and abs(y) < _MAX_COORD):
        raise InputError(f"{where}: keypoint ({x}, {y}) is not a finite pixel position",
                         hint="export missing keypoints as null")
    return x, y


def _person(person, where: str) -> list[Point]:
    """Validate one person: exactly 18 keypoints."""
    if isinstance(person, np.ndarray):
        person = person.tolist()
    if not isinstance(person, Sequence) or isinstance(person, str) or len(person) != len(KEYPOINT_NAMES):
        size = len(person) if isinstance(person, Sequence) else type(person).__name__
        raise InputError(f"{where}: a person needs {len(KEYPOINT_NAMES)} keypoints (COCO-18), got {size}",
                         hint="export all 18 keypoints per person, null for missing ones")
    return [_point(entry, f"{where}, keypoint {i} ({KEYPOINT_NAMES[i]})") for i, entry in enumerate(person)]


def draw_pose(people: Sequence[Person], width: int, height: int) -> np.ndarray:
    """Draw people (each 18 (x, y) pixel keypoints or None) on a black ``height x width x 3`` uint8 RGB image."""
    import cv2

    if width < 1 or height < 1:
        raise InputError(f"pose image size {width}x{height} must be positive", hint="use the render size")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for number, person in enumerate(people):
        points = _person(person, f"person {number}")
        for (a, b), color in zip(LIMBS, COLORS[:len(LIMBS)], strict=True):
            if points[a] is None or points[b] is None:
                continue
            (xa, ya), (xb, yb) = points[a], points[b]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            polygon = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), STICKWIDTH),
                                       int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, [int(c * LIMB_INTENSITY) for c in color])
        for point, color in zip(points, COLORS, strict=True):
            if point is not None:
                cv2.circle(canvas, (int(point[0]), int(point[1])), JOINT_RADIUS, color, thickness=-1)
    return canvas


@dataclass
class PoseSequence:
    """Keypoints of a shot: ``people[k]`` are the people of scene frame ``frames[k]``."""

    width: int
    height: int
    frames: list[int]
    people: list[list[list[Point]]]

    def __len__(self) -> int:
        return len(self.frames)


def keypoints_from_json(source: PathLike | Mapping) -> PoseSequence:
    """Parse and validate pose JSON (a file path or an already-loaded dict); errors name the file and frame."""
    name = "pose data"
    if not isinstance(source, Mapping):
        name = f"pose file {source}"
        try:
            source = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc}", hint="check the path of the pose JSON") from exc
        except ValueError as exc:
            raise InputError(f"{name} is not valid JSON: {exc}", hint="re-export the pose keypoints") from exc
    if not isinstance(source, Mapping):
        raise InputError(f"{name} must be a JSON object", hint="re-export the pose keypoints")
    width, height, frames = source.get("width"), source.get("height"), source.get("frames")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise InputError(f"{name} needs positive integer width and height, got {width!r} x {height!r}",
                         hint="write the render size as width and height")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{name} has no frames", hint='write a non-empty "frames" list')
    parsed: dict[int, list[list[Point]]] = {}
    for entry in frames:
        number = entry.get("frame") if isinstance(entry, Mapping) else None
        people = entry.get("people") if isinstance(entry, Mapping) else None
        if not isinstance(number, int) or not isinstance(people, list):
            raise InputError(f"{name}: frame entry {str(entry)[:80]} needs an integer 'frame' and a 'people' list",
                             hint="re-export the pose keypoints")
        if number in parsed:
            raise InputError(f"{name}: frame {number} appears twice", hint="write each frame once")
        parsed[number] = [_person(p, f"{name}, frame {number}, person {i}") for i, p in enumerate(people)]
    numbers = sorted(parsed)
    gaps = [n for n in range(numbers[0], numbers[-1] + 1) if n not in parsed]
    if gaps:
        raise InputError(f"{name}: frames are not consecutive, missing {gaps[:5]}",
                         hint="write every frame of the range; an empty 'people' list draws a black frame")
    return PoseSequence(width, height, numbers, [parsed[n] for n in numbers])


def keypoints_to_json(sequence: PoseSequence) -> dict:
    """The JSON-serialisable dict for a ``PoseSequence`` (inverse of ``keypoints_from_json``)."""
    return {
        "format": JSON_FORMAT,
        "version": 1,
        "width": sequence.width,
        "height": sequence.height,
        "frames": [
            {"frame": number, "people": [[None if p is None else [p[0], p[1]] for p in person] for person in people]}
            for number, people in zip(sequence.frames, sequence.people, strict=True)
        ],
    }


def draw_pose_sequence(source: PathLike | Mapping | PoseSequence, *, size: tuple[int, int] | None = None,
                       start: int = 0, count: int | None = None) -> list[np.ndarray]:
    """Draw frames ``start .. start+count-1`` (positions in the file, not scene numbers) of a pose JSON.

    ``size`` = (width, height) draws directly at that size, scaling the keypoints; drawing at the final size keeps
    the stick width at 4 px, as the ControlNet training data has, instead of resizing a drawn image.
    """
    sequence = source if isinstance(source, PoseSequence) else keypoints_from_json(source)
    width, height = size or (sequence.width, sequence.height)
    end = len(sequence) if count is None else start + count
    if start < 0 or end > len(sequence) or end <= start:
        raise InputError(f"pose frames {start}..{end - 1} are outside the pose data, which has {len(sequence)} frames",
                         hint="choose a range inside the exported frames")
    sx, sy = width / sequence.width, height / sequence.height
    images = []
    for people in sequence.people[start:end]:
        scaled = [[None if p is None else (p[0] * sx, p[1] * sy) for p in person] for person in people]
        images.append(draw_pose(scaled, width, height))
    return images
