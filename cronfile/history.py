"""Run history: the run record, one typed and versioned value, and the queries over the
history lines that the CLI, the MCP server and the status page read (docs/design.md
section 7.2).

Every history line that records a run is built by ``RunRecord`` (its constructor; the
class methods ``finished``, ``missed``, ``skipped`` and ``interrupted`` name the cases)
and written by ``RunRecord.encode``: the JSON keys documented in section 7.2, plus
``version``. Readers ignore keys they do not know; a line without ``version`` (written
before it existed) decodes as version 1.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .clock import iso, parse_iso
from .spec import Status, Trigger

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = [
    "HISTORY_VERSION",
    "RunOutput",
    "RunRecord",
    "delivery_line",
    "delivery_recorded",
    "engine_running",
    "final_record",
    "last_success_output",
    "merge_lines",
    "merged_histories",
    "merged_history",
    "new_run_id",
    "short_id",
]

HISTORY_VERSION = 1  # a line without "version" is version 1


def new_run_id(when: datetime) -> str:
    """Sortable and unique: UTC time, then 4 hex digits (`cronfile logs` takes a
    suffix). ``when`` is the run's scheduled instant (a run claimed a few ms ahead of
    05:08:00 is 20261206T050800-...), or its start for a manual or @reboot run.

    The 4 digits count up from a random start in each process: never the same id twice
    in this process until 65,536 more are made. Drawn at random, 200 runs of one second
    collided about one second in three (birthday odds), and a run's cgroup, its cancel
    event and its slot are named by its id alone, so one run's end stopped another job's
    run (bench/bench_throughput.py, "killed by SIGTERM"). Another process still starts
    from its own random place, as before."""
    prefix = _ID_PREFIX.get(when)
    if prefix is None:
        # The runs of one instant share it: strftime once per instant, not per run.
        if len(_ID_PREFIX) > 64:
            for old in list(_ID_PREFIX)[:32]:
                _ID_PREFIX.pop(old, None)
        prefix = _ID_PREFIX[when] = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S-")
    return f"{prefix}{next(_ID_SEQ) & 0xFFFF:04x}"


_ID_PREFIX: dict[datetime, str] = {}
_ID_SEQ = itertools.count(int.from_bytes(os.urandom(2), "big"))  # next() is atomic


def short_id(run_id: str) -> str:
    return run_id.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class RunOutput:
    """What a run that reached its executor adds to its record (runner.Outcome)."""

    duration_s: float
    output_bytes: int
    output_truncated: bool
    detail: Mapping[str, Any]
    usage: Mapping[str, Any] | None = None
    usage_error: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run's record in its job's history (docs/design.md section 7.2): a run that
    finished (any status, ``refused`` and ``cancelled`` too), an occurrence ``missed`` or
    ``skipped``, a run recovered ``interrupted`` after its engine died or never started
    before a shutdown. Build it with the constructor or the class methods that name the
    cases (they call the constructor); write ``encode()``."""

    job: str
    run_id: str
    trigger: Trigger
    status: Status
    host: str
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    attempts: int = 0
    message: str | None = None
    log_path: str | None = None
    claimed_at: datetime | None = None  # runs that were claimed and executed
    engine: str | None = None
    output: RunOutput | None = None  # runs that reached their executor
    lateness_ms: float | None = None
    slot_wait_s: float | None = None
    replaced: tuple[Mapping[str, Any], ...] = ()  # concurrency: replace, the runs it waited for
    replaced_by: str | None = None
    missed_count: int | None = None
    missed_first: datetime | None = None
    deliveries: tuple[Mapping[str, Any], ...] = ()  # [] in the record; the delivery line fills it
    version: int = HISTORY_VERSION

    # -- the cases ---------------------------------------------------------------------

    @classmethod
    def finished(
        cls,
        *,
        job: str,
        run_id: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        claimed_at: datetime,
        outcome: Any,
        status: Status,
        log_path: str | None,
        host: str,
        engine: str,
        lateness_ms: float | None = None,
    ) -> RunRecord:
        """A run that was executed (runner.Outcome), whatever its status."""
        return cls(
            lateness_ms=lateness_ms,
            job=job,
            run_id=run_id,
            trigger=trigger,
            status=status,
            host=host,
            scheduled_for=scheduled_for,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            exit_code=outcome.exit_code,
            attempts=outcome.attempts,
            message=outcome.message,
            log_path=log_path,
            claimed_at=claimed_at,
            engine=engine,
            output=RunOutput(
                duration_s=round((outcome.finished_at - outcome.started_at).total_seconds(), 3),
                output_bytes=outcome.output_bytes,
                output_truncated=outcome.truncated,
                detail=dict(outcome.detail),
                usage=outcome.usage.to_json() if outcome.usage is not None else None,
                usage_error=outcome.usage_error or None,
            ),
        )

    @classmethod
    def missed(
        cls, *, job: str, last: datetime, first: datetime | None, count: int, message: str, host: str, run_id: str
    ) -> RunRecord:
        """Occurrences not run (``count`` of them, ``first`` .. ``last``)."""
        return cls(
            job=job,
            run_id=run_id,
            trigger=Trigger.schedule,
            status=Status.missed,
            host=host,
            scheduled_for=last,
            message=message,
            missed_count=count,
            missed_first=first,
        )

    @classmethod
    def skipped(
        cls, *, job: str, when: datetime, message: str, host: str, run_id: str, status: Status = Status.skipped
    ) -> RunRecord:
        """An occurrence that never started: skipped (concurrency: forbid), or a claim
        still waiting for a slot when the daemon stopped (``status`` interrupted)."""
        return cls(job=job, run_id=run_id, trigger=Trigger.schedule, status=status, host=host, scheduled_for=when, message=message)

    @classmethod
    def interrupted(
        cls,
        *,
        job: str,
        run_id: str,
        trigger: Trigger,
        scheduled_for: datetime | None,
        started_at: datetime | None,
        finished_at: datetime,
        log_path: str | None,
        message: str,
        host: str,
    ) -> RunRecord:
        """A run whose engine died while it ran (found by a recovery)."""
        return cls(
            job=job,
            run_id=run_id,
            trigger=trigger,
            status=Status.interrupted,
            host=host,
            scheduled_for=scheduled_for,
            started_at=started_at,
            finished_at=finished_at,
            log_path=log_path,
            message=message,
        )

    # -- JSON --------------------------------------------------------------------------

    def encode(self) -> dict[str, Any]:
        """The history line (docs/design.md section 7.2)."""
        d: dict[str, Any] = {
            "job": self.job,
            "run_id": self.run_id,
            "trigger": str(self.trigger),
            "scheduled_for": iso(self.scheduled_for),
        }
        if self.claimed_at is not None:
            d["claimed_at"] = iso(self.claimed_at)
        d["status"] = str(self.status)
        d["exit_code"] = self.exit_code
        d["attempts"] = self.attempts
        d["started_at"] = iso(self.started_at)
        d["finished_at"] = iso(self.finished_at)
        out = self.output
        if out is not None:
            d["duration_s"] = out.duration_s
            d["output_bytes"] = out.output_bytes
            d["output_truncated"] = out.output_truncated
        d["message"] = self.message
        if out is not None:
            d["detail"] = dict(out.detail)
            d["usage"] = dict(out.usage) if out.usage is not None else None
            if out.usage_error:
                d["usage_error"] = out.usage_error
        d["log_path"] = self.log_path
        d["deliveries"] = [dict(x) for x in self.deliveries]
        if self.missed_count is not None:
            d["missed_count"] = self.missed_count
            d["missed_first"] = iso(self.missed_first)
        d["host"] = self.host
        if self.engine is not None:
            d["engine"] = self.engine
        if self.replaced:
            d["replaced"] = [dict(x) for x in self.replaced]
        if self.slot_wait_s is not None:
            d["slot_wait_s"] = self.slot_wait_s
        if self.replaced_by is not None:
            d["replaced_by"] = self.replaced_by
        if self.lateness_ms is not None:
            d["lateness_ms"] = self.lateness_ms
        d["version"] = self.version
        return d

    @classmethod
    def decode(cls, line: Mapping[str, Any]) -> RunRecord:
        """A run's record from its history line (any version this code knows; unknown
        keys are ignored). ValueError if the line is not a run's record (a delivery
        line, a status this code does not know)."""
        try:
            status = Status(line["status"])
            trigger = Trigger(line["trigger"])
            out = None
            if "duration_s" in line:
                out = RunOutput(
                    duration_s=float(line["duration_s"]),
                    output_bytes=int(line.get("output_bytes") or 0),
                    output_truncated=bool(line.get("output_truncated")),
                    detail=dict(line.get("detail") or {}),
                    usage=line.get("usage"),
                    usage_error=line.get("usage_error"),
                )
            return cls(
                job=str(line["job"]),
                run_id=str(line["run_id"]),
                trigger=trigger,
                status=status,
                host=str(line.get("host") or ""),
                scheduled_for=parse_iso(line.get("scheduled_for")),
                started_at=parse_iso(line.get("started_at")),
                finished_at=parse_iso(line.get("finished_at")),
                exit_code=line.get("exit_code"),
                attempts=int(line.get("attempts") or 0),
                message=line.get("message"),
                log_path=line.get("log_path"),
                claimed_at=parse_iso(line.get("claimed_at")),
                engine=line.get("engine"),
                output=out,
                lateness_ms=line.get("lateness_ms"),
                slot_wait_s=line.get("slot_wait_s"),
                replaced=tuple(line.get("replaced") or ()),
                replaced_by=line.get("replaced_by"),
                missed_count=line.get("missed_count"),
                missed_first=parse_iso(line.get("missed_first")),
                deliveries=tuple(line.get("deliveries") or ()),
                version=int(line.get("version", 1)),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a run record: {e}") from None


def delivery_line(run_id: str, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """The line appended after a run's deliveries (docs/design.md section 7.2): merged
    into the run's record by ``run_id``."""
    return {"run_id": run_id, "deliveries": deliveries}


def merged_history(store: Store, job: str, n: int | None) -> list[dict[str, Any]]:
    """History lines merged by run id: a run's record and its later delivery line (written
    after delivery, append-only) read as one entry. Oldest first; the last ``n``."""
    try:
        raw = store.read_history(job)
    except ValueError:
        return []
    return merge_lines(raw, n)


def merged_histories(store: Store, n: int) -> dict[str, list[dict[str, Any]]]:
    """``merged_history(store, job, n)`` of every job with runs, read at once
    (``Store.last_runs``: one query, not one per job). A job not in it has none."""
    return {job: merge_lines(lines, n) for job, lines in store.last_runs(n).items()}


def merge_lines(raw: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """``raw`` history lines (oldest first) merged by run id; the last ``n`` runs."""
    merged: dict[str, dict[str, Any]] = {}
    for line in raw:
        rid = line.get("run_id")
        if not rid:
            continue
        if rid in merged:
            old = merged[rid].get("deliveries") or []
            merged[rid].update(line)
            if "status" not in line and old:
                # The outbox records each delivery on a line of its own; a resend after a
                # crash replaces the earlier result of the same key.
                new = line.get("deliveries") or []
                keys = {d.get("key") for d in new if d.get("key")}
                merged[rid]["deliveries"] = [d for d in old if not d.get("key") or d.get("key") not in keys] + new
        else:
            merged[rid] = dict(line)
    runs = list(merged.values())
    return runs[-n:] if n else runs


def engine_running(store: Store) -> bool:
    """Whether a daemon runs for this store (checked without taking its lock)."""
    return store.daemon_running()


def final_record(store: Store, job: str, run_id: str) -> dict[str, Any] | None:
    """The run's own record (the line with its status) if the history has it."""
    try:
        lines = store.read_history(job)
    except ValueError:
        return None
    for line in reversed(lines):
        if line.get("run_id") == run_id and line.get("status"):
            return line
    return None


def delivery_recorded(store: Store, job: str, run_id: str) -> bool:
    """Whether a delivery line of the run is in the history (the outbox had its
    deliveries: a recovery need not queue them again)."""
    try:
        lines = store.read_history(job)
    except ValueError:
        return False
    return any(ln.get("run_id") == run_id and "status" not in ln and ln.get("deliveries") for ln in lines)


def last_success_output(store: Store, job: str) -> str | None:
    """The log of ``job``'s latest successful run (``context: from_job``), if readable:
    "" for a run recorded silent (it printed nothing, so its log was never made:
    runlog.py), None if the log of a run that printed something is missing."""
    for run in reversed(merged_history(store, job, None)):
        if run.get("status") == Status.success and run.get("log_path"):
            try:
                data = store.read_log(job, str(run["run_id"]))
            except (OSError, ValueError):
                return None
            if data is None:
                # No file: the run printed nothing (its record says so), or it was lost.
                return "" if run.get("output_bytes") == 0 else None
            return data.decode("utf-8", errors="replace")
    return None

