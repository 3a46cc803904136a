"""Test-only crash injection at named points (the fault suite, tests/faults).

Shared by the stores and the engine: each names the points on its own path.
"""

from __future__ import annotations

import os
import random
import signal
from contextlib import suppress
from typing import Any

__all__ = ["fault"]


def _parse_faults(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        point, _, prob = item.strip().partition(":")
        if point:
            out[point] = float(prob or 1.0)
    return out


# Test-only crash injection, for the fault suite (tests/faults): with
# CRONFILE_FAULT="point:probability[,point:probability...]" in its environment, a process
# SIGKILLs itself when it reaches a named point, with that probability, so the suite can
# crash the real daemon at exact moments instead of hoping a timer lands there. Points:
# mid-state-write (temp file written, before the rename), after-state-write (renamed, lock
# still held), mid-history-write (half a line written: a torn line, as a power cut or a
# full disk leaves) in stores/file.py, and in engine.py after-claim, after-park (runs parked before their
# instant), after-spawn, after-history,
# during-delivery, mid-recovery. Unset -- always, outside that suite -- a point costs one
# dict lookup.
_FAULTS = _parse_faults(os.environ.get("CRONFILE_FAULT", ""))


def fault(point: str, before: Any = None) -> None:
    """Die here by SIGKILL if CRONFILE_FAULT arms ``point`` (see above); ``before()`` runs
    first (e.g. to write half a line)."""
    prob = _FAULTS.get(point)
    if prob is None or random.random() >= prob:
        return
    if before is not None:
        before()
    with suppress(OSError):
        os.write(2, f"cronfile: fault injected at {point}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
