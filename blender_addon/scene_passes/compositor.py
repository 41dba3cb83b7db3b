"""Compositor shims: a temporary graph Render Layers -> File Output (32-bit EXR), on Blender 4.x and 5.x alike.

- 4.x: the compositor is ``scene.node_tree`` (enabled by ``scene.use_nodes``), embedded in the scene, so it cannot be
  swapped: the user's nodes are muted while we render (a muted File Output node writes nothing, so the user's own
  outputs are not overwritten), our nodes are added next to them, and afterwards our nodes are removed and the
  mute flags and ``use_nodes`` restored.
- 5.0: the compositor is a node group assigned to ``scene.compositing_node_group``: we assign a fresh group and put
  the user's group (or None) back afterwards, then delete ours.
- 5.3: the compositor is a list of effects (``scene.compositor_effects``), each with a node group; the 5.0 name is a
  deprecated view of the active one. We append an effect with a fresh group, switch the user's effects off for
  rendering while we render (their File Output nodes write nothing), then remove ours and restore their flags and
  which one was active.

The File Output node changed too: 4.x ``base_path`` + ``file_slots`` (files ``<slot><frame>.exr``), 5.x ``directory``
+ ``file_name`` + ``file_output_items`` (files ``<file_name><item>.exr``, no frame number for stills). Callers give
each frame its own directory and find files with ``find_output``, which accepts both spellings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import bpy
import numpy as np

from ..core import compat
from .errors import SceneError

# Render Layers output names per pass: 4.x name first, then the 5.x name.
DEPTH_SOCKETS = ("Depth",)
MIST_SOCKETS = ("Mist",)
INDEX_SOCKETS = ("IndexOB", "Object Index")
VECTOR_SOCKETS = ("Vector",)
TREE_NAME = ".t2vz_scene_passes"  # our node group and (5.3) our effect


@contextmanager
def temporary_compositor(scene: bpy.types.Scene) -> Iterator[bpy.types.NodeTree]:
    """A compositor tree that only our nodes drive during the block; the user's compositor is as before afterwards."""
    api = compat.compositor_api(scene)
    if api == compat.EFFECTS:
        with _effect_compositor(scene) as tree:
            yield tree
        return
    if api == compat.NODE_GROUP:
        tree = bpy.data.node_groups.new(TREE_NAME, "CompositorNodeTree")
        previous = scene.compositing_node_group
        try:
            scene.compositing_node_group = tree
            yield tree
        finally:
            scene.compositing_node_group = previous
            bpy.data.node_groups.remove(tree)
        return
    use_nodes = scene.use_nodes
    scene.use_nodes = True  # creates the scene's tree on first use, with Blender's default nodes
    tree = scene.node_tree
    muted = [(node.name, node.mute) for node in tree.nodes]
    try:
        for node in tree.nodes:
            node.mute = True
        yield tree
    finally:
        user_nodes = {name for name, _ in muted}
        for node in [node for node in tree.nodes if node.name not in user_nodes]:
            tree.nodes.remove(node)
        for name, mute in muted:
            node = tree.nodes.get(name)
            if node is not None:
                node.mute = mute
        scene.use_nodes = use_nodes


@contextmanager
def _effect_compositor(scene: bpy.types.Scene) -> Iterator[bpy.types.NodeTree]:
    """5.3+: our group as an extra effect, the only one enabled for rendering during the block.

    Effects are found again by position on every use (ours is appended last) rather than held across changes to
    the list, which may move them in memory.
    """
    effects = scene.compositor_effects
    enabled = [effect.enable_for_render for effect in effects]
    active = next((i for i, effect in enumerate(effects) if effect.is_active), None)
    tree = bpy.data.node_groups.new(TREE_NAME, "CompositorNodeTree")
    try:
        effects.new(TREE_NAME).node_group = tree
        for effect in list(effects)[:len(enabled)]:
            effect.enable_for_render = False
        yield tree
    finally:
        if len(effects) > len(enabled):
            effects.remove(effects[len(enabled)])
        for effect, flag in zip(effects, enabled):
            effect.enable_for_render = flag
        if active is not None:
            effects.active = effects[active]
        bpy.data.node_groups.remove(tree)


def add_render_layers(tree: bpy.types.NodeTree, scene: bpy.types.Scene,
                      view_layer: bpy.types.ViewLayer) -> bpy.types.Node:
    """A Render Layers node for ``view_layer``; enable the passes first (5.x hides sockets of disabled passes)."""
    node = tree.nodes.new("CompositorNodeRLayers")
    node.scene = scene
    node.layer = view_layer.name
    return node


def pass_socket(node: bpy.types.Node, names: Sequence[str]) -> bpy.types.NodeSocket:
    """The Render Layers output called one of ``names`` (by name or identifier, enabled or not)."""
    for socket in node.outputs:
        if socket.name in names or socket.identifier in names:
            return socket
    raise SceneError(f"the Render Layers node has no '{names[0]}' output in Blender {bpy.app.version_string}",
                     "report this Blender version to the add-on's issue tracker")


def add_exr_output(tree: bpy.types.NodeTree, names: Sequence[str], vectors: Sequence[str] = ()
                   ) -> tuple[bpy.types.Node, dict[str, object]]:
    """A File Output node writing each of ``names`` as a 32-bit float EXR; returns the node and name -> input socket.

    ``vectors``: the names that carry a 4-component pass (the Vector pass: channels X, Y, Z, W), not one value.
    """
    node = tree.nodes.new("CompositorNodeOutputFile")
    image_format = node.format
    if hasattr(image_format, "media_type"):
        image_format.media_type = "IMAGE"  # 5.x: must be set before file_format
    image_format.file_format = "OPEN_EXR"
    image_format.color_depth = "32"
    if hasattr(node, "file_output_items"):  # 5.x
        node.file_output_items.clear()
        for name in names:
            item = node.file_output_items.new("VECTOR" if name in vectors else "FLOAT", name)
            if name in vectors and hasattr(item, "vector_socket_dimensions"):
                item.vector_socket_dimensions = 4
        node.file_name = ""
    else:  # 4.x: rename the default "Image" slot (removing a slot leaks memory in 4.5), then add the others
        node.file_slots[0].path = names[0]
        for name in names[1:]:
            node.file_slots.new(name)
    inputs = [socket for socket in node.inputs if socket.name]  # 5.x adds an unnamed "extend" socket
    return node, dict(zip(names, inputs))


def set_output_directory(node: bpy.types.Node, directory: str) -> None:
    """Where the File Output node writes (an absolute folder, ending with a separator)."""
    directory = os.path.join(directory, "")
    if hasattr(node, "directory"):  # 5.x
        node.directory = directory
    else:
        node.base_path = directory


def find_output(directory: str, name: str) -> str | None:
    """The EXR that a File Output input ``name`` wrote into ``directory`` (``name.exr`` or ``name0001.exr``)."""
    pattern = re.compile(rf"^{re.escape(name)}-?\d*\.exr$", re.IGNORECASE)
    if not os.path.isdir(directory):
        return None
    matches = sorted(entry for entry in os.listdir(directory) if pattern.match(entry))
    return os.path.join(directory, matches[0]) if matches else None


def read_exr_channel(path: str) -> np.ndarray:
    """The first channel of an EXR as an H x W float32 array, top row first (Blender stores images bottom-up)."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = image.size
        channels = image.channels
        pixels = np.empty(width * height * channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    if width * height == 0:
        raise SceneError(f"the pass file {path} is empty or unreadable", "check free disk space and render again")
    return np.ascontiguousarray(pixels.reshape(height, width, channels)[::-1, :, 0])
