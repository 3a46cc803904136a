"""Prometheus metrics of a daemon (``cronfile daemon --http``), through prometheus-client:
the only module that imports it.

Two kinds, and why:

- Counted by this daemon as things happen (an ``Observer``): runs by job and status,
  lateness and duration histograms, deliveries. They start at zero with the process, as
  Prometheus counters do; ``rate()`` and ``increase()`` handle the reset.
- Read from ``state.json`` at scrape time (``StateCollector``): each job's next run and
  last success, jobs by state. These also see runs made by ``cronfile tick`` or
  ``cronfile run NAME`` beside the daemon, and they are right after a restart.

The names are the contract of docs/design.md section 8; docs/observability.md lists them all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    exposition,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .observe import Observer
from .spec import Status, Trigger
from .state import JobStatus

# The *_created series double the output and no dashboard here reads them.
disable_created_metrics()

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "LATENESS_BUCKETS", "Metrics", "StateCollector"]

# The classic text format (0.0.4), which every Prometheus and agent reads; our names are
# plain, so the newer 1.0.0 format would say nothing more. (Before prometheus-client
# 0.22 the "latest" type was 0.0.4 itself.)
CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)

# From "on time" (a few ms: bench/bench_firing.py) to "the machine was asleep".
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Shell one-liners to agent sessions that run for an hour.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0)
# Job states as state.json names them; every one is exported (0 included), so a
# dashboard's series do not come and go.
JOB_STATES = tuple(str(s) for s in JobStatus)
# How many coming fires cronfile_job_period_seconds looks at.
PERIOD_FIRES = 8


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class StateCollector(Collector):
    """The gauges read from the state at each scrape.

    ``last_success`` is the state's last run when that succeeded; otherwise the latest
    success this daemon saw or found in the job's history (read once per job, then kept:
    a job that failed its last run still shows when it last worked)."""

    def __init__(self, read_state: Callable[[], Any], read_history: Callable[[str], list[dict[str, Any]]]) -> None:
        self._read_state = read_state
        self._read_history = read_history
        self._lock = threading.Lock()
        self._success: dict[str, float] = {}
        self._scanned: set[str] = set()
        self._periods: dict[tuple[str, str], float | None] = {}

    def saw_success(self, job: str, finished_at: datetime | None) -> None:
        ts = _ts(finished_at)
        if ts is None:
            return
        with self._lock:
            if ts > self._success.get(job, 0.0):
                self._success[job] = ts

    def _last_success(self, name: str, js: Any) -> float | None:
        last = js.last_run
        if last is not None and last.status == Status.success and last.finished_at is not None:
            self.saw_success(name, last.finished_at)
        with self._lock:
            known = self._success.get(name)
            scanned = name in self._scanned
        if known is None and not scanned:
            try:
                lines = self._read_history(name)
            except (OSError, ValueError):
                lines = []
            for line in reversed(lines):
                if line.get("status") == Status.success:
                    self.saw_success(name, _parse(line.get("finished_at")))
                    break
            with self._lock:
                self._scanned.add(name)
                known = self._success.get(name)
        return known

    def _period(self, js: Any) -> float | None:
        """The longest gap between the job's next fires (up to PERIOD_FIRES of them): the
        "period" an alert compares the last success with. The longest, so a weekday job
        is not late over a weekend. Cached per schedule."""
        if js.next_run is None:
            return None
        key = (js.schedule_sig, js.created_at.isoformat() if js.created_at else "")
        if key not in self._periods:
            from .spec import spec_from_data

            period: float | None = None
            try:
                sched = spec_from_data(js.spec).build_schedule(created_at=js.created_at)
                t, gaps = js.next_run, []
                for _ in range(PERIOD_FIRES):
                    nxt = sched.next_after(t)
                    if nxt is None:
                        break
                    gaps.append((nxt - t).total_seconds())
                    t = nxt
                period = max(gaps) if gaps else None
            except Exception:  # noqa: BLE001 - a schedule this version cannot build: no period
                period = None
            self._periods[key] = period
        return self._periods[key]

    def collect(self) -> Iterator[Any]:
        state = self._read_state()
        nxt = GaugeMetricFamily(
            "cronfile_job_next_run_timestamp_seconds",
            "When the job fires next (Unix time); absent when it will not fire.",
            labels=["job"],
        )
        ok = GaugeMetricFamily(
            "cronfile_job_last_success_timestamp_seconds",
            "When the job's latest successful run finished (Unix time); absent when it never succeeded.",
            labels=["job"],
        )
        running = GaugeMetricFamily("cronfile_job_running", "Runs of the job in flight.", labels=["job"])
        period = GaugeMetricFamily(
            "cronfile_job_period_seconds",
            "The longest gap between the job's next fires (for alerts: no success within 2 periods).",
            labels=["job"],
        )
        by_state = dict.fromkeys(JOB_STATES, 0)
        for name, js in sorted(state.jobs.items()):
            st = str(js.state)
            by_state[st] = by_state.get(st, 0) + 1
            if st == JobStatus.scheduled and js.next_run is not None:
                nxt.add_metric([name], js.next_run.timestamp())
                p = self._period(js)
                if p is not None:
                    period.add_metric([name], p)
            last_ok = self._last_success(name, js)
            if last_ok is not None:
                ok.add_metric([name], last_ok)
            running.add_metric([name], len(js.running))
        jobs = GaugeMetricFamily("cronfile_jobs", "Applied jobs by state.", labels=["state"])
        for st, n in sorted(by_state.items()):
            jobs.add_metric([st], n)
        yield nxt
        yield ok
        yield running
        yield period
        yield jobs
        rev = GaugeMetricFamily("cronfile_applied_timestamp_seconds", "When the state was last applied (Unix time).")
        if state.applied_at is not None:
            rev.add_metric([], state.applied_at.timestamp())
        yield rev


class Metrics(Observer):
    """The registry one daemon serves at /metrics, fed by the engine's hooks."""

    def __init__(self, read_state: Callable[[], Any], read_history: Callable[[str], list[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("cronfile_runs", "Runs recorded by this daemon, by job and final status (missed and skipped occurrences included).", ["job", "status"], registry=r)
        self.lateness = Histogram("cronfile_run_lateness_seconds", "From a run's scheduled instant to its first process (scheduled and catch-up runs).", buckets=LATENESS_BUCKETS, registry=r)
        self.duration = Histogram("cronfile_run_duration_seconds", "Wall time of finished runs, retries included.", ["job"], buckets=DURATION_BUCKETS, registry=r)
        self.deliveries = Counter("cronfile_deliveries", "Delivery attempts by job, target and outcome (ok, failed, skipped).", ["job", "target", "outcome"], registry=r)
        self.up = Gauge("cronfile_up", "1 while the daemon's loop runs; 0 once it is stopping.", registry=r)
        self.started = Gauge("cronfile_start_time_seconds", "When this daemon started (Unix time).", registry=r)
        self.reloaded = Gauge("cronfile_last_reload_timestamp_seconds", "When this daemon last applied the files (Unix time).", registry=r)
        self.reloads = Counter("cronfile_reloads", "Applies of the files by this daemon (at start and on each change).", registry=r)
        self.claim_errors = Counter("cronfile_claim_errors", "Passes that could not claim runs (state not writable).", registry=r)
        self.last_pass = Gauge("cronfile_last_pass_timestamp_seconds", "When the loop last finished a pass (Unix time).", registry=r)
        self._revision: str | None = None
        self._lock = threading.Lock()
        self.state = StateCollector(read_state, read_history)
        r.register(self.state)
        r.register(_InfoCollector(self))
        self.up.set(1)
        self.started.set(time.time())

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- hooks --------------------------------------------------------------------------

    def applied(self, plan: Any, revision: str | None, at: datetime) -> None:
        self.reloaded.set(at.timestamp())
        self.reloads.inc()
        with self._lock:
            self._revision = revision

    def pass_done(self, state: Any, now: datetime, wake: datetime) -> None:
        self.last_pass.set(now.timestamp())

    def pass_failed(self, reason: str, now: datetime, retry: datetime) -> None:
        self.claim_errors.inc()

    def run_started(self, job: str, run_id: str, trigger: str, scheduled_for: datetime | None, at: datetime) -> None:
        if scheduled_for is not None and trigger in (Trigger.schedule, Trigger.catchup):
            self.lateness.observe(max(0.0, (at - scheduled_for).total_seconds()))

    def recorded(self, job: str, record: dict[str, Any]) -> None:
        status = str(record.get("status") or "unknown")
        self.runs.labels(job=job, status=status).inc()
        started, finished = _parse(record.get("started_at")), _parse(record.get("finished_at"))
        if started is not None and finished is not None:
            self.duration.labels(job=job).observe(max(0.0, (finished - started).total_seconds()))
        if status == Status.success:
            self.state.saw_success(job, finished)

    def delivered(self, job: str, run_id: str, results: list[Any]) -> None:
        for r in results:
            outcome = "ok" if r.ok else "skipped" if getattr(r, "skipped", None) else "failed"
            kind = str(r.target).split(":", 1)[0]
            self.deliveries.labels(job=job, target=kind, outcome=outcome).inc()

    def stopping(self) -> None:
        self.up.set(0)


class _InfoCollector(Collector):
    """cronfile_build_info{version} and cronfile_applied_revision_info{revision}."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        build = InfoMetricFamily("cronfile_build", "The cronfile version serving these metrics.")
        build.add_metric([], {"version": __version__})
        yield build
        with self._m._lock:
            revision = self._m._revision
        rev = InfoMetricFamily("cronfile_applied_revision", "The jobs repo's git revision this daemon last applied (empty outside git).")
        rev.add_metric([], {"revision": revision or ""})
        yield rev
