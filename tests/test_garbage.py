"""Property-style tests: the worker and the job-file loader meet generated garbage and stay well-behaved.

The worker must answer every line (whatever its content, size or nesting) with events, never exit, and answer a
ping after each; the job-file loader must exit 2 with one line and no traceback for every damaged file.
"""

from __future__ import annotations

import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import garbage

from t2vz_backend import cli

ROOT = Path(__file__).resolve().parents[1]
# What a bad line may be told; never "internal".
REFUSALS = {"invalid_request", "input", "model", "output", "dependency", "protocol"}


class Worker:
    """A worker subprocess in ``cwd``, fed raw bytes; its events are collected by a reader thread."""

    def __init__(self, cwd: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "t2vz_backend", "worker", "--no-previews"], cwd=cwd,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(cwd / "worker.log", "wb"))  # noqa: SIM115 - closed with the process
        self.events: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self.events.put(json.loads(raw))  # every stdout line must be a protocol event

    def exchange(self, raw: bytes) -> list[dict]:
        """Send one line, then a ping; the events up to the pong."""
        self.proc.stdin.write(raw.replace(b"\n", b" ") + b"\n" + b'{"op": "ping"}\n')
        self.proc.stdin.flush()
        got = []
        deadline = time.monotonic() + 60
        while not got or got[-1].get("type") != "pong":
            got.append(self.events.get(timeout=max(deadline - time.monotonic(), 0.1)))
        return got[:-1]


def test_the_worker_survives_generated_garbage_and_answers_a_ping_after_each(tmp_path):
    rng = random.Random(1600)
    cases = [line.encode() for line in garbage.lines(seed=16, count=300)]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))) for _ in range(40)]
    cases += [b"x" * (17 * 2**20), b'{"op": "run", "job": {"prompt": "' + b"y" * (17 * 2**20) + b'"}}']
    worker = Worker(tmp_path)
    refused = 0
    try:
        for raw in cases:
            events = worker.exchange(raw)
            assert worker.proc.poll() is None, raw[:200]
            kinds = [e.get("kind") for e in events if e["type"] == "failed"]
            assert set(kinds) <= REFUSALS, (raw[:200], events)
            refused += kinds.count("invalid_request")
            if raw.strip() and b"unload" not in raw and b"cancel" not in raw:
                assert events, raw[:200]  # every line is answered
        oversized = worker.exchange(b"z" * (17 * 2**20))
        assert oversized[0]["kind"] == "invalid_request" and "longer than" in oversized[0]["message"]
    finally:
        worker.proc.stdin.close()
        assert worker.proc.wait(60) == 0
    assert refused > len(cases) // 2
    assert not list(tmp_path.glob("*/")), "garbage made the worker write a folder"


def test_the_job_file_loader_exits_2_with_one_line_for_every_damaged_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "MAX_JOB_FILE_BYTES", 2**20)
    contents = garbage.job_files(seed=16, count=150) + [b" " * (2**20 + 1)]
    job = tmp_path / "job.json"
    monkeypatch.chdir(tmp_path)
    for content in contents:
        job.write_bytes(content)
        code = cli.main(["run", str(job)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (content[:200], err[-2000:])
        assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["job.json"]
