"""The GitOps flow with a real git repo and the real command line: diff, apply, edits
that keep or move next_run, a broken commit that changes nothing, concurrent commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, cronfile
from engine_helpers import state_data, state_snapshot

from cronfile.stores.sqlite import SqliteStore


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(repo)},
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def state(repo: Path) -> dict:
    return state_data(repo / ".cronfile")


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".cronfile/\n")
    return tmp_path


def test_the_gitops_flow_from_first_commit_to_a_broken_one(repo):
    rev = commit(repo, {"jobs.d/report.yaml": 'description: v1\nschedule: "0 9 * * *"\ntimezone: Europe/Berlin\nshell: echo report\n',
                        "jobs.d/cleanup.yaml": 'schedule: "@daily"\nshell: echo clean\n'}, "two jobs")
    res = cronfile("diff", cwd=repo)
    assert res.returncode == 1
    assert "+ create report" in res.stdout and "2 to create, 0 to update, 0 to delete" in res.stdout

    res = cronfile("apply", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert cronfile("diff", cwd=repo).returncode == 0
    again = cronfile("apply", cwd=repo)
    assert again.returncode == 0 and "No changes" in again.stdout
    audit = [json.loads(ln) for ln in (repo / ".cronfile" / "audit.jsonl").read_text().splitlines()]
    assert len(audit) == 1 and audit[0]["revision"] == rev
    assert audit[0]["summary"].startswith("2 to create")
    before = state(repo)["jobs"]["report"]["next_run"]

    # An edited description keeps next_run exactly: no false catch-up, no lost run.
    commit(repo, {"jobs.d/report.yaml": 'description: v2\nschedule: "0 9 * * *"\ntimezone: Europe/Berlin\nshell: echo report\n'}, "reword")
    res = cronfile("diff", cwd=repo)
    assert res.returncode == 1 and "~ update report" in res.stdout and "catch-up: none" in res.stdout
    assert cronfile("apply", cwd=repo).returncode == 0
    assert state(repo)["jobs"]["report"]["next_run"] == before

    # An edited schedule moves it.
    commit(repo, {"jobs.d/report.yaml": 'description: v2\nschedule: "30 17 * * *"\ntimezone: Europe/Berlin\nshell: echo report\n'}, "later")
    res = cronfile("diff", "--json", cwd=repo)
    assert res.returncode == 1
    (change,) = json.loads(res.stdout)["changes"]
    assert change["name"] == "report" and change["action"] == "update" and "schedule" in change["fields"]
    assert change["next_run_before"] == before and change["next_run_after"] != before
    assert change["next_run_after"].endswith(("T17:30:00+01:00", "T17:30:00+02:00"))
    assert cronfile("apply", cwd=repo).returncode == 0
    assert state(repo)["jobs"]["report"]["next_run"] == change["next_run_after"]

    # A broken commit: apply exits 2, lists the problem, and state.json is untouched.
    snapshot = state_snapshot(repo / ".cronfile")
    commit(repo, {"jobs.d/report.yaml": 'description: v3\nschedule: "30 25 * * *"\nshell: echo report\n',
                  "jobs.d/cleanup.yaml": None, "jobs.d/new.yaml": 'schedule: "@hourly"\nshell: "true"\n'}, "broken")
    res = cronfile("apply", cwd=repo)
    assert res.returncode == 2
    assert "jobs.d/report.yaml:2:11: schedule: " in res.stderr and "Traceback" not in res.stderr
    assert state_snapshot(repo / ".cronfile") == snapshot
    res = cronfile("diff", "--json", cwd=repo)
    assert res.returncode == 2
    assert json.loads(res.stdout)["errors"][0]["path"] == "jobs.d/report.yaml"

    # Fixed: the delete and the create go through together.
    commit(repo, {"jobs.d/report.yaml": 'description: v3\nschedule: "30 17 * * *"\ntimezone: Europe/Berlin\nshell: echo report\n'}, "fix")
    res = cronfile("apply", "--json", cwd=repo)
    actions = {c["name"]: c["action"] for c in json.loads(res.stdout)["changes"]}
    assert actions == {"cleanup": "delete", "new": "create", "report": "update"}
    assert set(state(repo)["jobs"]) == {"new", "report"}


def test_apply_dry_run_changes_nothing(repo):
    commit(repo, {"jobs.d/a.yaml": 'schedule: "@daily"\nshell: x\n'}, "a")
    res = cronfile("apply", "--dry-run", cwd=repo)
    assert res.returncode == 0 and "+ create a" in res.stdout
    assert not SqliteStore(repo / ".cronfile").exists()


def test_status_shows_drift_and_flags_overdue_jobs(repo):
    from engine_helpers import wait_for

    commit(repo, {"jobs.d/a.yaml": 'schedule: "* * * * * *"\nstarting_deadline: 1s\nshell: x\n'}, "a")
    assert cronfile("apply", cwd=repo).returncode == 0
    commit(repo, {"jobs.d/b.yaml": 'schedule: "@daily"\nshell: x\n'}, "b")

    def rows() -> dict:
        res = cronfile("status", "--json", cwd=repo)
        return {r["name"]: r for r in json.loads(res.stdout)}

    # No engine runs: a's next run falls due and goes past its deadline unnoticed.
    got = wait_for(lambda: (r := rows())["a"]["overdue"] and r, timeout=15, what="a flagged overdue")
    assert set(got["a"]) >= {"name", "schedule", "timezone", "state", "next_run", "run_count", "last_run"}
    assert got["b"]["drift"] == "not applied"
    res = cronfile("status", cwd=repo)
    assert "b is in jobs.d but not applied" in res.stdout
    assert "a is overdue" in res.stdout and "no engine is running" in res.stdout


def test_ten_processes_applying_running_and_reading_at_once_lose_nothing(repo):
    commit(repo, {"jobs.d/j.yaml": 'schedule: "@daily"\nshell: echo hi\n'}, "j")
    base = [sys.executable, "-m", "cronfile", "-C", str(repo), "-q"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    cmds = [base + ["apply"]] * 4 + [base + ["run", "j"]] * 4 + [base + ["status", "--json"]] * 2
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    results = [(p.wait(60), p.stderr.read().decode()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    data = state(repo)
    assert set(data["jobs"]) == {"j"}
    runs = SqliteStore(repo / ".cronfile").read_history("j")
    manual = {r["run_id"] for r in runs if r.get("trigger") == "manual" and "status" in r}
    assert len(manual) == 4
    audit = (repo / ".cronfile" / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 1  # one apply created the job; the other three found nothing to do
    assert data["jobs"]["j"]["running"] == []
