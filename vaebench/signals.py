"""Signals of a grid run: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop it the same way.

:func:`termination_as_interrupt` turns SIGTERM and SIGHUP into a ``KeyboardInterrupt`` carrying
the signal number inside a block; the grid (:class:`vaebench.grid.Grid`) then keeps its finished
cells, drops those in progress, marks the manifest ``interrupted`` and raises
:class:`RunInterrupted` with its summary (the CLI exits ``128 + signum``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vaebench.summary import RunSummary

__all__ = ["RunInterrupted", "signal_of", "termination_as_interrupt"]


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C, SIGTERM, SIGHUP); finished cells are saved.

    ``summary`` says what is done; ``signum`` is the signal (exit code ``128 + signum``).
    """

    def __init__(self, summary: RunSummary, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.summary = summary
        self.signum = int(signum)


class _Terminated(KeyboardInterrupt):
    """Raised by our SIGTERM/SIGHUP handler so that termination unwinds like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def signal_of(exc: KeyboardInterrupt) -> int:
    """The signal that raised ``exc`` inside :func:`termination_as_interrupt` (SIGTERM,
    SIGHUP), or SIGINT for a plain Ctrl-C."""
    return exc.signum if isinstance(exc, _Terminated) else int(signal.SIGINT)


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into a ``KeyboardInterrupt`` (with ``signum``) inside the block
    (main thread only; signals somebody set to be ignored, e.g. SIGHUP under ``nohup``, stay
    ignored). After the first of them, or a Ctrl-C, the three are ignored until the block ends,
    so that the grid's cleanup (workers stopped, locks released, the manifest marked
    ``interrupted``) is not cut short by a second one: ``timeout`` sends its signal to the
    process and then to its process group, i.e. twice."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    managed: dict[signal.Signals, Any] = {}

    def hold() -> None:  # the first signal stops the run; the next ones are ignored
        for sig in managed:
            signal.signal(sig, signal.SIG_IGN)

    def handler(signum: int, frame: Any) -> None:
        hold()
        raise _Terminated(signum)

    def interrupt(signum: int, frame: Any) -> None:
        hold()
        raise KeyboardInterrupt

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        default = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
        if sig is not None and signal.getsignal(sig) is default:
            managed[sig] = signal.signal(sig, interrupt if name == "SIGINT" else handler)
    try:
        yield
    finally:
        for sig, old in managed.items():
            signal.signal(sig, old)
