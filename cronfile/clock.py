"""Time as an argument.

Nothing below the engine calls ``datetime.now()``: the engine owns a ``Clock`` and passes
``now`` into the pure functions. Tests drive a ``FakeClock``.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def sleep_until(self, when: datetime, wake: threading.Event | None = None) -> bool:
        """Block until ``when`` or until ``wake`` is set; True if woken early."""
        ...


class SystemClock:
    """The real wall clock. Sleeps wake on ``wake`` so file events cut them short.

    Test-only: ``CRONFILE_CLOCK_OFFSET_FILE`` names a file holding a number of seconds
    added to the wall clock (re-read whenever the file changes), so the fault suite can
    jump the clock of a real daemon forward and back without touching the host's clock.
    Unset -- always, outside that suite -- it costs nothing."""

    def __init__(self, offset_file: str | None = None) -> None:
        self._offset_file = offset_file or os.environ.get("CRONFILE_CLOCK_OFFSET_FILE") or None
        self._offset_key: tuple[int, int] | None = None
        self._offset = timedelta(0)

    def _current_offset(self) -> timedelta:
        if self._offset_file is None:
            return timedelta(0)
        try:
            st = os.stat(self._offset_file)
            key = (st.st_mtime_ns, st.st_size)
            if key != self._offset_key:
                with open(self._offset_file) as f:
                    self._offset = timedelta(seconds=float(f.read().strip() or 0))
                self._offset_key = key
        except (OSError, ValueError):
            pass  # keep the last offset read: a half-written file is no jump
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self._current_offset()

    def sleep_until(self, when: datetime, wake: threading.Event | None = None) -> bool:
        start_wall, start_mono = self.now(), time.monotonic()
        while True:
            now = self.now()
            delay = (when - now).total_seconds()
            if delay <= 0:
                return False
            # The wall clock jumped while we slept (NTP, a suspended laptop, an admin):
            # return as if woken, so the caller re-reads the clock, says so in its log
            # and re-plans, instead of sleeping out a target that is now an hour away.
            walked = (now - start_wall).total_seconds() - (time.monotonic() - start_mono)
            if abs(walked) > 5:
                return True
            # Re-check the wall clock at least once a minute so a clock jump (NTP, a
            # suspended laptop) is noticed without polling every second. With the
            # test-only offset file, twice a second: a test cannot wait a minute.
            step = min(delay, 60.0 if self._offset_file is None else 0.5)
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
    # The same few instants are formatted again and again (a job's created_at, next_run
    # and last run, in every encoding of its state; an instant's runs): remembered.
    # The key holds what the text depends on beyond the instant: its zone and fold
    # (datetimes of one instant in two zones are equal, and so are a repeated hour's two
    # folds in one zone).
    key = (dt, dt.tzinfo, dt.fold)
    text = _ISO.get(key)
    if text is None:
        if len(_ISO) >= _ISO_MAX:
            _ISO.clear()
        text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
        _ISO[key] = text
    return text


_ISO: dict[tuple[datetime, object, int], str] = {}
_ISO_MAX = 4096


def parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text)


def boot_time() -> datetime | None:
    """When the system booted (Linux /proc/stat, BSD/macOS sysctl); None if unknown."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return datetime.fromtimestamp(int(line.split()[1]), UTC)
    except OSError:
        pass
    try:
        import subprocess

        out = subprocess.run(["sysctl", "-n", "kern.boottime"], capture_output=True, text=True, timeout=5).stdout
        sec = int(out.split("sec =")[1].split(",")[0])
        return datetime.fromtimestamp(sec, UTC)
    except (OSError, IndexError, ValueError, Exception):  # noqa: BLE001
        return None
