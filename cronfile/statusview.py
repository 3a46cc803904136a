"""``cronfile status``'s table kept ready to print between commands (issue 17, round 5).

At 10,000 jobs, even with the status index and the memos (statusread, statusmemo), a
``status`` unpickled 10,000 applied jobs, 10,000 declared jobs and every job's recent
runs, and built a row dict per job, only to print the same table as the last time but
for its times. This keeps, beside the parse cache, each row as the table prints it, but
for what depends on the clock or on a running engine: the "in 3h" / "2m ago" of the NEXT
and LAST columns and the local time of the next run (computed at each print, so a new
timezone database shows at once), whether a job is overdue, and agent jobs' usage over
the last 24 hours (kept as the runs ``usage_since`` counts).

It is used only when everything else is as it was when it was written, all checked at
each status:

- the same code (``parsecache.code_fingerprint`` and ``statusmemo._code``, and this file);
- the same repo, and the same ``load.files_signature`` (one stat per job file and of
  cronfile.yaml: an edit, a rename, a delete, a new file, a config change);
- the same state database with the same marks, read in one snapshot: its id, ``seq``,
  ``purged_to`` and head row; every job row's ``seq`` (a backup put back hands seqs out
  again to other rows); the history's highest row, its row count and the highest row's
  job, run and length;
- written from a status that read the repo from the status index with no problem and no
  path to check (workdir, context files: those are read at each status), and the SQLite
  store (not shared).

Anything else, and the coloured table and ``--json``, take the full path, which writes
it again. The marks are taken before the reads the rows are made of: a write in between
leaves a view older than its marks say, which the next status finds changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORMAT = 1

# A row as kept: the four leading cells (name, schedule, timezone, state: plain text),
# the next run (iso) and the job's zone, the LAST cell's text without its "ago" (None:
# "-") and the instant it counts from (iso, or None), the RECENT marks, the overdue
# deadline in microseconds (None: never overdue), the next run in microseconds, the pause
# (a dict) and the drift warning (text, or None).
Row = tuple[str, str, str, str, str | None, str, str | None, str | None, str, int | None, int | None, Any, str | None]


def view_path(root: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Beside the repo's status index; None when ``CRONFILE_NO_CACHE=1``."""
    from .parsecache import cache_dir

    env = os.environ if environ is None else environ
    if env.get("CRONFILE_NO_CACHE") == "1":
        return None
    return cache_dir(env) / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]}.view.pickle"


def _code() -> str:
    from .parsecache import code_fingerprint
    from .statusmemo import _code as memo_code

    try:
        st = os.stat(__file__)
        mine = f"{st.st_mtime_ns}:{st.st_size}"
    except OSError:
        mine = "-"
    return f"{FORMAT}|{code_fingerprint()}|{memo_code()}|{mine}"


def marks(store: Any) -> tuple[Any, ...] | None:
    """What the view is of in the state database, in one snapshot (None: no database)."""
    from .errors import CronfileError
    from .stores.sqlite import SqliteStore

    if not isinstance(store, SqliteStore):
        return None
    try:
        with store.snapshot() as there:
            if not there:
                return None
            return (store.jobs_mark(), store.job_seqs(), store.history_mark())
    except CronfileError:
        return None  # (the reads that follow say what is wrong)


def save(
    args: argparse.Namespace,
    repo: Any,
    store: Any,
    mark: tuple[Any, ...] | None,
    rows: Sequence[Mapping[str, Any]],
    jobs: Mapping[str, Any],
    usage_runs: Mapping[str, Any],
) -> None:
    """Keep ``rows`` (render.status_rows of this status) ready for the next, when what
    they were made of can be checked then (see the module's docstring)."""
    from .parsecache import _write_private
    from .render import _deadline, _US
    from .state import JobStatus
    from .stores.sqlite import SqliteStore

    if mark is None or not repo.from_index or repo.error_count or repo.pathy or repo.signature is None:
        return
    if not isinstance(store, SqliteStore) or getattr(store, "shared", False):
        return
    where = view_path(repo.root)
    if where is None:
        return
    kept: list[Row] = []
    agents: list[tuple[int, str, Any, Any]] = []  # row index, name, usage runs, budget
    for i, r in enumerate(rows):
        name = r["name"]
        state = r["state"] or "not applied"
        if r.get("pause"):
            state += " (runtime)"
        if r.get("running"):
            state += f", {r['running']} running"
        last = r.get("last_run")
        if last:
            last_text, last_at = str(last.get("status")), last.get("finished_at") or last.get("started_at")
        else:
            last_text, last_at = "-", None
        js = jobs.get(name)
        deadline = None
        if js is not None and js.state == JobStatus.scheduled and js.next_run_us is not None:
            deadline = _deadline(js.spec) // _US
        drift = r.get("drift")
        if drift == "not applied":
            note = f"! {name} is in jobs.d but not applied: run `cronfile apply`"
        elif drift == "not in files":
            note = f"! {name} is applied but no longer in jobs.d: run `cronfile apply` to delete it"
        elif drift == "changed":
            note = f"! {name} has changes in jobs.d that are not applied: run `cronfile apply`"
        else:
            note = None
        kept.append(
            (
                name,
                str(r["schedule"]),
                str(r["timezone"]),
                state,
                r["next_run"],
                r["timezone"],
                last_text,
                last_at,
                "".join(_marks(r.get("recent") or ())),
                deadline,
                None if js is None else js.next_run_us,
                r.get("pause") or None,
                note,
            )
        )
        if "usage_24h" in r:
            agents.append((i, name, tuple(usage_runs.get(name, ())), r.get("budget")))
    import pickle

    data = {
        "format": FORMAT,
        "code": _code(),
        "root": str(repo.root.resolve()),
        "signature": repo.signature,
        "config": repo.config,
        "db": str(store.db_path.resolve()),
        "mark": mark,
        "rows": kept,
        "agents": agents,
    }
    _write_private(where, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def _marks(recent: Sequence[str]) -> list[str]:
    from .render import _MARKS, _mark

    return [_MARKS.get(s) or _mark(s)[0] for s in recent]


def print_ready(args: argparse.Namespace) -> str | None:
    """The plain ``status`` table from the view, if it holds (else None: the full path)."""
    from .console import root_of
    from .parsecache import _read_private

    root = root_of(args)
    where = view_path(root)
    if where is None:
        return None
    data, _ = _read_private(where)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("root") != str(root.resolve()):
        return None
    from .load import files_signature

    if files_signature(root) != data["signature"] or data["code"] != _code():
        return None
    from .console import store_of
    from .statusread import StatusRepo
    from .stores.sqlite import SqliteStore

    store = store_of(args, StatusRepo(root, data["config"]))  # type: ignore[arg-type]
    if not isinstance(store, SqliteStore) or getattr(store, "shared", False) or str(store.db_path.resolve()) != data["db"]:
        return None
    from .errors import CronfileError

    mark = marks(store)
    if mark is None or mark != data["mark"]:
        return None
    try:
        running = store.daemon_running()
    except (CronfileError, OSError):
        return None  # (the full path says what is wrong, in its words)
    return render(data["rows"], data["agents"], datetime.now(UTC), engine_running=running)


def render(rows: Sequence[Row], agents: Sequence[tuple[int, str, Any, Any]], now: datetime, *, engine_running: bool) -> str:
    """What render.render_status prints, uncoloured, for the rows these were kept of."""
    from .clock import parse_iso
    from .render import _ZONES, _delta, _usage_line, _zone, local_time
    from .usage import budget_left, usage_since

    if not rows:
        return "No jobs: add one to jobs.d and run `cronfile apply`."
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    now_us = (now - epoch) // timedelta(microseconds=1)
    nexts: list[str] = []
    lasts: list[str] = []
    zones = _ZONES
    fromiso = datetime.fromisoformat
    for _n, _s, _t, _st, next_run, tz, last_text, last_at, *_ in rows:
        if next_run is None:
            nexts.append("-")
        else:
            zone = zones.get(tz)
            if zone is None:
                zone = zones[tz] = _zone(tz)
            dt = fromiso(next_run)
            nexts.append(f"{dt.astimezone(zone).isoformat(' ')[:16]} ({_delta(dt - now)})")
        if last_at is None:
            lasts.append(last_text)
        else:
            lasts.append(f"{last_text} {_delta(fromiso(last_at) - now)}")
    header = ("NAME", "SCHEDULE", "TZ", "STATE", "NEXT", "LAST", "RECENT")
    cols = list(zip(*(r[:4] for r in rows), strict=True))
    widths = [max(len(header[0]), *map(len, cols[0])), max(len(header[1]), *map(len, cols[1])), max(len(header[2]), *map(len, cols[2])), max(len(header[3]), *map(len, cols[3]))]
    widths += [max(len(header[4]), *map(len, nexts)), max(len(header[5]), *map(len, lasts)), max(len(header[6]), *(len(r[8]) for r in rows))]
    w0, w1, w2, w3, w4, w5, w6 = widths
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(header)).rstrip()]
    out += [
        f"{r[0].ljust(w0)}  {r[1].ljust(w1)}  {r[2].ljust(w2)}  {r[3].ljust(w3)}  {e.ljust(w4)}  {f.ljust(w5)}  {r[8].ljust(w6)}".rstrip()
        for r, e, f in zip(rows, nexts, lasts, strict=True)
    ]
    warnings = []
    for name, _s, _t, _st, next_run, tz, _lt, _la, _m, deadline, next_us, pause, note in rows:
        if deadline is not None and not engine_running and now_us - next_us > deadline:
            since = parse_iso(next_run)
            assert since is not None
            local = since.astimezone(_zone(tz))
            same_day = local.date() == now.astimezone(_zone(tz)).date()
            shown = local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
            warnings.append(f"! {name} is overdue since {shown} and no engine is running: start `cronfile daemon` or run `cronfile tick`")
        if pause:
            why = f": {pause['reason']}" if pause.get("reason") else ""
            at = parse_iso(pause.get("at"))
            shown = local_time(at, tz) if at is not None else "?"
            warnings.append(f"! {name} is paused at runtime by {pause.get('user')}@{pause.get('host')} since {shown}{why} (`cronfile resume {name}`)")
        if note is not None:
            warnings.append(note)
    usage_lines = []
    since_24h = now - timedelta(hours=24)
    for _i, name, runs, budget in agents:
        used = usage_since(({"started_at": s, "usage": u} for s, u in runs), since_24h)
        row: dict[str, Any] = {"name": name, "usage_24h": used.to_json()}
        if isinstance(budget, Mapping) and budget:
            row["budget"] = dict(budget)
            row["budget_left"] = budget_left(budget, used)
        line = _usage_line(row)
        if line is not None:
            usage_lines.append(line)
    if usage_lines:
        out.append("")
        out.append("agent usage, last 24 hours:")
        out.extend(usage_lines)
    if warnings:
        out.append("")
        out.extend(warnings)
    return "\n".join(out)
