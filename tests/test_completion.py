"""Shell completion (`cronfile completion bash|zsh|fish`) and the pre-commit hook."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from cli_helpers import ROOT, cronfile
from conftest import require_program

from cronfile import cli, completion

SHELL_JOB = 'schedule: "@daily"\nshell: "true"\n'


def every_command_and_option() -> dict[str, set[str]]:
    """Straight from argparse, independently of completion.model()."""
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    out = {"": {s for a in parser._actions for s in a.option_strings}}
    for name, p in sub.choices.items():
        out[name] = {s for a in p._actions for s in a.option_strings}
    return out


@pytest.fixture
def repo(tmp_path) -> Path:
    """A jobs repo with two jobs, and a `cronfile` on PATH that runs this checkout."""
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    for name in ("backup", "cleanup"):
        (root / "jobs.d" / f"{name}.yaml").write_text(SHELL_JOB)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "cronfile"
    exe.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m cronfile "$@"\n')
    exe.chmod(0o755)
    return root


def shell_env(repo: Path) -> dict[str, str]:
    return {"PATH": f"{repo.parent / 'bin'}:/usr/bin:/bin", "HOME": str(repo.parent)}


# -- the model -----------------------------------------------------------------------


def test_the_model_has_every_command_and_option_of_the_parser():
    model = {c.name: {n for o in c.options for n in o.names} for c in completion.model()}
    assert model == every_command_and_option()


@pytest.mark.parametrize(
    ("command", "kinds"),
    [
        ("run", ["job"]),
        ("history", ["job"]),
        ("logs", ["job", "none"]),
        ("next", ["job"]),
        ("validate", ["file"]),
        ("init", ["dir"]),
        ("service", ["choice"]),
        ("completion", ["choice"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_what_each_positional_completes_to_is_read_off_the_parser(command, kinds):
    (cmd,) = [c for c in completion.model() if c.name == command]
    assert [p.kind for p in cmd.positionals] == kinds


def test_directory_options_complete_folders_and_the_unit_name_is_not_a_job():
    top = completion.model()[0]
    assert {o.names[0]: o.kind for o in top.options if o.takes_value} == {
        "-C": "dir",
        "--state-dir": "dir",
        "--state-url": "none",  # a URL: nothing to complete
    }
    (svc,) = [c for c in completion.model() if c.name == "service"]
    assert next(o for o in svc.options if "--name" in o.names).kind == "none"


# -- bash ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bash_script() -> str:
    return completion.script("bash")


def test_the_bash_script_parses(bash_script, tmp_path):
    path = tmp_path / "cronfile.bash"
    path.write_text(bash_script)
    res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_the_bash_script_names_every_command_and_option(bash_script):
    for command, options in every_command_and_option().items():
        assert re.search(rf"\b{command}\b", bash_script), command
        for option in options:
            assert f" {option}" in bash_script or f'"{option}' in bash_script, option


def complete_bash(script: str, repo: Path, words: list[str], cwd: Path | None = None) -> list[str]:
    """Source the script and call its function as bash's programmable completion would."""
    path = repo.parent / "cronfile.bash"
    path.write_text(script)
    code = (
        f'source "{path}"\n'
        'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))\n'
        "_cronfile\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    res = subprocess.run(
        ["bash", "-c", code, "bash", *words],
        cwd=cwd or repo,
        env=shell_env(repo),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return sorted(line for line in res.stdout.splitlines() if line)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["cronfile", "ru"], ["run"]),
        (["cronfile", "run", ""], ["backup", "cleanup"]),
        (["cronfile", "run", "b"], ["backup"]),
        (["cronfile", "history", ""], ["backup", "cleanup"]),
        (["cronfile", "logs", "c"], ["cleanup"]),
        (["cronfile", "next", "-n", "3", ""], ["backup", "cleanup"]),
        (["cronfile", "--state-dir", "elsewhere", "ru"], ["run"]),
        (["cronfile", "service", ""], ["install", "print", "uninstall"]),
        (["cronfile", "completion", "f"], ["fish"]),
        (["cronfile", "schema", ""], ["config", "job"]),
        (["cronfile", "apply", "--d"], ["--debug", "--dry-run"]),
        (["cronfile", "--ver"], ["--version"]),
        (["cronfile", "run", "backup", ""], []),
    ],
    ids=[
        "command",
        "job-names",
        "job-prefix",
        "history",
        "logs",
        "after-an-option-value",
        "after-a-global-option",
        "choices",
        "shell",
        "schema",
        "command-options",
        "global-options",
        "nothing-after-the-name",
    ],
)
def test_bash_completes(bash_script, repo, words, expected):
    assert complete_bash(bash_script, repo, words) == expected


def test_bash_completes_job_names_of_the_repo_given_with_C(bash_script, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    words = ["cronfile", "-C", str(repo), "run", ""]
    assert complete_bash(bash_script, repo, words, cwd=elsewhere) == ["backup", "cleanup"]


def test_bash_completes_folders_after_C(bash_script, repo):
    assert complete_bash(bash_script, repo, ["cronfile", "-C", "job"]) == ["jobs.d"]


# -- zsh and fish --------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_script_parses(shell, tmp_path):
    require_program(shell, f"apt-get install -y {shell}")
    path = tmp_path / f"cronfile.{shell}"
    path.write_text(completion.script(shell))
    res = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_the_script_names_every_command(shell):
    text = completion.script(shell)
    for command in every_command_and_option():
        if command:
            assert re.search(rf"\b{command}\b", text), command


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("cronfile ru", ["run"]),
        ("cronfile run ", ["backup", "cleanup"]),
        ("cronfile next -n 3 ", ["backup", "cleanup"]),
        ("cronfile service ", ["install", "print", "uninstall"]),
    ],
    ids=["command", "job-names", "after-an-option-value", "choices"],
)
def test_fish_completes(repo, line, expected):
    require_program("fish", "apt-get install -y fish")
    script = repo.parent / "cronfile.fish"
    script.write_text(completion.script("fish"))
    res = subprocess.run(
        ["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
        cwd=repo,
        env=shell_env(repo),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(line.split("\t")[0] for line in res.stdout.splitlines()) == expected


# -- completion --jobs ---------------------------------------------------------------


def test_jobs_prints_one_job_name_per_line(repo):
    res = cronfile("completion", "--jobs", cwd=repo)
    assert res.returncode == 0
    assert res.stdout == "backup\ncleanup\n"


def test_jobs_ignores_a_broken_file_and_prints_the_rest(repo):
    (repo / "jobs.d" / "broken.yaml").write_text("schedule: [\n")
    res = cronfile("completion", "--jobs", cwd=repo)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout.split() == ["backup", "cleanup"]


def test_jobs_prints_nothing_outside_a_jobs_repo(tmp_path):
    res = cronfile("-C", str(tmp_path / "nowhere"), "completion", "--jobs", cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_completion_without_a_shell_says_which_to_name(tmp_path):
    res = cronfile("completion", cwd=tmp_path)
    assert res.returncode == 2 and "bash|zsh|fish" in res.stderr


def test_the_command_prints_the_script(tmp_path):
    res = cronfile("completion", "bash", cwd=tmp_path)
    assert res.returncode == 0 and "complete -F _cronfile cronfile" in res.stdout


# -- the pre-commit hook -------------------------------------------------------------


@pytest.fixture(scope="module")
def hook() -> dict:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list)
    (found,) = [h for h in hooks if h["id"] == "cronfile-validate"]
    return found


def test_the_hook_runs_cronfile_validate_from_this_package(hook):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    program, command = hook["entry"].split()
    assert program in scripts
    assert command in every_command_and_option()
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("jobs.d/backup.yaml", True),
        ("jobs.d/ops/cleanup.yml", True),
        ("cronfile.yaml", True),
        ("README.md", False),
        ("jobs.d/notes.txt", False),
        ("examples/ops/jobs.d/backup.yaml", False),
        ("other/cronfile.yaml", False),
    ],
)
def test_the_hook_sees_job_files_and_the_config(hook, path, matches):
    assert bool(re.search(hook["files"], path)) is matches


def test_the_hook_command_passes_on_the_changed_job_files(tmp_path):
    assert cronfile("init", str(tmp_path)).returncode == 0
    res = cronfile("validate", "jobs.d/hello.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_the_hook_command_validates_the_repo_when_only_the_config_changed(tmp_path):
    assert cronfile("init", str(tmp_path)).returncode == 0
    res = cronfile("validate", "cronfile.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (tmp_path / "jobs.d" / "bad.yaml").write_text("schedule: nope\nshell: 'true'\n")
    res = cronfile("validate", "cronfile.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "bad.yaml" in res.stderr


def test_the_public_names_exist():
    assert all(hasattr(completion, name) for name in completion.__all__)
