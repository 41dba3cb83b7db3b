"""The consistency report end to end: files, the CLI (compare, bad input), jobs (--report, events, sidecar,
reproducibility, cancel), where a job's motion comes from, and the report options' validation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from synthetic_clips import moving_clip, save_clip, texture

from t2vz_backend.cli import main
from t2vz_backend.errors import JobCancelled
from t2vz_backend.protocol import (
    ControlSpec,
    ControlVideoRequest,
    Done,
    EditVideoRequest,
    Progress,
    Report,
    TextToVideoRequest,
)
from t2vz_backend.quality.consistency import REPORT_HTML, REPORT_JSON, REPORT_PNG, ReportSpec, make_report
from t2vz_backend.quality.figures import sheet_positions
from t2vz_backend.quality.job_report import flow_settings
from t2vz_backend.validation import validate_request

REPORT_FILES = {REPORT_JSON, REPORT_PNG, REPORT_HTML}


def flickering_clip(folder, frames: int = 6, flash: int = 3) -> str:
    clip = moving_clip(frames, (1.0, 0.0))
    clip[flash] = np.clip(clip[flash].astype(int) + 50, 0, 255).astype(np.uint8)
    return save_clip(folder, clip)


def test_a_report_marks_the_flicker_and_is_self_contained(tmp_path):
    folder = flickering_clip(tmp_path / "clip")
    files = make_report(ReportSpec(folder=folder))
    assert REPORT_FILES <= set(os.listdir(folder))
    document = json.loads(open(files.json, encoding="utf-8").read())
    assert sorted(document["summary"]["worst_pairs"]) == [2, 3]  # the pairs into and out of the flash
    assert document["flow"]["kind"] == "output" and "lower bound" in document["flow"]["text"]
    assert document["clip"] == {"computed": False, "model": "", "reason": document["clip"]["reason"]}
    assert Image.open(files.png).size[0] == 1200
    page = open(files.html, encoding="utf-8").read()
    assert "data:image/png;base64," in page and "src=\"http" not in page and "href=" not in page
    assert "not computed" in page and "<script" not in page


def test_compare_with_itself_shows_zero_difference(tmp_path, capsys):
    folder = flickering_clip(tmp_path / "clip")
    assert main(["report", folder, "--compare", folder]) == 0
    document = json.loads((tmp_path / "clip" / REPORT_JSON).read_text())
    difference = document["compare"]["difference"]
    assert {k: v for k, v in difference.items() if v is not None} == dict.fromkeys(
        ("warp_error", "warp_error_max", "psnr", "ssim", "occluded"), 0.0)
    assert document["compare"]["gain"] == 0.0
    assert all(p["difference"] == 0.0 for p in document["compare"]["pairs"])
    assert "difference +0.000" in capsys.readouterr().out


def test_the_report_of_another_folder_goes_where_asked_and_keeps_the_source_apart(tmp_path):
    frames = moving_clip(4, (1.5, 0.5))
    source, result = save_clip(tmp_path / "src", frames), save_clip(tmp_path / "res", frames)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["report", result, "--source", source, "--out", str(out)]) == 0
    document = json.loads((out / REPORT_JSON).read_text())
    assert document["flow"]["kind"] == "source" and document["summary"]["warp_error"] < 1.0
    assert set(os.listdir(result)) == {f"frame_00000{k}.png" for k in range(4)}  # nothing added there


def bad_inputs(tmp_path):
    one = save_clip(tmp_path / "one", [texture(32, 32)])
    mixed = save_clip(tmp_path / "mixed", [texture(32, 32), texture(32, 40)])
    good = save_clip(tmp_path / "good", moving_clip(5, (1.0, 0.0), size=(32, 32)))
    short = save_clip(tmp_path / "short", moving_clip(3, (1.0, 0.0), size=(32, 32)))
    return {"one frame": ([one], "has 1 frame"), "mixed sizes": ([mixed], "need one size"),
            "short source": ([good, "--source", short], "has 3 frames"),
            "short compare source": ([short, "--compare", good, "--source", short], "has 3 frames")}


@pytest.mark.parametrize("case", ["one frame", "mixed sizes", "short source", "short compare source"])
def test_bad_input_is_a_clear_error_with_exit_status_2(tmp_path, capsys, case):
    argv, message = bad_inputs(tmp_path)[case]
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not any(name in REPORT_FILES for name in os.listdir(argv[0]))


def test_someone_elses_report_png_is_never_replaced(tmp_path, capsys):
    folder = flickering_clip(tmp_path / "clip")
    (tmp_path / "clip" / REPORT_PNG).write_bytes(b"theirs")
    assert main(["report", folder]) == 2
    assert "not written by a t2vz report" in capsys.readouterr().err
    assert (tmp_path / "clip" / REPORT_PNG).read_bytes() == b"theirs"


def test_a_long_clip_sheet_shows_the_worst_pairs_and_a_spread():
    positions = sheet_positions(200, [150, 7], limit=24)
    assert len(positions) == 24 and positions == sorted(positions)
    assert {150, 151, 7, 8, 0, 199} <= set(positions)


def test_where_a_jobs_motion_comes_from(tmp_path):
    footage, maps = str(tmp_path), str(tmp_path)
    pix2pix = EditVideoRequest(output_dir="o", instruction="x", input=footage, input_start=2)
    assert flow_settings(pix2pix).kind == "source" and flow_settings(pix2pix).source.start == 2
    extract = ControlVideoRequest(output_dir="o", controls=(ControlSpec("pose", str(tmp_path / "k.json")),
                                                            ControlSpec("canny", footage, preprocessor="canny")))
    assert flow_settings(extract).source.path == footage
    assert flow_settings(ControlVideoRequest(output_dir="o", controls=(ControlSpec("depth", maps),))).kind == "output"
    assert flow_settings(TextToVideoRequest(output_dir="o")).kind == "output"
    assert flow_settings(TextToVideoRequest(output_dir="o", report=True, report_vectors=maps)).kind == "vectors"


def test_report_options_are_validated(tmp_path):
    def fields(**changes):
        return {p.field for p in validate_request(TextToVideoRequest(output_dir=str(tmp_path / "o"), prompt="p",
                                                                     **changes))}

    assert "report_vectors" in fields(report_vectors=str(tmp_path))  # set without the report
    assert "report_clip" not in fields(report_clip="org/clip-model")  # a preference that waits for the report
    assert "report_vectors" in fields(report=True, report_vectors=str(tmp_path / "missing"))
    assert "report_compare" in fields(report=True, report_compare=str(tmp_path / "o"))  # its own output
    assert "report_clip" in fields(report=True, report_clip="./no/such/clip")
    assert not {"report", "report_clip", "report_compare"} & fields(report=True, report_clip="org/clip-model",
                                                                     report_compare=str(tmp_path))


# --- Jobs ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache():
    from t2vz_backend.models.cache import ModelCache

    return ModelCache()


def tiny_job(out, **changes) -> TextToVideoRequest:
    values = {"prompt": "a fox", "frames": 3, "width": 32, "height": 32, "steps": 2, "seed": 5, "report": True,
              "device": "cpu", "dtype": "float32", **changes}
    return TextToVideoRequest(output_dir=str(out), **values)


@pytest.fixture
def texture_engine(monkeypatch):
    """run_job's engine replaced by one that writes a moving texture (the real engine runs in the first test)."""
    from t2vz_backend.service import jobs
    from t2vz_backend.validation import frame_range

    def engine(request, model, controlnets, ctx):
        first, last = frame_range(request, request.frames)
        ctx.plan(1, 1)  # one schedule step, one frame-pass
        ctx.advance(1, step=1)
        for index in range(first, last + 1):
            ctx.frame(index, texture(request.height, request.width, 1.5 * index, 0.0))

    class Cache:
        def base(self, *args, **kwargs):
            return type("Model", (), {"device": "cpu"})()

    monkeypatch.setattr(jobs, "_engine_for", lambda request: engine)
    return Cache()


def test_a_job_run_twice_with_the_same_seed_reports_identically(tmp_path, cache, tiny_paths):
    from t2vz_backend.service.jobs import run_job

    runs = []
    for name in ("a", "b"):
        events: list = []
        done = run_job(tiny_job(tmp_path / name), cache=cache, emit=events.append, job_id=name)
        runs.append((events, done))
    (events, done), _ = runs
    report = next(e for e in events if isinstance(e, Report))
    assert events.index(report) < events.index(done) and isinstance(events[-1], Done)
    assert report.path == str(tmp_path / "a" / REPORT_JSON) and os.path.isfile(report.image)
    assert report.flow == "output" and report.clip_consistency == -1.0 and report.compared_warp_error == -1.0
    assert [e.step for e in events if isinstance(e, Progress) and e.stage == "report" and e.total_steps] == [1, 2]
    for name in (REPORT_JSON, REPORT_PNG, REPORT_HTML):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    sidecar = json.loads((tmp_path / "a" / "t2vz.json").read_text())
    assert sidecar["report"]["summary"]["warp_error"] == report.warp_error and "report" in sidecar["timings"]
    document = json.loads((tmp_path / "a" / REPORT_JSON).read_text())
    assert document["job"]["seed"] == 5 and document["frames"]["names"] == sidecar["frames"]


def test_a_sub_range_job_reports_global_frames_and_compares(tmp_path, texture_engine):
    from t2vz_backend.service.jobs import run_job

    full = run_job(tiny_job(tmp_path / "full", frames=5), cache=texture_engine, emit=lambda e: None)
    events: list = []
    run_job(tiny_job(tmp_path / "part", frames=5, frame_start=2, baseline=True, report_compare=full.output_dir),
            cache=texture_engine, emit=events.append)
    document = json.loads((tmp_path / "part" / REPORT_JSON).read_text())
    assert document["frames"]["first"] == 2 and document["pairs"][0]["frames"] == [2, 3]
    assert document["job"]["baseline"] is True and document["compare"]["frames"] == 5
    assert document["summary"]["warp_error"] < 1.0
    report = next(e for e in events if isinstance(e, Report))
    assert report.compared_warp_error == document["compare"]["summary"]["warp_error"]
    assert report.worst_pair in (2, 3)


def test_cancelling_during_the_report_leaves_nothing(tmp_path, texture_engine):
    from t2vz_backend.service.jobs import run_job

    events: list = []
    with pytest.raises(JobCancelled):
        run_job(tiny_job(tmp_path / "o", frames=4), cache=texture_engine, emit=events.append,
                should_cancel=lambda: any(isinstance(e, Progress) and e.stage == "report" and e.step for e in events))
    assert not os.path.exists(tmp_path / "o")


def test_every_job_command_takes_the_report_options(tmp_path):
    from t2vz_backend.cli import build_parser, request_from_args

    args = build_parser().parse_args(["controlnet", "--out", str(tmp_path / "o"), "--control", f"canny={tmp_path}",
                                      "--report", "--report-clip", "org/clip", "--report-compare", str(tmp_path),
                                      "--baseline"])
    request = request_from_args(args)
    assert (request.report, request.report_clip, request.report_compare, request.baseline) == (
        True, "org/clip", str(tmp_path), True)
    assert not request_from_args(build_parser().parse_args(["text2video", "--out", "o"])).report
