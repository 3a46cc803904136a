"""The runtime state: the applied set plus each job's timing, as plain values.

Pure: encode/decode only. ``state.json`` carries a version; an unknown version is an
error, never a guess (apscheduler's ``require_state_version`` habit).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from .clock import iso, parse_iso
from .errors import StateError
from .spec import Status, Trigger

STATE_VERSION = 1

# spec_hash -> the spec mapping a process already holds (its project's JobSpec.data), or
# the JobSpec itself: a decoded JobState keeps that one instead of its own equal copy
# (``share_specs``).
_SHARED_SPECS: Mapping[str, Any] = {}


def share_specs(specs: Mapping[str, Any]) -> None:
    """From now on, decoding a JobState whose spec equals one of ``specs`` (spec_hash ->
    spec mapping, or an object whose ``data`` is one: a JobSpec) keeps that mapping
    instead of its own copy. A daemon at 30,000 jobs held each spec twice otherwise: the
    files' and the state's (issue 17). Replaces the previous set (pass the current specs
    only: the old ones are then let go). Kept as given, not copied (a daemon passes the
    spec cache it keeps current; a copy of 30,000 entries per edit was 1 MB a time)."""
    global _SHARED_SPECS
    _SHARED_SPECS = specs


class JobStatus(StrEnum):
    """Where a job stands in the applied set."""

    scheduled = "scheduled"  # Fires at next_run.
    paused = "paused"  # enabled: false, or `cronfile pause` (JobState.pause); never fires; next_run is None.
    completed = "completed"  # Once-only job done, `repeat` used up, or an instant in the past.


_JOB_STATUS: dict[str, JobStatus] = {str(s): s for s in JobStatus}  # (a call of JobStatus costs 10x)


@dataclass(frozen=True, slots=True)
class Running:
    """A run that has been claimed and not yet recorded as finished."""

    run_id: str
    scheduled_for: datetime | None
    started_at: datetime
    trigger: Trigger
    engine: str  # the claiming engine's id; its lock file shows whether it lives
    pid: int | None = None  # the run's process (and process group), once spawned
    job: str = ""  # set for orphans (runs of deleted jobs)

    def encode(self) -> dict[str, Any]:
        out = {
            "run_id": self.run_id,
            "scheduled_for": iso(self.scheduled_for),
            "started_at": iso(self.started_at),
            "trigger": self.trigger,
            "engine": self.engine,
            "pid": self.pid,
        }
        if self.job:
            out["job"] = self.job
        return out

    @classmethod
    def decode(cls, d: dict[str, Any]) -> Running:
        return cls(
            run_id=d["run_id"],
            scheduled_for=parse_iso(d.get("scheduled_for")),
            started_at=_dt(d["started_at"]),
            trigger=Trigger(d.get("trigger", Trigger.schedule)),
            engine=d.get("engine", ""),
            pid=d.get("pid"),
            job=d.get("job", ""),
        )


@dataclass(frozen=True, slots=True)
class LastRun:
    run_id: str
    status: Status
    trigger: Trigger
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    def encode(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "scheduled_for": iso(self.scheduled_for),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }

    @classmethod
    def decode(cls, d: dict[str, Any]) -> LastRun:
        return cls(
            run_id=d["run_id"],
            status=Status(d["status"]),
            trigger=Trigger(d.get("trigger", Trigger.schedule)),
            scheduled_for=parse_iso(d.get("scheduled_for")),
            started_at=parse_iso(d.get("started_at")),
            finished_at=parse_iso(d.get("finished_at")),
        )


@dataclass(frozen=True, slots=True)
class Pause:
    """A runtime pause (`cronfile pause NAME`): who, from where, when and why. Kept in the
    state, not the repo: applies and restarts keep it, `cronfile resume NAME` ends it."""

    at: datetime
    user: str
    host: str
    reason: str = ""
    via: str = "cli"  # "cli" | "mcp"

    def encode(self) -> dict[str, Any]:
        return {"at": iso(self.at), "user": self.user, "host": self.host, "reason": self.reason, "via": self.via}

    @classmethod
    def decode(cls, d: dict[str, Any]) -> Pause:
        return cls(
            at=_dt(d["at"]),
            user=str(d.get("user", "")),
            host=str(d.get("host", "")),
            reason=str(d.get("reason") or ""),
            via=str(d.get("via") or "cli"),
        )


@dataclass(frozen=True, slots=True)
class JobState:
    """One applied job."""

    spec: Mapping[str, Any]  # the normalized spec (JobSpec.data, shared); ${VAR} kept as references
    spec_hash: str
    schedule_sig: str
    created_at: datetime  # first apply; anchors once-relative schedules (`in 2h`)
    state: JobStatus = JobStatus.scheduled
    next_run: datetime | None = None
    last_run: LastRun | None = None
    run_count: int = 0
    running: tuple[Running, ...] = ()
    queued: datetime | None = None  # concurrency: queue buffers one occurrence here
    updated_at: datetime | None = None
    pause: Pause | None = None  # a runtime pause (state is then `paused`); see cronfile/pause.py

    def encode(self) -> dict[str, Any]:
        out = {
            "spec": self.spec,
            "spec_hash": self.spec_hash,
            "schedule_sig": self.schedule_sig,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "state": str(self.state),
            "next_run": iso(self.next_run),
            "last_run": self.last_run.encode() if self.last_run else None,
            "run_count": self.run_count,
            "running": [r.encode() for r in self.running],
            "queued": iso(self.queued),
        }
        if self.pause is not None:
            # Only when set: a state without pauses is byte for byte what it was before.
            out["pause"] = self.pause.encode()
        return out

    @classmethod
    def decode(cls, d: dict[str, Any]) -> JobState:
        spec = d["spec"]
        shared = _SHARED_SPECS.get(d["spec_hash"])
        if shared is not None:
            shared = getattr(shared, "data", shared)  # (a JobSpec: its mapping)
            if shared == spec:
                spec = shared  # the project's own mapping: one copy of each spec, not two
        return cls(
            spec=spec,
            # Interned, as JobSpec interns its own: one copy of each hash (issue 17).
            spec_hash=_intern(d["spec_hash"]),
            schedule_sig=_intern(d["schedule_sig"]),
            created_at=_instant(d["created_at"]) or _dt(d["created_at"]),
            updated_at=_instant(d.get("updated_at")),
            state=_JOB_STATUS[d.get("state", "scheduled")],
            next_run=_instant(d.get("next_run")),
            last_run=LastRun.decode(d["last_run"]) if d.get("last_run") else None,
            run_count=int(d.get("run_count", 0)),
            running=tuple(Running.decode(r) for r in d.get("running", ())),
            queued=_instant(d.get("queued")),
            pause=Pause.decode(d["pause"]) if d.get("pause") else None,
        )

    def with_(self, **changes: Any) -> JobState:
        return replace(self, **changes)


@dataclass(frozen=True)
class State:
    """All of ``state.json``."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    revision: str | None = None  # git commit of the jobs repo at the last apply
    applied_at: datetime | None = None
    orphans: tuple[Running, ...] = ()  # runs in flight of jobs deleted since they started
    version: int = STATE_VERSION
    # What ``with_job`` changed: (the jobs mapping it started from, the mapping it made,
    # the names changed in between). A store writes only those jobs (``changed_since``).
    # Not compared, not shown: two states with the same jobs are equal however made.
    _delta: tuple[Mapping[str, JobState], Mapping[str, JobState], frozenset[str]] | None = field(
        default=None, compare=False, repr=False
    )

    def encode(self, *, jobs: bool = True) -> dict[str, Any]:
        """The JSON of state.json (``jobs=False``: all but the jobs, for an encoder that
        writes them itself)."""
        out: dict[str, Any] = {"version": self.version, "revision": self.revision, "applied_at": iso(self.applied_at)}
        if jobs:
            out["jobs"] = {name: self.jobs[name].encode() for name in sorted(self.jobs)}
        out["orphans"] = [r.encode() for r in self.orphans]
        return out

    @classmethod
    def decode(cls, d: Any) -> State:
        """Raises StateError (never KeyError/TypeError) for anything it cannot read."""
        if not isinstance(d, dict):
            raise StateError("not a JSON object")
        version = d.get("version")
        if version != STATE_VERSION:
            raise StateError(
                f"state version {version!r} is not supported by this cronfile "
                f"(it reads version {STATE_VERSION})"
            )
        try:
            return cls(
                jobs={name: JobState.decode(js) for name, js in (d.get("jobs") or {}).items()},
                revision=d.get("revision"),
                applied_at=parse_iso(d.get("applied_at")),
                orphans=tuple(Running.decode(r) for r in d.get("orphans", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StateError(f"malformed state ({type(e).__name__}: {e})") from None

    def with_(self, **changes: Any) -> State:
        if "jobs" in changes:
            changes.setdefault("_delta", None)
        return replace(self, **changes)

    def with_job(self, name: str, js: JobState | None) -> State:
        """This state with job ``name`` set to ``js`` (None: removed). The mapping is
        copied (a C-level copy: 0.05 ms at 10,000 jobs), and the change is remembered so
        that a store writes this one job instead of comparing them all."""
        jobs = dict(self.jobs)
        if js is None:
            jobs.pop(name, None)
        else:
            jobs[name] = js
        delta = self._delta
        if delta is not None and delta[1] is self.jobs:
            origin, names = delta[0], delta[2] | {name}
        else:
            origin, names = self.jobs, frozenset((name,))
        return replace(self, jobs=jobs, _delta=(origin, jobs, names))

    def changed_since(self, before: State) -> set[str]:
        """The names of the jobs whose JobState differs between ``before`` and this state
        (added, removed or replaced). Cheap when this state was made from ``before`` by
        ``with_job`` calls (the names it remembers); otherwise one identity comparison
        per job (JobStates are immutable: an unchanged job is the same object)."""
        old, new = before.jobs, self.jobs
        if new is old:
            return set()
        delta = self._delta
        if delta is not None and delta[1] is new and delta[0] is old:
            return {n for n in delta[2] if old.get(n) is not new.get(n)}
        changed = {n for n, js in new.items() if old.get(n) is not js}
        return changed | (old.keys() - new.keys())

    def settled(self) -> State:
        """This state without the record of how it was made: what a store keeps once it
        is committed, so that the next ``with_job`` calls are counted from it."""
        return self if self._delta is None else replace(self, _delta=None)

    def with_pids(self, pids: Mapping[str, tuple[str, int]]) -> State:
        """This state with the pid of each run in ``pids`` (run id -> job, pid) filled
        in, whether the run is its job's or (the job deleted while it ran) an orphan."""
        state = self
        for job in {job for job, _ in pids.values()}:
            js = state.jobs.get(job)
            if js is not None and any(r.run_id in pids for r in js.running):
                running = tuple(replace(r, pid=pids[r.run_id][1]) if r.run_id in pids else r for r in js.running)
                state = state.with_job(job, js.with_(running=running))
        if any(r.run_id in pids for r in state.orphans):
            orphans = tuple(replace(r, pid=pids[r.run_id][1]) if r.run_id in pids else r for r in state.orphans)
            state = state.with_(orphans=orphans)
        return state


# The instants of a state repeat: every job of one apply has its created_at and
# updated_at, and many share a next run. One datetime for each text (immutable), not
# one per job: 136,000 of them were 6 MB of a 30,000-job daemon (issue 17).
_instant = lru_cache(maxsize=1 << 12)(parse_iso)


def _intern(text: Any) -> Any:
    return sys.intern(text) if type(text) is str else text


def _dt(text: str) -> datetime:
    dt = parse_iso(text)
    if dt is None:
        raise ValueError("missing time")
    return dt
