"""Small operators on the settings: random seed, and showing or loading a generated strip's parameters."""

import json
import random

import bpy

from ..core import compat, contract, modes, motion_choices
from ..core.errors import T2VZAddonError
from ..core.settings_table import CONTROL_KINDS, SCENE_BY_NAME, SCENE_SETTINGS
from ..timeline import sequencer
from ..ui import textlog
from .boundary import error_boundary

PARAMETERS_TEXT = "t2vz_parameters.json"


def _active_request(context):
    strip = compat.active_strip(compat.sequencer_scene(context))
    data = sequencer.strip_request(strip)
    if data is None:
        raise T2VZAddonError("the active strip was not made by T2V-Zero", "click a generated strip first")
    return strip, data


def _set(settings, name: str, value, skipped: list[str]) -> None:
    """Set a setting unless its property cannot hold ``value`` (then say so in ``skipped``)."""
    try:
        contract.check_value(SCENE_BY_NAME[name], value)
    except T2VZAddonError as error:
        skipped.append(error.report_text())
        return
    setattr(settings, name, value)


def apply_request(settings, data: dict) -> list[str]:
    """Copy a stored request's values into the scene settings (what the strip was made with).

    Returns what could not be loaded: values beyond what a setting holds (a seed above 2**31-1 from the CLI) are
    left as they were rather than clipped; Redo still uses the stored request exactly.
    """
    mode = modes.for_request_type(data.get("type", ""), settings.mode)
    if mode is None:
        raise T2VZAddonError(f"the stored request has an unknown type {data.get('type')!r}",
                             "generate it again from the panel")
    settings.mode = mode.key
    skipped: list[str] = []
    camera = bool(data.get("motion_homographies") or data.get("motion_flow"))  # made from the scene camera
    for setting in SCENE_SETTINGS:
        if camera and setting.name == "motion":
            continue  # a camera job's drift is 0: the user's Drift vector stays
        names = setting.fields_for(mode.key)
        if mode.key in setting.modes and names and "." not in names[0] and all(n in data for n in names):
            _set(settings, setting.name, contract.from_request(setting, tuple(data[n] for n in names)), skipped)
    if mode.key != modes.TEXT2VIDEO:
        forced = bool(data.get("width") and data.get("height"))
        settings.fit_source = not forced
        if forced:
            _set(settings, "width", data["width"], skipped)
            _set(settings, "height", data["height"], skipped)
    if mode.key in (modes.TEXT2VIDEO, modes.SCENE):
        settings.motion_source = (motion_choices.CAMERA_DEPTH if data.get("motion_flow") else motion_choices.CAMERA
                                  ) if camera else motion_choices.DRIFT
    controls = data.get("controls") or []
    if controls and isinstance(controls[0], dict):
        control = controls[0]
        if "scale" in control:
            _set(settings, "control_scale", control["scale"], skipped)
        if mode.key == modes.CONTROLNET and control.get("kind") in CONTROL_KINDS:
            settings.control_kind = control["kind"]
            settings.control_input = "MAPS" if control.get("preprocessor", "none") == "none" else "EXTRACT"
    return skipped


class T2VZ_OT_random_seed(bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "t2vz.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.t2vz.seed = random.randint(*contract.bounds(SCENE_BY_NAME["seed"]))
        return {"FINISHED"}


class T2VZ_OT_show_parameters(bpy.types.Operator):
    """Show every parameter the active generated strip was made with, in the Text Editor"""

    bl_idname = "t2vz.show_parameters"
    bl_label = "Show Parameters"

    @error_boundary
    def execute(self, context):
        strip, data = _active_request(context)
        textlog.write(PARAMETERS_TEXT, json.dumps(data, indent=2), append=False)
        job = strip.get(sequencer.JOB_KEY, "")
        self.report({"INFO"}, f"T2V-Zero: parameters of {strip.name!r} are in the Text Editor "
                    f"({PARAMETERS_TEXT}); job folder {job}")
        return {"FINISHED"}


class T2VZ_OT_load_parameters(bpy.types.Operator):
    """Copy the active generated strip's parameters into the panel's settings"""

    bl_idname = "t2vz.load_parameters"
    bl_label = "Load Parameters"
    bl_options = {"REGISTER", "UNDO"}

    @error_boundary
    def execute(self, context):
        strip, data = _active_request(context)
        skipped = apply_request(context.scene.t2vz, data)
        if skipped:
            self.report({"WARNING"}, f"T2V-Zero: settings loaded from {strip.name!r} except: {'; '.join(skipped)}")
        else:
            self.report({"INFO"}, f"T2V-Zero: settings loaded from {strip.name!r}")
        return {"FINISHED"}


classes = (T2VZ_OT_random_seed, T2VZ_OT_show_parameters, T2VZ_OT_load_parameters)

register, unregister = bpy.utils.register_classes_factory(classes)
