"""The engine's state writer (cronfile/writer.py) over a real SQLite store: a run's record
and its end commit together or not at all, runs ending together share one transaction,
one bad update fails only itself, a pid given to ``commit_soon`` is written by the next
commit or by a flush of its own, and a prune drops only what history_limit says."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import count_transactions, wait_for

from cronfile.errors import StateWriteError
from cronfile.state import JobState, Running, State
from cronfile.stores.file import FileStore
from cronfile.stores.sqlite import SqliteStore
from cronfile.writer import SOON, StateWriter

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def job(name: str, running: tuple[Running, ...] = ()) -> JobState:
    return JobState(
        spec={"name": name, "schedule": "* * * * *", "shell": "true", "timezone": "UTC"},
        spec_hash=f"h-{name}",
        schedule_sig="sig",
        created_at=T0,
        running=running,
    )


def seeded(store: Any, names: list[str]) -> StateWriter:
    with store.transaction() as txn:
        txn.state = State(jobs={n: job(n, (Running(f"run-{n}", T0, T0, "schedule", "e1"),)) for n in names})
    return StateWriter(store)


def ended(name: str):
    def fn(state: State) -> State:
        js = state.jobs[name]
        return state.with_job(name, js.with_(running=()))

    return fn


def record(name: str, n: int = 0) -> tuple[str, dict[str, Any]]:
    return (name, {"run_id": f"run-{name}-{n}", "status": "success"})


@pytest.fixture(params=["sqlite", "file"])
def store(request, tmp_path: Path) -> Any:
    return SqliteStore(tmp_path / "state") if request.param == "sqlite" else FileStore(tmp_path / "state")


def test_a_record_and_its_end_are_written_together(store):
    writer = seeded(store, ["a"])
    writer.commit(ended("a"), history=(record("a"),))
    assert store.read().jobs["a"].running == ()
    assert [r["run_id"] for r in store.read_history("a")] == ["run-a-0"]


def test_a_history_line_alone_is_committed_even_though_the_state_did_not_change(store):
    writer = seeded(store, ["a"])
    errors = writer.append_many((record("a", 1), record("a", 2)))
    assert errors == [None, None]
    assert [r["run_id"] for r in store.read_history("a")] == ["run-a-1", "run-a-2"]


def test_sqlite_writes_neither_the_record_nor_the_end_when_the_transaction_fails(tmp_path):
    store = SqliteStore(tmp_path / "state")
    writer = seeded(store, ["a"])

    def broken(state: State) -> State:
        raise StateWriteError("disk full", 28)

    with pytest.raises(StateWriteError):
        writer.commit(broken, history=(record("a"),))
    assert store.read_history("a") == []  # the line went with the transaction
    assert store.read().jobs["a"].running != ()


def test_runs_ending_together_share_one_transaction_and_one_bad_update_fails_alone(store):
    names = [f"j{i}" for i in range(8)]
    writer = seeded(store, names)
    count = count_transactions(writer)

    def bad(state: State) -> State:
        raise ValueError("a bug in one update")

    errors: dict[str, BaseException | None] = {}

    def submit(name: str) -> None:
        try:
            writer.commit(bad if name == "j3" else ended(name), history=(record(name),))
            errors[name] = None
        except BaseException as e:  # noqa: BLE001
            errors[name] = e

    with writer._committer:  # a transaction in progress: the others queue up behind it
        threads = [threading.Thread(target=submit, args=(n,)) for n in names]
        for t in threads:
            t.start()
        wait_for(lambda: len(writer._updates) == len(names), what="eight queued updates")
    for t in threads:
        t.join(10)
    assert isinstance(errors.pop("j3"), ValueError)
    assert set(errors.values()) == {None}
    state = store.read()
    for n in names:
        assert (state.jobs[n].running == ()) == (n != "j3"), n
        assert bool(store.read_history(n)) == (n != "j3") or not getattr(store, "history_in_txn", False), n
    # One shared try, then each update again on its own (the bad one among them).
    assert count[0] == 1 + len(names)


def test_a_pid_given_to_commit_soon_rides_on_the_next_commit(store):
    writer = seeded(store, ["a", "b"])
    txns = count_transactions(writer)
    with writer._committer:  # hold the flusher off: only the next commit may carry it
        writer.commit_soon(lambda s: s.with_pids({"run-a": ("a", 4242)}), on_error=lambda e: None)
    writer.commit(ended("b"))
    assert txns[0] == 1
    assert store.read().jobs["a"].running[0].pid == 4242


def test_a_pid_given_to_commit_soon_is_written_by_a_flush_when_nothing_else_commits(store):
    writer = seeded(store, ["a"])
    errors: list[BaseException] = []
    writer.commit_soon(lambda s: s.with_pids({"run-a": ("a", 4243)}), on_error=errors.append)
    wait_for(lambda: store.read().jobs["a"].running[0].pid == 4243, timeout=SOON + 10, what="the flush")
    assert errors == []


def test_commit_soon_reports_what_its_transaction_raised(tmp_path):
    store = SqliteStore(tmp_path / "state")
    writer = seeded(store, ["a"])
    errors: list[BaseException] = []

    def broken(state: State) -> State:
        raise StateWriteError("disk full", 28)

    writer.commit_soon(broken, on_error=errors.append)
    wait_for(lambda: errors, timeout=SOON + 10, what="the report")
    assert isinstance(errors[0], StateWriteError)


def test_a_prune_keeps_history_limit_runs_of_that_job_only(store):
    writer = seeded(store, ["a", "b"])
    writer.append_many(tuple(record("a", i) for i in range(5)) + tuple(record("b", i) for i in range(5)))
    assert writer.commit(ended("a"), history=(record("a", 5),), prune=("a", 3)) is None
    assert [r["run_id"] for r in store.read_history("a")] == ["run-a-3", "run-a-4", "run-a-5"]
    assert len(store.read_history("b")) == 5


def test_a_history_line_written_beside_a_failed_state_change_is_not_reported_failed(tmp_path):
    # The file store appends lines before its transaction. A pid (commit_soon) whose
    # transaction fails must not fail a record that shared its batch: the line is on
    # disk, and a caller told otherwise wrote it again on its retry.
    store = FileStore(tmp_path / "state")
    writer = seeded(store, ["a"])
    errors: list[BaseException] = []

    def broken(state: State) -> State:
        raise StateWriteError("disk full", 28)

    with writer._committer:  # hold the batch open until both are queued
        writer.commit_soon(broken, on_error=errors.append)
        done: list[Any] = []
        t = threading.Thread(target=lambda: done.append(writer.commit(history=(record("a"),))))
        t.start()
        wait_for(lambda: len(writer._updates) == 2, timeout=10, what="both updates queued")
    t.join(30)
    assert done == [None]  # no error raised for the record
    assert [h["run_id"] for h in store.read_history("a")] == ["run-a-0"]
    wait_for(lambda: errors, timeout=SOON + 10, what="the pid's report")
    assert isinstance(errors[0], StateWriteError)


def test_a_prune_inside_a_transaction_deletes_its_logs_only_once_it_commits(tmp_path):
    # The writer prunes inside a state transaction: if that never commits (a full disk
    # at COMMIT), the history rows stay, and so must their logs.
    store = SqliteStore(tmp_path / "state")
    seeded(store, ["a"])
    logs = store.job_dir("a")
    logs.mkdir(parents=True, exist_ok=True)
    for n in range(3):
        store.append_history("a", {"run_id": f"run-a-{n}", "status": "success"})
        (logs / f"run-a-{n}.log").write_text("output\n")
    with pytest.raises(RuntimeError), store.transaction():
        store.prune("a", 1)
        raise RuntimeError("the commit never comes")
    assert len(store.read_history("a")) == 3
    assert sorted(p.name for p in logs.glob("*.log")) == ["run-a-0.log", "run-a-1.log", "run-a-2.log"]
    with store.transaction():
        store.prune("a", 1)
    assert [h["run_id"] for h in store.read_history("a")] == ["run-a-2"]
    assert sorted(p.name for p in logs.glob("*.log")) == ["run-a-2.log"]


def test_two_engines_writing_one_job_leave_exactly_history_limit_runs(tmp_path):
    # Two stores on one state dir: two engines, each with its own connections. Their
    # runs' ends interleave; whatever the order, the last prune sees every line.
    first = SqliteStore(tmp_path / "state")
    writers = [seeded(first, ["a"]), StateWriter(SqliteStore(tmp_path / "state"))]
    errors: list[BaseException | None] = []

    def engine(k: int) -> None:
        for i in range(12):
            errors.append(writers[k].commit(history=(record("a", 100 * k + i),), prune=("a", 3)))

    threads = [threading.Thread(target=engine, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [None] * 24
    kept = [r["run_id"] for r in first.read_history("a")]
    assert len(kept) == 3
    written = {f"run-a-{100 * k + i}" for k in (0, 1) for i in range(12)}
    assert set(kept) <= written


def test_a_prune_counts_the_lines_another_engine_wrote_since_this_one_counted(tmp_path):
    # One engine's count after its commit is below the limit; the other then appends
    # lines without pruning; the first engine's next run's end must still prune to the limit.
    mine = SqliteStore(tmp_path / "state")
    writer = seeded(mine, ["a"])
    assert writer.commit(history=(record("a", 0),), prune=("a", 3)) is None
    other = SqliteStore(tmp_path / "state")
    for i in range(1, 6):
        other.append_history(*record("a", i))
    assert len(mine.read_history("a")) == 6
    assert writer.commit(history=(record("a", 6),), prune=("a", 3)) is None
    assert [r["run_id"] for r in mine.read_history("a")] == ["run-a-4", "run-a-5", "run-a-6"]
    # Below the limit again, a prune asked of a job this engine did not just write counts.
    assert mine.prune_due("a", 2) is True
    assert mine.prune_due("a", 3) is False
