"""How every vaebench pool worker (the grid's, the report's figure workers) starts and ends:
:func:`start_worker`, its ``initializer``, makes it ignore Ctrl-C, end when its parent is gone,
and end without the interpreter's teardown.

A worker process started with ``spawn`` ends like a script: after its pool sent it away,
Python joins its threads, runs its ``atexit`` handlers and then tears the interpreter down --
a last garbage collection over every object torch (with ``torch._dynamo``, which every
``torch.optim`` optimiser imports), scikit-learn or matplotlib created, and the release of each
module. That teardown writes nothing, and the pool's ``shutdown(wait=True)`` waits for it:
1.4 s per grid on 2 quiet CPU cores, 2.7 s on busy ones (docs/performance.md).
:func:`end_without_teardown`, called in a worker's initializer, skips it.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time

__all__ = ["end_without_teardown", "start_worker", "watch_parent"]


def _end() -> None:
    logging.shutdown()  # registered with atexit before this: it would run after, i.e. never
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def end_without_teardown() -> None:
    """In a pool's worker process (its ``initializer``): when the worker ends, run the exit
    handlers registered after this call (plugins', torch's), shut logging down, flush stdout
    and stderr, and end the process with exit code 0 instead of tearing the interpreter down.

    For workers of a :class:`concurrent.futures.ProcessPoolExecutor` only: such a worker's
    normal end (the pool's shutdown) has exit code 0; a signal, a crash in native code or
    :func:`os._exit` never reach the exit handlers. One exit code is lost: an exception that
    escapes the pool's own worker loop (not a task's: those go back to the caller) ends the
    worker with 0 instead of 1 -- the pool tells a dead worker by its sentinel, not its code.
    """
    atexit.register(_end)


def watch_parent(parent: int, interval: float = 1.0) -> None:
    """In a worker: end the process (:func:`os._exit`) as soon as ``parent`` is no longer its
    parent -- the grid process was killed with SIGKILL, say -- instead of waiting for work
    forever (a pool's idle worker holds both ends of its task pipe and never sees it close).
    Runs in a daemon thread started by :func:`start_worker`."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def start_worker(parent: int) -> None:
    """What every vaebench pool worker does first (its ``initializer``): ignore SIGINT (Ctrl-C
    reaches the whole process group; stopping the workers is the parent's business), end
    without the interpreter's teardown (:func:`end_without_teardown`), and end when the parent
    process ``parent`` is gone (:func:`watch_parent`; 0: no watch)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_without_teardown()
    if parent:
        threading.Thread(
            target=watch_parent, args=(parent,), daemon=True, name="vaebench-parent-watch"
        ).start()
