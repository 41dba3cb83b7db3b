"""Checks of a job's media that need no model, run by ``run_job`` after validation and before any model loads.

``validation`` sees only the request; these look at the sources it names (headers and one frame at most): the
video's frame count against ``validation.MAX_FRAMES``, a native output size against ``validation.MAX_SIZE``, and
whether every preprocessor can run here. The engine checks the media properly again when it reads them; what it
would refuse only after loading a model is refused here first.
"""

from __future__ import annotations

from ..errors import DependencyError, InputError, T2VZError
from ..protocol import AnyRequest, ControlVideoRequest, EditVideoRequest
from ..validation import MAX_FRAMES, MAX_SIZE, frame_range


def check_media(request: AnyRequest) -> None:
    """Raise for what the job's media make impossible (see the module docstring)."""
    if isinstance(request, ControlVideoRequest):
        _check_preprocessors(request)
    if not request.frames:
        total = count_source_frames(request)
        if total > MAX_FRAMES:
            field = "input" if isinstance(request, EditVideoRequest) else "controls[0].path"
            raise InputError(f"the source has {total} frames, more than the {MAX_FRAMES} one job can render (every "
                             "frame's latents and source frames stay in memory)", field=field,
                             hint=f"set frames (at most {MAX_FRAMES}) and a start frame, or resample to a lower fps")
    if not request.width and not getattr(request, "long_side", 1):
        width, height = _native_size(request)
        if max(width, height) > MAX_SIZE:
            raise InputError(f"the source's native size {width}x{height} is larger than {MAX_SIZE} pixels per side",
                             field="long_side", hint="set long_side (e.g. 512), or width and height")


def expected_frames(request: AnyRequest) -> tuple[int, int]:
    """(first, count) of the global frames the job will write; count is 0 when only the engine can tell."""
    total = request.frames or count_source_frames(request)
    if total <= 0:
        first = max(request.frame_start, 0)
        return first, (request.frame_end - first + 1 if request.frame_end >= first else 0)
    first, last = frame_range(request, total)
    return first, max(last - first + 1, 0)


def count_source_frames(request: AnyRequest) -> int:
    """Best-effort frame count of the input media (0 if unknown); the engine checks the media properly."""
    from ..conditions.preprocess import count_source_frames as count

    try:
        if isinstance(request, EditVideoRequest) and request.input:
            return count(request.input, fps=request.input_fps or None) - request.input_start
        if isinstance(request, ControlVideoRequest) and request.controls:
            return min(count(c.path, fps=c.fps or None) - c.start_frame for c in request.controls)
    except (T2VZError, OSError, ValueError):
        return 0
    return 0


def _native_size(request: AnyRequest) -> tuple[int, int]:
    from ..media.reader import read_frames

    try:
        if isinstance(request, EditVideoRequest):
            return read_frames(request.input, count=1).size
        if isinstance(request, ControlVideoRequest) and request.controls:
            from ..conditions.maps import auto_size

            return auto_size(request.controls[0], 0)
    except (T2VZError, OSError, ValueError):
        pass  # unreadable media: the engine names the problem
    return 0, 0


def _check_preprocessors(request: ControlVideoRequest) -> None:
    from ..conditions.maps import preprocessor_for
    from ..conditions.preprocess import preprocessor_problem

    for i, spec in enumerate(request.controls):
        problem = preprocessor_problem(preprocessor_for(spec), request.annotators_dir or None,
                                       field=f"controls[{i}].preprocessor")
        if problem is not None:
            raise problem.to_error(DependencyError)
