"""Independent stills: the same job without what makes Text2Video-Zero a video, to measure the method against.

With ``baseline`` on, each frame is rendered as a still of its own: cross-frame attention is off (every frame's
self-attention sees only itself) and so are motion dynamics and background smoothing (no latent warps, no blend
with the anchor). The seed, prompts, controls, steps and every other setting stay, so each frame starts from the
noise it starts from in the video: a ControlNet or Pix2Pix frame is the still diffusers' pipeline makes of that
frame's condition, and a text→video frame is the anchor's latent at T′ re-noised to T with the frame's own draw,
denoised alone. A consistency report of the baseline compared with the normal job (``report_compare``) shows what
cross-frame attention and motion dynamics add on the user's own shot.
"""

from __future__ import annotations

import dataclasses

from ..attention.cross_frame import CrossFrameState
from ..protocol import AnyRequest, JobRequest, MotionRequest, TextToVideoRequest


def independent_stills(request: AnyRequest, state: CrossFrameState | None) -> tuple[AnyRequest, CrossFrameState]:
    """The request and attention state the engine runs: unchanged unless ``request.baseline``."""
    state = state or CrossFrameState()
    if not request.baseline:
        return request, state
    state.per_frame = True
    changes = dict(NO_MOTION) if isinstance(request, MotionRequest) else {}
    if isinstance(request, TextToVideoRequest):
        changes.update(smooth_bg=False)
    changes = {name: value for name, value in changes.items() if getattr(request, name) != value}
    return (dataclasses.replace(request, **changes) if changes else request), state


# Every motion field at MotionRequest's default: no drift, camera path, homographies or displacement fields.
NO_MOTION = {f.name: f.default for f in dataclasses.fields(MotionRequest)
             if f.name not in {g.name for g in dataclasses.fields(JobRequest)}}
