"""One streamed pass over a result: the flow of every consecutive pair, its pixel metrics, and the CLIP figures.

Where the motion comes from (``FlowSettings.kind``):

- ``"vectors"``: Blender's Vector pass of the scene the result was rendered from: exact motion, nothing estimated;
- ``"source"``: DIS optical flow on the source frames (the footage a ControlNet or Pix2Pix job restyled): the
  result should move as its source does, so its own flicker is not mistaken for motion;
- ``"output"``: DIS optical flow on the result itself, for text→video, which has no source. Flicker then partly
  looks like motion to the estimator, so the warp error is a lower bound; the report says so.

Only two frames (and their guides) are held at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .clip_metrics import ClipStatus, ClipTally, load_clip
from .clips import ResultFrames, SourceClip, VectorClip
from .flow import DisFlow
from .pair_metrics import PairMetrics, measure_pair
from .vectors import vector_flows

FLOW_KINDS = ("vectors", "source", "output")
FLOW_TEXT = {
    "vectors": "exact motion from Blender's Vector pass of the scene",
    "source": "optical flow (OpenCV DIS) estimated on the source frames",
    "output": "optical flow (OpenCV DIS) estimated on the generated frames themselves (no source: text→video); "
              "flicker partly passes for motion, so the warp error is a lower bound",
}


@dataclass(frozen=True)
class FlowSettings:
    """Where the motion comes from: ``source`` (a SourceClip) or ``vectors`` (a VectorClip), else the output."""

    source: SourceClip | None = None
    vectors: VectorClip | None = None
    source_role: str = ""  # what the source is, in words ("the Pix2Pix input (input)")

    @property
    def kind(self) -> str:
        return "vectors" if self.vectors else "source" if self.source else "output"

    def check(self, frames: ResultFrames) -> None:
        for clip in (self.vectors, self.source):
            if clip is not None:
                clip.check(frames)

    def describe(self) -> dict:
        out = {"kind": self.kind, "text": FLOW_TEXT[self.kind]}
        if self.vectors:
            out["path"] = self.vectors.folder
        elif self.source:
            out.update(path=self.source.path, start=self.source.start, role=self.source_role)
        return out


@dataclass(frozen=True)
class ClipSettings:
    model: str = ""  # hub id or folder; "" = not computed
    prompts: tuple[str, ...] = ()  # one prompt for every frame, or one per frame
    offline: bool = False
    allow_pickle: bool = False
    device: str = "cpu"

    def prompt(self, k: int) -> str:
        if not self.prompts:
            return ""
        return self.prompts[k] if len(self.prompts) > 1 else self.prompts[0]


@dataclass
class Measurement:
    frames: ResultFrames
    flow: FlowSettings
    pairs: list[PairMetrics] = field(default_factory=list)
    clip: ClipStatus = ClipStatus(False)
    clip_consistency: list[float] = field(default_factory=list)  # per pair
    clip_text: list[float] = field(default_factory=list)  # per frame


def measure(frames: ResultFrames, flow: FlowSettings, clip: ClipSettings = ClipSettings(), *,
            on_pair: Callable[[int, int], None] = lambda done, total: None) -> Measurement:
    """Measure every consecutive pair of ``frames``; ``on_pair(done, total)`` after each (progress, cancel)."""
    flow.check(frames)
    scorer, status = load_clip(clip.model, offline=clip.offline, allow_pickle=clip.allow_pickle, device=clip.device)
    tally = ClipTally(scorer) if scorer is not None else None
    result = Measurement(frames, flow, clip=status)
    dis = DisFlow() if flow.kind != "vectors" else None
    guides = _guides(frames, flow)
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for k, frame in enumerate(frames.stream()):
        guide = frame if guides is None else next(guides)
        if previous is not None:
            before, guide_before = previous
            flows = vector_flows(guide_before, guide) if dis is None else dis.pair(guide_before, guide)
            result.pairs.append(measure_pair(before, frame, flows))
            on_pair(k, len(frames) - 1)
        if tally is not None:
            tally.add(frame, clip.prompt(frames.first + k))
        previous = (frame, guide)
    if tally is not None:
        result.clip_consistency, result.clip_text = tally.consistency, tally.alignment
    return result


def _guides(frames: ResultFrames, flow: FlowSettings) -> Iterator[np.ndarray] | None:
    """What the flow is computed from, frame by frame: the vectors or the source frames; None: the frames."""
    if flow.vectors is not None:
        return flow.vectors.stream(frames)
    if flow.source is not None:
        return flow.source.stream(frames)
    return None
