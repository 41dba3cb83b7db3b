"""Panels (draw code only): the "T2V-Zero" tab of the sequencer sidebar and the scene-pass panel in Properties.

Validation problems of the request the settings would make are drawn under the setting they concern.
"""

from __future__ import annotations

from typing import Any

import bpy

from .. import preferences
from ..core import compat, modes, motion_choices, request_builder, runner
from ..core.errors import T2VZAddonError
from ..core.settings_table import owner
from ..timeline import sequencer
from . import thumbnails


def _problems(context: Any) -> dict[str, list[Any]]:
    try:
        view = preferences.prefs_view(preferences.get_prefs(context))
    except T2VZAddonError:
        return {}
    return request_builder.preview_problems(context.scene.t2vz, view)


def draw_problems(layout: Any, problems: list[Any]) -> None:
    for problem in problems:
        col = layout.column(align=True)
        col.alert = True
        col.label(text=problem.message, icon="ERROR")
        if problem.hint:
            col.label(text=problem.hint, icon="BLANK1")


def prop(layout: Any, settings: Any, name: str, problems: dict[str, list[Any]], **kwargs: Any) -> None:
    """``layout.prop`` of a setting (of the current mode where it is per-mode), with its problems drawn (and the
    field marked) right under it."""
    mine = problems.get(name, [])
    row = layout.row(align=True)
    row.alert = bool(mine)
    row.prop(owner(settings, name), name, **kwargs)
    draw_problems(layout, mine)


def draw_job(layout: Any) -> bool:
    """The running (or last) job: progress, ETA and Cancel, or how it ended. True while one runs."""
    job = runner.current()
    if job is None:
        return False
    box = layout.box()
    if not job.finished:
        split = box.split(factor=0.7) if thumbnails.live_icon(job) else box
        column = split.column()
        text = f"{job.stage} {job.step}/{job.total_steps}" if job.total_steps else job.message or job.stage
        compat.draw_progress(column, job.fraction, text)
        row = column.row()
        row.label(text=job.eta_text() or "estimating…", icon="TIME")
        row.operator("t2vz.cancel", icon="CANCEL")
        if split is not box:  # the newest finished frame, next to the progress bar
            split.template_icon(icon_value=thumbnails.live_icon(job), scale=3.0)
        return True
    if job.status == runner.DONE:
        box.label(text=f"Done: {len(job.done.frames)} frames", icon="CHECKMARK")
    else:
        col = box.column(align=True)
        col.alert = True
        col.label(text=f"{job.status.capitalize()}: {job.failure.message.splitlines()[0] if job.failure else ''}",
                  icon="ERROR")
        if job.failure and job.failure.hint:
            col.label(text=job.failure.hint, icon="BLANK1")
    return False


def draw_motion(layout: Any, settings: Any, problems: dict[str, list[Any]]) -> None:
    """The Motion choice: the drift vector, or the scene camera's plane (docs/camera_motion.md)."""
    layout.prop(settings, "motion_source")
    if settings.motion_source == motion_choices.DRIFT:
        if settings.mode == modes.TEXT2VIDEO:
            prop(layout, settings, "motion", problems, text="Drift")
        return
    if settings.motion_source == motion_choices.CAMERA:
        layout.prop(settings, "motion_plane")
        if settings.motion_plane == motion_choices.OBJECT:
            layout.prop(settings, "motion_plane_object")
    if settings.mode == modes.TEXT2VIDEO and not settings.use_frame_range:
        layout.label(text="Frames: the scene's frame range", icon="CAMERA_DATA")


class SequencerPanel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "T2V-Zero"


class T2VZ_PT_main(SequencerPanel, bpy.types.Panel):
    bl_label = "T2V-Zero"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.t2vz
        problems = _problems(context)
        running = draw_job(layout)
        layout.prop(settings, "mode")
        mode = settings.mode
        prop(layout, settings, "prompt", problems, text="Instruction" if mode == modes.PIX2PIX else "Prompt")
        prop(layout, settings, "negative_prompt", problems)
        row = layout.row(align=True)
        row.prop(owner(settings, "seed"), "seed")
        row.operator("t2vz.random_seed", text="", icon="FILE_REFRESH")
        draw_problems(layout, problems.get("seed", []))
        prop(layout, settings, "steps", problems)
        prop(layout, settings, "guidance", problems)
        if mode == modes.PIX2PIX:
            prop(layout, settings, "image_guidance", problems)
        prop(layout, settings, "scheduler", problems)
        self.draw_size(layout, settings, problems)
        self.draw_frames(layout, settings, problems)
        if mode == modes.CONTROLNET:
            layout.prop(settings, "control_kind")
            layout.prop(settings, "control_input")
        if mode in (modes.CONTROLNET, modes.SCENE):
            prop(layout, settings, "control_scale", problems)
        prop(layout, settings, "chunk_size", problems)
        prop(layout, settings, "exact_anchor", problems)
        prop(layout, settings, "report", problems)
        draw_problems(layout, [p for key, group in problems.items() if key.startswith("prefs.") or key == ""
                               for p in group])
        self.draw_source(layout, context, settings)
        row = layout.row()
        row.scale_y = 1.5
        row.enabled = not running
        row.operator("t2vz.generate", icon="RENDER_ANIMATION")
        row.prop(settings, "render_on_farm", text="", icon="NETWORK_DRIVE")  # issue 15: Render on Farm

    @staticmethod
    def draw_size(layout: Any, settings: Any, problems: dict[str, list[Any]]) -> None:
        """Text → Video: width x height. Source modes: fit the source to a long side, or force width x height."""
        col = layout.column(align=True)
        fit = settings.mode != modes.TEXT2VIDEO and settings.fit_source
        if settings.mode != modes.TEXT2VIDEO:
            col.prop(settings, "fit_source")
        for name in ("long_side",) if fit else ("width", "height"):
            col.prop(owner(settings, name), name)
        draw_problems(layout, [p for name in ("width", "height", "long_side") for p in problems.get(name, [])])

    @staticmethod
    def draw_frames(layout: Any, settings: Any, problems: dict[str, list[Any]]) -> None:
        camera = settings.motion_source in motion_choices.CAMERA_SOURCES
        if settings.mode == modes.TEXT2VIDEO and not settings.use_frame_range and not camera:
            prop(layout, settings, "frames", problems)
        layout.prop(settings, "use_frame_range")
        if settings.use_frame_range:
            col = layout.column(align=True)
            col.prop(settings, "frame_range_start")
            col.prop(settings, "frame_range_end")
        if settings.mode in (modes.TEXT2VIDEO, modes.SCENE):
            draw_motion(layout, settings, problems)
        if settings.mode == modes.TEXT2VIDEO:
            row = layout.row(align=True)
            row.prop(settings, "t0")
            row.prop(settings, "t1")
            draw_problems(layout, problems.get("t0", []) + problems.get("t1", []))

    @staticmethod
    def draw_source(layout: Any, context: Any, settings: Any) -> None:
        if settings.mode in modes.SOURCE_MODES:
            selected = compat.selected_strips(compat.sequencer_scene(context))
            if selected:
                layout.label(text=f"Source: {len(selected)} selected strip(s)", icon="SEQ_SEQUENCER")
            else:
                layout.label(text="Select the source strips", icon="INFO")
        elif settings.mode == modes.SCENE:
            layout.label(text="Passes: Properties > Scene > T2V-Zero", icon="SCENE_DATA")


class T2VZ_PT_strip(SequencerPanel, bpy.types.Panel):
    bl_label = "Generated Strip"
    bl_parent_id = "T2VZ_PT_main"

    @classmethod
    def poll(cls, context):
        strip = compat.active_strip(compat.sequencer_scene(context))
        return sequencer.strip_request(strip) is not None

    def draw(self, context):
        strip = compat.active_strip(compat.sequencer_scene(context))
        data = sequencer.strip_request(strip) or {}
        col = self.layout.column(align=True)
        col.label(text=f"{data.get('type', '?')}: {data.get('prompt') or data.get('instruction') or ''}")
        col.label(text=f"seed {data.get('seed')}, {data.get('steps')} steps, guidance {data.get('guidance')}")
        row = self.layout.row(align=True)
        row.operator("t2vz.redo", icon="FILE_REFRESH").strip = strip.name
        row.operator("t2vz.show_parameters", icon="TEXT")
        row.operator("t2vz.load_parameters", icon="IMPORT")


class T2VZ_PT_scene_passes(bpy.types.Panel):
    bl_label = "T2V-Zero Scene Passes"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "scene"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        settings = context.scene.t2vz
        running = draw_job(layout)
        col = layout.column(heading="Control")
        col.prop(settings, "pass_pose")
        col.prop(settings, "pass_depth")
        sub = col.column()
        sub.active = settings.pass_depth
        sub.prop(settings, "depth_source")
        col.prop(settings, "pass_canny")
        if context.scene.camera is None:
            layout.label(text="The scene needs an active camera", icon="ERROR")
        col = layout.column(heading="Background")
        col.prop(settings, "smooth_bg")
        sub = col.column()
        sub.active = settings.smooth_bg
        sub.prop(settings, "mask_collection")
        sub.prop(settings, "smooth_bg_strength")
        layout.label(text="Masks apply to Text → Video; passes to From Scene Passes", icon="INFO")
        row = layout.row()
        row.enabled = not running
        row.prop_enum(settings, "mode", modes.SCENE)
        row.operator("t2vz.generate", icon="RENDER_ANIMATION")


classes = (T2VZ_PT_main, T2VZ_PT_strip, T2VZ_PT_scene_passes)

register, unregister = bpy.utils.register_classes_factory(classes)
