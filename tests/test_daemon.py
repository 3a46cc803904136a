"""The real daemon as a child process: it fires on time, survives SIGKILL without
running anything twice, shares a state dir with `tick`, follows edits, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, alive, history, read_state, wait_for, write_job

pytestmark = pytest.mark.slow

MARK = 'shell: echo "$CRONFILE_SCHEDULED_FOR $CRONFILE_RUN_ID" >> "{marks}"\n'


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    return tmp_path


def marks(path) -> list[str]:
    return [ln.split()[0] for ln in path.read_text().splitlines()] if path.exists() else []


def test_a_second_by_second_job_fires_every_second_on_time(repo):
    out = repo / "marks"
    write_job(repo, "tick", 'schedule: "* * * * * *"\n' + MARK.format(marks=out))
    with Daemon(repo) as d:
        lines = d.wait_log(r"tick run \w+ started \(schedule, \d+ ms late\)", timeout=20, count=6)
        d.stop()
    late = [int(re.search(r"(\d+) ms late", ln).group(1)) for ln in lines]
    seen = marks(out)
    assert len(seen) == len(set(seen)) >= 6  # each instant once
    stamps = sorted(seen)
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    runs = [h for h in history(repo, "tick") if h["status"] == "success"]
    assert len(runs) >= 6
    # Speed is bench/bench_firing.py's business, not a test's (a loaded CI host is slow).
    print(f"start lateness ms: median {statistics.median(late)}, max {max(late)}, n {len(late)}")


def test_sigkill_with_runs_in_flight_never_runs_an_instant_twice(repo):
    out = repo / "marks"
    pids = repo / "pids"
    write_job(
        repo,
        "slow",
        'schedule: "* * * * * *"\nconcurrency: allow\n'
        f'shell: echo "$CRONFILE_SCHEDULED_FOR $CRONFILE_RUN_ID" >> "{out}"; echo "$CRONFILE_RUN_ID $$" >> "{pids}"; sleep 30\n',
    )
    d = Daemon(repo)
    with d:
        wait_for(lambda: len(marks(out)) >= 3, timeout=20, what="three runs in flight")
        d.kill9()
    in_flight = {r["run_id"] for r in read_state(repo)["jobs"]["slow"]["running"]}
    assert len(in_flight) >= 3
    with Daemon(repo) as d2:
        d2.wait_log(r"interrupted \(its engine \w+ is gone; not re-run\)", count=len(in_flight))
        wait_for(lambda: len(marks(out)) >= len(in_flight) + 2, timeout=20, what="new runs after restart")
        d2.kill9()
    hist = {h["run_id"]: h for h in history(repo, "slow")}
    for rid in in_flight:
        assert hist[rid]["status"] == "interrupted"
    counts = Counter(marks(out))
    assert max(counts.values()) == 1, counts
    # The orphaned `sleep 30`s of the first daemon were stopped by the second.
    first = [int(pid) for rid, pid in (ln.split() for ln in pids.read_text().splitlines()) if rid in in_flight]
    assert first
    for pid in first:
        wait_for(lambda pid=pid: not alive(pid), timeout=15, what=f"leftover {pid} stopped")


def test_tick_beside_a_daemon_never_doubles_a_run(repo):
    out = repo / "marks"
    write_job(repo, "tick", 'schedule: "* * * * * *"\n' + MARK.format(marks=out))
    with Daemon(repo) as d:
        deadline = time.monotonic() + 5
        ticks = 0
        while time.monotonic() < deadline:
            res = cronfile("-C", str(repo), "tick", "-q")
            assert res.returncode in (0, 1), res.stderr
            ticks += 1
        d.stop()
    counts = Counter(marks(out))
    assert len(counts) >= 4 and max(counts.values()) == 1, counts
    assert ticks >= 2


def test_editing_a_job_while_the_daemon_runs(repo):
    write_job(repo, "edit", 'description: one\nschedule: "0 3 * * *"\nshell: "true"\n')
    with Daemon(repo) as d:
        before = read_state(repo)["jobs"]["edit"]["next_run"]
        write_job(repo, "edit", 'description: two\nschedule: "0 3 * * *"\nshell: "echo changed"\n')
        d.wait_log(r"edit update \(description, shell\)")
        assert read_state(repo)["jobs"]["edit"]["next_run"] == before  # kept exactly
        out = repo / "marks"
        write_job(repo, "edit", 'description: two\nschedule: "* * * * * *"\n' + MARK.format(marks=out))
        d.wait_log(r"edit update \(.*schedule.*\)")
        wait_for(lambda: marks(out), timeout=10, what="the new schedule to fire, without a restart")
        # An invalid edit is logged and the last good set keeps running.
        write_job(repo, "edit", 'schedule: "61 * * * *"\nshell: x\n')
        d.wait_log(r"keeping the last good set")
        d.wait_log(r"jobs.d/edit.yaml:1:11: schedule: ")
        n = len(marks(out))
        wait_for(lambda: len(marks(out)) >= n + 2, timeout=10, what="runs to go on after a bad edit")
        assert d.stop() == 0


def test_sigterm_waits_for_a_run_in_flight_then_exits_0(repo):
    write_job(repo, "slow", 'schedule: "* * * * * *"\nshell: "sleep 1; echo done"\nrepeat: 1\n')
    with Daemon(repo) as d:
        d.wait_log(r"slow run \w+ started")
        d.signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0
        assert "slow run" in d.text() and "success" in d.text()
    (h,) = history(repo, "slow")
    assert h["status"] == "success"


def test_sigterm_past_the_grace_stops_the_run_as_interrupted(repo):
    (repo / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    write_job(repo, "slow", 'schedule: "* * * * * *"\nshell: "sleep 60"\nrepeat: 1\n')
    with Daemon(repo) as d:
        d.wait_log(r"slow run \w+ started")
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
        assert time.monotonic() - started < 15
    (h,) = history(repo, "slow")
    assert h["status"] == "interrupted"
    assert read_state(repo)["jobs"]["slow"]["running"] == []


# Macros are case-insensitive (cronfile/schedule.py); the engine once compared the text
# with "@reboot", so an `@Reboot` job was valid and never ran.
@pytest.mark.parametrize("spelling", ["@reboot", "@Reboot", " @REBOOT "])
def test_reboot_jobs_run_once_per_daemon_start(repo, spelling):
    out = repo / "marks"
    write_job(repo, "boot", f'schedule: "{spelling}"\nshell: echo boot >> "{out}"\n')
    for n in (1, 2):
        with Daemon(repo) as d:
            d.wait_log(r"boot run \w+ success")
            assert d.stop() == 0
        assert len(out.read_text().split()) == n


def test_a_second_daemon_on_the_same_state_dir_exits_2_naming_the_first(repo):
    write_job(repo, "j", 'schedule: "@daily"\nshell: "true"\n')
    with Daemon(repo) as d:
        res = cronfile("-C", str(repo), "daemon")
        assert res.returncode == 2
        assert str(d.proc.pid) in res.stderr
        d.stop()


def test_a_job_cannot_start_a_daemon_or_apply(repo):
    write_job(repo, "j", 'schedule: "@daily"\nshell: "true"\n')
    for args in (["daemon"], ["apply"]):
        res = subprocess.run(
            [sys.executable, "-m", "cronfile", "-C", str(repo), *args],
            env={"CRONFILE_RUN_ID": "x", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("engine_helpers").ROOT)},
            capture_output=True,
            text=True,
        )
        assert res.returncode == 2 and "inside a cronfile run" in res.stderr


def test_a_queued_occurrence_starts_as_soon_as_the_run_before_it_ends(repo):
    # The daemon sleeps until its next instant; a run's end wakes it only when that end
    # lets something start (concurrency: queue). The queued run must start right after the
    # first one ends, not at the job's next instant 5 s later.
    out, release = repo / "marks", repo / "release"
    write_job(
        repo,
        "q",
        'schedule: "*/5 * * * * *"\nconcurrency: queue\n'
        f'shell: echo "$CRONFILE_SCHEDULED_FOR $(date +%s.%N)" >> "{out}"; '
        f'while [ ! -e "{release}" ]; do sleep 0.05; done\n',
    )
    with Daemon(repo) as d:
        wait_for(lambda: len(marks(out)) == 1, timeout=25, what="the first run")
        wait_for(lambda: (read_state(repo)["jobs"]["q"].get("queued") is not None), timeout=25, what="an occurrence queued behind it")
        queued = read_state(repo)["jobs"]["q"]["queued"]
        release.touch()
        wait_for(lambda: len(marks(out)) == 2, timeout=25, what="the queued run")
        d.stop()
    second = out.read_text().splitlines()[1].split()
    assert datetime.fromisoformat(second[0]) == datetime.fromisoformat(queued)  # not a later one
    runs = history(repo, "q")
    assert [h["trigger"] for h in runs[:2]] == ["schedule", "queued"]
    # It started before the job's next occurrence (queued + 5 s) would have woken the daemon.
    assert float(second[1]) < datetime.fromisoformat(queued).timestamp() + 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_runs_in_flight_do_not_get_a_thread_each(repo):
    # The daemon steps its runs on one thread (cronfile/steps.py): 24 runs in flight, a
    # few threads (the loop, the output loop, the runs', a volley's, timers).
    (repo / "cronfile.yaml").write_text("max_concurrent: 30\nshutdown_grace: 1s\n")
    for i in range(24):
        write_job(repo, f"j{i:02}", 'schedule: "* * * * * *"\nshell: echo $$; sleep 3\n')
    with Daemon(repo) as d:
        d.wait_log(r"run \w+ started", count=24, timeout=30)

        def in_flight() -> int:
            text = d.text()
            return len(re.findall(r"run \w+ started", text)) - len(re.findall(r"run \w+ (success|failed|interrupted)", text))

        wait_for(lambda: in_flight() >= 24, 20, what="24 runs in flight")
        threads = len(os.listdir(f"/proc/{d.proc.pid}/task"))
        flying = in_flight()
        d.stop()
    assert flying >= 24 and threads < 16, (flying, threads)
