"""``python -m vaebench.cli``: the ``vaebench`` command."""

import os
import sys

from vaebench.cli import console

if __name__ == "__main__":  # pragma: no cover
    # `python -m vaebench.cli` puts the current folder first on sys.path: plugins and the
    # libraries imported later (torch, ...) would load from it, which the `vaebench` command
    # never does (issue 19.6); vaebench itself is already imported
    safe = getattr(sys.flags, "safe_path", False)
    if not safe and sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd():
        del sys.path[0]
    console()
