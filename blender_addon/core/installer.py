"""Run ``install_deps.py`` in a child process without blocking Blender (no bpy).

A reader thread moves the child's output lines into a queue; the operator's timer drains it into a Text datablock.
``install_deps.py`` ships in the package's ``installer/`` folder (the build copies it there with its requirements).
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .environment import installer_script
from .errors import T2VZAddonError


@dataclass
class InstallProcess:
    command: list[str]
    process: subprocess.Popen
    lines: queue.Queue = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)
    returncode: int | None = None

    def drain(self) -> list[str]:
        """Output lines that arrived since the last call (also kept in ``log``)."""
        new = []
        while True:
            try:
                new.append(self.lines.get_nowait())
            except queue.Empty:
                break
        self.log.extend(new)
        if self.returncode is None and self.process.poll() is not None and not self._reader.is_alive():
            self.returncode = self.process.returncode
            new.extend(self.drain())
        return new

    @property
    def finished(self) -> bool:
        return self.returncode is not None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read, name="t2vz-install-reader", daemon=True)
        self._reader.start()


_current: InstallProcess | None = None


def install_command(script: Path | None = None, torch: str = "auto", python: str | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """``<python> -u install_deps.py --torch <build> [extra]``; Blender's own Python runs it by default."""
    return [python or sys.executable, "-u", str(script or installer_script()), "--torch", torch, *extra]


def start(command: Sequence[str]) -> InstallProcess:
    """Start the installer; one at a time."""
    global _current
    if _current is not None and not _current.finished:
        raise T2VZAddonError("the dependency installer is already running", "wait for it to finish")
    script = Path(command[2]) if len(command) > 2 else None
    if script is not None and not script.is_file():
        raise T2VZAddonError(f"install_deps.py is missing from this package ({script})",
                             "reinstall the add-on from its release zip, or run install_deps.py from the repository")
    try:
        process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace", stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise T2VZAddonError(f"cannot start the installer ({exc})", "check that Blender's Python can run") from exc
    _current = InstallProcess(list(command), process)
    _current.start_reader()
    return _current


def current() -> InstallProcess | None:
    return _current


def stop() -> None:
    """Terminate a running installer (unregister, or the user cancelling)."""
    if _current is not None and not _current.finished and _current.process.poll() is None:
        _current.process.terminate()
