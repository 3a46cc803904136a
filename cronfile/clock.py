"""Time as an argument.

Nothing below the engine calls ``datetime.now()``: the engine owns a ``Clock`` and passes
``now`` into the pure functions. Tests drive a ``FakeClock``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def sleep_until(self, when: datetime, wake: threading.Event | None = None) -> bool:
        """Block until ``when`` or until ``wake`` is set; True if woken early."""
        ...


class SystemClock:
    """The real wall clock. Sleeps wake on ``wake`` so file events cut them short."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime, wake: threading.Event | None = None) -> bool:
        while True:
            delay = (when - self.now()).total_seconds()
            if delay <= 0:
                return False
            # Re-check the wall clock at least once a minute so a clock jump (NTP, a
            # suspended laptop) is noticed without polling every second.
            step = min(delay, 60.0)
            if wake is not None:
                if wake.wait(step):
                    return True
            else:
                time.sleep(step)


class FakeClock:
    """A clock tests move by hand. ``sleep_until`` jumps straight to the target."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        with self._lock:
            self._now += delta
            return self._now

    def sleep_until(self, when: datetime, wake: threading.Event | None = None) -> bool:
        if wake is not None and wake.is_set():
            return True
        with self._lock:
            if when > self._now:
                self._now = when.astimezone(UTC)
        return False


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 with an offset, milliseconds kept only when present."""
    if dt is None:
        return None
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds")
    return dt.isoformat(timespec="seconds")


def parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text)
