"""What a newcomer probably meant: the closest IANA zones for a timezone typo, and the
cronfile form of a schedule written for another tool (`@every 5m` is robfig/cron's and
supercronic's; `Mon *-*-* 09:00` is a systemd calendar).

Pure: text in, a hint (or None) out. Only called once something failed to parse, so
its cost (reading the zone list) is never paid by a valid file.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

__all__ = ["schedule_hint", "systemd_to_cron", "timezone_hints"]

MACROS = ("@reboot", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    import zoneinfo

    return tuple(sorted(zoneinfo.available_timezones()))


def _key(text: str) -> str:
    return re.sub(r"[\s_-]+", "_", text.strip()).lower()


def timezone_hints(name: str, zones: tuple[str, ...] | None = None, n: int = 3) -> list[str]:
    """The IANA names a user most likely meant by ``name``: the same name in other case
    or spacing (``europe/berlin``, ``New York``), then zones whose city is ``name``
    (``Berlin`` -> ``Europe/Berlin``), then close spellings (``Europe/Berln``)."""
    zones = _zones() if zones is None else zones
    if not isinstance(name, str) or not name.strip():
        return []
    key = _key(name)
    out: list[str] = [z for z in zones if _key(z) == key]
    out += [z for z in zones if "/" in z and _key(z.rsplit("/", 1)[1]) == key and z not in out]
    if not out:
        by_key = {_key(z): z for z in zones}
        for k in difflib.get_close_matches(key, list(by_key), n=n, cutoff=0.85):
            if by_key[k] not in out:
                out.append(by_key[k])
    if not out:
        cities: dict[str, list[str]] = {}
        for z in zones:
            if "/" in z:
                cities.setdefault(_key(z.rsplit("/", 1)[1]), []).append(z)
        for k in difflib.get_close_matches(key, list(cities), n=n, cutoff=0.8):
            out += [z for z in cities[k] if z not in out]
    # Canonical names first: Europe/Berlin before a link such as posix/Europe/Berlin.
    out.sort(key=lambda z: (z.startswith(("posix/", "right/", "Etc/")), 0))
    return out[:n]


_DAYS = {"mon": "mon", "tue": "tue", "wed": "wed", "thu": "thu", "fri": "fri", "sat": "sat", "sun": "sun"}
_SHORTHANDS = {
    "minutely": "* * * * *",
    "hourly": "@hourly",
    "daily": "@daily",
    "weekly": "0 0 * * mon",  # systemd's weekly is Monday 00:00; cron's @weekly is Sunday
    "monthly": "@monthly",
    "yearly": "@yearly",
    "annually": "@yearly",
    "quarterly": "0 0 1 1,4,7,10 *",
    "semiannually": "0 0 1 1,7 *",
}


def _day(text: str) -> str | None:
    text = text.lower()
    for full, short in _DAYS.items():
        if text in (full, {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday", "sat": "saturday", "sun": "sunday"}[full]):
            return short
    return None


def _dow(text: str) -> str | None:
    parts = []
    for item in text.split(","):
        if ".." in item:
            a, b = item.split("..", 1)
            da, db = _day(a), _day(b)
            if da is None or db is None:
                return None
            parts.append(f"{da}-{db}")
        else:
            d = _day(item)
            if d is None:
                return None
            parts.append(d)
    return ",".join(parts)


def _field(text: str, low: int, top: int) -> str | None:
    """A systemd calendar component as a cron field: `*`, lists, `a..b`, `a/step`."""
    out = []
    for item in text.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:\.\.(\d+))?(?:/(\d+))?", item)
        if m is None:
            return None
        start, end, step = m.groups()
        start = start if start == "*" else str(int(start))
        if end is not None:
            item = f"{start}-{int(end)}"
        elif step is not None and start != "*":
            # systemd `5/10` runs from 5 to the end of the range: cron's 5-59/10 (or */10 from the start)
            item = "*" if int(start) == low else f"{start}-{top}"
        else:
            item = start
        if step is not None:
            item += f"/{int(step)}"
        out.append(item)
    return ",".join(out)


def systemd_to_cron(text: str) -> str | None:
    """The cron form of a systemd OnCalendar expression (``Mon..Fri *-*-* 09:00``), or
    None if it is not one or has no cron form (a fixed year, say)."""
    words = text.strip().split()
    if len(words) == 1 and words[0].lower() in _SHORTHANDS:
        return _SHORTHANDS[words[0].lower()]
    if not words or len(words) > 3:
        return None
    dow = "*"
    if re.fullmatch(r"[A-Za-z]+(?:(?:\.\.|,)[A-Za-z]+)*", words[0]):
        d = _dow(words[0])
        if d is None:
            return None
        dow, words = d, words[1:]
    if not words:
        return None
    date, time_ = ("*-*-*", words[0]) if len(words) == 1 else (words[0], words[1])
    if len(words) > 2:
        return None
    dm = re.fullmatch(r"([^-]+)-([^-]+)-([^-]+)", date)
    tm = re.fullmatch(r"([^:]+):([^:]+)(?::([^:]+))?", time_)
    if dm is None or tm is None:
        return None
    year, month, day = dm.groups()
    if year != "*":
        return None
    hour, minute, second = tm.groups()
    fields = [_field(minute, 0, 59), _field(hour, 0, 23), _field(day, 1, 31), _field(month, 1, 12)]
    if any(f is None for f in fields):
        return None
    cron = " ".join([*fields, dow])  # type: ignore[list-item]
    if second is not None and second.lstrip("0") not in ("", "."):
        sec = _field(second, 0, 59)
        return None if sec is None else f"{sec} {cron}"
    return cron


def schedule_hint(text: str) -> str | None:
    """A hint for a schedule that did not parse, or None."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    low = s.lower()
    m = re.fullmatch(r"@every\s+(.+)", low)
    if m:
        return f"did you mean 'every {m.group(1).strip()}'? cronfile writes intervals without the @"
    if low.startswith("@"):
        close = difflib.get_close_matches(low, MACROS, n=1, cutoff=0.6)
        return f"did you mean {close[0]}?" if close else None
    if low in ("reboot", "hourly", "daily", "midnight", "weekly", "monthly", "yearly", "annually"):
        return f"did you mean @{low}?"
    cron = systemd_to_cron(s)
    if cron is not None:
        return f"that reads as a systemd calendar; its cron form is {cron!r}"
    return None
