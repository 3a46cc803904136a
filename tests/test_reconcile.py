"""Reconcile, driven through a sequence of commits to a jobs repo with a FakeClock.

Every apply in these tests also checks the two round trips: re-planning the new state
gives an empty plan and the very same state, and the state survives encode/decode; and
that `diff`'s plan_for gives the very plan reconcile gives.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import build_spec as spec

from cronfile.clock import FakeClock
from cronfile.reconcile import Action, Change, Plan, plan_for, reconcile
from cronfile.spec import JobSpec
from cronfile.state import JobStatus, Running, State
from cronfile.stores.file import encode_state


def at(hh: int, mm: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


def apply(specs: list[JobSpec], state: State, now: datetime, revision: str | None = None):
    # What `diff` shows (plan_for: no new state built) is what apply then does.
    shown = plan_for(specs, state, now)
    new, plan = reconcile(specs, state, now, revision=revision)
    assert shown == plan and shown.to_json() == plan.to_json() and shown.summary() == plan.summary()
    # Round trip 1: re-planning after apply changes nothing and returns the same state.
    again, plan2 = reconcile(specs, new, now + timedelta(minutes=7), revision="later")
    assert not plan2.has_changes, plan2.to_json()
    assert again is new
    # Round trip 2: what is written reads back equal.
    assert State.decode(json.loads(encode_state(new))) == new
    return new, plan


def only(plan: Plan, name: str) -> Change:
    return next(c for c in plan.changes if c.name == name)


def actions(plan: Plan) -> list[tuple[str, str]]:
    return [(str(c.action), c.name) for c in plan.changes]


PROMPT_1 = "Summarize the alerts in ./alerts.\nList action items.\n"
PROMPT_2 = "Summarize the alerts in ./alerts.\nList action items, most urgent first.\n"


def briefing(**kw) -> JobSpec:
    fields = {"name": "briefing", "schedule": "0 9 * * 1-5", "prompt": PROMPT_1}
    fields.update(kw)
    return spec(**fields)


def backup(**kw) -> JobSpec:
    return spec(**{"name": "backup", "schedule": "0 3 * * *", "shell": "backup.sh", **kw})


def test_a_repo_through_a_sequence_of_commits(clock: FakeClock) -> None:
    # Commit 1: two new jobs -> create, first fire strictly after now.
    s1, plan = apply([briefing(), backup()], State(), clock.now(), revision="c1")
    assert actions(plan) == [("create", "backup"), ("create", "briefing")]
    assert plan.summary() == "2 to create, 0 to update, 0 to delete"
    assert s1.jobs["briefing"].next_run == at(9)
    assert s1.jobs["backup"].next_run == at(3, day=3)
    assert s1.jobs["briefing"].created_at == clock.now()
    assert (s1.revision, s1.applied_at) == ("c1", clock.now())

    # Commit 2, while the engine is down past 09:00: edit the prompt. next_run is kept
    # exactly (no lost run: the engine will treat 09:00 by its catch-up policy).
    clock.set(at(9, 30))
    s2, plan = apply([briefing(prompt=PROMPT_2), backup()], s1, clock.now(), revision="c2")
    change = only(plan, "briefing")
    assert change.action is Action.update
    assert change.fields == ("prompt",)
    assert change.next_run_before == change.next_run_after == at(9)
    assert s2.jobs["briefing"].next_run == at(9)
    assert "catch-up: none" in change.notes
    assert s2.jobs["backup"] is s1.jobs["backup"]  # unchanged: the very same object
    assert plan.summary() == "0 to create, 1 to update, 0 to delete, 1 unchanged"

    # Commit 3: change the schedule -> recomputed from now, no catch-up.
    clock.set(at(10))
    s3, plan = apply([briefing(prompt=PROMPT_2, schedule="30 10 * * *"), backup()], s2, clock.now())
    change = only(plan, "briefing")
    assert change.fields == ("schedule",)
    assert (change.next_run_before, change.next_run_after) == (at(9), at(10, 30))
    assert change.notes == ("schedule changed: next run recomputed from now", "catch-up: none")

    # Commit 4: pause.
    clock.set(at(10, 15))
    paused = briefing(prompt=PROMPT_2, schedule="30 10 * * *", enabled=False)
    s4, plan = apply([paused, backup()], s3, clock.now())
    change = only(plan, "briefing")
    assert change.fields == ("enabled",)
    assert change.notes == ("paused",)
    assert s4.jobs["briefing"].state is JobStatus.paused
    assert s4.jobs["briefing"].next_run is None

    # Commit 5, after 10:30 went by while paused: resume -> computed from now (tomorrow).
    clock.set(at(11))
    s5, plan = apply([briefing(prompt=PROMPT_2, schedule="30 10 * * *"), backup()], s4, clock.now())
    change = only(plan, "briefing")
    assert change.fields == ("enabled",)
    assert change.notes[0] == "resumed: next run computed from now"
    assert s5.jobs["briefing"].state is JobStatus.scheduled
    assert s5.jobs["briefing"].next_run == at(10, 30, day=3)

    # Commit 6: rename backup -> nightly-backup: a delete and a create, delete first.
    s6, plan = apply(
        [briefing(prompt=PROMPT_2, schedule="30 10 * * *"), backup(name="nightly-backup")],
        s5,
        clock.now(),
    )
    assert actions(plan) == [
        ("delete", "backup"),
        ("create", "nightly-backup"),
        ("unchanged", "briefing"),
    ]
    assert set(s6.jobs) == {"briefing", "nightly-backup"}
    assert s6.jobs["nightly-backup"].created_at == clock.now()


def test_deleting_a_job_with_a_run_in_flight_moves_the_run_to_orphans(clock: FakeClock) -> None:
    s1, _ = apply([backup(), briefing()], State(), clock.now())
    run = Running("r1", at(3, day=3), at(3, day=3), "schedule", "engine-1", pid=42)
    s1 = s1.with_job("backup", s1.jobs["backup"].with_(running=(run,)))
    clock.set(at(3, 5, day=3))
    s2, plan = apply([briefing()], s1, clock.now())
    change = only(plan, "backup")
    assert change.action is Action.delete
    assert change.next_run_after is None
    assert "1 run in flight will finish" in change.notes
    assert "history kept in runs/backup/" in change.notes
    assert "backup" not in s2.jobs
    assert s2.orphans == (
        Running("r1", at(3, day=3), at(3, day=3), "schedule", "engine-1", pid=42, job="backup"),
    )


def test_a_once_only_job_whose_instant_is_past_is_created_completed_and_never_fires(
    clock: FakeClock,
) -> None:
    s1, plan = apply([spec(name="launch", schedule="2026-01-01T09:00:00Z")], State(), clock.now())
    change = only(plan, "launch")
    assert change.action is Action.create
    assert change.next_run_after is None
    assert change.notes == ("never fires: 2026-01-01T09:00:00+00:00 is in the past",)
    assert s1.jobs["launch"].state is JobStatus.completed


def test_a_completed_once_only_job_moved_into_the_future_is_scheduled_again(
    clock: FakeClock,
) -> None:
    s1, _ = apply([spec(name="launch", schedule="2026-01-01T09:00:00Z")], State(), clock.now())
    s2, plan = apply([spec(name="launch", schedule="2026-04-01T09:00:00Z")], s1, clock.now())
    change = only(plan, "launch")
    assert change.fields == ("schedule",)
    assert s2.jobs["launch"].state is JobStatus.scheduled
    assert s2.jobs["launch"].next_run == datetime(2026, 4, 1, 9, tzinfo=UTC)


def test_a_completed_once_only_job_with_only_its_command_edited_stays_completed(
    clock: FakeClock,
) -> None:
    s1, _ = apply([spec(name="launch", schedule="in 1h")], State(), clock.now())
    ran = s1.jobs["launch"].with_(state=JobStatus.completed, next_run=None, run_count=1)
    s1 = s1.with_job("launch", ran)
    clock.advance(timedelta(hours=2))
    s2, plan = apply([spec(name="launch", schedule="in 1h", shell="echo hi")], s1, clock.now())
    assert only(plan, "launch").notes == ("completed",)
    assert s2.jobs["launch"].state is JobStatus.completed


def test_a_relative_once_schedule_counts_from_the_first_apply(clock: FakeClock) -> None:
    t0 = clock.now()
    s1, _ = apply([spec(name="soon", schedule="in 2h")], State(), t0)
    assert s1.jobs["soon"].next_run == t0 + timedelta(hours=2)
    clock.advance(timedelta(minutes=30))
    s2, plan = apply([spec(name="soon", schedule="in 3h")], s1, clock.now())
    assert s2.jobs["soon"].next_run == t0 + timedelta(hours=3)


REPEAT_CASES = [
    # (repeat in the new spec, runs made so far, expected state, expected note)
    (3, 3, JobStatus.completed, "completed: repeat 3 reached (3 runs)"),
    (2, 3, JobStatus.completed, "completed: repeat 2 reached (3 runs)"),
    (5, 3, JobStatus.scheduled, "scheduled again: next run computed from now"),
    (None, 3, JobStatus.scheduled, "scheduled again: next run computed from now"),
]


@pytest.mark.parametrize(
    ("repeat", "runs", "status", "note"),
    REPEAT_CASES,
    ids=["used-up-edit", "lowered-below-runs", "raised", "removed"],
)
def test_a_job_whose_repeat_is_used_up_is_completed_and_raising_it_schedules_again(
    clock: FakeClock, repeat: int | None, runs: int, status: JobStatus, note: str
) -> None:
    s1, _ = apply([backup(repeat=3)], State(), clock.now())
    done = s1.jobs["backup"].with_(state=JobStatus.completed, next_run=None, run_count=runs)
    s1 = s1.with_job("backup", done)
    s2, plan = apply([backup(repeat=repeat, description="edited")], s1, clock.now())
    js = s2.jobs["backup"]
    assert js.state is status
    assert note in only(plan, "backup").notes
    assert js.next_run == (None if status is JobStatus.completed else at(3, day=3))
    assert js.run_count == runs  # a statistic: never reset by apply


def test_lowering_repeat_below_the_runs_made_completes_a_scheduled_job(clock: FakeClock) -> None:
    s1, _ = apply([backup(repeat=10)], State(), clock.now())
    s1 = s1.with_job("backup", s1.jobs["backup"].with_(run_count=4))
    s2, plan = apply([backup(repeat=4)], s1, clock.now())
    assert s2.jobs["backup"].state is JobStatus.completed
    assert s2.jobs["backup"].next_run is None


def test_a_new_disabled_job_is_created_paused(clock: FakeClock) -> None:
    s1, plan = apply([backup(enabled=False)], State(), clock.now())
    assert s1.jobs["backup"].state is JobStatus.paused
    assert only(plan, "backup").notes == ("paused",)
    s2, plan = apply([backup(enabled=False, description="x")], s1, clock.now())
    assert only(plan, "backup").notes == ("still paused",)


def test_pausing_drops_a_queued_occurrence(clock: FakeClock) -> None:
    s1, _ = apply([backup()], State(), clock.now())
    s1 = s1.with_job("backup", s1.jobs["backup"].with_(queued=at(3)))
    s2, _ = apply([backup(enabled=False)], s1, clock.now())
    assert s2.jobs["backup"].queued is None


def test_a_jitter_change_is_a_schedule_change(clock: FakeClock) -> None:
    s1, _ = apply([backup()], State(), clock.now())
    s2, plan = apply([backup(jitter="10m")], s1, clock.now())
    change = only(plan, "backup")
    assert change.notes[0] == "schedule changed: next run recomputed from now"
    assert at(3, day=3) <= s2.jobs["backup"].next_run < at(3, 10, day=3)


def test_a_reboot_job_has_no_next_run(clock: FakeClock) -> None:
    s1, plan = apply([spec(name="warm", schedule="@reboot")], State(), clock.now())
    assert s1.jobs["warm"].state is JobStatus.scheduled
    assert s1.jobs["warm"].next_run is None
    assert only(plan, "warm").notes == ("runs each time an engine starts",)


def test_an_apply_that_changes_nothing_keeps_revision_and_applied_at(clock: FakeClock) -> None:
    s1, _ = apply([backup()], State(), clock.now(), revision="c1")
    clock.advance(3600)
    s2, plan = reconcile([backup()], s1, clock.now(), revision="c2")
    assert s2 is s1
    assert (s2.revision, s2.applied_at) == ("c1", at(8))
    assert encode_state(s2) == encode_state(s1)
    assert plan.summary() == "0 to create, 0 to update, 0 to delete, 1 unchanged"


def test_the_plan_is_ordered_delete_create_update_unchanged_then_by_name(clock: FakeClock) -> None:
    names = ["d-old", "c-old", "b-keep", "a-edit", "z-edit"]
    s1, _ = apply([backup(name=n) for n in names], State(), clock.now())
    specs = [
        backup(name="b-keep"),
        backup(name="a-edit", shell="x"),
        backup(name="z-edit", shell="y"),
        backup(name="y-new"),
        backup(name="e-new"),
    ]
    _, plan = apply(specs, s1, clock.now())
    assert actions(plan) == [
        ("delete", "c-old"),
        ("delete", "d-old"),
        ("create", "e-new"),
        ("create", "y-new"),
        ("update", "a-edit"),
        ("update", "z-edit"),
        ("unchanged", "b-keep"),
    ]
    assert plan.counts == {"create": 2, "update": 2, "delete": 2, "unchanged": 1}


def test_plan_json_has_the_documented_keys(clock: FakeClock) -> None:
    s1, _ = apply([backup(), briefing()], State(), clock.now())
    _, plan = reconcile([backup(shell="other.sh")], s1, clock.now())
    data = plan.to_json()
    assert data["unchanged"] == []
    assert data["summary"] == {"create": 0, "update": 1, "delete": 1, "unchanged": 0}
    assert data["changes"] == [
        {
            "name": "briefing",
            "action": "delete",
            "fields": [],
            "next_run_before": "2026-03-02T09:00:00+00:00",
            "next_run_after": None,
            "notes": ["history kept in runs/briefing/"],
        },
        {
            "name": "backup",
            "action": "update",
            "fields": ["shell"],
            "next_run_before": "2026-03-03T03:00:00+00:00",
            "next_run_after": "2026-03-03T03:00:00+00:00",
            "notes": ["catch-up: none"],
            "values": {"shell": {"old": "backup.sh", "new": "other.sh"}},
        },
    ]


def test_a_job_declared_twice_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="declared twice"):
        reconcile([backup(), backup()], State(), clock.now())


def test_reconcile_is_pure_and_leaves_its_input_state_alone(clock: FakeClock) -> None:
    s1, _ = apply([backup(), briefing()], State(), clock.now())
    before = encode_state(s1)
    reconcile([backup(shell="x")], s1, clock.now())
    assert encode_state(s1) == before


def test_the_plan_diff_shows_builds_no_state_for_a_new_job(clock: FakeClock) -> None:
    """plan_for is reconcile's plan without the state: a new job's JobState and the
    schedule signature it keeps are not worked out (a cold `diff` of 10,000 new jobs
    spent 14% there), and the state it is given is left as it was."""
    s1, _ = apply([backup()], State(), clock.now())
    new = briefing()
    shown = plan_for([new, backup(shell="other.sh")], s1, clock.now())
    assert actions(shown) == [("create", "briefing"), ("update", "backup")]
    assert new._sig is None  # not asked for: no JobState was made for it
    assert s1.jobs.keys() == {"backup"} and s1.jobs["backup"].spec["shell"] == "backup.sh"
    _, plan = reconcile([new, backup(shell="other.sh")], s1, clock.now())
    assert plan == shown
