"""A saved plan: `diff --out PLAN` then `apply --plan PLAN` applies exactly what was
reviewed, or exits 2 changing nothing when the files or the applied state moved (as
terraform applies a saved plan). And `diff --json` shows old and new values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import state_data, state_snapshot

BACKUP = 'schedule: "0 3 * * *"\nshell: echo backup\nenv:\n  TOKEN: "${BACKUP_TOKEN}"\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "backup.yaml").write_text(BACKUP)
    (tmp_path / "jobs.d" / "report.yaml").write_text('schedule: "@daily"\nshell: echo report\n')
    assert cronfile("apply", "-q", cwd=tmp_path).returncode == 0
    return tmp_path


def state_bytes(repo: Path) -> tuple[int, dict]:
    """The applied state and its change counter (equal: nothing was written)."""
    return state_snapshot(repo / ".cronfile")


def applied_spec(repo: Path, name: str) -> dict:
    return state_data(repo / ".cronfile")["jobs"][name]["spec"]


def test_a_saved_plan_is_applied_as_reviewed(repo):
    (repo / "jobs.d" / "backup.yaml").write_text(BACKUP.replace("0 3", "30 4"))
    (repo / "jobs.d" / "new.yaml").write_text('schedule: "@hourly"\nshell: echo new\n')
    diff = cronfile("diff", "--out", "plan.json", cwd=repo)
    assert diff.returncode == 1  # changes found, as plain diff
    saved = json.loads((repo / "plan.json").read_text())
    assert saved["kind"] == "cronfile-plan" and saved["version"] == 1
    assert set(saved["files"]) == {"jobs.d/backup.yaml", "jobs.d/new.yaml", "jobs.d/report.yaml"}
    assert [c["name"] for c in saved["plan"]["changes"]] == ["new", "backup"]
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert applied_spec(repo, "backup")["schedule"] == "30 4 * * *"
    assert "new" in state_data(repo / ".cronfile")["jobs"]
    audit = [json.loads(line) for line in (repo / ".cronfile" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["source"] == "apply --plan"


@pytest.mark.parametrize(
    ("move", "said"),
    [
        (lambda r: (r / "jobs.d" / "backup.yaml").write_text(BACKUP.replace("0 3", "15 3")), "jobs.d/backup.yaml changed"),
        (lambda r: (r / "jobs.d" / "extra.yaml").write_text('schedule: "@daily"\nshell: "true"\n'), "jobs.d/extra.yaml added"),
        (lambda r: (r / "jobs.d" / "report.yaml").unlink(), "jobs.d/report.yaml removed"),
        (lambda r: (r / "cronfile.yaml").write_text("timezone: Europe/Berlin\n"), "cronfile.yaml added"),
    ],
    ids=["edited", "added", "removed", "config"],
)
def test_a_plan_whose_files_moved_changes_nothing_and_exits_2(repo, move, said):
    (repo / "jobs.d" / "backup.yaml").write_text(BACKUP.replace("0 3", "30 4"))
    assert cronfile("diff", "--out", "plan.json", cwd=repo).returncode == 1
    before = state_bytes(repo)
    move(repo)
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 2
    assert said in res.stderr and "Nothing was applied" in res.stderr
    assert "Traceback" not in res.stderr
    assert state_bytes(repo) == before


def test_a_plan_whose_state_moved_changes_nothing_and_exits_2(repo, tmp_path_factory):
    (repo / "jobs.d" / "backup.yaml").write_text(BACKUP.replace("0 3", "30 4"))
    assert cronfile("diff", "--out", "plan.json", cwd=repo).returncode == 1
    # Someone applied other files meanwhile (another checkout, same state dir), and the
    # files are back as reviewed: the plan was computed against a state that is gone.
    other = tmp_path_factory.mktemp("other")
    (other / "jobs.d").mkdir()
    (other / "jobs.d" / "backup.yaml").write_text(BACKUP.replace("0 3", "45 5"))
    assert cronfile("apply", "-q", "--state-dir", str(repo / ".cronfile"), cwd=other).returncode == 0
    before = state_bytes(repo)
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 2 and "the applied state changed" in res.stderr
    assert state_bytes(repo) == before
    # The same plan as a dry run says so too, and a fresh plan applies.
    assert cronfile("apply", "--plan", "plan.json", "--dry-run", cwd=repo).returncode == 2
    assert cronfile("diff", "--out", "plan.json", cwd=repo).returncode == 1
    assert cronfile("apply", "--plan", "plan.json", cwd=repo).returncode == 0
    assert applied_spec(repo, "backup")["schedule"] == "30 4 * * *"


def test_runs_between_diff_and_apply_do_not_invalidate_the_plan(repo):
    (repo / "jobs.d" / "report.yaml").write_text('schedule: "@daily"\nshell: echo report v2\n')
    assert cronfile("diff", "--out", "plan.json", cwd=repo).returncode == 1
    run = cronfile("run", "backup", cwd=repo, env={"BACKUP_TOKEN": "s3cret-value"})
    assert run.returncode == 0, run.stderr
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 0, res.stderr
    assert applied_spec(repo, "report")["shell"] == "echo report v2"


def test_a_plan_file_that_is_not_one_is_refused(repo):
    (repo / "plan.json").write_text('{"kind": "cronfile-plan", "version": 99}')
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 2 and "plan version 99" in res.stderr
    (repo / "plan.json").write_text("not json")
    res = cronfile("apply", "--plan", "plan.json", cwd=repo)
    assert res.returncode == 2 and "not a plan file" in res.stderr
    res = cronfile("apply", "--plan", "missing.json", cwd=repo)
    assert res.returncode == 2 and "missing.json" in res.stderr


def test_diff_json_updates_carry_old_and_new_values_with_secrets_as_references(repo):
    (repo / "jobs.d" / "backup.yaml").write_text(
        'schedule: "30 4 * * *"\nshell: echo backup\nenv:\n  TOKEN: "${OTHER_TOKEN}"\n  MODE: full\n'
    )
    res = cronfile("diff", "--json", cwd=repo, env={"BACKUP_TOKEN": "real-secret-1", "OTHER_TOKEN": "real-secret-2"})
    assert res.returncode == 1
    (change,) = json.loads(res.stdout)["changes"]
    assert change["fields"] == ["env", "schedule"]
    assert change["values"] == {
        "env": {"old": {"TOKEN": "${BACKUP_TOKEN}"}, "new": {"TOKEN": "${OTHER_TOKEN}", "MODE": "full"}},
        "schedule": {"old": "0 3 * * *", "new": "30 4 * * *"},
    }
    assert "real-secret" not in res.stdout
    (repo / "jobs.d" / "report.yaml").unlink()
    (delete,) = [c for c in json.loads(cronfile("diff", "--json", cwd=repo).stdout)["changes"] if c["action"] == "delete"]
    assert "values" not in delete


def test_a_plan_made_in_another_checkout_with_a_copy_of_the_state_applies_here(repo, tmp_path_factory):
    # CI: a clone of the same files and a copy of production's state.db (no daemon
    # running: no WAL beside it; with one, `sqlite3 state.db ".backup copy.db"`).
    ci = tmp_path_factory.mktemp("ci")
    (ci / "jobs.d").mkdir()
    edited = BACKUP.replace("0 3", "30 4")
    (ci / "jobs.d" / "backup.yaml").write_text(edited)
    (ci / "jobs.d" / "report.yaml").write_text((repo / "jobs.d" / "report.yaml").read_text())
    (ci / "deploy-state").mkdir()
    (ci / "deploy-state" / "state.db").write_bytes((repo / ".cronfile" / "state.db").read_bytes())
    assert cronfile("diff", "--state-dir", "deploy-state", "--out", "plan.json", cwd=ci).returncode == 1
    # The host pulls the same commit and applies the reviewed plan.
    (repo / "jobs.d" / "backup.yaml").write_text(edited)
    res = cronfile("apply", "--plan", str(ci / "plan.json"), cwd=repo)
    assert res.returncode == 0, res.stderr
    assert applied_spec(repo, "backup")["schedule"] == "30 4 * * *"
