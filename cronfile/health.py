"""Is the daemon healthy? The answer behind ``/healthz`` and systemd's watchdog.

Healthy means two things, each checked on its own so the reason can be named:

- The engine loop is alive. The loop tells (``pass_done``) when it finished a pass and
  until when it sleeps; it sleeps at most an hour and wakes early on any event or clock
  jump. So the loop is stuck when it is past its wake time (plus ``SLACK``) without a
  new pass: a deadlock, a state.lock held for ever, a pass that never ends. Measured on
  the monotonic clock: a wall clock jump is not a stuck loop.
- The state is writable: the last pass could claim runs, and the store's probe write
  succeeds (``Store.write_problem``: for the state dir a probe file created, written and
  removed; it fails on a read-only or full file system, a removed or replaced state dir).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .observe import Observer

__all__ = ["SLACK", "Health"]

# How long past its planned wake the loop may be before it counts as stuck: a pass at
# 10,000 jobs takes well under a second; a reload of them a few seconds.
SLACK = 60.0


class Health(Observer):
    def __init__(self, write_problem: Callable[[], str | None], *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._write_problem = write_problem  # the store's probe (Store.write_problem)
        self._mono = monotonic
        self._lock = threading.Lock()
        self._deadline: float | None = None  # monotonic time by which a new pass is due
        self._ready = False
        self._stopping = False
        self._claim_error: str | None = None

    # -- hooks ---------------------------------------------------------------------------

    def ready(self, state: Any, at: datetime) -> None:
        with self._lock:
            self._ready = True
            # Until the first pass: it comes right after (the @reboot runs first).
            self._deadline = self._mono() + SLACK

    def pass_done(self, state: Any, now: datetime, wake: datetime) -> None:
        sleep = min(max(0.0, (wake - now).total_seconds()), 3600.0)
        with self._lock:
            self._deadline = self._mono() + sleep + SLACK
            self._claim_error = None

    def pass_failed(self, reason: str, now: datetime, retry: datetime) -> None:
        sleep = max(0.0, (retry - now).total_seconds())
        with self._lock:
            self._deadline = self._mono() + sleep + SLACK
            self._claim_error = reason

    def stopping(self) -> None:
        with self._lock:
            self._stopping = True

    # -- the checks ----------------------------------------------------------------------

    def loop_problem(self) -> str | None:
        """Why the engine loop is not alive, or None."""
        with self._lock:
            if self._stopping:
                return "the daemon is stopping"
            if not self._ready or self._deadline is None:
                return "the daemon is starting (the files are not applied yet)"
            late = self._mono() - self._deadline
            if late > 0:
                return f"the engine loop is stuck: no pass for {late + SLACK:.0f}s past its planned wake"
            return None

    def state_problem(self) -> str | None:
        """Why the state is not writable, or None."""
        with self._lock:
            claim = self._claim_error
        if claim is not None:
            return f"cannot claim runs: {claim}"
        return self._write_problem()

    def check(self) -> tuple[bool, list[str]]:
        """(healthy, the reasons it is not)."""
        reasons = [r for r in (self.loop_problem(), self.state_problem()) if r]
        return not reasons, reasons
