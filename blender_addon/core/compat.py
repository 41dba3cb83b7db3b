"""Version shims for Blender 4.2 LTS through 5.x: the only place that knows how the sequencer API is spelled.

- 4.4 renamed ``sequences``/``sequences_all`` to ``strips``/``strips_all``; 5.0 removed the old names.
- 5.0 added ``context.sequencer_scene``: the scene the sequencer shows, which may differ from ``context.scene``.
- ``bpy.types.Sequence`` (4.2/4.3) became ``bpy.types.Strip`` (4.4+): never name either at import time; strip types
  are compared through ``strip.type`` strings instead.
- ``UILayout.progress`` exists from 4.0 on; older layouts get a plain label.
- 5.3 deprecated (for removal in 6.0) the strip timing names: ``frame_final_start``/``frame_final_duration`` are
  ``left_handle``/``duration``, ``frame_start``/``animation_offset_start`` are ``content_start``/``content_trim_start``.
  The new name is always looked up first, so no deprecated attribute is touched where the new one exists.
- The compositor: ``scene.node_tree`` + ``use_nodes`` (4.x), ``scene.compositing_node_group`` (5.0), a list of
  ``scene.compositor_effects`` each with its own node group (5.3, where the 5.0 name is a deprecated view of the
  active effect). ``compositor_api`` names which one a scene has; ``scene_passes/compositor.py`` drives it.
- Before 4.5 the compositor holds vectors as three components, so the Vector pass's W is lost on its way to a
  File Output node (``compositor_keeps_vector_w``); ``scene_passes/vectors.py`` then writes the render itself.

Every function takes duck-typed objects, so the tests drive them with fakes that have only one spelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

IMAGE = "IMAGE"
MOVIE = "MOVIE"
SCENE = "SCENE"
SOUND = "SOUND"
READABLE_TYPES = (IMAGE, MOVIE)


def top_strips(sed: Any) -> Any:
    """The top-level strip collection (``strips`` on 4.4+, ``sequences`` before); it has ``new_image`` etc."""
    strips = getattr(sed, "strips", None)
    return strips if strips is not None else sed.sequences


def all_strips(sed: Any) -> Any:
    """Every strip, including those inside meta strips (``strips_all`` / ``sequences_all``)."""
    strips = getattr(sed, "strips_all", None)
    return strips if strips is not None else sed.sequences_all


def iter_all_strips(scene: Any) -> Iterator[Any]:
    """All strips of ``scene``'s sequence editor; nothing when it has none."""
    sed = getattr(scene, "sequence_editor", None)
    if sed is None:
        return iter(())
    return iter(all_strips(sed))


def sequencer_scene(context: Any) -> Any:
    """The scene whose strips the sequencer edits: ``context.sequencer_scene`` on 5.0+, else ``context.scene``."""
    scene = getattr(context, "sequencer_scene", None)
    return scene if scene is not None else context.scene


def selected_strips(scene: Any) -> list[Any]:
    """Selected strips of ``scene``, read from each strip's ``select`` flag (works headless, unlike context lists)."""
    return [strip for strip in iter_all_strips(scene) if getattr(strip, "select", False)]


def active_strip(scene: Any) -> Any:
    """The active strip of ``scene`` or None (``active_strip`` is spelled the same in every version)."""
    sed = getattr(scene, "sequence_editor", None)
    return getattr(sed, "active_strip", None) if sed is not None else None


def find_strip(scene: Any, name: str) -> Any:
    """The strip called ``name`` anywhere in ``scene`` (metas included), or None."""
    for strip in iter_all_strips(scene):
        if strip.name == name:
            return strip
    return None


def strip_range(strip: Any) -> tuple[int, int]:
    """The visible frames of ``strip`` as a half-open range ``[start, end)`` on the timeline."""
    if hasattr(strip, "left_handle"):  # 5.3+
        start, length = strip.left_handle, strip.duration
    else:
        start, length = strip.frame_final_start, strip.frame_final_duration
    start = int(round(start))
    return start, start + int(round(length))


def source_frame_zero(strip: Any) -> int:
    """The timeline frame where the strip's source frame 0 (element 0, a movie's first frame) sits, before any of
    it is trimmed away: the content start minus the trimmed frames."""
    if hasattr(strip, "content_start"):  # 5.3+
        start, trimmed = strip.content_start, strip.content_trim_start
    else:
        start, trimmed = strip.frame_start, strip.animation_offset_start
    return int(round(start)) - int(trimmed)


EFFECTS, NODE_GROUP, NODE_TREE = "effects", "node_group", "node_tree"
# The compositor carries the Vector pass with all four components from 4.5 on (checked: 4.5.15, 5.3.0); 4.2's keeps
# three, so W (the motion to the next frame, y) never reaches a File Output node. 4.3 and 4.4 are not checked and
# take the safe path.
COMPOSITOR_VECTOR_4D = (4, 5, 0)


def compositor_keeps_vector_w(version: tuple[int, ...]) -> bool:
    """True where a compositor File Output node can write the Vector pass's W (``bpy.app.version``)."""
    return tuple(version) >= COMPOSITOR_VECTOR_4D


def compositor_api(scene: Any) -> str:
    """How ``scene``'s compositor is spelled: ``EFFECTS`` (5.3+: ``compositor_effects``), ``NODE_GROUP`` (5.0:
    ``compositing_node_group``) or ``NODE_TREE`` (4.x: ``node_tree`` and ``use_nodes``)."""
    if hasattr(scene, "compositor_effects"):
        return EFFECTS
    if hasattr(scene, "compositing_node_group"):
        return NODE_GROUP
    return NODE_TREE


def occupied_ranges(scene: Any, ignore: Any = None) -> list[tuple[int, int, int]]:
    """``(channel, start, end)`` of every strip, for the free-channel search."""
    return [(strip.channel, *strip_range(strip)) for strip in iter_all_strips(scene) if strip is not ignore]


class prefetch_off:
    """Context manager: prefetch and the raw/final caches off while strips are added or removed, then restored.

    The prefetch thread can read strip memory that ``strips.new_*``/``remove`` frees (a Blender race).
    """

    NAMES = ("use_prefetch", "use_cache_raw", "use_cache_final")

    def __init__(self, sed: Any) -> None:
        self.sed = sed
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> Any:
        for name in self.NAMES:
            if hasattr(self.sed, name):
                self.saved[name] = getattr(self.sed, name)
                setattr(self.sed, name, False)
        return self.sed

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            setattr(self.sed, name, value)


def draw_progress(layout: Any, factor: float, text: str) -> None:
    """A progress bar where ``UILayout.progress`` exists, else a label with the percentage."""
    if hasattr(layout, "progress"):
        layout.progress(factor=max(0.0, min(1.0, factor)), type="BAR", text=text)
    else:
        layout.label(text=f"{text} ({factor:.0%})")


def online_access(app: Any) -> bool:
    """``bpy.app.online_access`` (4.2+); True where the attribute does not exist."""
    return bool(getattr(app, "online_access", True))
