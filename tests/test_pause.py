"""Runtime pause and resume (cronfile/pause.py) through reconcile and due, on a FakeClock.

The daemon process test (pause from another process, resume with no burst, a restart
keeps the pause) is in tests/test_pause_daemon.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import build_spec as spec
from engine_helpers import state_data

from cronfile.clock import FakeClock
from cronfile.due import decide, due_by, next_wake
from cronfile.pause import drift, pause, resume
from cronfile.reconcile import Action, reconcile
from cronfile.state import JobStatus, Pause, State
from cronfile.stores.file import encode_state


def at(hh: int, mm: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


def hourly(**kw):
    return spec(**{"name": "report", "schedule": "0 * * * *", "shell": "report.sh", **kw})


def a_pause(when: datetime, reason: str = "disk full") -> Pause:
    return Pause(at=when, user="ann", host="box", reason=reason)


def applied(clock: FakeClock, *specs) -> State:
    state, _ = reconcile(list(specs), State(), clock.now())
    return state


def paused(state: State, name: str, when: datetime, reason: str = "disk full") -> State:
    return state.with_job(name, pause(state.jobs[name], a_pause(when, reason)))


def round_trip(state: State) -> State:
    return State.decode(json.loads(encode_state(state)))


def test_a_paused_job_is_never_due_however_late_it_gets(clock: FakeClock) -> None:
    job = hourly(catchup="once")
    state = paused(applied(clock, job), "report", clock.now())
    js = state.jobs["report"]
    assert (js.state, js.next_run) == (JobStatus.paused, None)
    schedule = job.build_schedule(js.created_at)
    for later in (at(9), at(9, 30), at(23), at(8, day=5)):
        assert decide(job, js, schedule, later) is None
        assert decide(job, js, schedule, later, later + timedelta(seconds=1)) is None
    assert due_by(state, at(8, day=9)) == 0
    assert next_wake(state, at(9)) is None


def test_pausing_drops_a_buffered_occurrence(clock: FakeClock) -> None:
    state = applied(clock, hourly(concurrency="queue"))
    state = state.with_job("report", state.jobs["report"].with_(queued=at(9)))
    js = pause(state.jobs["report"], a_pause(clock.now()))
    assert js.queued is None and next_wake({"report": js}, at(9)) is None


def test_resuming_times_the_next_run_from_then_with_no_catch_up(clock: FakeClock) -> None:
    job = hourly(catchup="once")
    state = paused(applied(clock, job), "report", clock.now())
    assert state.jobs["report"].pause is not None
    clock.set(at(13, 20))  # five occurrences went by while paused
    js, note = resume(state.jobs["report"], job, job.build_schedule(at(8)), clock.now())
    assert (js.state, js.next_run, js.pause) == (JobStatus.scheduled, at(14), None)
    assert "no catch-up" in note
    schedule = job.build_schedule(js.created_at)
    assert decide(job, js, schedule, clock.now()) is None  # nothing from 09:00-13:00 runs
    due = decide(job, js, schedule, at(14))
    assert due is not None and (due.run, due.trigger, due.missed) == (at(14), "schedule", 0)


@pytest.mark.parametrize(
    ("fields", "run_count", "state", "next_run"),
    [
        ({}, 0, JobStatus.scheduled, at(10)),
        ({"enabled": False}, 0, JobStatus.paused, None),
        ({"repeat": 2}, 2, JobStatus.completed, None),
        ({"schedule": "@reboot"}, 0, JobStatus.scheduled, None),
        ({"schedule": "2026-03-02T09:00:00Z"}, 0, JobStatus.completed, None),
    ],
    ids=["scheduled", "enabled-false-in-the-files", "repeat-used-up", "reboot", "instant-passed"],
)
def test_resume_leaves_the_job_where_its_spec_puts_it(clock, fields, run_count, state, next_run) -> None:
    job = hourly(**fields)
    js = applied(clock, job).jobs["report"].with_(run_count=run_count)
    js = pause(js, a_pause(clock.now()))
    clock.set(at(9, 30))
    out, _ = resume(js, job, job.build_schedule(js.created_at), clock.now())
    assert (out.state, out.next_run, out.pause) == (state, next_run, None)


def test_resuming_a_job_not_paused_changes_nothing(clock: FakeClock) -> None:
    job = hourly()
    js = applied(clock, job).jobs["report"]
    out, note = resume(js, job, job.build_schedule(js.created_at), at(9, 30))
    assert out is js and note == "not paused"
    off = hourly(enabled=False)
    js = applied(clock, off).jobs["report"]
    out, note = resume(js, off, off.build_schedule(js.created_at), at(9, 30))
    assert out is js and "enabled: false" in note


def test_an_apply_of_the_same_files_keeps_the_pause_and_the_very_same_state(clock) -> None:
    job = hourly()
    state = paused(applied(clock, job), "report", clock.now())
    clock.set(at(12))
    again, plan = reconcile([job], state, clock.now())
    assert again is state and not plan.has_changes
    assert round_trip(state) == state


def test_an_apply_that_changes_a_paused_job_records_the_spec_and_keeps_the_pause(clock) -> None:
    state = paused(applied(clock, hourly()), "report", clock.now(), "flaky upstream")
    clock.set(at(12))
    new, plan = reconcile([hourly(schedule="*/15 * * * *")], state, clock.now())
    (change,) = plan.changes
    assert change.action is Action.update and change.fields == ("schedule",)
    assert change.next_run_after is None
    assert "paused at runtime by ann@box" in change.notes[0] and "flaky upstream" in change.notes[0]
    js = new.jobs["report"]
    assert (js.state, js.next_run, js.spec["schedule"]) == (JobStatus.paused, None, "*/15 * * * *")
    assert js.pause == state.jobs["report"].pause
    # Re-planning changes nothing, and the state survives encode/decode.
    again, plan2 = reconcile([hourly(schedule="*/15 * * * *")], new, at(12, 7))
    assert again is new and not plan2.has_changes
    assert round_trip(new) == new


def test_enabling_a_paused_job_in_the_files_does_not_resume_it(clock: FakeClock) -> None:
    state = applied(clock, hourly(enabled=False))
    state = paused(state, "report", clock.now())
    new, plan = reconcile([hourly()], state, at(9, 30))
    js = new.jobs["report"]
    assert (js.state, js.next_run) == (JobStatus.paused, None) and js.pause is not None
    (change,) = plan.changes
    assert change.fields == ("enabled",) and change.next_run_after is None


def test_a_paused_job_deleted_from_the_files_is_deleted_and_comes_back_unpaused(clock) -> None:
    state = paused(applied(clock, hourly()), "report", clock.now())
    gone, plan = reconcile([], state, at(9, 30))
    assert [str(c.action) for c in plan.changes] == ["delete"] and gone.jobs == {}
    back, _ = reconcile([hourly()], gone, at(9, 40))
    assert back.jobs["report"].pause is None and back.jobs["report"].next_run == at(10)


def test_drift_lists_the_paused_jobs_with_who_and_why(clock: FakeClock) -> None:
    state = applied(clock, hourly(), hourly(name="other"), hourly(name="off", enabled=False))
    state = paused(state, "report", at(8, 5), "disk full")
    (d,) = drift(state)
    assert {k: d[k] for k in ("name", "kind", "user", "host", "reason")} == {
        "name": "report",
        "kind": "paused",
        "user": "ann",
        "host": "box",
        "reason": "disk full",
    }
    assert d["at"] == "2026-03-02T08:05:00+00:00"


def test_a_state_without_pauses_is_encoded_as_before(clock: FakeClock) -> None:
    state = applied(clock, hourly())
    assert b'"pause"' not in encode_state(state)
    assert b'"pause"' in encode_state(paused(state, "report", clock.now()))


def test_pause_of_a_job_not_applied_is_a_one_line_error_and_changes_nothing(tmp_path) -> None:
    from cli_helpers import cronfile

    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "report.yaml").write_text('schedule: "0 * * * *"\nshell: "true"\n')
    r = cronfile("-C", str(tmp_path), "pause", "report")
    assert r.returncode == 2
    assert r.stderr.strip() == "cronfile: error: no applied job named 'report' (run `cronfile apply` first)"
    assert cronfile("-C", str(tmp_path), "apply").returncode == 0
    r = cronfile("-C", str(tmp_path), "pause", "reprot")
    assert r.returncode == 2 and "did you mean report?" in r.stderr and "Traceback" not in r.stderr
    state = state_data(tmp_path / ".cronfile")
    assert state["jobs"]["report"]["state"] == "scheduled"
    r = cronfile("-C", str(tmp_path), "resume", "report", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["resumed"] is False
    audit = (tmp_path / ".cronfile" / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 1  # the apply; a failed pause and a no-op resume write nothing
