"""Agent jobs as a user runs them: token usage, `budget:`, `expect:`, custom profiles.

The agents are the real CLIs (codex and claude: the quickest to start) against a local
model API stub (tests/agents/stub_apis.py), or, for a custom profile, a small script in
the jobs repo as a user would write one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import cronfile
from clis import INSTALL, cli_bin, cli_env
from delivery_servers import RecordingServer
from stub_apis import ModelStub


def _repo(tmp_path: Path, job: dict, config: str = "") -> Path:
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True, exist_ok=True)
    (repo / "jobs.d" / "agent.yaml").write_text(json.dumps({"schedule": "0 9 * * *", **job}))
    if config:
        (repo / "cronfile.yaml").write_text(config)
    return repo


def _history(repo: Path, env: dict, name: str = "agent") -> list[dict]:
    res = cronfile("history", name, "--json", cwd=repo, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# -- budget ----------------------------------------------------------------------------


def test_a_token_budget_refuses_the_run_once_the_last_24_hours_used_it_up(tmp_path):
    config = "webhook_allowlist: [127.0.0.1]\n"
    with ModelStub("report", input_tokens=1234, output_tokens=56) as stub, RecordingServer() as hook:
        job = {
            "agent": "codex",
            "prompt": "Write the report.",
            "budget": {"tokens_per_day": 2000},
            "deliver": [{"webhook": hook.url, "on": ["failure"]}],
        }
        repo = _repo(tmp_path, job, config)
        env = cli_env("codex", tmp_path / "home", stub.url)
        # 0 used, then 1290 used: both below 2000, both run.
        for _ in range(2):
            res = cronfile("run", "agent", cwd=repo, env=env, timeout=120)
            assert res.returncode == 0, res.stderr
        asked = len(stub.model_requests())
        # 2580 used: refused before the agent starts.
        res = cronfile("run", "agent", cwd=repo, env=env, timeout=120)
        assert res.returncode == 1
        assert len(stub.model_requests()) == asked
        status = _history(repo, env)[-1]
        assert status["status"] == "refused"
        assert status["message"] == (
            "budget: tokens_per_day 2000 is used up (2580 tokens in the last 24 hours)"
        )
        # The failure delivery heard about it (the two successes were filtered out).
        assert len(hook.requests) == 1
        body = hook.requests[0].json()
        assert body["status"] == "refused" and "tokens_per_day 2000" in body["message"]
    rows = json.loads(cronfile("status", "--json", cwd=repo, env=env).stdout)
    row = next(r for r in rows if r["name"] == "agent")
    assert row["usage_24h"] == {"input_tokens": 2468, "output_tokens": 112, "cost_usd": None}
    assert row["budget"] == {"tokens_per_day": 2000}
    assert row["budget_left"] == {"tokens": -580}
    text = cronfile("status", cwd=repo, env=env).stdout
    assert "agent: 2468 in + 112 out tokens; budget left: 0 of 2000 tokens (used up: runs are refused)" in text


def test_a_cost_budget_counts_what_claude_reports(tmp_path):
    with ModelStub("ok", input_tokens=1000, output_tokens=100) as stub:
        job = {"agent": "claude", "prompt": "Say ok.", "budget": {"cost_per_day": 0.000001}}
        repo = _repo(tmp_path, job)
        env = cli_env("claude", tmp_path / "home", stub.url)
        assert cronfile("run", "agent", cwd=repo, env=env, timeout=120).returncode == 0
        res = cronfile("run", "agent", cwd=repo, env=env, timeout=120)
        assert res.returncode == 1
    first, second = _history(repo, env)
    cost = first["usage"]["cost_usd"]
    assert cost > 0
    assert second["status"] == "refused"
    assert second["message"] == f"budget: cost_per_day 1e-06 USD is used up ({cost:g} USD in the last 24 hours)"
    row = next(r for r in json.loads(cronfile("status", "--json", cwd=repo, env=env).stdout) if r["name"] == "agent")
    assert row["budget_left"]["cost_usd"] < 0


# -- expect ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expect", "message"),
    [
        ("", {"non_empty": True}, "expect: non_empty, but the answer was empty"),
        ("All fine.", {"contains": "## Action items"}, "expect: contains '## Action items', but the answer does not"),
        ("- [x] done", {"regex": r"^- \[ \] "}, r"expect: regex '^- \[ \] ' did not match the answer"),
        ("## Action items\n- [ ] rotate the disk", {"contains": "## Action items", "regex": r"^- \[ \] ", "non_empty": True}, None),
    ],
    ids=["empty", "contains", "regex", "passes"],
)
def test_expect_fails_a_run_whose_answer_does_not_pass(tmp_path, answer, expect, message):
    with ModelStub(answer) as stub:
        repo = _repo(tmp_path, {"agent": "codex", "prompt": "List action items.", "expect": expect})
        env = cli_env("codex", tmp_path / "home", stub.url)
        res = cronfile("run", "agent", cwd=repo, env=env, timeout=120)
    run = _history(repo, env)[-1]
    if message is None:
        assert (res.returncode, run["status"]) == (0, "success"), res.stderr
    else:
        # The CLI itself exited 0: only the check makes this a failure.
        assert (res.returncode, run["status"], run["exit_code"]) == (1, "failed", 0)
        assert run["message"] == message
        assert message in res.stderr


# -- custom profiles and usage reports -------------------------------------------------

FAKE_CLAUDE = """\
import sys
prompt = sys.stdin.read()
mode = sys.argv[1]
print("a warning on stderr", file=sys.stderr)
if mode == "garbled":
    print("this is not JSON at all")
elif mode == "good":
    print('{"type": "result", "result": "answer from the fake", "usage": {"input_tokens": 7, "output_tokens": 3}, "total_cost_usd": 0.5}')
else:
    print("plain answer")
"""


def _custom(tmp_path: Path, mode: str, output: str | None) -> Path:
    profile: dict = {"command": [sys.executable, "fake_agent.py", mode], "stdin": True}
    if output:
        profile["output"] = output
    repo = _repo(tmp_path, {"agent": "mine", "prompt": "Hello."}, json.dumps({"agents": {"mine": profile}}))
    (repo / "fake_agent.py").write_text(FAKE_CLAUDE)
    return repo


def test_a_usage_report_that_cannot_be_read_leaves_usage_null_and_the_run_succeeds(tmp_path):
    repo = _custom(tmp_path, "garbled", "claude-json")
    env = {"PATH": os.environ["PATH"]}
    res = cronfile("run", "agent", cwd=repo, env=env)
    assert res.returncode == 0, res.stderr
    run = _history(repo, env)[-1]
    assert run["status"] == "success"
    assert run["usage"] is None
    assert run["usage_error"] == "claude-json: output was not a JSON object; usage unknown"
    # The output as it came is kept, so nothing is lost.
    assert cronfile("logs", "agent", cwd=repo, env=env).stdout.strip() == "this is not JSON at all"
    text = cronfile("history", "agent", cwd=repo, env=env).stdout
    assert "TOKENS" in text and "usage unknown: claude-json: output was not a JSON object" in text


def test_a_custom_profile_declares_how_its_output_is_read(tmp_path):
    repo = _custom(tmp_path, "good", "claude-json")
    env = {"PATH": os.environ["PATH"]}
    assert cronfile("run", "agent", cwd=repo, env=env).returncode == 0
    run = _history(repo, env)[-1]
    assert run["usage"] == {"input_tokens": 7, "output_tokens": 3, "cost_usd": 0.5}
    assert "usage_error" not in run
    # The answer, without the envelope, and without the stderr of a run that succeeded.
    assert cronfile("logs", "agent", cwd=repo, env=env).stdout == "answer from the fake\n"
    text = cronfile("history", "agent", cwd=repo, env=env).stdout
    assert "7+3" in text and "$0.5000" in text


def test_a_plain_text_profile_keeps_its_output_and_reports_no_usage(tmp_path):
    repo = _custom(tmp_path, "plain", None)
    env = {"PATH": os.environ["PATH"]}
    assert cronfile("run", "agent", cwd=repo, env=env).returncode == 0
    run = _history(repo, env)[-1]
    assert run["usage"] is None and "usage_error" not in run
    assert cronfile("logs", "agent", cwd=repo, env=env).stdout == "a warning on stderr\nplain answer\n"


def test_a_failed_agent_shows_its_stderr_in_the_log(tmp_path):
    repo = _repo(
        tmp_path,
        {"agent": "mine", "prompt": "Hello."},
        json.dumps({"agents": {"mine": {"command": [sys.executable, "-c", "import sys; print('quota exceeded', file=sys.stderr); sys.exit(3)"], "stdin": True, "output": "claude-json"}}}),
    )
    env = {"PATH": os.environ["PATH"]}
    assert cronfile("run", "agent", cwd=repo, env=env).returncode == 1
    assert "quota exceeded" in cronfile("logs", "agent", cwd=repo, env=env).stdout


# -- the test set-up itself ------------------------------------------------------------


def test_a_missing_cli_fails_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CRONFILE_AGENT_CLIS", str(tmp_path / "empty"))
    with pytest.raises(AssertionError, match=r"run `sh tests/agents/install-clis.sh`"):
        cli_bin("codex")
    assert "install-clis.sh" in INSTALL


def test_a_failed_check_is_retried_and_the_usage_of_every_attempt_counts(tmp_path):
    with ModelStub("", input_tokens=100, output_tokens=7) as stub:
        job = {
            "agent": "codex",
            "prompt": "Write the report.",
            "expect": {"non_empty": True},
            "retries": 1,
            "retry_backoff": "1s",
        }
        repo = _repo(tmp_path, job)
        env = cli_env("codex", tmp_path / "home", stub.url)
        assert cronfile("run", "agent", cwd=repo, env=env, timeout=120).returncode == 1
        assert len(stub.model_requests()) == 2
    run = _history(repo, env)[-1]
    assert (run["status"], run["attempts"]) == ("failed", 2)
    assert run["usage"] == {"input_tokens": 200, "output_tokens": 14, "cost_usd": None}
