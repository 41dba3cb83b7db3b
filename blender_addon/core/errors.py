"""The add-on's error type: every problem a user can fix carries a message, a hint that says how, and where."""

from __future__ import annotations

from typing import Any


class T2VZAddonError(Exception):
    """A problem the user can fix; ``message`` says what is wrong, ``hint`` what to do about it, ``setting`` which
    add-on setting is at fault ("steps", "prefs.base_model"; "" when none is) and ``field`` the request field."""

    def __init__(self, message: str, hint: str = "", *, setting: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.setting = setting
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def report_text(self) -> str:
        """One line for ``Operator.report``: the problem, then the fix."""
        return error_text(self)


def error_text(error: Any) -> str:
    """"message. hint" of any error that has them (the add-on's, the backend's ``T2VZError``/``BackendError``)."""
    message, hint = getattr(error, "message", str(error)), getattr(error, "hint", "")
    return f"{message}. {hint}" if hint else message
