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

- the same code (``parsecache.code_fingerprint`` and the files that make a row);
- the same repo, the same way to its state (cwd, -C, --state-dir, --state-url and their
  variables; cronfile.yaml's are in the signature), and the same signature of its files
  (``signature``: the stat of cronfile.yaml and of every job file and the real path of
  every folder below jobs.d: an edit, a rename, a delete, a new file, a config change);
- the same state database with the same marks, read in one snapshot: its id, ``seq``,
  ``purged_to`` and head row; every job row's ``seq`` (a backup put back hands seqs out
  again to other rows); the history's highest row, its row count and the highest row's
  job, run and length;
- written from a status that read the repo from the status index, or in full and wrote
  that index (no file read within the racy window), with no problem and no path to check (workdir, context files: those are read at each status), and the SQLite
  store (not shared).

Anything else takes the full path, which writes it again. The coloured table and
``--json`` are kept the same way in files of their own (for ``--json``, each row's JSON
text but its ``overdue`` and its usage keys). The signature and the marks are taken before the reads the rows are made of:
a change in between leaves a view older than its key says, which the next status finds
changed. Printing from it imports neither the specs, the state, the store nor YAML: it
reads the database's marks with sqlite3 and probes the daemon's lock with flock itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORMAT = 2

# What decides a row besides the repo and the state (the code that makes it).
_CODE_FILES = ("statusview.py", "statustext.py", "statusread.py", "statusmemo.py", "history.py", "render.py", "usage.py", "state.py", "cli.py", "console.py", "stores/sqlite.py", "stores/file.py")


def view_path(root: Path, environ: Mapping[str, str] | None = None, *, as_json: bool = False, color: bool = False) -> Path | None:
    """Beside the repo's status index (the table's, the coloured table's, or
    ``--json``'s); None when ``CRONFILE_NO_CACHE=1``."""
    from .parsecache import cache_dir

    env = os.environ if environ is None else environ
    if env.get("CRONFILE_NO_CACHE") == "1":
        return None
    kind = "json" if as_json else "color" if color else "view"
    return cache_dir(env) / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]}.{kind}.pickle"


def _code() -> str:
    from .parsecache import code_fingerprint

    here = Path(__file__).parent
    parts = [str(FORMAT), code_fingerprint()]
    for name in _CODE_FILES:
        try:
            st = os.stat(here / name)
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


# (stores/url.py's: `${VAR}` in a state URL is the environment's VAR.)
_URL_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _route(args: argparse.Namespace) -> tuple[Any, ...]:
    """What, besides cronfile.yaml and the repo, decides which state status reads
    (console.store_of), as resolved: a folder's `~` (HOME), its place relative to the
    current folder and a URL's `${VAR}` are part of where it leads.
    A URL naming a variable that is not set is a route no view matches (the full path
    then says what is missing)."""
    env = os.environ

    def folder(text: str | None) -> str | None:  # (relative: to the current folder)
        return None if text is None else os.path.abspath(os.path.expanduser(text))

    def url(text: str | None) -> Any:
        if not text or "${" not in text:
            return text
        if any(name not in env for name in _URL_VAR.findall(text)):
            return object()
        return _URL_VAR.sub(lambda m: env[m.group(1)], text)

    # (The repo itself is checked apart, by its resolved root; the current folder counts
    # only through relative paths, resolved here: a status from jobs.d/ and one from the
    # repo's top take the same route.)
    return (
        folder(getattr(args, "state_dir", None)),
        url(getattr(args, "state_url", None)),
        folder(env.get("CRONFILE_STATE_DIR")),
        url(env.get("CRONFILE_STATE_URL")),
    )


def signature(root: Path) -> dict[str, Any]:
    """The stat of cronfile.yaml and of every job file below jobs.d (as the loader finds
    them: ``*.yaml``/``*.yml``, not hidden, symlinks followed), and the real path of every
    folder walked: what a change of the repo changes. A superset of what
    ``load.files_signature`` takes (with the device, and the folders), without importing
    the loader."""
    sig: dict[str, Any] = {}
    top = os.path.abspath(root)  # (the same keys whether the repo was found as `.` or above it)
    config = top + "/cronfile.yaml"
    try:
        st = os.stat(config)
        sig[config] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except FileNotFoundError:
        if os.path.islink(config):
            sig[config] = -1
    except OSError:
        sig[config] = -1
    seen: set[str] = set()
    stack = [top + "/jobs.d"]
    suffixes = (".yaml", ".yml")
    while stack:
        d = stack.pop()
        real = os.path.realpath(d)
        sig[d + "/"] = real
        if real in seen:
            continue
        seen.add(real)
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                if name[0] == ".":
                    continue
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    stack.append(e.path)
                elif name.endswith(suffixes):
                    try:
                        st = e.stat()
                    except OSError:
                        sig[e.path] = -1
                        continue
                    sig[e.path] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return sig


def db_marks(db_path: Path | str) -> tuple[Any, ...] | None:
    """What the view is of in the state database, read in one snapshot with sqlite3
    alone (as ``SqliteStore.jobs_mark``, ``job_seqs`` and ``history_mark`` read it, and
    the schema version), with a digest of every job row's body: None when there is no
    database or it cannot be read so. Every write cronfile makes bumps ``seq``; a write by
    hand (or a tool) does not, but changes the digest: a status that finds only that
    changed reads the state in full (cli.cmd_status), which then says what is wrong. (A job name is a word: no space or comma in it, so the names and seqs
    joined are unambiguous.)"""
    import sqlite3
    from urllib.parse import quote

    path = str(db_path)
    if not os.path.exists(path) or os.path.exists(path + ".migrating"):
        return None

    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, isolation_level=None, timeout=5.0)
    except sqlite3.Error:
        return None
    try:
        conn.execute("BEGIN")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        db_id, seq, purged_to, head = conn.execute("SELECT db_id, seq, purged_to, body FROM head").fetchone()
        # every job row's name and seq, in one string made by SQLite (a dict of 10,000 was 2x slower)
        (seqs,) = conn.execute("SELECT group_concat(name || ' ' || seq, ',') FROM (SELECT name, seq FROM jobs ORDER BY name)").fetchone()
        # and every job row's body: a write by hand (or by a tool) bumps no seq
        (bodies,) = conn.execute("SELECT group_concat(ifnull(body, ''), char(30)) FROM (SELECT body FROM jobs ORDER BY name)").fetchone()
        top, count = conn.execute("SELECT max(id), count(*) FROM history").fetchone()
        row = conn.execute("SELECT job, run_id, length(body) FROM history WHERE id = ?", (top,)).fetchone() if top is not None else None
        conn.execute("COMMIT")
    except (sqlite3.Error, TypeError, ValueError):
        return None
    finally:
        conn.close()
    digest = hashlib.blake2b((bodies or "").encode(), digest_size=16).hexdigest()
    return digest, (version, str(db_id), int(seq), int(purged_to), str(head), seqs, int(top or 0), int(count), row)


def daemon_running(lock_path: Path | str) -> bool | None:
    """Whether a process holds the state dir's daemon lock (``FileStore.daemon_running``:
    an flock probe that takes nothing); None when flock cannot tell (then filelock may
    hold it its other way: the full path asks filelock)."""
    import fcntl

    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


Agents = list[tuple[int, str, tuple[Any, ...], Any]]  # row index, name, usage runs, budget: in row order


def prepare(rows: Sequence[Mapping[str, Any]], jobs: Mapping[str, Any], usage_runs: Mapping[str, Any], *, as_json: bool = False, color: bool = False) -> tuple[Any, Agents] | None:
    """``rows`` (render.status_rows) as kept, and as ``render`` and ``print_json`` print
    them: the table's cells but for the time texts, or for ``--json`` each row's JSON
    text around its ``overdue`` (and its usage, for agent jobs); with each row's overdue
    deadline and each agent job's usage runs. None when a row's JSON cannot be split so."""
    from .render import _MARKS, _STATE_COLOR, _US, YELLOW, _deadline, _mark, _paint
    from .state import JobStatus

    marks_of = _MARKS.get
    scheduled = JobStatus.scheduled
    kept: list[Any] = []
    agents: Agents = []
    for i, r in enumerate(rows):
        name = r["name"]
        js = jobs.get(name)
        deadline = None
        if js is not None and js.state == scheduled and js.next_run_us is not None:
            deadline = _deadline(js.spec) // _US
        next_us = None if js is None else js.next_run_us
        if "usage_24h" in r:
            agents.append((i, name, tuple(usage_runs.get(name, ())), r.get("budget")))
        if as_json:
            text = _json_row(r)
            if text is None:
                return None
            kept.append((*text, deadline, next_us))
            continue
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
        drift = r.get("drift")
        if drift is None:
            note = None
        elif drift == "not applied":
            note = f"! {name} is in jobs.d but not applied: run `cronfile apply`"
        elif drift == "not in files":
            note = f"! {name} is applied but no longer in jobs.d: run `cronfile apply` to delete it"
        elif drift == "changed":
            note = f"! {name} has changes in jobs.d that are not applied: run `cronfile apply`"
        else:
            note = None
        tz = r["timezone"]
        recent = r.get("recent") or ()
        kept.append(
            (
                name,
                str(r["schedule"]),
                str(tz),
                state,
                r["next_run"],
                tz,
                last_text,
                last_at,
                "".join([marks_of(s) or _mark(s)[0] for s in recent]),
                deadline,
                next_us,
                r.get("pause") or None,
                note,
                # coloured: the STATE cell's code, the LAST cell's, the RECENT marks painted
                (_STATE_COLOR.get(r["state"] or "", YELLOW), _mark(last_text)[1] if last else "", "".join([_paint(m, c, True) for m, c in map(_mark, recent)]))
                if color
                else None,
            )
        )
    return (kept if as_json else _table(kept, color=color)), agents


_HEADER = ("NAME", "SCHEDULE", "TZ", "STATE", "NEXT", "LAST", "RECENT")


def _table(cells: list[tuple[Any, ...]], *, color: bool = False) -> dict[str, Any]:
    """The rows as ``render`` prints them: each row's NAME..STATE cells padded to their
    widths (which no clock changes) and its RECENT marks padded, its next run and last
    run as text and as microseconds since the epoch (of those texts, as render_status
    reads them), and apart the rows that may be overdue and the rows with a warning."""
    fromiso = datetime.fromisoformat
    epoch, us = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
    widths = [len(h) for h in _HEADER]
    for c in cells:
        for k, w in ((0, 0), (1, 1), (2, 2), (3, 3), (8, 6)):  # (the RECENT marks are cell 8)
            if len(c[k]) > widths[w]:
                widths[w] = len(c[k])
    w0, w1, w2, w3, w6 = widths[0], widths[1], widths[2], widths[3], widths[6]
    lines, checks, notes, last_codes = [], [], [], []
    if color:
        from .render import BOLD, _paint
    for i, (name, sched, tz_text, state, next_run, tz, last_text, last_at, marks, deadline, next_us, pause, note, paint) in enumerate(cells):
        if paint is None:
            prefix = f"{name.ljust(w0)}  {sched.ljust(w1)}  {tz_text.ljust(w2)}  {state.ljust(w3)}  "
            suffix = marks.ljust(w6)
        else:  # (as render_status paints each cell, then pads it by its plain width)
            state_code, last_code, painted = paint
            prefix = "".join(
                _paint(text, code, True) + " " * (w - len(text)) + "  " for text, code, w in ((name, BOLD, w0), (sched, "", w1), (tz_text, "", w2), (state, state_code, w3))
            )
            suffix = painted + " " * (w6 - len(marks))
            last_codes.append(last_code)
        lines.append(
            (
                prefix,
                suffix,
                next_run,
                tz,
                None if next_run is None else (fromiso(next_run) - epoch) // us,
                last_text,
                None if last_at is None else (fromiso(last_at) - epoch) // us,
            )
        )
        if deadline is not None:
            checks.append((i, name, next_run, tz, deadline, next_us))
        if pause or note is not None:
            notes.append((i, name, tz, pause, note))
    return {"widths": (w0, w1, w2, w3, w6), "lines": lines, "checks": checks, "notes": notes, "last_codes": last_codes if color else None}


def keepable(repo: Any, store: Any, mark: tuple[Any, ...] | None) -> bool:
    """Whether the rows of a status of ``repo`` and ``store`` can be kept (``save``)."""
    from .stores.sqlite import SqliteStore

    if mark is None or not (repo.from_index or repo.indexed) or repo.error_count or repo.pathy:
        return False
    return type(store) is SqliteStore and not getattr(store, "shared", False)


def save(
    args: argparse.Namespace,
    repo: Any,
    store: Any,
    sig: Mapping[str, Any],
    mark: tuple[Any, ...] | None,
    prepared: tuple[Any, Agents] | None,
    *,
    as_json: bool = False,
    color: bool = False,
) -> None:
    """Keep what ``prepare`` made of this status's rows for the next, with the signature
    and marks taken before they were read, when those can be checked then (see the
    module's docstring). Best effort."""
    from .parsecache import _write_private

    if prepared is None or not keepable(repo, store, mark):
        return
    where = view_path(repo.root, as_json=as_json, color=color)
    if where is None:
        return
    import pickle

    kept, agents = prepared
    data = {
        "format": FORMAT,
        "code": _code(),
        "root": str(repo.root.resolve()),
        "route": _route(args),
        "signature": sig,
        "db": os.path.abspath(store.db_path),  # (absolute: a status from a subfolder reads it too)
        "lock": os.path.abspath(store.daemon_lock_path),
        "mark": mark,
        # (a pickle in the pickle: unpickled only once everything above is found to hold)
        "body": pickle.dumps((kept, agents), protocol=pickle.HIGHEST_PROTOCOL),
    }
    _write_private(where, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


_USAGE_KEYS = ("usage_24h", "budget", "budget_left")
_OVERDUE = '\n    "overdue": false,\n'


def _json_row(r: Mapping[str, Any]) -> tuple[str, str] | None:
    """A row's text in ``json.dumps(rows, indent=2, ensure_ascii=False)`` (one level in)
    before and after its ``overdue`` value, without its usage keys (the last ones), and
    without its closing brace. A top-level key is the only thing at four spaces after a
    newline: a string holds no raw newline."""
    import json

    base = {k: v for k, v in r.items() if k not in _USAGE_KEYS}
    base["overdue"] = False
    text = json.dumps([base], indent=2, ensure_ascii=False)[2:-2]  # ("[\n" and "\n]")
    head, sep, tail = text.partition(_OVERDUE)
    if not sep or not tail.endswith("\n  }") or _OVERDUE in tail:
        return None
    return head + '\n    "overdue": ', ",\n" + tail[:-4]


def _json_usage(name: str, runs: tuple[Any, ...], budget: Any, since: datetime) -> str:
    """An agent row's usage keys, as they follow its ``pause`` in that text."""
    import json

    from .usage import budget_left, usage_since

    used = usage_since([{"started_at": s, "usage": u} for s, u in runs], since)
    extra: dict[str, Any] = {"usage_24h": used.to_json()}
    if isinstance(budget, Mapping) and budget:
        extra["budget"] = dict(budget)
        extra["budget_left"] = budget_left(budget, used)
    return "".join(f',\n    "{k}": ' + json.dumps(v, indent=2, ensure_ascii=False).replace("\n", "\n    ") for k, v in extra.items())


def print_json(rows: Sequence[tuple[str, str, int | None, int | None]], agents: Agents, now: datetime, *, engine_running: bool) -> str:
    """What ``status --json`` prints for the rows these were kept of."""
    if not rows:
        return "[]"
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    since = now - timedelta(hours=24)
    usage = {i: _json_usage(name, runs, budget, since) for i, name, runs, budget in agents}
    parts = []
    for i, (pre, post, deadline, next_us) in enumerate(rows):
        overdue = deadline is not None and not engine_running and now_us - next_us > deadline  # type: ignore[operator]
        parts.append(f"{pre}{'true' if overdue else 'false'}{post}{usage.get(i, '')}\n  }}")
    return "[\n" + ",\n".join(parts) + "\n]"


_TAKEN: dict[Any, Any] = {}  # db -> the marks print_ready took of it, in this command


def marks_before_reads(db: Any) -> Any:
    """``db_marks(db)``, or the marks this command's print_ready took of ``db`` already:
    taken before anything of the state was read, they are as good (a write after them
    makes the kept marks older, so the next status reads again), and reading them twice
    cost about 34 ms at 10k jobs on every status after a daemon's write."""
    key = os.path.abspath(db)
    if key in _TAKEN:
        return _TAKEN.pop(key)
    return db_marks(db)


def print_ready(args: argparse.Namespace, root: Path, *, as_json: bool = False, color: bool = False) -> tuple[str | None, dict[str, Any] | None, bool]:
    """The plain ``status`` table (or its ``--json``) of the repo at ``root`` from the
    view, if it holds (else None: the full path); the repo's ``signature`` if it was
    taken (before anything else was read: the full path keeps its rows under it); and
    whether the database's files changed with no write of cronfile's (the full path then
    reads the whole state, not its memo)."""
    from .parsecache import _read_private

    where = view_path(root, as_json=as_json, color=color)
    if where is None:
        return None, None, False
    data, _ = _read_private(where)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("root") != str(root.resolve()) or data.get("route") != _route(args):
        return None, None, False
    sig = signature(root)
    if sig != data["signature"] or data["code"] != _code():
        return None, sig, False
    mark = db_marks(data["db"])
    _TAKEN[os.path.abspath(data["db"])] = mark
    if mark is None or mark != data["mark"]:
        return None, sig, mark is not None and mark[1] == data["mark"][1]
    running = daemon_running(data["lock"])
    if running is None:
        return None, sig, False
    import pickle

    try:
        rows, agents = pickle.loads(data["body"])  # noqa: S301 - a file of ours, as parsecache's
        text = (print_json if as_json else render)(rows, agents, datetime.now(UTC), engine_running=running)
    except Exception:  # noqa: BLE001 - a damaged or odd kept file: the full path, never an error
        return None, sig, False
    return text, sig, False


def render(table: Mapping[str, Any], agents: Agents, now: datetime, *, engine_running: bool) -> str:
    """What render.render_status prints, uncoloured, for the rows ``prepare`` kept."""
    from .statustext import _ZONES, _usage_line, _zone, delta_us, end_table, local_time

    lines = table["lines"]
    if not lines:
        return "No jobs: add one to jobs.d and run `cronfile apply`."
    now_us = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    nexts: list[str] = []
    lasts: list[str] = []
    zones = _ZONES
    fromiso = datetime.fromisoformat
    for _p, _s, next_run, tz, next_us, last_text, last_us in lines:
        if next_run is None:
            nexts.append("-")
        else:
            zone = zones.get(tz)
            if zone is None:
                zone = zones[tz] = _zone(tz)
            nexts.append(f"{fromiso(next_run).astimezone(zone).isoformat(' ')[:16]} ({delta_us(next_us - now_us)})")
        lasts.append(last_text if last_us is None else f"{last_text} {delta_us(last_us - now_us)}")
    w0, w1, w2, w3, w6 = table["widths"]
    w4, w5 = max(4, *map(len, nexts)), max(4, *map(len, lasts))
    widths = (w0, w1, w2, w3, w4, w5, w6)
    overdue = [] if engine_running else [c for c in table["checks"] if now_us - c[5] > c[4]]
    out = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(_HEADER)).rstrip()]
    codes = table["last_codes"]
    if codes is None:
        out += [f"{line[0]}{e.ljust(w4)}  {f.ljust(w5)}  {line[1]}".rstrip() for line, e, f in zip(lines, nexts, lasts, strict=True)]
    else:  # coloured: NEXT red when overdue, LAST in its status's colour (render_status's codes)
        from .render import RED, RESET, YELLOW

        late = {c[0] for c in overdue}
        out += [
            f"{line[0]}{RED if i in late else ''}{e}{RESET}{' ' * (w4 - len(e))}  {code}{f}{RESET}{' ' * (w5 - len(f))}  {line[1]}".rstrip()
            for i, (line, e, f, code) in enumerate(zip(lines, nexts, lasts, codes, strict=True))
        ]
    said: dict[int, list[str]] = {}  # row -> its warnings, in the order render_status gives them
    for i, name, next_run, tz, _deadline, _next_us in overdue:
        local = fromiso(next_run).astimezone(_zone(tz))
        same_day = local.date() == now.astimezone(_zone(tz)).date()
        shown = local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
        said[i] = [f"! {name} is overdue since {shown} and no engine is running: start `cronfile daemon` or run `cronfile tick`"]
    for i, name, tz, pause, note in table["notes"]:
        row = said.setdefault(i, [])
        if pause:
            why = f": {pause['reason']}" if pause.get("reason") else ""
            at = pause.get("at")
            shown = local_time(fromiso(at), tz) if at is not None else "?"
            row.append(f"! {name} is paused at runtime by {pause.get('user')}@{pause.get('host')} since {shown}{why} (`cronfile resume {name}`)")
        if note is not None:
            row.append(note)
    warnings = [w for i in sorted(said) for w in said[i]]
    if codes is not None:
        warnings = [f"{YELLOW}{w}{RESET}" for w in warnings]
    usage_lines = []
    if agents:
        from .usage import budget_left, usage_since

        since_24h = now - timedelta(hours=24)
        for _i, name, runs, budget in agents:
            used = usage_since([{"started_at": s, "usage": u} for s, u in runs], since_24h)
            row: dict[str, Any] = {"name": name, "usage_24h": used.to_json()}
            if isinstance(budget, Mapping) and budget:
                row["budget"] = dict(budget)
                row["budget_left"] = budget_left(budget, used)
            line = _usage_line(row)
            if line is not None:
                usage_lines.append(line)
    return end_table(out, usage_lines, warnings)
