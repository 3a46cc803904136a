"""The pre-commit instructions work as written on a fresh jobs repo, with the real
`pre-commit` tool (a test dependency) and cronfile served from a local git repository
(pre-commit takes a path as `repo:`). Nothing but the URL is changed from the docs.

pre-commit installs the hook's environment from that repository (`language: python`),
so the first run installs cronfile's dependencies through pip's configured index."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, cronfile

BIN = Path(sys.executable).parent
SOURCES = ["cronfile", "schema", "pyproject.toml", "README.md", ".pre-commit-hooks.yaml"]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def pre_commit_exe() -> str:
    exe = shutil.which("pre-commit", path=str(BIN)) or shutil.which("pre-commit")
    if exe is None:
        pytest.fail("pre-commit is not installed: pip install -e '.[test]' (it is in the test extra)")
    return exe


def documented_config(path: Path) -> str:
    """The `.pre-commit-config.yaml` block of a doc that uses cronfile's repository."""
    blocks = re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)
    (block,) = [b for b in blocks if "id: cronfile-validate" in b and "repo: https://" in b]
    return block


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cronfile's repository as it is now (working tree, committed to a fresh repo).
    One for the module, so both documented configs share one hook environment."""
    up = tmp_path_factory.mktemp("upstream") / "cronfile-upstream"
    up.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, up / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, up / name)
    env = {**os.environ, **GIT_ENV}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "cronfile"]):
        assert run(cmd, up, env).returncode == 0
    return up


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache, shared by the documented configs: both name the same repository
    and rev, so the second reuses the hook environment the first installed (it is the
    same install a user's second repo would reuse; installing it takes most of the time)."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_the_documented_hook_config_works_on_a_fresh_repo(doc, upstream, pre_commit_home, tmp_path):
    exe = pre_commit_exe()
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(pre_commit_home), "NO_COLOR": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("CRONFILE_")}
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    assert run(["git", "init", "-q"], jobs, env).returncode == 0
    assert cronfile("init", "-q", ".", cwd=jobs).returncode == 0
    config = documented_config(ROOT / doc)
    url = re.search(r"repo: (\S+)", config).group(1)
    (jobs / ".pre-commit-config.yaml").write_text(config.replace(url, str(upstream)))
    assert run(["git", "add", "-A"], jobs, env).returncode == 0

    res = run([exe, "run", "--all-files"], jobs, env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"cronfile validate\.+Passed", res.stdout)

    # The pin the docs give: the moving rev becomes the commit's hash.
    res = run([exe, "autoupdate", "--bleeding-edge", "--freeze"], jobs, env)
    assert res.returncode == 0, res.stdout + res.stderr
    head = run(["git", "rev-parse", "HEAD"], upstream, env).stdout.strip()
    assert f"rev: {head}" in (jobs / ".pre-commit-config.yaml").read_text()

    # A broken job file is stopped before the commit, with its file:line:col.
    (jobs / "jobs.d" / "bad.yaml").write_text('schedule: "@every 5m"\nshell: "true"\n')
    assert run(["git", "add", "-A"], jobs, env).returncode == 0
    res = run([exe, "run"], jobs, env)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "jobs.d/bad.yaml:1:11: schedule:" in res.stdout and "did you mean 'every 5m'?" in res.stdout


def test_the_local_hook_from_the_readme_works(tmp_path):
    exe = pre_commit_exe()
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # cronfile installed where you commit
    env = {k: v for k, v in env.items() if not k.startswith("CRONFILE_")}
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (config,) = [b for b in blocks if "repo: local" in b and "cronfile-validate" in b]
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    assert run(["git", "init", "-q"], jobs, env).returncode == 0
    assert cronfile("init", "-q", ".", cwd=jobs).returncode == 0
    (jobs / ".pre-commit-config.yaml").write_text(config)
    (jobs / "jobs.d" / "bad.yaml").write_text('schedule: "0 9 * * *"\ntimezone: Berlin\nshell: "true"\n')
    assert run(["git", "add", "-A"], jobs, env).returncode == 0
    res = run([exe, "run", "--all-files"], jobs, env)
    assert res.returncode == 1
    assert "jobs.d/bad.yaml:2:11: timezone: unknown timezone 'Berlin' (did you mean Europe/Berlin?)" in res.stdout
