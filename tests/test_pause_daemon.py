"""`cronfile pause` and `resume` against the real daemon, from another process.

Absence of runs is proved by a witness: a second every-second job that keeps firing.
Once the witness has run at instants well past the pause, the paused job would have run
at them too had the pause not held.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, history, wait_for, write_job

pytestmark = pytest.mark.slow

MARK = 'shell: echo "$CRONFILE_SCHEDULED_FOR" >> "{marks}"\n'
# A claim is made a little before its instant (engine.LEAD_MAX at most): an instant
# claimed just before the pause still runs. Later ones must not.
CLAIMED_AHEAD = timedelta(seconds=2.5)


def stamps(path) -> list[datetime]:
    if not path.exists():
        return []
    return [datetime.fromisoformat(ln.strip()) for ln in path.read_text().splitlines() if ln.strip()]


def witness_past(path, when: datetime, n: int = 3) -> bool:
    return len([s for s in stamps(path) if s > when]) >= n


@pytest.fixture
def repo(tmp_path):
    # catchup: once would run the latest skipped instant at resume if the pause kept
    # next_run: the test shows it does not.
    write_job(tmp_path, "tick", 'schedule: "* * * * * *"\ncatchup: once\n' + MARK.format(marks=tmp_path / "tick.marks"))
    write_job(tmp_path, "witness", 'schedule: "* * * * * *"\n' + MARK.format(marks=tmp_path / "witness.marks"))
    return tmp_path


def test_pause_from_another_process_stops_the_job_resume_fires_again_and_a_restart_keeps_it(repo):
    ticks, witness = repo / "tick.marks", repo / "witness.marks"
    with Daemon(repo) as d:
        wait_for(lambda: len(stamps(ticks)) >= 2, 20, what="the job firing")

        r = cronfile("-C", str(repo), "pause", "tick", "--reason", "disk full")
        assert r.returncode == 0, r.stderr
        paused_at = datetime.now(UTC)
        assert "disk full" in r.stderr

        wait_for(lambda: witness_past(witness, paused_at + CLAIMED_AHEAD + timedelta(seconds=1)), 30, what="the witness firing after the pause")
        assert [s for s in stamps(ticks) if s > paused_at + CLAIMED_AHEAD] == []

        # status (text and JSON) shows the pause and why; the audit log says who.
        st = json.loads(cronfile("-C", str(repo), "status", "--json").stdout)
        row = next(r for r in st if r["name"] == "tick")
        assert row["state"] == "paused" and row["pause"]["reason"] == "disk full"
        assert row["next_run"] is None
        text = cronfile("-C", str(repo), "status").stdout
        assert "paused (runtime)" in text and "disk full" in text
        audit = [json.loads(ln) for ln in (repo / ".cronfile" / "audit.jsonl").read_text().splitlines()]
        assert audit[-1]["action"] == "pause" and audit[-1]["reason"] == "disk full" and audit[-1]["user"]

        before_resume = len(stamps(ticks))
        r = cronfile("-C", str(repo), "resume", "tick")
        assert r.returncode == 0, r.stderr
        resumed_at = datetime.now(UTC)
        wait_for(lambda: len([s for s in stamps(ticks) if s > resumed_at]) >= 2, 20, what="the job firing after resume")
        after = stamps(ticks)[before_resume:]
        # No catch-up burst: nothing for the instants skipped while paused.
        assert all(s > resumed_at - timedelta(seconds=1) for s in after), after
        catchups = [h for h in history(repo, "tick") if h.get("trigger") == "catchup" or h.get("status") == "missed"]
        assert catchups == []

        # Pause again, then restart the daemon: the pause holds.
        assert cronfile("-C", str(repo), "pause", "tick", "--reason", "maintenance").returncode == 0
        d.stop()
    repaused_at = datetime.now(UTC)
    count = len(stamps(ticks))
    with Daemon(repo):
        wait_for(lambda: witness_past(witness, repaused_at + timedelta(seconds=1)), 30, what="the witness firing after the restart")
        assert len(stamps(ticks)) == count
        st = json.loads(cronfile("-C", str(repo), "status", "--json").stdout)
        row = next(r for r in st if r["name"] == "tick")
        assert row["state"] == "paused" and row["pause"]["reason"] == "maintenance"
    d2 = cronfile("-C", str(repo), "diff", "--json")
    assert d2.returncode == 0  # nothing for apply to do: the pause is drift it keeps
    assert [x["name"] for x in json.loads(d2.stdout)["drift"]] == ["tick"]
