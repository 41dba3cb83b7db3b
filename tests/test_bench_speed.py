"""The speed benchmark (bench/bench_speed.py) in its reduced CPU form: every contender runs, the report is complete.

The full run is for a quiet machine or a GPU (docs/benchmarks.md); this only proves it is ready to run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_the_speed_benchmark_runs_in_its_smoke_form(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_speed

    out = tmp_path / "speed.json"
    argv = ["--smoke", "--threads", "1", "--skip", "old,exact,channels", "--compile", "--compile-backend", "eager",
            "--mem-frames", "1,2", "--mem-steps", "3", "--json", str(out)]
    try:
        assert bench_speed.main(argv) == 0
    finally:
        sys.modules.pop("bench_speed", None)
    result = json.loads(out.read_text())
    names = set(result["timing"])
    assert names == {"base: 3 SD images", bench_speed.DEFAULT, bench_speed.REUSE, bench_speed.DRAFT,
                     bench_speed.COMPILED, bench_speed.COMPILED_REUSE}
    assert result["timing"][bench_speed.REUSE]["work"].endswith("full)")
    assert result["timing"][bench_speed.COMPILED]["first_run_s"] > 0
    assert 0 < result["fidelity"]["psnr_db"] and result["fidelity"]["max_latent_error"] > 0
    assert [m["frames"] for m in result["memory"]] == [1, 2]
    assert any(label.startswith("reuse: process peak RSS 2 / 1") for label in result["targets"])
    assert "fidelity of reuse vs off" in capsys.readouterr().out
