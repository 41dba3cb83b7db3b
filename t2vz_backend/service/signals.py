"""Stop signals: SIGINT (Ctrl-C), SIGTERM (what farms, process managers and ``kill`` send) and SIGHUP (a closed
terminal or session) all mean "stop this job, clean up, exit with status 128 + the signal number".

The command line cancels after the current denoising step on the first signal and stops at once on a second; the
worker cancels its jobs and exits. Either way the job's staging folder is removed (service/staging.py); only SIGKILL
leaves one behind, and the next run into that folder clears it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS: tuple[int, ...] = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                                      if hasattr(signal, name))


class StopRequested(BaseException):
    """Raised by a stop-signal handler to leave a blocking call (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signal_name(signum)}")
        self.signum = signum


def exit_status(signum: int) -> int:
    """The conventional exit status of a process stopped by ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


@contextmanager
def on_stop_signals(handler: Callable[[int], Any]) -> Iterator[None]:
    """Call ``handler(signum)`` for every stop signal while the block runs (main thread only; elsewhere a no-op),
    then restore the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, lambda signum, _frame: handler(signum)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
