"""`permissions:` as a user writes it: validation, custom profiles, defaults, `diff`'s
mark on a widening, and `doctor`'s check that the installed CLIs take the flags.

The built-in CLIs' own runs at each level are in tests/agents/test_agent_permissions.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import cronfile

from cronfile.permissions import Level, widening

ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def _repo(tmp_path: Path, jobs: dict[str, str], config: str = "") -> Path:
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True, exist_ok=True)
    for name, text in jobs.items():
        (repo / "jobs.d" / f"{name}.yaml").write_text(text)
    if config:
        (repo / "cronfile.yaml").write_text(config)
    return repo


def _echo_profile(permissions: str = "") -> str:
    """A custom agent profile whose program prints the argv it was given."""
    return (
        "agents:\n"
        "  echo:\n"
        f"    command: [{sys.executable}, -c, {json.dumps(ECHO_ARGV)}, '{{prompt}}']\n"
        + permissions
    )


# -- the levels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before, after, wider",
    [
        ({"prompt": "x"}, {"prompt": "x", "permissions": "full"}, {"from": "read-only", "to": "full"}),
        ({"prompt": "x", "permissions": "read-only"}, {"prompt": "x", "permissions": "workspace-write"}, {"from": "read-only", "to": "workspace-write"}),
        ({"prompt": "x", "permissions": "workspace-write"}, {"prompt": "x", "permissions": "full"}, {"from": "workspace-write", "to": "full"}),
        ({"prompt": "x", "permissions": "full"}, {"prompt": "x"}, None),
        ({"prompt": "x", "permissions": "full"}, {"prompt": "x", "permissions": "full"}, None),
        (None, {"prompt": "x", "permissions": "full"}, {"from": "read-only", "to": "full"}),
        (None, {"prompt": "x"}, None),
        ({"shell": "true"}, {"prompt": "x", "permissions": "workspace-write"}, {"from": "read-only", "to": "workspace-write"}),
        ({"prompt": "x", "permissions": "full"}, {"shell": "true"}, None),
    ],
    ids=["unset-to-full", "ro-to-ww", "ww-to-full", "narrowed", "same", "new-full", "new-default", "shell-to-agent", "agent-to-shell"],
)
def test_a_widening_is_any_move_up_from_the_read_only_floor(before, after, wider):
    assert widening(before, after) == wider


def test_the_levels_are_ordered():
    assert [lvl.rank for lvl in (Level.read_only, Level.workspace_write, Level.full)] == [0, 1, 2]


# -- validation ------------------------------------------------------------------------


def test_a_custom_profile_without_a_mapping_is_refused_for_a_wider_level(tmp_path):
    job = "schedule: '@daily'\nagent: echo\nprompt: hi\npermissions: full\n"
    repo = _repo(tmp_path, {"wide": job}, _echo_profile())
    res = cronfile("validate", cwd=repo)
    assert res.returncode == 2
    line, summary = res.stderr.strip().splitlines()
    assert summary.startswith("1 problem found")
    assert line.startswith("jobs.d/wide.yaml:4:14: permissions: full is not declared by agent profile 'echo'"), line
    assert "agents.echo.permissions.full" in line
    assert "Traceback" not in res.stderr


def test_a_custom_profile_without_a_mapping_runs_at_its_default(tmp_path):
    # No permissions: (read-only) and an explicit read-only both pass, adding nothing.
    jobs = {
        "a": "schedule: '@daily'\nagent: echo\nprompt: hi\n",
        "b": "schedule: '@daily'\nagent: echo\nprompt: hi\npermissions: read-only\n",
    }
    repo = _repo(tmp_path, jobs, _echo_profile())
    for name in ("a", "b"):
        assert cronfile("run", name, cwd=repo).returncode == 0
        assert json.loads(cronfile("logs", name, cwd=repo).stdout) == ["hi"]


def test_a_custom_profile_passes_the_flags_it_declares_for_each_level(tmp_path):
    mapping = (
        "    permissions:\n"
        "      read-only: [--sandbox, ro]\n"
        "      full: [--yolo]\n"
    )
    jobs = {
        "ro": "schedule: '@daily'\nagent: echo\nprompt: hi\n",
        "wide": "schedule: '@daily'\nagent: echo\nprompt: hi\npermissions: full\n",
    }
    repo = _repo(tmp_path, jobs, _echo_profile(mapping))
    assert cronfile("run", "ro", cwd=repo).returncode == 0
    assert cronfile("run", "wide", cwd=repo).returncode == 0
    # The level's argv goes before the prompt, which stays one element.
    assert json.loads(cronfile("logs", "ro", cwd=repo).stdout) == ["--sandbox", "ro", "hi"]
    assert json.loads(cronfile("logs", "wide", cwd=repo).stdout) == ["--yolo", "hi"]
    # A level it does not list is refused, at the job's line.
    (repo / "jobs.d" / "mid.yaml").write_text("schedule: '@daily'\nagent: echo\nprompt: hi\npermissions: workspace-write\n")
    res = cronfile("validate", cwd=repo)
    assert res.returncode == 2
    assert "jobs.d/mid.yaml:4:14: permissions: workspace-write is not declared by agent profile 'echo' (it declares: read-only, full)" in res.stderr


def test_a_default_level_applies_to_every_agent_job_and_names_its_origin_when_refused(tmp_path):
    config = _echo_profile("    permissions: {workspace-write: [--edit]}\n") + (
        "  noflags:\n"
        f"    command: [{sys.executable}, -c, {json.dumps(ECHO_ARGV)}, '{{prompt}}']\n"
        "defaults:\n  permissions: workspace-write\n"
    )
    jobs = {
        "agent": "schedule: '@daily'\nagent: echo\nprompt: hi\n",
        "shell": "schedule: '@daily'\nshell: echo fine\n",
    }
    repo = _repo(tmp_path, jobs, config)
    assert cronfile("run", "agent", cwd=repo).returncode == 0
    assert json.loads(cronfile("logs", "agent", cwd=repo).stdout) == ["--edit", "hi"]
    # A shell job ignores the default (it runs no agent).
    assert cronfile("run", "shell", cwd=repo).returncode == 0
    (repo / "jobs.d" / "other.yaml").write_text("schedule: '@daily'\nagent: noflags\nprompt: hi\n")
    res = cronfile("validate", cwd=repo)
    assert res.returncode == 2
    assert (
        "jobs.d/other.yaml:2:8: permissions: workspace-write (from defaults in cronfile.yaml) "
        "is not declared by agent profile 'noflags'"
    ) in res.stderr


@pytest.mark.parametrize(
    "body, error",
    [
        ("agent: codex\nprompt: hi\npermissions: admin\n", "jobs.d/j.yaml:4:14: permissions: \"admin\" is not one of read-only, workspace-write, full"),
        ("shell: 'true'\npermissions: full\n", "jobs.d/j.yaml:3:1: permissions: only applies to prompt jobs"),
    ],
    ids=["unknown-level", "shell-job"],
)
def test_permission_errors_name_file_line_and_column(tmp_path, body, error):
    repo = _repo(tmp_path, {"j": "schedule: '@daily'\n" + body})
    res = cronfile("validate", cwd=repo)
    assert res.returncode == 2
    assert error in res.stderr, res.stderr


def test_a_profile_mapping_with_an_unknown_level_is_refused(tmp_path):
    config = _echo_profile("    permissions:\n      admin: [--root]\n")
    repo = _repo(tmp_path, {"a": "schedule: '@daily'\nagent: echo\nprompt: hi\n"}, config)
    res = cronfile("validate", cwd=repo)
    assert res.returncode == 2
    assert "cronfile.yaml:" in res.stderr and "admin" in res.stderr


# -- diff ------------------------------------------------------------------------------


def test_diff_marks_a_widening_so_a_reviewer_cannot_miss_it(tmp_path):
    jobs = {
        "brief": "schedule: '@daily'\nagent: codex\nprompt: hi\n",
        "fixer": "schedule: '@daily'\nagent: codex\nprompt: hi\npermissions: full\n",
    }
    repo = _repo(tmp_path, jobs)
    assert cronfile("apply", cwd=repo).returncode == 0
    (repo / "jobs.d" / "brief.yaml").write_text("schedule: '@daily'\nagent: codex\nprompt: hi\npermissions: full\n")
    (repo / "jobs.d" / "fixer.yaml").write_text("schedule: '@daily'\nagent: codex\nprompt: hi\npermissions: read-only\n")
    (repo / "jobs.d" / "new.yaml").write_text("schedule: '@daily'\nagent: codex\nprompt: hi\npermissions: workspace-write\n")
    res = cronfile("diff", cwd=repo)
    assert res.returncode == 1
    blocks = _blocks(res.stdout)
    assert '  permissions: "read-only (default)" -> "full"' in blocks["brief"]
    assert "  ! permissions WIDENED: read-only -> full" in blocks["brief"]
    assert "  ! permissions WIDENED: read-only -> workspace-write" in blocks["new"]
    # Narrowing is an ordinary change.
    assert "WIDENED" not in blocks["fixer"]
    data = json.loads(cronfile("diff", "--json", cwd=repo).stdout)
    wide = {c["name"]: c.get("permissions_widened") for c in data["changes"]}
    assert wide == {
        "brief": {"from": "read-only", "to": "full"},
        "fixer": None,  # the key is added only to a widening
        "new": {"from": "read-only", "to": "workspace-write"},
    }
    assert "permissions_widened" not in next(c for c in data["changes"] if c["name"] == "fixer")
    # The stable keys are all still there.
    assert {"name", "action", "fields", "next_run_before", "next_run_after"} <= set(data["changes"][0])


def _blocks(text: str) -> dict[str, str]:
    """diff's output by job: {name: its block}."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line[:2] in ("+ ", "~ ", "- ") and len(line.split()) == 3:
            name = line.split()[2]
            out[name] = ""
        elif name is not None:
            out[name] += line + "\n"
    return out
