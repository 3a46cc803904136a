"""SIGTERM and SIGINT stop the daemon and `cronfile run` whichever of their threads the
kernel gives the signal to (cronfile/signals.py).

The kernel delivers a signal sent to a process to any thread that does not block it; a
Python handler runs only in the main thread, and a main thread asleep in a timed wait did
not see a signal another thread had taken until the wait ended: the daemon sleeps up to a
minute at a time, so a SIGTERM taken by a run's thread was ignored for the 40 s a test
waited (once in about 30 runs of two tests of tests/test_contain.py, two workers). Here
each signal is sent to one chosen thread with tgkill(2), so the test does not depend on
the kernel's choice."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT, cronfile
from engine_helpers import Daemon, history, wait_for, write_job

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tgkill(2) and /proc/PID/task are Linux's")


def tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {sig})")


def threads(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def asleep(pid: int, tid: int) -> bool:
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "S"


def other_threads(pid: int, at_least: int) -> list[int]:
    """The process's threads other than its main one, once there are ``at_least``."""
    return wait_for(lambda: [t for t in threads(pid) if t != pid][:at_least] if len(threads(pid)) > at_least else None, timeout=10, what=f"{at_least} threads besides the main one")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_daemon_stops_on_a_signal_another_thread_took(tmp_path, sig):
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    write_job(tmp_path, "bg", 'schedule: "@reboot"\nshell: "sleep 300"\n')
    with Daemon(tmp_path) as d:
        d.wait_log(r"bg run \w+ started")
        pid = d.proc.pid
        (tid,) = other_threads(pid, 1)
        # The main thread asleep (its loop waits up to a minute for the next instant):
        # a Python handler could not run there until that wait ended.
        wait_for(lambda: asleep(pid, pid), timeout=10, what="the daemon's loop to sleep")
        tgkill(pid, tid, sig)
        assert d.proc.wait(15) == 0, d.text()
        assert f"received {signal.Signals(sig).name}" in d.text()
    (run,) = history(tmp_path, "bg")
    assert run["status"] == "interrupted"


def test_each_of_the_daemons_threads_can_take_the_sigterm(tmp_path):
    """Whichever thread takes it (the watcher, a run's, the output loop, the flusher...)."""
    write_job(tmp_path, "bg", 'schedule: "@reboot"\nshell: "sleep 300"\n')
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    for n in range(4):
        with Daemon(tmp_path) as d:
            d.wait_log(r"bg run \w+ started")
            pid = d.proc.pid
            tid = other_threads(pid, 4)[n]
            tgkill(pid, tid, signal.SIGTERM)
            assert d.proc.wait(15) == 0, d.text()
    assert [r["status"] for r in history(tmp_path, "bg")] == ["interrupted"] * 4


def test_cronfile_run_stops_on_a_sigterm_another_thread_took(tmp_path):
    # `cronfile run` waits for its process with no timeout: before, a SIGTERM another
    # thread took was not seen until the job ended (a pod's PID 1 ignored it).
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "long.yaml").write_text('schedule: "@daily"\nshell: "echo started; sleep 300"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "cronfile", "run", "long"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "started\n"
        (tid,) = other_threads(proc.pid, 1)
        wait_for(lambda: asleep(proc.pid, proc.pid), timeout=10, what="`cronfile run` to wait for its process")
        tgkill(proc.pid, tid, signal.SIGTERM)
        assert proc.wait(15) == 1, proc.stderr.read()
        assert "received SIGTERM: stopped the run" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    (run,) = json.loads(cronfile("history", "long", "--json", cwd=tmp_path).stdout)
    assert run["status"] == "interrupted"
