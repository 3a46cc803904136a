"""A run's log is made at its first byte (cronfile/runlog.py): what users see of a run
that printed nothing is what it was when every run's log was made at its start."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, LocalEngine, history, read_state, wait_for, write_job

from cronfile.runlog import LazyLog, open_log


def _logs_dir(repo: Path, job: str) -> Path:
    return repo / ".cronfile" / "runs" / job


def _history(repo: Path, job: str) -> list[dict]:
    res = cronfile("history", job, "--json", cwd=repo)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _daemon_runs(repo: Path, job: str, count: int, timeout: float = 30.0) -> list[dict]:
    return wait_for(lambda: [r for r in history(repo, job) if r.get("started_at")][count - 1 :] and history(repo, job),
                    timeout, what=f"{count} runs of {job}")


def test_a_silent_run_has_no_file_but_logs_history_and_status_read_as_before(tmp_path):
    write_job(tmp_path, "quiet", 'schedule: "* * * * * *"\nshell: "true"\n')
    write_job(tmp_path, "loud", 'schedule: "* * * * * *"\nshell: echo hello\n')
    with Daemon(tmp_path) as d:
        _daemon_runs(tmp_path, "quiet", 1)
        _daemon_runs(tmp_path, "loud", 1)
        d.stop()
    quiet = _history(tmp_path, "quiet")[0]
    loud = _history(tmp_path, "loud")[0]
    assert quiet["status"] == "success" and quiet["attempts"] == 1 and quiet["output_bytes"] == 0
    # The record names its log as any run's: the same folder, <run id>.log.
    state_runs = os.path.realpath(tmp_path / ".cronfile" / "runs")
    assert quiet["log_path"] == os.path.join(state_runs, "quiet", f"{quiet['run_id']}.log")
    assert loud["log_path"] == os.path.join(state_runs, "loud", f"{loud['run_id']}.log")
    assert not Path(quiet["log_path"]).exists()  # never made: nothing was written
    assert Path(loud["log_path"]).read_bytes() == b"hello\n"
    for args in (["logs", "quiet"], ["logs", "quiet", quiet["run_id"]], ["logs", "quiet", quiet["run_id"][-4:]]):
        res = cronfile(*args, cwd=tmp_path)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", ""), args
    res = cronfile("logs", "loud", loud["run_id"], cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "hello\n")
    res = cronfile("status", "--json", cwd=tmp_path)
    assert res.returncode == 0 and '"quiet"' in res.stdout


def test_a_manual_run_makes_its_log_at_once_so_logs_finds_it_in_flight(tmp_path):
    (tmp_path / "jobs.d").mkdir()  # not applied: no state entry names the run
    (tmp_path / "jobs.d" / "j.yaml").write_text('schedule: "@daily"\nshell: "true"\n')
    assert cronfile("run", "j", "-q", cwd=tmp_path).returncode == 0
    [run] = _history(tmp_path, "j")
    assert Path(run["log_path"]).read_bytes() == b""
    res = cronfile("logs", "j", cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_logs_of_a_silent_run_in_flight_print_nothing_not_the_previous_run(tmp_path):
    write_job(tmp_path, "j", 'schedule: "* * * * * *"\nshell: |\n'
              "  [ -f quiet ] || { echo loud; touch quiet; exit 0; }\n"
              "  touch started\n"
              "  while [ ! -f go ]; do sleep 0.02; done\n")
    with Daemon(tmp_path) as d:
        # (the job runs in the repo root: quiet, started and go are files there)
        try:
            wait_for(lambda: (tmp_path / "started").exists(), 30, what="the silent run to start")
            res = cronfile("logs", "j", cwd=tmp_path)
            assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
            logs = list(_logs_dir(tmp_path, "j").glob("*.log"))
            assert len(logs) == 1 and logs[0].read_bytes() == b"loud\n"  # the first run's only
        finally:
            (tmp_path / "go").touch()
        _daemon_runs(tmp_path, "j", 3)
        d.stop()
    runs = [r for r in _history(tmp_path, "j") if r.get("started_at")]
    assert runs[0]["status"] == "success" and Path(runs[0]["log_path"]).read_bytes() == b"loud\n"
    assert all(r["log_path"] and not Path(r["log_path"]).exists() for r in runs[1:])
    res = cronfile("logs", "j", cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "")
    res = cronfile("logs", "j", runs[0]["run_id"], cwd=tmp_path)
    assert (res.returncode, res.stdout) == (0, "loud\n")


def test_pruning_drops_old_runs_with_their_logs_silent_or_not(tmp_path):
    (tmp_path / "cronfile.yaml").write_text("history_limit: 2\n")
    # loud on even seconds, silent on odd ones
    write_job(tmp_path, "j", 'schedule: "* * * * * *"\nshell: "[ $(( $(date +%s) % 2 )) = 1 ] || echo loud"\n')
    with Daemon(tmp_path) as d:
        d.wait_log(r"run \S+ success in", timeout=30, count=6)
        d.stop()
    runs = _history(tmp_path, "j")
    kept = {r["run_id"] for r in runs}
    assert len(kept) == 2
    files = {p.stem for p in _logs_dir(tmp_path, "j").glob("*.log")}
    assert files <= kept  # the dropped runs' logs went with them, loud ones included
    for r in runs:
        res = cronfile("logs", "j", r["run_id"], cwd=tmp_path)
        assert res.returncode == 0 and res.stdout == ("loud\n" if r["run_id"] in files else "")


def test_a_lazy_log_is_made_0600_at_its_first_byte_and_refuses_writes_once_closed(tmp_path):
    path = tmp_path / "runs" / "j" / "r.log"
    log = open_log(path)
    assert path.parent.is_dir() and not path.exists()
    assert log.write(b"") == 0 and not path.exists() and not log.created
    log.flush()
    assert log.write(b"one\n") == 4 and log.created
    assert path.read_bytes() == b"one\n"  # nothing buffered: readable while the run goes on
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    log.write(b"two\n")
    log.close()
    assert path.read_bytes() == b"one\ntwo\n"
    with pytest.raises(ValueError):
        log.write(b"late")
    empty = LazyLog(tmp_path / "never.log")
    with empty:
        pass
    assert not (tmp_path / "never.log").exists() and not empty.created


def test_a_log_folder_that_cannot_be_written_fails_the_run_before_it_starts(tmp_path):
    if os.geteuid() == 0:
        # root writes anywhere; the check is access(2), so prove it with a file in the way
        (tmp_path / "runs").write_text("not a folder")
        with pytest.raises(OSError):
            open_log(tmp_path / "runs" / "j" / "r.log")
        return
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(PermissionError):
        open_log(tmp_path / "ro" / "r.log")


T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def test_a_log_that_cannot_be_made_at_its_first_byte_fails_the_run_and_records_no_log(tmp_path):
    # The folder is there (and writable) when the run starts; the job removes it before
    # it prints, so the file cannot be made at the first byte (ENOENT, root or not).
    folder = _logs_dir(tmp_path, "j")
    write_job(tmp_path, "j", f'schedule: "* * * * * *"\nshell: rm -rf "{folder}" && echo hello world\n')
    with LocalEngine(tmp_path, T0) as eng:
        eng.step(T0 + timedelta(seconds=1))
        [run] = eng.history("j")
    log = f"{run['run_id']}.log"
    assert run["status"] == "failed" and run["attempts"] == 1, run
    assert run["message"].startswith("cannot open the run's log ") and run["message"].endswith(f"{log}: No such file or directory"), run
    assert run["log_path"] is None  # not an empty log: the output was lost
    assert not (folder / log).exists()
    res = cronfile("logs", "j", cwd=tmp_path)
    assert res.returncode == 0 and "cannot open the run's log" in res.stderr + res.stdout, (res.stdout, res.stderr)


def test_a_lazy_log_keeps_its_first_failure_and_writes_no_more_after_it(tmp_path):
    # A failed open is not retried at the next chunk (EMFILE in the shared output
    # thread, a folder made again): the log would have a hole in it.
    path = tmp_path / "runs" / "j" / "r.log"
    log = open_log(path)
    shutil.rmtree(path.parent)
    with pytest.raises(FileNotFoundError):
        log.write(b"one\n")
    assert log.problem == f"cannot open the run's log {path}: No such file or directory"
    path.parent.mkdir()
    with pytest.raises(OSError) as e:
        log.write(b"two\n")
    assert e.value.errno == errno.ENOENT and not path.exists() and not log.created
    log.close()
    # A write that fails once the file exists: a full device, for real.
    full = LazyLog(Path("/dev/full"))
    with pytest.raises(OSError) as e:
        full.write(b"hello\n")
    assert e.value.errno == errno.ENOSPC and full.created
    assert full.problem == "cannot write the run's log /dev/full: No space left on device"
    with pytest.raises(OSError):
        full.write(b"more\n")
    full.close()
    fine = LazyLog(tmp_path / "fine.log")
    with fine:
        fine.write(b"ok\n")
    assert fine.problem is None


def test_logs_of_the_latest_run_skip_a_run_claimed_but_not_started(tmp_path):
    # One slot: `hold` takes it once `b` has run, and keeps it until `go` exists, so
    # `b`'s next run is claimed (an entry in the state) and waits for the slot.
    (tmp_path / "cronfile.yaml").write_text("max_concurrent: 1\n")
    write_job(tmp_path, "b", 'schedule: "* * * * * *"\nshell: echo hi-from-B; touch b-ran\n')
    write_job(tmp_path, "hold", 'schedule: "* * * * * *"\nshell: |\n'
              "  [ -f b-ran ] || exit 0\n"
              "  touch held\n"
              "  while [ ! -f go ]; do sleep 0.02; done\n")
    with Daemon(tmp_path) as d:
        try:
            def waiting() -> list[dict]:
                running = read_state(tmp_path)["jobs"]["b"]["running"]
                # ... and an instant after it recorded skipped (concurrency: forbid)
                skipped = any(r["status"] == "skipped" for r in history(tmp_path, "b"))
                return (tmp_path / "held").exists() and skipped and [r for r in running if r["pid"] is None]

            [claimed] = wait_for(waiting, 30, what="a run of b claimed while hold has the slot, one skipped")
            recorded = [r["run_id"] for r in history(tmp_path, "b") if r.get("started_at")]
            assert recorded and claimed["run_id"] > recorded[-1]
            res = cronfile("logs", "b", cwd=tmp_path)
            assert (res.returncode, res.stdout, res.stderr) == (0, "hi-from-B\n", "")
            from cronfile.mcp_server import McpSettings, Tools
            from cronfile.stores.sqlite import SqliteStore

            tool = Tools(tmp_path, SqliteStore(tmp_path / ".cronfile"), McpSettings()).job_logs("b")
            assert (tool["run_id"], tool["output"]) == (recorded[-1], "hi-from-B\n")
            assert read_state(tmp_path)["jobs"]["b"]["running"][0]["run_id"] == claimed["run_id"]  # still waiting
        finally:
            (tmp_path / "go").touch()
        d.stop()
