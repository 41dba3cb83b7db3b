"""``blender --command t2vz ...``: headless generation and backend checks (registered with register_cli_command).

``execute(argv)`` is the command handler: it parses the arguments after ``t2vz``, runs synchronously and returns
the exit status (0 done, 1 the job failed, 2 bad arguments or input). Tests call it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import bpy

from . import jobs, preferences
from .core import compat, contract, modes, motion_choices, paths, session
from .core.errors import T2VZAddonError, error_text
from .core.settings_table import SCENE_SETTINGS

OPTION_SETTINGS = tuple(s for s in SCENE_SETTINGS if s.cli and contract.kind(s) != "pointer")  # one option each
_TYPES = {"int": int, "float": float, "string": str, "enum": str}


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    """``--<setting>`` for every scene setting: typed and bounded like the setting, defaulting to the scene's."""
    for setting in OPTION_SETTINGS:
        spec = contract.prop_spec(setting, setting.modes[0])
        flag = "--" + setting.name.replace("_", "-")
        text = f"{setting.description} (default: the scene's setting)"
        if spec.kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, dest=setting.name, help=text)
        elif spec.kind == "vector":
            parser.add_argument(flag, type=float, nargs=spec.kwargs["size"], dest=setting.name, help=text)
        else:
            choices = [item[0] for item in spec.kwargs.get("items", ())] or None
            parser.add_argument(flag, type=_TYPES[spec.kind], choices=choices, dest=setting.name, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blender --command t2vz",
        description="T2V-Zero video generation without the user interface. The add-on must be enabled (or loaded "
                    "with --addons). Settings not given here come from the scene's T2V-Zero panel.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="run the job configured in a .blend file and add the result as a strip",
                         description="Run the job configured in the scene; the frames become an image strip.")
    gen.add_argument("--blend", metavar="FILE", help="open this .blend file first")
    gen.add_argument("--scene", metavar="NAME", help="scene to use (default: the file's active scene)")
    gen.add_argument("--mode", choices=sorted(modes.BY_CLI), help="what to generate (default: the scene's setting)")
    gen.add_argument("--strips", nargs="+", metavar="NAME", help="source strips (default: the selected ones)")
    gen.add_argument("--frame-range", metavar="A-B", help="timeline frames A to B, inclusive")
    gen.add_argument("--out", metavar="DIR", help="folder for job folders (default: the preference, //t2vz/)")
    _add_setting_options(gen)
    gen.add_argument("--motion-plane-object", metavar="NAME",
                     help="--motion-plane object: the empty or plane mesh whose XY plane carries the picture")
    gen.add_argument("--model", help="base model for this run: hub id, folder or .safetensors")
    gen.add_argument("--python", metavar="PATH", help="backend Python interpreter for this run")
    gen.add_argument("--save", action="store_true", help="save the .blend file after adding the strip")
    # Farms (issue 15): a Ray cluster renders the job, or a farm manager runs one range per task.
    gen.add_argument("--farm", action="store_true", help="render on the Ray cluster of the preferences (Farm)")
    gen.add_argument("--farm-address", metavar="ADDR", help="Ray cluster for this run: auto or HOST:PORT")
    gen.add_argument("--ranges", type=int, metavar="N", help="split into N frame ranges on the farm")
    gen.add_argument("--token-file", metavar="FILE", help="the cluster's Ray token file for this run")
    gen.add_argument("--job-range", metavar="S-E", help="the whole job's timeline frames; --frame-range then renders "
                     "only frames A-B of it, exactly as the whole job makes them (one range of a farm job)")
    gen.add_argument("--output-dir", metavar="DIR", help="write the frames into this shared folder (ranges from "
                     "several machines may render into it at once) instead of a new job folder")
    assemble = sub.add_parser("assemble", help="check a folder rendered in ranges is complete, write its preview")
    assemble.add_argument("--output-dir", metavar="DIR", required=True, help="the job's shared output folder")
    assemble.add_argument("--job-range", metavar="S-E", help="the job's timeline frames (all must be there)")
    assemble.add_argument("--fps", type=float, default=8.0, help="preview frame rate")
    assemble.add_argument("--python", metavar="PATH", help="backend Python interpreter")
    check = sub.add_parser("check", help="start the backend and print its Python, torch and device")
    check.add_argument("--python", metavar="PATH", help="backend Python interpreter to check")
    return parser


def execute(argv: Sequence[str]) -> int:
    """Command handler for ``blender --command t2vz``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:  # --help, or a usage error already printed by argparse
        return int(exit_.code or 0)
    try:
        with _pref_overrides(args):
            if args.command == "assemble":
                return _assemble(args)
            return _generate(args) if args.command == "generate" else _check()
    except T2VZAddonError as error:
        print(f"t2vz: error: {_error_line(error)}", file=sys.stderr)
        return 2
    finally:
        session.stop()  # the process ends after the command: do not leave the worker behind


class _pref_overrides:
    """Set --model/--python on the preferences for this command and restore them afterwards."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> None:
        if getattr(self.args, "blend", None):  # opening a file first: its preferences are the user's anyway
            path = os.path.abspath(self.args.blend)
            if not os.path.isfile(path):
                raise T2VZAddonError(f"the .blend file {path} does not exist", "check the --blend path")
            bpy.ops.wm.open_mainfile(filepath=path)
        prefs = preferences.get_prefs()
        values = {"base_model": getattr(self.args, "model", None)}
        if getattr(self.args, "python", None):
            values.update(python_source="CUSTOM", python_path=os.path.abspath(self.args.python),
                          backend_mode="SUBPROCESS")
        for name, value in values.items():
            if value is not None:
                self.saved[name] = getattr(prefs, name)
                setattr(prefs, name, value)

    def __exit__(self, *exc: object) -> None:
        try:
            prefs = preferences.get_prefs()
        except T2VZAddonError:
            return
        for name, value in self.saved.items():
            setattr(prefs, name, value)


def _generate(args: argparse.Namespace) -> int:
    scene = bpy.data.scenes.get(args.scene) if args.scene else bpy.context.scene
    if scene is None:
        raise T2VZAddonError(f"there is no scene {args.scene!r}", "check the --scene name")
    settings = scene.t2vz
    if args.mode:
        settings.mode = modes.BY_CLI[args.mode].key
    for setting in OPTION_SETTINGS:  # after the mode: a per-mode setting is set for the mode that runs
        value = getattr(args, setting.name)
        if value is not None:
            value = tuple(value) if isinstance(value, list) else value
            contract.check_value(setting, value)
            setattr(settings, setting.name, value)
    if args.motion_plane_object:  # a pointer setting: named by the object (docs/camera_motion.md)
        obj = bpy.data.objects.get(args.motion_plane_object)
        if obj is None or obj.type not in motion_choices.PLANE_OBJECT_TYPES:
            raise T2VZAddonError(f"there is no empty or mesh object {args.motion_plane_object!r}",
                                 "check the --motion-plane-object name", setting="motion_plane_object")
        settings.motion_plane_object = obj
    render_range = None
    if args.job_range:  # issue 15: the job is S-E; --frame-range picks the frames this run renders
        first, last = paths.frame_list_range(args.job_range)
        settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = True, first, last
        render_range = paths.frame_list_range(args.frame_range) if args.frame_range else None
    elif args.frame_range:
        first, last = paths.frame_list_range(args.frame_range)
        settings.use_frame_range, settings.frame_range_start, settings.frame_range_end = True, first, last
    strips = None
    if args.strips:
        strips = []
        for name in args.strips:
            strip = compat.find_strip(scene, name)
            if strip is None:
                raise T2VZAddonError(f"there is no strip {name!r} in scene {scene.name!r}", "check the --strips names")
            strips.append(strip)
    out = os.path.abspath(args.out) if args.out and not args.out.startswith("//") else (args.out or "")
    prefs = preferences.get_prefs()
    farm = None
    if args.farm or settings.render_on_farm:
        farm = preferences.farm_spec(prefs, address=args.farm_address, ranges=args.ranges,
                                     token_file=os.path.abspath(args.token_file) if args.token_file else None)
    plan = jobs.prepare(scene, settings, prefs, strips=strips, output_root=out, farm=farm, render_range=render_range,
                        frames_dir=args.output_dir or "")
    print(f"t2vz: job folder {plan.job_dir}")
    try:
        strip = jobs.run_blocking(plan)
    except T2VZAddonError as error:
        print(f"t2vz: error: {_error_line(error)}", file=sys.stderr)
        return 1
    start = compat.strip_range(strip)[0]
    print(f"t2vz: added strip {strip.name!r} on channel {strip.channel} at frame {start} "
          f"({len(strip.elements)} frames)")
    if args.save:
        if not bpy.data.filepath:
            raise T2VZAddonError("the file has never been saved, so --save has nowhere to write", "use --blend FILE")
        bpy.ops.wm.save_mainfile()
    return 0


def _error_line(error: T2VZAddonError) -> str:
    """The error, and the option that sets the setting at fault where there is one."""
    option = {s.name for s in OPTION_SETTINGS}
    return error.report_text() + (f" (option --{error.setting.replace('_', '-')})" if error.setting in option else "")


def _assemble(args: argparse.Namespace) -> int:
    """Run the backend's ``assemble`` on the shared folder (the last task of a Flamenco job)."""
    import subprocess

    config = preferences.client_config(preferences.get_prefs())
    if config.backend is None:
        raise T2VZAddonError("assemble needs the backend environment", "set it in the add-on preferences")
    command = [config.backend.python, "-m", "t2vz_backend", "assemble", os.path.abspath(args.output_dir),
               "--fps", str(args.fps)]
    if args.job_range:
        first, last = paths.frame_list_range(args.job_range)
        command += ["--frames", f"0-{last - first}"]  # the job's frame 0 is its first timeline frame
    from .core.environment import BACKEND_DIR

    env = config.backend.worker_env(dict(config.extra_env))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BACKEND_DIR), env.get("PYTHONPATH", "")) if p)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode:
        print(f"t2vz: error: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'assemble failed'}",
              file=sys.stderr)
        return 1
    return 0


def _check() -> int:
    client = session.get_client(preferences.client_config(preferences.get_prefs()))
    try:
        pong = client.ping(session.PING_TIMEOUT_S)
    except Exception as exc:  # the client's BackendError: the worker did not start or answer
        print(f"t2vz: error: {error_text(exc)}", file=sys.stderr)
        return 1
    print(f"t2vz: backend OK: {session.pong_text(pong)}")
    return 0
