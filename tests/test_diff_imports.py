"""A read-only command imports no lock library: `diff` reads the store and takes no lock,
so filelock (20 modules, with logging and decimal: the largest import of a cold `diff`,
issue 17) is imported only where a lock is taken. Real processes, a real repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine_helpers import write_job


def _cronfile(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRONFILE_NO_CACHE": "1"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cronfile", "-C", str(root), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


def test_diff_imports_no_lock_library_and_apply_still_takes_the_lock(tmp_path: Path) -> None:
    write_job(tmp_path, "a", "schedule: '@daily'\nshell: echo a\n")
    write_job(tmp_path, "b", "schedule: '0 9 * * 1-5'\ntimezone: Europe/Berlin\ncommand: [echo, b]\n")
    state = str(tmp_path / "state")

    diff = _cronfile(tmp_path, "diff", "--state-dir", state)
    assert diff.returncode == 1, diff.stderr[-2000:]  # changes to apply
    assert "+ create a" in diff.stdout and "2 to create, 0 to update, 0 to delete" in diff.stdout
    mods = _imported(diff.stderr)
    assert "cronfile.stores.sqlite" in mods and "cronfile.reconcile" in mods  # it did read the store
    assert not {m for m in mods if m.split(".")[0] == "filelock"}, sorted(mods)

    apply = _cronfile(tmp_path, "apply", "--state-dir", state)  # creates state.db under state.lock
    assert apply.returncode == 0, apply.stderr[-2000:]
    assert "filelock" in _imported(apply.stderr)
    again = _cronfile(tmp_path, "diff", "--state-dir", state)
    assert again.returncode == 0 and "No changes: 2 jobs up to date." in again.stdout
    assert "filelock" not in _imported(again.stderr)
