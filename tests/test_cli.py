"""The command line: options map onto the request, user errors are one line with status 2 and write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t2vz_backend import cli
from t2vz_backend.protocol import ControlSpec, ControlVideoRequest, LoraSpec, TextToVideoRequest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--width", "32", "--height", "32", "--frames", "2", "--steps", "2"]


def parse(*argv: str):
    return cli.request_from_args(cli.build_parser().parse_args(list(argv)))


def test_defaults_come_from_the_request_dataclass():
    assert parse("text2video", "--prompt", "x") == TextToVideoRequest(prompt="x")
    assert parse("controlnet", "--control", "pose=p") == ControlVideoRequest(controls=(ControlSpec("pose", "p"),))


def test_every_option_sets_its_field():
    request = parse("text2video", "--prompt", "a cat", "--negative-prompt", "blur", "--model", "tiny", "--frames", "6",
                    "--frame-range", "1-4", "--width", "64", "--height", "48", "--steps", "3", "--guidance", "5",
                    "--seed", "9", "--motion-x", "0.01", "--motion-y", "-0.02", "--motion-mode", "parity", "--t0",
                    "800", "--t1", "900", "--chunk-size", "2", "--scheduler", "euler", "--device", "cpu", "--dtype",
                    "float32", "--overwrite", "--preview", "gif", "--fps", "12", "--offline", "--allow-pickle",
                    "--lora", "a.safetensors", "--lora", "C:\\b.safetensors:0.5", "--out", "o")
    assert request == TextToVideoRequest(
        prompt="a cat", negative_prompt="blur", model="tiny", frames=6, frame_start=1, frame_end=4, width=64,
        height=48, steps=3, guidance=5.0, seed=9, motion_x=0.01, motion_y=-0.02, motion_mode="parity", t0=800, t1=900,
        chunk_size=2, scheduler="euler", device="cpu", dtype="float32", overwrite=True, preview="gif", fps=12.0,
        offline=True, allow_pickle=True, loras=(LoraSpec("a.safetensors"), LoraSpec("C:\\b.safetensors", 0.5)),
        output_dir="o")


def test_presets_set_their_fields_and_explicit_options_win():
    fast = parse("text2video", "--preset", "fast")
    assert (fast.cache_interval, fast.cache_depth, fast.steps) == (3, 1, 50)
    draft = parse("controlnet", "--preset", "draft", "--steps", "6", "--control", "pose=p")
    assert (draft.scheduler, draft.steps, draft.guidance, draft.cache_interval) == ("tcd", 6, 1.0, 1)
    assert parse("pix2pix", "--preset", "quality") == parse("pix2pix")
    assert parse("text2video", "--cache-interval", "2", "--compile", "--no-exact-anchor").cache_interval == 2
    with pytest.raises(cli.UsageError, match="invalid choice"):
        parse("text2video", "--preset", "turbo")


def test_controlnet_and_pix2pix_options():
    request = parse("controlnet", "--prompt", "p", "--control", "pose=poses/:0.8", "--control", "depth=d.mp4",
                    "--control-model", "depth=org/depth", "--preprocess", "pose=pose")
    assert request.controls == (ControlSpec("pose", "poses/", scale=0.8, preprocessor="pose"),
                                ControlSpec("depth", "d.mp4", model="org/depth"))
    edit = parse("pix2pix", "--input", "clip.mp4", "--instruction", "snow", "--image-guidance", "1.2",
                 "--long-side", "256")
    assert (edit.input, edit.instruction, edit.image_guidance, edit.long_side) == ("clip.mp4", "snow", 1.2, 256)


def test_help_explains_the_motion_unit(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["text2video", "--help"])
    assert info.value.code == 0
    assert "fraction of the frame width per frame" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("argv", "words"), [
    (["--width", "30"], "--width: width=30 is not a positive multiple of 8 (use width=32)"),
    (["--frames", "0"], "--frames:"),
    (["--frame-range", "1-7"], "--frame-range: frame range 1-7 is outside the video's frames 0-1"),
    (["--frame-range", "one-two"], "is not A-B"),
    (["--t0", "950", "--t1", "900"], "--t0: need 0 < t0 < t1"),
    (["--steps", "1"], "--steps: steps=1 is too few"),
    (["--motion-x", "nan"], "--motion-x: motion_x=nan is not a finite number"),
    (["--motion-y", "inf"], "--motion-y: motion_y=inf is not a finite number"),
    (["--scheduler", "magic"], "--scheduler: unknown scheduler 'magic'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--model-config", "/no/such/sd15"], "--model-config: model_config is only used with a single-file"),
])
def test_bad_values_are_one_line_errors_with_status_2(tmp_path, capsys, argv, words):
    out = tmp_path / "out"
    assert cli.main(["text2video", "--prompt", "x", *TINY, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err
    assert os.listdir(tmp_path) == []


def test_output_problems_are_status_2_and_touch_nothing(tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.png").write_bytes(b"x")
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "used", "is not empty"), (tmp_path / "file" / "sub", "is a file")):
        assert cli.main(["text2video", "--prompt", "x", *TINY, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out: ") and words in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file", "mine.png", "used"]


def test_control_option_errors(capsys):
    assert cli.main(["controlnet", "--control", "pose"]) == 2
    assert "is not KIND=VALUE" in capsys.readouterr().err
    assert cli.main(["controlnet", "--control", "pose=p", "--control-model", "depth=x"]) == 2
    assert "no --control depth" in capsys.readouterr().err


def test_run_job_file_errors_name_the_field(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"type": "text2video", "frames": "three"}))
    assert cli.main(["run", str(job)]) == 2
    assert "error: frames: field 'frames' must be an integer" in capsys.readouterr().err
    assert cli.main(["run", str(tmp_path / "missing.json")]) == 2
    assert "cannot read job file" in capsys.readouterr().err


def test_check_prints_the_backend(capsys):
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "python" in out and "torch" in out and "device cpu" in out


def test_a_tiny_job_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["text2video", "--prompt", "a cat", *TINY, "--preview", "gif", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "wrote 2 frames" in captured.err
    assert sorted(os.listdir(out)) == ["frame_000000.png", "frame_000001.png", "preview.gif", "t2vz.json"]
    redo = tmp_path / "redo"  # the sidecar is a job file: redo the job elsewhere, byte for byte
    assert cli.main(["run", str(out / "t2vz.json"), "--out", str(redo)]) == 0
    assert (redo / "frame_000001.png").read_bytes() == (out / "frame_000001.png").read_bytes()


def test_internal_errors_exit_1_with_a_traceback(tmp_path, capsys, monkeypatch):
    from t2vz_backend.service import jobs

    def broken(_request):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(jobs, "_engine_for", broken)
    assert cli.main(["text2video", "--prompt", "x", *TINY, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: boom" in err and "error: internal error" in err
    assert os.listdir(tmp_path) == []


def test_ctrl_c_cancels_and_removes_partial_output(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "t2vz_backend", "text2video", "--prompt", "x", *TINY, "--steps",
                             "200", "--out", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("denoise") or time.monotonic() > deadline:
            break
    assert list(out.glob(".partial-*"))
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, rest
    assert "cancelled" in rest and not out.exists()


def test_model_config_folder_must_exist(tmp_path, capsys):
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"x")
    out = tmp_path / "out"
    argv = ["text2video", "--prompt", "x", "--model", str(checkpoint), "--model-config", str(tmp_path / "nope"),
            "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--model-config: model_config folder" in err and "does not exist" in err and not out.exists()


def _options_named(text: str) -> set[str]:
    """The t2vz options a message names (a command of another tool is quoted in backticks and skipped)."""
    import re

    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", re.sub(r"`[^`]*`", "", text)))


def test_every_option_named_in_the_backends_messages_exists():
    import argparse
    import ast

    (commands,) = [a.choices for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    known = set().union(*(cli.command_options(c) for c in commands))
    named: dict[str, str] = {}
    for path in (ROOT / "t2vz_backend").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named.update({option: str(path.relative_to(ROOT)) for option in _options_named(node.value)})
    assert {o: where for o, where in named.items() if o not in known} == {}
    assert all(option in known for option in cli.OPTION_OF.values())


@pytest.mark.parametrize(("argv", "files"), [
    (["controlnet", "--control", "pose={src}", "--preprocess", "pose=sobel"], {}),
    (["controlnet", "--control", "canny={src}", "--preprocess", "canny=hed"], {}),
    (["controlnet", "--control", "canny={src}", "--control-model", "canny=/no/such/cn"], {}),
    (["controlnet", "--control", "canny={src}", "--control-model", "canny={src}/../missing.safetensors"], {}),
    (["controlnet", "--control", "canny=/no/such/frames"], {}),
    (["controlnet", "--control", "canny={src}", "--annotators-dir", "/no/such/dir"], {}),
    (["pix2pix", "--instruction", "snow", "--input", "{src}", "--input-fps", "1e9"], {}),
    (["pix2pix", "--instruction", "snow", "--input", "{src}", "--out", "{src}/edited", "--overwrite"], {}),
    (["text2video", "--prompt", "x", "--lora", "{src}/missing.safetensors"], {}),
    (["text2video", "--prompt", "x", "--model", "{src}/model.safetensors", "--model-config", "/no/such"], {}),
    (["text2video", "--prompt", "x", "--preview", "gif", "--fps", "60"], {}),
    (["run", "{job}"], {"job": {"type": "controlnet", "controls": [{"kind": "canny", "path": ".", "fps": -1}]}}),
    (["run", "{job}"], {"job": {"type": "text2video", "prompt": "x", "output_dir": "o", "frames": 10**9}}),
    (["run", "{job}"], {"job": {"type": "controlnet", "output_dir": "o", "controls": [
        {"kind": "canny", "path": ".", "preprocessor": "sobel", "low_threshold": 900}]}}),
])
def test_no_error_names_an_option_its_command_lacks(tmp_path, capsys, argv, files):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"x")
    from PIL import Image

    Image.new("RGB", (16, 16)).save(src / "0001.png")
    job = tmp_path / "job.json"
    job.write_text(json.dumps(files.get("job", {})))
    argv = [a.format(src=src, job=job) for a in argv]
    if argv[0] != "run" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert _options_named(err) <= cli.command_options(argv[0]), err
    assert not (tmp_path / "out").exists()


def test_an_unknown_preprocessor_is_refused_before_the_model_loads(capsys, tmp_path, monkeypatch):
    from t2vz_backend.models import loading

    monkeypatch.setattr(loading, "load_base_model", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "maps").mkdir()
    assert cli.main(["controlnet", "--control", f"pose={tmp_path / 'maps'}", "--preprocess", "pose=sobel",
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --preprocess: unknown controls[0].preprocessor 'sobel'"), err


def test_a_closed_terminal_never_fails_the_job():
    """After SIGHUP the terminal is gone: progress output must not turn into an error inside the job."""
    from t2vz_backend.protocol import Progress

    class Gone:
        def isatty(self) -> bool:
            return True

        def write(self, _text: str) -> int:
            raise OSError(5, "Input/output error")

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    bar = cli.ProgressBar(Gone())
    for step in range(3):
        bar(Progress(stage="denoise", step=step, total_steps=3))
    assert bar.stream is None
