"""The command line as a user runs it: validate, next, schema, init, and the exit codes."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ROOT, cronfile


def test_version_and_help_work_without_a_jobs_repo(tmp_path):
    assert cronfile("--version", cwd=tmp_path).stdout.startswith("cronfile ")
    res = cronfile("--help", cwd=tmp_path)
    assert res.returncode == 0 and "exit codes" in res.stdout


@pytest.mark.parametrize(
    "command",
    [
        "validate",
        "next",
        "schema",
        "init",
        "diff",
        "apply",
        "status",
        "history",
        "logs",
        "run",
        "tick",
        "daemon",
        "import",
        "render",
    ],
)
def test_every_command_has_help_with_an_example(command, tmp_path):
    res = cronfile(command, "--help", cwd=tmp_path)
    assert res.returncode == 0
    assert "example:" in res.stdout


def test_validate_passes_on_the_shipped_jobs_and_examples():
    assert cronfile("validate", cwd=ROOT).returncode == 0
    for folder in sorted((ROOT / "examples").iterdir()):
        if folder.is_dir():
            res = cronfile("validate", str(folder), cwd=ROOT)
            assert res.returncode == 0, res.stderr


def test_validate_lists_every_problem_one_line_each_and_exits_2(tmp_path):
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "a.yaml").write_text("schedule: '0 0 30 2 *'\nshell: x\n")
    (jobs / "b.yaml").write_text("schedule: '@daily'\nshell: x\ntimeout: 15 minutes\n")
    (jobs / "c.yaml").write_text("schedule: [\n")
    res = cronfile("validate", cwd=tmp_path)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("jobs.d/")]
    assert len(lines) == 3, res.stderr
    assert lines[0].startswith("jobs.d/a.yaml:1:11: schedule: can never fire")
    assert lines[1] == 'jobs.d/b.yaml:3:10: timeout: "15 minutes" is not a duration (e.g. 15m)'
    assert lines[2].startswith("jobs.d/c.yaml:2:1: invalid YAML")
    assert "Traceback" not in res.stderr


def test_validate_json_lists_errors_with_positions(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text("schedule: '* * 32 * *'\nshell: x\n")
    res = cronfile("validate", "--json", cwd=tmp_path)
    data = json.loads(res.stdout)
    assert res.returncode == 2 and data["ok"] is False
    (err,) = data["errors"]
    assert (err["path"], err["line"], err["column"], err["field"]) == (
        "jobs.d/a.yaml",
        1,
        11,
        "schedule",
    )


def test_validate_a_single_file_resolves_from_job_across_the_repo(tmp_path):
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "collect.yaml").write_text("schedule: '@hourly'\nshell: x\n")
    (jobs / "brief.yaml").write_text(
        "schedule: '@daily'\nprompt: p\nagent: llm\ncontext: {from_job: collect}\n"
    )
    assert cronfile("validate", "jobs.d/brief.yaml", cwd=tmp_path).returncode == 0


def test_validate_warns_about_a_fixed_time_job_in_a_dst_gap(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text(
        "schedule: '30 2 * * *'\ntimezone: Europe/Berlin\nshell: x\n"
    )
    res = cronfile("validate", cwd=tmp_path)
    assert res.returncode == 0
    assert "warning: schedule:" in res.stderr and "skipped by daylight saving" in res.stderr


@pytest.mark.parametrize(
    "expr, phrase",
    [
        ("61 * * * *", "minute"),
        ("* * 32 * *", "day"),
        ("0 0 30 2 *", "never"),
        ("*/0 * * * *", "step"),
        ("* * * *", "fields"),
        ("0 0 12 * * 2027", "year"),
    ],
    ids=["minute-61", "day-32", "feb-30", "step-0", "four-fields", "year-field"],
)
def test_next_rejects_invalid_expressions_with_the_reason(expr, phrase):
    res = cronfile("next", expr)
    assert res.returncode == 2
    assert phrase in res.stderr.lower() and "Traceback" not in res.stderr


def test_next_rejects_a_bad_timezone():
    res = cronfile("next", "0 9 * * *", "--tz", "Mars/Olympus")
    assert res.returncode == 2 and "Mars/Olympus" in res.stderr


def test_next_json_matches_the_contract_shape_across_spring_forward():
    res = cronfile(
        "next",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "-n",
        "3",
        "--after",
        "2026-03-28T00:00:00Z",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "expr": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "next": [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ],
    }


def test_next_human_output_shows_local_time_utc_and_distance():
    res = cronfile(
        "next",
        "0 9 * * *",
        "--tz",
        "America/New_York",
        "-n",
        "1",
        "--after",
        "2026-07-01T00:00:00Z",
    )
    assert res.returncode == 0
    assert "2026-07-01 09:00:00 EDT" in res.stdout and "2026-07-01 13:00:00 UTC" in res.stdout
    assert "ago" in res.stdout  # the date is in the past relative to now


def test_next_takes_a_job_name(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "brief.yaml").write_text(
        "schedule: '0 9 * * 1-5'\ntimezone: Asia/Tokyo\nshell: x\n"
    )
    res = cronfile(
        "next", "brief", "--json", "-n", "2", "--after", "2026-11-19T12:00:00Z", cwd=tmp_path
    )
    data = json.loads(res.stdout)
    assert data["timezone"] == "Asia/Tokyo"
    assert data["next"] == ["2026-11-20T09:00:00+09:00", "2026-11-23T09:00:00+09:00"]


@pytest.mark.parametrize("which", ["job", "config"])
def test_schema_prints_valid_json_schema(which):
    import jsonschema

    res = cronfile("schema", which)
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_init_makes_a_working_jobs_repo_and_keeps_existing_files(tmp_path):
    res = cronfile("init", "repo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    repo = tmp_path / "repo"
    assert (repo / "cronfile.yaml").exists() and (repo / "jobs.d" / "hello.yaml").exists()
    assert ".cronfile/" in (repo / ".gitignore").read_text().splitlines()
    assert cronfile("validate", cwd=repo).returncode == 0
    (repo / "jobs.d" / "hello.yaml").write_text("schedule: '@daily'\nshell: mine\n")
    cronfile("init", "repo", cwd=tmp_path)
    assert "mine" in (repo / "jobs.d" / "hello.yaml").read_text()
    assert (repo / ".gitignore").read_text().count(".cronfile/") == 1


def test_unknown_command_and_missing_folder_exit_2(tmp_path):
    assert cronfile("frobnicate", cwd=tmp_path).returncode == 2
    res = cronfile("-C", str(tmp_path / "nope"), "validate")
    assert res.returncode == 2 and "no such folder" in res.stderr


def test_every_command_of_the_parser_runs_and_has_help():
    # commands.py holds the names and help, cli.py the functions: one table cannot gain
    # a command the other lacks. Each command's --help, from a real process, exits 0.
    from cronfile import cli, commands

    assert set(cli.HANDLERS) == set(commands.COMMANDS)
    for name in commands.COMMANDS:
        res = cronfile(name, "--help")
        assert res.returncode == 0 and "example:" in res.stdout, name
