"""A job from settings to strip, shared by the operators and the CLI.

1. ``prepare``: check the settings, the backend environment and the sources; make the job folder, stage the
   inputs, build and validate the request. Nothing reaches the backend or the timeline when this fails.
2. ``launch``: submit it (``runner`` keeps the state the panel draws).
3. ``finish``: once ``Done`` arrived and every frame is on disk, add the image strip; on failure add nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from . import preferences
from .backend.t2vz_backend import protocol, validation
from .core import compat, paths, request_builder, runner, session
from .core.errors import T2VZAddonError
from .scene_passes import job_inputs
from .timeline import sequencer, sources


@dataclass(frozen=True)
class JobPlan:
    request: Any
    job_dir: str
    scene_name: str  # the scene whose sequencer gets the strip
    frame_start: int  # where the strip starts
    min_channel: int  # the strip goes on the first free channel from here
    strip_name: str
    config: session.ClientConfig

    @property
    def request_json(self) -> str:
        return protocol.dumps(self.request)


def _raise_problem(problem: validation.Problem) -> None:
    raise T2VZAddonError(problem.message, problem.hint)


def _check_settings(settings: Any, view: request_builder.PrefsView) -> None:
    problems = request_builder.preview_problems(settings, view)
    for key in sorted(problems, key=lambda k: k == ""):
        _raise_problem(problems[key][0])


def prepare(scene: Any, settings: Any, prefs: Any, *, strips: list[Any] | None = None, output_root: str = "",
            pass_scene: Any = None) -> JobPlan:
    """Everything up to the submission; ``strips`` defaults to the selected strips of ``scene``."""
    view = preferences.prefs_view(prefs)
    _check_settings(settings, view)
    config = preferences.client_config(prefs)  # fails here, with install instructions, when there is no backend
    mode = settings.mode
    pass_scene = pass_scene or scene
    frame_range = (settings.frame_range_start, settings.frame_range_end) if settings.use_frame_range else None
    if mode in request_builder.SOURCE_MODES:
        strips = compat.selected_strips(scene) if strips is None else strips
        checked = sources.collect(strips, frame_range, None)  # every check before any file is written
        frame_start, min_channel = checked.frame_start, checked.channel + 1
    elif mode == request_builder.SCENE:
        job_inputs.check_scene_passes(pass_scene, settings)
        frame_start, min_channel = job_inputs.scene_range(pass_scene, settings)[0], 1
    else:
        frame_start = frame_range[0] if frame_range else scene.frame_start
        min_channel = 1
    job_dir = paths.new_job_dir(preferences.output_root(prefs, output_root), settings.prompt, settings.seed)
    try:
        request = _stage_and_build(scene, pass_scene, settings, view, job_dir, strips, frame_range)
        for problem in validation.validate_request(request):
            _raise_problem(problem)
        (job_dir / "request.json").write_text(protocol.dumps(request) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)  # a folder made a moment ago by this function
        raise
    return JobPlan(request, str(job_dir), scene.name, frame_start, min_channel,
                   paths.strip_name(settings.prompt, settings.seed), config)


def _stage_and_build(scene: Any, pass_scene: Any, settings: Any, view: request_builder.PrefsView, job_dir: Path,
                     strips: list[Any] | None, frame_range: tuple[int, int] | None) -> Any:
    output_dir = str(job_dir / "frames")
    mode = settings.mode
    if mode in request_builder.SOURCE_MODES:
        staged = sources.collect(strips or [], frame_range, job_dir / "input")
        request = request_builder.build_request(settings, view, output_dir, source=staged.input)
        if os.path.isfile(staged.input.path) and _inside(output_dir, os.path.dirname(staged.input.path)):
            # A movie next to the .blend file: the backend refuses an output inside a source's folder (it could
            # mix frames into an image folder). A movie is one file and output_dir a fresh folder of a fresh job
            # folder, so nothing can be mixed or replaced: allow it explicitly.
            request = dataclasses.replace(request, overwrite=True)
        return request
    if mode == request_builder.SCENE:
        controls = job_inputs.scene_controls(pass_scene, settings, view, job_dir)
        return request_builder.build_request(settings, view, output_dir, controls=controls)
    masks = ""
    if settings.smooth_bg:
        first = frame_range[0] if frame_range else scene.frame_start
        frames = (first, first + request_builder.frame_count(settings) - 1)
        masks = job_inputs.mask_dir(pass_scene, settings, frames, job_dir)
    return request_builder.build_request(settings, view, output_dir, mask_dir=masks)


def _inside(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def prepare_redo(scene: Any, strip: Any, prefs: Any, output_root: str = "") -> JobPlan:
    """Run a generated strip's stored request again, into a new job folder, above that strip."""
    data = sequencer.strip_request(strip)
    if data is None:
        raise T2VZAddonError(f"strip {strip.name!r} was not made by T2V-Zero", "select a generated strip")
    try:
        request = protocol.request_from_dict(data)
    except Exception as exc:  # T2VZError of the bundled backend: a request of another version
        raise T2VZAddonError(f"the parameters stored on {strip.name!r} cannot be read ({exc})",
                             "generate it again from the panel") from exc
    config = preferences.client_config(prefs)
    prompt = getattr(request, "prompt", "") or getattr(request, "instruction", "")
    job_dir = paths.new_job_dir(preferences.output_root(prefs, output_root), prompt, request.seed)
    request = dataclasses.replace(request, output_dir=str(job_dir / "frames"),
                                  offline=request.offline or preferences.effective_offline(prefs))
    problems = validation.validate_request(request)
    if problems:
        shutil.rmtree(job_dir, ignore_errors=True)
        _raise_problem(problems[0])
    (job_dir / "request.json").write_text(protocol.dumps(request) + "\n", encoding="utf-8")
    return JobPlan(request, str(job_dir), scene.name, sequencer.strip_frame_start(strip), strip.channel + 1,
                   paths.strip_name(prompt, request.seed), config)


def launch(plan: JobPlan) -> runner.JobState:
    """Start the backend if needed and submit the job."""
    if runner.is_running():
        raise T2VZAddonError("a T2V-Zero job is already running", "wait for it or cancel it")
    client = session.get_client(plan.config)
    try:
        return runner.start(client, plan.request, plan.strip_name, {"plan": plan})
    except Exception as exc:  # the client's BackendError: the worker died before the job could be sent
        if not hasattr(exc, "hint"):
            raise
        session.stop()
        raise T2VZAddonError(f"cannot send the job to the backend: {exc.message}", exc.hint) from exc


def done_files(done: Any) -> list[str]:
    return [f if os.path.isabs(f) else os.path.join(done.output_dir, f) for f in done.frames]


def finish(job: runner.JobState) -> Any:
    """The new strip for a finished job; raises ``T2VZAddonError`` for a failed or cancelled one."""
    plan: JobPlan = job.context["plan"]
    if job.status != runner.DONE:
        raise T2VZAddonError(f"generation {job.status}: {job.failure.message if job.failure else ''}".rstrip(": "),
                             job.failure.hint if job.failure else "")
    scene = bpy.data.scenes.get(plan.scene_name)
    if scene is None:
        raise T2VZAddonError(f"scene {plan.scene_name!r} is gone; the frames are in {plan.job_dir}",
                             "add them as an image strip by hand")
    return sequencer.add_image_strip(scene, done_files(job.done), plan.strip_name, plan.frame_start,
                                     plan.min_channel, plan.request_json, plan.job_dir)


def run_blocking(plan: JobPlan, log=print) -> Any:
    """The headless driver: submit, print progress lines, block until the end, then add the strip."""
    job = launch(plan)
    last = [""]

    def on_event(state: runner.JobState, _event: Any) -> None:
        line = state.status_line()
        if line != last[0]:
            last[0] = line
            log(line)

    runner.run_sync(job, on_event)
    return finish(job)
