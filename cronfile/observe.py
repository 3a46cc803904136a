"""What the engine tells the world about itself: the seam between the engine and its
observers (metrics, the health check, the status page, systemd's notify protocol).

The engine calls these hooks at fixed points of its life; it never imports what listens.
``Observer`` does nothing, so an engine without observers (tick, ``run NAME``, the
tests) pays a method call per hook. ``Observers`` hands each hook to several; a failing
observer is reported once on stderr and never stops the engine.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["Observer", "Observers"]


class Observer:
    """Every hook the engine calls, as no-ops. Times are aware datetimes (the engine's
    clock). Hooks run on the engine's threads, some under state.lock: keep them quick."""

    def applied(self, plan: Any, revision: str | None, at: datetime) -> None:
        """The files were reconciled into the state (the plan may have no changes)."""

    def ready(self, state: Any, at: datetime) -> None:
        """The daemon applied the files once and watches them: it is in service."""

    def pass_done(self, state: Any, now: datetime, wake: datetime) -> None:
        """The loop finished a pass at ``now`` and sleeps until ``wake`` (or an event)."""

    def pass_failed(self, reason: str, now: datetime, retry: datetime) -> None:
        """The loop could not claim runs (state not writable); it retries at ``retry``."""

    def run_started(self, job: str, run_id: str, trigger: str, scheduled_for: datetime | None, at: datetime) -> None:
        """A run's first process exists."""

    def recorded(self, job: str, record: dict[str, Any]) -> None:
        """A run's final history line was written (any status: also missed, skipped and
        interrupted occurrences). ``record`` is that line, or for a run recovered as
        interrupted its ``job``, ``run_id``, ``scheduled_for`` and ``status``."""

    def delivered(self, job: str, run_id: str, results: list[Any]) -> None:
        """A run's deliveries were attempted (``delivery.Result`` each)."""

    def stopping(self) -> None:
        """The daemon stops firing and waits for runs in flight."""


class Observers(Observer):
    """Several observers as one."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self.observers: list[Observer] = list(observers)
        self._failed: set[tuple[int, str]] = set()

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def _each(self, hook: str, *args: Any) -> None:
        for obs in self.observers:
            try:
                getattr(obs, hook)(*args)
            except Exception as e:  # noqa: BLE001 - an observer must not stop the engine
                key = (id(obs), hook)
                if key not in self._failed:
                    self._failed.add(key)
                    print(f"cronfile: {type(obs).__name__}.{hook} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

    def applied(self, plan: Any, revision: str | None, at: datetime) -> None:
        self._each("applied", plan, revision, at)

    def ready(self, state: Any, at: datetime) -> None:
        self._each("ready", state, at)

    def pass_done(self, state: Any, now: datetime, wake: datetime) -> None:
        self._each("pass_done", state, now, wake)

    def pass_failed(self, reason: str, now: datetime, retry: datetime) -> None:
        self._each("pass_failed", reason, now, retry)

    def run_started(self, job: str, run_id: str, trigger: str, scheduled_for: datetime | None, at: datetime) -> None:
        self._each("run_started", job, run_id, trigger, scheduled_for, at)

    def recorded(self, job: str, record: dict[str, Any]) -> None:
        self._each("recorded", job, record)

    def delivered(self, job: str, run_id: str, results: list[Any]) -> None:
        self._each("delivered", job, run_id, results)

    def stopping(self) -> None:
        self._each("stopping")
