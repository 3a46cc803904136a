"""Text for people: the plan (diff/apply) and the status table.

Pure: values in, a string out; printing a plan changes nothing (octodns' habit). Colour
is an argument, never sniffed here. Times are shown on the job's own wall clock
(``2026-03-29 09:00 CEST``), since that is how its schedule is written.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from .clock import iso, parse_iso
from .durations import parse_duration
from .permissions import widening
from .reconcile import Action, Change, Plan
from .spec import FAILURES, JobSpec, Status
from .state import JobState, JobStatus, State
from .statustext import _ZONES, _delta, _usage_line, _zone, end_table, local_time
from .usage import Usage, budget_left

__all__ = ["render_plan", "render_status", "status_rows"]

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"

_HEAD = {
    Action.create: ("+", GREEN),
    Action.update: ("~", YELLOW),
    Action.delete: ("-", RED),
}
_UNSET = object()
_INDENT = "  "

# Status marks for the RECENT column.
_OK = "✓"
_BAD = "✗"
_QUIET = "·"
RECENT_N = 10


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color and text else text


# -- the plan --------------------------------------------------------------------------


# json.dumps(ensure_ascii=False, separators=(", ", ": ")), one encoder for every value.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def _value(v: Any) -> str:
    """A compact, JSON-ish rendering of one spec value."""
    if v is _UNSET:
        return "(unset)"
    return _COMPACT.encode(v)


def _is_multiline(*values: Any) -> bool:
    return any(isinstance(v, str) and "\n" in v.rstrip("\n") for v in values)


def _text_diff(name: str, field: str, old: Any, new: Any, color: bool) -> list[str]:
    """A unified diff of a changed multi-line prompt or shell script, indented."""
    a = "" if old is _UNSET else str(old)
    b = "" if new is _UNSET else str(new)
    out = [f"{_INDENT}{field}:"]
    for line in difflib.unified_diff(
        a.splitlines(),
        b.splitlines(),
        fromfile=f"{name}.{field} (applied)",
        tofile=f"{name}.{field} (jobs.d)",
        lineterm="",
    ):
        if line.startswith(("+++", "---")):
            painted = _paint(line, BOLD, color)
        elif line.startswith("@@"):
            painted = _paint(line, CYAN, color)
        elif line.startswith("+"):
            painted = _paint(line, GREEN, color)
        elif line.startswith("-"):
            painted = _paint(line, RED, color)
        else:
            painted = line
        out.append(f"{_INDENT * 2}{painted}")
    return out


def _field_lines(change: Change, field: str, color: bool) -> list[str]:
    before = change.before or {}
    after = change.after or {}
    old = before.get(field, _UNSET)
    new = after.get(field, _UNSET)
    if field == "permissions":  # unset is the read-only floor: say so
        old = "read-only (default)" if old is _UNSET and "prompt" in before else old
        new = "read-only (default)" if new is _UNSET and "prompt" in after else new
    if _is_multiline(old, new):
        return _text_diff(change.name, field, old, new, color)
    if isinstance(old, Mapping) or isinstance(new, Mapping):
        # One line per changed key (env, labels, context): a long mapping on one line
        # hides which key moved. ${VAR} references are shown as written; they are names,
        # not values.
        om = old if isinstance(old, Mapping) else {}
        nm = new if isinstance(new, Mapping) else {}
        lines = []
        for key in sorted(set(om) | set(nm)):
            o, n = om.get(key, _UNSET), nm.get(key, _UNSET)
            if o != n:
                lines.append(f"{_INDENT}{field}.{key}: {_value(o)} -> {_value(n)}")
        if not lines:  # e.g. {} -> unset
            lines.append(f"{_INDENT}{field}: {_value(old)} -> {_value(new)}")
        return lines
    return [f"{_INDENT}{field}: {_value(old)} -> {_value(new)}"]


def _what(data: Mapping[str, Any]) -> str:
    """One line saying what a job runs, for a create."""
    for key in ("prompt", "shell"):
        if isinstance(data.get(key), str):
            text = data[key].strip()
            split = text.splitlines()
            first = split[0] if text else ""
            more = len(split) - 1
            if len(first) > 60:
                first = first[:57] + "..."
            suffix = f" (+{more} more line{'s' if more != 1 else ''})" if more > 0 else ""
            label = f"{key} ({data['agent']})" if key == "prompt" and data.get("agent") else key
            return f"{label}: {_value(first)}{suffix}"
    if "command" in data:
        return f"command: {_value(data['command'])}"
    return ""


def _guard_off(change: Change) -> bool:
    after = change.after or {}
    before = change.before or {}
    if after.get("allow_injection_risk") is not True:
        return False
    return change.action is Action.create or before.get("allow_injection_risk") is not True


_WIDER = {
    "workspace-write": "it may now edit files in its workdir",
    "full": "no sandbox and no approvals: anything the user running cronfile may do",
}


def render_plan(plan: Plan, *, color: bool, tz_of: Callable[[str], str] | None = None) -> str:
    """The plan as ``diff`` and ``apply`` print it: one block per changed job, then the
    summary line. ``tz_of(name)`` overrides the zone times are shown in (default: the
    job's own ``timezone``)."""
    if not plan.has_changes:
        n = plan.counts["unchanged"]
        return f"No changes: {n} job{'s' if n != 1 else ''} up to date."
    lines: list[str] = []
    for c in plan.changes:
        if c.action is Action.unchanged:
            continue
        sym, code = _HEAD[c.action]
        lines.append(_paint(f"{sym} {c.action} {c.name}", BOLD + code, color))
        tz_before = tz_of(c.name) if tz_of else (c.before or c.after or {}).get("timezone")
        tz_after = tz_of(c.name) if tz_of else (c.after or c.before or {}).get("timezone")
        if c.action is Action.create:
            data = c.after or {}
            lines.append(f"{_INDENT}schedule: {data.get('schedule')} ({tz_after or 'UTC'})")
            what = _what(data)
            if what:
                lines.append(f"{_INDENT}{what}")
            if c.next_run_after is not None:
                lines.append(f"{_INDENT}next run: {local_time(c.next_run_after, tz_after)}")
        elif c.action is Action.update:
            for f in c.fields:
                lines.extend(_field_lines(c, f, color))
            if c.next_run_before != c.next_run_after:
                lines.append(
                    f"{_INDENT}next run: {local_time(c.next_run_before, tz_before)}"
                    f" -> {local_time(c.next_run_after, tz_after)}"
                )
            elif c.next_run_after is not None:
                lines.append(f"{_INDENT}next run: {local_time(c.next_run_after, tz_after)} (kept)")
        elif c.action is Action.delete and c.next_run_before is not None:
            lines.append(f"{_INDENT}next run: {local_time(c.next_run_before, tz_before)} -> none")
        if _guard_off(c):
            lines.append(
                _INDENT
                + _paint(
                    "! injection guard OFF (allow_injection_risk: true): this prompt is not "
                    "scanned for injection phrases",
                    BOLD + RED,
                    color,
                )
            )
        wider = widening(c.before, c.after) if c.action is not Action.delete else None
        if wider:
            lines.append(
                _INDENT
                + _paint(
                    f"! permissions WIDENED: {wider['from']} -> {wider['to']}: this agent may "
                    f"do more unattended ({_WIDER[wider['to']]})",
                    BOLD + RED,
                    color,
                )
            )
        for note in c.notes:
            lines.append(f"{_INDENT}{note}")
    lines.append("")
    lines.append(plan.summary())
    return "\n".join(lines)


# -- status ----------------------------------------------------------------------------


def _deadline(spec_data: Mapping[str, Any]) -> timedelta:
    value = spec_data.get("starting_deadline", 60)
    try:
        found = _DEADLINES.get(value)
    except TypeError:  # (not hashable: parse_duration says what it makes of it)
        found = None
    if found is not None:
        return found
    try:
        found = parse_duration(value)
    except (ValueError, TypeError):
        found = timedelta(minutes=1)
    with suppress(TypeError):
        if len(_DEADLINES) < 256:
            _DEADLINES[value] = found
    return found


_DEADLINES: dict[Any, timedelta] = {}  # starting_deadline -> its duration (status: once per job)


LAST_RUN_KEYS = ("run_id", "status", "started_at", "finished_at")  # a row's last_run
_NO_RUNS: tuple[tuple[str, ...], None] = ((), None)


def run_summary(runs: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """What ``status`` shows of a job's merged runs (oldest first): the statuses of the
    last RECENT_N runs with one, and the last run that started (its id, status, start
    and end), the row's ``last_run`` when the state has none."""
    history = [r for r in runs if r.get("status")]
    last = None
    for rec in reversed(history):
        if rec.get("started_at") and rec.get("status"):
            last = {k: rec.get(k) for k in LAST_RUN_KEYS}
            break
    return tuple(str(r["status"]) for r in history[-RECENT_N:]), last


class Applied(NamedTuple):
    """What ``status`` shows of an applied job, in plain values (what the status memo
    keeps between commands: cronfile/statusmemo.py). Made by ``applied``."""

    spec: dict[str, Any]  # the spec's schedule, timezone, budget, starting_deadline; prompt: True
    spec_hash: str
    state: str
    next_run: str | None  # iso
    next_run_us: int | None  # the same instant in microseconds since the epoch (overdue)
    run_count: int
    last_run: dict[str, Any] | None
    running: int
    pause: dict[str, Any] | None


_APPLIED_SPEC = ("schedule", "timezone", "budget", "starting_deadline")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def applied(js: JobState) -> Applied:
    spec = {k: js.spec[k] for k in _APPLIED_SPEC if k in js.spec}
    if "prompt" in js.spec:
        spec["prompt"] = True  # (status asks only whether there is one)
    lr = js.last_run
    last = None if lr is None else {"run_id": lr.run_id, "status": str(lr.status), "started_at": iso(lr.started_at), "finished_at": iso(lr.finished_at)}
    next_us = None if js.next_run is None else (js.next_run - _EPOCH) // _US
    pause = js.pause.encode() if js.pause is not None else None
    return Applied(spec, js.spec_hash, str(js.state), iso(js.next_run), next_us, js.run_count, last, len(js.running), pause)


def status_rows(
    project_specs: Sequence[JobSpec] | None,
    state: State | None,
    histories: Mapping[str, list[dict[str, Any]]],
    now: datetime,
    *,
    engine_running: bool,
    usage: Mapping[str, Usage] | None = None,
    summaries: Mapping[str, tuple[tuple[str, ...], dict[str, Any] | tuple[Any, ...] | None]] | None = None,
    jobs: Mapping[str, Applied] | None = None,
) -> list[dict[str, Any]]:
    """One dict per job (docs/design.md 7's ``status --json`` keys, plus recent, overdue,
    drift, running; for agent jobs whose ``usage`` over the last 24 hours is given,
    usage_24h, and budget and budget_left when the job has a budget), sorted by name:
    the applied jobs and the jobs in the files.

    ``project_specs=None`` means the files could not be read: no drift is reported then
    (an unreadable jobs.d is not "every job deleted"). ``summaries`` (job -> run_summary
    of its runs) stands for ``histories``, and ``jobs`` (name -> ``applied``) for
    ``state``, when given (cronfile/statusmemo.py)."""
    if jobs is None:
        jobs = {name: applied(js) for name, js in (state.jobs.items() if state is not None else ())}
    declared = {s.name: s for s in project_specs or ()}
    names = sorted(set(jobs) | set(declared))
    now_us = (now - _EPOCH) // _US
    rows = []
    for name in names:
        js = jobs.get(name)
        spec = declared.get(name)
        data: Mapping[str, Any] = js.spec if js is not None else (spec.data if spec else {})
        recent, last = summaries.get(name, _NO_RUNS) if summaries is not None else run_summary(histories.get(name, ()))
        drift = None
        if project_specs is not None:
            if js is None:
                drift = "not applied"
            elif spec is None:
                drift = "not in files"
            elif spec.spec_hash != js.spec_hash:
                drift = "changed"
        overdue = bool(
            js is not None
            and not engine_running
            and js.state == JobStatus.scheduled
            and js.next_run_us is not None
            and now_us - js.next_run_us > _deadline(js.spec) // _US
        )
        rows.append(
            {
                "name": name,
                "schedule": data.get("schedule"),
                "timezone": data.get("timezone") or "UTC",
                "state": js.state if js is not None else None,
                "next_run": js.next_run if js is not None else None,
                "run_count": js.run_count if js is not None else 0,
                "last_run": js.last_run if js is not None and js.last_run is not None else (dict(zip(LAST_RUN_KEYS, last, strict=True)) if isinstance(last, tuple) else last),
                "recent": list(recent),
                "overdue": overdue,
                "drift": drift,
                "running": js.running if js is not None else 0,
                # `cronfile pause`: {at, user, host, reason, via}, or null (cronfile/pause.py)
                "pause": js.pause if js is not None else None,
            }
        )
        used = (usage or {}).get(name)
        if used is not None:
            rows[-1]["usage_24h"] = used.to_json()
            budget = data.get("budget")
            if isinstance(budget, Mapping) and budget:
                rows[-1]["budget"] = dict(budget)
                rows[-1]["budget_left"] = budget_left(budget, used)
    return rows


_MARKS = {s: (_OK if s == Status.success else _BAD if s in FAILURES else _QUIET) for s in Status}  # status -> its mark


def _mark(status: str) -> tuple[str, str]:
    if status == Status.success:
        return _OK, GREEN
    if status in FAILURES:
        return _BAD, RED
    return _QUIET, DIM


def _when(dt: datetime | None, tz: str | None, now: datetime) -> str:
    if dt is None:
        return "-"
    zone = _ZONES.get(tz)
    if zone is None:
        zone = _ZONES[tz] = _zone(tz)
    # (what strftime("%Y-%m-%d %H:%M") gives, at a tenth of its cost: once per job)
    return f"{dt.astimezone(zone).isoformat(' ')[:16]} ({_delta(dt - now)})"


_STATE_COLOR: dict[str, str] = {
    JobStatus.scheduled: GREEN,
    JobStatus.paused: YELLOW,
    JobStatus.completed: DIM,
}


def render_status(rows: list[dict[str, Any]], *, color: bool, now: datetime) -> str:
    """The ``status`` table, then one ``!`` line per overdue or drifted job."""
    if not rows:
        return "No jobs: add one to jobs.d and run `cronfile apply`."
    header = ("NAME", "SCHEDULE", "TZ", "STATE", "NEXT", "LAST", "RECENT")
    texts: list[tuple[str, ...]] = []  # each row's cells, plain
    codes: list[tuple[str, ...]] = []  # and their colour codes (when coloured)
    marks_of = _MARKS.get
    for r in rows:
        state = r["state"] or "not applied"
        if r.get("pause"):
            state += " (runtime)"
        if r.get("running"):
            state += f", {r['running']} running"
        next_run = r["next_run"]
        last = r.get("last_run")
        if last:
            at = parse_iso(last.get("finished_at") or last.get("started_at"))
            last_text = str(last.get("status"))
            if at is not None:
                last_text += f" {_delta(at - now)}"
        else:
            last_text = "-"
        tz = r["timezone"]
        texts.append(
            (
                r["name"],
                str(r["schedule"]),
                str(tz),
                state,
                _when(None if next_run is None else parse_iso(next_run), tz, now),
                last_text,
                # Marks are painted one by one below; the plain text sets the width.
                "".join([marks_of(s) or _mark(s)[0] for s in r.get("recent") or ()]),
            )
        )
        if color:
            codes.append(
                (
                    BOLD,
                    "",
                    "",
                    _STATE_COLOR.get(r["state"] or "", YELLOW),
                    RED if r.get("overdue") else "",
                    _mark(str(last.get("status")))[1] if last else "",
                    "",
                )
            )
    widths = [max(len(h), *map(len, col)) for h, col in zip(header, zip(*texts, strict=True), strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(cells).rstrip()

    out = [line([h.ljust(widths[i]) for i, h in enumerate(header)])]
    if not color:  # (the same cells as below, without a paint call per cell)
        w0, w1, w2, w3, w4, w5, w6 = widths
        out += [
            f"{a.ljust(w0)}  {b.ljust(w1)}  {c.ljust(w2)}  {d.ljust(w3)}  {e.ljust(w4)}  {f.ljust(w5)}  {g.ljust(w6)}".rstrip()
            for a, b, c, d, e, f, g in texts
        ]
    for r, row, code in zip(rows, texts, codes, strict=True) if color else ():
        cells = []
        for i, text in enumerate(row):
            pad = " " * (widths[i] - len(text))
            if i == len(row) - 1:
                text = "".join(
                    _paint(m, c, True) for m, c in (_mark(s) for s in r.get("recent") or ())
                )
            else:
                text = _paint(text, code[i], True)
            cells.append(text + pad)
        out.append(line(cells))

    warnings = []
    for r in rows:
        name = r["name"]
        if r.get("overdue"):
            since = parse_iso(r["next_run"])
            assert since is not None
            local = since.astimezone(_zone(r["timezone"]))
            same_day = local.date() == now.astimezone(_zone(r["timezone"])).date()
            shown = local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
            warnings.append(
                f"! {name} is overdue since {shown} and no engine is running: "
                "start `cronfile daemon` or run `cronfile tick`"
            )
        pause = r.get("pause")
        if pause:
            why = f": {pause['reason']}" if pause.get("reason") else ""
            since = parse_iso(pause.get("at"))
            shown = local_time(since, r["timezone"]) if since is not None else "?"
            warnings.append(
                f"! {name} is paused at runtime by {pause.get('user')}@{pause.get('host')} since {shown}{why}"
                f" (`cronfile resume {name}`)"
            )
        drift = r.get("drift")
        if drift == "not applied":
            warnings.append(f"! {name} is in jobs.d but not applied: run `cronfile apply`")
        elif drift == "not in files":
            warnings.append(
                f"! {name} is applied but no longer in jobs.d: run `cronfile apply` to delete it"
            )
        elif drift == "changed":
            warnings.append(
                f"! {name} has changes in jobs.d that are not applied: run `cronfile apply`"
            )
    usage_lines = [u for u in map(_usage_line, rows) if u is not None]
    return end_table(out, usage_lines, [_paint(w, YELLOW, color) for w in warnings])
