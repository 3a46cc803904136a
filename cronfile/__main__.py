"""`python -m cronfile` is the `cronfile` command (and `run` is the installed script's)."""

from __future__ import annotations

import sys

from . import console
from .cli import main


def run() -> int:
    """The command as its own process: what a repo's load leaves lives until the
    process ends, so it is frozen out of the garbage collector (console.gc_paused)."""
    console.FREEZE_AFTER_LOAD = True
    return main()


if __name__ == "__main__":
    sys.exit(run())
