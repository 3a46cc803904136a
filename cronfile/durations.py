"""Durations as users write them: ``15m``, ``1h30m``, ``1h 30m``, ``2 days``.

Pure functions, no I/O. The unit names are docs/design.md section 3's: ``s``/``sec``,
``m``/``min``, ``h``/``hour``, ``d``/``day``, ``w``/``week``, their plurals, and sums of
them. ``ms`` is accepted too, so that whatever :func:`format_duration` prints reads back.
Long English words that are not in that list (``15 minutes``) are rejected rather than
guessed at: the error message shows the form that works.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from functools import lru_cache

__all__ = ["format_duration", "humanize_delta", "parse_duration"]

# Units in microseconds, by every spelling accepted.
_UNITS: dict[str, int] = {}
for _names, _us in (
    (("ms",), 1_000),
    (("s", "sec", "secs"), 1_000_000),
    (("m", "min", "mins"), 60_000_000),
    (("h", "hour", "hours"), 3_600_000_000),
    (("d", "day", "days"), 86_400_000_000),
    (("w", "week", "weeks"), 604_800_000_000),
):
    for _name in _names:
        _UNITS[_name] = _us

# Longest names first, so that "mins" is not read as "m" followed by garbage.
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
_TERM = re.compile(rf"\s*(\d+(?:\.\d+)?|\.\d+)\s*({_UNIT_RE})(?![a-z])\s*")
_BARE_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*")

_US = timedelta(microseconds=1)

# What format_duration prints, largest first (weeks are left out: "14d" reads better
# than "2w" in a schedule listing, and parse_duration reads both).
_FORMAT_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000))


def _not_a_duration(value: object) -> ValueError:
    text = value if isinstance(value, str) else str(value)
    return ValueError(f'"{text}" is not a duration (e.g. 15m)')


def parse_duration(value: str | int | float) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``; a bare number is seconds.

    Zero is returned as ``timedelta(0)``: whether zero is allowed is the caller's call.
    Raises ``ValueError('"15 minutes" is not a duration (e.g. 15m)')`` for anything else.
    """
    if isinstance(value, bool):
        # YAML's `yes`/`true` is not a number of seconds.
        raise _not_a_duration(value)
    if isinstance(value, int):
        if value < 0:
            raise _not_a_duration(value)
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise _too_long(value) from None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise _not_a_duration(value)
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise _too_long(value) from None
    if not isinstance(value, str):
        raise _not_a_duration(value)
    return _parse_text(value)


def _too_long(value: object) -> ValueError:
    text = value if isinstance(value, str) else str(value)
    return ValueError(f'"{text}" is too long a duration (at most {timedelta.max.days} days)')


@lru_cache(maxsize=1024)
def _parse_text(value: str) -> timedelta:
    """parse_duration of a string (a few spellings recur across thousands of jobs: `1h`,
    `30m`; a timedelta is immutable, so one can be shared)."""
    try:
        return _text_to_delta(value)
    except OverflowError:
        raise _too_long(value) from None


def _text_to_delta(value: str) -> timedelta:
    bare = _BARE_NUMBER.fullmatch(value)
    if bare:
        return timedelta(seconds=float(bare.group(1)))

    total_us = 0
    pos = 0
    for match in _TERM.finditer(value):
        if match.start() != pos:
            raise _not_a_duration(value)
        total_us += round(float(match.group(1)) * _UNITS[match.group(2)])
        pos = match.end()
    if pos == 0 or pos != len(value):
        raise _not_a_duration(value)
    return timedelta(microseconds=total_us)


def format_duration(value: timedelta | float, *, rounded: bool = False) -> str:
    """Compact text that :func:`parse_duration` reads back: ``1h30m``, ``45s``, ``2d``,
    ``12.5s``, ``250ms``; a negative duration gets a leading ``-``. A float is seconds.

    ``rounded`` is for a sentence a person reads, a delivery's ``succeeded in 41.2s``:
    one decimal under a minute, then ``3m12s``, then ``1h02m`` (rounded, not read back).
    """
    td = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if rounded:
        return _rounded(td.total_seconds())
    total_us = td // _US
    if total_us == 0:
        return "0s"
    sign = "-" if total_us < 0 else ""
    rest = abs(total_us)
    parts: list[str] = []
    if rest < 1_000_000:
        # Under a second: milliseconds, with microseconds as decimals.
        ms, us = divmod(rest, 1_000)
        return sign + f"{ms}.{us:03d}".rstrip("0").rstrip(".") + "ms"
    for name, size in _FORMAT_UNITS:
        count, rest = divmod(rest, size)
        if name == "s" and rest:
            # A fraction of a second goes on the seconds: 12.5s, 1m0.25s.
            parts.append(f"{count}.{rest:06d}".rstrip("0") + "s")
        elif count:
            parts.append(f"{count}{name}")
    return sign + "".join(parts)


def _rounded(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def humanize_delta(td: timedelta) -> str:
    """``"in 3h 12m"`` for a positive delta, ``"5m ago"`` for a negative one, ``"now"``
    under a second. Shows the two largest units, truncated (like ``ls -l``, never rounding
    a "59m 59s" up to an hour that has not passed)."""
    total_s = int(abs(td) // timedelta(seconds=1))
    if total_s == 0:
        return "now"
    parts: list[str] = []
    rest = total_s
    for name, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count or parts:
            parts.append(f"{count}{name}")
        if len(parts) == 2:
            break
    # "in 2h 0m" reads worse than "in 2h".
    if len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    text = " ".join(parts)
    return f"in {text}" if td > timedelta(0) else f"{text} ago"
