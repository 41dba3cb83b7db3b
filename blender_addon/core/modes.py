"""The add-on's modes: the one table of what the panel can make, and which backend request each one sends.

Everything that names a mode reads it from here: the Mode enum of the settings, the per-mode settings groups
(``Scene.t2vz.<group>``), the request builder, Load Parameters (request type -> mode) and the ``--mode`` option of
``blender -c t2vz generate``. No bpy.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backend.t2vz_backend import protocol


@dataclass(frozen=True)
class Mode:
    key: str  # the Mode enum identifier, stored in .blend files
    request: type[protocol.JobRequest]  # the request class this mode sends; its defaults are the mode's defaults
    cli: str  # the name of ``blender -c t2vz generate --mode``
    label: str
    description: str
    icon: str
    reads_strips: bool = False  # the job's source is the selected sequencer strips

    @property
    def group(self) -> str:
        """The name of this mode's settings group: ``Scene.t2vz.<group>`` holds its own per-mode values."""
        return self.key.lower()


TEXT2VIDEO, CONTROLNET, PIX2PIX, SCENE = "TEXT2VIDEO", "CONTROLNET", "PIX2PIX", "SCENE"
MODES = (
    Mode(TEXT2VIDEO, protocol.TextToVideoRequest, "text2video", "Text → Video",
         "Make a video from the prompt alone (Text2Video-Zero)", "TEXT"),
    Mode(CONTROLNET, protocol.ControlVideoRequest, "restyle", "Restyle Strips",
         "Restyle the selected strips, following their edges, depth or pose with a ControlNet", "SEQ_SEQUENCER",
         reads_strips=True),
    Mode(PIX2PIX, protocol.EditVideoRequest, "edit", "Edit Strips",
         "Edit the selected strips with an instruction (Video Instruct-Pix2Pix)", "GREASEPENCIL", reads_strips=True),
    Mode(SCENE, protocol.ControlVideoRequest, "scene", "From Scene Passes",
         "Drive a ControlNet with pose, depth or edges rendered from the 3D scene", "SCENE_DATA"),
)
BY_KEY = {mode.key: mode for mode in MODES}
BY_CLI = {mode.cli: mode for mode in MODES}
KEYS = tuple(BY_KEY)
SOURCE_MODES = tuple(mode.key for mode in MODES if mode.reads_strips)


def get(key: str) -> Mode:
    """The mode ``key`` (the enum allows no other value, so an unknown one is a bug)."""
    try:
        return BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown mode {key!r}") from None


def for_request_type(request_type: str, current: str = "") -> Mode | None:
    """The mode that makes requests of ``request_type``: ``current`` when it does (Scene Passes and Restyle both
    send ControlNet requests), else the first such mode; None for a type no mode sends."""
    matching = [mode for mode in MODES if mode.request.TYPE == request_type]
    for mode in matching:
        if mode.key == current:
            return mode
    return matching[0] if matching else None
