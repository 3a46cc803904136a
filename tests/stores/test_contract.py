"""The store contract: what every caller of a store may rely on (cronfile/stores/base.py),
run against each implementation (``backends.SETUPS``: today the file store). In the
spirit of APScheduler 4's data-store tests: real processes race each other through the
store; nothing here knows how an implementation keeps its data."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronfile.errors import LockedError
from cronfile.state import State
from cronfile.stores.base import EngineInfo, Store, tail_runs

from . import workers
from .backends import Backend
from .workers import JOB, fresh_state, instant

SPAWN = multiprocessing.get_context("spawn")
PROCS = 4
TIMEOUT = 120.0  # for children to start and finish on a loaded machine


def eventually(cond: Callable[[], bool], within: float) -> bool:
    """``cond()`` now; for a store that takes up to ``within`` seconds to notice (a
    lease), polled until then."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def run_all(target: Callable[..., None], argsets: list[tuple[Any, ...]]) -> None:
    procs = [SPAWN.Process(target=target, args=args) for args in argsets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)


def drain(results: Any, n: int) -> list[Any]:
    return [results.get(timeout=TIMEOUT) for _ in range(n)]


class Holder:
    """A child process that holds a lock (``workers.hold_*``) until killed."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.ready = SPAWN.Event()
        self.proc = SPAWN.Process(target=target, args=(*args, self.ready))
        self.proc.start()
        assert self.ready.wait(TIMEOUT), "the child did not take its lock"

    def sigkill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(TIMEOUT)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:
        h.sigkill()


# -- state and claims ------------------------------------------------------------------


def test_a_fresh_store_is_empty_everywhere(store: Store) -> None:
    assert isinstance(store, Store)  # every method of the protocol is there
    assert store.read() == State()
    assert not store.exists()
    assert store.read_history(JOB) == []
    assert store.history_jobs() == []
    assert store.read_audit() == []
    assert store.read_log(JOB, "r1") is None
    assert store.log_ids(JOB) == []
    assert store.keep_log(JOB, "r1") is None
    assert store.engines() == []
    assert not store.engine_alive("nobody")
    assert not store.daemon_running()
    assert store.daemon_pid() is None
    assert store.outbox_pending("r1") == []
    assert store.written_at() is None


def test_ensure_creates_a_writable_store_with_a_clock_close_to_ours(store: Store) -> None:
    assert not store.created()
    store.ensure()
    store.ensure()  # idempotent
    assert store.created() and not store.exists()
    assert store.write_problem() is None
    skew = store.clock_skew(time.time)
    assert skew is not None and abs(skew) < 60
    assert store.inspect(), "a store reports at least one finding on itself"


def test_a_transaction_writes_what_every_new_reader_sees(backend: Backend, store: Store) -> None:
    with store.transaction() as txn:
        assert txn.state == State()
        txn.state = fresh_state()
    assert store.exists()
    assert store.read() == fresh_state()
    assert backend.open().read() == fresh_state()  # another opening: another process
    written = store.written_at()
    assert written is not None and abs(written - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_store_reads_back_its_own_write_as_the_same_object_until_another_writer_comes(backend: Backend, store: Store) -> None:
    """What the engine's writer tells its own writes from another process's by
    (writer.StateWriter.ours): without it a daemon wakes for a claim pass after each of
    its own commits (200 runs a second fell behind on it)."""
    with store.transaction() as txn:
        txn.state = fresh_state()
    mine = txn.state
    assert store.read() is mine and store.read() is mine
    with store.transaction() as txn:
        assert txn.state is mine  # a transaction starts from it too
    other = backend.open()
    with other.transaction() as txn:
        js = txn.state.jobs[JOB]
        txn.state = txn.state.with_job(JOB, js.with_(run_count=5))
    after = store.read()
    assert after is not mine and after.jobs[JOB].run_count == 5


def test_an_exception_inside_a_transaction_writes_nothing(backend: Backend, store: Store) -> None:
    with store.transaction() as txn:
        txn.state = fresh_state()
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as txn:
        js = txn.state.jobs[JOB]
        txn.state = txn.state.with_job(JOB, js.with_(run_count=99))
        raise RuntimeError("boom")
    assert backend.open().read() == fresh_state()
    with store.transaction() as txn:  # and the store is usable after it
        assert txn.state == fresh_state()


def test_concurrent_read_modify_writes_from_processes_lose_no_update(backend: Backend, store: Store) -> None:
    with store.transaction() as txn:
        txn.state = fresh_state()
    times = 25
    barrier = SPAWN.Barrier(PROCS, timeout=TIMEOUT)
    run_all(workers.increment, [(backend, times, barrier)] * PROCS)
    assert backend.open().read().jobs[JOB].run_count == PROCS * times


def test_an_instant_is_claimed_by_exactly_one_of_several_processes(backend: Backend, store: Store) -> None:
    with store.transaction() as txn:
        txn.state = fresh_state()
    instants = 20
    barrier = SPAWN.Barrier(PROCS, timeout=TIMEOUT)
    results = SPAWN.Queue()
    run_all(workers.claim, [(backend, f"e{n}", instants, barrier, results) for n in range(PROCS)])
    won = dict(drain(results, PROCS))
    winners = sorted(i for claimed in won.values() for i in claimed)
    assert winners == list(range(instants)), won  # each instant once, none lost
    running = backend.open().read().jobs[JOB].running
    assert sorted(r.scheduled_for for r in running) == [instant(i) for i in range(instants)]
    assert {r.run_id for r in running} == {f"{me}-{i}" for me, claimed in won.items() for i in claimed}


# -- history ---------------------------------------------------------------------------


def _run(run_id: str, status: str = "success") -> dict[str, Any]:
    return {"job": JOB, "run_id": run_id, "status": status, "started_at": "2026-03-02T08:00:00+00:00"}


def _write_log(store: Store, run_id: str, data: bytes) -> None:
    """As the runner does: create the file the store names, 0600, and write."""
    fd = os.open(store.log_file(JOB, run_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_history_reads_back_oldest_first_and_its_last_n(store: Store) -> None:
    delivered = {"run_id": "r2", "deliveries": [{"target": "stdout", "ok": True, "key": "r2.0"}]}
    for rec in (_run("r1"), _run("r2", "failed"), delivered, _run("r3")):
        store.append_history(JOB, rec)
    assert store.read_history(JOB) == [_run("r1"), _run("r2", "failed"), delivered, _run("r3")]
    assert store.read_history(JOB, 2) == [delivered, _run("r3")]
    assert store.read_history(JOB, 0) == []
    assert store.read_history("other") == []


def test_last_runs_reads_every_jobs_last_n_runs_at_once(store: Store) -> None:
    """``status`` reads every job's last runs in one call. A run is placed by its first
    record: a deliveries line appended after newer runs keeps its run where it began
    (and out of the last n, whole, when it began before them). A record without a
    run_id is no run. Per job it is what tail_runs of the whole history says."""
    late = {"run_id": "a1", "deliveries": [{"target": "stdout", "ok": True, "key": "a1.0"}]}
    soon = {"run_id": "a3", "deliveries": [{"target": "stdout", "ok": True, "key": "a3.0"}]}
    lines = {
        "a-job": [_run("a1"), _run("a2", "failed"), _run("a3"), soon, late, {"status": "success"}, _run("a4")],
        "b-job": [_run("b1")],
        "c-job": [{"job": "c-job", "status": "success"}],  # no run id: no run
    }
    for job, recs in lines.items():
        for rec in recs:
            store.append_history(job, rec)
    assert store.last_runs(2) == {"a-job": [_run("a3"), soon, _run("a4")], "b-job": [_run("b1")]}
    assert store.last_runs(3) == {"a-job": [_run("a2", "failed"), _run("a3"), soon, _run("a4")], "b-job": [_run("b1")]}
    assert store.last_runs(4)["a-job"] == [r for r in lines["a-job"] if r.get("run_id")]
    assert store.last_runs(0) == {}
    for n in (1, 2, 3, 5):
        got = store.last_runs(n)
        for job in store.history_jobs():
            assert got.get(job, []) == tail_runs(store.read_history(job), n), (job, n)


def test_history_jobs_names_every_job_with_history(store: Store) -> None:
    store.append_history("b-job", _run("r1"))
    store.append_history("a-job", _run("r2"))
    assert store.history_jobs() == ["a-job", "b-job"]


def test_prune_counts_runs_and_keeps_a_delivery_line_with_its_run(store: Store) -> None:
    delivered = {"run_id": "r2", "deliveries": [{"target": "stdout", "ok": True}]}
    for rid in ("r1", "r2", "r3"):
        _write_log(store, rid, f"out {rid}".encode())
        assert store.keep_log(JOB, rid) is not None
    store.append_history(JOB, _run("r1"))
    store.append_history(JOB, _run("r2"))
    store.append_history(JOB, _run("r3"))
    store.append_history(JOB, delivered)  # r2's deliveries, after r3's record
    store.prune(JOB, 2)
    assert store.read_history(JOB) == [_run("r2"), _run("r3"), delivered]
    assert store.read_log(JOB, "r1") is None  # a dropped run's log goes with it
    assert store.read_log(JOB, "r2") == b"out r2"
    store.prune(JOB, 5)  # fewer runs than kept: nothing changes
    assert store.read_history(JOB) == [_run("r2"), _run("r3"), delivered]
    store.prune(JOB, 0)
    assert store.read_history(JOB) == []


def test_prune_leaves_the_log_of_a_run_in_flight(store: Store) -> None:
    store.append_history(JOB, _run("r1"))
    store.append_history(JOB, _run("r2"))
    _write_log(store, "r9", b"still running")
    store.prune(JOB, 1)
    assert store.read_log(JOB, "r9") == b"still running"


# -- logs ------------------------------------------------------------------------------


def test_a_log_is_read_back_whole_from_an_offset_and_up_to_a_limit(store: Store) -> None:
    _write_log(store, "r1", b"hello ")
    assert store.read_log(JOB, "r1") == b"hello "  # in flight: as far as it was written
    assert "r1" in store.log_ids(JOB)
    _write_log(store, "r1", b"world\n")
    kept = store.keep_log(JOB, "r1")
    assert isinstance(kept, str) and kept
    store.append_history(JOB, {**_run("r1"), "log_path": kept})
    assert store.read_log(JOB, "r1") == b"hello world\n"
    assert store.read_log(JOB, "r1", offset=6) == b"world\n"
    assert store.read_log(JOB, "r1", offset=12) == b""
    assert store.read_log(JOB, "r1", limit=5) == b"hello"
    assert store.log_ids(JOB) == ["r1"]
    assert store.read_log(JOB, "r2") is None


def test_keep_log_bounds_a_log_by_its_limit(store: Store) -> None:
    _write_log(store, "r1", b"x" * 100)
    assert store.keep_log(JOB, "r1", limit=10) is not None
    assert store.read_log(JOB, "r1") == b"x" * 10


def test_a_name_that_would_leave_the_store_is_refused(store: Store) -> None:
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            store.log_file(JOB, bad)
        with pytest.raises(ValueError):
            store.append_history(bad, _run("r1"))


def test_a_child_cronfile_given_child_env_reads_this_store(store: Store, tmp_path: Path) -> None:
    store.append_history(JOB, _run("r1"))
    elsewhere = tmp_path / "no-repo-here"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "cronfile", "-C", str(elsewhere), "history", JOB, "--json"],
        env={**env, **store.child_env()},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["run_id"] for r in json.loads(proc.stdout)] == ["r1"]


# -- audit -----------------------------------------------------------------------------


def test_audit_lines_read_back_in_order(store: Store) -> None:
    store.append_audit({"action": "apply", "summary": "1 to create"})
    store.append_audit({"action": "pause", "job": JOB})
    assert store.read_audit() == [{"action": "apply", "summary": "1 to create"}, {"action": "pause", "job": JOB}]


# -- engines and the daemon ------------------------------------------------------------


def test_an_engine_is_alive_while_its_lock_is_held_and_not_after_release(backend: Backend, store: Store) -> None:
    lock = store.engine_lock("e1")
    other = backend.open()
    try:
        assert lock.held
        assert other.engine_alive("e1")
        assert [(e.engine_id, e.alive) for e in other.engines()] == [("e1", True)]
        with pytest.raises(LockedError):
            other.engine_lock("e1")  # one engine per id
    finally:
        lock.release()
    assert not lock.held
    assert not other.engine_alive("e1")
    assert not store.engine_alive("e1")
    assert [e for e in other.engines() if e.alive] == []


def test_an_engine_killed_by_sigkill_is_dead(backend: Backend, store: Store, holders: list[Holder]) -> None:
    h = Holder(workers.hold_engine, backend, "killed")
    holders.append(h)
    assert store.engine_alive("killed")
    assert any(isinstance(e, EngineInfo) and e.engine_id == "killed" and e.alive for e in store.engines())
    h.sigkill()
    assert eventually(lambda: not store.engine_alive("killed"), backend.dead_after)
    assert not any(e.engine_id == "killed" and e.alive for e in store.engines())
    with store.engine_lock("killed"):  # its id is free again
        assert store.engine_alive("killed")


def test_the_daemon_lock_is_held_by_one_process_at_a_time(backend: Backend, store: Store, holders: list[Holder]) -> None:
    h = Holder(workers.hold_daemon, backend)
    holders.append(h)
    assert store.daemon_running()
    assert store.daemon_pid() == h.proc.pid
    with pytest.raises(LockedError, match=f"pid {h.proc.pid}"):
        store.daemon_lock()
    h.sigkill()
    assert eventually(lambda: not store.daemon_running(), backend.dead_after)
    with store.daemon_lock() as held:
        assert held.held and store.daemon_running()
        assert store.daemon_pid() == os.getpid()
        with pytest.raises(LockedError):
            backend.open().daemon_lock()
    assert not store.daemon_running()


# -- the outbox ------------------------------------------------------------------------


def test_outbox_entries_are_pending_until_done_or_set_aside(store: Store) -> None:
    store.outbox_put("e1", [("r1.0", b"A"), ("r1.1", b"B"), ("r2.0", b"C")])
    assert store.outbox_pending("r1") == ["r1.0", "r1.1"]
    assert store.outbox_pending("r2") == ["r2.0"]
    assert store.outbox_pending("r") == []
    assert store.outbox_adopt("e2", lambda engine: True) == []  # e1 lives: none taken
    assert sorted(store.outbox_adopt("e1", lambda engine: True)) == [("r1.0", b"A"), ("r1.1", b"B"), ("r2.0", b"C")]
    store.outbox_done("e1", "r1.0")
    assert store.outbox_pending("r1") == ["r1.1"]
    store.outbox_bad("e1", "r1.1", "cannot decode it")
    assert store.outbox_pending("r1") == []
    assert store.outbox_adopt("e1", lambda engine: True) == [("r2.0", b"C")]
    assert store.outbox_adopt("e3", lambda engine: False) == [("r2.0", b"C")]  # e1 died
    assert store.outbox_adopt("e1", lambda engine: True) == []  # now e3's
    assert store.outbox_pending("r2") == ["r2.0"]
    store.outbox_done("e3", "r2.0")
    assert store.outbox_pending("r2") == []


def test_a_dead_engines_entries_are_taken_by_exactly_one_adopter(backend: Backend, store: Store) -> None:
    keys = [f"r{i}.0" for i in range(12)]
    store.outbox_put("dead", [(k, k.encode()) for k in keys])
    barrier = SPAWN.Barrier(PROCS, timeout=TIMEOUT)
    results = SPAWN.Queue()
    run_all(workers.adopt, [(backend, f"a{n}", "dead", barrier, results) for n in range(PROCS)])
    taken = dict(drain(results, PROCS))
    every = sorted(k for got in taken.values() for k in got)
    assert every == sorted(keys), taken  # each entry once, none lost
    for me, got in taken.items():  # and each is now its adopter's
        assert sorted(k for k, _ in store.outbox_adopt(me, lambda engine: True)) == got
    assert sorted(k for i in range(12) for k in store.outbox_pending(f"r{i}")) == sorted(keys)
