"""Where the backend's Python environment is and how the worker process is started (no bpy).

``install_deps.py`` creates a venv in the per-user data folder (``<data>/t2vz/venv``) and writes ``t2vz-env.json``
(keys ``python`` and ``env``) into the venv and into ``<data>/t2vz/``. The add-on reads that marker, or uses an
interpreter the user picked, and starts ``python -m t2vz_backend worker`` with PYTHONPATH set to the add-on's
``backend/`` folder, so the worker always runs the backend version bundled with this add-on.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .errors import T2VZAddonError

MARKER_NAME = "t2vz-env.json"
ADDON_DIR = Path(__file__).resolve().parents[1]  # the add-on package (this module is in its core/)
BACKEND_DIR = ADDON_DIR / "backend"  # holds the t2vz_backend package (symlink or copy)
INSTALLER = ADDON_DIR / "installer" / "install_deps.py"  # present in built packages
DEV_INSTALLER = ADDON_DIR.parent / "install_deps.py"  # the repository's, in a dev checkout


def installer_script() -> Path:
    """``install_deps.py``: the packaged copy, else the repository's when running from a checkout."""
    return INSTALLER if INSTALLER.is_file() or not DEV_INSTALLER.is_file() else DEV_INSTALLER


@functools.cache
def _installer() -> ModuleType:
    """``install_deps.py`` as a module (standard library only), loaded on first use: it owns where it installs."""
    script = installer_script()
    spec = importlib.util.spec_from_file_location("t2vz_install_deps", script)
    if spec is None or spec.loader is None or not script.is_file():
        raise T2VZAddonError(f"install_deps.py is missing from this package ({script})",
                             "reinstall the add-on from its release zip")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def user_data_dir(system: str | None = None, environ: Mapping[str, str] | None = None,
                  home: Path | None = None) -> Path:
    """The per-user t2vz folder: ``install_deps.user_data_dir``, the folder the installer writes to."""
    return _installer().user_data_dir(system or platform.system(), os.environ if environ is None else environ,
                                      home or Path.home())


def default_venv() -> Path:
    return user_data_dir() / "venv"


def marker_candidates() -> list[Path]:
    """Marker files to look at, in order: the default venv's, then the data folder's copy."""
    return [default_venv() / MARKER_NAME, user_data_dir() / MARKER_NAME]


def read_marker(path: Path) -> dict | None:
    """The marker's content when it exists, parses and names an interpreter; otherwise None."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("python"), str) or not data["python"]:
        return None
    return data


def find_marker() -> tuple[Path, dict] | None:
    for path in marker_candidates():
        data = read_marker(path)
        if data is not None:
            return path, data
    return None


@dataclass(frozen=True)
class BackendEnv:
    """How to start the worker: the interpreter and the extra environment variables."""

    python: str
    env: tuple[tuple[str, str], ...] = ()  # from the marker (e.g. PYTHONPATH of a --target install)
    source: str = ""  # where ``python`` came from, for messages

    def worker_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child's environment: this process's, then the marker's variables, then ``extra``.

        The client puts the add-on's ``backend/`` folder in front of PYTHONPATH itself.
        """
        env = dict(os.environ)
        env.update(dict(self.env))
        env.update(extra or {})
        return env


@dataclass(frozen=True)
class EnvChoice:
    """The preference values that pick the interpreter (a plain snapshot of the add-on preferences)."""

    source: str = "AUTO"  # "AUTO": the install_deps.py marker; "CUSTOM": ``python`` below
    python: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


INSTALL_HINT = (
    "install the backend from Preferences > Add-ons > T2V-Zero > Install dependencies "
    "(or run `python3 install_deps.py`), or choose a Python interpreter that has torch and diffusers"
)


def resolve_backend(choice: EnvChoice) -> BackendEnv:
    """The interpreter to run the worker with, or a ``T2VZAddonError`` that says how to install one."""
    if choice.source == "CUSTOM":
        python = os.path.expanduser(choice.python.strip())
        if not python:
            raise T2VZAddonError("no backend Python interpreter is set", INSTALL_HINT)
        if not os.path.isfile(python):
            raise T2VZAddonError(f"the backend Python {python!r} does not exist", INSTALL_HINT)
        return BackendEnv(python, source="preferences")
    found = find_marker()
    if found is None:
        where = " or ".join(str(p) for p in marker_candidates())
        raise T2VZAddonError(f"no backend environment found (looked for {where})", INSTALL_HINT)
    path, data = found
    python = data["python"]
    if not os.path.isfile(python):
        raise T2VZAddonError(f"the backend Python {python!r} named in {path} no longer exists", INSTALL_HINT)
    env = data.get("env") if isinstance(data.get("env"), dict) else {}
    return BackendEnv(python, tuple((str(k), str(v)) for k, v in env.items()), source=str(path))
