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
from datetime import datetime
from typing import IO, Any

__all__ = ["FORMATS", "LEVELS", "LogWriter", "format_json", "format_text", "timestamp"]

FORMATS = ("text", "json")
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
            try:
                self.stream.write(line)
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                pass
