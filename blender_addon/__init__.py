"""T2V-Zero: zero-shot video generation (Text2Video-Zero) in Blender's video sequencer.

``register()`` only registers classes, the ``Scene.t2vz`` settings and the ``t2vz`` command line command: no torch,
no subprocess, no network. The diffusion backend runs in its own process, started when the first job needs it.
Submodules are imported inside ``register()``, so the bpy-free ones (channels, runner, paths, ...) can be imported
and unit-tested without Blender.
"""

from __future__ import annotations

_cli_handle = None


def _modules() -> tuple:
    from . import preferences, properties
    from .operators import backend, generate, report, settings
    from .ui import consistency, panels, thumbnails

    # registered in this order (a sub-panel after its parent)
    return (properties, preferences, generate, backend, settings, report, panels, consistency, thumbnails)


def register() -> None:
    import bpy

    from . import cli

    global _cli_handle
    for module in _modules():
        module.register()
    if hasattr(bpy.utils, "register_cli_command"):
        _cli_handle = bpy.utils.register_cli_command("t2vz", cli.execute)


def unregister() -> None:
    import bpy

    from .core import session

    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    session.stop()  # a running job is cancelled with its worker
    for module in reversed(_modules()):
        module.unregister()
