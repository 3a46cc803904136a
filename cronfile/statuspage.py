"""The read-only status page (``/`` of ``cronfile daemon --http``): server-rendered HTML
with its style inline and no script, no font, no image from elsewhere.

Pure: rows (render.status_rows), each job's recent runs and next fires, and ``now`` in;
a string out. Every value shown passes through ``masker`` and then HTML escaping, so a
secret that reached a run's message is shown as ``***``, as in the stored logs.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .secrets import Masker
from .spec import FAILURES, Status
from .state import JobStatus

if TYPE_CHECKING:
    from .schedule import Schedule

__all__ = ["HORIZON", "MAX_MARKS", "REFRESH_S", "log_url", "next_fires", "render_log", "render_page"]

REFRESH_S = 30
HORIZON = timedelta(hours=24)
# Past this many fires in 24 hours (an every-minute job has 1,440) the timeline shows
# a band instead of a mark each.
MAX_MARKS = 96

# "running" is not an outcome: a run in flight has no history line yet.
_STATUS_CLASS: dict[str, str] = {
    Status.success: "ok",
    Status.silent: "quiet",
    "running": "run",
    Status.skipped: "quiet",
    Status.missed: "warn",
    Status.cancelled: "warn",
    **dict.fromkeys(FAILURES, "bad"),
}
_STATE_CLASS: dict[str, str] = {JobStatus.scheduled: "ok", JobStatus.paused: "warn", JobStatus.completed: "quiet"}

CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--mut:#5b6470;--line:#d8dde3;--card:#f6f8fa;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--run:#0969da;--quiet:#6e7781}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mut:#9198a1;--line:#30363d;
--card:#161b22;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--run:#58a6ff;--quiet:#8b949e}}
*{box-sizing:border-box}
body{margin:0;padding:16px;background:var(--bg);color:var(--fg);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;margin-bottom:12px}
h1{font-size:20px;margin:0}
.meta{color:var(--mut);font-size:13px}
.banner{padding:8px 12px;border-radius:6px;margin:8px 0;border:1px solid var(--bad);color:var(--bad)}
.jobs{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:12px}
.job{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;min-width:0}
.job h2{font-size:16px;margin:0 0 6px;display:flex;flex-wrap:wrap;gap:6px;align-items:center;overflow-wrap:anywhere}
.badge{font-size:12px;font-weight:600;padding:1px 8px;border-radius:10px;border:1px solid currentColor}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 8px;font-size:14px}
dt{color:var(--mut)}dd{margin:0;min-width:0;overflow-wrap:anywhere}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}.run{color:var(--run)}.quiet{color:var(--quiet)}
.tl{position:relative;height:22px;margin:4px 0 2px;border-radius:4px;background:var(--bg);border:1px solid var(--line)}
.tl i{position:absolute;top:2px;bottom:2px;width:2px;margin-left:-1px;background:var(--run);border-radius:1px}
.tl b{position:absolute;top:6px;bottom:6px;left:0;right:0;background:var(--run);opacity:.55;border-radius:2px}
.axis{display:flex;justify-content:space-between;color:var(--mut);font-size:11px;margin-bottom:8px}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;color:var(--mut);font-weight:500;border-bottom:1px solid var(--line)}
td,th{padding:2px 6px 2px 0;white-space:nowrap}
td.msg{white-space:normal;overflow-wrap:anywhere;color:var(--mut)}
a{color:var(--run)}
.none{color:var(--mut);font-size:13px}
@media (max-width:520px){body{padding:8px;font-size:14px}.hide-sm{display:none}}
"""


def _e(masker: Masker, value: Any) -> str:
    return html.escape(masker.mask("" if value is None else str(value)))


def log_url(job: str, run_id: str) -> str:
    return f"/jobs/{quote(job, safe='')}/runs/{quote(run_id, safe='')}/log"


def next_fires(schedule: Schedule, after: datetime, end: datetime, limit: int = MAX_MARKS + 1) -> list[datetime]:
    """The fires of ``schedule`` (schedule.Schedule) after ``after`` up to ``end``, at
    most ``limit`` of them (more means "too many to draw one by one")."""
    out: list[datetime] = []
    t = after
    while len(out) < limit:
        nxt = schedule.next_after(t)
        if nxt is None or nxt > end:
            break
        out.append(nxt)
        t = nxt
    return out


def _local(dt: datetime | None, zone: Any) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _relative(dt: datetime, now: datetime) -> str:
    from .durations import humanize_delta

    return humanize_delta(dt - now)


def _parse(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _timeline(fires: Sequence[datetime], now: datetime, zone: Any) -> str:
    span = HORIZON.total_seconds()
    if not fires:
        return '<div class="tl" title="no fire in the next 24 hours"></div>'
    if len(fires) > MAX_MARKS:
        gap = (fires[1] - fires[0]).total_seconds() / 60 if len(fires) > 1 else 0
        title = f"more than {MAX_MARKS} fires in 24 hours (every {gap:g} min)"
        return f'<div class="tl" title="{html.escape(title)}"><b></b></div>'
    marks = []
    for f in fires:
        pct = min(100.0, max(0.0, 100.0 * (f - now).total_seconds() / span))
        marks.append(f'<i style="left:{pct:.2f}%" title="{html.escape(_local(f, zone))}"></i>')
    return '<div class="tl">' + "".join(marks) + "</div>"


def _axis(now: datetime, zone: Any) -> str:
    labels = [(now + timedelta(hours=h)).astimezone(zone).strftime("%H:%M") for h in (0, 6, 12, 18, 24)]
    labels[0] = "now"
    return '<div class="axis">' + "".join(f"<span>{html.escape(x)}</span>" for x in labels) + "</div>"


def _runs_table(job: str, runs: Sequence[Mapping[str, Any]], zone: Any, masker: Masker) -> str:
    if not runs:
        return '<p class="none">no runs yet</p>'
    rows = []
    for r in reversed(runs):
        status = str(r.get("status") or "?")
        cls = _STATUS_CLASS.get(status, "")
        when = _parse(r.get("scheduled_for")) or _parse(r.get("started_at"))
        late = r.get("lateness_ms")
        late_text = f"{late:.0f} ms" if isinstance(late, int | float) else "-"
        dur = r.get("duration_s")
        dur_text = f"{dur:.1f} s" if isinstance(dur, int | float) else "-"
        rid = str(r.get("run_id") or "")
        link = f'<a href="{html.escape(log_url(job, rid))}">log</a>' if rid and r.get("log_path") else '<span class="quiet">-</span>'
        msg = r.get("message") if status != Status.success else ""
        rows.append(
            "<tr>"
            f'<td title="{_e(masker, rid)}">{_e(masker, when.astimezone(zone).strftime("%m-%d %H:%M:%S") if when else "-")}</td>'
            f'<td class="{cls}">{_e(masker, status)}</td>'
            f"<td>{late_text}</td>"
            f'<td class="hide-sm">{dur_text}</td>'
            f"<td>{link}</td>"
            f'<td class="msg hide-sm">{_e(masker, msg or "")}</td>'
            "</tr>"
        )
    head = '<tr><th>when</th><th>status</th><th>late</th><th class="hide-sm">took</th><th>log</th><th class="hide-sm"></th></tr>'
    return f"<table>{head}{''.join(rows)}</table>"


def render_page(
    rows: Sequence[Mapping[str, Any]],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    fires: Mapping[str, Sequence[datetime]],
    now: datetime,
    *,
    zones: Mapping[str, Any],
    title: str,
    meta: Sequence[str] = (),
    problems: Sequence[str] = (),
    masker: Masker | None = None,
) -> str:
    """The whole page. ``rows``: render.status_rows; ``runs``: each job's recent runs
    (oldest first); ``fires``: each job's next fires (next_fires); ``zones``: each job's
    ZoneInfo; ``meta``: lines for the header; ``problems``: shown as a banner."""
    masker = masker or Masker()
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        f"<title>{_e(masker, title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{_e(masker, title)}</h1>",
    ]
    out += [f'<span class="meta">{_e(masker, m)}</span>' for m in meta]
    out.append("</header>")
    for p in problems:
        out.append(f'<div class="banner">{_e(masker, p)}</div>')
    if not rows:
        out.append('<p class="none">no jobs applied yet</p>')
    out.append('<main class="jobs">')
    for row in rows:
        name = str(row["name"])
        zone = zones[name]
        state = row.get("state") or "not applied"
        state_cls = _STATE_CLASS.get(str(state), "bad")
        badges = [f'<span class="badge {state_cls}">{_e(masker, state)}</span>']
        if row.get("drift"):
            badges.append(f'<span class="badge warn" title="the files differ from the applied set: run cronfile diff">{_e(masker, "drift: " + str(row["drift"]))}</span>')
        if row.get("running"):
            badges.append(f'<span class="badge run">{int(row["running"])} running</span>')
        if row.get("overdue"):
            badges.append('<span class="badge bad">overdue</span>')
        nxt = _parse(row.get("next_run"))
        nxt_text = f"{_local(nxt, zone)} ({_relative(nxt, now)})" if nxt else "-"
        job_fires = fires.get(name, ())
        out.append(f'<section class="job" id="job-{html.escape(name)}">')
        out.append(f"<h2>{_e(masker, name)} {''.join(badges)}</h2>")
        out.append(
            "<dl>"
            f"<dt>schedule</dt><dd><code>{_e(masker, row.get('schedule'))}</code></dd>"
            f"<dt>zone</dt><dd>{_e(masker, row.get('timezone'))}</dd>"
            f"<dt>next</dt><dd>{_e(masker, nxt_text)}</dd>"
            f"<dt>runs</dt><dd>{int(row.get('run_count') or 0)}"
            f"{'' if len(job_fires) <= MAX_MARKS else f'; {MAX_MARKS}+ fires in 24 h'}</dd>"
            "</dl>"
        )
        out.append(_timeline(job_fires, now, zone))
        out.append(_axis(now, zone))
        out.append(_runs_table(name, runs.get(name, ()), zone, masker))
        out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out)


def render_log(job: str, run_id: str, text: str, *, masker: Masker | None = None) -> str:
    """One run's log as a page (the same masking; the text is escaped, never markup)."""
    masker = masker or Masker()
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(masker, job)} {_e(masker, run_id)}</title>"
        f"<style>{CSS}pre{{white-space:pre-wrap;overflow-wrap:anywhere;font:13px ui-monospace,Menlo,monospace}}</style>"
        f'</head><body><header><h1>{_e(masker, job)}</h1><span class="meta">run {_e(masker, run_id)}</span>'
        '<a href="/">back</a></header>'
        f"<pre>{_e(masker, text)}</pre></body></html>"
    )
