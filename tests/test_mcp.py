"""`cronfile mcp` driven by the official MCP SDK's own client over stdio, against a
spawned server process on a real jobs repo in tmp, with real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from cli_helpers import ROOT, cronfile
from engine_helpers import Daemon, state_data, write_job

try:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
except ImportError:  # a missing SDK fails the suite, with the install command
    pytest.fail("the MCP SDK is not installed: pip install -e '.[test]' (it has mcp)", pytrace=False)

from cronfile.mcp_server import ALL_TOOLS, READ_ONLY_TOOLS  # noqa: E402

SECRET = "s3cr3t-token-value-42"
REPORT = 'schedule: "0 3 * * *"\nenv:\n  TOKEN: "${TOKEN}"\nshell: echo "report token=$TOKEN"\n'
OTHER = 'schedule: "0 4 * * *"\nshell: echo other\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_job(tmp_path, "report", REPORT)
    write_job(tmp_path, "ops", "name: other\n" + OTHER)  # job `other` in jobs.d/ops.yaml
    r = cronfile("-C", str(tmp_path), "apply", env={"TOKEN": SECRET})
    assert r.returncode == 0, r.stderr
    return tmp_path


def configure(repo: Path, text: str) -> None:
    (repo / "cronfile.yaml").write_text(text)


ALL = "mcp:\n  tools: [" + ", ".join(ALL_TOOLS) + "]\n"


def session(repo: Path, body: Callable[[Any], Awaitable[Any]], *, mode: str = "legacy") -> Any:
    """Start `cronfile -C repo mcp` and run ``body(client)`` against it. The legacy
    initialize handshake is what the agent CLIs speak today."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cronfile", "-C", str(repo), "mcp"],
        env={"PYTHONPATH": str(ROOT), "TOKEN": SECRET, "NO_COLOR": "1"},
        cwd=str(repo),
    )
    result: list[Any] = []

    async def main() -> None:
        with anyio.fail_after(120):
            async with Client(params, mode=mode) as client:
                result.append(await body(client))

    anyio.run(main)
    return result[0]


async def tool_names(client: Any) -> list[str]:
    return [t.name for t in (await client.list_tools()).tools]


async def call(client: Any, tool: str, **args: Any) -> Any:
    """The tool's structured result; a tool error fails the test with its text."""
    r = await client.call_tool(tool, args)
    assert not r.is_error, [c.text for c in r.content]
    data = r.structured_content
    return data["result"] if set(data) == {"result"} else data


async def refused(client: Any, tool: str, **args: Any) -> str:
    r = await client.call_tool(tool, args)
    assert r.is_error, r.structured_content
    return " ".join(c.text for c in r.content)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_by_default_only_the_read_only_tools_are_offered(repo, mode):
    async def body(client):
        names = await tool_names(client)
        read_only = {t.name: t.annotations.read_only_hint for t in (await client.list_tools()).tools}
        jobs = await call(client, "list_jobs")
        status = await call(client, "job_status", name="report")
        no_pause = await refused(client, "pause_job", name="report", reason="x")
        return names, read_only, jobs, status, no_pause

    names, read_only, jobs, status, no_pause = session(repo, body, mode=mode)
    assert names == list(READ_ONLY_TOOLS)
    assert read_only == dict.fromkeys(READ_ONLY_TOOLS, True)
    assert [j["name"] for j in jobs] == ["other", "report"]
    assert status["state"] == "scheduled" and status["spec"]["schedule"] == "0 3 * * *"
    assert "pause_job" in no_pause
    assert state_data(repo / ".cronfile")["jobs"]["report"]["state"] == "scheduled"


def test_the_config_chooses_the_tools_and_the_jobs(repo):
    configure(repo, "mcp:\n  tools: [list_jobs, job_status, pause_job]\n  jobs: ['rep*']\n")

    async def body(client):
        return (
            await tool_names(client),
            await call(client, "list_jobs"),
            await refused(client, "job_status", name="other"),
            await refused(client, "pause_job", name="other", reason="x"),
        )

    names, jobs, status_other, pause_other = session(repo, body)
    assert names == ["list_jobs", "job_status", "pause_job"]
    assert [j["name"] for j in jobs] == ["report"]
    assert "not offered over MCP" in status_other and "not offered over MCP" in pause_other


def test_run_job_runs_it_for_real_and_history_and_logs_show_it_masked(repo):
    configure(repo, ALL)

    async def body(client):
        run = await call(client, "run_job", name="report", wait_seconds=60)
        history = await call(client, "job_history", name="report", n=5)
        logs = await call(client, "job_logs", name="report")
        by_suffix = await call(client, "job_logs", name="report", run_id=run["run_id"][-4:])
        return run, history, logs, by_suffix

    run, history, logs, by_suffix = session(repo, body)
    assert run["status"] == "success" and run["exit_code"] == 0
    assert [(h["run_id"], h["trigger"], h["status"]) for h in history] == [(run["run_id"], "manual", "success")]
    assert logs["run_id"] == by_suffix["run_id"] == run["run_id"]
    assert "report token=***" in logs["output"] and SECRET not in logs["output"]
    log_file = repo / ".cronfile" / "runs" / "report" / f"{run['run_id']}.log"
    assert SECRET not in log_file.read_text()


def test_pause_and_resume_over_mcp_are_audited_and_a_paused_job_is_not_run(repo):
    configure(repo, ALL)

    async def body(client):
        paused = await call(client, "pause_job", name="report", reason="agent saw failures")
        status = await call(client, "job_status", name="report")
        not_run = await refused(client, "run_job", name="report")
        resumed = await call(client, "resume_job", name="report")
        return paused, status, not_run, resumed

    paused, status, not_run, resumed = session(repo, body)
    assert paused["state"] == "paused" and paused["pause"]["via"] == "mcp"
    assert status["pause"]["reason"] == "agent saw failures" and status["next_run"] is None
    assert "paused" in not_run
    assert resumed["resumed"] is True and resumed["state"] == "scheduled" and resumed["next_run"]
    audit = [json.loads(ln) for ln in (repo / ".cronfile" / "audit.jsonl").read_text().splitlines()]
    assert [(a.get("action"), a.get("source")) for a in audit[-2:]] == [("pause", "mcp"), ("resume", "mcp")]
    assert not (repo / ".cronfile" / "runs" / "report").exists()  # never ran


def test_propose_job_writes_a_valid_file_for_review_and_never_applies_it(repo):
    configure(repo, ALL)
    good = 'description: Weekly digest.\nschedule: "0 8 * * 1"\nshell: echo digest\n'
    bad = 'schedule: "0 25 * * *"\nshell: echo digest\ntimeout: soon\n'

    async def body(client):
        errors = await refused(client, "propose_job", name="digest", yaml=bad)
        written = await call(client, "propose_job", name="digest", yaml=good)
        again = await refused(client, "propose_job", name="digest", yaml=good)
        wrong_name = await refused(client, "propose_job", name="digest2", yaml="name: other\n" + good)
        replaced = await call(client, "propose_job", name="digest", yaml=good.replace("0 8", "0 9"), replace=True)
        elsewhere = await refused(client, "propose_job", name="other", yaml=good, replace=True)
        return errors, written, again, wrong_name, replaced, elsewhere

    errors, written, again, wrong_name, replaced, elsewhere = session(repo, body)
    # Every problem, each with file:line:col and field; nothing written.
    assert "jobs.d/digest.yaml:1:11: schedule:" in errors and "jobs.d/digest.yaml:3:10: timeout:" in errors
    assert written == {
        "path": "jobs.d/digest.yaml",
        "written": "created",
        "applied": False,
        "next": "review the file (git diff), then `cronfile diff` and `cronfile apply`",
    }
    assert "pass replace: true" in again
    assert replaced["written"] == "replaced"
    assert (repo / "jobs.d" / "digest.yaml").read_text() == good.replace("0 8", "0 9")
    assert "jobs.d/digest2.yaml:1:7: name:" in wrong_name and not (repo / "jobs.d" / "digest2.yaml").exists()
    assert "job 'other' is defined in" in elsewhere and "ops.yaml: change it there" in elsewhere
    # Not applied: the state does not have it; diff shows it as a create.
    assert "digest" not in state_data(repo / ".cronfile")["jobs"]
    d = cronfile("-C", str(repo), "diff", "--json", env={"TOKEN": SECRET})
    assert d.returncode == 1
    assert [(c["name"], c["action"]) for c in json.loads(d.stdout)["changes"]] == [("digest", "create")]


def test_propose_job_is_refused_while_a_daemon_would_apply_it_at_once(repo):
    configure(repo, ALL)
    with Daemon(repo, env={"TOKEN": SECRET}):

        async def body(client):
            return await refused(client, "propose_job", name="digest", yaml='schedule: "@daily"\nshell: "true"\n')

        text = session(repo, body)
    assert "daemon" in text and not (repo / "jobs.d" / "digest.yaml").exists()


def test_an_invalid_mcp_config_is_an_error_with_its_place(repo):
    configure(repo, "mcp:\n  tools: [list_jobs, drop_tables]\n")
    r = cronfile("-C", str(repo), "mcp", input="")
    assert r.returncode == 2
    assert "cronfile.yaml:2:22: mcp.tools[1]:" in r.stderr and "Traceback" not in r.stderr


def test_without_the_sdk_mcp_is_a_one_line_error_naming_the_extra(repo):
    # `mcp` made unimportable the way Python blocks a module: sys.modules[name] = None.
    code = "import sys; sys.modules['mcp'] = None\nfrom cronfile.cli import main\nsys.exit(main(['-C', sys.argv[1], 'mcp']))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(repo)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert r.stderr == "cronfile: error: `cronfile mcp` needs the MCP SDK: pip install 'cronfile[mcp]'\n"
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("config", "tools", "allowed", "refused"),
    [
        ({}, READ_ONLY_TOOLS, ["report", "x"], []),
        ({"mcp": {}}, READ_ONLY_TOOLS, ["report"], []),
        ({"mcp": {"tools": ["pause_job", "list_jobs", "pause_job"]}}, ("pause_job", "list_jobs"), ["report"], []),
        ({"mcp": {"jobs": ["report-*", "inbox"]}}, READ_ONLY_TOOLS, ["report-daily", "inbox"], ["report", "inbox-2"]),
        ({"mcp": {"tools": []}}, (), ["report"], []),
    ],
    ids=["no-mcp-key", "empty-mcp", "chosen-tools-deduplicated", "job-patterns", "no-tools"],
)
def test_settings_from_the_config(config, tools, allowed, refused):
    from cronfile.mcp_server import settings_from

    s = settings_from(config)
    assert s.tools == tools
    assert all(s.allows(n) for n in allowed) and not any(s.allows(n) for n in refused)


def test_run_job_returns_at_once_when_asked_and_the_run_outlives_the_server(repo):
    from engine_helpers import history, wait_for

    configure(repo, ALL)
    gate = repo / "gate"
    write_job(repo, "slow", f'schedule: "0 5 * * *"\nshell: while [ ! -e "{gate}" ]; do sleep 0.05; done; echo slow done\n')
    assert cronfile("-C", str(repo), "apply", env={"TOKEN": SECRET}).returncode == 0
    (repo / "jobs.d" / "ops.yaml").unlink()  # `other` is still applied, but not in the files

    async def body(client):
        started = await call(client, "run_job", name="slow", wait_seconds=0)
        not_in_files = await refused(client, "run_job", name="other")
        return started, not_in_files

    started, not_in_files = session(repo, body)
    assert started["status"] == "running" and started["run_id"]
    assert "did not start" in not_in_files and "no job named 'other'" in not_in_files
    # The server has exited; the run goes on, and ends recorded once it may.
    gate.touch()
    done = wait_for(
        lambda: [h for h in history(repo, "slow") if h["run_id"] == started["run_id"] and h.get("status")],
        30,
        what="the run's record",
    )
    assert done[0]["status"] == "success" and done[0]["trigger"] == "manual"
