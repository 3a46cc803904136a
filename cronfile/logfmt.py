"""The daemon's log lines: dated text for people, one JSON object per line for machines.

Text (the default)::

    2026-12-06T05:07:00.650+01:00 backup run 7f3a started (schedule, 2 ms late)

JSON (``--log-format json`` or ``log_format: json`` in cronfile.yaml), one object a line,
the keys docs/design.md section 8 names (``job``, ``run_id``, ``scheduled_for``,
``lateness_ms``, ``status`` only where they apply)::

    {"ts": "2026-12-06T05:07:00.650+01:00", "level": "info", "event": "run.started",
     "msg": "run 7f3a started (schedule, 2 ms late)", "job": "backup", ...}

Pure formatting: the time is an argument; ``LogWriter`` is the edge that writes.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import IO, Any

__all__ = ["FORMATS", "LEVELS", "LogWriter", "format_json", "format_text", "timestamp"]

FORMATS = ("text", "json")
HELD_LINES = 64  # LogWriter.hold: held lines are written once there are this many
HELD_SECONDS = 0.05  # or once the first of them is this old (at the next line)
LEVELS = ("debug", "info", "warning", "error")


def timestamp(now: datetime) -> str:
    """ISO 8601 with milliseconds and the local offset: ``2026-12-06T05:07:00.650+01:00``."""
    return now.astimezone().isoformat(timespec="milliseconds")


def format_text(now: datetime, level: str, job: str, msg: str) -> str:
    """One text line: date, time and offset, the level when it is not ``info``, the job."""
    parts = [timestamp(now)]
    if level != "info":
        parts.append(level.upper())
    if job:
        parts.append(job)
    parts.append(msg)
    return " ".join(parts)


def format_json(now: datetime, level: str, event: str, msg: str, fields: dict[str, Any]) -> str:
    """One JSON object on one line; fields whose value is None are left out."""
    obj: dict[str, Any] = {"ts": timestamp(now), "level": level, "event": event, "msg": msg}
    for key, value in fields.items():
        if value is None or key in obj:
            continue
        obj[key] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(obj, ensure_ascii=False, default=str)


class LogWriter:
    """Writes log lines to a stream in one format; thread-safe (runs log from threads)."""

    def __init__(self, stream: IO[str], fmt: str = "text") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.stream = stream
        self.fmt = fmt
        self._lock = threading.Lock()
        # hold(): the thread whose lines wait for release() (or HELD_LINES, HELD_SECONDS),
        # and those lines.
        self._holder: int | None = None
        self._held: list[str] = []
        self._held_since = 0.0

    def write(self, now: datetime, *, level: str, event: str, msg: str, job: str = "", **fields: Any) -> None:
        if self.fmt == "json":
            line = format_json(now, level, event, msg, {"job": job or None, **fields})
        else:
            line = format_text(now, level, job, msg)
        # One write with its newline: print() wrote the newline apart, two syscalls a
        # line under the lock on an unbuffered stream (PYTHONUNBUFFERED, as our service
        # files set it). (Lines written by whichever thread was writing, with no lock held
        # across the write, cost less CPU but made the bench's p99 start lateness worse:
        # docs/performance.md, round 8.)
        line += "\n"
        with self._lock:
            if self._holder is not None:
                # Held (hold): kept in order with the holder's lines. Another thread's
                # line goes out at once, with the held ones before it.
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.append(line)
                if (
                    self._holder != threading.get_ident()
                    or len(self._held) >= HELD_LINES
                    or time.monotonic() - self._held_since >= HELD_SECONDS
                ):
                    self._write_held()
                return
            self._write(line)

    def hold(self) -> None:
        """The lines this thread writes from now on wait for ``release`` (at most
        HELD_LINES lines, HELD_SECONDS seconds): one write for many. The daemon's runs
        are stepped by one thread (cronfile/steps.py), which holds its lines while it
        has work and lets them go before it sleeps: two writes a run were 8% of its
        time at 200 runs a second."""
        with self._lock:
            self._holder = threading.get_ident()

    def release(self) -> None:
        """Write the held lines; lines are written at once again."""
        with self._lock:
            self._holder = None
            self._write_held()

    def _write_held(self) -> None:
        # caller holds self._lock
        if self._held:
            text, self._held = "".join(self._held), []
            self._write(text)

    def _write(self, text: str) -> None:
        # caller holds self._lock
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass
