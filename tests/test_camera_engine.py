"""Camera motion in the engine (docs/camera_motion.md): the initial latents are the homography- or flow-warped
anchor at T′, holes get disocclusion noise, nothing depends on chunks or sub-ranges, bad fields exit 2."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch
from warp_reference import apply_homography, bilinear, centres, to_cells

from t2vz_backend import cli, homography
from t2vz_backend.pipelines import dynamics
from t2vz_backend.pipelines.control_video import control_video
from t2vz_backend.pipelines.edit_video import edit_video
from t2vz_backend.pipelines.motion import MotionPlan
from t2vz_backend.pipelines.text_to_video import text_to_video
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, EditVideoRequest, TextToVideoRequest
from t2vz_backend.sampling.context import JobContext
from t2vz_backend.sampling.seeding import frame_noise

W, H, FRAMES = 64, 48, 4
# No classifier-free guidance (one branch): half the UNet work; the warp does not depend on it.
BASE = TextToVideoRequest(output_dir="unused", prompt="a street at night", frames=FRAMES, width=W, height=H,
                          steps=4, seed=5, guidance=1.0)


def pan(k: int, degrees: float = 4.0) -> tuple[float, ...]:
    """Frame k of a camera turning ``degrees`` per frame about its vertical axis (frame k -> frame 0)."""
    f, a = 60.0, math.radians(degrees * k)
    intrinsics = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    rotation = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    m = intrinsics @ rotation @ np.linalg.inv(intrinsics)
    return tuple((m / m[2, 2]).ravel())


PAN = tuple(pan(k) for k in range(FRAMES))


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def run(model, request, **changes) -> dict[int, np.ndarray]:
    ctx = JobContext.collecting()
    text_to_video(dataclasses.replace(request, **changes), model, ctx)
    return ctx.frames


@pytest.fixture
def spy(monkeypatch):
    """Records the anchor latent at T′ (what the plan warps) and the latents handed to the re-noising."""
    seen: dict[str, torch.Tensor] = {}
    warp, renoise = MotionPlan.warp, dynamics.renoise

    def spy_warp(self, source, frames):
        seen.setdefault("x_t0", source.clone())
        return warp(self, source, frames)

    def spy_renoise(scheduler, plan, latents, noise, *, sigma_space):
        seen["warped"] = latents.clone()
        return renoise(scheduler, plan, latents, noise, sigma_space=sigma_space)

    monkeypatch.setattr(MotionPlan, "warp", spy_warp)
    monkeypatch.setattr(dynamics, "renoise", spy_renoise)
    return seen


def test_initial_latents_are_the_homography_warped_anchor_at_t0(tiny_sd, spy):
    run(tiny_sd, BASE, motion_homographies=PAN)
    x_t0 = spy["x_t0"][0].double().numpy()
    for row, k in enumerate(range(1, FRAMES)):
        source, _ = apply_homography(to_cells(np.reshape(PAN[k], (3, 3)), 8.0), centres(H // 8, W // 8))
        np.testing.assert_allclose(spy["warped"][row].double().numpy(), bilinear(x_t0, source), atol=1e-5)


def test_identity_homographies_are_no_motion(tiny_sd, spy):
    still = run(tiny_sd, BASE, motion_homographies=(homography.IDENTITY,) * FRAMES)
    assert torch.equal(spy["warped"], spy["x_t0"].expand(FRAMES - 1, -1, -1, -1))
    unmoved = run(tiny_sd, BASE, motion_x=0.0, motion_y=0.0)
    assert all(np.array_equal(still[k], unmoved[k]) for k in still)


def test_a_translation_homography_is_the_drift(tiny_sd):
    shifts = tuple(homography.translation(k * 0.03 * W, -k * 0.02 * H) for k in range(FRAMES))
    assert all(np.array_equal(a, b) for a, b in zip(run(tiny_sd, BASE, motion_homographies=shifts).values(),
                                                    run(tiny_sd, BASE, motion_x=0.03, motion_y=-0.02).values()))


@pytest.fixture(scope="module")
def panned(tiny_sd):
    return run(tiny_sd, BASE, motion_homographies=PAN)


def test_the_camera_moves_the_video(tiny_sd, panned):
    plain = run(tiny_sd, BASE)
    assert max_diff(panned[0], plain[0]) == 0 and max_diff(panned[2], plain[2]) > 0


@pytest.mark.parametrize("changes", [{"chunk_size": 1}, {"chunk_size": 2, "exact_anchor": False},
                                     {"frame_start": 1, "frame_end": 2, "chunk_size": 1}])
def test_camera_motion_is_chunk_and_sub_range_invariant(tiny_sd, panned, changes):
    part = run(tiny_sd, BASE, motion_homographies=PAN, **changes)
    assert set(part) <= set(panned) and max(max_diff(part[k], panned[k]) for k in part) <= 1


def flow_fields(tmp_path, size=(W, H)) -> tuple[str, str]:
    """A 6 px/frame pan to the right, with the right-hand quarter of every later frame disoccluded."""
    w, h = size
    flow = np.zeros((FRAMES, h, w, 2), np.float32)
    occlusion = np.zeros((FRAMES, h, w), np.uint8)
    for k in range(1, FRAMES):
        flow[k, ..., 0] = 6.0 * k
        occlusion[k, :, 3 * w // 4:] = 1
    np.save(tmp_path / "flow.npy", flow)
    np.save(tmp_path / "occlusion.npy", occlusion)
    return str(tmp_path / "flow.npy"), str(tmp_path / "occlusion.npy")


def test_disoccluded_cells_get_fresh_noise_and_the_rest_is_warped(tiny_sd, spy, tmp_path):
    flow, occlusion = flow_fields(tmp_path)
    run(tiny_sd, BASE, motion_flow=flow, motion_occlusion=occlusion)
    x_t0 = spy["x_t0"][0].double().numpy()
    h, w = H // 8, W // 8
    for row, k in enumerate(range(1, FRAMES)):
        warped = spy["warped"][row].double().numpy()
        expected = bilinear(x_t0, centres(h, w) + np.array([6.0 * k / 8, 0.0]))
        np.testing.assert_allclose(warped[:, :, :6], expected[:, :, :6], atol=1e-5)
        fresh = frame_noise(5, k, "disocclusion", (1, 4, h, w), device=torch.device("cpu"), dtype=torch.float32)
        np.testing.assert_array_equal(warped[:, :, 6:], fresh[0, :, :, 6:].double().numpy())  # DDIM: scale 1


def test_disocclusion_noise_is_chunk_and_sub_range_invariant(tiny_sd, tmp_path):
    flow, occlusion = flow_fields(tmp_path)
    fields = {"motion_flow": flow, "motion_occlusion": occlusion}
    full = run(tiny_sd, BASE, **fields)
    for changes in ({"chunk_size": 1}, {"frame_start": 2, "chunk_size": 2}):
        part = run(tiny_sd, BASE, **fields, **changes)
        assert max(max_diff(part[k], full[k]) for k in part) <= 1
    assert max_diff(full[2], run(tiny_sd, BASE, motion_flow=flow)[2]) > 0  # the holes change the video


def test_controlnet_and_pix2pix_take_the_same_motion_fields(tiny_sd, tiny_controlnet, tiny_pix2pix, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    clip = tmp_path / "clip"
    clip.mkdir()
    for k in range(FRAMES):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(clip / f"f_{k}.png")
    flow, occlusion = flow_fields(tmp_path)
    control = ControlVideoRequest(output_dir="unused", prompt="a robot", steps=3, seed=3, long_side=0, guidance=1.0,
                                  controls=(ControlSpec(kind="canny", path=str(clip)),))
    edit = EditVideoRequest(output_dir="unused", instruction="make it snow", input=str(clip), steps=3, seed=3,
                            long_side=0, guidance=1.0)

    def guided(request, **changes):
        ctx = JobContext.collecting()
        request = dataclasses.replace(request, **changes)
        if isinstance(request, ControlVideoRequest):
            control_video(request, tiny_sd, [tiny_controlnet], ctx)
        else:
            edit_video(request, tiny_pix2pix, ctx)
        return ctx.frames

    holes = {"motion_flow": flow, "motion_occlusion": occlusion}
    for request in (control, edit):
        still = guided(request)
        assert max_diff(guided(request, motion_homographies=PAN)[2], still[2]) > 0
        moved = guided(request, **holes)
        assert max_diff(moved[2], still[2]) > 0
        part = guided(request, **holes, frame_start=2, chunk_size=1)
        assert sorted(part) == [2, 3] and max(max_diff(part[k], moved[k]) for k in part) <= 1


SINGULAR = [1.0, 2.0, 0.0, 2.0, 4.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(("kind", "words"), [
    ("singular", "--motion-homographies: the homography of frame 2 is singular"),
    ("count", "--motion-homographies: 3 entries in motion_homographies for 4 frames"),
    ("nan", "--motion-homographies: the homography of frame 1 has a value that is not a finite number"),
    ("flow size", "--motion-flow: motion_flow"),
    ("flow nan", "--motion-flow: motion_flow: the displacement of frame 3 has values that are not finite"),
    ("pickle", "--motion-flow: cannot read motion_flow"),
])
def test_bad_motion_fields_exit_2_and_write_nothing(tmp_path, capsys, kind, words):
    inputs = tmp_path / "in"
    inputs.mkdir()
    options: list[str] = []
    if kind in ("singular", "count", "nan"):
        mats = [list(m) for m in PAN]
        if kind == "singular":
            mats[2] = SINGULAR
        elif kind == "count":
            mats = mats[:3]
        else:
            mats[1][4] = float("nan")
        (inputs / "h.json").write_text(json.dumps(mats))
        options = ["--motion-homographies", str(inputs / "h.json")]
    elif kind == "pickle":
        np.save(inputs / "flow.npy", np.array([{"dx": 1}] * FRAMES, dtype=object), allow_pickle=True)
        options = ["--motion-flow", str(inputs / "flow.npy")]
    else:
        flow, _ = flow_fields(inputs, size=(W // 2, H) if kind == "flow size" else (W, H))
        if kind == "flow nan":
            data = np.load(flow)
            data[3, 5, 5, 1] = np.nan
            np.save(flow, data)
        options = ["--motion-flow", flow]
    out = tmp_path / "out"
    argv = ["text2video", "--prompt", "x", "--width", str(W), "--height", str(H), "--frames", str(FRAMES),
            "--steps", "2", "--device", "cpu", *options, "--out", str(out)]
    before = sorted(os.listdir(inputs))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # (media checks come after "loading tiny")
    assert err.startswith("error: ") and words in err, err
    assert not out.exists() and sorted(os.listdir(inputs)) == before
