"""The engine's decisions on a fake clock, with real processes for the runs: catch-up
after downtime, the four concurrency policies, max_concurrent, repeat, recovery of
runs whose engine died, manual runs."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime

import pytest
from engine_helpers import LocalEngine, wait_for, write_job

from cronfile.state import JobStatus, Running
from cronfile.stores.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)  # a Monday, no DST change near


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, 2, hh, mm, ss, tzinfo=UTC)


GATED = """\
schedule: "* * * * *"
concurrency: {policy}
shell: |
  echo "$CRONFILE_RUN_ID" >> started
  while [ ! -f release ]; do sleep 0.02; done
  echo "$CRONFILE_RUN_ID" >> finished
"""


def lines(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "catchup, runs, missed",
    [("skip", [], 12), ("once", ["catchup"], 11)],
    ids=["skip-records-missed", "once-runs-the-latest-once"],
)
def test_an_hour_of_downtime_never_bursts(repo, catchup, runs, missed):
    write_job(repo, "every5", f'schedule: "*/5 * * * *"\ncatchup: {catchup}\nshell: echo ran >> ran\n')
    with LocalEngine(repo, T0) as eng:
        assert eng.state("every5").next_run == at(10, 5)
        eng.step(at(11, 2, 30))  # down from 10:00:30 to 11:02:30, past the 1m deadline
        hist = eng.history("every5")
        assert [h["trigger"] for h in hist if h["status"] != "missed"] == runs
        (miss,) = [h for h in hist if h["status"] == "missed"]
        assert miss["missed_count"] == missed
        assert len(lines(repo / "ran")) == len(runs)
        assert eng.state("every5").next_run == at(11, 5)
        if runs:
            (run,) = [h for h in hist if h["status"] == "success"]
            assert run["scheduled_for"] == "2026-03-02T11:00:00+00:00"


def test_a_run_within_the_starting_deadline_is_on_time_not_missed(repo):
    write_job(repo, "j", 'schedule: "*/5 * * * *"\nshell: "true"\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 5, 40))  # 40 s late, deadline 1m
        (run,) = eng.history("j")
        assert run["status"] == "success" and run["trigger"] == "schedule"
        assert run["scheduled_for"] == "2026-03-02T10:05:00+00:00"


def test_forbid_records_skipped_while_the_previous_run_goes_on(repo):
    write_job(repo, "g", GATED.format(policy="forbid"))
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1), wait=False)
        wait_for(lambda: lines(repo / "started"), what="first run")
        assert eng.step(at(10, 2), wait=False) == []
        (repo / "release").touch()
        eng.engine.wait_idle(30)
        statuses = [h["status"] for h in eng.history("g")]
        assert sorted(statuses) == ["skipped", "success"]
        assert len(lines(repo / "started")) == 1
        assert eng.state("g").next_run == at(10, 3)


def test_queue_runs_one_more_right_after_the_current_one(repo):
    write_job(repo, "g", GATED.format(policy="queue"))
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1), wait=False)
        wait_for(lambda: lines(repo / "started"), what="first run")
        eng.step(at(10, 2), wait=False)
        eng.step(at(10, 2, 10), wait=False)  # nothing new is due; the buffer holds one
        assert eng.state("g").queued == at(10, 2)
        (repo / "release").touch()
        eng.engine.wait_idle(30)
        eng.step(at(10, 2, 20))  # the engine wakes when a run ends; the queued one starts
        hist = eng.history("g")
        assert [h["trigger"] for h in hist] == ["schedule", "queued"]
        assert [h["status"] for h in hist] == ["success", "success"]
        assert hist[1]["scheduled_for"] == "2026-03-02T10:02:00+00:00"
        assert eng.state("g").queued is None


def test_allow_starts_another_run_beside_the_first(repo):
    write_job(repo, "g", GATED.format(policy="allow"))
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1), wait=False)
        eng.step(at(10, 2), wait=False)
        wait_for(lambda: len(lines(repo / "started")) == 2, what="two runs at once")
        assert len(eng.state("g").running) == 2
        (repo / "release").touch()
        eng.engine.wait_idle(30)
        assert [h["status"] for h in eng.history("g")] == ["success", "success"]


def test_replace_stops_the_old_run_and_starts_the_new_one(repo):
    write_job(repo, "g", GATED.format(policy="replace"))
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1), wait=False)
        wait_for(lambda: lines(repo / "started"), what="first run")
        eng.step(at(10, 2), wait=False)
        wait_for(lambda: len(lines(repo / "started")) == 2, what="the replacement")
        wait_for(lambda: any(h["status"] == "cancelled" for h in eng.history("g")), what="the old run cancelled")
        (repo / "release").touch()
        eng.engine.wait_idle(30)
        by_status = {h["status"]: h for h in eng.history("g")}
        assert set(by_status) == {"cancelled", "success"}
        assert by_status["success"]["scheduled_for"] == "2026-03-02T10:02:00+00:00"
        assert lines(repo / "finished") == [by_status["success"]["run_id"]]


def test_max_concurrent_makes_runs_wait_in_due_order(repo):
    (repo / "cronfile.yaml").write_text("max_concurrent: 1\n")
    write_job(repo, "a", 'schedule: "1 10 * * *"\nstarting_deadline: 5m\nshell: "echo a >> order; sleep 0.3; echo a-done >> order"\n')
    write_job(repo, "b", 'schedule: "0 10 * * *"\nstarting_deadline: 5m\nshell: "echo b >> order; sleep 0.3; echo b-done >> order"\n')
    with LocalEngine(repo, at(9, 59)) as eng:
        eng.step(at(10, 1, 5))
        assert lines(repo / "order") == ["b", "b-done", "a", "a-done"]


def test_repeat_stops_after_that_many_runs(repo):
    write_job(repo, "r", 'schedule: "* * * * *"\nrepeat: 2\nshell: echo x >> ran\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1))
        eng.step(at(10, 2))
        assert eng.state("r").state == JobStatus.completed
        assert eng.state("r").next_run is None
        eng.step(at(10, 3))
        assert len(lines(repo / "ran")) == 2


def test_a_once_only_job_runs_once_and_completes(repo):
    write_job(repo, "once", 'schedule: "in 2m"\nshell: echo x >> ran\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 2, 31))
        eng.step(at(10, 30))
        assert len(lines(repo / "ran")) == 1
        assert eng.state("once").state == JobStatus.completed


def test_a_run_left_by_a_dead_engine_is_interrupted_and_its_processes_stopped(repo):
    write_job(repo, "j", 'schedule: "0 3 * * *"\nshell: "true"\n')
    store = SqliteStore(repo / ".cronfile")
    with LocalEngine(repo, T0):
        pass
    # A leftover run: its own process group, carrying its run id, as the runner starts it.
    leftover = subprocess.Popen(
        ["sleep", "300"], start_new_session=True, env={**os.environ, "CRONFILE_RUN_ID": "20260302T100000-dead"}
    )
    try:
        with store.transaction() as txn:
            js = txn.state.jobs["j"]
            run = Running("20260302T100000-dead", at(10, 0), at(10, 0), "schedule", "0123456789abcdef", pid=leftover.pid)
            txn.state = txn.state.with_job("j", js.with_(running=(run,)))
        with LocalEngine(repo, at(10, 1)) as eng:
            assert eng.state("j").running == ()
            (h,) = eng.history("j")
            assert h["run_id"] == "20260302T100000-dead" and h["status"] == "interrupted"
            assert "leftover processes were stopped" in h["message"]
            assert eng.step(at(10, 2)) == []  # not re-run
        assert leftover.wait(15) == -signal.SIGTERM
    finally:
        if leftover.poll() is None:
            leftover.kill()


def test_a_run_of_a_live_engine_is_left_alone(repo):
    write_job(repo, "g", GATED.format(policy="forbid"))
    with LocalEngine(repo, T0) as first:
        first.step(at(10, 1), wait=False)
        wait_for(lambda: lines(repo / "started"), what="first run")
        with LocalEngine(repo, at(10, 1, 1)) as second:
            assert len(second.state("g").running) == 1
            assert second.step(at(10, 2), wait=False) == []  # forbid, across engines
        (repo / "release").touch()
    statuses = sorted(h["status"] for h in first.history("g"))
    assert statuses == ["skipped", "success"]


def test_a_manual_run_is_recorded_as_manual_with_its_exit_code(repo):
    write_job(repo, "m", 'schedule: "0 3 * * *"\nshell: "echo out; exit 3"\n')
    with LocalEngine(repo, T0) as eng:
        spec = eng.engine.project.job("m")
        assert eng.engine.run_now(spec, stream=None) == "failed"
        (h,) = eng.history("m")
        assert (h["trigger"], h["status"], h["exit_code"]) == ("manual", "failed", 3)
        assert eng.state("m").next_run == at(3, 0).replace(day=3)  # the schedule is untouched
        assert eng.state("m").last_run.status == "failed"


def test_deliveries_are_recorded_in_the_runs_history_line(repo):
    write_job(repo, "d", 'schedule: "* * * * *"\nshell: echo hi\ndeliver: [stdout]\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(at(10, 1))
        (h,) = eng.history("d")
        # The key: the outbox entry's idempotency key, <run id>.<target index>.
        assert h["deliveries"] == [{"key": f"{h['run_id']}.0", "target": "stdout", "ok": True, "attempts": 1, "status_code": None, "error": None, "skipped": None}]
