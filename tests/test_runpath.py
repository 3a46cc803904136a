"""What the engine remembers between runs to spend less per run (issue 17, round 5) must
not change what a run records: a job's log folder made once per process, a log's kept
path without a stat once the folder is known, a run cgroup seen empty not read again."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine_helpers import LocalEngine, write_job

from cronfile.stores.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def _repo_behind_a_symlink(tmp_path: Path) -> Path:
    # The record's log_path is the folder with symlinks resolved: a repo reached through
    # a symlink shows whether a path kept from an earlier run is still the resolved one.
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    return link


def test_every_run_of_a_job_records_its_resolved_log_path_and_a_removed_folder_is_made_again(tmp_path):
    repo = _repo_behind_a_symlink(tmp_path)
    write_job(repo, "quiet", 'schedule: "* * * * * *"\nshell: "true"\n')
    write_job(repo, "loud", 'schedule: "* * * * * *"\nshell: echo hello\n')
    runs = tmp_path / "real" / ".cronfile" / "runs"
    with LocalEngine(repo, T0) as eng:
        eng.step(T0 + timedelta(seconds=1))
        eng.step(T0 + timedelta(seconds=2))
        # Removed between two runs (the engine made it once and remembers it): the
        # next run makes it again, 0700, and its output is kept.
        shutil.rmtree(runs / "quiet")
        shutil.rmtree(runs / "loud")
        eng.step(T0 + timedelta(seconds=3))
        quiet, loud = eng.history("quiet"), eng.history("loud")
    assert [r["status"] for r in quiet] == ["success"] * 3, quiet
    assert [r["status"] for r in loud] == ["success"] * 3, loud
    for r in quiet:
        assert r["log_path"] == os.path.join(str(runs.resolve()), "quiet", f"{r['run_id']}.log"), r
        assert not Path(r["log_path"]).exists()  # silent: never made
    for r in loud:
        assert r["log_path"] == os.path.join(str(runs.resolve()), "loud", f"{r['run_id']}.log"), r
    assert Path(loud[-1]["log_path"]).read_bytes() == b"hello\n"
    for job in ("quiet", "loud"):
        assert stat.S_IMODE((runs / job).stat().st_mode) == 0o700


def test_keep_log_once_the_folder_is_known_still_tells_a_missing_log_and_truncates_to_the_limit(tmp_path):
    store = SqliteStore(tmp_path / ".cronfile")
    store.ensure()
    first = store.log_file("j", "r1")
    first.write_bytes(b"x" * 100)
    assert store.keep_log("j", "r1", empty=True) == str(first.resolve())  # the folder now known
    # A run that made no log and says it has none: None, as before.
    assert store.keep_log("j", "r2") is None
    # One that was never made but started (empty): its path all the same.
    assert store.keep_log("j", "r3", empty=True) == os.path.join(str(first.parent.resolve()), "r3.log")
    # A limit is still applied to a log that exists.
    assert store.keep_log("j", "r1", limit=10, empty=True) == str(first.resolve())
    assert first.read_bytes() == b"x" * 10


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_run_that_leaves_a_process_behind_has_it_stopped_and_its_box_removed(tmp_path):
    # The run's cgroup seen empty once its processes are stopped is removed without
    # being read again; one that still holds a process is emptied first (contain.py).
    pidfile = tmp_path / "bg.pid"
    write_job(tmp_path, "bg", f'schedule: "* * * * * *"\nshell: "sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}"\n')
    with LocalEngine(tmp_path, T0) as eng:
        eng.step(T0 + timedelta(seconds=1))
        [run] = eng.history("bg")
    assert run["status"] == "success", run
    assert not _running(int(pidfile.read_text())), "the run's background process outlived it"
    from cronfile.executors.contain import containment

    c = containment(dict(os.environ))
    if c.mechanism == "cgroup2" and c.cgroup_base is not None:
        assert not (Path(c.cgroup_base) / f"cronfile-run.{run['run_id']}").exists()
