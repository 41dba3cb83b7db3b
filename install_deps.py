#!/usr/bin/env python3
"""Install the t2vz backend's Python dependencies into an isolated environment.

Blender's own Python never imports torch: the backend runs in a separate interpreter whose path the user sets in
the add-on's preferences. This script makes that interpreter. It needs only the standard library (Python 3.11+),
is idempotent (run it again to repair or update), and ``--dry-run`` prints the exact commands without running them.

User mode (default)::

    python3 install_deps.py                      # venv in the per-user data folder, torch for the GPU found
    python3 install_deps.py --torch cpu          # force a torch build: auto, cuda, rocm, mps, cpu
    python3 install_deps.py --farm               # also Ray, to render on a farm (python -m t2vz_backend farm)
    <blender python> install_deps.py --target DIR  # no venv: pip --target DIR for Blender's own Python

Developer mode::

    python3 install_deps.py --dev                # .venv/ next to this file: CPU torch 2.13.0, bpy 4.5, pytest, ruff

``--dev`` also makes one small venv per extra Blender version the add-on tests run on (``.venv-bpy4.2/``,
``.venv-bpy5.3/``: bpy, pytest, pillow, numpy, no torch), each from the Python its bpy wheels need (3.11 and 3.13,
found on PATH or under ``~/.pyenv/versions``). A version whose Python is not found is skipped with a note.

Options: ``--venv DIR`` / ``--target DIR`` choose where, ``--python PATH`` the interpreter for the venv (default:
the one running this script), ``--torch-index URL`` another PyTorch index (e.g. CUDA 13 for RTX 50-series cards).
Offline studios add ``--offline --find-links WHEEL_DIR`` (pip --no-index, wheels from that folder).

Steps: 1. probe the machine (no torch import), 2. choose the torch build and its index, 3. build a ``Plan`` (a list
of commands) with pure functions, 4. run it, logging every command and its output, 5. write ``t2vz-env.json``
(interpreter path, environment variables, torch build, versions) into the environment and, in user mode, into the
per-user data folder (``~/.local/share/t2vz``, ``~/Library/Application Support/t2vz``, ``%LOCALAPPDATA%\\t2vz``),
a fixed place where the add-on can find the last environment installed.
"""

from __future__ import annotations

import argparse
import ctypes.util
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

REPO_ROOT = Path(__file__).resolve().parent
REQUIREMENTS_DIR = REPO_ROOT / "requirements"
BACKEND_REQUIREMENTS = REQUIREMENTS_DIR / "backend.txt"
DEV_REQUIREMENTS = REQUIREMENTS_DIR / "dev.txt"
DEV_CONSTRAINTS = REQUIREMENTS_DIR / "constraints-dev.txt"
FARM_REQUIREMENTS = REQUIREMENTS_DIR / "farm.txt"  # Ray: --farm for users, always for --dev (the farm tests)
DEV_VENV = REPO_ROOT / ".venv"

# The torch that users get, one version for every flavour. 2.13 is the line the test suite runs against, and its
# release matrix (pytorch RELEASE.md) has CUDA 12.6/13.0 and ROCm 7.2 builds plus CPU builds, so each index below
# serves it. torchvision 0.28.0 is the release built against it (its metadata requires torch==2.13.0).
TORCH_VERSION = "2.13.0"
TORCHVISION_VERSION = "0.28.0"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
# CUDA 12.6 runs on every NVIDIA card from Maxwell (GTX 900) to Hopper. RTX 50-series (Blackwell) cards need the
# CUDA 13 build: --torch-index https://download.pytorch.org/whl/cu130.
CUDA_TAG = "cu126"
ROCM_TAG = "rocm7.2"
TORCH_FLAVOURS = ("cuda", "rocm", "mps", "cpu")
# Operating systems for which PyTorch publishes each build.
FLAVOUR_SYSTEMS = {
    "cuda": ("Linux", "Windows"),
    "rocm": ("Linux",),
    "mps": ("Darwin",),
    "cpu": ("Linux", "Windows", "Darwin"),
}
MIN_PYTHON = (3, 10)  # torch 2.13 has no wheels for older interpreters
DEV_PYTHON = (3, 11)  # bpy 4.5 wheels are cp311 only

# These import torchvision, which cannot load against the CPU-only torch of the dev environment.
DEV_EXCLUDED = frozenset({"controlnet-aux", "torchvision"})

MARKER_NAME = "t2vz-env.json"
LOG_NAME = "t2vz-install.log"
MARKER_SCHEMA = 1

# Default locations of the NVIDIA driver library when ldconfig does not list it (containers, WSL).
LIBCUDA_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
    "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
    "/usr/lib64/libcuda.so.1",
    "/usr/lib/wsl/lib/libcuda.so.1",
    r"C:\Windows\System32\nvcuda.dll",
)
ROCM_PATH = "/opt/rocm"

# Substrings of a failing command's output, and what the user should do about them.
HINTS = (
    ("ensurepip is not available", "install your system's venv package (e.g. `apt install python3-venv`)"),
    ("No module named pip", "this Python has no pip: run `PYTHON -m ensurepip --upgrade`, or pick another --python"),
    ("No matching distribution found", "no wheel fits this Python/platform: check --python and --torch"),
    ("No space left on device", "free some disk space: the GPU builds of torch need several GB"),
)


class InstallError(Exception):
    """A problem the user can fix; the message says how."""


class StepFailed(InstallError):
    """A command of the plan exited non-zero."""

    def __init__(self, step: Step, returncode: int, output: str) -> None:
        super().__init__(f"{step.title} failed (exit status {returncode})")
        self.step = step
        self.returncode = returncode
        self.output = output


# ---------------------------------------------------------------------------------------------------------------
# 1. Probing the machine
# ---------------------------------------------------------------------------------------------------------------


def _python_version(python: str) -> tuple[int, int]:
    """Return (major, minor) of the interpreter at ``python``, running it only if it is not this one."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return sys.version_info[0], sys.version_info[1]
    try:
        result = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise InstallError(f"cannot run the Python interpreter {python!r} ({error}); pass --python PATH") from error
    major, minor = result.stdout.split()
    return int(major), int(minor)


@dataclass(frozen=True)
class Probes:
    """The functions that look at the machine; tests replace them with fakes."""

    which: Callable[[str], str | None] = shutil.which
    find_library: Callable[[str], str | None] = ctypes.util.find_library
    exists: Callable[[str], bool] = os.path.exists
    system: Callable[[], str] = platform.system
    machine: Callable[[], str] = platform.machine
    python_version: Callable[[str], tuple[int, int]] = _python_version
    glob: Callable[[str], list[str]] = glob.glob
    home: Callable[[], Path] = Path.home


@dataclass(frozen=True)
class Machine:
    """What the installer knows about the computer."""

    system: str  # platform.system(): "Linux", "Windows" or "Darwin"
    arch: str  # normalised CPU architecture: "x86_64" or "arm64" (others pass through, lower-cased)
    nvidia: bool  # an NVIDIA driver is installed (nvidia-smi or libcuda found)
    rocm: bool  # an AMD ROCm stack is installed (rocminfo or /opt/rocm found; Linux only)


def normalise_arch(machine: str) -> str:
    """Map the spellings of platform.machine() across operating systems to one name per architecture."""
    arch = machine.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(arch, arch)


def probe_machine(probes: Probes) -> Machine:
    """Look for GPU drivers without importing torch (which is not installed yet, or is the wrong build)."""
    system = probes.system()
    # macOS has had no NVIDIA drivers for years; elsewhere the driver library is a fallback for a missing nvidia-smi.
    nvidia = system != "Darwin" and bool(
        probes.which("nvidia-smi")
        or probes.find_library("nvcuda" if system == "Windows" else "cuda")
        or any(probes.exists(path) for path in LIBCUDA_PATHS)
    )
    rocm = system == "Linux" and bool(probes.which("rocminfo") or probes.exists(ROCM_PATH))
    return Machine(system=system, arch=normalise_arch(probes.machine()), nvidia=nvidia, rocm=rocm)


def detect_flavour(machine: Machine) -> str:
    """Pick the torch build for the machine: CUDA before ROCm (a box with both usually renders on NVIDIA)."""
    if machine.system == "Darwin":
        return "mps" if machine.arch == "arm64" else "cpu"
    if machine.nvidia:
        return "cuda"
    if machine.rocm and machine.system == "Linux":
        return "rocm"
    return "cpu"


def describe_machine(machine: Machine) -> str:
    """One line for the summary and the log, e.g. "Linux x86_64, NVIDIA driver"."""
    found = [name for name, present in (("NVIDIA driver", machine.nvidia), ("ROCm", machine.rocm)) if present]
    if machine.system == "Darwin" and machine.arch == "arm64":
        found.append("Apple GPU (MPS)")
    return f"{machine.system} {machine.arch}, " + (", ".join(found) or "no GPU stack found")


# ---------------------------------------------------------------------------------------------------------------
# 2. Choosing the torch build
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchBuild:
    """Which torch wheels to install and where pip finds them."""

    flavour: str  # one of TORCH_FLAVOURS
    index_url: str | None  # None: the default index (PyPI or the user's pip configuration)
    label: str = ""  # PEP 440 local version label of that index's wheels, e.g. "cu126"

    def pins(self) -> tuple[str, str]:
        """Requirement strings for torch and torchvision. The label makes pip take them from ``index_url`` only."""
        suffix = f"+{self.label}" if self.label else ""
        return f"torch=={TORCH_VERSION}{suffix}", f"torchvision=={TORCHVISION_VERSION}{suffix}"


def label_from_index(index_url: str) -> str:
    """Return the local version label that wheels of a PyTorch index carry ("cu130" for .../whl/cu130), or ""."""
    match = re.search(r"/(cu\d+|rocm\d+(?:\.\d+)*|cpu|xpu)/?$", index_url)
    return match.group(1) if match else ""


def check_flavour(flavour: str, machine: Machine) -> None:
    """Raise InstallError when no torch build of that flavour exists for the machine."""
    where = f"{machine.system} {machine.arch}"
    if machine.system == "Darwin" and machine.arch != "arm64":
        raise InstallError(
            f"PyTorch publishes no torch {TORCH_VERSION} for Intel Macs ({where}); use an Apple-silicon Mac with an "
            "arm64 Python, or a Linux/Windows machine"
        )
    if machine.system not in FLAVOUR_SYSTEMS[flavour]:
        raise InstallError(f"--torch {flavour} is not available on {where}; use --torch auto or --torch cpu")


def choose_torch(flavour: str, machine: Machine, index_override: str | None = None) -> TorchBuild:
    """Resolve ``--torch`` and ``--torch-index`` to a TorchBuild; ``flavour`` "auto" means detect_flavour()."""
    if flavour == "auto":
        flavour = detect_flavour(machine)
    check_flavour(flavour, machine)
    if index_override:
        return TorchBuild(flavour, index_override, label_from_index(index_override))
    if flavour == "rocm":
        return TorchBuild(flavour, f"{PYTORCH_INDEX}/{ROCM_TAG}", ROCM_TAG)
    if flavour == "cuda" and machine.system == "Windows":
        # PyPI's Windows torch is CPU-only; the CUDA builds live on the PyTorch index.
        return TorchBuild(flavour, f"{PYTORCH_INDEX}/{CUDA_TAG}", CUDA_TAG)
    if flavour == "cpu" and machine.system != "Darwin":
        # PyPI's Linux torch is the CUDA build (GBs of NVIDIA libraries); the CPU index avoids that download.
        return TorchBuild(flavour, f"{PYTORCH_INDEX}/cpu", "cpu")
    # Linux CUDA and every macOS build (MPS is part of the standard macOS wheel) come from PyPI.
    return TorchBuild(flavour, None)


# ---------------------------------------------------------------------------------------------------------------
# 3. Building the plan (pure functions)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    dev: bool = False
    venv: Path | None = None
    target: Path | None = None
    python: str = sys.executable
    torch: str = "auto"
    torch_index: str | None = None
    find_links: tuple[Path, ...] = ()
    offline: bool = False
    dry_run: bool = False
    farm: bool = False  # also install Ray (requirements/farm.txt) for render farms


@dataclass(frozen=True)
class Step:
    """One command of the plan."""

    title: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()  # variables added to the environment of this command only
    report: bool = False  # the last JSON line of its output describes the environment (see check_snippet)


@dataclass(frozen=True)
class Plan:
    """Everything the runner needs: the commands, and where the result is and is described."""

    mode: str  # "venv", "target" or "dev"
    steps: tuple[Step, ...]
    python: Path  # interpreter the backend runs with: the path for Blender's preferences
    env_dir: Path  # the venv or --target folder
    torch: TorchBuild
    backend_env: dict[str, str] = field(default_factory=dict)  # variables the add-on must set to start the backend
    markers: tuple[Path, ...] = ()
    log: Path = Path(LOG_NAME)
    notes: tuple[str, ...] = ()  # what the plan leaves out and why (printed with the plan and the summary)


def read_requirements(path: Path, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Return the requirement lines of ``path`` without comments, pip options (-c, -r) and excluded projects."""
    requirements = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-"):
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if name and canonical_name(name.group(0)) not in exclude:
            requirements.append(line)
    return requirements


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name, so "Pillow", "controlnet_aux" and "controlnet-aux" compare as pip does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_names(requirements: Sequence[str]) -> list[str]:
    """Distinct project names of requirement strings, in order (for the version report)."""
    names: list[str] = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if name and name.group(0) not in names:
            names.append(name.group(0))
    return names


def user_data_dir(system: str, environ: Mapping[str, str], home: Path) -> Path:
    """The per-user folder of t2vz data, where the default venv and the add-on's marker live."""
    if system == "Windows":
        # Local, not Roaming: a venv is gigabytes of machine-specific binaries that must not sync between PCs.
        base = Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif system == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "t2vz"


def venv_python(venv: Path, system: str) -> Path:
    """Path of the interpreter inside a venv."""
    return venv / "Scripts" / "python.exe" if system == "Windows" else venv / "bin" / "python"


def source_args(options: Options) -> list[str]:
    """pip arguments that choose where packages come from; they go on every pip call."""
    args = ["--no-index"] if options.offline else []
    for folder in options.find_links:
        args += ["--find-links", str(folder)]
    return args


def pip_install(python: Path | str, options: Options, *args: str) -> tuple[str, ...]:
    """A ``python -m pip install`` command with the options' package sources."""
    return (str(python), "-m", "pip", "install", *source_args(options), *args)


def check_snippet(packages: Sequence[str], imports: Sequence[str]) -> str:
    """Python code that imports the stack and prints one JSON line: interpreter, device torch sees, versions."""
    # Double quotes only, so that the printed command needs no escaping in a POSIX shell.
    return (
        f"import importlib.metadata as m, json, sys; import {', '.join(imports)}; "
        "cuda = torch.cuda.is_available(); mps = torch.backends.mps.is_available(); "
        'device = ("rocm" if torch.version.hip else "cuda") if cuda else "mps" if mps else "cpu"; '
        'print(json.dumps({"python": sys.executable, "device": device, '
        '"device_name": torch.cuda.get_device_name(0) if cuda else "", '
        f'"versions": {{n: m.version(n) for n in {json.dumps(list(packages))}}}}}))'
    )


def create_venv_step(python: str, venv: Path) -> Step:
    """Create a venv; never with --clear, so a re-run keeps what is installed."""
    return Step(f"Create the virtual environment {venv}", (python, "-m", "venv", str(venv)))


def user_plan(options: Options, machine: Machine, torch: TorchBuild, data_dir: Path, venv_exists: bool) -> Plan:
    """The plan of user mode: torch for this machine plus requirements/backend.txt, in a venv or a --target folder."""
    requirements = [*torch.pins(), *read_requirements(BACKEND_REQUIREMENTS)]
    if options.farm:
        requirements += read_requirements(FARM_REQUIREMENTS)
    # The PyTorch index is an extra index, not a replacement: every other package still comes from PyPI (or the
    # user's configured mirror). The local version label in the torch pins makes those two come from the extra index.
    index = ["--extra-index-url", torch.index_url] if torch.index_url and not options.offline else []
    check = check_snippet(project_names(requirements), ("torch", "diffusers"))
    steps: list[Step] = []
    if options.target is not None:
        env_dir, python = options.target, Path(options.python)
        # pip --target ignores what is already there, so --upgrade makes a re-run replace packages instead of
        # warning and keeping the old folders; torch and the rest go in one call so pip never sees two torches.
        install_args = ("--target", str(env_dir), "--upgrade", *index, *requirements)
        steps.append(Step("Install torch and the backend packages", pip_install(python, options, *install_args)))
        # The user site-packages would shadow the target folder (a stray torch there breaks the import).
        backend_env = {"PYTHONPATH": str(env_dir), "PYTHONNOUSERSITE": "1"}
        mode = "target"
    else:
        env_dir = options.venv or data_dir / "venv"
        python = venv_python(env_dir, machine.system)
        if not venv_exists:
            steps.append(create_venv_step(options.python, env_dir))
        install = pip_install(python, options, *index, *requirements)
        steps.append(Step("Install torch and the backend packages", install))
        backend_env, mode = {}, "venv"
    steps.append(Step("Check the environment", (str(python), "-c", check), tuple(backend_env.items()), report=True))
    markers = (env_dir / MARKER_NAME, data_dir / MARKER_NAME)
    return Plan(mode, tuple(steps), python, env_dir, torch, backend_env, markers, env_dir / LOG_NAME)


def dev_plan(options: Options, system: str, venv_exists: bool) -> Plan:
    """The plan of --dev: .venv/ with the backend packages, CPU torch 2.13.0 held by a constraint, bpy, pytest, ruff."""
    python = venv_python(DEV_VENV, system)
    requirements = [
        *read_requirements(BACKEND_REQUIREMENTS, exclude=DEV_EXCLUDED),
        *read_requirements(DEV_REQUIREMENTS, exclude=DEV_EXCLUDED),
        *read_requirements(FARM_REQUIREMENTS),
    ]
    # -c on the pip call: requirements listed here, or pulled in by them, can never move torch off the CPU build.
    constraint = ("-c", str(DEV_CONSTRAINTS))
    steps = [] if venv_exists else [create_venv_step(options.python, DEV_VENV)]
    steps.append(Step("Install the development packages", pip_install(python, options, *constraint, *requirements)))
    check = check_snippet(project_names(requirements), ("torch", "diffusers", "bpy"))
    steps.append(Step("Check the environment", (str(python), "-c", check), report=True))
    torch = TorchBuild("cpu", None)
    return Plan("dev", tuple(steps), python, DEV_VENV, torch, {}, (DEV_VENV / MARKER_NAME,), DEV_VENV / LOG_NAME)


# ---------------------------------------------------------------------------------------------------------------
# 3b. Extra Blender versions for the add-on tests (--dev)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraBlender:
    """A Blender release the add-on tests also run on, in a venv of its own: each bpy has wheels for one Python."""

    version: str  # "4.2": the venv is .venv-bpy4.2/
    requirement: str  # pip requirement of its bpy module
    python: tuple[int, int]  # the Python its bpy wheels are built for

    @property
    def venv(self) -> Path:
        return REPO_ROOT / f".venv-bpy{self.version}"


# Besides the dev venv's bpy 4.5: the oldest release blender_manifest.toml allows (4.2 LTS) and the newest one on
# PyPI (5.3, whose wheels are cp313 only). Raise the second when a new Blender comes out.
EXTRA_BLENDERS = (
    ExtraBlender("4.2", "bpy==4.2.*", (3, 11)),
    ExtraBlender("5.3", "bpy==5.3.*", (3, 13)),
)
# What the bpy tests import besides bpy, with the pins of requirements/ (OpenCV, OpenEXR and matplotlib: the
# consistency report's tests make reports in the test process); no torch: the backend worker those tests start runs
# with the dev venv's interpreter (tests/addon_helpers.py, T2VZ_TEST_PYTHON).
ADDON_TEST_PACKAGES = ("pytest", "pillow", "numpy", "opencv-python-headless", "openexr", "matplotlib")


def _version_key(path: str) -> tuple[int, ...]:
    """Numeric sort key of the version in a path such as ~/.pyenv/versions/3.13.10/bin/python3.13."""
    return tuple(int(part) for part in re.findall(r"\d+", path))


def python_search(version: tuple[int, int], probes: Probes) -> tuple[str, str]:
    """(glob pattern, words) of where find_python looks besides PATH and --python."""
    major, minor = version
    pattern = str(probes.home() / ".pyenv" / "versions" / f"{major}.{minor}*" / "bin" / f"python{major}.{minor}")
    return pattern, f"--python, python{major}.{minor} on PATH, {pattern}"


def find_python(version: tuple[int, int], options: Options, probes: Probes) -> str | None:
    """An interpreter of exactly ``version`` that runs: --python, ``pythonX.Y`` on PATH, then pyenv's, newest first.

    Each candidate is run (a pyenv shim for a version that is not active exists on PATH but fails), so a found
    interpreter is one that works.
    """
    pattern, _ = python_search(version, probes)
    candidates = [options.python, probes.which(f"python{version[0]}.{version[1]}")]
    candidates += sorted(probes.glob(pattern), key=_version_key, reverse=True)
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            if probes.python_version(candidate) == version:
                return candidate
        except InstallError:  # a broken interpreter or a shim: try the next
            continue
    return None


def extra_blender_steps(options: Options, system: str, probes: Probes) -> tuple[list[Step], list[str]]:
    """Steps that make or update each ``EXTRA_BLENDERS`` venv, and a note for each one left out (no Python)."""
    pins = [*read_requirements(DEV_REQUIREMENTS), *read_requirements(BACKEND_REQUIREMENTS)]
    wanted = {canonical_name(name) for name in ADDON_TEST_PACKAGES}
    packages = [line for line in pins if canonical_name(project_names([line])[0]) in wanted]
    steps: list[Step] = []
    notes: list[str] = []
    for blender in EXTRA_BLENDERS:
        python = venv_python(blender.venv, system)
        shown = ".".join(map(str, blender.python))
        if not probes.exists(str(python)):  # an existing venv keeps its interpreter
            base = find_python(blender.python, options, probes)
            if base is None:
                notes.append(f"bpy {blender.version} skipped: its wheels need Python {shown}, and none was found "
                             f"(looked at {python_search(blender.python, probes)[1]}); the add-on tests on Blender "
                             f"{blender.version} will be skipped")
                continue
            steps.append(create_venv_step(base, blender.venv))
        steps.append(Step(f"Install bpy {blender.version} for the add-on tests",
                          pip_install(python, options, blender.requirement, *packages)))
        steps.append(Step(f"Check bpy {blender.version}",
                          (str(python), "-c", 'import bpy; print("bpy", bpy.app.version_string)')))
    return steps, notes


def check_python(version: tuple[int, int], options: Options) -> None:
    """Refuse interpreters that no wheel of the pinned set supports, before pip fails with a cryptic message."""
    shown = ".".join(map(str, version))
    if version < MIN_PYTHON:
        raise InstallError(f"Python {shown} at {options.python!r} is too old for torch {TORCH_VERSION}: "
                           f"pass --python with Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer")
    if options.dev and version != DEV_PYTHON:
        raise InstallError(f"Python {shown} at {options.python!r} cannot install bpy 4.5 (cp311 wheels only): "
                           "pass --python with a Python 3.11 interpreter")


def make_plan(options: Options, probes: Probes) -> tuple[Plan, Machine]:
    """Gather the facts (the only impure part of planning) and build the plan for them."""
    for path in (BACKEND_REQUIREMENTS, DEV_REQUIREMENTS, DEV_CONSTRAINTS, FARM_REQUIREMENTS):
        if not path.is_file():
            raise InstallError(f"{path} is missing: keep the requirements/ folder next to install_deps.py")
    machine = probe_machine(probes)
    if options.dev:
        venv_exists = probes.exists(str(venv_python(DEV_VENV, machine.system)))
        if not venv_exists:  # an existing .venv keeps its interpreter whatever --python says
            check_python(probes.python_version(options.python), options)
        plan = dev_plan(options, machine.system, venv_exists)
        extra, notes = extra_blender_steps(options, machine.system, probes)
        return replace(plan, steps=plan.steps + tuple(extra), notes=plan.notes + tuple(notes)), machine
    check_python(probes.python_version(options.python), options)
    torch = choose_torch(options.torch, machine, options.torch_index)
    data_dir = user_data_dir(machine.system, os.environ, Path.home())
    venv = options.venv or data_dir / "venv"
    venv_exists = probes.exists(str(venv_python(venv, machine.system)))
    return user_plan(options, machine, torch, data_dir, venv_exists), machine


# ---------------------------------------------------------------------------------------------------------------
# 4. Running the plan
# ---------------------------------------------------------------------------------------------------------------


def format_command(step: Step, windows: bool = os.name == "nt") -> str:
    """The command as a user would type it in their shell, with its extra environment variables in front."""
    command = subprocess.list2cmdline(step.argv) if windows else shlex.join(step.argv)
    prefix = "".join(f"{name}={shlex.quote(value)} " for name, value in step.env)
    return prefix + command


def torch_source(plan: Plan) -> str:
    """Which torch build the plan installs and where from, for people."""
    if plan.mode == "dev":
        return f"CPU build, held at torch=={TORCH_VERSION} by {DEV_CONSTRAINTS.relative_to(REPO_ROOT)}"
    return f"{plan.torch.flavour} build from {plan.torch.index_url or 'PyPI (or your pip configuration)'}"


def print_plan(plan: Plan, machine: Machine, out: TextIO) -> None:
    """--dry-run: the commands, one per line; everything else is a # comment."""
    print(f"# machine: {describe_machine(machine)}", file=out)
    print(f"# torch: {torch_source(plan)}", file=out)
    for step in plan.steps:
        print(f"# {step.title}", file=out)
        print(format_command(step), file=out)
    for note in plan.notes:
        print(f"# note: {note}", file=out)
    print(f"# then write {', '.join(map(str, plan.markers))} and the log {plan.log}", file=out)


def run_step(step: Step, log: TextIO, out: TextIO) -> str:
    """Run one command, copying its output to the console and the log; return that output."""
    banner = f"\n==> {step.title}\n$ {format_command(step)}\n"
    out.write(banner)
    log.write(banner)
    env = {**os.environ, **dict(step.env)}
    lines = []
    try:
        process = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                   text=True, encoding="utf-8", errors="replace")
    except OSError as error:
        log.write(f"{error}\n")
        raise StepFailed(step, 127, str(error)) from error
    assert process.stdout is not None  # guaranteed by stdout=PIPE
    with process:
        for line in process.stdout:
            out.write(line)
            out.flush()  # pip runs for minutes: show progress even when stdout is a pipe
            log.write(line)
            lines.append(line)
    log.flush()
    output = "".join(lines)
    if process.returncode != 0:
        log.write(f"exit status {process.returncode}\n")
        raise StepFailed(step, process.returncode, output)
    return output


def parse_report(output: str) -> dict[str, object]:
    """The JSON line that check_snippet prints (the last line starting with "{"), or {} if there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:  # some library printed a brace first; keep looking
                continue
    return {}


def execute(plan: Plan, machine: Machine, out: TextIO) -> dict[str, object]:
    """Run every step in order, logging to plan.log; return the environment report of the check step."""
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {}
    with plan.log.open("w", encoding="utf-8") as log:
        log.write(f"t2vz install_deps.py, {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        log.write(f"argv: {sys.argv}\nrunning on: Python {sys.version.split()[0]} at {sys.executable}\n")
        log.write(f"machine: {describe_machine(machine)}\n")
        for step in plan.steps:
            output = run_step(step, log, out)
            if step.report:
                report = parse_report(output)
        log.write("\nall steps succeeded\n")
    return report


def marker_content(plan: Plan, report: Mapping[str, object]) -> dict[str, object]:
    """What the add-on reads to start the backend: interpreter, environment variables, torch build, versions."""
    return {
        "schema": MARKER_SCHEMA,
        "python": str(plan.python),
        "env": plan.backend_env,
        "mode": plan.mode,
        "location": str(plan.env_dir),
        "torch_flavour": plan.torch.flavour,
        "torch_index": plan.torch.index_url or "default",
        "device": report.get("device", ""),
        "device_name": report.get("device_name", ""),
        "versions": report.get("versions", {}),
        "installed_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "log": str(plan.log),
    }


def write_markers(plan: Plan, content: Mapping[str, object]) -> None:
    """Write the marker JSON to each of the plan's marker paths."""
    for path in plan.markers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def summary(plan: Plan, machine: Machine, report: Mapping[str, object]) -> str:
    """The closing message: what was installed where, and the path for Blender's preferences."""
    versions = report.get("versions", {})
    torch_version = versions.get("torch", "?") if isinstance(versions, dict) else "?"
    device = f"{report.get('device', '?')} {report.get('device_name', '')}".strip()
    lines = [
        "",
        f"t2vz {'development' if plan.mode == 'dev' else 'backend'} environment is ready.",
        f"  python:         {report.get('python', plan.python)}",
        f"  torch:          {torch_version} ({torch_source(plan)})",
        f"  machine:        {describe_machine(machine)}",
        f"  torch sees:     {device}",
        f"  installed into: {plan.env_dir}",
        f"  marker:         {', '.join(map(str, plan.markers))}",
        f"  log:            {plan.log}",
    ]
    lines += [f"  note:           {note}" for note in plan.notes]
    if plan.mode != "dev":
        lines.append(f"Set this interpreter in the add-on's preferences (Backend Python): {plan.python}")
    if plan.backend_env:
        lines.append("The add-on starts it with: " + " ".join(f"{k}={v}" for k, v in plan.backend_env.items()))
    return "\n".join(lines)


def failure_message(failure: StepFailed, log: Path) -> str:
    """What the user sees when a command fails: the command, a hint when one applies, and the log to attach."""
    lines = [f"\nerror: {failure}", f"  command: {format_command(failure.step)}"]
    lines += [f"  hint: {hint}" for needle, hint in HINTS if needle in failure.output]
    lines.append(f"  full log (attach it to a bug report): {log}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def resolve_python(python: str) -> str:
    """An absolute path for --python, looked up on PATH if it is a bare name; symlinks kept (a venv's python is one)."""
    found = shutil.which(python)
    return str(Path(found).absolute()) if found else python


def parse_args(argv: Sequence[str] | None) -> Options:
    """Parse the command line into Options, rejecting combinations that make no sense."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    place = parser.add_mutually_exclusive_group()
    place.add_argument("--venv", type=Path, metavar="DIR", help="virtual environment to create or update "
                                                 "(default: the per-user data folder's t2vz/venv)")
    place.add_argument("--target", type=Path, metavar="DIR",
                       help="no venv: pip install --target DIR, for Blender's own Python")
    place.add_argument("--dev", action="store_true", help="developer environment in .venv/ next to this script")
    parser.add_argument("--python", default=sys.executable, metavar="PATH",
                        help="interpreter to build the venv from, or to install for with --target (default: this one)")
    parser.add_argument("--torch", choices=("auto", *TORCH_FLAVOURS), default="auto",
                        help="torch build (default: auto, from the GPU drivers found)")
    parser.add_argument("--torch-index", metavar="URL", help=f"PyTorch index to use instead of the default one, "
                                                             f"e.g. {PYTORCH_INDEX}/cu130 for RTX 50-series GPUs")
    parser.add_argument("--find-links", action="append", type=Path, default=[], metavar="DIR",
                        help="also look for wheels in DIR (repeatable)")
    parser.add_argument("--offline", action="store_true", help="pip --no-index: install only from --find-links folders")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing, create nothing")
    parser.add_argument("--farm", action="store_true", help="also install Ray, for rendering on a farm "
                                                            "(python -m t2vz_backend farm; --dev always has it)")
    args = parser.parse_args(argv)
    if args.dev and (args.torch != "auto" or args.torch_index):
        parser.error("--dev always uses the CPU build of torch; drop --torch/--torch-index")
    return Options(
        dev=args.dev,
        venv=args.venv.expanduser().absolute() if args.venv else None,
        target=args.target.expanduser().absolute() if args.target else None,
        python=resolve_python(args.python),
        torch=args.torch,
        torch_index=args.torch_index,
        find_links=tuple(folder.expanduser().absolute() for folder in args.find_links),
        offline=args.offline,
        dry_run=args.dry_run,
        farm=args.farm,
    )


def main(argv: Sequence[str] | None = None, probes: Probes | None = None, out: TextIO | None = None) -> int:
    """Plan, then print (--dry-run) or run the plan; return the process exit status."""
    out = out or sys.stdout  # looked up at call time, so a redirected sys.stdout is honoured
    # An old system python3 (macOS ships 3.9) still gets this far, and a clear message beats a traceback later.
    if sys.version_info < (3, 11):  # noqa: UP036
        print("error: install_deps.py needs Python 3.11 or newer to run", file=sys.stderr)
        return 2
    options = parse_args(argv)
    try:
        plan, machine = make_plan(options, probes or Probes())
    except InstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if options.dry_run:
        print_plan(plan, machine, out)
        return 0
    try:
        report = execute(plan, machine, out)
    except StepFailed as failure:
        print(failure_message(failure, plan.log), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; the log so far is {plan.log}", file=sys.stderr)
        return 130
    write_markers(plan, marker_content(plan, report))
    print(summary(plan, machine, report), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
