"""Feature reuse across steps (acceleration/feature_reuse.py) in all three modes, on the tiny models."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from t2vz_backend.acceleration.feature_reuse import FeatureReuse
from t2vz_backend.attention.cross_frame import CrossFrameState
from t2vz_backend.errors import InvalidRequestError
from t2vz_backend.pipelines.control_video import control_video
from t2vz_backend.pipelines.edit_video import edit_video
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, TextToVideoRequest
from t2vz_backend.sampling.context import JobContext
from t2vz_backend.sampling.schedule import plan_schedule
from t2vz_backend.validation import validate_request

# t1=700 puts T on the second grid step (751 of 876, 751, 626, …): the anchor takes a step alone before T, so the
# restart of the full-step rule at T is exercised. Interval 2: full steps 0 | 1, 3, 5, 7; reuse steps 2, 4, 6.
REUSE = TextToVideoRequest(output_dir="unused", prompt="a red fox running", negative_prompt="blurry", frames=4,
                           width=64, height=64, steps=8, t1=700, t0=600, seed=3, exact_anchor=True,
                           cache_interval=2, cache_depth=2)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def t2v(model, state=None, **changes) -> dict[int, np.ndarray]:
    ctx = JobContext.collecting()
    text_to_video(dataclasses.replace(REUSE, **changes), model, ctx, state=state)
    return ctx.frames


class MidCalls:
    """Counts calls of a model's mid block: a full pass runs it, a reuse step does not."""

    def __init__(self, model) -> None:
        self.count = 0
        self.hook = model.mid_block.register_forward_hook(lambda *a: setattr(self, "count", self.count + 1))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.hook.remove()


@pytest.fixture(scope="module")
def reused(tiny_sd):
    return t2v(tiny_sd)


def test_interval_1_is_exactly_reuse_off(tiny_sd, monkeypatch):
    small = {"frames": 3, "steps": 5, "chunk_size": 2}
    off = t2v(tiny_sd, cache_interval=1, **small)
    assert all(np.array_equal(off[k], v) for k, v in t2v(tiny_sd, cache_interval=1, cache_depth=4, **small).items())
    # Interval 1 forced through the layer walk (every step a full pass that keeps its features): still exact.
    walked = []
    monkeypatch.setattr(FeatureReuse, "for_models", classmethod(
        lambda cls, interval, depth, branches, unet, nets=(): walked.append(cls(interval, depth, branches))
        or walked[-1]))
    forced = t2v(tiny_sd, cache_interval=1, **small)
    assert walked[0].passes["full"] > 0 and walked[0].passes["branch"] == 0
    assert all(np.array_equal(off[k], forced[k]) for k in off)


def test_reuse_runs_the_branch_on_the_steps_between_full_steps(tiny_sd, reused):
    with MidCalls(tiny_sd.unet) as mid:
        again = t2v(tiny_sd)
    # anchor alone: step 0 (full), the T->T' path from 1 (full, a fresh run); the video: full at 1, 3, 5, 7 in two
    # calls each (exact layout: anchor, then frames 1-3); reuse steps 2, 4, 6 never reach the mid block
    plan = plan_schedule(tiny_sd.make_scheduler("ddim"), 8, 600, 700, may_jump=True)
    assert plan.t1_index == 1
    path = 1 if plan.jump else plan.t0_index - plan.t1_index
    assert mid.count == 1 + (1 if plan.jump else (path + 1) // 2) + 4 * 2
    assert all(np.array_equal(again[k], reused[k]) for k in reused)
    off = t2v(tiny_sd, cache_interval=1)
    assert 0 < max(max_diff(off[k], reused[k]) for k in off)  # reuse changes the result a little, not a lot


def test_frame_zero_equals_the_still_with_the_same_cache_settings(tiny_sd, reused, monkeypatch):
    one = t2v(tiny_sd, frames=1)
    assert max_diff(one[0], reused[0]) == 0
    # diffusers' own pipeline, its UNet driven by the same reuse rule: full at 0, then a fresh run from T
    plan = plan_schedule(tiny_sd.make_scheduler("ddim"), REUSE.steps, REUSE.t0, REUSE.t1, may_jump=True)
    reuse = FeatureReuse(REUSE.cache_interval, REUSE.cache_depth, branches=2)
    calls = itertools.count()

    def forward(sample, t, encoder_hidden_states, timestep_cond=None, **kwargs):
        i = next(calls)
        if i in (0, plan.t1_index):
            reuse.begin(i)
        eps = reuse.unet(tiny_sd.unet, sample, t, encoder_hidden_states, [0], full=reuse.is_full(i),
                         timestep_cond=timestep_cond, down=None, mid=None)
        return (eps,)

    monkeypatch.setattr(tiny_sd.unet, "forward", forward)
    pipe = StableDiffusionPipeline(**tiny_sd.components("ddim"))
    pipe.set_progress_bar_config(disable=True)
    still = pipe(REUSE.prompt, negative_prompt=REUSE.negative_prompt, num_inference_steps=REUSE.steps, height=64,
                 width=64, generator=torch.Generator("cpu").manual_seed(REUSE.seed)).images[0]
    assert reuse.passes == {"full": 4 + 1, "branch": 3}
    assert max_diff(np.asarray(still), reused[0]) == 0


@pytest.mark.parametrize("changes", [{"chunk_size": 1}, {"chunk_size": 2, "exact_anchor": False},
                                     {"frame_start": 2}, {"frame_start": 1, "frame_end": 2, "chunk_size": 1}])
def test_chunks_and_sub_ranges_never_change_a_frame(tiny_sd, reused, changes):
    other = t2v(tiny_sd, **changes)
    assert sorted(other) == [k for k in sorted(reused) if k >= changes.get("frame_start", 0)
                             and k <= (changes.get("frame_end", 99))]
    assert max(max_diff(other[k], reused[k]) for k in other) <= 1


@dataclasses.dataclass
class KeySpy(CrossFrameState):
    """Records, at every replay, which layers' anchor K/V were recorded in this step (recording clears them)."""

    replays: list = dataclasses.field(default_factory=list)

    def replaying(self, branches):
        self.replays.append(sorted(self.cache))
        return super().replaying(branches)


def test_reuse_steps_attend_to_the_anchor_of_the_same_step_in_the_branch_layers(tiny_sd):
    spy = KeySpy()
    t2v(tiny_sd, frames=2, state=spy)
    full, branch = spy.replays[0], spy.replays[1]  # main steps 1 (full) and 2 (reuse)
    assert len(full) == 4 and spy.replays[2] == full  # every attn1 of the tiny UNet
    # depth 2: the first down layer and the last two up layers, recorded afresh at this step
    assert branch == sorted(k for k in full if "down_blocks.0" in k or "up_blocks.1" in k) and len(branch) == 3


def test_controlnet_skips_its_deep_part_on_reuse_steps_and_keeps_invariance(tiny_sd, tiny_controlnet, maps_dir):
    request = ControlVideoRequest(output_dir="unused", prompt="a robot", steps=6, seed=7, long_side=0,
                                  cache_interval=3, controls=(ControlSpec(kind="canny", path=maps_dir),))

    def control(**changes):
        ctx = JobContext.collecting()
        control_video(dataclasses.replace(request, **changes), tiny_sd, [tiny_controlnet], ctx)
        return ctx.frames

    with MidCalls(tiny_controlnet) as net_mid, MidCalls(tiny_sd.unet) as unet_mid:
        full = control()
    assert net_mid.count == unet_mid.count == 2  # steps 0 and 3, one call each (shared layout, 4 frames)
    chunked = control(chunk_size=1)
    part = control(frame_start=2)
    assert max(max_diff(chunked[k], full[k]) for k in full) <= 1
    assert sorted(part) == [2, 3] and max(max_diff(part[k], full[k]) for k in part) <= 1
    one = control(frames=1, exact_anchor=True)
    assert max_diff(one[0], control(exact_anchor=True)[0]) == 0


def test_pix2pix_with_reuse_keeps_invariance(tiny_pix2pix, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for k in range(3):
        Image.fromarray(np.roll(base, 3 * k, axis=1)).save(tmp_path / f"clip_{k:04d}.png")
    request = EditVideoRequest(output_dir="unused", instruction="make it snow", input=str(tmp_path), steps=5, seed=5,
                               long_side=0, cache_interval=2)

    def edit(**changes):
        ctx = JobContext.collecting()
        edit_video(dataclasses.replace(request, **changes), tiny_pix2pix, ctx)
        return ctx.frames

    with MidCalls(tiny_pix2pix.unet) as mid:
        full = edit()
    assert mid.count == 3  # steps 0, 2, 4
    chunked, part = edit(chunk_size=1), edit(frame_start=1)
    assert max(max_diff(chunked[k], full[k]) for k in full) <= 1
    assert max(max_diff(part[k], full[k]) for k in part) <= 1


@pytest.mark.parametrize(("changes", "field", "text"), [
    ({"cache_interval": 0}, "cache_interval", "cache_interval=0 is below the minimum 1"),
    ({"cache_depth": 13}, "cache_depth", "cache_depth=13 is above the maximum 12"),
    ({"cache_depth": 0}, "cache_depth", "cache_depth=0 is below the minimum 1"),
])
def test_bad_values_are_refused_by_validation(changes, field, text):
    problems = [p for p in validate_request(dataclasses.replace(REUSE, **changes)) if p.field == field]
    assert problems and problems[0].message == text and problems[0].hint


def test_a_branch_deeper_than_the_model_is_refused_before_any_work(tiny_sd):
    ctx = JobContext.collecting()
    with pytest.raises(InvalidRequestError, match="cache_depth=5 is deeper than this UNet") as info:
        text_to_video(dataclasses.replace(REUSE, cache_depth=5), tiny_sd, ctx)
    assert info.value.field == "cache_depth" and "between 1 and 4" in info.value.hint
    assert ctx.work_done == 0 and not ctx.frames
    # reuse off: the depth is not used, so it is not checked against the model
    assert sorted(t2v(tiny_sd, cache_interval=1, cache_depth=5, frames=1, steps=2)) == [0]
