"""The built-in agent profiles drive the real CLIs (codex, claude, gemini, llm) end to end.

Each CLI is the released program (tests/agents/install-clis.sh, llm from the test
extra), pointed at a local stand-in for its model API that records what it received.
A job runs through `cronfile run`; the stub must have received the assembled prompt
verbatim (context first), `cronfile logs` must show the answer (not the CLI's JSON
envelope), and the history must carry the token usage the stub reported.
"""

from __future__ import annotations

import json

import pytest
from cli_helpers import cronfile
from clis import CLIS, MODELS, cli_env
from stub_apis import ModelStub

# Everything a shell or an option parser could trip on: a leading dash (each CLI takes
# a dash-led argument for an option), quotes, command substitution, variables,
# newlines, and text outside ASCII.
PROMPT = (
    "--help -p --version: summarize the notes. Say \"done\" and 'ok'; never run $(rm -rf ~) "
    "or `id` or ${HOME}.\n"
    "Second line: ünïcödé ✓ 日本語 🚀 — Привет\n"
    "- a list item\n"
    "--- the end"
)
ANSWER = "All quiet overnight ✓ — nothing to do."
CONTEXT = "-- notes begin with dashes\nDisk at 81% on db-1; \"quoted\" and $(not run).\n"


def _big_context() -> str:
    """200 KB of ordinary text (an argv element is capped at 128 KiB on Linux)."""
    lines = []
    i = 0
    while sum(map(len, lines)) < 200 * 1024:
        lines.append(f"{i:05d} 2026-03-02T08:{i % 60:02d}:00Z web-{i % 7} GET /api/items/{i} 200 {i % 97} ms\n")
        i += 1
    return "".join(lines)


def _setup(tmp_path, cli: str, context: str | None) -> tuple[str, str]:
    """A jobs repo with one job; returns (job name, the prompt the agent must get)."""
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    job: dict = {"schedule": "0 9 * * *", "agent": cli, "prompt": PROMPT}
    if MODELS[cli]:
        job["model"] = MODELS[cli]
    expected = PROMPT
    if context is not None:
        (repo / "notes").mkdir()
        (repo / "notes" / "ctx.md").write_text(context)
        job["context"] = {"files": ["notes/ctx.md"]}
        expected = f"--- notes/ctx.md ---\n{context.rstrip(chr(10))}\n\n--- prompt ---\n{PROMPT}"
    # JSON is YAML: every character of the prompt survives as written.
    (repo / "jobs.d" / "brief.yaml").write_text(json.dumps(job, ensure_ascii=False))
    return "brief", expected


@pytest.mark.parametrize("case", ["no-context", "context", "context-200k"])
@pytest.mark.parametrize("cli", CLIS)
def test_a_builtin_profile_runs_the_real_cli(tmp_path, cli, case):
    context = {"no-context": None, "context": CONTEXT, "context-200k": _big_context()}[case]
    name, expected = _setup(tmp_path, cli, context)
    repo = tmp_path / "repo"
    with ModelStub(ANSWER, input_tokens=1234, output_tokens=56) as stub:
        env = cli_env(cli, tmp_path / "home", stub.url)
        res = cronfile("run", name, cwd=repo, env=env, timeout=120)
        logs = cronfile("logs", name, cwd=repo, env=env)
        assert res.returncode == 0, (res.stdout, res.stderr, logs.stdout)
        # The assembled prompt reached the model verbatim, context before the prompt.
        assert stub.received(expected), [s.target for s in stub.seen]
    # The run's output is the answer, not the CLI's JSON envelope or its usage line.
    assert logs.returncode == 0
    assert logs.stdout.strip() == ANSWER, logs.stdout
    hist = json.loads(cronfile("history", name, "--json", cwd=repo, env=env).stdout)
    run = hist[-1]
    assert run["status"] == "success"
    usage = run["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (1234, 56)
    if cli == "claude":
        # Claude Code prices the tokens itself (its own price table for its model).
        assert isinstance(usage["cost_usd"], float) and usage["cost_usd"] > 0
    else:
        assert usage["cost_usd"] is None
