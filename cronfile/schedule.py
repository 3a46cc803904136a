"""Schedules: when a job fires (docs/design.md section 3).

``parse(expr, timezone)`` returns a :class:`Schedule` whose ``next_after(dt)`` is the
first fire time strictly after ``dt``. Pure: no I/O, no clock; every instant is an
argument (cronsim's habit: ``CronSim(expr, dt)``).

Forms: cron with 5 fields, cron with 6 fields (seconds first, as Quartz and Spring),
macros (``@daily``...), ``@reboot``, intervals (``every 30m``), once after a delay
(``30m``, ``in 2h``) and once at an instant (``2026-06-01T09:00``).

Cron semantics are Debian (Vixie) cron's, plus cronsim's ``L``, ``LW``, ``nL`` and ``#``
and Quartz's ``15W``. The code is written in three layers:

1. a field parser that gives each field a set of values and says, for a bad
   expression, which field is wrong and why;
2. a matcher on naive wall-clock time ("local seconds": seconds since 1970-01-01 00:00
   on the job's wall clock) that walks months, then the days that match, then
   hours, minutes and seconds;
3. the conversion of wall times to instants, where daylight saving lives: a
   fixed-time job is matched on the wall clock (a skipped time runs once at the
   jump, a repeated time runs once at its first occurrence) and any other job is
   matched on real instants (skipped times never run, repeated ones run twice).

This module does not call croniter, although croniter is the project's declared cron
dependency. croniter departs from Debian cron in the places that matter here: it fires
a fixed-time job twice in a fall-back hour, fires ``0 */2 * * *`` at the end of a
spring-forward gap, rejects ``LW`` and ``5L``, ORs ``*/2`` day-of-month with a
day-of-week (Debian ANDs them because the field starts with ``*``), accepts the
reversed ranges ``5-3`` and ``1-0``, reads a 6th field as seconds last, and only finds
out at iteration time that ``0 0 30 2 *`` can never fire. Using it only where it is
right would still leave the DST rules, the validation messages and the day logic to
us, and croniter needs 90-150 microseconds to build an iterator and answer one next
fire time, against a budget of 50 (this module: about 4), so the matcher below is our
own. The ``cronsim`` package is the reference it is tested against.
"""

from __future__ import annotations

import hashlib
import re
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .durations import format_duration, parse_duration

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "OnceSchedule",
    "RebootSchedule",
    "Schedule",
    "ScheduleError",
    "dst_warnings",
    "get_zone",
    "jitter_offset",
    "parse",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORD = date(1970, 1, 1).toordinal()
_US = timedelta(microseconds=1)
_SEC = timedelta(seconds=1)
_ZERO = timedelta(0)
_DAY = 86_400
_MIN_ORD = date(2, 1, 1).toordinal()  # keep a day of margin from datetime.min/max
_MAX_ORD = date(9998, 12, 31).toordinal()
_MIN_TS = (_MIN_ORD - _EPOCH_ORD) * _DAY
_MAX_TS = (_MAX_ORD - _EPOCH_ORD) * _DAY
# The Gregorian calendar repeats every 400 years, so a day pattern that matches
# somewhere matches within that span (parse() rejects the ones that never match).
_SEARCH_YEARS = 401

_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class ScheduleError(ValueError):
    """A schedule or timezone a user wrote cannot be used. ``str(e)`` is one line that
    says why, e.g. ``minute: 61 is out of range 0-59``."""


# -- timezones --------------------------------------------------------------------------


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ScheduleError("unknown timezone 'Mars/Base'")`` if none."""
    if isinstance(name, ZoneInfo):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"unknown timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        from .suggest import timezone_hints

        hints = timezone_hints(name)
        if hints:
            raise ScheduleError(f"unknown timezone {name!r} (did you mean {' or '.join(hints)}?)") from None
        raise ScheduleError(f"unknown timezone {name!r}") from None


# Zones whose offset never changes; the common UTC case skips the transition table.
_CONSTANT_ZONES = frozenset(
    ("UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu")
)


def _raw_offset(tz: ZoneInfo, ts: int) -> int:
    """The zone's UTC offset, in seconds, at the instant ``ts``."""
    off = datetime.fromtimestamp(ts, tz).utcoffset()
    assert off is not None
    return off // _SEC


class _Table(NamedTuple):
    """One immutable snapshot of a zone's offsets over the instants [lo, hi]."""

    lo: int
    hi: int
    base: int  # the offset at lo
    hi_off: int  # the offset at hi
    trans: list[int]  # instants T in (lo, hi] where the offset changes, sorted
    after: list[int]  # the offset from trans[i] on


class _Offsets:
    """A zone's UTC offsets as integers: the transitions (instants where the offset
    changes) found by probing the zone once a day and bisecting to the second.

    zoneinfo does not expose its transitions, and recent tzdata builds keep only a rule
    for future years, so probing is the portable way. It assumes that an offset does
    not change twice within one day: in tzdata 2026 the closest two changes of any zone
    are four days apart (Africa/Freetown, 1935). The table grows on demand around the instants asked about and is shared by every
    schedule in the zone; readers take one snapshot, so a growing table never shows
    them half an update.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        key = tz.key or ""
        self.constant: int | None = None
        if key in _CONSTANT_ZONES or key.startswith("Etc/"):
            self.constant = _raw_offset(tz, 0)
        self._lock = threading.Lock()
        self._table: _Table | None = None

    def _first_change(self, p: int, q: int, off_p: int) -> int:
        """The smallest instant in (p, q] whose offset is not ``off_p``."""
        while q - p > 1:
            mid = (p + q) // 2
            if _raw_offset(self.tz, mid) == off_p:
                p = mid
            else:
                q = mid
        return q

    def _cover(self, lo: int, hi: int) -> _Table:
        lo, hi = max(lo, _MIN_TS), min(hi, _MAX_TS)
        with self._lock:
            table = self._table
            if table is None:
                off = _raw_offset(self.tz, lo)
                table = _Table(lo, lo, off, off, [], [])
            if table.lo <= lo and hi <= table.hi:
                return table
            trans, after = list(table.trans), list(table.after)
            p, off_p = table.hi, table.hi_off
            while p < hi:
                q = p + _DAY
                off_q = _raw_offset(self.tz, q)
                if off_q != off_p:
                    t = self._first_change(p, q, off_p)
                    trans.append(t)
                    after.append(_raw_offset(self.tz, t))
                p, off_p = q, off_q
            new_hi, new_hi_off = p, off_p
            found: list[tuple[int, int]] = []
            q, off_q = table.lo, table.base
            while lo < q:
                p = q - _DAY
                off_p = _raw_offset(self.tz, p)
                if off_p != off_q:
                    t = self._first_change(p, q, off_p)
                    found.append((t, _raw_offset(self.tz, t)))
                q, off_q = p, off_p
            found.reverse()
            trans[:0] = [t for t, _ in found]
            after[:0] = [o for _, o in found]
            table = self._table = _Table(q, new_hi, off_q, new_hi_off, trans, after)
            return table

    def offset_at(self, ts: int) -> int:
        if self.constant is not None:
            return self.constant
        table = self._table
        if table is None or not table.lo <= ts <= table.hi:
            table = self._cover(ts - 2 * _DAY, ts + 2 * _DAY)
        i = bisect_right(table.trans, ts)
        return table.after[i - 1] if i else table.base

    def changes(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """The offset changes (instant, offset before, offset after) in (lo, hi]."""
        if self.constant is not None or hi <= lo:
            return []
        table = self._table
        if table is None or lo < table.lo or hi > table.hi:
            table = self._cover(lo, hi)
        trans = table.trans
        i, j = bisect_right(trans, lo), bisect_right(trans, hi)
        if i == j:
            return []  # (the common answer: no change in two days)
        after = table.after
        return [(trans[k], after[k - 1] if k else table.base, after[k]) for k in range(i, j)]


_OFFSETS: dict[ZoneInfo, _Offsets] = {}


def _offsets(tz: ZoneInfo) -> _Offsets:
    found = _OFFSETS.get(tz)
    if found is None:
        found = _OFFSETS[tz] = _Offsets(tz)
    return found


def _resolve_wall(z: _Offsets, wall: int) -> int:
    """The instant of a wall time under Debian cron's fixed-time rule: a wall time in a
    spring-forward gap becomes the first instant after the jump; a wall time repeated
    by a fall-back becomes its first occurrence."""
    if z.constant is not None:
        return wall - z.constant
    # Offsets are under a day, so only changes within two days of the wall time can
    # decide which instant it names.
    changes = z.changes(wall - 2 * _DAY, wall + 2 * _DAY)
    if not changes:
        return wall - z.offset_at(wall)
    # The stretches of constant offset around it, in time order; the first that holds
    # the wall time gives its first occurrence.
    bounds = [-(1 << 62), *(t for t, _, _ in changes), 1 << 62]
    offsets = [changes[0][1], *(after for _, _, after in changes)]
    for k, off in enumerate(offsets):
        if bounds[k] <= wall - off < bounds[k + 1]:
            return wall - off
    for t, before, after in changes:
        if t + before <= wall < t + after:
            return t  # in the gap of a spring-forward: the jump itself
    raise AssertionError("unreachable: a wall time is either real or in a gap")


# -- cron fields ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # one object per field: hashed by identity (a cache key)
class _Field:
    name: str
    lo: int
    hi: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH_ABBRS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTH = _Field("month", 1, 12, _MONTH_ABBRS, 1)
_DOW = _Field("day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 0)

_DIGITS = frozenset("0123456789")

# Debian cron's macros (crontab(5)). @hourly starts its hour with '*', so it is matched
# on real instants like `0 * * * *`; the others are fixed-time jobs.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELD_COUNT_MSG = (
    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got {}"
)
_YEAR_MSG = (
    "6-field expression ends in a 4-digit year (supercronic/Quartz year field); cronfile "
    "reads 6 fields as seconds first: drop the year"
)


def _number(field: _Field, token: str, item: str) -> int:
    upper = token.upper()
    if upper in field.names:
        return field.names.index(upper) + field.names_from
    if not token:
        raise ScheduleError(f"{field.name}: {item!r} is missing a value")
    if not _DIGITS.issuperset(token):
        what = "a number"
        if field is _MONTH:
            what = "a number or a month name (jan-dec)"
        elif field is _DOW:
            what = "a number or a day name (sun-sat)"
        if token == item:
            raise ScheduleError(f"{field.name}: {item!r} is not {what}")
        raise ScheduleError(f"{field.name}: {item!r}: {token!r} is not {what}")
    value = int(token)
    if not field.lo <= value <= field.hi:
        raise ScheduleError(f"{field.name}: {value} is out of range {field.lo}-{field.hi}")
    return value


def _range(field: _Field, term: str, item: str) -> tuple[int, int]:
    first, last = term.split("-", 1)
    start = _number(field, first, item)
    end = _number(field, last, item)
    if end < start:
        # croniter differs: it reads 5-3 and 1-0 as wrapping around; Debian cron and
        # cronsim reject a range that runs backwards.
        hint = "; Sunday is also 7" if field is _DOW and end == 0 else ""
        raise ScheduleError(
            f"{field.name}: {item!r} is a reversed range ({start} is after {end}){hint}"
        )
    return start, end


# A parsed list item: a plain value, or ("L",), ("LW",), ("W", n), ("L", weekday) and
# ("#", weekday, n) for the day fields.
_Atom = int | tuple[int | str, ...]


def _parse_item(field: _Field, item: str) -> set[_Atom]:
    upper = item.upper()
    if upper == "*":
        return set(range(field.lo, field.hi + 1))
    if upper == "?":
        # cronsim (and Debian) do not accept Quartz's '?', so neither do we.
        # croniter differs: it reads '?' as '*'.
        raise ScheduleError(
            f"{field.name}: '?' is not supported (Quartz's 'no specific value'): use '*'"
        )
    if field is _DOW and "L" in upper:
        # cronsim: `5L` is the last Friday of the month; a bare `L` is not accepted.
        # croniter differs: it rejects `5L` and spells the last Friday `L5`.
        value = upper[:-1]
        if not upper.endswith("L") or not value or not _DIGITS.issuperset(value):
            raise ScheduleError(
                f"day-of-week: {item!r}: L must follow a day number, as in 5L (the last Friday)"
            )
        return {("L", _number(field, value, item) % 7)}
    if field is _DOW and "#" in upper:
        # cronsim: `1#2` is the second Monday of the month.
        term, nth = item.split("#", 1)
        dow = _number(field, term, item)
        if not nth or not _DIGITS.issuperset(nth) or not 1 <= int(nth) <= 5:
            raise ScheduleError(f"day-of-week: {item!r}: the week number after # must be 1-5")
        return {("#", dow % 7, int(nth))}
    if "/" in upper:
        term, step_text = item.split("/", 1)
        if not step_text or not _DIGITS.issuperset(step_text):
            raise ScheduleError(f"{field.name}: {item!r}: the step after / must be a number")
        step = int(step_text)
        if step == 0:
            raise ScheduleError(f"{field.name}: {item!r}: step must be at least 1")
        term_upper = term.upper()
        if term_upper == "*":
            start, end = field.lo, field.hi
        elif "-" in term:
            # Debian cron: a range with a step, `1-30/5`; `5-5/10` is just 5.
            # cronsim differs: it reads a one-value range with a step as a start, so
            # `5-5/10` is `5/10` (5, 15, ..., 55).
            # croniter differs: it gives 10, 20, ..., 50 for `5-5/10`.
            start, end = _range(field, term, item)
        elif field is _DOM and (term_upper in ("L", "LW") or term_upper.endswith("W")):
            # cronsim differs: it accepts `L/2` and ignores the step; we reject it.
            raise ScheduleError(f"{field.name}: {item!r}: L and W cannot take a step")
        else:
            # cronsim: a single value with a step runs to the end of the field, so
            # `5/15` is `5-59/15` (Vixie cron rejects this form).
            start, end = _number(field, term, item), field.hi
        return set(range(start, end + 1, step))
    if "-" in upper:
        start, end = _range(field, item, item)
        return set(range(start, end + 1))
    if field is _DOM:
        if upper == "L":
            return {("L",)}  # cronsim: the last day of the month
        if upper == "LW":
            # cronsim: the last weekday (Monday to Friday) of the month.
            # croniter differs: it rejects LW.
            return {("LW",)}
        if upper.endswith("W") and len(upper) > 1:
            # Quartz: `15W` is the weekday nearest the 15th, in the same month.
            # cronsim (2.8) differs: it rejects nW.
            return {("W", _number(field, item[:-1], item))}
    return {_number(field, item, item)}


def _parse_field(field: _Field, text: str) -> set[_Atom]:
    atoms: set[_Atom] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{field.name}: {text!r} has an empty list item")
        atoms |= _parse_item(field, item)
    return atoms


# One field's text recurs across many expressions (`0`, `*`, `1-5`): its values are
# kept, while every expression of a big repo can be distinct (issue 17). Errors are not
# kept: they are raised again, in the same order.
@lru_cache(maxsize=4096)
def _parse_values(field: _Field, text: str) -> tuple[int, ...]:
    """A field without L, W or # (all but the two day fields), sorted."""
    return tuple(sorted(x for x in _parse_field(field, text) if isinstance(x, int)))


@lru_cache(maxsize=4096)
def _frozen(values: tuple[int, ...]) -> frozenset[int]:
    return frozenset(values)


@lru_cache(maxsize=4096)
def _field_atoms(field: _Field, text: str) -> frozenset[_Atom]:
    """A day field's atoms (values, and the L, W and # forms)."""
    return frozenset(_parse_field(field, text))


def _last_weekday(first_weekday: int, length: int) -> int:
    """The last Monday-to-Friday date of a month (Python weekdays: Monday is 0)."""
    last = (first_weekday + length - 1) % 7
    return length - 1 if last == 5 else length - 2 if last == 6 else length


def _nearest_weekday(n: int, first_weekday: int, length: int) -> int | None:
    """Quartz's `nW`: the weekday nearest the n-th, never leaving the month."""
    if n > length:
        # A month without an n-th day has no `nW`, as it has no plain `n`.
        # croniter differs: it moves `31W` to the 30th in April.
        return None
    weekday = (first_weekday + n - 1) % 7
    if weekday == 5:  # Saturday: Friday before, or Monday after when n is the 1st
        return n - 1 if n > 1 else n + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before when n is the last day
        return n + 1 if n < length else n - 2
    return n


class _Days:
    """The day-of-month and day-of-week fields together.

    Which dates of a month match depends only on the weekday of its 1st and its length,
    so the answer is computed at most 28 times per distinct pair of fields and shared.
    """

    def __init__(self, dom: frozenset[_Atom], dow: frozenset[_Atom], day_and: bool) -> None:
        tagged = [x for x in dom | dow if isinstance(x, tuple)]
        self.dom_days = frozenset(x for x in dom if isinstance(x, int))
        self.dom_last = ("L",) in dom
        self.dom_last_weekday = ("LW",) in dom
        self.dom_nearest = tuple(sorted(int(x[1]) for x in tagged if x[0] == "W"))
        # Debian cron: 7 is Sunday, like 0.
        self.dow_days = frozenset(x % 7 for x in dow if isinstance(x, int))
        self.dow_last = frozenset(int(x[1]) for x in tagged if x[0] == "L" and len(x) == 2)
        self.dow_nth = frozenset((int(x[1]), int(x[2])) for x in tagged if x[0] == "#")
        self.day_and = day_and
        self._lists: dict[tuple[int, int], tuple[int, ...]] = {}
        self._months: dict[tuple[int, int], tuple[int, ...]] = {}

    def days_for(self, first_weekday: int, length: int) -> tuple[int, ...]:
        """Matching dates of a month whose 1st is ``first_weekday`` (Monday is 0)."""
        key = (first_weekday, length)
        found = self._lists.get(key)
        if found is not None:
            return found
        last_weekday = _last_weekday(first_weekday, length)
        nearest = {_nearest_weekday(n, first_weekday, length) for n in self.dom_nearest}
        out = []
        for day in range(1, length + 1):
            dom_ok = (
                day in self.dom_days
                or (self.dom_last and day == length)
                or (self.dom_last_weekday and day == last_weekday)
                or day in nearest
            )
            cron_dow = (first_weekday + day) % 7  # cron weekdays: Sunday is 0
            dow_ok = (
                cron_dow in self.dow_days
                or (cron_dow in self.dow_last and day + 7 > length)
                or (cron_dow, (day + 6) // 7) in self.dow_nth
            )
            # Debian cron: if either day field starts with '*' both must match (AND);
            # otherwise either may (OR).
            if (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok):
                out.append(day)
        found = self._lists[key] = tuple(out)
        return found

    def for_month(self, year: int, month: int) -> tuple[int, ...]:
        key = (year, month)
        found = self._months.get(key)
        if found is None:
            if len(self._months) > 2048:
                self._months.clear()
            first = date(year, month, 1)
            found = self._months[key] = self.days_for(first.weekday(), _month_length(year, month))
        return found


def _month_length(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _month_lengths(month: int) -> tuple[int, ...]:
    if month == 2:
        return (28, 29)
    return (30,) if month in (4, 6, 9, 11) else (31,)


def _join(words: list[str], last: str) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


def _check_can_fire(days: _Days, months: tuple[int, ...], dom_text: str, dow_text: str) -> None:
    """Reject day fields that match no date of any listed month in any year.

    Every (weekday of the 1st, length) pair of every month occurs in the 400-year
    Gregorian cycle, so trying the 7 x 1-2 shapes of each month is exhaustive.
    """
    for month in months:
        for length in _month_lengths(month):
            for first_weekday in range(7):
                if days.days_for(first_weekday, length):
                    return
    longest = max(max(_month_lengths(m)) for m in months)
    plain = sorted(days.dom_days | set(days.dom_nearest))
    only_dates = not (days.dom_last or days.dom_last_weekday)
    if only_dates and plain and plain[0] > longest and days.dow_days == set(range(7)):
        names = [_MONTH_NAMES[m - 1] for m in months]
        if len(plain) == 1:
            what = f"day {plain[0]} does not exist"
        else:
            what = f"days {_join([str(d) for d in plain], 'and')} do not exist"
        raise ScheduleError(f"can never fire: {what} in {_join(names, 'or')}")
    where = "any month" if len(months) == 12 else _join([_MONTH_NAMES[m - 1] for m in months], "or")
    raise ScheduleError(
        f"can never fire: no day in {where} matches both day-of-month {dom_text!r} "
        f"and day-of-week {dow_text!r}"
    )


def _day_fields(dom: str, month: str, dow: str) -> tuple[_Days, tuple[int, ...], frozenset[int]]:
    """The date part of an expression: its days, months and month set, checked to fire
    on some date. Kept by text (_DAY_FIELDS): `* * *` or `1 */3 *` recur across a whole
    repo whose times of day all differ (issue 17). Errors are not kept: they are raised
    again, in the same order."""
    key = (dom, month, dow)
    found = _DAY_FIELDS.get(key)
    if found is not None:
        return found
    dom_atoms = _field_atoms(_DOM, dom)
    months = _parse_values(_MONTH, month)
    dow_atoms = _field_atoms(_DOW, dow)
    # Debian cron: a day field that starts with '*' ANDs the two day fields
    # (`0 0 */2 * 1` is odd days that are Mondays).
    # croniter differs: it ORs them unless a field is exactly '*'.
    day_and = dom.startswith("*") or dow.startswith("*")
    days_key = (dom_atoms, dow_atoms, day_and)
    days = _DAYS_CACHE.get(days_key)
    if days is None:
        days = _DAYS_CACHE[days_key] = _Days(dom_atoms, dow_atoms, day_and)
    if day_and:
        # cronsim differs: it rejects only a day past the end of every listed month
        # and finds out about `0 0 */20 * 1#5` by searching 50 years.
        # croniter differs: it accepts `0 0 30 2 *` and fails when asked for a time.
        _check_can_fire(days, months, dom, dow)
    found = (days, months, _frozen(months))  # one set per months tuple (8 MB at 30,000 jobs)
    if len(_DAY_FIELDS) < 4096:
        _DAY_FIELDS[key] = found
    return found


_DAY_FIELDS: dict[tuple[str, str, str], tuple[_Days, tuple[int, ...], frozenset[int]]] = {}
_YEAR = re.compile(r"\d{4}")
_DAYS_CACHE: dict[tuple[frozenset[_Atom], frozenset[_Atom], bool], _Days] = {}


class _CronFields:
    """A parsed cron expression: the matcher on wall-clock ("local") seconds."""

    def __init__(self, text: str) -> None:
        parts = text.split()
        # Quartz and Spring put seconds first in 6 fields; supercronic reads the 6th as
        # a year, so a 6th field holding a year is a supercronic expression.
        # croniter differs: it reads 6 fields as seconds last (`*/10 * * * * *` is
        # every second of every tenth minute).
        if len(parts) == 6 and _YEAR.search(parts[5]):
            raise ScheduleError(_YEAR_MSG)
        if len(parts) not in (5, 6):
            hint = " (cronfile has no year field)" if len(parts) == 7 else ""
            raise ScheduleError(_FIELD_COUNT_MSG.format(len(parts)) + hint)
        self.has_seconds = len(parts) == 6
        if not self.has_seconds:
            parts.insert(0, "0")
        second, minute, hour, dom, month, dow = parts
        self.seconds = _parse_values(_SECOND, second)
        self.minutes = _parse_values(_MINUTE, minute)
        self.hours = _parse_values(_HOUR, hour)
        self.days, self.months, self.month_set = _day_fields(dom, month, dow)
        # Debian cron: a job whose minute and hour fields do not start with '*' is a
        # fixed-time job for daylight saving. cronsim: only for 5-field expressions;
        # 6-field ones are not Debian's and are always matched on real instants.
        self.fixed_time = (
            not self.has_seconds and not minute.startswith("*") and not hour.startswith("*")
        )
        self.first_time = self.hours[0] * 3600 + self.minutes[0] * 60 + self.seconds[0]
        self.last_time = self.hours[-1] * 3600 + self.minutes[-1] * 60 + self.seconds[-1]

    # Times of day, as seconds since midnight.

    def _time_ge(self, h: int, m: int, s: int) -> int | None:
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        i = bisect_left(hours, h)
        if i < len(hours) and hours[i] == h:
            j = bisect_left(minutes, m)
            if j < len(minutes) and minutes[j] == m:
                k = bisect_left(seconds, s)
                if k < len(seconds):
                    return h * 3600 + m * 60 + seconds[k]
                j += 1
            if j < len(minutes):
                return h * 3600 + minutes[j] * 60 + seconds[0]
            i += 1
        if i < len(hours):
            return hours[i] * 3600 + minutes[0] * 60 + seconds[0]
        return None

    def _time_le(self, h: int, m: int, s: int) -> int | None:
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        i = bisect_right(hours, h) - 1
        if i >= 0 and hours[i] == h:
            j = bisect_right(minutes, m) - 1
            if j >= 0 and minutes[j] == m:
                k = bisect_right(seconds, s) - 1
                if k >= 0:
                    return h * 3600 + m * 60 + seconds[k]
                j -= 1
            if j >= 0:
                return h * 3600 + minutes[j] * 60 + seconds[-1]
            i -= 1
        if i >= 0:
            return hours[i] * 3600 + minutes[-1] * 60 + seconds[-1]
        return None

    def first_ge(self, local: int) -> int | None:
        """The first matching wall time at or after ``local`` (local seconds)."""
        day_number, time_of_day = divmod(local, _DAY)
        ordinal = day_number + _EPOCH_ORD
        if ordinal > _MAX_ORD:
            return None
        if ordinal < _MIN_ORD:
            ordinal, time_of_day = _MIN_ORD, 0
        d = date.fromordinal(ordinal)
        year, month, day = d.year, d.month, d.day
        h, rest = divmod(time_of_day, 3600)
        m, s = divmod(rest, 60)
        limit = year + _SEARCH_YEARS
        months = self.month_set
        while True:
            if month in months:
                matching = self.days.for_month(year, month)
                i = bisect_left(matching, day)
                if i < len(matching):
                    if matching[i] == day:
                        t = self._time_ge(h, m, s)
                        if t is not None:
                            return _local(year, month, day, t)
                        i += 1
                    if i < len(matching):
                        return _local(year, month, matching[i], self.first_time)
            month += 1
            if month == 13:
                month = 1
                year += 1
                if year > limit or year > 9998:
                    return None
            day = 1
            h = m = s = 0

    def last_le(self, local: int) -> int | None:
        """The last matching wall time at or before ``local`` (local seconds)."""
        day_number, time_of_day = divmod(local, _DAY)
        ordinal = day_number + _EPOCH_ORD
        if ordinal < _MIN_ORD:
            return None
        if ordinal > _MAX_ORD:
            ordinal, time_of_day = _MAX_ORD, _DAY - 1
        d = date.fromordinal(ordinal)
        year, month, day = d.year, d.month, d.day
        h, rest = divmod(time_of_day, 3600)
        m, s = divmod(rest, 60)
        limit = year - _SEARCH_YEARS
        months = self.month_set
        while True:
            if month in months:
                matching = self.days.for_month(year, month)
                i = bisect_right(matching, day) - 1
                if i >= 0:
                    if matching[i] == day:
                        t = self._time_le(h, m, s)
                        if t is not None:
                            return _local(year, month, day, t)
                        i -= 1
                    if i >= 0:
                        return _local(year, month, matching[i], self.last_time)
            month -= 1
            if month == 0:
                month = 12
                year -= 1
                if year < limit or year < 2:
                    return None
            day = 31
            h, m, s = 23, 59, 59


def _local(year: int, month: int, day: int, time_of_day: int) -> int:
    return (date(year, month, day).toordinal() - _EPOCH_ORD) * _DAY + time_of_day


# Large enough for every distinct expression of a big repo: a cold `diff` parses each
# job's schedule three times (check, warnings, plan), and at 10,000 jobs a 4,096-entry
# LRU missed all three (12% of the run, issue 17).
@lru_cache(maxsize=1 << 16)
def _cron_fields(text: str) -> _CronFields:
    return _CronFields(text)


# -- schedules --------------------------------------------------------------------------


def _to_us(dt: datetime) -> int:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{dt!r} is naive: schedules need timezone-aware datetimes")
    return (dt - _EPOCH) // _US


class Schedule:
    """When a job fires. Subclasses implement ``_next_us``/``_prev_us`` on microseconds
    since the epoch; this class applies the job's jitter and converts datetimes."""

    expr: str
    kind: str
    tz: ZoneInfo
    fixed_time: bool = False
    has_seconds: bool = False
    #: Fired by an engine when it starts (``@reboot``), never by the clock: it has no
    #: fire times, and due/reconcile/pause/render ask this instead of reading the text.
    at_boot: bool = False
    #: Whether its fire times depend on ``created_at`` (`30m`, `in 2h`): the others are
    #: the same object whenever the job was created (JobSpec.build_schedule keeps one).
    relative: bool = False

    def __init__(self, expr: str, tz: ZoneInfo, jitter: timedelta, jitter_key: str) -> None:
        self.expr = expr
        self.tz = tz
        self.jitter = jitter
        #: The fixed delay every fire time gets: jitter_offset(jitter_key, jitter).
        self.offset = jitter_offset(jitter_key, jitter)
        self._shift = self.offset // _US

    def __repr__(self) -> str:
        extra = f", jitter offset {format_duration(self.offset)}" if self._shift else ""
        return f"<{type(self).__name__} {self.expr!r} in {self.tz.key}{extra}>"

    def _next_us(self, us: int) -> int | None:
        raise NotImplementedError

    def _prev_us(self, us: int) -> int | None:
        raise NotImplementedError

    def _out(self, us: int | None) -> datetime | None:
        if us is None:
            return None
        try:
            if us % 1_000_000 == 0:
                return datetime.fromtimestamp(us // 1_000_000, self.tz)
            return (_EPOCH + timedelta(microseconds=us)).astimezone(self.tz)
        except (OverflowError, ValueError, OSError):
            return None

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware, any zone), in ``self.tz``;
        None if the schedule never fires again."""
        found = self._next_us(_to_us(after) - self._shift)
        return None if found is None else self._out(found + self._shift)

    def prev_at_or_before(self, at: datetime) -> datetime | None:
        """The latest fire time at or before ``at`` (for catch-up); None if none."""
        found = self._prev_us(_to_us(at) - self._shift)
        return None if found is None else self._out(found + self._shift)

    def iter_after(self, after: datetime, n: int) -> list[datetime]:
        """Up to ``n`` fire times after ``after``, in order."""
        out: list[datetime] = []
        us = _to_us(after) - self._shift
        while len(out) < n:
            found = self._next_us(us)
            if found is None:
                break
            dt = self._out(found + self._shift)
            if dt is None:
                break
            out.append(dt)
            us = found
        return out


class CronSchedule(Schedule):
    """A cron expression or macro, on the wall clock of ``tz`` (Debian cron's rules)."""

    kind = "cron"

    def __init__(
        self, expr: str, fields: _CronFields, tz: ZoneInfo, jitter: timedelta, jitter_key: str
    ) -> None:
        super().__init__(expr, tz, jitter, jitter_key)
        self.fields = fields
        self.fixed_time = fields.fixed_time
        self.has_seconds = fields.has_seconds
        self._zone = _offsets(tz)

    def _next_us(self, us: int) -> int | None:
        found = self._first_ge(us // 1_000_000 + 1)
        return None if found is None else found * 1_000_000

    def _prev_us(self, us: int) -> int | None:
        found = self._last_le(us // 1_000_000)
        return None if found is None else found * 1_000_000

    def _first_ge(self, a: int) -> int | None:
        """The first fire instant (epoch seconds) at or after ``a``."""
        z = self._zone
        if z.constant is not None:
            wall = self.fields.first_ge(a + z.constant)
            return None if wall is None else wall - z.constant
        if self.fixed_time:
            return self._first_ge_fixed(a)
        return self._first_ge_real(a)

    def _last_le(self, b: int) -> int | None:
        z = self._zone
        if z.constant is not None:
            wall = self.fields.last_le(b + z.constant)
            return None if wall is None else wall - z.constant
        if self.fixed_time:
            return self._last_le_fixed(b)
        return self._last_le_real(b)

    # Debian cron: a job whose minute or hour starts with '*' is matched on real
    # instants. Between two offset changes, wall time and instant differ by a constant,
    # so search one such stretch at a time: a skipped wall time belongs to no stretch
    # (it never fires) and a repeated one belongs to two (it fires twice).
    # croniter differs: it fires `0 */2 * * *` at 03:00 after a 02:00-03:00 gap.
    # cronsim differs in zones that move by 30 minutes (Australia/Lord_Howe): it steps
    # whole hours across the change, lands on :30 and misses real times such as 02:52
    # for `52 * * * *` on 2025-10-05.

    def _first_ge_real(self, a: int) -> int | None:
        z, fields = self._zone, self.fields
        t = a
        while True:
            off = z.offset_at(t)
            wall = fields.first_ge(t + off)
            if wall is None:
                return None
            found = wall - off
            changes = z.changes(t, found)
            if not changes:
                return found
            t = changes[0][0]  # nothing fires in this stretch: go on from its end

    def _last_le_real(self, b: int) -> int | None:
        z, fields = self._zone, self.fields
        t = b
        while True:
            off = z.offset_at(t)
            wall = fields.last_le(t + off)
            if wall is None:
                return None
            found = wall - off
            changes = z.changes(found, t)
            if not changes:
                return found
            t = changes[-1][0] - 1  # nothing fired in this stretch: go back before it

    # Debian cron: a fixed-time job is matched on the wall clock. A wall time that a
    # spring-forward skips runs once, at the first instant after the jump; one that a
    # fall-back repeats runs once, at its first occurrence. That mapping of wall time
    # to instant (_resolve_wall) never goes backwards, so the first fire at or after
    # `a` is the image of the first wall time whose image is at or after `a`.
    # croniter differs: it runs a fixed-time job in the repeated hour twice.
    # cronsim differs when started in the second pass of a repeated hour: it matches
    # the wall clock from the start's wall time and can return the first pass, which
    # is before the start; ours is always after it.

    def _first_ge_fixed(self, a: int) -> int | None:
        z = self._zone
        wall = a + z.offset_at(a)
        changes = z.changes(a - 2 * _DAY, a)
        if changes:
            t, before, after = changes[-1]  # the last offset change at or before `a`
            if before < after and t == a:
                wall = t + before  # the skipped wall times all run at `a`
            elif before > after and a < t + (before - after):
                wall = t + before  # `a` is in the repeat: repeated times ran already
        found = self.fields.first_ge(wall)
        return None if found is None else _resolve_wall(z, found)

    def _last_le_fixed(self, b: int) -> int | None:
        z = self._zone
        wall = b + z.offset_at(b)
        changes = z.changes(b - 2 * _DAY, b)
        if changes:
            t, before, after = changes[-1]
            if before > after and b < t + (before - after):
                wall = t + before - 1  # the whole repeat ran at its first occurrence
        found = self.fields.last_le(wall)
        return None if found is None else _resolve_wall(z, found)


class IntervalSchedule(Schedule):
    """``every 30m``: fires at ``anchor + k * interval`` for k = 0, 1, 2, ... (elapsed
    time, so the timezone only decides how results are shown)."""

    kind = "interval"

    def __init__(
        self,
        expr: str,
        interval: timedelta,
        anchor: datetime,
        tz: ZoneInfo,
        jitter: timedelta,
        jitter_key: str,
    ) -> None:
        super().__init__(expr, tz, jitter, jitter_key)
        self.interval = interval
        self.anchor = anchor
        self._step = interval // _US
        self._anchor = _to_us(anchor)

    def _next_us(self, us: int) -> int | None:
        if us < self._anchor:
            return self._anchor
        return self._anchor + ((us - self._anchor) // self._step + 1) * self._step

    def _prev_us(self, us: int) -> int | None:
        if us < self._anchor:
            return None
        return self._anchor + (us - self._anchor) // self._step * self._step


class OnceSchedule(Schedule):
    """Fires once, at ``at`` (None when it is relative and the job has no creation time)."""

    kind = "once"

    def __init__(
        self, expr: str, at: datetime | None, tz: ZoneInfo, jitter: timedelta, jitter_key: str
    ) -> None:
        super().__init__(expr, tz, jitter, jitter_key)
        self.at = at
        self._at = None if at is None else _to_us(at)

    def _next_us(self, us: int) -> int | None:
        return self._at if self._at is not None and self._at > us else None

    def _prev_us(self, us: int) -> int | None:
        return self._at if self._at is not None and self._at <= us else None


class RebootSchedule(Schedule):
    """``@reboot``: the engine fires it once when it starts; it has no fire times."""

    kind = "reboot"
    at_boot = True

    def _next_us(self, us: int) -> int | None:
        return None

    def _prev_us(self, us: int) -> int | None:
        return None


# -- parse ------------------------------------------------------------------------------

_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")
# `30m`, `1h 30m`, `15 minutes`: read as a delay (and rejected with the forms that work).
_DELAY_SHAPE = re.compile(r"(\s*(\d+(\.\d+)?|\.\d+)\s*[a-z]+)+\s*")
_GARBAGE_MSG = (
    "{!r} is not a schedule: expected a cron expression (5 fields, or 6 with seconds "
    "first), a macro such as @daily, 'every 30m', a delay such as 30m or 'in 2h', or a "
    "date-time such as 2026-06-01T09:00"
)


def _localize(dt: datetime, tz: ZoneInfo) -> datetime:
    """``dt`` as an aware instant; a naive ``dt`` is a wall time in ``tz`` resolved like a
    fixed-time cron job (a skipped time becomes the jump, a repeated one its first
    occurrence)."""
    if dt.tzinfo is not None and dt.utcoffset() is not None:
        return dt
    wall = (dt.toordinal() - _EPOCH_ORD) * _DAY + dt.hour * 3600 + dt.minute * 60 + dt.second
    instant = _resolve_wall(_offsets(tz), wall)
    exact = wall - _offsets(tz).offset_at(instant) == instant
    us = instant * 1_000_000 + (dt.microsecond if exact else 0)
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def _duration(text: str, what: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise ScheduleError(f"{what}: {e}") from None


def parse(
    expr: str,
    timezone: str = "UTC",
    *,
    anchor: datetime | None = None,
    created_at: datetime | None = None,
    jitter: timedelta = timedelta(0),
    jitter_key: str = "",
) -> Schedule:
    """Read a schedule (docs/design.md section 3). Raises :class:`ScheduleError`.

    ``anchor`` is the first fire of an interval (default: the Unix epoch);
    ``created_at`` is when a job was first applied, the start of `30m`/`in 2h`;
    ``jitter`` shifts every fire time by ``jitter_offset(jitter_key, jitter)``.
    A schedule written for another tool (`@every 5m`, a systemd calendar) fails with
    the cronfile form in the message (suggest.schedule_hint).
    """
    try:
        return _parse(expr, timezone, anchor=anchor, created_at=created_at, jitter=jitter, jitter_key=jitter_key)
    except ScheduleError as e:
        if "timezone" in str(e):
            raise
        from .suggest import schedule_hint

        hint = schedule_hint(expr)
        if hint is None:
            raise
        raise ScheduleError(f"{e} ({hint})") from None


def _parse(
    expr: str,
    timezone: str,
    *,
    anchor: datetime | None,
    created_at: datetime | None,
    jitter: timedelta,
    jitter_key: str,
) -> Schedule:
    if not isinstance(expr, str):
        raise ScheduleError(f"a schedule is a string, not {type(expr).__name__}")
    tz = get_zone(timezone)
    if jitter < _ZERO:
        raise ScheduleError(f"jitter must not be negative, got -{format_duration(-jitter)}")
    text = expr.strip()
    if not text:
        raise ScheduleError("the schedule is empty")
    lower = text.lower()
    tokens = lower.split()

    if lower.startswith("@"):
        if lower == "@reboot":
            return RebootSchedule(text, tz, jitter, jitter_key)
        macro = _MACROS.get(lower)
        if macro is None:
            raise ScheduleError(
                f"unknown macro {text!r} (expected one of @reboot, {', '.join(_MACROS)})"
            )
        return CronSchedule(text, _cron_fields(macro), tz, jitter, jitter_key)

    if tokens[0] == "every":
        rest = text[len("every") :].strip()
        if not rest:
            raise ScheduleError("'every' needs an interval, as in 'every 30m'")
        interval = _duration(rest, "every")
        if interval < _SEC:
            raise ScheduleError(f"interval must be at least 1s, got {format_duration(interval)}")
        start = _EPOCH if anchor is None else _localize(anchor, tz)
        return IntervalSchedule(text, interval, start, tz, jitter, jitter_key)

    if tokens[0] == "in" or _DELAY_SHAPE.fullmatch(lower):
        rest = text[len("in") :].strip() if tokens[0] == "in" else text
        if not rest:
            raise ScheduleError("'in' needs a delay, as in 'in 2h'")
        try:
            delay = parse_duration(rest)
        except ValueError as e:
            if tokens[0] == "in":
                raise ScheduleError(f"in: {e}") from None
            raise ScheduleError(_GARBAGE_MSG.format(text)) from None
        if delay < timedelta(seconds=1):
            # `in 0s` would fire at the apply instant itself, which is never strictly after it.
            raise ScheduleError(f"the delay must be at least 1s, got {format_duration(delay)}")
        at = None
        if created_at is not None:
            at = (_EPOCH + timedelta(microseconds=_to_us(created_at) + delay // _US)).astimezone(tz)
        once = OnceSchedule(text, at, tz, jitter, jitter_key)
        once.relative = True
        return once

    if _DATE_START.match(text):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{text!r} is not a valid date-time (e.g. 2026-06-01T09:00 or 2026-06-01T09:00:00Z)"
            ) from None
        try:
            at = _localize(when, tz).astimezone(tz)
        except (OverflowError, ValueError):
            raise ScheduleError(f"{text!r} is out of the range of dates cronfile handles") from None
        return OnceSchedule(text, at, tz, jitter, jitter_key)

    if len(tokens) == 1:
        raise ScheduleError(_GARBAGE_MSG.format(text))
    return CronSchedule(text, _cron_fields(" ".join(text.split())), tz, jitter, jitter_key)


# -- jitter and warnings ----------------------------------------------------------------


def jitter_offset(key: str, jitter: timedelta) -> timedelta:
    """A fixed delay in ``[0, jitter)`` derived from ``sha256(key)``: the same job name
    gives the same delay on every host. Whole seconds when ``jitter`` is 1s or more."""
    if jitter <= _ZERO:
        return _ZERO
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    total_us = jitter // _US
    if total_us >= 1_000_000:
        whole_seconds = -(-total_us // 1_000_000)  # ceil: every choice is < jitter
        return timedelta(seconds=h % whole_seconds)
    return timedelta(microseconds=h % total_us)


def _add_months(dt: datetime, months: int) -> datetime:
    month0 = dt.month - 1 + months
    year, month = dt.year + month0 // 12, month0 % 12 + 1
    return dt.replace(year=year, month=month, day=min(dt.day, _month_length(year, month)))


def _hhmm(local: int) -> str:
    t = local % _DAY
    text = f"{t // 3600:02d}:{t // 60 % 60:02d}"
    return text + f":{t % 60:02d}" if t % 60 else text


def _listing(walls: list[int], more: int) -> str:
    words = [_hhmm(w) for w in walls]
    if more:
        return ", ".join(words) + f" and {more} more times"
    return _join(words, "and")


def dst_warnings(schedule: Schedule, start: datetime, months: int = 12) -> list[str]:
    """For a fixed-time cron job: one message per daylight-saving change in
    ``[start, start + months)`` where the job has a fire time in the skipped or
    repeated local hour, saying what Debian cron's rule makes of it."""
    if not isinstance(schedule, CronSchedule) or not schedule.fixed_time:
        return []
    z = schedule._zone
    if z.constant is not None:
        return []
    a = _to_us(start) // 1_000_000
    b = _to_us(_add_months(start.astimezone(UTC), months)) // 1_000_000
    zone = schedule.tz.key
    out = []
    for t, before, after in z.changes(a - 1, b - 1):
        lo, hi = t + min(before, after), t + max(before, after)  # the affected wall times
        walls: list[int] = []
        more = 0
        wall = schedule.fields.first_ge(lo)
        while wall is not None and wall < hi:
            if len(walls) < 3:
                walls.append(wall)
            else:
                more += 1
            wall = schedule.fields.first_ge(wall + 1)
        if not walls:
            continue
        day = date.fromordinal(walls[0] // _DAY + _EPOCH_ORD).isoformat()
        several = len(walls) > 1
        if after > before:
            out.append(
                f"fires at {_listing(walls, more)} on {day}, "
                f"{'times' if several else 'a time'} skipped by daylight saving in {zone}: "
                f"{'they run' if several else 'it runs'} once at {_hhmm(hi)} instead"
            )
        else:
            abbr = datetime.fromtimestamp(walls[0] - before, schedule.tz).tzname()
            first = "its first occurrence" if several else f"the first {_hhmm(walls[0])}"
            out.append(
                f"fires at {_listing(walls, more)} on {day}, "
                f"{'times' if several else 'a time'} repeated by daylight saving in {zone}: "
                f"{'each runs' if several else 'it runs'} once, at {first} ({abbr})"
            )
    return out
