"""Registering the built add-on in the bpy module: clean (un)registration, defaults, panels, preferences."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from addon_helpers import PACKAGE, addon, fake_client, prefs, scene, submodule  # noqa: F401  # fixtures

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[1]
OPERATORS = ("generate", "redo", "cancel", "check_backend", "install_deps", "stop_backend", "low_vram_preset",
             "random_seed", "speed_preset", "show_parameters", "load_parameters")


def test_register_unregister_twice(addon):  # noqa: F811
    import addon_utils

    for _ in range(2):
        addon_utils.disable(PACKAGE, default_set=True)
        assert not hasattr(bpy.types.Scene, "t2vz")
        assert not hasattr(bpy.types, "T2VZ_OT_generate") and not hasattr(bpy.types, "T2VZ_PT_main")
        assert addon_utils.enable(PACKAGE, default_set=True, handle_error=None) is not None
        assert hasattr(bpy.types.Scene, "t2vz")
    for name in OPERATORS:
        assert getattr(bpy.ops.t2vz, name).idname() == f"T2VZ_OT_{name}"


def test_addon_owned_defaults_after_factory_settings(scene):  # noqa: F811
    """The add-on's own settings (the contract's are checked against it in test_addon_contract.py)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)  # unregisters nothing we rely on afterwards: re-enabled below
    import addon_utils

    addon_utils.enable(PACKAGE, default_set=True, handle_error=None)
    settings = bpy.context.scene.t2vz
    assert settings.mode == submodule("core.modes").MODES[0].key
    p = prefs()
    assert (p.backend_mode, p.python_source, p.output_root) == ("SUBPROCESS", "AUTO", "//t2vz/")
    assert type(p).bl_idname == PACKAGE


def test_register_is_cheap():
    """register() must not import torch or start processes: the modules it loads import neither at top level."""
    for path in (ROOT / "blender_addon").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("torch", "diffusers", "subprocess")
                        and path.name not in ("installer.py",)], path.name
            if isinstance(node, ast.ImportFrom):
                assert node.level > 0 or node.module.split(".")[0] not in ("blender_addon", "t2vz"), path.name


def test_low_vram_preset_and_random_seed(scene):  # noqa: F811
    scene.t2vz.seed = 5
    assert bpy.ops.t2vz.low_vram_preset() == {"FINISHED"}
    assert (prefs().dtype, prefs().vae_batch, scene.t2vz.chunk_size) == ("float16", 1, 2)
    seeds = set()
    for _ in range(3):
        bpy.ops.t2vz.random_seed()
        seeds.add(scene.t2vz.seed)
    assert len(seeds) > 1


def test_speed_presets_set_the_contracts_values_for_the_mode_shown(scene):  # noqa: F811
    protocol = submodule("backend.t2vz_backend.protocol")
    settings = scene.t2vz
    settings.mode = "TEXT2VIDEO"
    text_steps = settings.steps
    settings.mode = "CONTROLNET"
    assert bpy.ops.t2vz.speed_preset(preset="draft") == {"FINISHED"}
    draft = protocol.PRESETS["draft"]
    assert (settings.scheduler, settings.steps, settings.guidance) == (draft["scheduler"], draft["steps"],
                                                                      pytest.approx(draft["guidance"]))
    assert settings.use_few_step_lora and settings.cache_interval == 1
    settings.mode = "TEXT2VIDEO"  # steps and guidance are per mode: the other mode keeps its own
    assert settings.steps == text_steps
    assert bpy.ops.t2vz.speed_preset(preset="fast") == {"FINISHED"}
    assert (settings.cache_interval, settings.cache_depth) == (protocol.PRESETS["fast"]["cache_interval"],
                                                               protocol.PRESETS["fast"]["cache_depth"])
    assert not settings.use_few_step_lora and settings.scheduler == protocol.TextToVideoRequest.scheduler
    settings.mode = "CONTROLNET"
    assert bpy.ops.t2vz.speed_preset(preset="quality") == {"FINISHED"}
    assert (settings.steps, settings.scheduler, settings.cache_interval) == (
        protocol.ControlVideoRequest.steps, protocol.ControlVideoRequest.scheduler, 1)


def test_offline_follows_online_access(scene):  # noqa: F811
    preferences = submodule("preferences")
    p = prefs()
    p.offline = False
    assert preferences.prefs_view(p).offline is (not bpy.app.online_access)
    p.offline = True
    assert preferences.prefs_view(p).offline is True
    assert dict(preferences.client_config(p).extra_env)["HF_HUB_OFFLINE"] == "1"


def test_unsaved_file_output_goes_to_user_folder(scene):  # noqa: F811
    preferences = submodule("preferences")
    p = prefs()
    p.output_root = "//t2vz/"
    root = preferences.output_root(p)
    assert not bpy.data.filepath and "t2vz" in root and "/tmp" not in root.replace("\\", "/")[:5]


class Layout:
    """Records what a panel draws (labels, props, operators), accepting any attribute assignment."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):
        if name in ("row", "column", "box", "split", "grid_flow"):
            return lambda *a, **k: Layout(self.log)
        if name == "operator":
            return lambda op, **k: self.log.append(("op", op)) or SimpleNamespace()
        return lambda *a, **k: self.log.append((name, a, k))


def draw(panel_cls, context):
    log = []
    helpers = ("draw_size", "draw_frames", "draw_speed", "draw_source")
    panel = SimpleNamespace(layout=Layout(log), **{n: getattr(panel_cls, n) for n in helpers if hasattr(panel_cls, n)})
    panel_cls.draw(panel, context)
    return log


def test_panel_shows_problems_beside_settings(scene):  # noqa: F811
    panels = submodule("ui.panels")
    scene.t2vz.width, scene.t2vz.t0 = 60, 960
    log = draw(panels.T2VZ_PT_main, bpy.context)
    labels = [entry[2].get("text", "") for entry in log if entry[0] == "label"]
    assert any("width=60 is not a positive multiple of 8" in text for text in labels)
    assert any("t0" in text and "t1" in text for text in labels)
    assert ("op", "t2vz.generate") in log
    assert ("op", "t2vz.speed_preset") in log  # the Quality / Fast / Draft row
    where = {entry[1][1]: i for i, entry in enumerate(log) if entry[0] == "prop" and len(entry[1]) > 1}
    problem = next(i for i, e in enumerate(log) if e[0] == "label" and "width=60" in e[2].get("text", ""))
    assert where["width"] < problem < where["frames"]  # drawn under the size fields, above the next setting
    draw(panels.T2VZ_PT_scene_passes, bpy.context)


def test_panel_shows_progress_and_cancel_while_running(scene, fake_client):  # noqa: F811
    runner = submodule("core.runner")
    fake_client.hang = True
    client = submodule("core.session").get_client(None)
    job = runner.start(client, submodule("backend.t2vz_backend.protocol").TextToVideoRequest(output_dir="x"))
    runner.pump(job)
    log = draw(submodule("ui.panels").T2VZ_PT_main, bpy.context)
    assert any(entry[0] == "progress" for entry in log) and ("op", "t2vz.cancel") in log
    assert not bpy.ops.t2vz.generate.poll()
    runner.cancel(job)
    runner.pump(job)
    assert job.status == runner.CANCELLED



def test_install_dependencies_dry_run_logs_the_plan(scene):  # noqa: F811
    assert bpy.ops.t2vz.install_deps(dry_run=True) == {"FINISHED"}
    log = bpy.data.texts["t2vz_install.log"].as_string()
    assert "install_deps.py --torch auto --dry-run" in log.splitlines()[0]
    assert "pip" in log and submodule("core.installer").current().returncode == 0


def test_in_process_mode_without_torch_says_what_to_do(scene, monkeypatch):  # noqa: F811
    session = submodule("core.session")
    monkeypatch.setattr(session.importlib.util, "find_spec", lambda name: None)
    prefs().backend_mode = "IN_PROCESS"
    with pytest.raises(RuntimeError, match="needs torch in Blender's own Python.*Separate Process"):
        bpy.ops.t2vz.generate()


def test_one_error_boundary_reports_user_errors_and_logs_bugs(scene, monkeypatch):  # noqa: F811
    jobs = submodule("jobs")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(jobs, "prepare", broken)
    with pytest.raises(RuntimeError, match="internal error in T2VZ_OT_generate: ZeroDivisionError"):
        bpy.ops.t2vz.generate()
    log = bpy.data.texts["t2vz_log"].as_string()
    assert "Traceback" in log and "ZeroDivisionError: a bug" in log
    errors = submodule("core.errors")
    monkeypatch.setattr(jobs, "prepare", lambda *a, **k: (_ for _ in ()).throw(
        errors.T2VZAddonError("steps=1 is too few", "use at least 2", setting="steps")))
    with pytest.raises(RuntimeError, match="steps=1 is too few. use at least 2"):
        bpy.ops.t2vz.generate()
    for path in (ROOT / "blender_addon" / "operators").glob("*.py"):  # nowhere else turns errors into reports
        if path.name != "boundary.py":
            assert not re.search(r"except T2VZAddonError.*\n\s*self\.report", path.read_text()), path.name


@pytest.mark.parametrize("mode", ["TEXT2VIDEO", "CONTROLNET", "PIX2PIX", "SCENE"])
def test_panel_draws_each_mode_with_its_own_steps(scene, mode):  # noqa: F811
    scene.t2vz.mode = mode
    log = draw(submodule("ui.panels").T2VZ_PT_main, bpy.context)
    owners = {entry[1][1]: entry[1][0] for entry in log if entry[0] == "prop" and len(entry[1]) > 1}
    group = getattr(scene.t2vz, submodule("core.modes").get(mode).group)
    assert owners["steps"] == group and owners["guidance"] == group and owners["seed"] == scene.t2vz
    assert ("long_side" in owners) is (mode != "TEXT2VIDEO" and scene.t2vz.fit_source)
