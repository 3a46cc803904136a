"""A run's exit seen by the shared output loop through a pidfd (executors/process.py,
_ExitWatch), and the wait as before where there is no pidfd."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from cronfile.executors import process
from cronfile.executors.base import Prepared
from cronfile.executors.process import spawn

needs_pidfd = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and hasattr(os, "pidfd_open")), reason="pidfd_open is Linux 5.3+"
)


def _spawn(tmp_path, script):
    log = open(tmp_path / "out.log", "ab")  # noqa: SIM115 - closed by the test
    proc = spawn(Prepared(["/bin/sh", "-c", script], tmp_path, dict(os.environ), None), log, output_limit=1 << 20)
    return proc, log


@needs_pidfd
def test_the_loop_reaps_a_runs_leader_and_wakes_its_waiter(tmp_path):
    proc, log = _spawn(tmp_path, "echo out; exit 3")
    try:
        assert proc._exit is not None
        assert proc.wait(10) == 3 and proc.returncode == 3
        # wait() may return once this thread's own poll reaped the leader, before the
        # loop has seen its pidfd: the loop sets exited soon after, not necessarily yet.
        assert proc._exit.exited.wait(10)
        proc.finish()
    finally:
        log.close()
    assert (tmp_path / "out.log").read_bytes() == b"out\n"


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no pidfd"])
def test_a_timeout_and_a_cancel_interrupt_the_wait_and_stop_ends_the_group(tmp_path, monkeypatch, pidfd):
    if pidfd and not (sys.platform.startswith("linux") and hasattr(os, "pidfd_open")):
        pytest.skip("pidfd_open is Linux 5.3+")
    if not pidfd:
        monkeypatch.setattr(process, "_PIDFD_OPEN", None)
    proc, log = _spawn(tmp_path, "sleep 30")
    try:
        assert (proc._exit is not None) is pidfd
        assert proc.wait(0.2) is None  # timed out: still running
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        assert proc.wait(30, cancel) is None
        proc.stop(2.0)
        assert proc.returncode == -signal.SIGTERM
    finally:
        log.close()


def test_without_a_pidfd_a_run_is_waited_for_as_before(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "_PIDFD_OPEN", None)
    proc, log = _spawn(tmp_path, "exit 7")
    try:
        assert proc._exit is None
        assert proc.wait(10) == 7
    finally:
        log.close()


@needs_pidfd
def test_many_runs_ending_together_are_each_seen_once(tmp_path):
    procs = []
    logs = []
    try:
        for i in range(30):
            p, log = _spawn(tmp_path, f"exit {i % 5}")
            procs.append(p)
            logs.append(log)
        assert [p.wait(20) for p in procs] == [i % 5 for i in range(30)]
        # (exited is set by the loop, maybe just after wait() returned: waited for)
        assert all(p._exit.exited.wait(10) for p in procs)
    finally:
        for log in logs:
            log.close()
