"""The SQLite store (state.db): transactions across real processes, SIGKILL mid-write,
incremental reads, history, the import of an older state dir, modes, damage."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_helpers import LocalEngine, wait_for, write_job

from cronfile.errors import LockedError, StateError
from cronfile.state import JobState, LastRun, Running, State
from cronfile.stores import sqlite as sqlite_mod
from cronfile.stores.file import FileStore as Store
from cronfile.stores.sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def job(name: str, runs: int = 0) -> JobState:
    return JobState(
        spec={"name": name, "schedule": "0 3 * * *", "shell": "true", "timezone": "UTC"},
        spec_hash=f"h-{name}",
        schedule_sig="sig",
        created_at=T0,
        next_run=datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
        last_run=LastRun("r1", "success", "schedule", T0, T0, T0),
        run_count=runs,
        running=(Running("r2", T0, T0, "schedule", "e1", pid=123),),
    )


def sample_state(n: int = 3) -> State:
    return State(jobs={f"job{i}": job(f"job{i}") for i in range(n)}, revision="deadbeef", applied_at=T0)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state")


def run_py(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    full.pop("CRONFILE_FAULT", None)
    full.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=full, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- state ---------------------------------------------------------------------------


def test_a_fresh_dir_reads_as_an_empty_state_and_creates_nothing(store: SqliteStore) -> None:
    assert store.read() == State()
    assert not store.exists()
    assert not store.state_dir.exists()


def test_a_transaction_writes_the_state_and_another_store_reads_it_back_equal(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    assert store.exists()
    assert SqliteStore(store.state_dir).read() == sample_state()


def test_an_exception_inside_a_transaction_writes_nothing(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as txn:
        txn.state = txn.state.with_job("job0", None).with_(revision="other")
        raise RuntimeError("boom")
    assert SqliteStore(store.state_dir).read() == sample_state()
    assert store.read() == sample_state()


def test_transactions_are_not_reentrant(store: SqliteStore) -> None:
    with store.transaction(), pytest.raises(RuntimeError, match="not re-entrant"), store.transaction():
        pass


def test_changed_since_names_the_jobs_added_replaced_and_removed_however_the_state_was_made() -> None:
    base = sample_state(4)
    made = base.with_job("job1", job("job1", runs=7)).with_job("job2", None).with_job("new", job("new"))
    assert made.changed_since(base) == {"job1", "job2", "new"}
    rebuilt = State(jobs={**{n: js for n, js in base.jobs.items() if n != "job3"}, "x": job("x")})
    assert rebuilt.changed_since(base) == {"job3", "x"}
    # A job set back to the very object it was is no change; a later chain counts from
    # the state it started at, not from an older one.
    assert base.with_job("job0", job("job0", runs=1)).with_job("job0", base.jobs["job0"]).changed_since(base) == set()
    later = made.settled().with_job("job0", None)
    assert later.changed_since(made.settled()) == {"job0"}
    assert later.changed_since(base) == {"job0", "job1", "job2", "new"}
    assert made.settled() == made


def rows(store: SqliteStore) -> dict[str, int]:
    with sqlite3.connect(store.db_path) as conn:
        return dict(conn.execute("SELECT name, seq FROM jobs"))


def test_a_transaction_writes_only_the_rows_of_the_jobs_it_changed(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state(50)
    before = rows(store)
    with store.transaction() as txn:
        txn.state = txn.state.with_job("job7", job("job7", runs=9))
    after = rows(store)
    assert {n for n in after if after[n] != before[n]} == {"job7"}
    # A state rebuilt from scratch (as reconcile does) with one job different: the same.
    with store.transaction() as txn:
        jobs = dict(txn.state.jobs)
        jobs["job9"] = job("job9", runs=4)
        txn.state = State(jobs=jobs, revision="deadbeef", applied_at=T0)
    again = rows(store)
    assert {n for n in again if again[n] != after[n]} == {"job9"}


def test_a_store_reads_other_writers_changes_removals_and_head_incrementally(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state(5)
    other = SqliteStore(store.state_dir)
    assert other.read() == sample_state(5)
    with store.transaction() as txn:
        txn.state = txn.state.with_job("job1", None).with_job("job2", job("job2", runs=5)).with_(revision="cafe")
    with store.transaction() as txn:
        txn.state = txn.state.with_job("new", job("new"))
    seen = other.read()
    assert sorted(seen.jobs) == ["job0", "job2", "job3", "job4", "new"]
    assert seen.jobs["job2"].run_count == 5
    assert seen.revision == "cafe"
    assert seen == store.read()


def test_a_reader_behind_the_purged_tombstones_reads_every_row_again(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_mod, "_KEEP_TOMBSTONES", 4)
    monkeypatch.setattr(sqlite_mod, "_PURGE_EVERY", 2)
    with store.transaction() as txn:
        txn.state = sample_state(10)
    behind = SqliteStore(store.state_dir)
    assert len(behind.read().jobs) == 10
    for i in range(10):
        with store.transaction() as txn:
            txn.state = txn.state.with_job(f"job{i}", None) if i < 5 else txn.state.with_job(f"x{i}", job(f"x{i}"))
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE body IS NULL").fetchone()[0] < 5  # purged
    assert behind.read() == store.read()
    assert sorted(behind.read().jobs) == ["job5", "job6", "job7", "job8", "job9", "x5", "x6", "x7", "x8", "x9"]


INCREMENT = """
import sys
from cronfile.stores.sqlite import SqliteStore
from cronfile.state import JobState
store = SqliteStore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with store.transaction() as txn:
        js = txn.state.jobs["job0"]
        txn.state = txn.state.with_job("job0", js.with_(run_count=js.run_count + 1))
"""


def test_concurrent_processes_read_modify_write_and_lose_no_update(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state(200)
    procs = [run_py(INCREMENT, str(store.state_dir), "25") for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert store.read().jobs["job0"].run_count == 100
    assert SqliteStore(store.state_dir).read().jobs["job0"].run_count == 100


CLAIM = """
import sys
from datetime import datetime, timedelta, UTC
from cronfile.stores.sqlite import SqliteStore
from cronfile.state import Running
store = SqliteStore(sys.argv[1])
me = sys.argv[2]
t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
for k in range(int(sys.argv[3])):
    instant = t0 + timedelta(seconds=k)
    with store.transaction() as txn:
        js = txn.state.jobs["job0"]
        if js.next_run is not None and js.next_run <= instant:
            run = Running(f"{me}-{k}", instant, instant, "schedule", me)
            txn.state = txn.state.with_job("job0", js.with_(running=(*js.running, run), next_run=instant + timedelta(seconds=1)))
            print(instant.isoformat(), flush=True)
"""


def test_an_instant_is_claimed_at_most_once_across_processes(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = State(jobs={"job0": job("job0").with_(next_run=T0, running=())})
    procs = [run_py(CLAIM, str(store.state_dir), f"p{i}", "40") for i in range(4)]
    claimed: Counter[str] = Counter()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        claimed.update(out.split())
    assert claimed and max(claimed.values()) == 1
    assert len(store.read().jobs["job0"].running) == sum(claimed.values())


HOLD = """
import sys, time
from cronfile.stores.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
with store.transaction() as txn:
    txn.state = txn.state.with_job("job0", None).with_(revision="half")
    print("ready", flush=True)
    time.sleep(120)
"""


def test_a_process_killed_inside_a_transaction_leaves_the_previous_state_and_no_lock(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    p = run_py(HOLD, str(store.state_dir))
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGKILL)
        p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    fresh = SqliteStore(store.state_dir, lock_timeout=5)
    assert fresh.read() == sample_state()
    with fresh.transaction() as txn:  # the dead writer's lock went with it
        txn.state = txn.state.with_(revision="after")
    assert store.read().revision == "after"


@pytest.mark.parametrize("point", ["mid-state-write", "after-state-write"])
def test_a_sigkill_at_the_commit_leaves_either_the_old_or_the_new_state_whole(store: SqliteStore, point: str) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    code = (
        "import sys\nfrom cronfile.stores.sqlite import SqliteStore\n"
        "with SqliteStore(sys.argv[1]).transaction() as txn:\n"
        "    txn.state = txn.state.with_job('job0', None).with_(revision='new')\n"
    )
    p = run_py(code, str(store.state_dir), env={"CRONFILE_FAULT": f"{point}:1"})
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, err
    state = SqliteStore(store.state_dir).read()
    if point == "mid-state-write":
        assert state == sample_state()
    else:
        assert state == sample_state().with_job("job0", None).with_(revision="new")


def test_a_write_lock_held_too_long_is_a_locked_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state", lock_timeout=0.3)
    with store.transaction() as txn:
        txn.state = sample_state()
    p = run_py(HOLD, str(store.state_dir))
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        locked = r"state\.db is locked by another process for more than 0\.3s"
        with pytest.raises(LockedError, match=locked), store.transaction():
            pass
        assert store.read() == sample_state()  # readers never wait for the writer
    finally:
        p.kill()
        p.communicate()


def test_threads_of_one_process_exclude_each_other(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()

    def work() -> None:
        for _ in range(20):
            with store.transaction() as txn:
                js = txn.state.jobs["job0"]
                txn.state = txn.state.with_job("job0", js.with_(run_count=js.run_count + 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.read().jobs["job0"].run_count == 80


# -- files, modes, damage -------------------------------------------------------------


def test_the_database_and_its_wal_files_are_0600_in_a_0700_dir_whatever_the_umask(store: SqliteStore) -> None:
    old = os.umask(0o022)
    try:
        with store.transaction() as txn:
            txn.state = sample_state()
        other = SqliteStore(store.state_dir)
        with other.transaction() as txn:  # a second connection: the WAL files stay
            txn.state = txn.state.with_(revision="x")
    finally:
        os.umask(old)
    assert mode(store.state_dir) == 0o700
    made = [p for p in store.state_dir.iterdir() if p.name.startswith("state.db")]
    assert {p.name for p in made} >= {"state.db", "state.db-wal", "state.db-shm"}
    assert all(mode(p) == 0o600 for p in made), {p.name: oct(mode(p)) for p in made}
    assert not list(store.state_dir.glob(".state.db.*"))  # no temp file left


def test_a_damaged_database_is_an_error_naming_the_file_and_is_left_untouched(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    (d / "state.db").write_bytes(b"this is not a database at all" * 200)
    before = (d / "state.db").read_bytes()
    with pytest.raises(StateError, match=r"state\.db is not a readable cronfile state database.*backup"):
        SqliteStore(d).read()
    with pytest.raises(StateError, match=r"state\.db"), SqliteStore(d).transaction():
        pass
    assert (d / "state.db").read_bytes() == before


def test_a_wal_left_by_a_database_moved_aside_is_not_replayed_into_a_new_one(tmp_path: Path) -> None:
    old = SqliteStore(tmp_path / "old")
    with old.transaction() as txn:
        txn.state = sample_state()
    held = sqlite3.connect(old.db_path)  # a connection open: the WAL stays beside it
    held.execute("SELECT 1 FROM head").fetchone()
    try:
        assert (tmp_path / "old" / "state.db-wal").stat().st_size > 0
        new = SqliteStore(tmp_path / "new")
        new.ensure()
        for suffix in ("-wal", "-shm"):
            (tmp_path / "new" / f"state.db{suffix}").write_bytes((tmp_path / "old" / f"state.db{suffix}").read_bytes())
        with new.transaction() as txn:
            assert txn.state == State()
            txn.state = txn.state.with_(revision="fresh")
        assert SqliteStore(tmp_path / "new").read() == State(revision="fresh")
    finally:
        held.close()


def test_a_database_from_a_newer_cronfile_is_refused(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(StateError, match="schema version 99 is not supported"):
        SqliteStore(store.state_dir).read()


def test_a_job_row_that_does_not_decode_is_a_state_error(store: SqliteStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("UPDATE jobs SET body = '{\"spec\": 1}' WHERE name = 'job1'")
    with pytest.raises(StateError, match=r"state\.db: malformed state"):
        SqliteStore(store.state_dir).read()


# -- history --------------------------------------------------------------------------


def test_history_reads_back_oldest_first_and_the_last_n(store: SqliteStore) -> None:
    for i in range(5):
        store.append_history("a", {"run_id": f"r{i}", "status": "success"})
    store.append_history("b", {"run_id": "x", "status": "failed"})
    assert [r["run_id"] for r in store.read_history("a")] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r["run_id"] for r in store.read_history("a", 2)] == ["r3", "r4"]
    assert store.read_history("a", 0) == []
    assert store.read_history("nobody") == []
    assert store.history_jobs() == ["a", "b"]


def test_history_written_inside_a_state_transaction_commits_with_it_or_not_at_all(tmp_path: Path) -> None:
    # As an engine's recovery does: the dead run's record, then its entry dropped.
    store = SqliteStore(tmp_path / "state", lock_timeout=2)
    with store.transaction() as txn:
        txn.state = sample_state()
    with store.transaction() as txn:
        store.append_history("job0", {"run_id": "r2", "status": "interrupted"})
        assert [r["run_id"] for r in store.read_history("job0")] == ["r2"]  # its own write
        assert SqliteStore(store.state_dir).read_history("job0") == []  # not yet committed
        txn.state = txn.state.with_job("job0", txn.state.jobs["job0"].with_(running=()))
    assert [r["run_id"] for r in SqliteStore(store.state_dir).read_history("job0")] == ["r2"]
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as txn:
        store.append_history("job1", {"run_id": "r3", "status": "interrupted"})
        raise RuntimeError("boom")
    assert store.read_history("job1") == []


def test_prune_keeps_the_last_runs_with_their_delivery_lines_and_deletes_older_logs(store: SqliteStore) -> None:
    for i in range(5):
        store.log_file("a", f"r{i}").write_text("out")
        store.append_history("a", {"run_id": f"r{i}", "status": "success"})
        store.append_history("a", {"run_id": f"r{i}", "deliveries": [{"key": "k"}]})
    store.log_file("a", "inflight").write_text("still running")
    store.prune("a", 2)
    assert [r["run_id"] for r in store.read_history("a")] == ["r3", "r3", "r4", "r4"]
    assert sorted(p.name for p in store.job_dir("a").glob("*.log")) == ["inflight.log", "r3.log", "r4.log"]
    store.prune("a", 0)
    assert store.read_history("a") == []


def test_a_job_name_that_could_escape_the_state_dir_is_refused(store: SqliteStore) -> None:
    for bad in ("../x", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            store.append_history(bad, {"run_id": "r"})


class SqliteEngine(LocalEngine):
    """The tests' in-process engine, on this store (whatever the helpers default to)."""

    def __init__(self, root: Path, start: datetime) -> None:
        from cronfile.engine import Engine
        from cronfile.load import load_project

        super().__init__(root, start)
        self.store = SqliteStore(root / ".cronfile")
        self.engine = Engine(root, self.store, project=load_project(root, now=start), mode="tick", clock=self.clock, log_stream=self.log)


def test_an_engine_on_the_sqlite_store_runs_records_and_prunes(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    (root / "cronfile.yaml").write_text("history_limit: 2\n")
    write_job(root, "hello", "schedule: '*/5 * * * *'\nshell: echo hello $CRONFILE_RUN_ID\n")
    start = datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC)
    le = SqliteEngine(root, start)
    with le:
        for k in range(1, 4):
            le.step(start + timedelta(minutes=5 * k))
    runs = le.history("hello")
    assert [r["status"] for r in runs] == ["success", "success"]  # pruned to history_limit
    assert le.state("hello").run_count == 3
    assert le.state("hello").running == ()
    assert not (root / ".cronfile" / "state.json").exists()
    wait_for(lambda: all(p.read_bytes().startswith(b"hello") for p in (root / ".cronfile" / "runs" / "hello").glob("*.log")))


# -- the import of an older state dir --------------------------------------------------


def legacy_dir(d: Path) -> Store:
    old = Store(d)
    with old.transaction() as txn:
        txn.state = sample_state(4)
    old.append_history("job0", {"run_id": "r1", "status": "success"})
    old.append_history("job0", {"run_id": "r1", "deliveries": []})
    old.append_history("gone", {"run_id": "g1", "status": "failed"})
    with old.history_path("gone").open("ab") as f:
        f.write(b'{"run_id": "torn", "sta')  # a crash mid-append
    return old


def test_an_older_state_dir_is_imported_once_and_its_files_renamed(tmp_path: Path) -> None:
    d = tmp_path / "state"
    old = legacy_dir(d)
    expected_state = old.read()
    expected = {j: old.read_history(j) for j in ("job0", "gone")}
    store = SqliteStore(d)
    assert store.exists()
    assert store.read() == expected_state
    assert {j: store.read_history(j) for j in ("job0", "gone")} == expected
    assert not (d / "state.json").exists() and (d / "state.json.migrated").exists()
    assert (d / "runs" / "gone" / "history.jsonl.migrated").exists()
    assert not list(d.glob("runs/*/history.jsonl"))
    # Idempotent: a second store (another process) imports nothing again.
    with store.transaction() as txn:
        txn.state = txn.state.with_(revision="later")
    again = SqliteStore(d)
    assert again.read().revision == "later"
    assert again.read_history("job0") == expected["job0"]


def test_a_crash_during_the_import_leaves_the_old_files_and_the_next_open_imports_them(tmp_path: Path) -> None:
    d = tmp_path / "state"
    old = legacy_dir(d)
    expected = old.read()
    code = "import sys\nfrom cronfile.stores.sqlite import SqliteStore\nSqliteStore(sys.argv[1]).read()\n"
    p = run_py(code, str(d), env={"CRONFILE_FAULT": "mid-migration:1"})
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, err
    assert not (d / "state.db").exists() and (d / "state.json").exists()
    store = SqliteStore(d)
    assert store.read() == expected
    assert [r["run_id"] for r in store.read_history("job0")] == ["r1", "r1"]
    assert not list(d.glob(".state.db.*"))


def test_a_crash_between_the_new_database_and_the_renames_is_finished_without_a_second_import(tmp_path: Path) -> None:
    d = tmp_path / "state"
    legacy_dir(d)
    code = "import sys\nfrom cronfile.stores.sqlite import SqliteStore\nSqliteStore(sys.argv[1]).read()\n"
    p = run_py(code, str(d), env={"CRONFILE_FAULT": "after-migration:1"})
    _, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, err
    assert (d / "state.db").exists() and (d / "state.json").exists()
    store = SqliteStore(d)
    assert [r["run_id"] for r in store.read_history("job0")] == ["r1", "r1"]  # not twice
    assert (d / "state.json.migrated").exists() and not (d / "state.json").exists()
    assert not (d / "state.db.migrating").exists()


def test_a_damaged_state_json_is_not_imported_and_is_left_untouched(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    (d / "state.json").write_text('{"version": 1, "jobs": {')
    with pytest.raises(StateError, match=r"state\.json is not valid JSON"):
        SqliteStore(d).read()
    assert (d / "state.json").read_text() == '{"version": 1, "jobs": {'
    assert not (d / "state.db").exists()


def test_history_json_written_by_the_store_is_what_was_appended(store: SqliteStore) -> None:
    rec = {"run_id": "r1", "status": "success", "text": "ünïcode", "n": 3, "deliveries": [{"key": "a"}]}
    store.append_history("a", rec)
    assert store.read_history("a") == [json.loads(json.dumps(rec))]


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True).returncode == 0


def test_on_a_read_only_filesystem_reads_work_and_a_write_is_one_clear_error(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt):
        pytest.skip("cannot mount a tmpfs here (not root, or not allowed)")
    try:
        store = SqliteStore(mnt / "state")
        with store.transaction() as txn:
            txn.state = sample_state()
        store.append_history("job0", {"run_id": "r1", "status": "success"})
        store.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        ro = SqliteStore(mnt / "state")
        assert ro.exists() and ro.read() == sample_state()
        assert ro.read_history("job0") == [{"run_id": "r1", "status": "success"}]
        with pytest.raises(StateError, match=r"cannot write .*state\.db: Read-only file system"), ro.transaction():
            pass
        with pytest.raises(StateError, match="Read-only file system"):
            ro.append_history("job0", {"run_id": "r2"})
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_lines_appended_inside_a_transaction_do_not_look_at_the_state_dir_again(store: SqliteStore, monkeypatch) -> None:
    # A group commit appends a line per run ending in one transaction, whose start
    # checked the state dir already: a stat per line was a GIL hand-over per run (issue 17).
    with store.transaction() as txn:
        txn.state = sample_state(1)
    looked: list[str] = []
    real = Path.is_dir

    def is_dir(self: Path) -> bool:
        looked.append(str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    with store.transaction() as txn:
        looked.clear()
        for i in range(5):
            store.append_history("job0", {"run_id": f"20260301T000000-000{i}", "status": "success"})
        assert looked == []
        txn.state = txn.state.with_job("job0", txn.state.jobs["job0"].with_(run_count=5))
    assert [r["run_id"] for r in store.read_history("job0")][-5:] == [f"20260301T000000-000{i}" for i in range(5)]
    store.append_history("job0", {"run_id": "20260301T000001-0000", "status": "success"})
    assert looked  # outside a transaction it still checks (a dir removed meanwhile is made again)
