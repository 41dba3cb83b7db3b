"""Small operators on the settings: random seed, and showing or loading a generated strip's parameters."""

import json
import random

import bpy

from ..core import compat
from ..core.errors import T2VZAddonError
from ..timeline import sequencer
from ..ui import textlog

PARAMETERS_TEXT = "t2vz_parameters.json"
SEED_MAX = 2**31 - 1  # IntProperty range

# Request field -> scene setting, for loading a stored request back into the panel.
LOADABLE = {
    "prompt": "prompt", "instruction": "prompt", "negative_prompt": "negative_prompt", "seed": "seed",
    "steps": "steps", "guidance": "guidance", "image_guidance": "image_guidance", "t0": "t0", "t1": "t1",
    "chunk_size": "chunk_size", "exact_anchor": "exact_anchor", "smooth_bg_strength": "smooth_bg_strength",
}
MODE_OF_TYPE = {"text2video": "TEXT2VIDEO", "controlnet": "CONTROLNET", "pix2pix": "PIX2PIX"}


def _active_request(context):
    strip = compat.active_strip(compat.sequencer_scene(context))
    data = sequencer.strip_request(strip)
    if data is None:
        raise T2VZAddonError("the active strip was not made by T2V-Zero", "click a generated strip first")
    return strip, data


def apply_request(settings, data: dict) -> None:
    """Copy a stored request's values into the scene settings (what the strip was made with)."""
    for field, name in LOADABLE.items():
        if field in data:
            setattr(settings, name, data[field])
    if data.get("type") in MODE_OF_TYPE and settings.mode != "SCENE":
        settings.mode = MODE_OF_TYPE[data["type"]]
    if data.get("width") and data.get("height"):
        settings.width, settings.height = data["width"], data["height"]
        settings.fit_source = False
    if data.get("type") == "text2video":
        settings.frames = max(1, data.get("frames", settings.frames))
        settings.motion = (data.get("motion_x", 0.0) * 100, data.get("motion_y", 0.0) * 100)


class T2VZ_OT_random_seed(bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "t2vz.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.t2vz.seed = random.randint(0, SEED_MAX)
        return {"FINISHED"}


class T2VZ_OT_show_parameters(bpy.types.Operator):
    """Show every parameter the active generated strip was made with, in the Text Editor"""

    bl_idname = "t2vz.show_parameters"
    bl_label = "Show Parameters"

    def execute(self, context):
        try:
            strip, data = _active_request(context)
        except T2VZAddonError as error:
            self.report({"ERROR"}, error.report_text())
            return {"CANCELLED"}
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

    def execute(self, context):
        try:
            strip, data = _active_request(context)
        except T2VZAddonError as error:
            self.report({"ERROR"}, error.report_text())
            return {"CANCELLED"}
        apply_request(context.scene.t2vz, data)
        self.report({"INFO"}, f"T2V-Zero: settings loaded from {strip.name!r}")
        return {"FINISHED"}


classes = (T2VZ_OT_random_seed, T2VZ_OT_show_parameters, T2VZ_OT_load_parameters)

register, unregister = bpy.utils.register_classes_factory(classes)
