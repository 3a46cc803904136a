"""executors/procfs.py, the one /proc reader: a run's process group is found by its run
id (the engine's recovery of a run whose pid was never recorded) and only by it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from engine_helpers import wait_for

from cronfile.executors.process import group_alive
from cronfile.executors.procfs import GATE_NAME, all_stats, group_runs, run_group, run_spawned, stat

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


@pytest.fixture
def run_proc():
    env = {**os.environ, "CRONFILE_RUN_ID": "20260302T100000-beef"}
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], env=env, start_new_session=True)
    yield proc
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_a_runs_group_is_found_by_its_run_id_and_by_its_pid(run_proc):
    assert wait_for(lambda: run_group(None, "20260302T100000-beef"), what="the group by run id") == run_proc.pid
    assert run_group(run_proc.pid, "20260302T100000-beef") == run_proc.pid
    assert group_runs(run_proc.pid, "20260302T100000-beef")
    assert not group_runs(run_proc.pid, "20260302T100000-dead")  # a reused pid is not ours
    assert run_group(None, "20260302T100000-dead") is None
    st = stat(run_proc.pid)
    assert st is not None and st.pgid == st.sid == run_proc.pid
    assert any(s.pid == run_proc.pid for s in all_stats())


def test_a_group_that_is_gone_runs_nothing(run_proc):
    assert group_alive(run_proc.pid)
    os.killpg(run_proc.pid, signal.SIGKILL)
    run_proc.wait()
    wait_for(lambda: not group_alive(run_proc.pid), what="the group to be gone")
    assert run_group(run_proc.pid, "20260302T100000-beef") is None


def test_a_run_counts_as_spawned_once_its_job_runs_not_while_parked_behind_its_gate():
    # How `cronfile logs` tells a run that started (its pid not recorded yet) from one
    # claimed ahead and parked: the gate of executors/process.py, let go by one line.
    from cronfile.executors.process import _GATE

    run_id = "20260302T100000-9f1c"  # (no other test's: pytest -n 2 runs them at once)
    assert not run_spawned(run_id)
    read, write = os.pipe()
    proc = subprocess.Popen(["/bin/sh", "-c", _GATE, GATE_NAME, "/bin/sh", "-c", "sleep 30"],
                            stdin=read, env={**os.environ, "CRONFILE_RUN_ID": run_id}, start_new_session=True)
    os.close(read)
    try:
        wait_for(lambda: stat(proc.pid) is not None, what="the gate")
        assert not run_spawned(run_id)
        os.write(write, b"\n")
        wait_for(lambda: run_spawned(run_id), what="the job let go by its gate")
    finally:
        os.close(write)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # (The job's `sleep`, a child of its shell, may die a moment after the shell is
    # reaped: a SIGKILL is delivered, not waited for. Seen once in CI.)
    wait_for(lambda: not run_spawned(run_id), what="the killed job gone")
