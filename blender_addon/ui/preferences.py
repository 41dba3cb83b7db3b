"""Draw code of the add-on preferences (kept apart from the property definitions)."""

from __future__ import annotations

from typing import Any

import bpy

from ..core import compat, environment, installer, settings_table
from ..core.errors import T2VZAddonError

LOG_LINES = 6  # installer output lines shown under the button


def draw_preferences(prefs: Any, context: Any, layout: Any) -> None:
    from ..operators.backend import last_check  # the operator module owns the check state

    box = layout.box()
    box.label(text="Backend", icon="CONSOLE")
    box.prop(prefs, "backend_mode")
    if prefs.backend_mode == "SUBPROCESS":
        box.prop(prefs, "python_source")
        if prefs.python_source == "CUSTOM":
            box.prop(prefs, "python_path")
        else:
            _draw_found_env(box)
    row = box.row(align=True)
    row.operator("t2vz.check_backend", icon="CHECKMARK")
    row.operator("t2vz.stop_backend", icon="X")
    if last_check["text"]:
        col = box.column(align=True)
        col.alert = last_check["ok"] is False
        col.label(text=last_check["text"], icon="INFO" if last_check["ok"] is not False else "ERROR")
    _draw_installer(box, prefs)

    box = layout.box()
    box.label(text="Models", icon="FILE_3D")
    for name in ("base_model", "model_config", *(f"controlnet_{kind}" for kind in settings_table.CONTROL_KINDS),
                 "pix2pix_model", "report_clip", "allow_pickle"):
        box.prop(prefs, name)
    box.prop(prefs, "hf_home")

    box = layout.box()
    box.label(text="Performance", icon="MEMORY")
    box.prop(prefs, "device")
    box.prop(prefs, "dtype")
    box.prop(prefs, "vae_batch")
    box.operator("t2vz.low_vram_preset", icon="PRESET")
    box.prop(prefs, "compile")
    box.prop(prefs, "channels_last")
    box.prop(prefs, "few_step_lora")

    box = layout.box()
    box.label(text="Network and Output", icon="WORLD")
    box.prop(prefs, "offline")
    if not compat.online_access(bpy.app):
        box.label(text="Blender's online access is off: jobs run offline (only models on disk)", icon="INFO")
    box.prop(prefs, "output_root")
    box.prop(prefs, "unsaved_output_dir")

    box = layout.box()  # issue 15: where Render on Farm sends jobs
    box.label(text="Farm (Ray)", icon="NETWORK_DRIVE")
    box.prop(prefs, "farm_address")
    box.prop(prefs, "farm_ranges")
    box.prop(prefs, "farm_token_file")
    box.prop(prefs, "farm_shared_storage")
    box.label(text="The backend environment needs Ray: install_deps.py --farm", icon="INFO")


def _draw_found_env(layout: Any) -> None:
    try:
        backend = environment.resolve_backend(environment.EnvChoice("AUTO"))
    except T2VZAddonError as error:
        col = layout.column(align=True)
        col.alert = True
        col.label(text=error.message, icon="ERROR")
        col.label(text="Press Install Dependencies below, or choose a custom interpreter", icon="BLANK1")
        return
    layout.label(text=f"Python: {backend.python}", icon="CHECKMARK")


def _draw_installer(layout: Any, prefs: Any) -> None:
    proc = installer.current()
    row = layout.row(align=True)
    row.enabled = proc is None or proc.finished
    row.operator("t2vz.install_deps", icon="IMPORT")
    row.prop(prefs, "install_torch", text="")
    if proc is None:
        layout.label(text=f"Installs into {environment.default_venv()}", icon="BLANK1")
        return
    state = "running…" if not proc.finished else f"finished (exit status {proc.returncode})"
    col = layout.column(align=True)
    col.alert = proc.finished and proc.returncode != 0
    col.label(text=f"Installer {state}; full log: Text Editor > t2vz_install.log")
    for line in proc.log[-LOG_LINES:]:
        col.label(text=line[:160])
