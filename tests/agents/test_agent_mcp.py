"""A real agent CLI (Claude Code) configured to start `cronfile mcp`, as the README
shows, calls a cronfile tool that the model asked for.

The agent runs as a cronfile job (an agent that looks at its own schedule), through a
custom profile with `--mcp-config`. The model API stub answers the prompt with a call to
`mcp__cronfile__list_jobs`; Claude Code must start the server (a wrapper records that it
was started, then execs `cronfile mcp`), call the tool, and send its result, the job
names of the repo, back to the model, whose final answer ends the run.
"""

from __future__ import annotations

import json
import sys

from cli_helpers import ROOT, cronfile
from clis import cli_bin, cli_env
from stub_apis import ModelStub


def test_claude_code_starts_cronfile_mcp_and_sends_the_tool_result_to_the_model(tmp_path):
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    (repo / "jobs.d" / "nightly-report.yaml").write_text('schedule: "0 3 * * *"\nshell: echo report\n')
    (repo / "jobs.d" / "inbox-triage.yaml").write_text('schedule: "*/30 * * * *"\nshell: echo triage\n')
    (repo / "jobs.d" / "schedule-review.yaml").write_text(
        'schedule: "0 8 * * 1"\nagent: claude-mcp\nprompt: Which of my jobs run tonight?\n'
    )

    # The server as the agent CLI starts it: a wrapper that notes each start, then execs
    # `cronfile -C repo mcp`.
    started = tmp_path / "mcp-started.jsonl"
    server = tmp_path / "cronfile-mcp"
    server.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(started)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, '-m', 'cronfile', *sys.argv[1:]])\n"
    )
    server.chmod(0o755)
    mcp_config = tmp_path / "mcp.json"
    mcp_config.write_text(
        json.dumps({"mcpServers": {"cronfile": {"command": str(server), "args": ["-C", str(repo), "mcp"]}}})
    )
    claude = cli_bin("claude") / "claude"
    (repo / "cronfile.yaml").write_text(
        "agents:\n"
        "  claude-mcp:\n"
        f"    command: [{claude}, -p, --output-format, json, --mcp-config, {mcp_config}, --strict-mcp-config]\n"
        "    stdin: true\n"
        "    output: claude-json\n"
        "    permissions:\n"
        "      read-only: [--permission-mode, dontAsk, --permission-prompts, none,"
        " --allowedTools, 'Read,Glob,Grep,mcp__cronfile__list_jobs']\n"
    )
    assert cronfile("apply", cwd=repo).returncode == 0

    with ModelStub("Nothing runs tonight but the report.", tool_call=("mcp__cronfile__list_jobs", {})) as stub:
        env = cli_env("claude", tmp_path / "home", stub.url)
        # Claude Code defers MCP tools behind its ToolSearch tool (a real model first
        # searches for them); this stub asks for the tool by name, so offer it directly.
        env["ENABLE_TOOL_SEARCH"] = "false"
        res = cronfile("run", "schedule-review", cwd=repo, env=env, timeout=150)
        logs = cronfile("logs", "schedule-review", cwd=repo, env=env)
        assert res.returncode == 0, (res.stderr, logs.stdout)
        offered = {t for s in stub.model_requests() for t in ModelStub.offered_tools(s.json() or {})}
        results = stub.tool_results()

    # Claude Code started the server from its MCP configuration...
    assert [json.loads(line) for line in started.read_text().splitlines()][0] == ["-C", str(repo), "mcp"]
    # ...offered the model the read-only tools cronfile.yaml allows by default...
    assert {"mcp__cronfile__list_jobs", "mcp__cronfile__job_status"} <= offered
    assert "mcp__cronfile__propose_job" not in offered
    # ...called the one the model asked for, and sent its result back: the repo's jobs.
    assert len(results) == 1, results
    listed = json.loads(json.loads(results[0]))
    rows = listed["result"] if isinstance(listed, dict) else listed
    assert sorted(r["name"] for r in rows) == ["inbox-triage", "nightly-report", "schedule-review"]
    assert {r["schedule"] for r in rows} >= {"0 3 * * *", "*/30 * * * *"}
    assert logs.stdout.strip() == "Nothing runs tonight but the report."

