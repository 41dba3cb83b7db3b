"""The Flamenco job type (integrations/flamenco/t2vz.js), compiled with node against a harness of Flamenco's
documented job-compiler API (tests/flamenco/author_harness.js); the checks are in tests/flamenco/*.test.js."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_flamenco_job_type_compiles_to_contiguous_range_tasks_and_a_preview():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Flamenco job type's tests need it")
    run = subprocess.run([node, "--test", str(ROOT / "tests" / "flamenco")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 5" in run.stdout
