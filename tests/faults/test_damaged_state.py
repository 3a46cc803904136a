"""Damaged state: a truncated or hand-broken state.json, a missing or read-only state dir,
a full disk (a small tmpfs where this machine lets us mount one, else ENOSPC injected at
the write), and state.json broken under a running daemon. Clear errors, the previous
state intact, and no run claimed twice afterwards."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from filelock import FileLock

from .harness import (
    FINAL,
    MARK,
    DaemonProc,
    child_env,
    cli,
    duplicates,
    figure,
    make_repo,
    read_marks,
    read_records,
    read_state,
    running_ids,
    wait_for,
)

pytestmark = pytest.mark.slow



def beat(root: Path) -> dict[str, str]:
    return {"beat": f'schedule: "* * * * * *"\nshell: {MARK.format(marks=root / "marks" / "beat")}\n'}


@pytest.fixture
def applied(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
    assert cli(root, "apply", "-q").code == 0
    return root


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


BREAKS = {
    "truncated": _truncate,
    "empty": lambda p: p.write_bytes(b""),
    "not-json": lambda p: p.write_text("{this is not json"),
    "a-list": lambda p: p.write_text("[1, 2, 3]\n"),
    "future-version": lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": 99')),
    "wrong-types": lambda p: p.write_text(p.read_text().replace('"running": []', '"running": 5')),
    "missing-field": lambda p: p.write_text(p.read_text().replace('"spec_hash"', '"spec_hush"')),
    "not-utf8": lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes()),
}
COMMANDS = [["status"], ["diff"], ["apply"], ["tick"], ["run", "beat"], ["history", "beat"], ["daemon"]]


@pytest.mark.parametrize("how", list(BREAKS), ids=list(BREAKS))
def test_a_broken_state_json_is_one_clear_error_and_stays_as_it_was(applied, how):
    state = applied / ".cronfile" / "state.json"
    BREAKS[how](state)
    broken = state.read_bytes()
    for args in COMMANDS:
        res = cli(applied, *args, timeout=20)
        if args == ["history", "beat"]:
            assert res.code == 0 and "Traceback" not in res.err  # reads no state
            continue
        assert res.code == 2, (args, res.code, res.err)
        lines = res.err.strip().splitlines()
        assert len(lines) == 1 and "state.json" in lines[0] and "Traceback" not in res.err, (args, res.err)
        assert state.read_bytes() == broken, f"{args}: the broken file was touched"
    assert not read_marks(applied), "something ran from a broken state"


def test_a_missing_state_dir_is_made_anew(applied):
    state_dir = applied / ".cronfile"
    shutil.rmtree(state_dir)
    res = cli(applied, "tick", "-q")
    assert res.code == 0 and read_state(state_dir)["jobs"]["beat"]


def test_a_read_only_state_dir_is_one_clear_error_and_stays_as_it_was(tmp_path):
    # A read-only filesystem (a tmpfs remounted ro): unlike a chmod, root cannot write
    # through it either, so this runs as root too.
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("cannot mount a tmpfs here (not root, or not allowed)")
    try:
        root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
        env = child_env(CRONFILE_STATE_DIR=str(mnt / "state"))
        assert cli(root, "apply", "-q", env=env).code == 0
        good = (mnt / "state" / "state.json").read_bytes()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        (root / "jobs.d" / "beat.yaml").write_text((root / "jobs.d" / "beat.yaml").read_text() + "description: changed\n")
        for args in (["apply"], ["tick"], ["run", "beat"], ["daemon"], ["status"], ["diff"]):
            res = cli(root, *args, env=env, timeout=20)
            if args in (["status"], ["diff"]):  # read only: they work
                assert res.code in (0, 1) and "Traceback" not in res.err, (args, res.err)
                continue
            lines = res.err.strip().splitlines()
            assert res.code == 2, (args, res.code, res.err)
            assert lines and "Read-only file system" in lines[-1] and "internal error" not in res.err, (args, res.err)
        assert (mnt / "state" / "state.json").read_bytes() == good
        assert not read_marks(root)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_state_json_broken_under_a_running_daemon_is_never_overwritten_nor_reclaimed(applied):
    state = applied / ".cronfile" / "state.json"
    with DaemonProc(applied, tag="broken") as d:
        d.wait_log("cronfile daemon")
        wait_for(lambda: len(read_marks(applied)) >= 2, what="runs before the damage")
        # Broken between two transactions: under state.lock, as nothing else writes it.
        # Written without the lock, a transaction in flight (it read the state before
        # the damage) renames its own new copy over the damage a moment later, and the
        # daemon goes on, rightly, with a valid state: seen on a loaded machine.
        with FileLock(str(state.parent / "state.lock"), timeout=10):
            good = state.read_bytes()
            state.write_text("{ broken by hand")
        code = d.wait(20)
        text = d.text()
    assert code == 2, f"the daemon went on with an unreadable state (exit {code}):\n{text[-2000:]}"
    assert "Traceback" not in text
    assert "state.json is not valid JSON" in text
    assert state.read_text() == "{ broken by hand"
    # The user restores the last good copy; a new daemon takes over from it.
    n = len(read_marks(applied))
    state.write_bytes(good)
    with DaemonProc(applied, tag="restored") as d:
        d.wait_log("cronfile daemon")
        wait_for(lambda: len(read_marks(applied)) >= n + 2, what="runs after the restore")
        assert d.stop() == 0
    marks, records = read_marks(applied), read_records(applied / ".cronfile")
    assert duplicates(marks, records) == []
    assert running_ids(read_state(applied / ".cronfile")) == {}


# -- a full disk ------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], capture_output=True)
    return res.returncode == 0


def _fill(path: Path) -> Path:
    """Fill the filesystem holding ``path`` to the last byte (unbuffered writes, so
    nothing is left to fail at close)."""
    filler = path / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (65536, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break
    return filler


def test_a_full_disk_stops_firing_clearly_keeps_the_state_and_resumes_without_doubles(tmp_path):
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "256k"):
        pytest.skip("cannot mount a tmpfs here (not root, or not allowed): the in-process test below injects ENOSPC instead")
    try:
        root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
        state_dir = mnt / "state"
        env = child_env(CRONFILE_STATE_DIR=str(state_dir))
        assert cli(root, "apply", "-q", env=env).code == 0
        with DaemonProc(root, env=env, tag="full") as d:
            d.wait_log("cronfile daemon")
            wait_for(lambda: len(read_marks(root)) >= 2, what="runs before the disk fills")
            filler = _fill(mnt)
            full_at = len(read_marks(root))
            d.wait_log("No space left on device", timeout=15)
            time.sleep(2)
            during = len(read_marks(root)) - full_at
            read_state(state_dir)  # still readable, whole
            assert d.alive(), d.text()[-2000:]
            filler.unlink()
            wait_for(lambda: len(read_marks(root)) >= full_at + during + 2, timeout=20, what="runs once there is room again")
            assert d.stop() == 0, d.text()[-2000:]
            text = d.text()
        marks, records = read_marks(root), read_records(state_dir)
        figure(f"full disk (tmpfs 256k): {len(marks)} runs, {during} started while full, duplicates {len(duplicates(marks, records))}")
        assert "Traceback" not in text and "internal error" not in text
        assert duplicates(marks, records) == []
        assert running_ids(read_state(state_dir)) == {}
        lost = [m for m in marks if records.runs.get(m.job, {}).get(m.run_id, {}).get("status") not in FINAL]
        assert lost == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_enospc_at_every_write_keeps_the_state_and_never_claims_a_run_twice(tmp_path, monkeypatch):
    """The same, in process, on a fake clock, for machines where no tmpfs can be
    mounted: every state write and history append fails with ENOSPC for a while."""
    from datetime import UTC, datetime, timedelta

    from engine_helpers import LocalEngine

    import cronfile.stores.file as store_mod

    root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
    t0 = datetime(2026, 3, 2, 10, 0, 0, 500000, tzinfo=UTC)
    full = {"on": False}
    real_write, real_append = store_mod.FileStore.write_bytes_atomic, store_mod._append_line

    def write(self, path, data):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(self, path, data)

    def append(path, record):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_append(path, record)

    monkeypatch.setattr(store_mod.FileStore, "write_bytes_atomic", write)
    monkeypatch.setattr(store_mod, "_append_line", append)
    with LocalEngine(root, t0) as eng:
        eng.step(t0 + timedelta(seconds=1))
        good = (root / ".cronfile" / "state.json").read_bytes()
        full["on"] = True
        for s in range(2, 5):
            with pytest.raises(store_mod.StateWriteError, match="No space left on device") as e:
                eng.step(t0 + timedelta(seconds=s))
            assert e.value.errno == errno.ENOSPC
            assert (root / ".cronfile" / "state.json").read_bytes() == good
        full["on"] = False
        for s in range(5, 8):
            eng.step(t0 + timedelta(seconds=s))
    marks, records = read_marks(root), read_records(root / ".cronfile")
    assert duplicates(marks, records) == []
    assert len(marks) == 4  # 1 before, none while full (nothing claimed), 3 after
    assert not [f for f in (root / ".cronfile").iterdir() if f.name.endswith(".tmp")]
