"""A job reads only regular files inside its repo, capped, and runs only inside it
(cronfile/paths.py): validate says so at file:line:col, a run whose files changed since
is `refused` (never a hang on a FIFO, never a read of /dev/zero), and render kubernetes
refuses with the same words. Real files, FIFOs, symlinks and the real command line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, history, write_job
from helpers_proc import write_fake_agent

PROMPT = 'schedule: "@daily"\nprompt: Summarize.\nagent: fake\n'
CONFIG = "agents:\n  fake:\n    command: [codex, \"{prompt}\"]\n"


def repo(tmp_path: Path, job: str, config: str = CONFIG) -> Path:
    (tmp_path / "jobs.d").mkdir(parents=True, exist_ok=True)
    (tmp_path / "cronfile.yaml").write_text(config)
    write_job(tmp_path, "j", job)
    return tmp_path


def errors(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize(
    ("yaml", "field", "why"),
    [
        ("context:\n  files: [/etc/passwd]\n", "context.files[0]", "outside the jobs repo (an absolute path)"),
        ("context:\n  files: [../../etc/hostname]\n", "context.files[0]", "outside the jobs repo"),
        ("context:\n  files: [out.md]\n", "context.files[0]", "outside the jobs repo (after resolving symlinks)"),
        ("context:\n  files: [pipe.md]\n", "context.files[0]", "is not a regular file"),
        ("context:\n  files: [big.md]\n", "context.files[0]", "more than context_file_limit (1048576)"),
        ("workdir: /etc\n", "workdir", "workdir /etc is outside the jobs repo"),
        ("workdir: ../..\n", "workdir", "outside the jobs repo"),
        ("context:\n  script: ../gather.sh\n", "context.script", "context.script ../gather.sh is outside the jobs repo"),
    ],
    ids=["absolute", "dotdot", "symlink-out", "fifo", "too-big", "workdir-abs", "workdir-up", "script-up"],
)
def test_validate_refuses_paths_outside_the_repo_at_file_line_col(tmp_path, yaml, field, why):
    root = repo(tmp_path / "r", PROMPT + yaml)
    (root / "out.md").symlink_to("/etc/hostname")
    os.mkfifo(root / "pipe.md")
    with open(root / "big.md", "wb") as f:
        f.truncate(2 * 1024 * 1024)  # sparse: the size is what counts
    res = cronfile("-C", str(root), "validate", timeout=30)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = errors(res)
    assert any(re.search(rf"jobs\.d/j\.yaml:\d+:\d+.*{re.escape(field)}.*{re.escape(why)}", ln) for ln in lines), lines
    assert "Traceback" not in res.stderr


def test_the_total_of_a_jobs_context_files_is_capped_by_config(tmp_path):
    root = repo(tmp_path, PROMPT + "context:\n  files: [a.md, b.md]\n", CONFIG + "context_total_limit: 3000\n")
    (root / "a.md").write_text("a" * 2000)
    (root / "b.md").write_text("b" * 2000)
    res = cronfile("-C", str(root), "validate")
    assert res.returncode == 2 and "context.files[1]" in res.stderr and "context_total_limit (3000)" in res.stderr


EVERY = PROMPT.replace('"@daily"', '"* * * * * *"')


def run_refused(root: Path, swap) -> dict:
    """The daemon runs the job every second; ``swap`` changes the repo under it (not a
    job file: the applied set stays); the next run must be refused, not hang."""
    write_fake_agent(root)
    env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "FAKE_RECORD": str(root / "record.json")}
    with Daemon(root, env=env) as d:
        d.wait_log(r"j run \w+ success")
        swap()
        (root / "record.json").unlink()
        d.wait_log(r"j run \w+ refused", timeout=20)
        assert d.stop() == 0
    assert "Traceback" not in d.text()
    runs = [r for r in history(root, "j") if r["status"] == "refused"]
    assert not (root / "record.json").exists(), "the agent must not start"
    return runs[0]


def test_a_context_file_that_became_a_fifo_refuses_the_run_instead_of_hanging(tmp_path):
    root = repo(tmp_path, EVERY + "context:\n  files: [notes.md]\n")
    (root / "notes.md").write_text("notes\n")

    def swap():
        (root / "notes.md").unlink()
        os.mkfifo(root / "notes.md")  # nobody will ever write to it

    run = run_refused(root, swap)
    assert run["status"] == "refused" and "notes.md is not a regular file" in run["message"]


def test_a_context_file_swapped_for_a_link_to_dev_zero_refuses_the_run(tmp_path):
    root = repo(tmp_path, EVERY + "context:\n  files: [notes.md]\n")
    (root / "notes.md").write_text("notes\n")

    def swap():
        (root / "notes.md").unlink()
        (root / "notes.md").symlink_to("/dev/zero")

    run = run_refused(root, swap)
    assert run["status"] == "refused" and "outside the jobs repo" in run["message"]


def test_a_context_file_grown_past_the_limit_refuses_the_run(tmp_path):
    root = repo(tmp_path, EVERY + "context:\n  files: [notes.md]\n")
    (root / "notes.md").write_text("notes\n")

    def swap():
        with open(root / "notes.md", "wb") as f:
            f.truncate(1024 * 1024 * 1024)  # 1 GiB, sparse

    run = run_refused(root, swap)
    assert run["status"] == "refused" and "context_file_limit" in run["message"]


def test_a_workdir_swapped_for_a_link_out_of_the_repo_refuses_the_run(tmp_path):
    root = repo(tmp_path, EVERY + "workdir: sub\n")
    (root / "sub").mkdir()

    def swap():
        (root / "sub").rmdir()
        (root / "sub").symlink_to("/etc")

    run = run_refused(root, swap)
    assert "workdir sub is outside the jobs repo" in run["message"]


def test_render_kubernetes_refuses_a_context_file_outside_the_repo(tmp_path):
    root = repo(tmp_path, PROMPT + "context:\n  files: [../../etc/hostname]\n")
    res = cronfile("-C", str(root), "render", "kubernetes", "-o", str(tmp_path / "out"), timeout=60)
    assert res.returncode == 2
    assert "context file ../../etc/hostname is outside the jobs repo" in res.stderr
    assert not list((tmp_path / "out").glob("*.yaml")) if (tmp_path / "out").exists() else True
