"""The time texts of ``cronfile status`` (and the plan's local times): light to import,
for the table kept ready to print (cronfile/statusview.py), which imports neither the
specs nor the state to print it. render.py uses them from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ValueError, OSError, LookupError):
        return UTC


def local_time(dt: datetime | None, tz: str | None, *, seconds: bool | None = None) -> str:
    """``2026-03-29 09:00 CEST``; seconds only when the instant has them."""
    if dt is None:
        return "none"
    zone = _ZONES.get(tz)
    if zone is None:
        zone = _ZONES[tz] = _zone(tz)
    local = dt.astimezone(zone)
    if seconds is None:
        seconds = bool(local.second or local.microsecond)
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(fmt)} {local.tzname()}"


def _usage_line(r: Mapping[str, Any]) -> str | None:
    """``brief: 1234 in + 56 out tokens, 0.0031 USD; budget left: 18710 of 20000 tokens``."""
    u = r.get("usage_24h")
    if u is None or not (u["input_tokens"] or u["output_tokens"] or r.get("budget")):
        return None
    text = f"  {r['name']}: {u['input_tokens']} in + {u['output_tokens']} out tokens"
    if u.get("cost_usd") is not None:
        text += f", {u['cost_usd']:.4f} USD"
    left = r.get("budget_left")
    if left:
        budget = r.get("budget") or {}
        parts = []
        if "tokens" in left:
            parts.append(f"{max(left['tokens'], 0)} of {budget.get('tokens_per_day')} tokens")
        if "cost_usd" in left:
            parts.append(f"{max(left['cost_usd'], 0):.4f} of {budget.get('cost_per_day')} USD")
        text += "; budget left: " + ", ".join(parts)
        if any(v <= 0 for v in left.values()):
            text += " (used up: runs are refused)"
    return text


_ZONES: dict[str | None, tzinfo] = {}  # name -> _zone(name), for this process


def _delta(td: timedelta) -> str:
    """``durations.humanize_delta(td)``, twice as fast (status calls it twice a job)."""
    a = -td if td.days < 0 else td
    return _in_or_ago(a.days * 86_400 + a.seconds, td > _ZERO)  # whole seconds, truncated, as humanize_delta's


def delta_us(us: int) -> str:
    """``_delta(timedelta(microseconds=us))``, from the microseconds themselves."""
    return _in_or_ago((-us if us < 0 else us) // 1_000_000, us > 0)


def _in_or_ago(total: int, future: bool) -> str:
    if total == 0:
        return "now"
    if total >= 86_400:
        big, small = f"{total // 86_400}d", total % 86_400 // 3_600
        text = f"{big} {small}h" if small else big
    elif total >= 3_600:
        big, small = f"{total // 3_600}h", total % 3_600 // 60
        text = f"{big} {small}m" if small else big
    elif total >= 60:
        big, small = f"{total // 60}m", total % 60
        text = f"{big} {small}s" if small else big
    else:
        text = f"{total}s"
    return f"in {text}" if future else f"{text} ago"


_ZERO = timedelta(0)




def end_table(out: list[str], usage_lines: Sequence[str], warnings: Sequence[str]) -> str:
    """The status table's lines ``out``, then its agent usage and its warnings (painted
    already, if at all), as one text: render.render_status's end and statusview.render's."""
    if usage_lines:
        out.append("")
        out.append("agent usage, last 24 hours:")
        out.extend(usage_lines)
    if warnings:
        out.append("")
        out.extend(warnings)
    return "\n".join(out)
