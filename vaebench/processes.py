"""Worker processes end without the interpreter's teardown.

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
import sys

__all__ = ["end_without_teardown"]


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
    normal end (the pool's shutdown) has exit code 0, and its other ends -- a signal, a crash in
    native code, :func:`os._exit` -- never reach the exit handlers, so no exit code is lost.
    """
    atexit.register(_end)
