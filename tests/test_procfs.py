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
from cronfile.executors.procfs import all_stats, group_runs, run_group, stat

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
