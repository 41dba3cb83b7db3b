"""Generate, Redo and Cancel: a modal operator polling the job on a timer, or a blocking run when headless.

The job state lives in ``runner`` (the panel draws it); the operator only drives it. Nothing touches bpy off the
main thread: the client's reader threads fill a queue that ``runner.pump`` drains on each timer event.
No ``from __future__ import annotations``: the operators declare ``bpy.props`` annotations.
"""

from typing import Any

import bpy

from .. import jobs, preferences
from ..core import compat, runner
from ..core.errors import T2VZAddonError
from ..ui import thumbnails
from .boundary import error_boundary

TIMER_S = 0.2


def tag_redraw(context: Any) -> None:
    """Redraw the sequencer and properties editors so the panel's progress bar moves."""
    screen = getattr(context, "screen", None)
    for area in getattr(screen, "areas", ()):
        if area.type in {"SEQUENCE_EDITOR", "PROPERTIES"}:
            area.tag_redraw()


def set_status(context: Any, text: str | None) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def headless(context: Any) -> bool:
    """No event loop to drive a modal operator: ``blender -b``, the bpy module, or a call without a window."""
    return bpy.app.background or context.window is None


class JobDriver:
    """Mixin for operators that run a job: ``run_plan`` starts it, ``modal`` follows it to the end."""

    _timer = None
    _job: Any = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        return not runner.is_running()

    def run_plan(self, context: Any, plan: jobs.JobPlan) -> set[str]:
        if headless(context):
            return self.added(jobs.run_blocking(plan))  # prints the plan's warnings
        for warning in plan.warnings:
            self.report({"WARNING"}, f"T2V-Zero: {warning}")
        self._job = jobs.launch(plan)
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_S, window=context.window)
        wm.modal_handler_add(self)
        set_status(context, self._job.status_line())
        return {"RUNNING_MODAL"}

    @error_boundary
    def modal(self, context: Any, event: Any) -> set[str]:
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            runner.cancel(job)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":  # (other operators' timers tick here too: one more poll does no harm)
            return {"PASS_THROUGH"}
        return self.tick(context)

    def tick(self, context: Any) -> set[str]:
        """One timer step: drain events, update the UI, and finish the job once it has ended."""
        job = self._job
        runner.pump(job)
        thumbnails.update(job)  # the newest frame's thumbnail for the panel (here: main thread, between events)
        set_status(context, job.status_line())
        tag_redraw(context)
        if not job.finished:
            return {"PASS_THROUGH"}
        if job.status == runner.DONE and bpy.app.is_job_running("RENDER"):
            return {"PASS_THROUGH"}  # add the strip once the render stops pumping the event loop
        self.on_error(context)  # the timer and the status text go either way
        return self.added(jobs.finish(job))

    def on_error(self, context: Any) -> None:
        """Release the timer and the status text (also when the job ends in an error)."""
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        set_status(context, None)

    def added(self, strip: Any) -> set[str]:
        self.report({"INFO"}, f"T2V-Zero: added strip {strip.name!r} on channel {strip.channel}")
        return {"FINISHED"}


class T2VZ_OT_generate(JobDriver, bpy.types.Operator):
    """Generate a video with the T2V-Zero settings of the scene and add it as an image strip"""

    bl_idname = "t2vz.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}  # the undo step is pushed when the strip is added

    @error_boundary
    def execute(self, context):
        scene = compat.sequencer_scene(context)
        settings = context.scene.t2vz
        prefs = preferences.get_prefs(context)
        farm = preferences.farm_spec(prefs) if settings.render_on_farm else None  # issue 15: Render on Farm
        plan = jobs.prepare(scene, settings, prefs, pass_scene=context.scene, farm=farm)
        return self.run_plan(context, plan)


class T2VZ_OT_redo(JobDriver, bpy.types.Operator):
    """Run the generation of the active strip again with its stored parameters and add the result above it"""

    bl_idname = "t2vz.redo"
    bl_label = "Redo"
    bl_options = {"REGISTER", "UNDO"}

    strip: bpy.props.StringProperty(name="Strip", description="Generated strip to redo (empty: the active strip)",
                                    default="")

    @error_boundary
    def execute(self, context):
        scene = compat.sequencer_scene(context)
        strip = compat.find_strip(scene, self.strip) if self.strip else compat.active_strip(scene)
        if strip is None:
            raise T2VZAddonError("no generated strip is active", "click a strip made by T2V-Zero first")
        return self.run_plan(context, jobs.prepare_redo(scene, strip, preferences.get_prefs(context)))


class T2VZ_OT_cancel(bpy.types.Operator):
    """Cancel the running T2V-Zero job; nothing is added to the timeline"""

    bl_idname = "t2vz.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return runner.is_running()

    def execute(self, context):
        runner.cancel()
        self.report({"INFO"}, "T2V-Zero: cancelling")
        return {"FINISHED"}


@bpy.app.handlers.persistent
def cancel_on_load(*_args) -> None:
    """Opening a file ends modal operators: cancel the job, whose strip would have nowhere to go."""
    runner.abandon("the job was cancelled because another file was opened")


classes = (T2VZ_OT_generate, T2VZ_OT_redo, T2VZ_OT_cancel)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(cancel_on_load)


def unregister() -> None:
    if cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(cancel_on_load)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
