"""systemd's notify protocol: a real AF_UNIX datagram socket handed to a spawned daemon
as NOTIFY_SOCKET, read as systemd would read it."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from engine_helpers import Daemon, history, read_state, wait_for, write_job

from cronfile.sdnotify import status_text


class NotifySocket:
    """The service manager's end: collects every datagram, one message each."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)  # drained between polls (wait_for)
        self.messages: list[dict[str, str]] = []

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def wait(self, key: str, value: str | None = None, count: int = 1, timeout: float = 20) -> list[dict[str, str]]:
        def found() -> list[dict[str, str]] | None:
            self._drain()
            hits = [m for m in self.messages if key in m and (value is None or m[key] == value)]
            return hits if len(hits) >= count else None

        return wait_for(found, timeout, what=f"{count} notify message(s) with {key}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    write_job(root, "yearly", 'schedule: "0 0 1 1 *"\ntimezone: Europe/Berlin\nshell: "true"\n')
    # Prints whether it inherited systemd's variables: it must not.
    write_job(root, "env", 'schedule: "every 1s"\nrepeat: 1\nshell: "echo notify=${NOTIFY_SOCKET:-none} watchdog=${WATCHDOG_USEC:-none}"\n')
    return root


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_the_daemon_says_ready_status_watchdog_and_stopping(repo, tmp_path, abstract):
    address = f"@cronfile-test-{os.getpid()}-{time.monotonic_ns()}" if abstract else str(tmp_path / "notify.sock")
    sd = NotifySocket(address)
    try:
        d = Daemon(repo, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
        with d:
            ready = sd.wait("READY", "1")[0]
            assert ready["MAINPID"] == str(d.proc.pid)
            assert ready["STATUS"].startswith("2 jobs; next: ")
            # READY=1 comes after the first reconcile: the jobs are in the state by then.
            assert {"yearly", "env"} <= set(read_state(repo)["jobs"])
            # Half of WATCHDOG_USEC: a ping every 0.1 s while the loop is alive.
            sd.wait("WATCHDOG", "1", count=5, timeout=10)
            wait_for(lambda: history(repo, "env"), 20, what="the env job's run")
            statuses = [m["STATUS"] for m in sd.wait("STATUS", count=1)]
            assert any("next: yearly at 2027-01-01T00:00:00+01:00" in s for s in statuses), statuses
            d.signal(signal.SIGTERM)
            stopping = sd.wait("STOPPING", "1")[0]
            assert stopping["STATUS"].startswith("stopping")
            assert d.proc.wait(30) == 0
        log = Path(history(repo, "env")[-1]["log_path"]).read_text()
        assert log.strip() == "notify=none watchdog=none"
    finally:
        sd.close()


def test_without_notify_socket_nothing_is_sent_and_all_runs(repo):
    with Daemon(repo) as d:
        wait_for(lambda: history(repo, "env"), 20, what="the env job's run")
    assert "cannot notify" not in d.text()


def test_a_watchdog_meant_for_another_pid_is_not_pinged(repo, tmp_path):
    sd = NotifySocket(str(tmp_path / "notify.sock"))
    try:
        with Daemon(repo, env={"NOTIFY_SOCKET": sd.address, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}):
            sd.wait("READY", "1")
            # Wait for a few passes' worth of STATUS, then check no ping came.
            wait_for(lambda: history(repo, "env"), 20, what="the env job's run")
            sd._drain()
            assert not [m for m in sd.messages if "WATCHDOG" in m]
    finally:
        sd.close()


def test_status_text_names_the_count_and_the_next_fire():
    from datetime import UTC, datetime

    from cronfile.state import JobState, JobStatus, State

    now = datetime(2026, 6, 1, tzinfo=UTC)

    def job(next_run: datetime | None, tz: str) -> JobState:
        return JobState(spec={"schedule": "x", "timezone": tz}, spec_hash="h", schedule_sig="s", created_at=now, state=JobStatus.scheduled, next_run=next_run)

    state = State(jobs={"a": job(datetime(2026, 6, 2, 7, tzinfo=UTC), "Europe/Berlin"), "b": job(datetime(2026, 6, 1, 9, tzinfo=UTC), "UTC")})
    assert status_text(state, now) == "2 jobs; next: b at 2026-06-01T09:00:00+00:00"
    assert status_text(State(), now) == "0 jobs; nothing scheduled"
