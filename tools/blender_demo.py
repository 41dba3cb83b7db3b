"""The demo's second half: the same text->video job through the add-on in Blender, headless.

Runs in the dev venv, where ``bpy`` (Blender 4.5 as a Python module) stands in for ``blender -b``: it builds the
extension as it ships, enables it, configures the scene for the built-in tiny model (random weights: it draws
noise), runs ``bpy.ops.t2vz.generate()`` (the synchronous headless path, a real backend worker) and saves
``demo.blend`` with the result as an image strip. Usage: ``python tools/blender_demo.py OUT_DIR``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "demo_out/blender").resolve()
    import bpy  # noqa: I001  (first: it puts Blender's own modules such as addon_utils on sys.path)
    import addon_utils

    sys.path.insert(0, str(ROOT / "tools"))
    import build_extension

    package_parent = Path(tempfile.mkdtemp(prefix="t2vz-demo-addon-"))
    try:
        assert build_extension.main(["--dir", str(package_parent / "t2vz")]) == 0
        sys.path.insert(0, str(package_parent))
        addon_utils.enable("t2vz", default_set=True, handle_error=None)
        bpy.ops.wm.read_homefile(use_empty=True)
        prefs = bpy.context.preferences.addons["t2vz"].preferences
        prefs.backend_mode, prefs.python_source, prefs.python_path = "SUBPROCESS", "CUSTOM", sys.executable
        prefs.base_model, prefs.device, prefs.dtype = "tiny", "cpu", "float32"
        if out.exists():
            shutil.rmtree(out)  # the demo is idempotent: each run starts from an empty folder
        out.mkdir(parents=True)
        prefs.output_root = str(out / "frames")
        settings = bpy.context.scene.t2vz
        settings.mode, settings.prompt, settings.seed = "TEXT2VIDEO", "a fox running in the snow", 0
        settings.width, settings.height, settings.frames, settings.steps = 128, 128, 8, 20
        result = bpy.ops.t2vz.generate()
        if result != {"FINISHED"}:
            print(f"t2vz demo: generate returned {result}", file=sys.stderr)
            return 1
        strips = list(sys.modules["t2vz.core.compat"].iter_all_strips(bpy.context.scene))
        bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo.blend"))
        for strip in strips:
            print(f"t2vz demo: strip {strip.name!r} on channel {strip.channel}, {len(strip.elements)} frames "
                  f"from {bpy.path.abspath(strip.directory)}")
        print(f"t2vz demo: saved {out / 'demo.blend'} (the tiny model is a random smoke-test model: it draws noise)")
        return 0
    finally:
        session = sys.modules.get("t2vz.core.session")
        if session is not None:
            session.stop()
        addon_utils.disable("t2vz", default_set=True)
        shutil.rmtree(package_parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
