"""What the child processes of the contract suite do (module level: they are started
with multiprocessing's spawn, which imports this module afresh in each child)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from cronfile.state import JobState, Running, State

from .backends import Backend

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
JOB = "backup"


def fresh_state() -> State:
    js = JobState(spec={"name": JOB, "shell": "true"}, spec_hash="h", schedule_sig="s", created_at=T0)
    return State(jobs={JOB: js}, applied_at=T0)


def instant(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def increment(backend: Backend, times: int, barrier: Any) -> None:
    """``times`` read-modify-writes of the job's run_count, each its own transaction."""
    store = backend.open()
    barrier.wait()
    for _ in range(times):
        with store.transaction() as txn:
            js = txn.state.jobs[JOB]
            txn.state = txn.state.with_job(JOB, js.with_(run_count=js.run_count + 1))


def claim(backend: Backend, me: str, instants: int, barrier: Any, results: Any) -> None:
    """Claim each (job, instant) as an engine does: in a transaction, add a Running
    entry unless one for that instant is there already. Reports what it won."""
    store = backend.open()
    barrier.wait()
    won = []
    for i in range(instants):
        when = instant(i)
        with store.transaction() as txn:
            js = txn.state.jobs[JOB]
            if any(r.scheduled_for == when for r in js.running):
                continue
            run = Running(f"{me}-{i}", when, when, "schedule", me)
            txn.state = txn.state.with_job(JOB, js.with_(running=(*js.running, run)))
        won.append(i)
    results.put((me, won))


def hold_engine(backend: Backend, engine_id: str, ready: Any) -> None:
    lock = backend.open().engine_lock(engine_id)  # kept: a lock dropped is released
    ready.set()
    threading.Event().wait()  # until SIGKILLed
    lock.release()


def hold_daemon(backend: Backend, ready: Any) -> None:
    lock = backend.open().daemon_lock()
    ready.set()
    threading.Event().wait()  # until SIGKILLed
    lock.release()


def adopt(backend: Backend, me: str, dead: str, barrier: Any, results: Any) -> None:
    store = backend.open()
    barrier.wait()
    taken = store.outbox_adopt(me, lambda engine: engine != dead)
    results.put((me, sorted(key for key, _ in taken)))
