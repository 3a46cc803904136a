"""Every example repo validates, and each of its shell and command jobs runs once,
successfully, with the real command line (agent jobs need their agent installed)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from cli_helpers import ROOT, cronfile
from delivery_servers import RecordingServer

from cronfile.load import load_project
from cronfile.spec import Kind

EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir())
REPOS = [ROOT, *EXAMPLES]


def shell_jobs(repo: Path) -> list[str]:
    project = load_project(repo)
    return [s.name for s in project.specs if s.kind is not Kind.prompt]


CASES = [(repo, name) for repo in REPOS for name in shell_jobs(repo)]


@pytest.mark.parametrize("repo", REPOS, ids=lambda p: "jobs.d" if p == ROOT else p.name)
def test_the_repo_validates(repo):
    res = cronfile("validate", str(repo), cwd=ROOT)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "repo, name", CASES, ids=[f"{'jobs.d' if r == ROOT else r.name}:{n}" for r, n in CASES]
)
def test_each_shell_job_runs_once_successfully(repo, name, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".cronfile", ".venv", ".git", "tests", "bench"))
    env = {"BACKUP_DIR": str(tmp_path / "backups"), "REPORT_DIR": str(copy)}
    res = cronfile("-C", str(copy), "run", name, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_the_backup_job_pings_healthchecks_start_and_success(tmp_path):
    copy = tmp_path / "ops"
    shutil.copytree(ROOT / "examples" / "ops", copy)
    with (copy / "cronfile.yaml").open("a") as f:
        f.write("allow_private_webhooks: true   # the test's stand-in runs on 127.0.0.1\n")
    with RecordingServer() as hc:
        env = {"HC_PING_URL": f"{hc.url}/ping/abc", "BACKUP_DIR": str(tmp_path / "b"), "REPORT_DIR": str(copy)}
        res = cronfile("-C", str(copy), "run", "backup", env=env)
        assert res.returncode == 0, res.stderr
        assert [r.path for r in hc.requests] == ["/ping/abc/start", "/ping/abc"]
    assert list((tmp_path / "b").glob("reports-*.tar.gz"))


def test_log_cleanup_deletes_only_old_logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    old, new = logs / "old.log", logs / "new.log"
    old.write_text("x")
    new.write_text("y")
    past = time.time() - 20 * 86400
    os.utime(old, (past, past))
    copy = tmp_path / "ops"
    shutil.copytree(ROOT / "examples" / "ops", copy)
    job = copy / "jobs.d" / "log-cleanup.yaml"
    job.write_text(job.read_text().replace("/var/tmp/myapp-logs", str(logs)))
    res = cronfile("-C", str(copy), "run", "log-cleanup")
    assert res.returncode == 0, res.stderr
    assert not old.exists() and new.exists()
    assert str(old) in res.stdout
