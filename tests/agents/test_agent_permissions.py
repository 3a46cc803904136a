"""`permissions:` reaches each real agent CLI as its own sandbox and approval flags, and
an unattended run never waits for an approval.

The CLIs are the released programs (tests/agents/install-clis.sh, llm from the test
extra) against the local model API stub. A recording wrapper first on PATH writes the
argv each CLI was started with and then execs the real program, so a test sees exactly
what cronfile passed and that the real CLI took it. For the approval floor the stub
answers the prompt with a tool call, as a model would, and the run must end, with the
CLI's refusal (or the tool's result) sent back to the model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import cronfile
from clis import CLIS, MODELS, cli_bin, cli_env
from stub_apis import ModelStub

LEVELS = ("read-only", "workspace-write", "full")

# The contract (README, Unattended safety): what each built-in profile is started with.
BASE = {
    "codex": ["exec", "--skip-git-repo-check", "--json"],
    "claude": ["-p", "--output-format", "json"],
    "gemini": ["--skip-trust", "--output-format", "json"],
    "llm": ["-u"],
}
FLAGS = {
    "codex": {
        "read-only": ["-s", "read-only", "-c", 'approval_policy="never"'],
        "workspace-write": ["-s", "workspace-write", "-c", 'approval_policy="never"'],
        "full": ["-s", "danger-full-access", "-c", 'approval_policy="never"'],
    },
    "claude": {
        "read-only": [
            "--permission-mode", "dontAsk", "--permission-prompts", "none",
            "--allowedTools", "Read,Glob,Grep",
            "--disallowedTools", "Bash,Edit,Write,NotebookEdit",
        ],
        "workspace-write": ["--permission-mode", "acceptEdits", "--permission-prompts", "none"],
        "full": ["--permission-mode", "bypassPermissions", "--permission-prompts", "none"],
    },
    "gemini": {
        "read-only": ["--approval-mode", "default"],
        "workspace-write": ["--approval-mode", "auto_edit"],
        "full": ["--approval-mode", "yolo"],
    },
    "llm": {"read-only": [], "workspace-write": [], "full": []},
}
MODEL_ARGS = {"codex": [], "claude": [], "gemini": ["-m", MODELS["gemini"]], "llm": ["-m", "stub"]}


def _recording_path(tmp_path: Path, cli: str, env: dict[str, str]) -> Path:
    """Put a wrapper named ``cli`` first on PATH: it appends its argv (as JSON) to the
    returned file, then execs the real program with the same argv."""
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    log = tmp_path / "argv.jsonl"
    real = str(cli_bin(cli) / cli)
    script = wrap / cli
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
    )
    script.chmod(0o755)
    env["PATH"] = f"{wrap}{os.pathsep}{env['PATH']}"
    return log


def _job_repo(tmp_path: Path, cli: str, level: str | None, prompt: str) -> Path:
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    job: dict = {"schedule": "0 9 * * *", "agent": cli, "prompt": prompt, "timeout": "90s"}
    if level is not None:
        job["permissions"] = level
    if MODELS[cli]:
        job["model"] = MODELS[cli]
    (repo / "jobs.d" / "job.yaml").write_text(json.dumps(job))
    return repo


def _env(cli: str, home: Path, url: str, level: str | None) -> dict[str, str]:
    env = cli_env(cli, home, url)
    if cli == "claude" and level == "full" and os.geteuid() == 0:
        # Claude Code refuses bypassPermissions as root unless told it is in a sandbox
        # (README, Unattended safety); CI runs as root in a throwaway container.
        env["IS_SANDBOX"] = "1"
    return env


@pytest.mark.parametrize("level", [*LEVELS, None], ids=[*LEVELS, "unset"])
@pytest.mark.parametrize("cli", CLIS)
def test_each_level_reaches_the_real_cli_as_its_own_flags(tmp_path, cli, level):
    repo = _job_repo(tmp_path, cli, level, "Summarize the notes.")
    with ModelStub("all quiet") as stub:
        env = _env(cli, tmp_path / "home", stub.url, level)
        log = _recording_path(tmp_path, cli, env)
        res = cronfile("run", "job", cwd=repo, env=env, timeout=150)
        logs = cronfile("logs", "job", cwd=repo, env=env)
        # The real CLI took the flags: it ran, asked the model, and answered.
        assert res.returncode == 0, (res.stderr, logs.stdout)
        assert stub.received("Summarize the notes.")
    assert logs.stdout.strip() == "all quiet"
    argv = [json.loads(line) for line in log.read_text().splitlines()]
    # No permissions: the read-only floor.
    expected = BASE[cli] + FLAGS[cli][level or "read-only"] + MODEL_ARGS[cli]
    assert argv == [expected]


# (cli, level, tool, arguments, force, file the call would make, made?, in the result)
# `force`: the model asks for a tool the CLI did not offer at that level.
CASES = {
    # read-only: a write is refused by the CLI itself, and the run goes on.
    "codex-read-only-shell-write": ("codex", "read-only", "exec_command", {"cmd": "touch made.txt"}, False, "made.txt", False, "Read-only file system"),
    "codex-read-only-asks-to-escalate": (
        "codex", "read-only", "exec_command",
        {"cmd": "touch made.txt", "sandbox_permissions": "require_escalated", "justification": "write the report"},
        False, "made.txt", False, "approval policy is Never",
    ),
    "claude-read-only-write": ("claude", "read-only", "Write", {"file_path": "{repo}/made.txt", "content": "x"}, True, "made.txt", False, "No such tool available: Write"),
    "gemini-read-only-shell": ("gemini", "read-only", "run_shell_command", {"command": "touch made.txt"}, True, "made.txt", False, "not found"),
    # workspace-write: edits in the workdir go through; what would need a person does not.
    "codex-workspace-write-edit": ("codex", "workspace-write", "exec_command", {"cmd": "touch made.txt"}, False, "made.txt", True, "exited with code 0"),
    "claude-workspace-write-edit": ("claude", "workspace-write", "Write", {"file_path": "{repo}/made.txt", "content": "x"}, False, "made.txt", True, "File created successfully"),
    "claude-workspace-write-command-needing-approval": (
        "claude", "workspace-write", "Bash",
        {"command": "python3 -c \"open('{outside}', 'w')\""},
        False, "{outside}", False, "denied automatically",
    ),
    "gemini-workspace-write-edit": ("gemini", "workspace-write", "write_file", {"file_path": "made.txt", "content": "x"}, False, "made.txt", True, "Successfully created"),
    "gemini-workspace-write-shell": ("gemini", "workspace-write", "run_shell_command", {"command": "touch made.txt"}, True, "made.txt", False, "not found"),
    # full: no sandbox and no approvals.
    "claude-full-command": ("claude", "full", "Bash", {"command": "touch '{outside}'"}, False, "{outside}", True, "Bash completed"),
    "gemini-full-command": ("gemini", "full", "run_shell_command", {"command": "touch '{outside}'"}, False, "{outside}", True, "Output"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_unattended_run_answers_a_tool_call_itself_and_ends(tmp_path, case):
    cli, level, tool, args, force, target, made, said = CASES[case]
    repo = _job_repo(tmp_path, cli, level, "Do the task.")
    outside = tmp_path / "outside.txt"

    def fill(text: str) -> str:
        return text.replace("{repo}", str(repo)).replace("{outside}", str(outside))

    args = {k: fill(v) for k, v in args.items()}
    path = Path(fill(target)) if fill(target).startswith("/") else repo / target
    with ModelStub("finished", tool_call=(tool, args), force_call=force) as stub:
        env = _env(cli, tmp_path / "home", stub.url, level)
        # A CLI waiting for an approval would hold the run until its 90 s timeout
        # (status timeout), and this call until its own limit.
        res = cronfile("run", "job", cwd=repo, env=env, timeout=150)
        logs = cronfile("logs", "job", cwd=repo, env=env)
        assert res.returncode == 0, (res.stderr, logs.stdout)
        assert stub.tool_calls_sent >= 1
        results = stub.tool_results()
    # The CLI answered the call itself and sent the outcome back to the model.
    assert any(said in r for r in results), results
    assert path.exists() is made
    assert logs.stdout.strip() == "finished"
    hist = json.loads(cronfile("history", "job", "--json", cwd=repo, env=env).stdout)
    assert hist[-1]["status"] == "success"


def test_doctor_checks_that_each_installed_cli_takes_the_flags_its_jobs_need(tmp_path):
    gemini = cli_bin("gemini") / "gemini"
    config = (
        "agents:\n"
        # A profile for an older or newer CLI, with flags this one does not take.
        "  old-codex:\n"
        f"    command: [{cli_bin('codex') / 'codex'}, exec, --skip-git-repo-check]\n"
        "    stdin: true\n"
        "    permissions: {full: [--sandbox-mode, everything]}\n"
        "  old-gemini:\n"
        f"    command: [{gemini}, --skip-trust]\n"
        "    stdin: true\n"
        "    permissions: {full: [--approval-mode, unattended]}\n"
    )
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    (repo / "cronfile.yaml").write_text(config)
    jobs = {
        "ro": {"agent": "codex", "prompt": "hi"},
        "wide": {"agent": "codex", "prompt": "hi", "permissions": "full"},
        "edits": {"agent": "gemini", "prompt": "hi", "permissions": "workspace-write"},
        "claude-ro": {"agent": "claude", "prompt": "hi"},
        "legacy": {"agent": "old-codex", "prompt": "hi", "permissions": "full"},
        "legacy-g": {"agent": "old-gemini", "prompt": "hi", "permissions": "full"},
    }
    for name, job in jobs.items():
        (repo / "jobs.d" / f"{name}.yaml").write_text(json.dumps({"schedule": "@daily", **job}))
    env = cli_env("codex", tmp_path / "home", "http://127.0.0.1:9")
    env["PATH"] = os.pathsep.join(str(cli_bin(c)) for c in CLIS) + os.pathsep + env["PATH"]
    res = cronfile("doctor", "--json", cwd=repo, env=env, timeout=120)
    checks = {c["check"]: c for c in json.loads(res.stdout)}
    assert res.returncode == 1
    for label in (
        "agent codex permissions read-only",
        "agent codex permissions full",
        "agent gemini permissions workspace-write",
        "agent claude permissions read-only",
    ):
        assert checks[label]["status"] == "ok", checks.get(label)
    assert "-s danger-full-access" in checks["agent codex permissions full"]["message"]
    bad = checks["agent old-codex permissions full"]
    assert bad["status"] == "fail"
    assert "--sandbox-mode" in bad["message"] and "1 job (legacy) will fail" in bad["message"]
    assert "agents.old-codex.permissions.full" in bad["fix"]
    bad = checks["agent old-gemini permissions full"]
    assert bad["status"] == "fail"
    assert "unattended: not among the choices" in bad["message"]
    # llm's jobs need no flags: nothing to check.
    assert not any(k.startswith("agent llm permissions") for k in checks)
