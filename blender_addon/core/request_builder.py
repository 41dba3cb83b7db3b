"""Turn the scene settings and preferences into a backend request, and check it (no bpy; settings are read by
attribute, so plain objects work in tests).

``problems`` is the add-on's one validation: the panel calls it on the request the settings would make (on every
redraw, so it does no file-system work beyond ``validation.validate_request``'s), and a job calls it once on the
request it is about to send, whose sources are planned but not yet staged. Either way the problems are keyed by the
setting that fixes them (``settings_table``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backend.t2vz_backend import model_refs, protocol, validation
from . import contract, modes
from .errors import T2VZAddonError
from .settings_table import (
    CONTROL_KINDS,
    PREFERENCE_SETTINGS,
    PREFS_PREFIX,
    SCENE_BY_NAME,
    SCENE_SETTINGS,
    setting_for_field,
)

PREVIEW_DIR = "(job folder)"  # output_dir of preview requests; the real one is made when the job starts
# Request fields that only the job's sources fill in: not reported until they are staged.
SOURCE_FIELDS = ("output_dir", "input", "controls", "mask_dir", "report_vectors", "report_compare", "motion_flow",
                 "motion_occlusion")
_REQUEST = protocol.JobRequest


@dataclass(frozen=True)
class PrefsView:
    """The preferences a request needs, as plain data (the defaults are the preferences' own)."""

    base_model: str = model_refs.DEFAULT_BASE_MODEL
    model_config: str = _REQUEST.model_config  # configs folder for a single-file base model
    pix2pix_model: str = model_refs.DEFAULT_PIX2PIX_MODEL
    controlnet_models: dict[str, str] = field(default_factory=dict)  # kind -> model ("" = backend default)
    device: str = _REQUEST.device
    dtype: str = _REQUEST.dtype
    vae_batch: int = _REQUEST.vae_batch
    offline: bool = _REQUEST.offline
    allow_pickle: bool = _REQUEST.allow_pickle
    report_clip: str = _REQUEST.report_clip  # CLIP model of the consistency report ("" = not computed)


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


def _size(settings: Any) -> dict[str, int]:
    """Source modes: keep the source's aspect (width = height = 0, the long side from its setting), or force the
    width x height of the size settings."""
    if settings.fit_source:
        return {"width": 0, "height": 0}
    return {"width": settings.width, "height": settings.height}


def control_spec(settings: Any, prefs: PrefsView, kind: str, path: str, start: int = 0, extract: bool = False
                 ) -> protocol.ControlSpec:
    """One ControlNet: ``extract`` makes the backend turn ordinary frames into ``kind`` maps first."""
    (scale,) = contract.to_request(SCENE_BY_NAME["control_scale"], settings.control_scale)
    return protocol.ControlSpec(kind=kind, path=path, model=prefs.controlnet_models.get(kind, ""), scale=scale,
                                preprocessor=kind if extract else "none", start_frame=start)


def build_request(settings: Any, prefs: PrefsView, output_dir: str, source: SourceInput | None = None,
                  controls: tuple[protocol.ControlSpec, ...] = (), mask_dir: str = "", report_vectors: str = "") -> Any:
    """The request the settings make; ``source``/``controls``/``mask_dir``/``report_vectors`` (the scene's Vector
    pass, for the consistency report) come from the job inputs."""
    mode = modes.get(settings.mode)
    values = {**contract.request_values(settings, mode.key, SCENE_SETTINGS),
              **contract.request_values(prefs, mode.key, PREFERENCE_SETTINGS), "output_dir": output_dir}
    if not model_refs.is_checkpoint_file(values["model"]):
        values.pop("model_config", None)  # configs belong to a single checkpoint file (the backend refuses others)
    if mode.key == modes.TEXT2VIDEO:
        values.update(frames=frame_count(settings), mask_dir=mask_dir)
        return mode.request(**values)
    values.update(_size(settings))
    if mode.key == modes.CONTROLNET:
        if source is not None and not controls:
            controls = (control_spec(settings, prefs, settings.control_kind, source.path, source.start,
                                     extract=settings.control_input == "EXTRACT"),)
        values.update(controls=controls, frames=source.frames if source else 0)
    elif mode.key == modes.SCENE:
        values.update(controls=controls, frames=frame_count(settings) if settings.use_frame_range else 0,
                      report_vectors=report_vectors)
    else:
        values.update(input=source.path if source else "", input_start=source.start if source else 0,
                      frames=source.frames if source else 0)
    return mode.request(**values)


def is_source_field(name: str) -> bool:
    return any(name == f or name.startswith(f + "[") or name.startswith(f + ".") for f in SOURCE_FIELDS)


def _key(problem: validation.Problem, request: Any, mode: str) -> str:
    """The setting that fixes ``problem``: a ControlNet model is its kind's preference; "" when no setting does."""
    if problem.field.startswith("controls[") and problem.field.endswith(".model"):
        index = int(problem.field[len("controls["):].split("]")[0])
        kind = request.controls[index].kind if index < len(request.controls) else ""
        return f"{PREFS_PREFIX}controlnet_{kind}" if kind in CONTROL_KINDS else ""
    return setting_for_field(problem.field, mode)


def problems(request: Any, mode: str, *, staged: bool = True) -> dict[str, list[validation.Problem]]:
    """Validation problems of ``request`` (made in ``mode``), keyed by the setting that fixes them ("" for none).

    ``staged=False``: the job's own inputs are not written yet (a panel preview, or a job before it stages its
    sources), so problems of the source fields are left out; a ControlNet model is a preference and still checked.
    """
    out: dict[str, list[validation.Problem]] = {}
    for problem in validation.validate_request(request):
        if not staged and is_source_field(problem.field) and not problem.field.endswith(".model"):
            continue
        out.setdefault(_key(problem, request, mode), []).append(problem)
    return out


def check(request: Any, mode: str, *, staged: bool = True) -> None:
    """Raise the first problem of ``request`` as a ``T2VZAddonError`` naming its setting (settings' first)."""
    found = problems(request, mode, staged=staged)
    for key in sorted(found, key=lambda k: k == ""):  # in validation's order, problems without a setting last
        problem = found[key][0]
        raise T2VZAddonError(problem.message, problem.hint, setting=key, field=problem.field)


def preview_problems(settings: Any, prefs: PrefsView) -> dict[str, list[validation.Problem]]:
    """The panel's problems: those of the request the settings would make, before any source is staged."""
    return problems(build_request(settings, prefs, PREVIEW_DIR), settings.mode, staged=False)
