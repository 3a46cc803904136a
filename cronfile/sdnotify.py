"""systemd's notify protocol, spoken directly (no dependency): one datagram per message
on the AF_UNIX socket named by ``NOTIFY_SOCKET`` (sd_notify(3)).

- ``READY=1`` once the daemon applied the files and watches them (``Type=notify``: the
  unit counts as started only then, so ``systemctl start`` returns when jobs can fire).
- ``STATUS=`` after each pass: the job count and the next fire, shown by
  ``systemctl status``.
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` (``WatchdogSec=``), only while the engine
  loop is alive (``health.Health``): a stuck loop stops the pings and systemd restarts
  the daemon. ``WATCHDOG_PID``, when set, must be ours (sd_watchdog_enabled(3)).
- ``STOPPING=1`` when SIGTERM arrives: the daemon then waits ``shutdown_grace`` for runs.

The variables are taken out of the environment once read, like sd_notify's
``unset_environment``: jobs' processes must not inherit them (a job that sent READY=1
would confuse the service manager).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from .observe import Observer
from .state import JobStatus

__all__ = ["Notifier", "from_environ", "send"]

ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def send(address: str, message: str) -> None:
    """One datagram to the notify socket. An address starting with ``@`` is in the
    abstract namespace (a leading NUL byte), as systemd passes it."""
    addr = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(message.encode())


class Notifier(Observer):
    """The notify protocol as an engine observer."""

    def __init__(self, address: str, *, watchdog_usec: int | None = None, alive: Callable[[], str | None] | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._alive = alive  # returns why the loop is not alive, or None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._said_error = False
        self._last_status = ""

    def _send(self, message: str) -> None:
        try:
            send(self.address, message)
        except OSError as e:
            if not self._said_error:
                self._said_error = True
                print(f"cronfile: cannot notify systemd at {self.address}: {e.strerror or e}", file=sys.stderr, flush=True)

    # -- hooks ---------------------------------------------------------------------------

    def ready(self, state: Any, at: datetime) -> None:
        self._send(f"READY=1\nSTATUS={status_text(state, at)}\nMAINPID={os.getpid()}")
        if self.watchdog_usec and self._thread is None:
            self._thread = threading.Thread(target=self._watchdog, name="sd-watchdog", daemon=True)
            self._thread.start()

    def pass_done(self, state: Any, now: datetime, wake: datetime) -> None:
        text = status_text(state, now)
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def pass_failed(self, reason: str, now: datetime, retry: datetime) -> None:
        self._last_status = f"cannot claim runs: {reason}"
        self._send(f"STATUS={self._last_status}")

    def stopping(self) -> None:
        self._stop.set()
        self._send("STOPPING=1\nSTATUS=stopping: waiting for runs in flight")

    # -- the watchdog ----------------------------------------------------------------------

    def _watchdog(self) -> None:
        interval = max(self.watchdog_usec or 0, 1000) / 2e6  # half WATCHDOG_USEC, in seconds
        while not self._stop.is_set():
            why = self._alive() if self._alive is not None else None
            if why is None:
                self._send("WATCHDOG=1")
            if self._stop.wait(interval):
                return


def status_text(state: Any, now: datetime) -> str:
    """``3 jobs; next: backup at 2026-12-06T05:07:00+01:00`` (in the job's time zone)."""
    jobs = state.jobs
    n = len(jobs)
    scheduled = [(js.next_run, name, js) for name, js in jobs.items() if js.state is JobStatus.scheduled and js.next_run is not None]
    head = f"{n} job{'s' if n != 1 else ''}"
    if not scheduled:
        return head + "; nothing scheduled"
    when, name, js = min(scheduled, key=lambda t: (t[0], t[1]))
    zone = js.spec.get("timezone") if isinstance(js.spec, dict) else None
    try:
        from zoneinfo import ZoneInfo

        local = when.astimezone(ZoneInfo(zone)) if zone else when.astimezone(UTC)
    except Exception:  # noqa: BLE001 - a zone the state names but this host lacks
        local = when.astimezone(UTC)
    return f"{head}; next: {name} at {local.isoformat(timespec='seconds')}"


def from_environ(environ: MutableMapping[str, str], *, alive: Callable[[], str | None] | None = None) -> Notifier | None:
    """A Notifier when systemd gave us a socket (None otherwise); the variables are
    removed from ``environ`` either way."""
    values = {k: environ.pop(k, None) for k in ENV_KEYS}
    address = values["NOTIFY_SOCKET"]
    if not address:
        return None
    usec: int | None = None
    try:
        usec = int(values["WATCHDOG_USEC"] or 0) or None
    except ValueError:
        usec = None
    pid = values["WATCHDOG_PID"]
    if pid and pid.strip() != str(os.getpid()):
        usec = None  # the watchdog is meant for another process
    return Notifier(address, watchdog_usec=usec, alive=alive)
