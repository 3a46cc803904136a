"""`budget:` and `expect:` validation, and the pure parts behind them: the output
decoders of the agent CLIs, usage over a 24-hour window, budget and answer checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import cronfile

from cronfile.expect import check_expect
from cronfile.stores.sqlite import SqliteStore
from cronfile.usage import Usage, budget_left, budget_refusal, decoder_for, usage_since

# -- validation ------------------------------------------------------------------------

BAD = [
    ('shell: echo hi\nbudget: {tokens_per_day: 100}\n', "jobs.d/job.yaml:3:1: budget: only applies to prompt jobs"),
    ('command: [date]\nexpect: {contains: x}\n', "jobs.d/job.yaml:3:1: expect: only applies to prompt jobs"),
    (
        "agent: codex\nprompt: hi\nbudget:\n  tokens_per_day: 100\n  tokens_per_week: 5\n",
        "jobs.d/job.yaml:6:3: budget.tokens_per_week: unknown field (did you mean tokens_per_day?)",
    ),
    (
        "agent: codex\nprompt: hi\nexpect: {contians: x}\n",
        "jobs.d/job.yaml:4:10: expect.contians: unknown field (did you mean contains?)",
    ),
    (
        'agent: codex\nprompt: hi\nexpect:\n  regex: "a(b"\n',
        "jobs.d/job.yaml:5:10: expect.regex: 'a(b' is not a valid regular expression: "
        "missing ), unterminated subpattern at position 1",
    ),
]


@pytest.mark.parametrize(("body", "error"), BAD, ids=["budget-shell", "expect-command", "budget-key", "expect-key", "regex"])
def test_budget_and_expect_errors_name_file_line_and_column(tmp_path, body, error):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "job.yaml").write_text('schedule: "0 9 * * *"\n' + body)
    res = cronfile("validate", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == error
    assert "Traceback" not in res.stderr
    # Nothing half-applied: apply refuses the same way and writes no state.
    assert cronfile("apply", cwd=tmp_path).returncode == 2
    assert not SqliteStore(tmp_path / ".cronfile").exists()


def test_a_budgeted_checked_agent_job_validates(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    job = {
        "schedule": "0 9 * * *",
        "agent": "claude",
        "prompt": "hi",
        "budget": {"tokens_per_day": 20000, "cost_per_day": 0.5},
        "expect": {"contains": "##", "regex": "^- ", "non_empty": True},
    }
    (tmp_path / "jobs.d" / "job.yaml").write_text(json.dumps(job))
    assert cronfile("validate", cwd=tmp_path).returncode == 0


# -- decoders --------------------------------------------------------------------------


def _feed(fmt: str, out: bytes, err: bytes = b"", chunk: int = 7) -> tuple[bytes, object]:
    """Feed ``out`` in small chunks (a JSON line or object split anywhere)."""
    dec = decoder_for(fmt)
    logged = b"".join(dec.out(out[i : i + chunk]) for i in range(0, len(out), chunk))
    logged += dec.err(err)
    logged += dec.end()
    return logged, dec


CODEX = (
    b'{"type":"thread.started","thread_id":"t"}\n'
    b'{"type":"turn.started"}\n'
    b'{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"thinking"}}\n'
    b'{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Line one\\nline two \xe2\x9c\x93"}}\n'
    b'{"type":"turn.completed","usage":{"input_tokens":111,"cached_input_tokens":100,"output_tokens":22}}\n'
)


def test_codex_json_lines_give_the_message_and_the_usage_however_they_are_cut():
    logged, dec = _feed("codex-json", CODEX, b"WARNING: something\n")
    assert logged.decode() == "Line one\nline two ✓\n"
    assert dec.usage == Usage(111, 22, None) and dec.problem is None
    assert dec.stderr == b"WARNING: something\n"  # held back, shown only on failure


def test_codex_errors_are_shown_and_missing_usage_is_noted():
    logged, dec = _feed("codex-json", b'{"type":"turn.failed","error":{"message":"model retired"}}\n')
    assert logged == b"[codex error] model retired\n"
    assert dec.usage is None and dec.problem == "codex-json: no turn.completed event with usage"


def test_claude_json_gives_the_result_usage_and_cost():
    env = {
        "type": "result",
        "result": "Done.",
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 1, "output_tokens": 4},
        "total_cost_usd": 0.0123,
    }
    logged, dec = _feed("claude-json", b"a notice first\n" + json.dumps(env).encode())
    assert logged == b"Done.\n"
    assert dec.usage == Usage(16, 4, 0.0123)


def test_gemini_json_sums_the_models_it_used():
    env = {
        "response": "Hi",
        "stats": {
            "models": {
                "a": {"tokens": {"prompt": 100, "candidates": 5, "thoughts": 2}},
                "b": {"tokens": {"prompt": 10, "candidates": 1}},
            }
        },
    }
    logged, dec = _feed("gemini-json", json.dumps(env).encode())
    assert logged == b"Hi\n"
    assert dec.usage == Usage(110, 8, None)


def test_llm_usage_comes_from_its_stderr_line():
    logged, dec = _feed("llm-usage", b"streamed answer\n", b"Token usage: 1,234 input, 56 output\n")
    assert logged == b"streamed answer\n"
    assert dec.usage == Usage(1234, 56, None)
    assert dec.stderr == b""
    _, dec = _feed("llm-usage", b"answer\n", b"")
    assert dec.usage is None and "Token usage" in dec.problem


@pytest.mark.parametrize("fmt", ["claude-json", "gemini-json"])
def test_an_envelope_that_is_not_json_is_kept_as_it_came(fmt):
    logged, dec = _feed(fmt, b"Error: not logged in\n")
    assert logged == b"Error: not logged in\n"
    assert dec.usage is None and dec.problem == f"{fmt}: output was not a JSON object; usage unknown"


def test_text_output_is_the_answer():
    logged, dec = _feed("text", b"anything { at all }\n")
    assert logged == b"anything { at all }\n" and dec.answer == "anything { at all }\n"
    assert dec.usage is None and dec.problem is None


# -- budget and expect -----------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _rec(hours_ago: float, usage: dict | None) -> dict:
    return {"started_at": (NOW - timedelta(hours=hours_ago)).isoformat(), "usage": usage}


def test_usage_counts_the_runs_of_the_last_24_hours_only():
    records = [
        _rec(25, {"input_tokens": 9999, "output_tokens": 9999, "cost_usd": 9.0}),
        _rec(23.9, {"input_tokens": 100, "output_tokens": 10, "cost_usd": None}),
        _rec(1, {"input_tokens": 200, "output_tokens": 20, "cost_usd": 0.25}),
        _rec(0.5, None),  # a refused run, or a profile without usage
        {"status": "missed"},  # no started_at
    ]
    used = usage_since(records, NOW - timedelta(hours=24))
    assert used == Usage(300, 30, 0.25)


def test_a_budget_refuses_at_its_limit_not_before():
    assert budget_refusal({"tokens_per_day": 331}, Usage(300, 30)) is None
    assert budget_refusal({"tokens_per_day": 330}, Usage(300, 30)) == (
        "budget: tokens_per_day 330 is used up (330 tokens in the last 24 hours)"
    )
    assert budget_refusal({"cost_per_day": 0.5}, Usage(1, 1, 0.75)) == (
        "budget: cost_per_day 0.5 USD is used up (0.75 USD in the last 24 hours)"
    )
    assert budget_left({"tokens_per_day": 1000, "cost_per_day": 1}, Usage(300, 30, 0.25)) == {
        "tokens": 670,
        "cost_usd": 0.75,
    }


def test_expect_checks():
    assert check_expect({"non_empty": True}, " \n") == "expect: non_empty, but the answer was empty"
    assert check_expect({"contains": "OK"}, "ok") == "expect: contains 'OK', but the answer does not"
    assert check_expect({"regex": r"^\d+ issues$"}, "summary\n3 issues\n") is None
    assert check_expect({"non_empty": False}, "") is None
