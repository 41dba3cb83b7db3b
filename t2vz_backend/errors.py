"""One error hierarchy for the backend.

Every error a user can cause carries a message that names the bad value and a ``hint`` that says how to fix it.
The worker and the CLI turn these into a ``Failed`` event / a one-line message with exit status 2; anything that
is not a ``T2VZError`` is a bug and is reported with its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class T2VZError(Exception):
    """Base class of every error the backend raises on purpose."""

    kind = "error"

    def __init__(self, message: str, *, hint: str = "", field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidRequestError(T2VZError):
    """A request (or CLI option) has a bad value; ``field`` names it."""

    kind = "invalid_request"


class InputError(T2VZError):
    """Source media (images, movies, masks, control maps) cannot be used."""

    kind = "input"


class ModelLoadError(T2VZError):
    """A model reference cannot be resolved or loaded."""

    kind = "model"


class DependencyError(T2VZError):
    """An optional dependency (or its weights) is missing; the hint gives the install command."""

    kind = "dependency"


class OutputError(T2VZError):
    """The output location cannot be used (not empty, not writable, outside the job folder)."""

    kind = "output"


class JobCancelled(T2VZError):
    """The job was cancelled by the caller; partial output has been removed."""

    kind = "cancelled"


class OutOfMemory(T2VZError):
    """The device ran out of memory; the hint suggests a smaller chunk size or lower precision."""

    kind = "out_of_memory"


class FarmError(T2VZError):
    """A farm job cannot run or finish: Ray cannot be reached, no worker fits, or a range failed after its retries.

    ``keep_output`` is set when the frames rendered so far are kept (unfinished and marked) for ``--resume``.
    """

    kind = "farm"

    def __init__(self, message: str, *, hint: str = "", field: str = "", keep_output: bool = False) -> None:
        super().__init__(message, hint=hint, field=field)
        self.keep_output = keep_output


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request or its surroundings, found by a check that does not raise.

    Checks that a panel calls before any work (``validation.validate_request``, ``outputs.output_dir_problem``,
    ``preprocess.preprocessor_problem``) return these; ``to_error`` converts one into the error class
    of the layer that found it, so message, hint and field travel unchanged and are never parsed back from text.
    """

    field: str
    message: str
    hint: str = ""

    def to_error(self, cls: type[T2VZError] = InvalidRequestError) -> T2VZError:
        return cls(self.message, hint=self.hint, field=self.field)
