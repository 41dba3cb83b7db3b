"""The worker process, spoken to in raw JSON lines: handshake, strict errors, queueing, cancel, warm models."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from t2vz_backend.protocol import PROTOCOL_VERSION, TextToVideoRequest

ROOT = Path(__file__).resolve().parents[1]


class RawWorker:
    """``python -m t2vz_backend worker`` with a thread that checks every stdout line is a protocol event."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([sys.executable, "-m", "t2vz_backend", "worker"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.lines: queue.Queue[dict] = queue.Queue()
        self.non_protocol: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            try:
                event = json.loads(raw)
            except ValueError:
                self.non_protocol.append(raw.decode(errors="replace"))
                continue
            self.lines.put(event)

    def send(self, obj: dict | str) -> None:
        line = obj if isinstance(obj, str) else json.dumps(obj)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def next(self, timeout: float = 60.0, **match) -> dict:
        """The next event whose fields equal ``match`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if all(event.get(k) == v for k, v in match.items()):
                return event

    def until_end(self, job_id: str, timeout: float = 120.0) -> list[dict]:
        events = []
        while not events or events[-1]["type"] not in ("done", "failed"):
            events.append(self.next(timeout, job_id=job_id))
        return events

    def close(self) -> int:
        if self.proc.poll() is None:
            self.send({"op": "shutdown"})
        code = self.proc.wait(30)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    raw = RawWorker(tmp_path_factory.mktemp("worker") / "worker.log")
    yield raw
    assert raw.close() == 0
    assert raw.non_protocol == []  # stdout carried protocol lines only


def job(out: Path, **changes) -> dict:
    values = {"prompt": "a cat", "frames": 2, "width": 32, "height": 32, "steps": 2, **changes}
    return TextToVideoRequest(output_dir=str(out), **values).to_dict()


def test_ping_and_handshake(worker):
    worker.send({"op": "ping", "version": str(PROTOCOL_VERSION)})
    pong = worker.next(type="pong")
    assert pong["protocol"] == PROTOCOL_VERSION and pong["torch"] and pong["python"] and pong["device"]
    worker.send({"op": "ping", "version": "999"})
    failed = worker.next(type="failed")
    assert failed["kind"] == "protocol" and "999" in failed["message"] and failed["hint"]


@pytest.mark.parametrize(("line", "field"), [
    ("this is not json", ""),
    ({"op": "dance"}, "op"),
    ({"op": "run", "id": "bad1", "job": {"type": "text2video", "colour": "red"}}, "colour"),
    ({"op": "run", "id": "bad2", "job": {"type": "text2video", "frames": "eight"}}, "frames"),
    ({"op": "run", "id": "bad3", "job": {"type": "text2video", "width": 30, "output_dir": "x"}}, "width"),
    ({"op": "run", "id": "bad4", "job": {"type": "pix2pix", "instruction": "snow", "input": "/nonexistent/clip.mp4",
                                         "output_dir": "x"}}, "input"),
])
def test_malformed_lines_fail_and_the_worker_keeps_serving(worker, line, field):
    worker.send(line)
    failed = worker.next(type="failed")
    assert failed["field"] == field and failed["message"] and failed["hint"]
    if isinstance(line, dict) and "id" in line:
        assert failed["job_id"] == line["id"]
    worker.send({"op": "ping"})
    assert worker.next(type="pong")


def test_unload_before_any_job(worker):
    worker.send({"op": "unload"})
    assert worker.next(type="unloaded")["models"] == 0


def test_cancel_of_an_unknown_job_only_warns(worker):
    worker.send({"op": "cancel", "id": "nobody"})
    assert worker.next(type="log", job_id="nobody")["level"] == "warning"


def test_end_of_input_exits_cleanly(tmp_path):
    raw = RawWorker(tmp_path / "log")
    raw.proc.stdin.close()
    assert raw.proc.wait(30) == 0


def test_warm_model_second_job_reaches_denoising_sooner(worker, tmp_path):
    """The first job loads the tiny model (and torch); the second finds it in the cache."""
    delays, loads = [], []
    for n in (1, 2):
        job_id = f"warm{n}"
        started = time.monotonic()
        worker.send({"op": "run", "id": job_id, "job": job(tmp_path / job_id)})
        worker.next(job_id=job_id, type="progress", stage="denoise")
        delays.append(time.monotonic() - started)
        done = worker.until_end(job_id)[-1]
        assert done["type"] == "done", done
        loads.append(done["timings"]["load"])
        assert sorted(os.listdir(tmp_path / job_id)) == ["frame_000000.png", "frame_000001.png", "t2vz.json"]
    assert loads[1] < loads[0] and delays[1] < delays[0], (loads, delays)
    worker.send({"op": "unload"})
    assert worker.next(type="unloaded")["models"] == 1


def test_cancel_mid_job_then_the_next_job_succeeds(worker, tmp_path):
    out = tmp_path / "cancelled"
    worker.send({"op": "run", "id": "long", "job": job(out, steps=200)})
    worker.send({"op": "run", "id": "queued", "job": job(tmp_path / "queued")})
    worker.send({"op": "run", "id": "long", "job": job(tmp_path / "dup")})  # same id while it runs: refused
    assert worker.next(job_id="long", type="failed")["field"] == "id"
    worker.next(job_id="long", type="progress", step=1)
    assert [p.name.startswith(".partial-long-") for p in out.iterdir()] == [True]
    worker.send({"op": "cancel", "id": "queued"})  # a queued job is dropped at once, before the running one ends
    assert worker.next(job_id="queued")["kind"] == "cancelled"
    worker.send({"op": "cancel", "id": "long"})
    events = worker.until_end("long", timeout=60)
    assert events[-1]["kind"] == "cancelled" and events[-1]["type"] == "failed"
    assert events[-2]["type"] == "progress" and events[-2]["step"] < 200
    assert not out.exists() and not (tmp_path / "queued").exists()
    worker.send({"op": "run", "id": "after", "job": job(tmp_path / "after")})
    assert worker.until_end("after")[-1]["type"] == "done"


def test_end_of_input_finishes_the_queued_jobs(tmp_path):
    """``worker < jobs.jsonl`` is a batch run: end of input lets queued jobs finish before the worker exits."""
    line = json.dumps({"op": "run", "id": "batch", "job": job(tmp_path / "out")})
    result = subprocess.run([sys.executable, "-m", "t2vz_backend", "worker", "--no-previews"], cwd=ROOT,
                            input=line + "\n", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(x) for x in result.stdout.splitlines()]
    assert events[-1]["type"] == "done" and not any(e["type"] == "preview" for e in events)
    assert (tmp_path / "out" / "frame_000001.png").is_file()


def test_stray_output_goes_to_the_log_not_the_protocol():
    script = ("import os; from t2vz_backend.service.worker import _claim_stdout; out = _claim_stdout(); "
              "print('stray print'); "
              "os.write(1, b'c-level write\\n'); out.write('{}\\n'); out.flush()")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout == "{}\n"
    assert "stray print" in result.stderr and "c-level write" in result.stderr
