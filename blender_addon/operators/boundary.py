"""The one error boundary of the add-on's operators.

``@error_boundary`` on ``execute``/``invoke``/``modal``: a ``T2VZAddonError`` (a problem the user can fix) becomes an
error report, a line in the job log and ``{'CANCELLED'}``; anything else is a bug: its traceback goes to the console
and the job log, and the report says where to find it. An operator that holds resources while modal (a timer)
releases them in ``on_error(context)``. Blender checks the argument count of operator methods, so the wrapper keeps
the method's own signature.
"""

import functools
import traceback

from ..core.errors import T2VZAddonError
from ..ui import textlog


def report_error(op, error: T2VZAddonError) -> set[str]:
    textlog.write(textlog.JOB_LOG, f"error: {error.report_text()}")
    op.report({"ERROR"}, error.report_text())
    return {"CANCELLED"}


def _guard(op, method, context, *args) -> set[str]:
    try:
        return method(op, context, *args)
    except T2VZAddonError as error:
        _release(op, context)
        return report_error(op, error)
    except Exception as exc:  # a bug: keep Blender running, and keep the traceback for the report
        _release(op, context)
        trace = traceback.format_exc()
        print(trace)
        textlog.write(textlog.JOB_LOG, trace)
        op.report({"ERROR"}, f"T2V-Zero: internal error in {op.bl_idname}: {exc!r}. The traceback is in the "
                  f"console and the Text Editor ({textlog.JOB_LOG}); please report it")
        return {"CANCELLED"}


def _release(op, context) -> None:
    on_error = getattr(op, "on_error", None)
    if on_error is not None:
        on_error(context)


def error_boundary(method):
    """Wrap an operator method (``(self, context)`` or ``(self, context, event)``) in the error boundary."""
    if method.__code__.co_argcount == 3:
        @functools.wraps(method)
        def guarded_event(self, context, event):
            return _guard(self, method, context, event)
        return guarded_event

    @functools.wraps(method)
    def guarded(self, context):
        return _guard(self, method, context)
    return guarded
