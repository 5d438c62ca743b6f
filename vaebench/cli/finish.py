"""How the ``vaebench`` command ends: everything Python does at exit, except tearing the
interpreter down.

Python's own exit (``sys.exit``) joins the threads that are not daemons, runs the ``atexit``
handlers, flushes the standard streams -- and then tears the interpreter down: a last garbage
collection over every object torch, scikit-learn, pandas and scipy created, and the release of
each module. That last part writes nothing and costs ~1-1.7 s on 2 CPU cores after a run (of a
default ``vaebench run``'s ~16 s; measured in docs/performance.md). :func:`finish` does the
first three and then ends the process with :func:`os._exit`.

A thread or an exit handler that does not end (a process pool's manager thread left waiting
for workers that were killed mid-cell, say) would keep Python's exit waiting forever; here a
watchdog ends the process after :data:`EXIT_SECONDS` with the command's own exit code, saying
so on stderr. Results are never at stake: every result file is written atomically (and
``fsync``-ed) before the command returns.

Only the console script (``vaebench``, ``python -m vaebench.cli``) ends this way;
:func:`vaebench.cli.main` itself still ends with :class:`SystemExit`, for code that calls it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

__all__ = ["EXIT_SECONDS", "INTERRUPTED_EXIT_SECONDS", "exit_code", "finish", "watchdog_seconds"]

#: How long the threads and exit handlers may take before the process ends without them.
EXIT_SECONDS = 60.0

#: The same after a signal stopped the command (exit code 128 + SIGHUP, SIGINT or SIGTERM): its
#: results and manifest are written by then, and a process pool whose workers were terminated
#: mid-cell can leave its manager thread waiting forever on a half-sent result (seen after
#: Ctrl-C with 2 workers, about 1 time in 8).
INTERRUPTED_EXIT_SECONDS = 5.0


def watchdog_seconds(code: int) -> float:
    """:data:`INTERRUPTED_EXIT_SECONDS` for the exit codes of a stopping signal, else
    :data:`EXIT_SECONDS`."""
    return INTERRUPTED_EXIT_SECONDS if code in (129, 130, 143) else EXIT_SECONDS


def exit_code(code: object) -> int:
    """The process exit code of ``SystemExit(code)``, as Python computes it: ``None`` is 0, an
    integer itself, anything else is printed to stderr and gives 1."""
    if code is None:
        return 0
    if isinstance(code, int):  # a bool too: sys.exit(False) is 0, sys.exit(True) is 1
        return int(code)
    print(code, file=sys.stderr)
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass


def _give_up(code: int, seconds: float) -> None:
    _flush()
    with contextlib.suppress(OSError):
        os.write(
            2,
            f"vaebench: threads or exit handlers still running after {seconds:g} s; "
            "exiting without them\n".encode(),
        )
    os._exit(code)


def finish(code: int, seconds: float = EXIT_SECONDS) -> NoReturn:
    """End the process with exit code ``code``: join the threads that are not daemons (after
    the thread-exit hooks, e.g. concurrent.futures waking its pools' manager threads), run the
    ``atexit`` handlers, flush stdout and stderr, then :func:`os._exit`. After ``seconds`` a
    watchdog ends the process whatever is still running (a message on stderr)."""
    watchdog = threading.Timer(seconds, _give_up, (code, seconds))
    watchdog.daemon = True
    watchdog.start()
    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx calls first
    if shutdown is not None:
        shutdown()
    else:  # pragma: no cover - every CPython from 3.7 has it
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)
