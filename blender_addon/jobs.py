"""A job from settings to strip, shared by the operators and the CLI.

1. ``prepare``: check the backend environment and the sources (nothing written yet); make a fresh job folder,
   plan where each input goes, build the request and validate it once (``request_builder.check``, the function
   the panel's previews call); only then write the inputs (link strip frames, render scene passes) and
   ``request.json``. Nothing reaches the backend or the timeline when this fails, and the job folder goes again.
2. ``launch``: submit it (``runner`` keeps the state the panel draws).
3. ``finish``: once ``Done`` arrived and every frame is on disk, add the image strip; on failure add nothing.

Every job, a Redo too, writes into a job folder made for it (``paths.new_job_dir``), never into an existing one,
and the request never sets ``overwrite``: a strip's stored request does not either.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from . import preferences
from .backend.t2vz_backend import protocol
from .core import compat, modes, motion_choices, paths, request_builder, runner, session
from .core.errors import T2VZAddonError
from .scene_passes import job_inputs
from .timeline import sequencer, sources, strip_report


@dataclass(frozen=True)
class JobPlan:
    request: Any
    job_dir: str
    scene_name: str  # the scene whose sequencer gets the strip
    frame_start: int  # where the strip starts
    min_channel: int  # the strip goes on the first free channel from here
    strip_name: str
    config: session.ClientConfig
    farm: Any = None  # a protocol.FarmSpec: render on a Ray cluster (issue 15)
    warnings: tuple[str, ...] = ()  # things the job does that the user may not expect (camera motion); it runs

    @property
    def request_json(self) -> str:
        return protocol.dumps(self.request)


@dataclass
class _Inputs:
    """A job's inputs, planned: where they will be (for the request) and what writes them there."""

    source: request_builder.SourceInput | None = None
    controls: tuple[protocol.ControlSpec, ...] = ()
    mask_dir: str = ""
    report_vectors: str = ""  # the scene's Vector pass, for the consistency report
    writers: list[Callable[[], object]] = field(default_factory=list)


def prepare(scene: Any, settings: Any, prefs: Any, *, strips: list[Any] | None = None, output_root: str = "",
            pass_scene: Any = None, farm: Any = None, render_range: tuple[int, int] | None = None,
            frames_dir: str = "") -> JobPlan:
    """Everything up to the submission; ``strips`` defaults to the selected strips of ``scene``.

    Farms (issue 15): ``farm`` (a ``FarmSpec``) sends the job to a Ray cluster. ``render_range`` (timeline frames
    A, B inside the job) renders only those frames of the job, exactly as the full job makes them, and
    ``frames_dir`` writes them into that shared folder (several machines render ranges into it at once; each stages
    privately and commits its frames atomically), as a Flamenco task does.
    """
    view = preferences.prefs_view(prefs)
    config = preferences.client_config(prefs)  # fails here, with install instructions, when there is no backend
    mode = settings.mode
    pass_scene = pass_scene or scene
    frame_range = (settings.frame_range_start, settings.frame_range_end) if settings.use_frame_range else None
    checked = None
    if mode in modes.SOURCE_MODES:
        checked = sources.collect(compat.selected_strips(scene) if strips is None else strips, frame_range)
        frame_start, min_channel = checked.frame_start, checked.channel + 1
    elif mode == modes.SCENE:
        job_inputs.check_scene_passes(pass_scene, settings)
        frame_start, min_channel = job_inputs.scene_range(pass_scene, settings)[0], 1
    elif settings.motion_source in motion_choices.CAMERA_SOURCES:  # text->video over the scene camera's frames
        frame_start, min_channel = job_inputs.scene_range(pass_scene, settings)[0], 1
    else:
        frame_start, min_channel = frame_range[0] if frame_range else scene.frame_start, 1
    job_dir = paths.new_job_dir(preferences.output_root(prefs, output_root), settings.prompt, settings.seed)
    warnings: list[str] = []
    try:
        inputs = _plan_inputs(pass_scene, settings, view, job_dir, checked, frame_start)
        request = request_builder.build_request(settings, view, str(job_dir / "frames"), source=inputs.source,
                                                controls=inputs.controls, mask_dir=inputs.mask_dir,
                                                report_vectors=inputs.report_vectors)
        request, motion_writers = _with_camera_motion(request, pass_scene, settings, job_dir, warnings)
        request, frame_start = _sub_range(request, frame_start, render_range, frames_dir)  # issue 15: farm ranges
        request_builder.check(request, mode, staged=False)  # the inputs are planned, written below
        for write in (*inputs.writers, *motion_writers):
            write()
        (job_dir / "request.json").write_text(protocol.dumps(request) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)  # a folder made a moment ago by this function
        raise
    return JobPlan(request, str(job_dir), scene.name, frame_start, min_channel,
                   paths.strip_name(settings.prompt, settings.seed), config, farm, tuple(warnings))


def _sub_range(request: Any, job_start: int, render_range: tuple[int, int] | None, frames_dir: str
               ) -> tuple[Any, int]:
    """The request for timeline frames ``render_range`` of the job that starts at ``job_start`` (and where its strip
    starts); ``frames_dir``: the shared output folder, which other ranges of the job write into too."""
    changes: dict[str, Any] = {}
    if frames_dir:
        changes.update(output_dir=os.path.abspath(frames_dir), overwrite=True)  # ranges land there one by one
    if render_range is not None:
        first, last = render_range
        if first < job_start:
            raise T2VZAddonError(f"frames {first}-{last} start before the job (frame {job_start})",
                                 "give a frame range inside the job's frames")
        changes.update(frame_start=first - job_start, frame_end=last - job_start)
        job_start = first
    return (dataclasses.replace(request, **changes) if changes else request), job_start


def _with_camera_motion(request: Any, pass_scene: Any, settings: Any, job_dir: Path, warnings: list[str]
                        ) -> tuple[Any, list[Callable[[], object]]]:
    """Text->video and scene-pass jobs with a camera Motion: the scene camera's motion over the scene range (a
    text->video job then makes one frame per frame of it), and the writers of its files. Other jobs as they are."""
    if settings.mode not in (modes.TEXT2VIDEO, modes.SCENE) or settings.motion_source not in \
            motion_choices.CAMERA_SOURCES:
        return request, []
    frames = job_inputs.scene_range(pass_scene, settings)
    fields, writers = job_inputs.camera_motion(pass_scene, settings, frames, job_dir, request, warnings)
    if settings.mode == modes.TEXT2VIDEO:
        fields["frames"] = frames[1] - frames[0] + 1
    return dataclasses.replace(request, **fields), writers


def _plan_inputs(pass_scene: Any, settings: Any, view: request_builder.PrefsView, job_dir: Path,
                 checked: sources.StripSource | None, frame_start: int) -> _Inputs:
    if checked is not None:
        input_dir = job_dir / "input"
        return _Inputs(source=checked.input_at(input_dir), writers=[lambda: checked.stage(input_dir)])
    if settings.mode == modes.SCENE:
        controls, writers = job_inputs.scene_controls(pass_scene, settings, view, job_dir)
        vectors = ""
        if settings.report:
            vectors, writer = job_inputs.vector_dir(pass_scene, settings, job_dir)
            writers.append(writer)
        return _Inputs(controls=controls, report_vectors=vectors, writers=writers)
    if settings.smooth_bg:
        frames = (frame_start, frame_start + request_builder.frame_count(settings) - 1)
        if settings.motion_source in motion_choices.CAMERA_SOURCES:  # the scene camera's frames (see above)
            frames = job_inputs.scene_range(pass_scene, settings)
        masks, writer = job_inputs.mask_dir(pass_scene, settings, frames, job_dir)
        return _Inputs(mask_dir=masks, writers=[writer])
    return _Inputs()


def prepare_redo(scene: Any, strip: Any, prefs: Any, output_root: str = "", changes: dict[str, Any] | None = None
                 ) -> JobPlan:
    """Run a generated strip's stored request again (with ``changes``: the baseline's), into a new job folder,
    above that strip.

    The output always goes to the new folder and ``overwrite`` is off, whatever the stored request says (strips
    made by older versions may carry it).
    """
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
    request = dataclasses.replace(request, output_dir=str(job_dir / "frames"), overwrite=False,
                                  offline=request.offline or preferences.effective_offline(prefs), **(changes or {}))
    mode = modes.for_request_type(request.TYPE)
    try:
        request_builder.check(request, mode.key)  # the stored sources must still be there
        (job_dir / "request.json").write_text(protocol.dumps(request) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    return JobPlan(request, str(job_dir), scene.name, sequencer.strip_frame_start(strip), strip.channel + 1,
                   paths.strip_name(prompt, request.seed), config)


def launch(plan: JobPlan) -> runner.JobState:
    """Start the backend if needed and submit the job."""
    if runner.is_running():
        raise T2VZAddonError("a T2V-Zero job is already running", "wait for it or cancel it")
    client = session.get_client(plan.config)
    try:
        return runner.start(client, plan.request, plan.strip_name, {"plan": plan}, farm=plan.farm)
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
    strip = sequencer.add_image_strip(scene, done_files(job.done), plan.strip_name, plan.frame_start,
                                      plan.min_channel, plan.request_json, plan.job_dir)
    if job.report is not None:
        strip_report.store(strip, job.report)
    return strip


HEARTBEAT_S = 60.0  # headless: a line at least this often (Flamenco fails a task that is silent for 10 minutes)


def run_blocking(plan: JobPlan, log=print) -> Any:
    """The headless driver: submit, print progress lines, block until the end, then add the strip.

    Every frame gets a line ``Time: MM:SS.ss | T2V-Zero frame F (k/n)``: the form Blender prints per rendered frame,
    which render farms (Flamenco) count as task progress; nothing stays silent for more than ``HEARTBEAT_S``.
    """
    for warning in plan.warnings:
        log(f"T2V-Zero warning: {warning}")
    job = launch(plan)
    last, clock = [""], {"line": time.monotonic(), "start": time.monotonic()}

    def say(line: str) -> None:
        clock["line"] = time.monotonic()
        log(line)

    def on_event(state: runner.JobState, event: Any) -> None:
        if isinstance(event, protocol.FrameWritten):
            minutes, seconds = divmod(time.monotonic() - clock["start"], 60)
            frame = plan.frame_start + event.index - max(plan.request.frame_start, 0)  # the timeline frame
            say(f"Time: {int(minutes):02d}:{seconds:05.2f} | T2V-Zero frame {frame} "
                f"({len(state.frames)}/{state.total_frames or '?'})")
        line = state.status_line()
        if line != last[0]:
            last[0] = line
            say(line)

    def heartbeat() -> bool:
        if time.monotonic() - clock["line"] > HEARTBEAT_S:
            say(f"{last[0] or 'T2V-Zero'} (still working)")
        return False  # never cancels: only keeps the output alive

    runner.run_sync(job, on_event, should_cancel=heartbeat)
    strip = finish(job)
    files = done_files(job.done)
    if files:  # Blender's own line for a written image: farm managers (Flamenco) show it as the task's latest output
        log(f"Saved: '{files[-1]}'")
    return strip
