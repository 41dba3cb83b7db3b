"""Turn the scene settings and preferences into a backend request (no bpy; settings are read by attribute).

The panel calls ``preview_problems`` on every redraw to show validation problems beside the settings, so this
module does no file-system work beyond what ``validation.validate_request`` does itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backend.t2vz_backend import protocol, validation

TEXT2VIDEO, CONTROLNET, PIX2PIX, SCENE = "TEXT2VIDEO", "CONTROLNET", "PIX2PIX", "SCENE"
SOURCE_MODES = (CONTROLNET, PIX2PIX)  # modes that read selected strips
PREVIEW_DIR = "(job folder)"  # output_dir of preview requests; the real one is made when the job starts
# Request fields that only the job's sources fill in: the panel does not report them (nothing is staged yet).
SOURCE_FIELDS = ("output_dir", "input", "controls", "mask_dir")

# Request field -> the setting that fixes it ("prefs." = an add-on preference).
FIELD_SETTINGS = {
    "prompt": "prompt", "instruction": "prompt", "frame_prompts": "prompt",
    "negative_prompt": "negative_prompt", "seed": "seed", "steps": "steps",
    "guidance": "guidance", "image_guidance": "image_guidance",
    "width": "width", "height": "height", "long_side": "width",
    "frames": "frames", "frame_start": "frames", "frame_end": "frames",
    "motion_x": "motion", "motion_y": "motion", "t0": "t0", "t1": "t1",
    "chunk_size": "chunk_size", "exact_anchor": "exact_anchor", "smooth_bg_strength": "smooth_bg_strength",
    "model": "prefs.base_model", "model_config": "prefs.model_config", "device": "prefs.device",
    "dtype": "prefs.dtype", "vae_batch": "prefs.vae_batch",
}


@dataclass(frozen=True)
class PrefsView:
    """The preferences a request needs, as plain data."""

    base_model: str = "tiny"
    model_config: str = ""  # configs folder for a single-file base model
    pix2pix_model: str = "tiny"
    controlnet_models: dict[str, str] = field(default_factory=dict)  # kind -> model ("" = backend default)
    device: str = "auto"
    dtype: str = "auto"
    vae_batch: int = 2
    offline: bool = False


@dataclass(frozen=True)
class SourceInput:
    """Where a job's input frames are: a folder of frames or a movie, and which of its frames to use."""

    path: str
    start: int = 0
    frames: int = 0  # 0 = all


def frame_count(settings: Any) -> int:
    """Frames a text-to-video job makes: the frame range's length when one is set, else ``settings.frames``."""
    if settings.use_frame_range:
        return max(0, settings.frame_range_end - settings.frame_range_start + 1)
    return settings.frames


def _common(settings: Any, prefs: PrefsView, output_dir: str) -> dict[str, Any]:
    return {
        "output_dir": output_dir, "seed": settings.seed, "steps": settings.steps, "guidance": settings.guidance,
        "negative_prompt": settings.negative_prompt, "chunk_size": settings.chunk_size,
        "exact_anchor": settings.exact_anchor, "device": prefs.device,
        "dtype": prefs.dtype, "offline": prefs.offline, "vae_batch": prefs.vae_batch,
    }


def _base_config(prefs: PrefsView) -> str:
    """The configs folder, only where the base model is a single checkpoint file (the backend refuses it otherwise)."""
    single = prefs.base_model.lower().endswith((".safetensors", ".ckpt", ".pt", ".bin"))
    return prefs.model_config if single else ""


def _size(settings: Any) -> dict[str, int]:
    """Source modes: keep the source's aspect with the long side from the settings, or force width x height."""
    if settings.fit_source:
        return {"width": 0, "height": 0, "long_side": max(settings.width, settings.height)}
    return {"width": settings.width, "height": settings.height}


def control_spec(settings: Any, prefs: PrefsView, kind: str, path: str, start: int = 0, extract: bool = False
                 ) -> protocol.ControlSpec:
    """One ControlNet: ``extract`` makes the backend turn ordinary frames into ``kind`` maps first."""
    return protocol.ControlSpec(
        kind=kind, path=path, model=prefs.controlnet_models.get(kind, ""), scale=settings.control_scale,
        preprocessor=kind if extract else "none", start_frame=start,
    )


def build_request(settings: Any, prefs: PrefsView, output_dir: str, source: SourceInput | None = None,
                  controls: tuple[protocol.ControlSpec, ...] = (), mask_dir: str = "") -> Any:
    """The request the settings make; ``source``/``controls``/``mask_dir`` come from the staged job inputs."""
    common = _common(settings, prefs, output_dir)
    mode = settings.mode
    base = {"model": prefs.base_model, "model_config": _base_config(prefs)}
    if mode == TEXT2VIDEO:
        return protocol.TextToVideoRequest(
            **common, **base, prompt=settings.prompt, width=settings.width, height=settings.height,
            frames=frame_count(settings), motion_x=settings.motion[0] / 100, motion_y=settings.motion[1] / 100,
            t0=settings.t0, t1=settings.t1, smooth_bg=settings.smooth_bg,
            smooth_bg_strength=settings.smooth_bg_strength, mask_dir=mask_dir,
        )
    if mode == CONTROLNET:
        if source is not None and not controls:
            kind = settings.control_kind.lower()
            controls = (control_spec(settings, prefs, kind, source.path, source.start,
                                     extract=settings.control_input == "EXTRACT"),)
        return protocol.ControlVideoRequest(
            **common, **_size(settings), **base, prompt=settings.prompt, controls=controls,
            frames=source.frames if source else 0,
        )
    if mode == SCENE:
        return protocol.ControlVideoRequest(
            **common, **_size(settings), **base, prompt=settings.prompt, controls=controls,
            frames=frame_count(settings) if settings.use_frame_range else 0,
        )
    if mode == PIX2PIX:
        return protocol.EditVideoRequest(
            **common, **_size(settings), model=prefs.pix2pix_model, instruction=settings.prompt,
            input=source.path if source else "", input_start=source.start if source else 0,
            frames=source.frames if source else 0, image_guidance=settings.image_guidance,
        )
    raise ValueError(f"unknown mode {mode!r}")  # the enum property allows no other value


def is_source_field(name: str) -> bool:
    return any(name == f or name.startswith(f + "[") or name.startswith(f + ".") for f in SOURCE_FIELDS)


def preview_problems(settings: Any, prefs: PrefsView) -> dict[str, list[validation.Problem]]:
    """Validation problems of the request the settings would make, keyed by the setting that fixes them.

    Problems about the job's inputs (not staged until the job starts) are left out; those with no setting in the
    panel are keyed by ``""``.
    """
    request = build_request(settings, prefs, PREVIEW_DIR)
    out: dict[str, list[validation.Problem]] = {}
    for problem in validation.validate_request(request):
        base = problem.field.split("[")[0].split(".")[0]
        if is_source_field(problem.field) and not problem.field.endswith(".model"):
            continue
        key = "prefs.controlnet" if problem.field.endswith(".model") else FIELD_SETTINGS.get(base, "")
        out.setdefault(key, []).append(problem)
    return out
