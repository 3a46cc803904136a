"""Every job's recent runs as ``cronfile status`` shows them, kept between commands.

At 10,000 jobs with ten runs each, reading every job's last runs (``Store.last_runs``,
one statement) and decoding and merging 100,000 records cost 1-2 s of a ``status``
(issue 17). What status shows of them per job is small: the statuses of its last
``RECENT_N`` runs, its last run (when the state has none), and for agent jobs the usage
of its runs (``usage_since`` over 24 hours). This keeps that per job, with the job's
number of history rows, in a file beside the parse cache, and on the next ``status``
reads again only the jobs with rows added since (rows above the highest id it saw): a
run adds its record, and the prune that follows a run drops that same job's oldest.

It is used only when nothing else can have changed, checked in one read snapshot: the
same database (``head.db_id``), the highest row it saw still there and the same, and
the row count equal to what it kept plus the re-read jobs' difference (a row deleted
from any other job, by hand or by a prune without a run, changes that count). Anything
else, and a missing or foreign file, reads every job as before and writes it anew.
SQLite store only; the others read as before.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .errors import CronfileError
from .history import merge_lines
from .render import LAST_RUN_KEYS, RECENT_N, Applied, applied, run_summary

FORMAT = 1
_REREAD_MAX = 1000  # jobs read again one by one; more: all at once

Summary = tuple[tuple[str, ...], dict[str, Any] | tuple[Any, ...] | None]  # recent statuses, last run (render.run_summary)
UsageRuns = tuple[tuple[Any, Any], ...]  # (started_at, usage) of each run with a usage report


class RecentRuns:
    """What ``status`` reads of the history: ``summaries`` (job -> Summary, the jobs with
    any run) and ``usage_runs(job)`` (the records usage_since counts)."""

    def __init__(self, summaries: dict[str, Summary], usage: dict[str, UsageRuns], how: str = "read") -> None:
        self.summaries = summaries
        self._usage = usage
        self.how = how  # "read" (every job), "kept" (the memo as it was), "updated" (some jobs read again)

    def usage_runs(self, job: str) -> list[dict[str, Any]]:
        return [{"started_at": s, "usage": u} for s, u in self._usage.get(job, ())]


def _code() -> str:
    here = Path(__file__).parent
    parts = [str(FORMAT), str(RECENT_N), sys.version]
    for name in ("statusmemo.py", "history.py", "render.py", "usage.py", "stores/sqlite.py"):
        try:
            st = (here / name).stat()
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return "|".join(parts)


def _usage_of(merged: list[dict[str, Any]]) -> UsageRuns:
    return tuple((r.get("started_at"), r["usage"]) for r in merged if r.get("usage") is not None)


def _intern(summary: Summary) -> tuple[tuple[str, ...], tuple[Any, ...] | None]:
    """As kept: each status interned (pickled once), the last run as the tuple of its
    values (render.LAST_RUN_KEYS: a dict again only for a job whose state has none)."""
    recent, last = summary
    return tuple(sys.intern(s) for s in recent), None if last is None else tuple(last[k] for k in LAST_RUN_KEYS)


def recent_runs(store: Any, agents: Collection[str], environ: Mapping[str, str] | None = None) -> RecentRuns:
    """Every job's Summary, and the usage runs of the jobs in ``agents``, from the memo
    where it holds, from the store where not (then the memo is written)."""
    from .stores.sqlite import SqliteStore

    env = os.environ if environ is None else environ
    if not isinstance(store, SqliteStore) or env.get("CRONFILE_NO_CACHE") == "1":
        return _read_all(store, agents)
    from .parsecache import _read_private, _write_private, cache_dir

    where = cache_dir(env) / f"{hashlib.sha256(str(store.db_path.resolve()).encode()).hexdigest()[:20]}.runs.pickle"
    with store.snapshot() as there:
        if not there:
            return RecentRuns({}, {})
        db_id, top, total, top_row = store.history_mark()
        memo, _ = _read_private(where)
        code = _code()
        fresh, how = None, "read"
        if isinstance(memo, dict) and memo.get("code") == code and memo.get("db") == (str(store.db_path.resolve()), db_id):
            fresh = _update(store, memo, top, total, agents)
        if fresh is None:
            counts = store.history_counts()
            summaries = {job: _intern(run_summary(merge_lines(lines, RECENT_N))) for job, lines in store.last_runs(RECENT_N).items()}
            usage = {job: _usage_of(merge_lines(store.read_history(job), None)) for job in agents if job in summaries}
            fresh = {"counts": counts, "summaries": summaries, "usage": usage}
        else:
            counts, summaries, usage = fresh["counts"], fresh["summaries"], fresh["usage"]
            how = "kept" if fresh is memo else "updated"
    if fresh is not memo:
        import pickle

        data = {"code": code, "db": (str(store.db_path.resolve()), db_id), "top": top, "top_row": top_row, "total": total, **fresh}
        _write_private(where, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return RecentRuns(summaries, usage, how)


def _update(store: Any, memo: dict[str, Any], top: int, total: int, agents: Collection[str]) -> dict[str, Any] | None:
    """The memo brought up to date by reading again the jobs with rows above its highest
    (and agent jobs it has no usage of); None when rows may have gone elsewhere."""
    was_top = memo.get("top")
    if not isinstance(was_top, int) or was_top > top:
        return None
    if was_top and store._query("SELECT job, run_id, length(body) FROM history WHERE id = ?", (was_top,))[:1] != [memo.get("top_row")]:
        return None  # the row it saw last is gone or another
    counts: dict[str, int] = memo["counts"]
    summaries: dict[str, Summary] = memo["summaries"]
    usage: dict[str, UsageRuns] = memo["usage"]
    changed = store.history_jobs_after(was_top) if top > was_top else {}
    if len(changed) > _REREAD_MAX:
        return None  # one statement for all is cheaper than a read per job
    if memo["total"] - sum(counts.get(j, 0) for j in changed) + sum(changed.values()) != total:
        return None
    if top == was_top and all(j in usage or j not in summaries for j in agents):
        return memo  # nothing new: as it was
    counts, summaries, usage = dict(counts), dict(summaries), dict(usage)
    for job in changed.keys() | {j for j in agents if j in summaries and j not in usage}:
        merged = merge_lines(store.read_history(job), None)
        counts[job] = changed.get(job, counts.get(job, 0))
        if merged:
            summaries[job] = _intern(run_summary(merged[-RECENT_N:]))
        else:
            summaries.pop(job, None)
        if job in agents or job in usage:
            usage[job] = _usage_of(merged)
    return {"counts": counts, "summaries": summaries, "usage": usage}


def _read_all(store: Any, agents: Collection[str]) -> RecentRuns:
    """Without a memo: ``Store.last_runs`` and each agent job's whole history."""
    summaries = {job: run_summary(merge_lines(lines, RECENT_N)) for job, lines in store.last_runs(RECENT_N).items()}
    usage = {job: _usage_of(merge_lines(store.read_history(job), None)) for job in agents if job in summaries}
    return RecentRuns(summaries, usage)


# -- the applied jobs ----------------------------------------------------------------------


def applied_jobs(store: Any, environ: Mapping[str, str] | None = None, *, full: bool = False, keep: bool = True) -> tuple[dict[str, Applied], str]:
    """Every applied job as status shows it (render.applied), and how it was read:
    "read" (the whole state), "kept" or "updated" (the memo, with the jobs whose rows
    were written since it, by their seq, as the store's own memo reads them). Decoding
    10,000 JobStates was a third of a ``status``. SQLite store only. ``full``: read the
    whole state, not the memo (its files changed with no seq moved: a write by hand);
    ``keep``: write the memo of what was read."""
    from .stores.sqlite import SqliteStore

    env = os.environ if environ is None else environ
    if not isinstance(store, SqliteStore) or env.get("CRONFILE_NO_CACHE") == "1":
        return {name: applied(js) for name, js in store.read().jobs.items()}, "read"
    from .parsecache import _read_private, _write_private, cache_dir
    from .stores.sqlite import _decode_head

    db = str(store.db_path.resolve())
    where = cache_dir(env) / f"{hashlib.sha256(db.encode()).hexdigest()[:20]}.jobs.pickle"
    code = _code()
    memo, _ = _read_private(where) if not full else (None, False)
    if isinstance(memo, dict) and memo.get("code") == code and memo.get("db") == db and store.db_path.exists():
        try:
            with store.snapshot():
                db_id, seq, purged_to, head = store.jobs_mark()
                if memo.get("db_id") == db_id and purged_to <= memo["seq"] <= seq:
                    rows = store.job_seqs()
                    if _rows_still(memo, rows, purged_to):
                        if memo["head"] != head:
                            _decode_head(head, {})  # (a head read() would refuse: read() says why)
                        if memo["seq"] == seq:
                            return memo["jobs"], "kept"
                        jobs = dict(memo["jobs"])
                        for name, js in store.jobs_since(memo["seq"]):
                            if js is None:
                                jobs.pop(name, None)
                            else:
                                jobs[name] = applied(js)
                        _save_jobs(where, code, db, db_id, seq, head, jobs, rows, _write_private)
                        return jobs, "updated"
        except CronfileError:
            pass  # read() below reads it all, and reports what is wrong in its words
    state = store.read()
    kept = getattr(store, "_memo_db", None)  # what read() decoded, and the seq it is of
    jobs = {name: applied(js) for name, js in state.jobs.items()}
    if kept is None or kept.state is not state or not keep:
        return jobs, "read"
    try:
        with store.snapshot():
            db_id, seq, _, _ = store.jobs_mark()
            rows = store.job_seqs()
    except CronfileError:
        return jobs, "read"
    if (db_id, seq) == (kept.db_id, kept.seq):  # (else written since read(): next time)
        _save_jobs(where, code, db, kept.db_id, kept.seq, kept.head, jobs, rows, _write_private)
    return jobs, "read"


def _rows_still(memo: dict[str, Any], rows: dict[str, int], purged_to: int) -> bool:
    """Whether the job rows the memo was made of (name -> seq) are still there, but for
    those written after it (seq above its own) and the deleted jobs' rows a purge took.
    A backup put back has the database's id, and the seqs it had reached are handed out
    again to other rows: a row at or below the memo's seq that is not the one it kept,
    or a kept row gone, means the state is not the one the memo follows."""
    was: dict[str, int] | None = memo.get("rows")
    if not isinstance(was, dict):
        return False
    upto = memo["seq"]
    alive = memo["jobs"]
    for name, seq in rows.items():
        if seq <= upto and was.get(name) != seq:
            return False
    if len(rows) == len(was) and all(name in rows for name in was):
        return True  # (the common case: no row came or went)
    for name, seq in was.items():
        if name not in rows and (name in alive or seq > purged_to):
            return False  # a job's row, or a deleted job's row a purge keeps, is gone
    return True


def _save_jobs(where: Path, code: str, db: str, db_id: str, seq: int, head: str, jobs: dict[str, Applied], rows: dict[str, int], write: Any) -> None:
    import pickle

    data = {"code": code, "db": db, "db_id": db_id, "seq": seq, "head": head, "jobs": jobs, "rows": rows}
    write(where, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
