"""Scoped render settings: change what a data-pass render needs, put every value back afterwards (even on errors).

``ScopedSettings`` records the original value of each attribute the first time it is set and restores them in
reverse order; ``data_pass_settings`` applies the settings shared by every pass render (Cycles on the CPU, one
sample, no tone mapping, no motion blur, only the chosen view layer ...) inside a ``with`` block.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import bpy

from .errors import SceneError

log = logging.getLogger(__name__)


class ScopedSettings:
    """Set attributes on Blender data, remembering each first original value; ``restore()`` puts them all back."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []
        self._seen: set[tuple[int, str]] = set()

    def set(self, owner: Any, attr: str, value: Any) -> None:
        """``setattr(owner, attr, value)``, saving the value it had before the first change."""
        key = (owner.as_pointer() if hasattr(owner, "as_pointer") else id(owner), attr)
        if key not in self._seen:
            self._seen.add(key)
            self._saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def set_if(self, owner: Any, attr: str, value: Any) -> None:
        """``set`` only where the attribute exists (it differs between Blender versions and engines)."""
        if owner is not None and hasattr(owner, attr):
            self.set(owner, attr, value)

    def restore(self) -> None:
        """Put back every saved value, newest change first; a value that cannot be restored is logged, not raised."""
        while self._saved:
            owner, attr, value = self._saved.pop()
            try:
                setattr(owner, attr, value)
            except (AttributeError, TypeError, ValueError, ReferenceError) as exc:
                log.warning("t2vz: could not restore %s.%s to %r: %s", owner, attr, value, exc)
        self._seen.clear()


def pass_view_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    """The view layer to render passes from: the active one when ``scene`` is the context scene, else the first."""
    context_scene = getattr(bpy.context, "scene", None)
    if context_scene is not None and context_scene == scene and bpy.context.view_layer is not None:
        return bpy.context.view_layer
    return scene.view_layers[0]


def check_scene(scene: bpy.types.Scene, frame_start: int, frame_end: int) -> None:
    """Raise ``SceneError`` when the scene has no camera or the frame range is empty."""
    if scene.camera is None:
        raise SceneError(f"scene '{scene.name}' has no active camera",
                         "add a camera and set it in Scene Properties > Scene > Camera")
    if frame_end < frame_start:
        raise SceneError(f"the frame range {frame_start}..{frame_end} is empty",
                         "set an end frame at or after the start frame")


def frame_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """Render size in pixels after ``resolution_percentage`` (as Blender rounds it)."""
    render = scene.render
    return (render.resolution_x * render.resolution_percentage // 100,
            render.resolution_y * render.resolution_percentage // 100)


@contextmanager
def data_pass_settings(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, frame_start: int, frame_end: int,
                       scratch_dir: str) -> Iterator[ScopedSettings]:
    """Render settings for data passes (Z, Mist, object index) inside the block; the user's settings come back after.

    Data passes need one sample, no denoising, no motion blur (it would smear depth) and no tone mapping. The
    sequencer is switched off, or a scene with strips would render its strips instead of the 3D scene. Yields the
    ``ScopedSettings`` so callers can add their own scoped changes (passes, mist, pass indices); everything is
    restored in reverse order when the block ends, and the current frame is set back.
    """
    settings = ScopedSettings()
    frame_current, subframe = scene.frame_current, scene.frame_subframe
    render = scene.render
    try:
        try:
            settings.set(render, "engine", "CYCLES")
        except TypeError as exc:  # the enum lacks CYCLES: the Cycles add-on is disabled
            raise SceneError("the Cycles render engine is not available",
                             "enable the Cycles add-on in Preferences > Add-ons") from exc
        cycles = getattr(scene, "cycles", None)
        settings.set_if(cycles, "device", "CPU")
        settings.set_if(cycles, "samples", 1)
        settings.set_if(cycles, "use_adaptive_sampling", False)
        settings.set_if(cycles, "use_denoising", False)
        settings.set_if(cycles, "filter_width", 0.01)  # sample pixel centres: unblended depth and index values
        settings.set_if(cycles, "time_limit", 0.0)
        for attr, value in (("use_motion_blur", False), ("use_border", False), ("use_compositing", True),
                            ("use_sequencer", False), ("use_single_layer", False), ("film_transparent", False),
                            ("filepath", scratch_dir)):
            settings.set_if(render, attr, value)
        # look before view transform: restored in reverse, the user's view transform comes back before its look
        settings.set(scene.view_settings, "look", "None")
        settings.set(scene.view_settings, "view_transform", "Standard")
        settings.set(scene.view_settings, "exposure", 0.0)
        settings.set(scene.view_settings, "gamma", 1.0)
        settings.set(scene, "frame_start", frame_start)
        settings.set(scene, "frame_end", frame_end)
        for layer in scene.view_layers:
            settings.set(layer, "use", layer == view_layer)
        yield settings
    finally:
        settings.restore()
        scene.frame_set(frame_current, subframe=subframe)
