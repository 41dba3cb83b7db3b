"""A job's consistency report: which motion, prompt and CLIP model a request implies (``report_spec``).

The flow comes from, in this order: the request's ``report_vectors`` (Blender's Vector pass, which the add-on
renders with the scene passes); the footage the job restyled (a Pix2Pix job's ``input``; a ControlNet job's first
control whose frames are footage, i.e. that has a preprocessor); otherwise the output itself (text→video, and
ControlNet jobs driven by ready-made maps), which the report states. CLIP text alignment uses the prompt (one per
frame where the job has frame prompts; a Pix2Pix job's instruction).
"""

from __future__ import annotations

from typing import Any

from ..protocol import AnyRequest, ControlVideoRequest, EditVideoRequest, TextToVideoRequest
from .clips import SourceClip, VectorClip
from .consistency import ReportSpec
from .measure import ClipSettings, FlowSettings


def flow_settings(request: AnyRequest) -> FlowSettings:
    """Where the report of ``request`` takes its motion from (see the module docstring)."""
    if request.report_vectors:
        return FlowSettings(vectors=VectorClip(request.report_vectors))
    if isinstance(request, EditVideoRequest):
        return FlowSettings(source=SourceClip(request.input, request.input_start, request.input_fps or None),
                            source_role="the frames the instruction edited (input)")
    if isinstance(request, ControlVideoRequest):
        for i, spec in enumerate(request.controls):
            if spec.preprocessor != "none" and not spec.path.lower().endswith(".json"):
                return FlowSettings(source=SourceClip(spec.path, spec.start_frame, spec.fps or None),
                                    source_role=f"the footage behind controls[{i}] ({spec.kind})")
    return FlowSettings()


def prompts(request: AnyRequest) -> tuple[str, ...]:
    if isinstance(request, EditVideoRequest):
        return (request.instruction,)
    if isinstance(request, TextToVideoRequest) and request.frame_prompts:
        return tuple(request.frame_prompts)
    return (request.prompt,)


def job_summary(request: AnyRequest) -> dict[str, Any]:
    """What the report says about the job (enough to tell two compared results apart)."""
    out: dict[str, Any] = {"type": request.TYPE, "model": request.model, "seed": request.seed,
                           "steps": request.steps, "chunk_size": request.chunk_size, "baseline": request.baseline}
    if not isinstance(request, EditVideoRequest):
        out.update(motion_x=request.motion_x, motion_y=request.motion_y)
    return out


def report_spec(request: AnyRequest, folder: str) -> ReportSpec:
    """The report of ``request``'s frames in ``folder``."""
    clip = ClipSettings(model=request.report_clip, prompts=prompts(request), offline=request.offline,
                        allow_pickle=request.allow_pickle, device=request.device)
    return ReportSpec(folder=folder, flow=flow_settings(request), clip=clip, compare=request.report_compare,
                      job=job_summary(request))
