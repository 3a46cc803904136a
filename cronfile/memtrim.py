"""Give the C heap's free memory back to the system (glibc's ``malloc_trim``).

A daemon's load and its reloads free large blocks (a state read of 30,000 jobs, the
tables an edit copies), and glibc keeps the freed pages mapped: 8-17 MB of a
30,000-job daemon's RSS was free heap (issue 17). Elsewhere (musl, macOS) this does
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any


def release() -> None:
    """Return the C heap's free pages to the system, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (ImportError, OSError, AttributeError):  # (ImportError: a Python without _ctypes)
        return None
