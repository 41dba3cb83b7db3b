"""Every protocol message survives a JSON round trip, and decoding is strict: bad input names the field at fault."""

from __future__ import annotations

import json

import pytest

from t2vz_backend.errors import InvalidRequestError
from t2vz_backend.protocol import (
    EVENT_TYPES,
    PROTOCOL_VERSION,
    Cancel,
    ControlSpec,
    ControlVideoRequest,
    Done,
    EditVideoRequest,
    Failed,
    FrameWritten,
    Log,
    LoraSpec,
    MotionKey,
    Ping,
    Pong,
    Preview,
    Progress,
    Report,
    RunJob,
    Shutdown,
    TextToVideoRequest,
    Unload,
    Unloaded,
    dumps,
    loads_command,
    loads_event,
    request_from_dict,
)

REQUESTS = [
    TextToVideoRequest(output_dir="out", prompt="a cat", frames=3, width=64, height=32, seed=7, motion_x=-0.01,
                       loras=(LoraSpec("style.safetensors", 0.7),), frame_prompts=("a", "b", "c"),
                       motion_path=(MotionKey(), MotionKey(dx=0.1, zoom=1.1), MotionKey(rotation=-5.0)),
                       motion_mode="parity", t0=800, t1=900, smooth_bg=True, mask_dir="masks", frame_start=1),
    ControlVideoRequest(output_dir="out", prompt="a dancer", controls=(
        ControlSpec("pose", "poses", scale=0.8, preprocessor="pose"),
        ControlSpec("canny", "edges.mp4", model="org/canny", start=0.1, end=0.9, low_threshold=50, fps=12.0),
    ), long_side=256, chunk_size=4),
    EditVideoRequest(output_dir="out", instruction="make it snow", input="clip.mp4", input_start=5, input_fps=10.0,
                     image_guidance=1.2, preview="gif", overwrite=True),
]
EVENTS = [
    Progress(job_id="a", stage="denoise", step=3, total_steps=10, frames_done=1, total_frames=3, eta_s=1.5),
    FrameWritten(job_id="a", index=4, path="/tmp/out/frame_000004.png"),
    Preview(job_id="a", index=4, width=16, height=8, png_base64="iVBORw0KGgo="),
    Done(job_id="a", output_dir="/tmp/out", frames=("/tmp/out/frame_000000.png",), first_frame=0,
         timings={"load": 1.25, "total": 3.5}),
    Failed(job_id="a", kind="invalid_request", message="bad", hint="fix it", field="controls[0].path"),
    Pong(version="0.1.0", protocol=PROTOCOL_VERSION, python="3.11.7", torch="2.13.0", device="cpu"),
    Unloaded(models=2),
    Log(job_id="a", level="warning", message="careful"),
    Report(job_id="a", path="/tmp/out/report.json", image="/tmp/out/report.png", page="/tmp/out/report.html",
           flow="source", warp_error=3.25, warp_error_max=9.5, worst_pair=4, psnr=31.5, ssim=0.93,
           compared_warp_error=7.75),
]
COMMANDS = [RunJob(id="job-1", job=r) for r in REQUESTS] + [Cancel(id="job-1"), Cancel(), Unload(), Ping(version="1"),
                                                             Shutdown()]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: r.TYPE)
def test_request_round_trip(request_):
    line = dumps(request_)
    assert "\n" not in line
    assert request_from_dict(json.loads(line)) == request_


def test_every_event_type_is_covered_and_round_trips():
    assert {type(e) for e in EVENTS} == set(EVENT_TYPES.values())
    for event in EVENTS:
        assert loads_event(dumps(event)) == event


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.OP)
def test_command_round_trip(command):
    assert loads_command(dumps(command)) == command


def test_non_finite_numbers_survive_to_validation():
    """JSON has no NaN: they travel as strings and decode back, so validation can name the field."""
    line = dumps(TextToVideoRequest(motion_x=float("nan"), output_dir="o"))
    json.loads(line)  # strict JSON
    decoded = request_from_dict(json.loads(line))
    assert decoded.motion_x != decoded.motion_x


@pytest.mark.parametrize(("line", "field", "words"), [
    ("{not json", "", "invalid JSON"),
    ("[1, 2]", "op", "JSON object"),
    ('{"op": "explode"}', "op", "unknown command"),
    ('{"op": "run", "id": "x", "job": {"type": "text2gif"}}', "type", "unknown job type"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video", "colour": 1}}', "colour", "unknown field"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video", "frames": "8"}}', "frames", "integer"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video", "frames": 8.5}}', "frames", "integer"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video", "overwrite": 1}}', "overwrite", "true or false"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video", "prompt": null}}', "prompt", "string"),
    ('{"op": "run", "id": "x", "job": {"type": "controlnet", "controls": [{"kind": "pose", "path": "p", "zz": 1}]}}',
     "controls[0].zz", "unknown field"),
    ('{"op": "run", "id": "x", "job": {"type": "controlnet", "controls": [{"kind": "pose", "path": 3}]}}',
     "controls[0].path", "string"),
    ('{"op": "run", "id": "x", "job": {"type": "controlnet", "controls": {"kind": "pose"}}}', "controls", "list"),
    ('{"op": "run", "id": 5, "job": {"type": "text2video"}}', "id", "string"),
    ('{"op": "run", "id": "x", "job": {"type": "text2video"}, "priority": 1}', "priority", "unknown field"),
    ('{"op": "cancel", "id": "x", "force": true}', "force", "unknown field"),
    ('{"op": "ping", "version": 1}', "version", "string"),
])
def test_strict_decoding_names_the_field(line, field, words):
    with pytest.raises(InvalidRequestError) as info:
        loads_command(line)
    assert info.value.field == field
    assert words in info.value.message


def test_unknown_event_is_refused():
    with pytest.raises(InvalidRequestError):
        loads_event('{"type": "explosion"}')
