"""Backend housekeeping: install the dependencies, check the backend, stop it, the low-VRAM preset.

Installing and checking take seconds to minutes, so both run in the background (a child process, a thread that
only waits for the worker's answer) and a modal timer picks up the result; headless they block.
No ``from __future__ import annotations``: an operator here declares ``bpy.props`` annotations.
"""

import threading
import time

import bpy

from .. import preferences
from ..core import compat, installer, runner, session
from ..core.errors import T2VZAddonError, error_text
from ..ui import textlog
from .boundary import error_boundary

TIMER_S = 0.25
last_check = {"ok": None, "text": "", "running": False}  # read by the preferences panel


def _ping(client, result: dict) -> None:
    """On the helper thread: wait for the worker's answer. Plain objects only, no bpy (not even the operator)."""
    try:
        result["pong"] = client.ping(session.PING_TIMEOUT_S)
    except Exception as exc:  # BackendError or anything the worker start raised: reported to the user
        result["error"] = exc


class T2VZ_OT_check_backend(bpy.types.Operator):
    """Start the backend and show its Python, torch version, device and memory"""

    bl_idname = "t2vz.check_backend"
    bl_label = "Check Backend"

    _timer = None
    _thread = None
    _result = None

    @classmethod
    def poll(cls, context):
        return not runner.is_running()  # a changed configuration would restart the worker under the job

    def execute(self, context):
        try:
            client = session.get_client(preferences.client_config(preferences.get_prefs(context)))
        except T2VZAddonError as error:  # recorded for the preferences panel, not only reported
            return self._done(False, error.report_text())
        self._result = {}
        self._thread = threading.Thread(target=_ping, args=(client, self._result), name="t2vz-ping", daemon=True)
        self._thread.start()
        if bpy.app.background or context.window is None:
            self._thread.join()
            return self._finish()
        last_check.update(ok=None, text="checking the backend…", running=True)
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER" or self._thread.is_alive():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        return self._finish()

    def _finish(self):
        if "pong" in self._result:
            return self._done(True, session.pong_text(self._result["pong"]))
        session.stop()
        return self._done(False, error_text(self._result.get("error", RuntimeError("no answer"))))

    def _done(self, ok: bool, text: str):
        last_check.update(ok=ok, text=text, running=False)
        self.report({"INFO"} if ok else {"ERROR"}, f"T2V-Zero backend: {text}")
        return {"FINISHED"} if ok else {"CANCELLED"}


class T2VZ_OT_install_deps(bpy.types.Operator):
    """Install torch, diffusers and the other backend packages into their own environment (takes minutes)"""

    bl_idname = "t2vz.install_deps"
    bl_label = "Install Dependencies"

    dry_run: bpy.props.BoolProperty(name="Dry Run", description="Only print the commands it would run",
                                    default=False, options={"SKIP_SAVE"})

    _timer = None

    @classmethod
    def poll(cls, context):
        return not runner.is_running()  # a finished install restarts the worker

    @error_boundary
    def execute(self, context):
        extra = ["--dry-run"] if self.dry_run else []
        if not self.dry_run and not compat.online_access(bpy.app):
            raise T2VZAddonError("installing needs the network, but online access is off",
                                 "allow online access in Preferences > System, or run install_deps.py --offline "
                                 "--find-links DIR")
        prefs = preferences.get_prefs(context)
        proc = installer.start(installer.install_command(torch=prefs.install_torch, extra=extra))
        textlog.write(textlog.INSTALL_LOG, "$ " + " ".join(proc.command), append=False)
        if bpy.app.background or context.window is None:
            while not proc.finished:
                self._log(proc.drain(), echo=True)
                time.sleep(0.1)
            return self._finish(proc)
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        self.report({"INFO"}, f"T2V-Zero: installing; the log is in the Text Editor ({textlog.INSTALL_LOG})")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        proc = installer.current()
        for area in context.screen.areas if context.screen else ():
            if area.type in {"PREFERENCES", "TEXT_EDITOR"}:
                area.tag_redraw()
        if not proc.finished:
            self._log(proc.drain())
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(proc)

    @staticmethod
    def _log(lines, echo: bool = False) -> None:
        if lines:
            textlog.write(textlog.INSTALL_LOG, "\n".join(lines))
            if echo:  # headless: the console is the only place the user looks
                print("\n".join(lines))

    def _finish(self, proc):
        self._log(proc.drain(), echo=bpy.app.background)
        if proc.returncode == 0 and self.dry_run:
            self.report({"INFO"}, f"T2V-Zero: the install plan is in the Text Editor ({textlog.INSTALL_LOG})")
            return {"FINISHED"}
        if proc.returncode == 0:
            session.stop()  # the next job starts a worker in the new environment
            self.report({"INFO"}, "T2V-Zero: dependencies installed; press Check Backend to test them")
            return {"FINISHED"}
        tail = next((line for line in reversed(proc.log) if line.strip()), "")
        self.report({"ERROR"}, f"T2V-Zero: installing failed (exit status {proc.returncode}): {tail}. The full log "
                    f"is in the Text Editor ({textlog.INSTALL_LOG})")
        return {"CANCELLED"}


class T2VZ_OT_stop_backend(bpy.types.Operator):
    """Stop the backend process, freeing the memory its models use"""

    bl_idname = "t2vz.stop_backend"
    bl_label = "Stop Backend (Free VRAM)"

    @classmethod
    def poll(cls, context):
        return not runner.is_running()

    def execute(self, context):
        session.stop()
        self.report({"INFO"}, "T2V-Zero: backend stopped")
        return {"FINISHED"}


class T2VZ_OT_low_vram_preset(bpy.types.Operator):
    """Use little GPU memory: half precision, 2 frames per chunk, 1 frame per VAE decode"""

    bl_idname = "t2vz.low_vram_preset"
    bl_label = "Low-VRAM Preset"
    bl_options = {"REGISTER", "UNDO"}

    @error_boundary
    def execute(self, context):
        prefs = preferences.get_prefs(context)
        prefs.dtype = "float16"
        prefs.vae_batch = 1
        context.scene.t2vz.chunk_size = 2
        self.report({"INFO"}, "T2V-Zero: half precision, chunk size 2, VAE batch 1")
        return {"FINISHED"}


classes = (T2VZ_OT_check_backend, T2VZ_OT_install_deps, T2VZ_OT_stop_backend, T2VZ_OT_low_vram_preset)

register, unregister = bpy.utils.register_classes_factory(classes)
