"""Motion dynamics: how the anchor latent is warped for each frame (Text2Video-Zero Sect. 3.1; docs/method.md §3;
docs/camera_motion.md).

A job's motion is one of (the first the request gives):

- ``flow``: per-pixel displacement fields (depth-based reprojection), with optional occlusion masks;
- ``homography``: one 3x3 matrix per frame (the Blender camera over a plane, or at infinity);
- ``path``: pan/zoom/roll keys, turned into homographies;
- ``drift``: the paper's constant translation δᵏ = k·(λx, λy), λ given as a **fraction of the frame per frame**
  (``motion_x`` = λx / frame width), so the same value moves content by the same share of the picture at any
  resolution; the paper's/original app's λ = 12 on its 512 grid is ``12/512 ≈ 0.0234``.

Direction: every motion says where frame k reads frame 0. Output pixel p reads the source at p + s, so **content
moves by −s**: positive drift values move the content left/up, as if the camera panned right/down.

Drift modes: ``clean`` (default) shifts by exactly k·λ·w latent pixels, sampled linearly between pixels, so motion
is uniform (the reference rounds to whole latent pixels with a half-pixel bias, which at λ = 12, 512² gives the
uneven 0, 1, 3, 4, 6, 7, … and a background that judders); ``parity`` reproduces the reference formula (nearest
sampling of p + (λk − 0.5)·w/512 in 512-grid units) so results can be compared with the original.

Latent resolution: pixel coordinates (origin at the top-left corner, pixel (i, j) covering [i, i+1) x [j, j+1))
become latent-cell coordinates by dividing by the VAE factor s = W/w (8 for SD): latent cell (u, v) covers pixels
[s·u, s·(u+1)), so its centre u + 0.5 is the pixel position s·(u + 0.5), the mean of the block's pixel centres. A
homography H in pixels is S⁻¹·H·S in cells (S = diag(s, s, 1)); a displacement field is averaged over each block
and divided by s. (Scaling pixel *indices*, whose centres sit at integers, instead would shift everything by
(s − 1)/2 pixels.) Everything then works at latent resolution: no flow field at the output size is ever warped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import homography
from ..errors import InputError, InvalidRequestError
from ..protocol import MotionRequest
from ..validation import homography_problems, motion_size, motion_source
from .warp import flow_warp, homography_warp, translate

NO_MOTION, DRIFT, HOMOGRAPHY, FLOW = "none", "drift", "homography", "flow"
FLOW_FRAME0_TOLERANCE = 1e-3  # pixels: frame 0's displacement must be (about) zero, it is the anchor


def translation_shifts(frames: Sequence[int], motion_x: float, motion_y: float, width: int, height: int,
                       mode: str = "clean") -> torch.Tensor:
    """Per-frame source offsets (sx, sy) in latent pixels for latents of ``width`` × ``height``; shape (n, 2)."""
    k = torch.tensor(list(frames), dtype=torch.float64)
    sx, sy = k * motion_x * width, k * motion_y * height
    if mode == "parity":
        # The reference normalises x + flow by 512 where grid_sample expects (2x+1)/W: a −0.5/512 bias per axis,
        # then nearest sampling. Frame 0 is never warped by the caller.
        sx = torch.round(sx - 0.5 * width / 512)
        sy = torch.round(sy - 0.5 * height / 512)
    elif mode != "clean":
        raise ValueError(f"unknown motion mode {mode!r}")
    return torch.stack([sx, sy], dim=1)


@dataclass
class MotionPlan:
    """The warp of every frame of one job, at latent resolution (cells); frames are global indices."""

    kind: str
    latent_size: tuple[int, int]  # (h, w)
    drift: tuple[float, float, str] = (0.0, 0.0, "clean")  # motion_x, motion_y, motion_mode
    matrices: dict[int, tuple[float, ...]] = field(default_factory=dict)  # frame -> cell homography
    flows: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # frame -> (2,h,w), (h,w)

    @property
    def active(self) -> bool:
        """False when the request asks for no motion dynamics (a guided mode without a motion field)."""
        return self.kind != NO_MOTION

    def warp(self, source: torch.Tensor, frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``source`` (1, C, h, w) warped for each frame: (n, C, h, w), and holes (n, 1, h, w) bool (no content)."""
        batch = source.expand(len(frames), -1, -1, -1)
        h, w = self.latent_size
        no_holes = torch.zeros(len(frames), 1, h, w, dtype=torch.bool, device=source.device)
        if self.kind in (NO_MOTION, DRIFT):
            mx, my, mode = self.drift
            return translate(batch, translation_shifts(frames, mx, my, w, h, mode)), no_holes
        if self.kind == HOMOGRAPHY:
            mats = [self.matrices[k] for k in frames]
            if all(homography.is_translation(m) for m in mats):  # exact, as the drift (identity included)
                shifts = torch.tensor([[m[2] / m[8], m[5] / m[8]] for m in mats], dtype=torch.float64)
                return translate(batch, shifts), no_holes
            return homography_warp(batch, torch.tensor(mats, dtype=torch.float64).view(-1, 3, 3))
        flows = torch.stack([self.flows[k][0] for k in frames])
        holes = torch.stack([self.flows[k][1] for k in frames])
        return flow_warp(batch, flows, holes)


def plan_motion(request: MotionRequest, frames: Sequence[int], count: int, size: tuple[int, int],
                latent_size: tuple[int, int]) -> MotionPlan:
    """Check the request's motion against the video (``count`` frames of ``size`` = (W, H) pixels) and prepare the
    warps of ``frames``; raises ``InvalidRequestError``/``InputError`` naming the field and frame at fault."""
    source = motion_source(request)
    h, w = latent_size
    if source == "":
        return MotionPlan(NO_MOTION, latent_size)
    if source == "motion_x":
        return MotionPlan(DRIFT, latent_size, drift=(request.motion_x, request.motion_y, request.motion_mode))
    frame_size = motion_size(request, *size)
    if source == "motion_path":
        _check_count("motion_path", len(request.motion_path), count)
        keys = {k: request.motion_path[k] for k in frames}
        mats = {k: homography.key_homography(key.dx, key.dy, key.zoom, key.rotation, *size) for k, key in keys.items()}
        frame_size = size
    elif source == "motion_homographies":
        _check_count("motion_homographies", len(request.motion_homographies), count)
        for problem in homography_problems(request.motion_homographies, *frame_size):
            raise problem.to_error()
        mats = {k: tuple(request.motion_homographies[k]) for k in frames}
    else:
        return MotionPlan(FLOW, latent_size, flows=_load_flows(request, frames, count, frame_size, latent_size))
    cells = {k: homography.change_of_size(m, frame_size, (w, h)) for k, m in mats.items()}
    return MotionPlan(HOMOGRAPHY, latent_size, matrices=cells)


def _check_count(name: str, given: int, count: int) -> None:
    if given != count:
        raise InvalidRequestError(f"{given} entries in {name} for a video of {count} frames", field=name,
                                  hint="give one per frame of the video, frame 0 first")


def _load_flows(request: MotionRequest, frames: Sequence[int], count: int, frame_size: tuple[int, int],
                latent_size: tuple[int, int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each wanted frame's displacement in cells (block means / s) and its holes (blocks mostly disoccluded)."""
    from ..media.motion_fields import FieldStack

    stacks = [FieldStack(request.motion_flow, "flow", "motion_flow")]
    if request.motion_occlusion:
        stacks.append(FieldStack(request.motion_occlusion, "occlusion", "motion_occlusion"))
    for stack in stacks:
        if stack.count != count:
            raise InputError(f"{stack.field} {stack.path!r} has {stack.count} frames, the video has {count}",
                             field=stack.field, hint="give one map per frame of the video, frame 0 first")
        if stack.size != frame_size:
            raise InputError(f"{stack.field} {stack.path!r} is {stack.size[0]}x{stack.size[1]} pixels, the motion "
                             f"is measured in {frame_size[0]}x{frame_size[1]}", field=stack.field,
                             hint="make the maps at the output size, or set motion_width/motion_height to theirs")
    zero = stacks[0].frame(0)
    if float(abs(zero).max()) > FLOW_FRAME0_TOLERANCE:
        raise InputError(f"the displacement of frame 0 in {request.motion_flow!r} is not zero", field="motion_flow",
                         hint="frame 0 is the anchor: every displacement points into frame 0, its own is zero")
    h, w = latent_size
    scale = torch.tensor([frame_size[0] / w, frame_size[1] / h], dtype=torch.float64).view(2, 1, 1)
    out = {}
    for k in frames:
        flow = torch.from_numpy(stacks[0].frame(k)).permute(2, 0, 1)[None].to(torch.float64)
        cells = F.interpolate(flow, size=(h, w), mode="area")[0] / scale
        holes = torch.zeros(h, w, dtype=torch.bool)
        if len(stacks) > 1:
            mask = torch.from_numpy(stacks[1].frame(k).astype("float32"))[None, None]
            holes = F.interpolate(mask, size=(h, w), mode="area")[0, 0] > 0.5
        out[k] = (cells, holes)
    return out
