"""The baseline option renders independent stills: cross-frame attention and motion off, the same seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from t2vz_backend.attention.cross_frame import CrossFrameState
from t2vz_backend.pipelines.baseline import independent_stills
from t2vz_backend.pipelines.control_video import control_video
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, MotionKey, TextToVideoRequest
from t2vz_backend.sampling.context import JobContext


def max_diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def maps_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("maps")
    for k in range(3):
        image = np.zeros((64, 64, 3), np.uint8)
        image[8 + 8 * k:30 + 8 * k, 10:44] = 255
        Image.fromarray(image).save(folder / f"map_{k:02d}.png")
    return str(folder)


def test_the_baseline_turns_off_cross_frame_attention_and_motion_only():
    request = TextToVideoRequest(output_dir="o", prompt="p", frames=2, baseline=True, smooth_bg=True,
                                 motion_path=(MotionKey(), MotionKey(dx=0.1)), mask_dir="m")
    changed, state = independent_stills(request, None)
    assert state.per_frame and changed.motion_x == changed.motion_y == 0 and not changed.motion_path
    assert not changed.smooth_bg and dataclasses.replace(changed, motion_x=request.motion_x, motion_y=request.motion_y,
                                                         motion_path=request.motion_path, smooth_bg=True) == request
    same, state = independent_stills(dataclasses.replace(request, baseline=False), CrossFrameState())
    assert not state.per_frame and same.motion_path == request.motion_path
    edit = EditVideoRequest(output_dir="o", instruction="x", input="i", baseline=True)
    assert independent_stills(edit, None)[0] is edit


def test_per_frame_attention_ignores_the_anchor_in_both_loop_modes():
    import torch
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from t2vz_backend.attention.cross_frame import CrossFrameAttnProcessor

    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    anchor, others = torch.randn(2, 10, 16), torch.randn(4, 10, 16)  # 2 branches: 1 anchor and 2 frames each
    out = {}
    for per_frame in (False, True):
        state = CrossFrameState(per_frame=per_frame)
        processor = CrossFrameAttnProcessor("layer", state)
        with torch.no_grad():
            with state.recording(2):
                processor(attn, anchor)
            with state.replaying(2):
                out[per_frame] = processor(attn, others)
    with torch.no_grad():
        torch.testing.assert_close(out[True], AttnProcessor2_0()(attn, others))  # each row attends to itself
        assert (out[False] - out[True]).abs().max() > 1e-3  # the video's rows attend to their anchor


def test_a_baseline_controlnet_frame_is_the_still_of_its_own_map(tiny_sd, tiny_controlnet, maps_dir):
    request = ControlVideoRequest(output_dir="o", prompt="a robot", steps=4, seed=3, long_side=0, baseline=True,
                                  controls=(ControlSpec(kind="canny", path=maps_dir),))

    def frames(**changes):
        ctx = JobContext.collecting()
        control_video(dataclasses.replace(request, **changes), tiny_sd, [tiny_controlnet], ctx)
        return ctx.frames

    stills = frames()
    alone = frames(controls=(ControlSpec(kind="canny", path=maps_dir, start_frame=2),))
    # Frame 2 is its map's still, up to the float rounding of another batch size. (The tiny model's attention
    # changes its frames by about one level, so what per-frame attention does is checked on the processor above.)
    assert max_diff(stills[2], alone[0]) <= 1


def test_a_baseline_text_to_video_clip_runs_without_motion(tiny_sd):
    request = TextToVideoRequest(output_dir="o", prompt="a fox", frames=3, width=64, height=64, steps=4, seed=1,
                                 baseline=True, motion_x=0.2)
    ctx = JobContext.collecting()
    text_to_video(request, tiny_sd, ctx)
    assert sorted(ctx.frames) == [0, 1, 2] and max_diff(ctx.frames[1], ctx.frames[2]) > 0
