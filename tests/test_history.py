"""The run record (cronfile/history.py): one typed, versioned value; the lines the engine
writes are the keys docs/design.md 7.2 documents, plus ``version``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from engine_helpers import LocalEngine, write_job

from cronfile.history import HISTORY_VERSION, RunRecord
from cronfile.spec import Status, Trigger

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)

# docs/design.md 7.2: a run's record (usage_error only when a report could not be read).
RAN = {
    "job", "run_id", "trigger", "scheduled_for", "claimed_at", "started_at", "finished_at",
    "duration_s", "status", "exit_code", "attempts", "message", "output_bytes",
    "output_truncated", "log_path", "usage", "detail", "deliveries", "host", "engine",
}
UNRUN = {
    "job", "run_id", "trigger", "scheduled_for", "started_at", "finished_at", "status",
    "exit_code", "attempts", "message", "log_path", "deliveries", "host",
}


def raw_lines(repo, job: str) -> list[dict]:
    """The history records as written (not merged by run_id), read through the store."""
    from cronfile.stores import open_store

    return open_store(state_dir=repo / ".cronfile").read_history(job)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    return tmp_path


def test_a_finished_run_and_a_missed_one_are_written_as_documented(repo):
    write_job(repo, "j", 'schedule: "*/5 * * * *"\ncatchup: once\nshell: echo hi\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(datetime(2026, 3, 2, 10, 21, 30, tzinfo=UTC))  # 10:05..10:15 missed, 10:20 catches up
    missed, ran = raw_lines(repo, "j")
    assert set(missed) == UNRUN | {"missed_count", "missed_first", "version"}
    assert (missed["status"], missed["missed_count"], missed["attempts"]) == ("missed", 3, 0)
    assert set(ran) - {"lateness_ms"} == RAN | {"version"}
    assert (ran["status"], ran["trigger"], ran["exit_code"], ran["version"]) == ("success", "catchup", 0, HISTORY_VERSION)
    for line in (missed, ran):
        assert RunRecord.decode(line).encode() == line  # the value is the line


def test_a_line_without_version_decodes_as_version_1_and_unknown_keys_are_ignored():
    old = {
        "job": "j", "run_id": "20260302T100000-abcd", "trigger": "schedule",
        "scheduled_for": "2026-03-02T10:00:00+00:00", "started_at": None, "finished_at": None,
        "status": "skipped", "exit_code": None, "attempts": 0, "log_path": None,
        "deliveries": [], "message": "the previous run was still going (concurrency: forbid)",
        "host": "box", "from_the_future": {"x": 1},
    }
    rec = RunRecord.decode(old)
    assert rec.version == 1
    assert (rec.status, rec.trigger, rec.scheduled_for) == (Status.skipped, Trigger.schedule, datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert rec.encode() == {k: v for k, v in old.items() if k != "from_the_future"} | {"version": 1}


def test_a_delivery_line_is_not_a_run_record():
    with pytest.raises(ValueError):
        RunRecord.decode({"run_id": "20260302T100000-abcd", "deliveries": [{"target": "stdout", "ok": True}]})


def test_last_success_output_reads_a_silent_run_as_empty_and_a_lost_log_as_none(repo):
    # context.from_job reads this: "" is what a run printed, None that its log is gone.
    from pathlib import Path

    from cronfile.history import last_success_output

    write_job(repo, "quiet", 'schedule: "* * * * * *"\nshell: "true"\n')
    write_job(repo, "loud", 'schedule: "* * * * * *"\nshell: echo hello\n')
    with LocalEngine(repo, T0) as eng:
        eng.step(datetime(2026, 3, 2, 10, 0, 31, tzinfo=UTC))
        [quiet] = eng.history("quiet")
        [loud] = eng.history("loud")
        assert quiet["status"] == loud["status"] == "success"
        assert quiet["log_path"] and not Path(quiet["log_path"]).exists()  # never made: silent
        assert last_success_output(eng.store, "quiet") == ""
        assert last_success_output(eng.store, "loud") == "hello\n"
        Path(loud["log_path"]).unlink()  # lost (removed by hand): not the same as silent
        assert last_success_output(eng.store, "loud") is None
