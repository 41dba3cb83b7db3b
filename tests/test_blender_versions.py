"""The add-on tests on every Blender the manifest promises: bpy 4.2 LTS and the newest 5.x, besides the dev venv's 4.5.

``install_deps.py --dev`` makes one venv per extra version (``install_deps.EXTRA_BLENDERS``: ``.venv-bpy4.2/``,
``.venv-bpy5.3/``, with bpy and the few packages the bpy tests import, ``install_deps.ADDON_TEST_PACKAGES``, but no
torch). Here each venv's interpreter runs the add-on test
files in a subprocess, and the backend worker those tests start runs with this interpreter (``T2VZ_TEST_PYTHON``), so
the add-on meets the same engine on every Blender. A deprecation warning raised by add-on code is an error there: an
API the newest Blender has deprecated fails CI before a release removes it. A venv that does not exist is a skip whose
reason says why (no Python for that bpy was found, or ``install_deps.py --dev`` has not run since it was added).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import install_deps

ROOT = Path(__file__).resolve().parents[1]
# Every test file that needs bpy: they run again under each extra Blender.
ADDON_TESTS = (
    "tests/test_addon_camera.py",
    "tests/test_addon_contract.py",
    "tests/test_addon_e2e.py",
    "tests/test_addon_farm.py",
    "tests/test_addon_jobs.py",
    "tests/test_addon_register.py",
    "tests/test_addon_report.py",
    "tests/test_camera_oracle.py",
    "tests/test_quality_vectors.py",
    "tests/test_scene_passes.py",
    "tests/test_scene_passes_pose.py",
)
TIMEOUT_S = 900  # one version's run; about 20-40 s on two shared cores
OUTPUT_LINES = 150  # of a failed run's output, shown in the failure


def venv_python(blender: install_deps.ExtraBlender) -> Path:
    return install_deps.venv_python(blender.venv, platform.system())


def missing_reason(blender: install_deps.ExtraBlender) -> str:
    """Why the venv of ``blender`` does not exist, and what makes it."""
    probes = install_deps.Probes()
    wanted = ".".join(map(str, blender.python))
    found = install_deps.find_python(blender.python, install_deps.Options(dev=True), probes)
    if found is None:
        where = install_deps.python_search(blender.python, probes)[1]
        return (f"bpy {blender.version} not tested: its wheels need Python {wanted} and none was found (looked at "
                f"{where}); install one, then run `python3 install_deps.py --dev`")
    return (f"bpy {blender.version} not tested: {blender.venv.name}/ does not exist; run `python3 install_deps.py "
            f"--dev` (it will build it from {found})")


def bpy_version(python: Path) -> str:
    """The installed bpy's version, from its metadata (importing bpy would take seconds)."""
    code = "import importlib.metadata as m; print(m.version('bpy'))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                          check=True).stdout.strip()


def summary_line(output: str) -> str:
    """pytest's last line ("56 passed, 2 skipped in 19.66s"), without the ``=`` rulers."""
    lines = [line.strip(" =") for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


@pytest.mark.bpy
@pytest.mark.parametrize("blender", install_deps.EXTRA_BLENDERS, ids=lambda b: f"bpy{b.version}")
def test_addon_tests_pass_on(blender: install_deps.ExtraBlender, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    python = venv_python(blender)
    if not python.exists():
        pytest.skip(missing_reason(blender))
    version = bpy_version(python)
    assert version.startswith(f"{blender.version}."), f"{blender.venv.name}/ holds bpy {version}: rerun install_deps"
    command = [
        str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'pytest'}",
        # Deprecations caused by the add-on's own code (the built package "t2vz", the sources "blender_addon"). The
        # ini option, because -W matches a module name exactly; the pyproject sets no filterwarnings of its own.
        "-o", "filterwarnings=error::DeprecationWarning:t2vz\nerror::DeprecationWarning:blender_addon",
        *ADDON_TESTS,
    ]
    env = {**os.environ, "T2VZ_TEST_PYTHON": sys.executable, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        tail = "\n".join(output.splitlines()[-OUTPUT_LINES:])
        pytest.fail(f"the add-on tests fail on bpy {version} (exit status {result.returncode}); "
                    f"command: {' '.join(command)}\n{tail}", pytrace=False)
    with capsys.disabled():  # the counts and time of each Blender in the log, also when everything passes
        print(f"\n[bpy {version}] {summary_line(output)} ({time.monotonic() - started:.0f} s with start-up)")


def test_every_bpy_test_file_runs_on_every_blender() -> None:
    """A new test file that imports bpy must join ADDON_TESTS, or the other Blender versions would not run it."""
    needs_bpy = sorted(f"tests/{path.name}" for path in (ROOT / "tests").glob("test_*.py")
                       if re.search(r"""importorskip\(["']bpy["']\)""", path.read_text(encoding="utf-8")))
    assert needs_bpy == sorted(ADDON_TESTS)


def test_oldest_extra_blender_is_the_manifest_minimum() -> None:
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text(encoding="utf-8"))
    oldest = min(install_deps.EXTRA_BLENDERS, key=lambda b: tuple(map(int, b.version.split("."))))
    assert manifest["blender_version_min"].startswith(f"{oldest.version}.")
