"""What to do with one job at ``now``: run, miss, skip, queue or replace.

Pure: (spec, job state, schedule, now) -> Due. apscheduler decides misfires inside its
run loop with ``datetime.now()``; here the decision is a function, so every catch-up,
deadline and concurrency case is one row of a table test (STYLE.md).

The rules are docs/design.md section 5's:

- No thundering herd: however long no engine ran, a job starts at most one run per call,
  for the latest occurrence that is due (like Kubernetes CronJob, which starts only the
  most recent missed schedule, and systemd's ``Persistent=true``, which fires once).
- On time means no later than ``starting_deadline`` (Kubernetes' startingDeadlineSeconds).
  Later than that the occurrence is ``missed``; with ``catchup: once`` the latest one
  still runs, once, with ``trigger: catchup`` (apscheduler's ``coalesce`` + misfire grace).
- Concurrency with a run in flight: ``forbid`` records ``skipped`` (Kubernetes Forbid,
  Temporal Skip), ``queue`` buffers one (Temporal BufferOne), ``replace`` stops the old
  run (Kubernetes Replace), ``allow`` starts another.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .history import RunRecord, new_run_id
from .spec import Catchup, Concurrency, JobSpec, Status, Trigger
from .state import JobState, JobStatus, Running, State

if TYPE_CHECKING:
    from .schedule import Schedule

__all__ = ["MISSED_COUNT_LIMIT", "Claimed", "Claims", "Due", "claim", "claim_reboot", "decide", "due_by", "next_wake"]

# Counting missed occurrences walks the schedule; an every-second job down for a week
# has 604,800 of them. The walk stops here and reports this many ("10000+" shown as
# 10000); missed_last is still exact (taken from prev_at_or_before).
MISSED_COUNT_LIMIT = 10_000
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class Due:
    """The decision for one job at one instant. The caller records it in one claim
    transaction: ``next_run``, the run (if any), the missed/skipped history lines."""

    run: datetime | None = None  # scheduled_for of the run to start now
    trigger: Trigger | None = None  # schedule | catchup | queued
    missed: int = 0  # occurrences not run (capped at MISSED_COUNT_LIMIT)
    missed_first: datetime | None = None
    missed_last: datetime | None = None
    skipped: datetime | None = None  # concurrency forbid: record this occurrence skipped
    queue: datetime | None = None  # concurrency queue: buffer it in JobState.queued
    cancel: tuple[str, ...] = ()  # concurrency replace: run ids to stop
    next_run: datetime | None = None  # first fire strictly after now; None: no more
    completes: bool = False  # the job is done (repeat reached, once-only instant passed)
    lateness: float = 0.0  # seconds from the occurrence to now (negative: decided ahead)


def decide(
    spec: JobSpec, js: JobState, schedule: Schedule, now: datetime, horizon: datetime | None = None
) -> Due | None:
    """What to do with ``spec`` at ``now``; None when it is not due.

    ``schedule`` is ``spec.build_schedule(js.created_at)`` (passed in so tests can use a
    fake and the engine can cache it). @reboot jobs are never due here: the engine fires
    them at start.

    A buffered occurrence (``js.queued``, concurrency: queue) whose blocker has finished
    comes back as ``trigger=Trigger.queued`` with ``next_run`` unchanged; the caller clears
    ``js.queued`` when it claims the run.

    ``horizon`` (later than ``now``) decides ahead: the occurrences due by ``horizon``
    are decided as at ``horizon``, and ``next_run`` is the first fire strictly after it.
    The daemon does this a few milliseconds before an instant, so that persisting the
    claim is not on the path from the instant to the start; the caller must not start
    ``run`` before it comes. Lateness (and so ``starting_deadline``) is still measured
    at ``now``, the time of the decision. A job with a run in flight is not decided
    ahead unless it allows concurrent runs: by the instant that run may have ended
    (``forbid`` would skip, ``queue`` buffer, an occurrence that should run), and
    ``replace`` would stop it before its successor is due."""
    if js.state is not JobStatus.scheduled or schedule.at_boot:
        return None
    at = now if horizon is None or horizon <= now else horizon
    if js.running and spec.concurrency is not Concurrency.allow:
        at = now  # decided at the instant, when the run in flight may be over
    repeat_left = None if spec.repeat is None else spec.repeat - js.run_count

    if js.queued is not None and not js.running:
        if repeat_left is not None and repeat_left <= 0:
            return Due(next_run=None, completes=True)
        last_run = repeat_left == 1
        return Due(
            run=js.queued,
            trigger=Trigger.queued,
            next_run=None if last_run else js.next_run,
            completes=last_run or js.next_run is None,
            lateness=(now - js.queued).total_seconds(),
        )

    if js.next_run is None or js.next_run > at:
        return None
    if repeat_left is not None and repeat_left <= 0:
        # Already used up (e.g. the last run came from the queue): finish, start nothing.
        return Due(next_run=None, completes=True)

    # The latest occurrence at or before `at`. next_run may be off the current schedule
    # (computed under an older jitter or anchor); it was promised, so it counts too.
    latest = schedule.prev_at_or_before(at)
    if latest is None or latest < js.next_run:
        latest = js.next_run
    lateness = (now - latest).total_seconds()
    earlier, first, last = _occurrences(schedule, js.next_run, latest)

    run: datetime | None
    trigger: Trigger | None
    if lateness <= spec.starting_deadline:
        run, trigger = latest, Trigger.schedule
        missed, missed_first, missed_last = earlier, first, last
    elif spec.catchup is Catchup.once:
        run, trigger = latest, Trigger.catchup
        missed, missed_first, missed_last = earlier, first, last
    else:
        run, trigger = None, None
        missed = min(earlier + 1, MISSED_COUNT_LIMIT)
        missed_first, missed_last = first or latest, latest

    skipped = queue = None
    cancel: tuple[str, ...] = ()
    if run is not None and js.running and spec.concurrency is not Concurrency.allow:
        if spec.concurrency is Concurrency.forbid:
            skipped, run, trigger = run, None, None
        elif spec.concurrency is Concurrency.queue:
            if js.queued is None:
                queue = run
            else:
                skipped = run  # BufferOne: one buffered, any more are skipped
            run, trigger = None, None
        elif spec.concurrency is Concurrency.replace:
            cancel = tuple(r.run_id for r in js.running)

    next_run = schedule.next_after(at)
    if run is not None and repeat_left == 1:
        next_run = None  # this run is the last `repeat` allows
    # A buffered occurrence still has to run, so the job is not done yet.
    completes = next_run is None and queue is None
    return Due(
        run=run,
        trigger=trigger,
        missed=missed,
        missed_first=missed_first if missed else None,
        missed_last=missed_last if missed else None,
        skipped=skipped,
        queue=queue,
        cancel=cancel,
        next_run=next_run,
        completes=completes,
        lateness=lateness,
    )


def _occurrences(
    schedule: Schedule, start: datetime, end: datetime
) -> tuple[int, datetime | None, datetime | None]:
    """How many occurrences fall in [start, end) (start counts as one: it was next_run),
    the first and the last; the walk stops at MISSED_COUNT_LIMIT."""
    count = 0
    first = last = None
    when: datetime | None = start
    while when is not None and when < end:
        if count == MISSED_COUNT_LIMIT:
            prev = schedule.prev_at_or_before(end - _TINY)
            last = prev if prev is not None and prev > when else last
            break
        count += 1
        if first is None:
            first = when
        last = when
        when = schedule.next_after(when)
    return count, first, last


def _job_states(states: State | Mapping[str, JobState] | Iterable[JobState]) -> Iterable[JobState]:
    if isinstance(states, State):
        return states.jobs.values()
    if isinstance(states, Mapping):
        return states.values()
    return states


def due_by(states: State | Mapping[str, JobState] | Iterable[JobState], when: datetime) -> int:
    """How many scheduled jobs have their ``next_run`` at or before ``when``: the runs the
    daemon is about to claim at once (it claims earlier for more of them)."""
    items = _job_states(states)
    return sum(
        1
        for js in items
        if js.state is JobStatus.scheduled and js.next_run is not None and js.next_run <= when
    )


def next_wake(
    states: State | Mapping[str, JobState] | Iterable[JobState], now: datetime
) -> datetime | None:
    """When the daemon should next wake: the earliest ``next_run`` of a scheduled job
    (``now`` if a queued run is ready or a next_run is already past); None: nothing to
    wake for."""
    items = _job_states(states)
    best: datetime | None = None
    for js in items:
        if js.state is not JobStatus.scheduled:
            continue
        when = now if js.queued is not None and not js.running else js.next_run
        if when is not None and (best is None or when < best):
            best = when
    if best is None:
        return None
    return max(best, now)


@dataclass(frozen=True)
class Claimed:
    """A run ``claim`` claimed: persisted as a ``running`` entry, to be started."""

    job: str
    run_id: str
    spec: JobSpec
    trigger: Trigger
    scheduled_for: datetime
    after: tuple[str, ...] = ()  # concurrency: replace -- the runs to be gone first


@dataclass(frozen=True)
class Claims:
    """What ``claim`` decided: the state to persist (the same object when nothing
    changed), the runs to start, the history records to write once it is persisted, and
    the runs in flight to stop (concurrency: replace)."""

    state: State
    runs: tuple[Claimed, ...] = ()
    records: tuple[RunRecord, ...] = ()
    cancel: tuple[str, ...] = ()


def claim(
    state: State,
    now: datetime,
    *,
    spec_for: Callable[[JobState], JobSpec],
    schedule_for: Callable[[JobSpec, JobState], Schedule],
    engine: str,
    host: str,
    horizon: datetime | None = None,
    waiting: Collection[str] = (),
    max_concurrent: int = 0,
    new_id: Callable[[datetime], str] = new_run_id,
) -> Claims:
    """Every job of ``state`` decided at ``now`` (``decide``), and what follows in the
    state: each run claimed is a ``running`` entry of engine ``engine`` and counts in
    ``run_count``; ``next_run``, ``queued`` and the job's ``state`` move on; a missed or
    skipped occurrence becomes a record. The caller persists ``Claims.state`` in its claim
    transaction, then writes the records and starts the runs.

    ``spec_for`` and ``schedule_for`` build (or fetch from a cache) a job's spec and
    schedule; a job that is not due is skipped before either is asked for. ``waiting``
    holds the run ids claimed and still waiting for a free slot (``max_concurrent``): an
    occurrence skipped behind one of them says so. ``new_id`` makes run ids
    (history.new_run_id; a test passes a counter)."""
    at = now if horizon is None or horizon < now else horizon
    runs: list[Claimed] = []
    records: list[RunRecord] = []
    cancel: list[str] = []
    # The jobs that change, written into one copy of the job table at the end (a copy per
    # job claimed cost O(jobs) each: 200 runs of an instant copied 200 tables).
    changed: dict[str, JobState] = {}
    for name in sorted(state.jobs):
        js = state.jobs[name]
        if js.state != JobStatus.scheduled:
            continue
        if js.queued is None and (js.next_run is None or js.next_run > at):
            continue  # not due: skip building its spec (10,000 jobs, every pass)
        spec = spec_for(js)
        if js.queued is not None and not js.running:
            # concurrency: queue -- the buffered occurrence runs right after.
            run_id = new_id(js.queued)
            runs.append(Claimed(name, run_id, spec, Trigger.queued, js.queued))
            js = js.with_(
                queued=None,
                running=(Running(run_id, js.queued, now, Trigger.queued, engine),),
                run_count=js.run_count + 1,
            )
            changed[name] = js
            continue
        d = decide(spec, js, schedule_for(spec, js), now, horizon)  # None for @reboot
        if d is None:
            continue
        if d.missed:
            if d.run is not None and d.trigger == Trigger.schedule:
                # The latest occurrence runs on time; the earlier ones were not late past
                # the deadline, they were folded into it (at most one run per job per pass).
                why = "folded into the run of a later occurrence (at most one run at a time on return)"
            else:
                why = "later than starting_deadline"
            assert d.missed_last is not None
            records.append(RunRecord.missed(job=name, last=d.missed_last, first=d.missed_first, count=d.missed, message=why, host=host, run_id=new_id(d.missed_last)))
        if d.skipped is not None:
            if js.running and all(r.run_id in waiting for r in js.running):
                # It never ran: it is still waiting for a slot (max_concurrent).
                why = f"the previous run was still waiting for a free slot (max_concurrent: {max_concurrent}; concurrency: forbid)"
            else:
                why = "the previous run was still going (concurrency: forbid)"
            records.append(RunRecord.skipped(job=name, when=d.skipped, message=why, host=host, run_id=new_id(d.skipped), status=Status.skipped))
        running = js.running
        run_count = js.run_count
        if d.run is not None:
            trigger = d.trigger or Trigger.schedule
            run_id = new_id(d.run)
            # concurrency: replace. The new run starts once the old one's processes are
            # gone (the engine waits for them), not beside them.
            runs.append(Claimed(name, run_id, spec, trigger, d.run, tuple(d.cancel)))
            running = running + (Running(run_id, d.run, now, trigger, engine),)
            run_count += 1
        cancel.extend(d.cancel)
        js = js.with_(
            next_run=d.next_run,
            running=running,
            run_count=run_count,
            queued=d.queue if d.queue is not None else js.queued,
            state=JobStatus.completed if d.completes else js.state,
        )
        changed[name] = js
    if changed:
        state = state.with_(jobs={**state.jobs, **changed})
    return Claims(state, tuple(runs), tuple(records), tuple(cancel))


def claim_reboot(
    state: State,
    now: datetime,
    *,
    spec_for: Callable[[JobState], JobSpec],
    engine: str,
    boot: datetime | None,
    only_after_boot: bool,
    schedule_for: Callable[[JobSpec, JobState], Schedule] | None = None,
    new_id: Callable[[datetime], str] = new_run_id,
) -> Claims:
    """@reboot jobs claimed at an engine's start: each scheduled one once (the daemon),
    or with ``only_after_boot`` (`tick`, every minute) only if it has not run since
    ``boot`` (the system's boot; None: unknown, nothing fires). Each claimed run is a
    ``running`` entry of engine ``engine`` and counts in ``run_count``; the job is
    completed once ``repeat`` is reached."""
    runs: list[Claimed] = []
    for name, js in sorted(state.jobs.items()):
        if js.state != JobStatus.scheduled:
            continue
        spec = spec_for(js)
        if not (schedule_for(spec, js) if schedule_for is not None else spec.build_schedule()).at_boot:
            continue
        if only_after_boot:
            last = js.last_run
            if boot is None or (last is not None and last.started_at and last.started_at >= boot):
                continue
        run_id = new_id(now)
        runs.append(Claimed(name, run_id, spec, Trigger.reboot, now))
        run_count = js.run_count + 1
        done = spec.repeat is not None and run_count >= spec.repeat
        js = js.with_(
            running=js.running + (Running(run_id, now, now, Trigger.reboot, engine),),
            run_count=run_count,
            state=JobStatus.completed if done else js.state,
        )
        state = state.with_job(name, js)
    return Claims(state, tuple(runs))

