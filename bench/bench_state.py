"""State cost: the file store (state.json) against the SQLite store (state.db), per size.

    python bench/bench_state.py [--tiny] [--repeats R] [--history H] [N ...]   # default N = 1000 10000 30000

In-process, through the store interface, on N applied jobs (synthetic JobStates shaped
like gen_jobs.py's: about 550 bytes each in state.json) with H history records per job
(default 3):

- one state transaction changing one job, as a run pays it three times (claim, pid,
  end), with the store's memory warm (the daemon, nobody else writing);
- one claim (a Running entry added, next_run moved) right after another writer's
  transaction (a second store object: a `cronfile run`, a tick or an apply wrote
  meanwhile), so the store must notice what changed;
- the first read of a fresh store object (every CLI command);
- what `status` reads: the state and the last 10 history entries of every job
  (``merged_history``), from a fresh store object; and the same read as `status` now
  reads it, every job's last runs at once (``merged_histories``, ``Store.last_runs``);
- one run's history write: append a record, then prune to the history_limit (100);
- the first transaction of an apply writing all N jobs into an empty store, and the
  one-off import of the file store's state dir into state.db.

Goal (issue 17): the cost of a transaction follows the jobs changed, not N; `status`
under 300 ms at 10,000 jobs. Medians of R (default 15; tiny 3).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import header, median, note, parser, ratio, table, workdir  # noqa: E402

from cronfile.state import JobState, JobStatus, LastRun, Running, State  # noqa: E402
from cronfile.stores.file import FileStore as Store  # noqa: E402
from cronfile.stores.sqlite import SqliteStore  # noqa: E402

try:  # the structure issue moves it (engine.py -> history.py)
    from cronfile.history import merged_history  # type: ignore[attr-defined]  # noqa: E402
except ImportError:
    from cronfile.engine import merged_history  # noqa: E402
try:  # issue 17: every job's last runs in one read
    from cronfile.history import merged_histories  # noqa: E402
except ImportError:
    def merged_histories(store: object, n: int) -> dict:  # (an older tree: per job, as before)
        return {}

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
HISTORY_LIMIT = 100


def job_state(i: int, now: datetime) -> JobState:
    name = f"job-{i:05d}"
    spec = {
        "name": name,
        "description": f"nightly export {i} of the reporting tables to the archive bucket",
        "schedule": f"{i % 60} {3 + i % 5} * * *",
        "timezone": ZONES[i % len(ZONES)],
        "run": f"./scripts/export.sh --table t{i} --since yesterday --out /srv/archive/{name}",
        "timeout": "30m",
        "retries": {"count": 2, "backoff": "1m"},
        "concurrency": "skip",
        "labels": {"team": f"team-{i % 17}", "tier": "batch"},
        "deliver": [{"to": "webhook", "url": "https://hooks.example.com/cron", "on": ["failure"]}],
        "enabled": True,
    }
    last = LastRun(f"r{i:05d}-0", "success", "schedule", now - timedelta(days=1), now - timedelta(days=1), now - timedelta(days=1, seconds=-40))
    return JobState(
        spec=spec,
        spec_hash=f"{i:064x}",
        schedule_sig=f"cron:{i % 60} {3 + i % 5} * * *@{ZONES[i % len(ZONES)]}",
        created_at=now - timedelta(days=30),
        state=JobStatus.scheduled,
        next_run=now + timedelta(hours=3 + i % 20),
        last_run=last,
        run_count=30,
        updated_at=now - timedelta(days=1),
    )


def history_record(job: str, k: int, now: datetime) -> dict[str, object]:
    t = now - timedelta(days=k + 1)
    return {
        "v": 1,
        "run_id": f"{job}-{k}",
        "job": job,
        "status": "success",
        "trigger": "schedule",
        "scheduled_for": t.isoformat(),
        "started_at": t.isoformat(),
        "finished_at": (t + timedelta(seconds=40)).isoformat(),
        "exit_code": 0,
        "duration_ms": 40000,
        "log_path": f"runs/{job}/{job}-{k}.log",
        "engine": "0123456789abcdef",
    }


def write_file_store(d: Path, n: int, hist: int, now: datetime) -> Store:
    """The file store's state dir as an apply and some runs leave it (history files
    written directly: H fsync'd appends per job would take minutes at 30,000)."""
    store = Store(d)
    store.ensure()
    with store.transaction() as txn:
        txn.state = State(jobs={f"job-{i:05d}": job_state(i, now) for i in range(n)}, revision="0" * 40, applied_at=now)
    for i in range(n):
        job = f"job-{i:05d}"
        jd = store.job_dir(job, create=True)
        lines = "".join(json.dumps(history_record(job, k, now), separators=(",", ":")) + "\n" for k in range(hist))
        (jd / "history.jsonl").write_text(lines)
    return store


def timed(fn: Callable[[], object], reps: int) -> float | None:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return median(out)


def bump(store: Store, name: str) -> None:
    with store.transaction() as txn:
        js = txn.state.jobs[name]
        txn.state = txn.state.with_job(name, js.with_(run_count=js.run_count + 1))


def claim(store: Store, name: str, now: datetime, k: int) -> None:
    with store.transaction() as txn:
        js = txn.state.jobs[name]
        run = Running(f"claim-{k}", js.next_run, now, "schedule", "0123456789abcdef")
        txn.state = txn.state.with_job(name, js.with_(running=(*js.running, run), next_run=(js.next_run or now) + timedelta(days=1)))


def measure(kind: str, make: Callable[[], Store], n: int, reps: int, now: datetime) -> dict[str, float | None]:
    a, b = make(), make()
    names = [f"job-{(i * 7919) % n:05d}" for i in range(reps * 2)]
    a.read()
    b.read()
    out: dict[str, float | None] = {}
    it = iter(range(10**9))
    out["txn"] = timed(lambda: bump(a, names[next(it) % len(names)]), reps)

    def other_then_claim() -> None:
        k = next(it)
        bump(b, names[k % len(names)])  # another writer
        t0 = time.perf_counter()
        claim(a, names[(k + 1) % len(names)], now, k)
        out.setdefault("_claims", []).append(time.perf_counter() - t0)  # type: ignore[union-attr]

    for _ in range(reps):
        other_then_claim()
    out["claim"] = median(out.pop("_claims"))  # type: ignore[arg-type]
    out["read"] = timed(lambda: make().read(), reps)

    def status() -> None:
        s = make()
        state = s.read()
        for name in state.jobs:
            merged_history(s, name, 10)

    out["status"] = timed(status, max(1, min(reps, 3)))

    def status_now() -> None:  # what `cronfile status` reads since issue 17's Store.last_runs
        s = make()
        s.read()
        merged_histories(s, 10)

    out["status_now"] = timed(status_now, max(1, min(reps, 3)))
    # A run's history: append, then prune at the limit (a job with a full history).
    full = names[0]
    for k in range(HISTORY_LIMIT):
        a.append_history(full, history_record(full, 1000 + k, now))

    def run_history() -> None:
        k = next(it)
        a.append_history(full, history_record(full, 5000 + k, now))
        a.prune(full, HISTORY_LIMIT)

    out["history"] = timed(run_history, reps)
    note(f"{kind} at {n}: done")
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], "job counts (default 1000 10000 30000; tiny 200)")
    p.add_argument("--repeats", type=int, help="runs per measure (default 15; tiny 3)")
    p.add_argument("--history", type=int, default=3, help="history records per job (default 3)")
    args = p.parse_args()
    header("state cost", args)
    sizes = args.sizes or ([200] if args.tiny else [1000, 10_000, 30_000])
    reps = args.repeats or (3 if args.tiny else 15)
    now = datetime.now(UTC).replace(microsecond=0)
    rows: list[tuple[object, ...]] = []
    labels = {
        "txn": "state transaction, 1 job changed (warm)",
        "claim": "claim after another writer's transaction",
        "read": "first read of a fresh store (a CLI command)",
        "status": "status: state + last 10 history of every job",
        "status_now": "  the same, every job's in one read (last_runs)",
        "history": "one run's history: append + prune(100)",
        "apply": "first apply: write N jobs into an empty store",
        "migrate": "import state.json + history files into state.db",
    }
    for n in sizes:
        with workdir("state", args.keep) as d:
            t0 = time.perf_counter()
            write_file_store(d / "file", n, args.history, now)
            apply_file = time.perf_counter() - t0  # includes the history files; re-timed below
            note(f"file store with {n} jobs and {args.history} history records each: {apply_file:.1f}s")
            state_bytes = (d / "file" / "state.json").stat().st_size
            shutil.copytree(d / "file", d / "sqlite")
            t0 = time.perf_counter()
            SqliteStore(d / "sqlite").read()
            migrate = time.perf_counter() - t0
            db_bytes = sum(f.stat().st_size for f in (d / "sqlite").glob("state.db*"))

            state = Store(d / "file").read()
            applies = {}
            for kind, cls in (("file", Store), ("sqlite", SqliteStore)):
                def first_apply(cls: type[Store] = cls, kind: str = kind, state: State = state) -> None:
                    s = cls(d / f"apply-{kind}-{time.perf_counter_ns()}")
                    with s.transaction() as txn:
                        txn.state = state.with_(jobs=dict(state.jobs))
                applies[kind] = timed(first_apply, max(1, min(reps, 3)))
            f = measure("file", lambda: Store(d / "file"), n, reps, now)
            s = measure("sqlite", lambda: SqliteStore(d / "sqlite"), n, reps, now)
            f["apply"], s["apply"] = applies["file"], applies["sqlite"]
            f["migrate"], s["migrate"] = None, migrate
            for key, label in labels.items():
                ms = [None if v is None else v * 1000 for v in (f[key], s[key])]
                rows.append((label, n, ms[0], ms[1], ratio(ms[0], ms[1])))
            note(f"on disk at {n}: state.json {state_bytes / 1e6:.1f} MB; state.db with history {db_bytes / 1e6:.1f} MB")
    print("milliseconds, medians (file: state.json + history.jsonl files; sqlite: state.db):")
    table(["measure", "jobs", "file ms", "sqlite ms", "file / sqlite"], rows)


if __name__ == "__main__":
    main()
