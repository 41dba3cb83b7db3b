"""Render data passes of a frame range to 32-bit EXR files with Cycles on the CPU, leaving the user's scene as it was.

Why the compositor: headless (``blender -b``, the ``bpy`` module) the Render Result's pixels are empty, so passes are
written by a compositor File Output node and read back with ``bpy.data.images.load``. Each frame renders into its own
folder, which makes the file names unambiguous on every Blender version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import bpy

from . import compositor
from .errors import SceneError
from .render_settings import ScopedSettings, check_scene, data_pass_settings, pass_view_layer

Configure = Callable[[ScopedSettings, bpy.types.ViewLayer], None]


def render_exr_passes(scene: bpy.types.Scene, frame_start: int, frame_end: int, scratch_dir: str,
                      outputs: Sequence[tuple[str, Sequence[str]]], configure: Configure | None = None,
                      vectors: Sequence[str] = ()) -> list[dict[str, str]]:
    """Render frames ``frame_start..frame_end``; per frame, output name -> path of its EXR in ``scratch_dir``.

    Args:
        outputs: (output name, Render Layers socket names) pairs, e.g. ``("depth", compositor.DEPTH_SOCKETS)``.
        configure: called with the scoped settings and the view layer before the compositor is built, to enable
            passes and make other scoped changes (all restored afterwards).
        vectors: output names whose pass has four components (the Vector pass), written as X, Y, Z, W.
    """
    check_scene(scene, frame_start, frame_end)
    view_layer = pass_view_layer(scene)
    frames: list[dict[str, str]] = []
    with data_pass_settings(scene, view_layer, frame_start, frame_end, os.path.join(scratch_dir, "render_")) as scoped:
        if configure is not None:
            configure(scoped, view_layer)
        with compositor.temporary_compositor(scene) as tree:
            layers = compositor.add_render_layers(tree, scene, view_layer)
            output, inputs = compositor.add_exr_output(tree, [name for name, _ in outputs], vectors)
            for name, sockets in outputs:
                tree.links.new(compositor.pass_socket(layers, sockets), inputs[name])
            for frame in range(frame_start, frame_end + 1):
                frame_dir = os.path.join(scratch_dir, f"frame_{frame - frame_start:06d}")
                os.makedirs(frame_dir, exist_ok=True)
                compositor.set_output_directory(output, frame_dir)
                scene.frame_set(frame)
                _render(scene)
                frames.append(_collect(frame_dir, [name for name, _ in outputs], frame))
    return frames


def _render(scene: bpy.types.Scene, write_still: bool = False) -> None:
    """Render the current frame of ``scene``: files come from the File Output node, nothing else is written, unless
    ``write_still`` saves the render itself to ``render.frame_path()``."""
    try:
        result = bpy.ops.render.render(write_still=write_still, scene=scene.name)
    except RuntimeError as exc:  # the operator reports render errors ("No camera found", ...) as exceptions
        raise SceneError(f"Blender could not render scene '{scene.name}': {exc}",
                         "check that the scene renders with F12 in Cycles") from exc
    if "FINISHED" not in result:
        raise SceneError(f"rendering scene '{scene.name}' was cancelled", "render again")


def _collect(frame_dir: str, names: Sequence[str], frame: int) -> dict[str, str]:
    """Output name -> EXR path for one rendered frame; ``SceneError`` when the compositor wrote nothing."""
    files = {}
    for name in names:
        path = compositor.find_output(frame_dir, name)
        if path is None:
            raise SceneError(f"the compositor wrote no '{name}' pass for frame {frame}",
                             "check that compositing is enabled (Output Properties > Post Processing)")
        files[name] = path
    return files
