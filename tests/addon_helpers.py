"""Shared set-up of the add-on tests: the built package enabled in the ``bpy`` module, tiny PNGs, a fake backend.

The add-on is tested as it ships: ``tools/build_extension.py --dir`` makes the package folder ``t2vz`` (with its
copy of the backend) in a temporary folder, which goes on ``sys.path`` and is enabled with ``addon_utils``, so the
module is ``t2vz`` (not ``blender_addon``) and only relative imports can work. Background mode (``bpy`` as a
module) makes the operators take their synchronous path.
"""

from __future__ import annotations

import atexit
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "t2vz"

try:
    import bpy
except ImportError:  # the bpy-free tests still use the PNG writer and the fake client
    bpy = None


def build_package(out_parent: Path) -> Path:
    """Build the unpacked package into ``out_parent/t2vz`` and return that folder."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_extension
    finally:
        sys.path.remove(str(ROOT / "tools"))
    target = out_parent / PACKAGE
    assert build_extension.main(["--dir", str(target)]) == 0
    return target


_enabled = {"module": None, "users": 0, "path": ""}  # shared by the per-module copies of the session fixture


def _skip_bpy_exit_handlers(session) -> None:
    """Leave the process, with pytest's exit status, before bpy's C exit handlers.

    They fail in two ways after the last test, neither of them the add-on's: with torch loaded too (the full test
    suite), bpy 4.5's static ``GlobalState`` destructor (its delayed file-close thread) destroys a condition variable
    that thread still waits on, and ``exit()`` hangs forever (seen with gdb); and bpy 4.2 as a module segfaults at
    exit once a PropertyGroup with Python methods or properties was registered, even after unregistering it (seen
    with a two-line PropertyGroup). Only bpy's and other C teardown is skipped.
    """
    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(getattr(session, "exitstatus", 0)))


@pytest.fixture(scope="session")
def addon(tmp_path_factory, request):
    """The built add-on, enabled for the whole session; yields its module.

    Each test module imports this fixture, which makes pytest hold one session fixture per module: the package is
    built and enabled once, and disabled when the last of them is torn down.
    """
    if bpy is None:
        pytest.skip("needs the bpy module (pip install bpy==4.5.*)")
    import addon_utils  # on sys.path only once bpy is imported

    if _enabled["users"] == 0:
        # atexit runs handlers newest first: this one runs after those registered later, and ends the process
        # before those registered earlier (logging, torch), which only tidy up.
        atexit.register(_skip_bpy_exit_handlers, request.session)
        parent = tmp_path_factory.mktemp("addon")
        build_package(parent)
        sys.path.insert(0, str(parent))
        _enabled.update(module=addon_utils.enable(PACKAGE, default_set=True, handle_error=None), path=str(parent))
        assert _enabled["module"] is not None, "the add-on failed to enable"
    _enabled["users"] += 1
    yield _enabled["module"]
    _enabled["users"] -= 1
    if _enabled["users"] == 0:
        submodule("core.session").stop()
        addon_utils.disable(PACKAGE, default_set=True)
        sys.path.remove(_enabled["path"])


def worker_python() -> str:
    """The interpreter the tests run the backend worker with: $T2VZ_TEST_PYTHON, else this one.

    Set it to test another Blender's bpy (e.g. a bpy 5.0 venv without torch) against the dev venv's backend.
    """
    return os.environ.get("T2VZ_TEST_PYTHON", sys.executable)


def worker_has_torch() -> bool:
    check = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
    return subprocess.run([worker_python(), "-c", check], capture_output=True, timeout=60).returncode == 0


def submodule(name: str):
    return sys.modules[f"{PACKAGE}.{name}"]


def prefs():
    return bpy.context.preferences.addons[PACKAGE].preferences


@pytest.fixture
def scene(addon, tmp_path):
    """An empty file, preferences aimed at the dev venv and the tiny model, output under ``tmp_path``."""
    bpy.ops.wm.read_homefile(use_empty=True)
    p = prefs()
    p.backend_mode, p.python_source, p.python_path = "SUBPROCESS", "CUSTOM", worker_python()
    p.base_model = p.pix2pix_model = "tiny"
    p.controlnet_canny = p.controlnet_depth = p.controlnet_pose = ""
    p.device, p.dtype, p.vae_batch = "cpu", "float32", 2
    p.output_root = str(tmp_path / "out")
    s = bpy.context.scene
    for mode in submodule("core.modes").MODES:  # steps are per mode: every mode runs 2
        s.t2vz.mode = mode.key
        s.t2vz.steps = 2
    s.t2vz.mode = "TEXT2VIDEO"
    s.t2vz.width, s.t2vz.height, s.t2vz.long_side, s.t2vz.frames = 32, 32, 32, 3
    s.t2vz.prompt, s.t2vz.seed = "a red ball", 7
    submodule("core.runner").forget()
    yield s
    submodule("core.runner").forget()


def write_png(path: Path, width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A solid-colour RGB PNG written without any image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    body = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def write_frames(folder: Path, count: int, size: tuple[int, int] = (32, 32), prefix: str = "src") -> list[Path]:
    return [write_png(folder / f"{prefix}_{i:04d}.png", *size, rgb=(40 * i % 256, 120, 200)) for i in range(count)]


def image_strip(scene, name: str, files: list[Path], channel: int = 1, frame_start: int = 1, select: bool = True):
    """An image-sequence strip of ``files`` (one folder), selected by default."""
    sed = scene.sequence_editor or scene.sequence_editor_create()
    strips = submodule("core.compat").top_strips(sed)
    strip = strips.new_image(name=name, filepath=str(files[0]), channel=channel, frame_start=frame_start,
                             fit_method="ORIGINAL")
    for path in files[1:]:
        strip.elements.append(path.name)
    strip.select = select
    return strip


def movie_file(path: Path, frames: int = 4, size: int = 32) -> Path:
    """An H.264 .mp4 of a red colour strip, rendered by Blender's own sequencer in a throwaway scene."""
    compat = submodule("core.compat")
    movie_scene = bpy.data.scenes.new("movie source")
    render = movie_scene.render
    render.resolution_x = render.resolution_y = size
    render.resolution_percentage, movie_scene.frame_start, movie_scene.frame_end = 100, 1, frames
    strips = compat.top_strips(movie_scene.sequence_editor_create())
    try:  # 5.0 takes a length instead of an end frame
        strips.new_effect(name="red", type="COLOR", channel=1, frame_start=1, length=frames)
    except TypeError:
        strips.new_effect(name="red", type="COLOR", channel=1, frame_start=1, frame_end=frames + 1)
    if hasattr(render.image_settings, "media_type"):  # 5.x: before file_format
        render.image_settings.media_type = "VIDEO"
    render.image_settings.file_format = "FFMPEG"
    render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"
    render.filepath, render.use_file_extension = str(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(animation=True, scene=movie_scene.name)
    bpy.data.scenes.remove(movie_scene)
    assert path.is_file()
    return path


def movie_strip(scene, name: str, path: Path, channel: int = 1, frame_start: int = 1, select: bool = True):
    strips = submodule("core.compat").top_strips(scene.sequence_editor or scene.sequence_editor_create())
    strip = strips.new_movie(name, str(path), channel, frame_start)
    strip.select = select
    return strip


def strip_start(strip) -> int:
    """The first timeline frame a strip shows, in the spelling of this Blender (5.3 deprecated frame_final_start)."""
    return submodule("core.compat").strip_range(strip)[0]


def generated_strips(scene) -> list:
    """Strips that carry a stored request (made by the add-on)."""
    compat = submodule("core.compat")
    return [s for s in compat.iter_all_strips(scene) if "t2vz_request" in s]


class FakeClient:
    """Stands in for the worker: writes ``frames`` PNGs on the first poll, or fails / never ends on demand."""

    def __init__(self, frames: int = 3, fail: str = "", hang: bool = False) -> None:
        self.frames, self.fail, self.hang = frames, fail, hang
        self.requests, self.cancelled, self.alive, self._pending = [], [], True, []

    def submit(self, request, job_id=None):
        self.requests.append(request)
        job_id = job_id or f"fake{len(self.requests)}"
        self._pending.append((job_id, request))
        return job_id

    def poll(self):
        protocol = submodule("backend.t2vz_backend.protocol")
        events = []
        for job_id, request in self._pending:
            if job_id in self.cancelled:
                events.append(protocol.Failed(job_id=job_id, kind="cancelled", message="the job was cancelled"))
            elif self.fail:
                events.append(protocol.Failed(job_id=job_id, kind="input", message=self.fail, hint="fix it"))
            elif not self.hang:
                out = Path(request.output_dir)
                count = getattr(request, "frames", 0) or self.frames
                files = [str(write_png(out / f"frame_{i:06d}.png", 32, 32)) for i in range(count)]
                events.append(protocol.Progress(job_id=job_id, step=1, total_steps=2, eta_s=3.0))
                events += [protocol.FrameWritten(job_id=job_id, index=i, path=f) for i, f in enumerate(files)]
                events.append(protocol.Done(job_id=job_id, output_dir=str(out), frames=tuple(files)))
            else:
                events.append(protocol.Progress(job_id=job_id, step=1, total_steps=2))
                continue
        self._pending = [(j, r) for j, r in self._pending if self.hang and j not in self.cancelled]
        return events

    def cancel(self, job_id=""):
        self.cancelled.append(job_id)

    def stop(self):
        self.alive = False


@pytest.fixture
def fake_client(addon, monkeypatch):
    """Route jobs to a ``FakeClient`` (returned) instead of a worker process."""
    session = submodule("core.session")
    client = FakeClient()
    session.stop()
    monkeypatch.setattr(session, "_make_client", lambda config: client)
    yield client
    session.stop()
