"""The consistency report's operators: open a strip's report.png in an Image Editor, and the one-click baseline.

No ``from __future__ import annotations``: the operators declare ``bpy.props`` annotations.
"""

import dataclasses
import os
from typing import Any

import bpy

from .. import jobs, preferences
from ..core import compat
from ..core.errors import T2VZAddonError
from ..timeline import sequencer, strip_report
from .boundary import error_boundary
from .generate import JobDriver


def _strip(context: Any, name: str) -> Any:
    scene = compat.sequencer_scene(context)
    strip = compat.find_strip(scene, name) if name else compat.active_strip(scene)
    if strip is None or sequencer.strip_request(strip) is None:
        raise T2VZAddonError("no generated strip is active", "click a strip made by T2V-Zero first")
    return strip


def load_image(path: str) -> Any:
    """``path`` as an image datablock, read again from disk if it was loaded before (a report made anew)."""
    image = bpy.data.images.load(path, check_existing=True)
    image.reload()
    return image


def show_in_image_editor(context: Any, image: Any) -> bool:
    """Show ``image`` in an Image Editor of the current screen, else in a new window; False when headless."""
    screen = getattr(context, "screen", None)
    for area in getattr(screen, "areas", ()):
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            return True
    window_manager = context.window_manager
    if bpy.app.background or context.window is None:
        return False
    before = {window.as_pointer() for window in window_manager.windows}
    bpy.ops.wm.window_new()
    new = [window for window in window_manager.windows if window.as_pointer() not in before]
    if not new:
        return False
    area = max(new[-1].screen.areas, key=lambda a: a.width * a.height)
    area.ui_type = "IMAGE_EDITOR"
    area.spaces.active.image = image
    return True


class T2VZ_OT_open_report(bpy.types.Operator):
    """Open the strip's consistency report (contact sheet with the worst frame pairs, warp error per pair) in an
    Image Editor"""

    bl_idname = "t2vz.open_report"
    bl_label = "Open Report"

    strip: bpy.props.StringProperty(name="Strip", description="Generated strip (empty: the active strip)",
                                    default="")

    @error_boundary
    def execute(self, context):
        strip = _strip(context, self.strip)
        data = strip_report.headline(strip)
        if data is None:
            raise T2VZAddonError(f"strip {strip.name!r} has no consistency report",
                                 "tick Consistency Report and Redo the strip")
        if not os.path.isfile(data["image"]):
            raise T2VZAddonError(f"the report picture {data['image']} is missing", "make the report again")
        image = load_image(data["image"])
        where = "in an Image Editor" if show_in_image_editor(context, image) else f"as image {image.name!r}"
        self.report({"INFO"}, f"T2V-Zero: consistency report opened {where} (full report: {data['page']})")
        return {"FINISHED"}


class T2VZ_OT_baseline(JobDriver, bpy.types.Operator):
    """Render this strip's job again as independent stills (cross-frame attention and motion off, the same seeds)
    and compare the two in a consistency report: how much steadier the method makes this shot"""

    bl_idname = "t2vz.baseline"
    bl_label = "Baseline: Independent Stills"
    bl_options = {"REGISTER", "UNDO"}

    strip: bpy.props.StringProperty(name="Strip", description="Generated strip (empty: the active strip)",
                                    default="")

    @error_boundary
    def execute(self, context):
        scene = compat.sequencer_scene(context)
        strip = _strip(context, self.strip)
        if sequencer.strip_request(strip).get("baseline"):
            raise T2VZAddonError(f"strip {strip.name!r} is a baseline already", "select the method's strip")
        frames = bpy.path.abspath(strip.directory)
        prefs = preferences.get_prefs(context)
        changes = {"baseline": True, "report": True, "report_compare": os.path.normpath(frames),
                   "report_clip": preferences.prefs_view(prefs).report_clip}
        plan = jobs.prepare_redo(scene, strip, prefs, changes=changes)
        return self.run_plan(context, dataclasses.replace(plan, strip_name=f"{plan.strip_name[:50]} stills"))


classes = (T2VZ_OT_open_report, T2VZ_OT_baseline)

register, unregister = bpy.utils.register_classes_factory(classes)
