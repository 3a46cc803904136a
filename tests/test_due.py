"""due.decide as a table: one row per timing, catch-up and concurrency case."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import build_spec

from cronfile.clock import FakeClock
from cronfile.due import (
    MISSED_COUNT_LIMIT,
    Claims,
    Due,
    claim,
    claim_reboot,
    decide,
    due_by,
    next_wake,
)
from cronfile.spec import JobSpec, Status, Trigger
from cronfile.state import JobState, JobStatus, LastRun, Running, State


def t(hh: int, mm: int = 0, ss: int = 0, us: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hh, mm, ss, us, tzinfo=UTC)


CREATED = t(8)
IN_FLIGHT = (Running("r1", t(8), t(8), "schedule", "engine-1", pid=7),)


@dataclass
class Case:
    id: str
    now: datetime
    expect: dict[str, Any] | None  # Due fields to check; None: not due
    spec: dict[str, Any] = field(default_factory=dict)
    js: dict[str, Any] = field(default_factory=dict)
    horizon: datetime | None = None  # decided ahead, for the occurrences due by then


DAILY = {"schedule": "0 9 * * *"}
EVERY_10M = {"schedule": "*/10 * * * *"}
EVERY_S = {"schedule": "* * * * * *"}
AHEAD = t(8, 59, 59, 970_000)  # 30 ms before 09:00

CASES = [
    Case(
        "on time",
        t(9),
        dict(run=t(9), trigger="schedule", missed=0, next_run=t(9, day=3), lateness=0.0),
        DAILY,
        dict(next_run=t(9)),
    ),
    Case(
        "3 ms late",
        t(9, us=3000),
        dict(run=t(9), trigger="schedule", lateness=0.003, next_run=t(9, day=3)),
        DAILY,
        dict(next_run=t(9)),
    ),
    Case("a second early", t(8, 59, 59), None, DAILY, dict(next_run=t(9))),
    Case(
        "late by exactly the deadline",
        t(9, 1),
        dict(run=t(9), trigger="schedule", lateness=60.0),
        DAILY,
        dict(next_run=t(9)),
    ),
    Case(
        "just past the deadline",
        t(9, 1, us=1000),
        dict(
            run=None,
            trigger=None,
            missed=1,
            missed_first=t(9),
            missed_last=t(9),
            next_run=t(9, day=3),
        ),
        DAILY,
        dict(next_run=t(9)),
    ),
    Case(
        "just past the deadline, catchup once",
        t(9, 1, us=1000),
        dict(run=t(9), trigger="catchup", missed=0, missed_first=None, next_run=t(9, day=3)),
        {**DAILY, "catchup": "once"},
        dict(next_run=t(9)),
    ),
    Case(
        "a longer starting_deadline",
        t(9, 4),
        dict(run=t(9), trigger="schedule", lateness=240.0),
        {**DAILY, "starting_deadline": "5m"},
        dict(next_run=t(9)),
    ),
    Case(
        "engine down an hour, catchup skip",
        t(10, 5),
        dict(run=None, missed=6, missed_first=t(9, 10), missed_last=t(10), next_run=t(10, 10)),
        EVERY_10M,
        dict(next_run=t(9, 10)),
    ),
    Case(
        "engine down an hour, catchup once: exactly one run",
        t(10, 5),
        dict(
            run=t(10),
            trigger="catchup",
            missed=5,
            missed_first=t(9, 10),
            missed_last=t(9, 50),
            next_run=t(10, 10),
            lateness=300.0,
        ),
        {**EVERY_10M, "catchup": "once"},
        dict(next_run=t(9, 10)),
    ),
    Case(
        "engine back within the deadline of the latest occurrence",
        t(10, 0, 30),
        dict(run=t(10), trigger="schedule", missed=5, missed_first=t(9, 10), missed_last=t(9, 50)),
        EVERY_10M,
        dict(next_run=t(9, 10)),
    ),
    Case(
        "every second, after 5 s of downtime",
        t(9, 0, 6),
        dict(
            run=t(9, 0, 6),
            trigger="schedule",
            missed=5,
            missed_first=t(9, 0, 1),
            missed_last=t(9, 0, 5),
            next_run=t(9, 0, 7),
        ),
        {"schedule": "* * * * * *"},
        dict(next_run=t(9, 0, 1)),
    ),
    Case(
        "forbid with a run in flight",
        t(9),
        dict(run=None, skipped=t(9), queue=None, next_run=t(9, day=3), completes=False),
        {**DAILY, "concurrency": "forbid"},
        dict(next_run=t(9), running=IN_FLIGHT),
    ),
    Case(
        "queue with a run in flight",
        t(9),
        dict(run=None, skipped=None, queue=t(9), next_run=t(9, day=3)),
        {**DAILY, "concurrency": "queue"},
        dict(next_run=t(9), running=IN_FLIGHT),
    ),
    Case(
        "queue with a run in flight and one queued",
        t(9),
        dict(run=None, skipped=t(9), queue=None),
        {**DAILY, "concurrency": "queue"},
        dict(next_run=t(9), running=IN_FLIGHT, queued=t(8, 30)),
    ),
    Case(
        "allow with a run in flight",
        t(9),
        dict(run=t(9), skipped=None, cancel=()),
        {**DAILY, "concurrency": "allow"},
        dict(next_run=t(9), running=IN_FLIGHT),
    ),
    Case(
        "replace with a run in flight",
        t(9),
        dict(run=t(9), trigger="schedule", cancel=("r1",)),
        {**DAILY, "concurrency": "replace"},
        dict(next_run=t(9), running=IN_FLIGHT),
    ),
    Case(
        "forbid with a missed catch-up and a run in flight",
        t(10, 5),
        dict(run=None, skipped=t(10), missed=5),
        {**EVERY_10M, "catchup": "once"},
        dict(next_run=t(9, 10), running=IN_FLIGHT),
    ),
    Case(
        "a queued run whose blocker finished",
        t(9, 30),
        dict(run=t(9), trigger="queued", next_run=t(9, day=3), completes=False, lateness=1800.0),
        {**DAILY, "concurrency": "queue"},
        dict(next_run=t(9, day=3), queued=t(9)),
    ),
    Case(
        "repeat reaches its limit",
        t(9),
        dict(run=t(9), completes=True, next_run=None),
        {**DAILY, "repeat": 3},
        dict(next_run=t(9), run_count=2),
    ),
    Case(
        "repeat not reached yet",
        t(9),
        dict(run=t(9), completes=False, next_run=t(9, day=3)),
        {**DAILY, "repeat": 3},
        dict(next_run=t(9), run_count=1),
    ),
    Case(
        "repeat already used up (the last run came from the queue)",
        t(9),
        dict(run=None, completes=True, next_run=None, missed=0),
        {**DAILY, "repeat": 3},
        dict(next_run=t(9), run_count=3),
    ),
    Case(
        "once-only, on time",
        t(9),
        dict(run=t(9), trigger="schedule", completes=True, next_run=None),
        {"schedule": "in 1h"},
        dict(next_run=t(9)),
    ),
    Case(
        "once-only, missed",
        t(11),
        dict(run=None, missed=1, completes=True, next_run=None),
        {"schedule": "in 1h"},
        dict(next_run=t(9)),
    ),
    Case(
        "once-only, missed, catchup once",
        t(11),
        dict(run=t(9), trigger="catchup", missed=0, completes=True),
        {"schedule": "in 1h", "catchup": "once"},
        dict(next_run=t(9)),
    ),
    Case("paused", t(9), None, DAILY, dict(next_run=None, state=JobStatus.paused)),
    Case("completed", t(9), None, DAILY, dict(next_run=None, state=JobStatus.completed)),
    Case("no next run", t(9), None, DAILY, dict(next_run=None)),
    Case("@reboot", t(9), None, {"schedule": "@reboot"}, dict(next_run=None)),
    # Decided ahead (the daemon claims a few ms before an instant): the run is for the
    # instant, next_run is the one after it, lateness is negative.
    Case(
        "ahead of the instant",
        AHEAD,
        dict(run=t(9), trigger="schedule", missed=0, next_run=t(9, day=3), lateness=-0.03),
        DAILY,
        dict(next_run=t(9)),
        t(9),
    ),
    Case(
        "ahead, every second: next_run is the second after the instant",
        AHEAD,
        dict(run=t(9), trigger="schedule", next_run=t(9, 0, 1)),
        EVERY_S,
        dict(next_run=t(9)),
        t(9),
    ),
    Case(
        "ahead, but the horizon is before next_run",
        AHEAD,
        None,
        DAILY,
        dict(next_run=t(9)),
        t(8, 59, 59, 990_000),
    ),
    Case(
        "a horizon in the past is now",
        t(9),
        dict(run=t(9), next_run=t(9, day=3), lateness=0.0),
        DAILY,
        dict(next_run=t(9)),
        t(8, 59),
    ),
    Case(
        "ahead, forbid with a run in flight: decided at the instant",
        AHEAD,
        None,
        {**DAILY, "concurrency": "forbid"},
        dict(next_run=t(9), running=IN_FLIGHT),
        t(9),
    ),
    Case(
        "ahead, queue with a run in flight: decided at the instant",
        AHEAD,
        None,
        {**DAILY, "concurrency": "queue"},
        dict(next_run=t(9), running=IN_FLIGHT),
        t(9),
    ),
    Case(
        "ahead, replace with a run in flight: not stopped early",
        AHEAD,
        None,
        {**DAILY, "concurrency": "replace"},
        dict(next_run=t(9), running=IN_FLIGHT),
        t(9),
    ),
    Case(
        "ahead, allow with a run in flight",
        AHEAD,
        dict(run=t(9), trigger="schedule", skipped=None, cancel=()),
        {**DAILY, "concurrency": "allow"},
        dict(next_run=t(9), running=IN_FLIGHT),
        t(9),
    ),
    Case(
        "forbid with a run in flight and an overdue occurrence: decided at now, not ahead",
        t(9, 0, 0, 500_000),
        dict(run=None, skipped=t(9), next_run=t(9, 0, 1)),
        {**EVERY_S, "concurrency": "forbid"},
        dict(next_run=t(9), running=IN_FLIGHT),
        t(9, 0, 1),
    ),
    Case(
        "ahead, overdue occurrences fold into the run at the horizon",
        AHEAD,
        dict(
            run=t(9),
            trigger="schedule",
            missed=2,
            missed_first=t(8, 59, 58),
            missed_last=t(8, 59, 59),
            next_run=t(9, 0, 1),
        ),
        EVERY_S,
        dict(next_run=t(8, 59, 58)),
        t(9),
    ),
    Case(
        "ahead, a once-only job completes",
        AHEAD,
        dict(run=t(9), trigger="schedule", completes=True, next_run=None),
        {"schedule": "in 1h"},
        dict(next_run=t(9)),
        t(9),
    ),
    Case(
        "ahead, repeat reaches its limit",
        AHEAD,
        dict(run=t(9), completes=True, next_run=None),
        {**DAILY, "repeat": 3},
        dict(next_run=t(9), run_count=2),
        t(9),
    ),
]


def job_state(s: Any, **kw: Any) -> JobState:
    return JobState(
        spec=dict(s.data),
        spec_hash=s.spec_hash,
        schedule_sig=s.schedule_sig,
        created_at=CREATED,
        **kw,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    spec = build_spec(**case.spec)
    js = job_state(spec, **case.js)
    due = decide(spec, js, spec.build_schedule(js.created_at), case.now, case.horizon)
    if case.expect is None:
        assert due is None
        return
    assert isinstance(due, Due)
    got = {k: getattr(due, k) for k in case.expect}
    if "lateness" in got:
        got["lateness"] = round(got["lateness"], 6)
    assert got == case.expect


@pytest.mark.parametrize(
    "downtime",
    [timedelta(seconds=s) for s in (0, 1, 59, 61, 3600, 86400 * 3)],
    ids=["0s", "1s", "59s", "61s", "1h", "3d"],
)
@pytest.mark.parametrize("catchup", ["skip", "once"])
def test_a_job_fires_at_most_once_however_long_the_engine_was_down(
    downtime: timedelta, catchup: str
) -> None:
    spec = build_spec(schedule="every 1m", catchup=catchup)
    js = job_state(spec, next_run=t(9))
    now = t(9) + downtime
    due = decide(spec, js, spec.build_schedule(CREATED), now)
    assert due is not None
    runs = 0 if due.run is None else 1
    assert runs <= 1
    assert due.next_run is not None and due.next_run > now
    # Every occurrence in [next_run, now] is either run or counted missed.
    assert runs + due.missed == downtime // timedelta(minutes=1) + 1


def test_counting_missed_occurrences_stops_at_the_limit_with_an_exact_last() -> None:
    spec = build_spec(schedule="* * * * * *")
    js = job_state(spec, next_run=t(9))
    now = t(9, day=3) + timedelta(milliseconds=1500)  # a day of an every-second job
    due = decide(spec, js, spec.build_schedule(CREATED), now)
    assert due is not None
    assert due.run == t(9, 0, 1, day=3)
    assert due.missed == MISSED_COUNT_LIMIT
    assert (due.missed_first, due.missed_last) == (t(9), t(9, day=3))


@pytest.mark.parametrize(
    "schedule", ["* * * * * *", "*/10 * * * * *", "*/5 * * * *", "0 9 * * *", "every 90s"]
)
@pytest.mark.parametrize("lead_ms", [1, 30, 400, 999])
def test_an_instant_decided_ahead_is_not_due_again_at_the_instant(
    schedule: str, lead_ms: int
) -> None:
    spec = build_spec(schedule=schedule)
    sched = spec.build_schedule(CREATED)
    instant = sched.next_after(t(8, 59, 59))
    js = job_state(spec, next_run=instant)
    due = decide(spec, js, sched, instant - timedelta(milliseconds=lead_ms), instant)
    assert due is not None and due.run == instant and due.next_run is not None
    assert due.next_run > instant
    after = job_state(spec, next_run=due.next_run, run_count=1)
    for later in (instant, instant + timedelta(milliseconds=lead_ms)):
        again = decide(spec, after, sched, later)
        assert again is None or again.run != instant


def test_due_by_counts_the_scheduled_jobs_due_at_or_before_a_time() -> None:
    s = build_spec()
    jobs = [
        job_state(s, next_run=t(9)),
        job_state(s, next_run=t(9)),
        job_state(s, next_run=t(8, 59)),
        job_state(s, next_run=t(9, 0, 1)),
        job_state(s, next_run=t(8), state=JobStatus.paused),
        job_state(s),
    ]
    assert due_by(jobs, t(9)) == 3
    assert due_by({str(i): js for i, js in enumerate(jobs)}, t(8, 59)) == 1
    assert due_by(State(), t(9)) == 0


def test_next_wake_is_the_earliest_next_run_of_a_scheduled_job() -> None:
    s = build_spec()
    a = job_state(s, next_run=t(10))
    b = job_state(s, next_run=t(9, 30))
    paused = job_state(s, next_run=t(8, 1), state=JobStatus.paused)
    assert next_wake([a, b, paused], t(8)) == t(9, 30)
    assert next_wake({"a": a, "b": b}, t(8)) == t(9, 30)
    assert next_wake(State(jobs={"a": a}), t(8)) == t(10)
    assert next_wake([paused, job_state(s)], t(8)) is None


def test_next_wake_is_now_for_an_overdue_job_or_a_queued_run_ready_to_start() -> None:
    s = build_spec()
    assert next_wake([job_state(s, next_run=t(7))], t(8)) == t(8)
    ready = job_state(s, next_run=t(10), queued=t(7, 59))
    assert next_wake([ready], t(8)) == t(8)
    blocked = job_state(s, next_run=t(10), queued=t(7, 59), running=IN_FLIGHT)
    assert next_wake([blocked], t(8)) == t(10)


# -- claim: what follows a decision in the state, as data -------------------------------


def _ids() -> Any:
    n = iter(range(1, 1000))
    return lambda when: f"{when:%H%M%S}-{next(n):04x}"


def claim_at(state: State, clock: FakeClock, specs: dict[str, JobSpec], **kw: Any) -> Claims:
    return claim(
        state,
        clock.now(),
        spec_for=lambda js: specs[next(n for n, s in specs.items() if s.spec_hash == js.spec_hash)],
        schedule_for=lambda spec, js: spec.build_schedule(created_at=js.created_at),
        engine="engine-2",
        host="box",
        new_id=_ids(),
        **kw,
    )


def test_claim_persists_a_running_entry_counts_the_run_and_moves_next_run() -> None:
    clock = FakeClock(t(9, us=2000))
    spec = build_spec(schedule="0 9 * * *")
    before = State(jobs={"job": job_state(spec, next_run=t(9), run_count=4)})
    got = claim_at(before, clock, {"job": spec})
    assert [(c.job, c.trigger, c.scheduled_for, c.after) for c in got.runs] == [("job", Trigger.schedule, t(9), ())]
    js = got.state.jobs["job"]
    assert js.running == (Running(got.runs[0].run_id, t(9), clock.now(), "schedule", "engine-2"),)
    assert (js.run_count, js.next_run, js.state) == (5, t(9, day=3), JobStatus.scheduled)
    assert got.records == () and got.cancel == ()
    assert before.jobs["job"].running == () and before.jobs["job"].run_count == 4  # pure


def test_claim_leaves_the_state_alone_when_nothing_is_due() -> None:
    clock = FakeClock(t(8, 59, 59))
    spec = build_spec()
    paused = build_spec(name="paused", schedule="* * * * *")
    reboot = build_spec(name="boot", schedule="@reboot")
    state = State(
        jobs={
            "job": job_state(spec, next_run=t(9)),
            "paused": job_state(paused, next_run=t(8), state=JobStatus.paused),
            "boot": job_state(reboot),
        }
    )
    got = claim_at(state, clock, {"job": spec, "paused": paused, "boot": reboot})
    assert got.state is state
    assert got.runs == got.records == got.cancel == ()


def test_claim_ahead_of_an_instant_claims_it_for_the_instant() -> None:
    clock = FakeClock(AHEAD)
    spec = build_spec()
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9))}), clock, {"job": spec}, horizon=t(9))
    assert [c.scheduled_for for c in got.runs] == [t(9)]
    assert got.state.jobs["job"].next_run == t(9, day=3)


def test_a_late_occurrence_is_recorded_missed_and_not_run() -> None:
    clock = FakeClock(t(9, 5, 30))  # 09:04 is 90 s late; the default starting_deadline is 60 s
    spec = build_spec(schedule="*/2 * * * *")
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9))}), clock, {"job": spec})
    assert got.runs == ()
    [rec] = got.records
    assert (rec.job, rec.status, rec.trigger, rec.missed_count) == ("job", Status.missed, Trigger.schedule, 3)
    assert (rec.missed_first, rec.scheduled_for, rec.message) == (t(9), t(9, 4), "later than starting_deadline")
    assert (rec.attempts, rec.started_at, rec.host) == (0, None, "box")
    assert got.state.jobs["job"].next_run == t(9, 6)


def test_occurrences_folded_into_an_on_time_run_say_so() -> None:
    clock = FakeClock(t(9, 4, 10))
    spec = build_spec(schedule="*/2 * * * *")
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9))}), clock, {"job": spec})
    assert [c.scheduled_for for c in got.runs] == [t(9, 4)]
    [rec] = got.records
    assert rec.missed_count == 2 and rec.message.startswith("folded into the run of a later occurrence")


def test_forbid_records_the_occurrence_skipped_and_says_why() -> None:
    clock = FakeClock(t(9))
    spec = build_spec(concurrency="forbid")
    state = State(jobs={"job": job_state(spec, next_run=t(9), running=IN_FLIGHT)})
    got = claim_at(state, clock, {"job": spec})
    [rec] = got.records
    assert (rec.status, rec.scheduled_for, rec.message) == (Status.skipped, t(9), "the previous run was still going (concurrency: forbid)")
    assert got.runs == () and got.state.jobs["job"].running == IN_FLIGHT
    waiting = claim_at(state, clock, {"job": spec}, waiting={"r1"}, max_concurrent=3)
    assert waiting.records[0].message == "the previous run was still waiting for a free slot (max_concurrent: 3; concurrency: forbid)"


def test_queue_buffers_one_occurrence_and_claims_it_once_the_run_is_over() -> None:
    clock = FakeClock(t(9))
    spec = build_spec(concurrency="queue")
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9), running=IN_FLIGHT)}), clock, {"job": spec})
    assert got.runs == () and got.state.jobs["job"].queued == t(9)
    over = got.state.with_job("job", got.state.jobs["job"].with_(running=()))
    clock.advance(30)
    then = claim_at(over, clock, {"job": spec})
    assert [(c.trigger, c.scheduled_for) for c in then.runs] == [(Trigger.queued, t(9))]
    js = then.state.jobs["job"]
    assert js.queued is None and js.run_count == 1 and js.running[0].trigger == "queued"


def test_replace_claims_the_new_run_after_the_old_and_stops_the_old() -> None:
    clock = FakeClock(t(9))
    spec = build_spec(concurrency="replace")
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9), running=IN_FLIGHT)}), clock, {"job": spec})
    assert got.cancel == ("r1",)
    assert [c.after for c in got.runs] == [("r1",)]
    assert [r.run_id for r in got.state.jobs["job"].running] == ["r1", got.runs[0].run_id]


def test_the_last_run_repeat_allows_completes_the_job() -> None:
    clock = FakeClock(t(9))
    spec = build_spec(schedule="0 9 * * *", repeat=3)
    got = claim_at(State(jobs={"job": job_state(spec, next_run=t(9), run_count=2)}), clock, {"job": spec})
    js = got.state.jobs["job"]
    assert len(got.runs) == 1 and js.state is JobStatus.completed and js.next_run is None


def test_reboot_jobs_are_claimed_once_at_start_and_after_a_boot_by_tick() -> None:
    clock = FakeClock(t(9))
    boot = build_spec(name="boot", schedule="@reboot", repeat=1)
    daily = build_spec()
    state = State(jobs={"boot": job_state(boot), "job": job_state(daily, next_run=t(9))})
    specs = {"boot": boot, "job": daily}

    def reboot(state: State, **kw: Any) -> Claims:
        return claim_reboot(state, clock.now(), spec_for=lambda js: specs[js.spec["name"]], engine="engine-2", new_id=_ids(), **kw)

    got = reboot(state, boot=None, only_after_boot=False)
    assert [(c.job, c.trigger, c.scheduled_for) for c in got.runs] == [("boot", Trigger.reboot, t(9))]
    js = got.state.jobs["boot"]
    assert (js.run_count, js.state, js.running[0].engine) == (1, JobStatus.completed, "engine-2")
    assert got.state.jobs["job"] is state.jobs["job"]
    # tick: only if it has not run since the boot, and never when the boot is unknown
    ran = state.with_job("boot", state.jobs["boot"].with_(last_run=LastRun("x", "success", "reboot", t(8, 30), t(8, 30), t(8, 31))))
    assert reboot(ran, boot=t(8), only_after_boot=True).runs == ()
    assert len(reboot(ran, boot=t(8, 45), only_after_boot=True).runs) == 1
    assert reboot(state, boot=None, only_after_boot=True).runs == ()
