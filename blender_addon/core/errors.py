"""The add-on's error type: every problem a user can fix carries a message and a hint that says how."""


class T2VZAddonError(Exception):
    """A problem the user can fix; ``message`` says what is wrong, ``hint`` says what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def report_text(self) -> str:
        """One line for ``Operator.report``: the problem, then the fix."""
        return f"{self.message}. {self.hint}" if self.hint else self.message
