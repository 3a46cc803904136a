"""Recovery: the runs whose engine died (docs/design.md section 5, "At most once").

A ``running`` entry whose engine's lock is free belongs to a dead engine: the run is
recorded ``interrupted`` (never run again), or, if its own record is already in the
history, stands as recorded; the entry leaves the state, and the leftover processes
are stopped. The engine calls ``reap`` inside its state transactions (start, every
claim) and ``stop_leftovers`` after them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import iso
from .faults import fault
from .history import RunRecord, final_record, short_id
from .observe import Observer
from .spec import Status, Trigger
from .state import LastRun, Running, State
from .stores.base import Store

__all__ = ["Reaped", "dead_runs", "reap", "stop_leftovers"]


@dataclass(frozen=True)
class Reaped:
    """What ``reap`` did: the state without the dead runs, the process groups to stop
    after the transaction (job, entry, group or None), and the runs already recorded
    whose deliveries may never have reached the outbox (job, record)."""

    state: State
    stops: tuple[tuple[str, Running, int | None], ...] = ()
    redeliver: tuple[tuple[str, dict[str, Any]], ...] = ()


def dead_runs(state: State, gone: Callable[[Running], bool]) -> tuple[State, list[tuple[str, Running]]]:
    """Running entries (and orphans) for which ``gone`` holds: removed from the state,
    returned with their job. Pure."""
    dead: list[tuple[str, Running]] = []
    for name, js in state.jobs.items():
        keep = []
        for r in js.running:
            if gone(r):
                dead.append((name, r))
            else:
                keep.append(r)
        if len(keep) != len(js.running):
            state = state.with_job(name, js.with_(running=tuple(keep)))
    orphans = []
    for r in state.orphans:
        if gone(r):
            dead.append((r.job, r))
        else:
            orphans.append(r)
    if len(orphans) != len(state.orphans):
        state = state.with_(orphans=tuple(orphans))
    return state, dead


def reap(
    state: State,
    *,
    store: Store,
    engine_id: str,
    now: datetime,
    host: str,
    observer: Observer,
    log: Callable[..., None],
) -> Reaped:
    """Inside a state transaction: the runs whose engine is gone are recorded in their
    history, then dropped from ``state``. The leftover process groups are returned for
    the caller to stop after the transaction (that can take 10 s: not under state.lock).

    History first, under state.lock, each line written once: a crash in between leaves
    the entry for the next recovery, which finds the line and does not write it again.
    The other order (state, then history) lost the record of a claimed run when the
    engine died in between (found by tests/faults). A run whose own record is already
    in the history finished: its engine died before it could drop the entry, and the
    run stands as recorded instead of being called interrupted."""
    alive: dict[str, bool] = {engine_id: True}

    def gone(r: Running) -> bool:
        if r.engine not in alive:
            alive[r.engine] = store.engine_alive(r.engine)
        return not alive[r.engine]

    new_state, dead = dead_runs(state, gone)
    if not dead:
        return Reaped(state)
    from .executors.contain import terminate_run_box
    from .executors.process import terminate_group
    from .executors.procfs import run_group

    fault("mid-recovery")
    stops: list[tuple[str, Running, int | None]] = []
    redeliver: list[tuple[str, dict[str, Any]]] = []
    for job, r in dead:
        # Leftover processes are stopped whether or not the run is recorded: a
        # recovery that wrote the line and died before it could stop them left
        # them running for ever (found by tests/faults).
        pgid = run_group(r.pid, r.run_id)
        boxed = terminate_run_box(r.run_id, r.engine)
        # Every dead run: its cgroup, empty or not, is removed after the transaction.
        stops.append((job, r, pgid))
        if pgid is not None:
            # SIGTERM now, before the entry leaves the state: if this engine dies
            # before stop_leftovers, nothing would be left to remember the group.
            # The wait and the SIGKILL come after the transaction. (A run's cgroup
            # outlives any engine: it is found again by name; terminate_run_box
            # signalled its members already.)
            terminate_group(pgid)
        recorded = final_record(store, job, r.run_id)
        if recorded is not None:
            status = str(recorded.get("status"))
            finished = _parse_time(recorded.get("finished_at")) or now
            # Its engine died between the record and its end in state.json: maybe
            # before its deliveries reached the outbox.
            redeliver.append((job, recorded))
        else:
            status, finished = str(Status.interrupted), now
            rec = RunRecord.interrupted(
                job=job,
                run_id=r.run_id,
                trigger=Trigger(r.trigger),
                scheduled_for=r.scheduled_for,
                started_at=r.started_at,
                finished_at=now,
                # spawned: it had a log (runlog.py), here if its engine ran on this host
                log_path=store.keep_log(job, r.run_id, empty=r.pid is not None, engine=r.engine),
                message="the engine that ran it stopped" + (" (its leftover processes were stopped)" if pgid is not None or boxed else ""),
                host=host,
            )
            store.append_history(job, rec.encode())
            observer.recorded(job, {"job": job, "run_id": r.run_id, "scheduled_for": iso(r.scheduled_for), "status": status})
            log(job, f"run {short_id(r.run_id)} interrupted (its engine {r.engine[:6]} is gone; not re-run)", event="run.interrupted", level="warning", run_id=r.run_id, scheduled_for=iso(r.scheduled_for), status=status)
        js = new_state.jobs.get(job)
        if js is not None and not r.job:
            last = LastRun(r.run_id, status, r.trigger, r.scheduled_for, r.started_at, finished)
            new_state = new_state.with_job(job, js.with_(last_run=last))
    return Reaped(new_state, tuple(stops), tuple(redeliver))


def stop_leftovers(stops: tuple[tuple[str, Running, int | None], ...] | list[tuple[str, Running, int | None]]) -> None:
    """After the transaction: the dead runs' groups stopped (SIGKILL after 10 s), their
    cgroups removed."""
    from .executors.contain import recover_run
    from .executors.process import kill_group

    for _job, r, pgid in stops:
        try:
            if pgid is not None:
                kill_group(pgid, grace=10.0)
        except ValueError:
            pass  # our own group, or 0/1: never signal those
        recover_run(r.run_id, engine=r.engine)


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
