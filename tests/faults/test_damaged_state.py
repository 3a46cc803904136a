"""Damaged state: a truncated or hand-broken state.db (and an older cronfile's broken
state.json), a missing or read-only state dir, a full disk (a small tmpfs where this
machine lets us mount one, else ENOSPC injected at the write), and state.db broken under
a running daemon. Clear errors, the previous state intact, and no run claimed twice
afterwards."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

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


def _sql(statement: str) -> object:
    def run(p: Path) -> None:
        with sqlite3.connect(p) as conn:
            conn.execute(statement)
        conn.close()

    return run


BREAKS = {
    "truncated": _truncate,
    "empty": lambda p: p.write_bytes(b""),
    "not-a-database": lambda p: p.write_bytes(b"{this is not a database}" * 200),
    "future-schema": _sql("PRAGMA user_version = 99"),
    "future-version": _sql("""UPDATE head SET body = replace(body, '"version":1', '"version":99')"""),
    "wrong-types": _sql("""UPDATE jobs SET body = replace(body, '"running":[]', '"running":5')"""),
    "missing-field": _sql("""UPDATE jobs SET body = replace(body, '"spec_hash"', '"spec_hush"')"""),
    "not-json": _sql("UPDATE jobs SET body = '{this is not json'"),
}
COMMANDS = [["status"], ["diff"], ["apply"], ["tick"], ["run", "beat"], ["history", "beat"], ["daemon"]]


def _db_files(state_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state_dir.glob("state.db*"))}


@pytest.mark.parametrize("how", list(BREAKS), ids=list(BREAKS))
def test_a_broken_state_db_is_one_clear_error_and_stays_as_it_was(applied, how):
    state_dir = applied / ".cronfile"
    BREAKS[how](state_dir / "state.db")
    broken = _db_files(state_dir)
    for args in COMMANDS:
        res = cli(applied, *args, timeout=20)
        lines = res.err.strip().splitlines()
        if args == ["history", "beat"] and res.code == 0:
            assert "Traceback" not in res.err  # the history table is whole: it reads
            continue
        assert res.code == 2, (args, res.code, res.err)
        assert len(lines) == 1 and "state.db" in lines[0] and "Traceback" not in res.err, (args, res.err)
        assert _db_files(state_dir) == broken, f"{args}: the broken file was touched"
    assert not read_marks(applied), "something ran from a broken state"


LEGACY_BREAKS = {
    "not-json": lambda p: p.write_text("{this is not json"),
    "future-version": lambda p: p.write_text('{"version": 99, "jobs": {}}'),
    "not-utf8": lambda p: p.write_bytes(b"\xff\xfe{}"),
}


@pytest.mark.parametrize("how", list(LEGACY_BREAKS), ids=list(LEGACY_BREAKS))
def test_an_older_cronfiles_broken_state_json_is_one_clear_error_and_is_not_imported(tmp_path, how):
    root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
    state_dir = root / ".cronfile"
    state_dir.mkdir(mode=0o700)
    LEGACY_BREAKS[how](state_dir / "state.json")
    broken = (state_dir / "state.json").read_bytes()
    for args in (["status"], ["apply"], ["tick"], ["daemon"]):
        res = cli(root, *args, timeout=20)
        lines = res.err.strip().splitlines()
        assert res.code == 2, (args, res.code, res.err)
        assert len(lines) == 1 and "state.json" in lines[0] and "Traceback" not in res.err, (args, res.err)
        assert (state_dir / "state.json").read_bytes() == broken
        assert not (state_dir / "state.db").exists()
    assert not read_marks(root)


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
        good = _db_files(mnt / "state")
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
        assert _db_files(mnt / "state") == good
        assert not read_marks(root)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_state_db_broken_under_a_running_daemon_is_never_overwritten_nor_reclaimed(applied):
    db = applied / ".cronfile" / "state.db"
    with DaemonProc(applied, tag="broken") as d:
        d.wait_log("cronfile daemon")
        wait_for(lambda: len(read_marks(applied)) >= 2, what="runs before the damage")
        # Broken in one transaction between two of the daemon's: the head row (the
        # state's own fields) no longer decodes, and the change counter moves on so
        # that a reader does read it again.
        conn = sqlite3.connect(db, timeout=10, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        good = conn.execute("SELECT body FROM head").fetchone()[0]
        conn.execute("UPDATE head SET body = '{ broken by hand', seq = seq + 1")
        conn.execute("COMMIT")
        conn.close()
        code = d.wait(20)
        text = d.text()
    assert code == 2, f"the daemon went on with an unreadable state (exit {code}):\n{text[-2000:]}"
    assert "Traceback" not in text
    assert "state.db: malformed state" in text or "state.db is not a readable" in text, text[-2000:]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT body FROM head").fetchone()[0] == "{ broken by hand"
    conn.close()
    # The user restores the good row; a new daemon takes over from it.
    n = len(read_marks(applied))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE head SET body = ?, seq = seq + 1", (good,))
    conn.close()
    with DaemonProc(applied, tag="restored") as d:
        d.wait_log("cronfile daemon")
        wait_for(lambda: len(read_marks(applied)) >= n + 2, what="runs after the restore")


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
        assert running_ids(read_state(state_dir)) == {}, text[-6000:]
        lost = [m for m in marks if records.runs.get(m.job, {}).get(m.run_id, {}).get("status") not in FINAL]
        assert lost == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_enospc_at_every_write_keeps_the_state_and_never_claims_a_run_twice(tmp_path, monkeypatch):
    """The same, in process, on a fake clock, for machines where no tmpfs can be
    mounted: every state write and history append fails with ENOSPC for a while."""
    from datetime import UTC, datetime, timedelta

    from engine_helpers import LocalEngine

    import cronfile.stores.sqlite as sqlite_mod
    from cronfile.errors import StateWriteError

    root = make_repo(tmp_path / "repo", beat(tmp_path / "repo"))
    t0 = datetime(2026, 3, 2, 10, 0, 0, 500000, tzinfo=UTC)
    full = {"on": False}
    real_write, real_writing = sqlite_mod.SqliteStore._write, sqlite_mod.SqliteStore._writing

    def disk_full() -> sqlite3.OperationalError:
        e = sqlite3.OperationalError("database or disk is full")
        e.sqlite_errorname = "SQLITE_FULL"  # as SQLite sets it
        return e

    def write(self, conn, memo, state):
        if full["on"]:
            raise disk_full()
        return real_write(self, conn, memo, state)

    def writing(self):
        if full["on"]:
            raise disk_full()
        return real_writing(self)

    monkeypatch.setattr(sqlite_mod.SqliteStore, "_write", write)
    monkeypatch.setattr(sqlite_mod.SqliteStore, "_writing", writing)
    with LocalEngine(root, t0) as eng:
        eng.step(t0 + timedelta(seconds=1))
        good = read_state(root / ".cronfile")
        full["on"] = True
        for s in range(2, 5):
            with pytest.raises(StateWriteError, match="No space left on device") as e:
                eng.step(t0 + timedelta(seconds=s))
            assert e.value.errno == errno.ENOSPC
            assert read_state(root / ".cronfile") == good
        full["on"] = False
        for s in range(5, 8):
            eng.step(t0 + timedelta(seconds=s))
    marks, records = read_marks(root), read_records(root / ".cronfile")
    assert duplicates(marks, records) == []
    assert len(marks) == 4  # 1 before, none while full (nothing claimed), 3 after
    assert not [f for f in (root / ".cronfile").iterdir() if f.name.endswith(".tmp")]
