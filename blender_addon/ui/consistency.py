"""The *Consistency* panel of a generated strip: the report's headline, its contact sheet, and the baseline button.

Draw code only; the figures come from the strip (timeline/strip_report.py), the picture from ui/thumbnails.py.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..core import compat, runner
from ..timeline import sequencer, strip_report
from . import thumbnails
from .panels import SequencerPanel

MOTION = {"vectors": "exact, from the scene's Vector pass", "source": "from the source frames",
          "output": "estimated on the result itself (a lower bound)"}


def _lines(data: dict[str, Any], request: dict[str, Any], timeline_start: int) -> list[str]:
    worst = data["worst_pair"]
    first = max(request.get("frame_start", -1), 0)
    lines = [f"Warp error {data['warp_error']:.2f} of 255 (lower is steadier)",
             f"Worst: frames {worst}→{worst + 1} (timeline {timeline_start + worst - first}), "
             f"{data['warp_error_max']:.2f}",
             f"PSNR {data['psnr']:.1f} dB · SSIM {data['ssim']:.3f}",
             f"Motion {MOTION.get(data['flow'], data['flow'])}"]
    if data["clip_consistency"] >= 0:
        text = f" · text {data['clip_text']:.1f}" if data["clip_text"] >= 0 else ""
        lines.append(f"CLIP frames {data['clip_consistency']:.3f}{text}")
    else:
        lines.append("CLIP: not computed (set a CLIP model in the preferences)")
    compared = data["compared_warp_error"]
    if compared >= 0 and request.get("baseline") and compared > 0:
        gain = (data["warp_error"] - compared) / data["warp_error"] * 100 if data["warp_error"] else 0.0
        lines.append(f"Method {compared:.2f} vs these stills {data['warp_error']:.2f}: {gain:.0f} % less flicker")
    elif compared >= 0:
        lines.append(f"Compared result: warp error {compared:.2f}")
    return lines


class T2VZ_PT_consistency(SequencerPanel, bpy.types.Panel):
    bl_label = "Consistency"
    bl_parent_id = "T2VZ_PT_strip"

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(compat.sequencer_scene(context))
        return sequencer.strip_request(strip) is not None

    def draw(self, context):
        layout = self.layout
        strip = compat.active_strip(compat.sequencer_scene(context))
        request = sequencer.strip_request(strip) or {}
        data = strip_report.headline(strip)
        if data is None:
            col = layout.column(align=True)
            col.label(text="No consistency report for this strip", icon="INFO")
            col.label(text="Tick Consistency Report and Redo, or run the baseline", icon="BLANK1")
        else:
            col = layout.column(align=True)
            for line in _lines(data, request, sequencer.strip_frame_start(strip)):
                col.label(text=line)
            icon = thumbnails.file_icon(data["image"])
            if icon:
                layout.template_icon(icon_value=icon, scale=8.0)
            layout.operator("t2vz.open_report", icon="IMAGE_DATA").strip = strip.name
        row = layout.row()
        row.enabled = not runner.is_running() and not request.get("baseline")
        row.operator("t2vz.baseline", icon="RENDER_STILL").strip = strip.name


classes = (T2VZ_PT_consistency,)

register, unregister = bpy.utils.register_classes_factory(classes)
