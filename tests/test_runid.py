"""Run ids begin with the run's scheduled instant (`20261206T050800-xxxx` for the 05:08:00
run, however early it was claimed or late it started), and with the start of a manual
run; records of missed and skipped occurrences carry their instant too."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from engine_helpers import LocalEngine, write_job


def at(hh: int, mm: int, ss: float = 0) -> datetime:
    return datetime(2026, 12, 6, hh, mm, int(ss), int(round(ss % 1 * 1_000_000)), tzinfo=UTC)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    return tmp_path


def runs(eng: LocalEngine, job: str) -> list[dict]:
    return [h for h in eng.history(job) if h.get("status")]


def test_a_run_claimed_ahead_of_its_instant_is_named_by_the_instant(repo):
    write_job(repo, "report", 'schedule: "8 5 * * *"\nshell: echo "$CRONFILE_RUN_ID"\n')
    with LocalEngine(repo, at(5, 7, 0), mode="daemon") as eng:
        # The daemon claims a few ms before the instant (engine.LEAD_*): 05:07:59.990.
        eng.clock.set(at(5, 7, 59.99))
        claims, _ = eng.engine.claim_due(eng.clock.now(), at(5, 8))
        assert [c.job for c in claims] == ["report"]
        eng.clock.set(at(5, 8, 0.01))
        eng.engine.dispatch(claims)
        assert eng.engine.wait_idle(30)
        (run,) = runs(eng, "report")
        assert re.fullmatch(r"20261206T050800-[0-9a-f]{4}", run["run_id"]), run["run_id"]
        assert run["scheduled_for"] == "2026-12-06T05:08:00+00:00"


def test_a_late_start_and_a_missed_occurrence_keep_their_instants(repo):
    write_job(repo, "late", 'schedule: "8 5 * * *"\nshell: "true"\n')
    write_job(repo, "missed", 'schedule: "8 5 * * *"\nshell: "true"\n')
    with LocalEngine(repo, at(5, 7, 0)) as eng:
        eng.step(at(5, 8, 40))  # within the 1m starting deadline: runs, late
        (late,) = runs(eng, "late")
        assert late["run_id"].startswith("20261206T050800-") and late["status"] == "success"
        # Next day, the engine was down past the deadline: a missed record, same rule.
        eng.step(datetime(2026, 12, 7, 6, 0, tzinfo=UTC))
        missed = [h for h in eng.history("missed") if h["status"] == "missed"]
        assert [m["run_id"][:15] for m in missed] == ["20261207T050800"]


def test_a_manual_run_is_named_by_its_start(repo):
    write_job(repo, "report", 'schedule: "8 5 * * *"\nshell: "true"\n')
    with LocalEngine(repo, at(9, 15, 42)) as eng:
        spec = eng.engine.project.job("report")
        assert eng.engine.run_now(spec, stream=None) == "success"
        (run,) = runs(eng, "report")
        assert run["run_id"].startswith("20261206T091542-") and run["trigger"] == "manual"


def test_the_runs_of_one_instant_never_share_an_id():
    # 4 hex digits drawn at random for 200 runs of one second collided about one second
    # in three; a run's cgroup is named by its id alone, so one run's end stopped another
    # job's run. Within a process, the ids of one instant are now all different.
    from cronfile.history import new_run_id

    instant = at(5, 8)
    ids = [new_run_id(instant) for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"20261206T050800-[0-9a-f]{4}", i) for i in ids)


def test_an_instant_keeps_unique_ids_however_many_other_instants_come_between():
    # A claim pass after downtime names many missed instants between two runs of one
    # instant; the ids given out for it must not be forgotten in between.
    import threading

    from cronfile.history import new_run_id

    instant = at(5, 8)
    ids = [new_run_id(instant) for _ in range(100)]
    for k in range(500):
        new_run_id(at(4, k // 60, k % 60))
    ids += [new_run_id(instant) for _ in range(100)]
    # and from several threads at once (a manual run beside the claim loop)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.extend(new_run_id(instant) for _ in range(500))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids += out
    assert len(set(ids)) == len(ids) == 2200
