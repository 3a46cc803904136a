"""``cronfile status`` reads every job's last runs at once (``Store.last_runs``, issue 17):
its ``--json`` is byte for byte what the per-job reads (``merged_history`` of each job)
gave, on a repo with history: runs, late deliveries lines, a line without a run id, an
agent job's usage, a deleted job's history, a job never run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli_helpers import cronfile

from cronfile.cli import agent_usage
from cronfile.history import engine_running, merged_histories, merged_history
from cronfile.load import load_project
from cronfile.render import status_rows
from cronfile.stores import open_store


def _write(repo: Path, name: str, text: str) -> None:
    (repo / "jobs.d" / f"{name}.yaml").write_text(text)


def _run(job: str, run_id: str, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "job": job,
        "run_id": run_id,
        "trigger": "schedule",
        "status": status,
        "started_at": at.isoformat(timespec="seconds"),
        "finished_at": (at + timedelta(seconds=3)).isoformat(timespec="seconds"),
        "deliveries": [],
        **extra,
    }


def _old_json(repo: Path) -> tuple[str, datetime]:
    """What ``status --json`` printed before: one merged_history read per job."""
    project = load_project(repo, warnings=False)
    store = open_store(state_dir=repo / ".cronfile")
    state = store.read()
    now = datetime.now(UTC)
    names = set(state.jobs) | {s.name for s in project.specs}
    histories = {n: merged_history(store, n, 10) for n in names}
    usage = agent_usage(store, project, state, names, now)
    rows = status_rows(project.specs, state, histories, now, engine_running=engine_running(store), usage=usage)
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n", now


def test_status_json_is_byte_identical_to_the_per_job_reads(tmp_path: Path) -> None:
    repo = tmp_path
    (repo / "jobs.d").mkdir()
    _write(repo, "often", "schedule: '0 0 1 1 *'\nshell: echo often\n")
    _write(repo, "agent", "schedule: '0 0 1 1 *'\nprompt: summarize\nagent: llm\nbudget: {tokens_per_day: 5000}\n")
    _write(repo, "never", "schedule: '0 0 1 1 *'\ncommand: [echo, never]\n")
    _write(repo, "gone", "schedule: '0 0 1 1 *'\nshell: echo gone\n")
    assert cronfile("apply", "-q", cwd=repo).returncode == 0
    (repo / "jobs.d" / "gone.yaml").unlink()  # in the state, not in the files: drift
    _write(repo, "new", "schedule: '0 0 1 1 *'\nshell: echo new\n")  # in the files only

    store = open_store(state_dir=repo / ".cronfile")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    statuses = ["success", "failed", "success", "timeout", "success", "skipped", "success", "failed", "missed", "success", "success", "failed", "success", "success"]
    for i, status in enumerate(statuses):
        store.append_history("often", _run("often", f"o{i:02d}", status, t0 + timedelta(minutes=i)))
        if i == 5:  # a deliveries line of run 1, written late: run 1 stays where it began
            store.append_history("often", {"run_id": "o01", "deliveries": [{"target": "webhook", "ok": False, "key": "o01.0"}]})
        if i % 4 == 0:
            store.append_history("often", {"run_id": f"o{i:02d}", "deliveries": [{"target": "stdout", "ok": True, "key": f"o{i:02d}.0"}]})
    store.append_history("often", {"job": "often", "status": "success"})  # no run id: no run
    usage = {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.01}
    for i in range(3):
        store.append_history("agent", _run("agent", f"a{i}", "success", t0 + timedelta(minutes=30 * i), usage=usage))
    store.append_history("agent", _run("agent", "a-old", "success", t0 - timedelta(days=2), usage=usage))  # outside 24 h
    store.append_history("gone", _run("gone", "g0", "failed", t0))

    new = cronfile("status", "--json", cwd=repo)
    assert new.returncode == 0, new.stderr
    old, _ = _old_json(repo)
    assert new.stdout == old
    rows = {r["name"]: r for r in json.loads(new.stdout)}
    # What the comparison covers (so that it compares something):
    assert rows["often"]["recent"] == statuses[-10:]
    assert rows["agent"]["usage_24h"]["input_tokens"] == 3600
    assert rows["gone"]["drift"] == "not in files" and rows["gone"]["recent"] == ["failed"]
    assert rows["never"]["recent"] == [] and rows["new"]["drift"] == "not applied"


def test_merged_histories_is_merged_history_of_every_job(tmp_path: Path) -> None:
    store = open_store(state_dir=tmp_path / "state")
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for i in range(25):
        job = f"j{i % 3}"
        store.append_history(job, _run(job, f"r{i:02d}", "success", at + timedelta(minutes=i)))
        if i % 5 == 0:
            store.append_history(job, {"run_id": f"r{i:02d}", "deliveries": [{"target": "stdout", "ok": True, "key": "k"}]})
        if i == 20:
            store.append_history("j0", {"run_id": "r03", "deliveries": [{"target": "stdout", "ok": True, "key": "k"}]})
    for n in (1, 3, 10):
        assert merged_histories(store, n) == {job: merged_history(store, job, n) for job in ("j0", "j1", "j2")}


def test_a_state_db_without_the_run_index_gets_it_from_the_first_last_runs_and_reads_the_same(tmp_path: Path) -> None:
    import sqlite3

    from cronfile.stores.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "state")
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for i in range(6):
        store.append_history("j", _run("j", f"r{i}", "success", at + timedelta(minutes=i)))
    store.append_history("j", {"run_id": "r1", "deliveries": []})
    want = store.last_runs(3)
    store.close()
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        db.execute("DROP INDEX history_run")  # as a database no `status` has read yet
    older = SqliteStore(tmp_path / "state")
    assert older.last_runs(3) == want == {"j": [_run("j", f"r{i}", "success", at + timedelta(minutes=i)) for i in (3, 4, 5)]}
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_run'").fetchone()
