"""Reconcile: (declared specs, applied state, now) -> (new state, plan).

Pure: no I/O, no clock; ``now`` is an argument (STYLE.md habit 1). The rules are
docs/design.md section 4's table. The point of keeping per-job timing across a reload, unlike
supercronic (which cancels everything and re-reads), is that editing a prompt must not
move, repeat or drop the next run.

The plan is a value with a fixed order (delete, create, update, unchanged; by name in
each), octodns' habit, so that printing it is stable and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .clock import iso
from .pause import pause_note
from .permissions import widening
from .spec import JobSpec
from .state import JobState, JobStatus, Running, State

if TYPE_CHECKING:
    from .schedule import Schedule

__all__ = ["Action", "Change", "Plan", "plan_for", "reconcile"]

CATCHUP_NONE = "catch-up: none"
_MISSING = object()


class Action(StrEnum):
    """What apply does to one job."""

    create = "create"  # A name not applied yet: schedule it from now.
    update = "update"  # Applied and changed: keep its timing unless the schedule changed.
    delete = "delete"  # Applied and gone from the files: forget it (history stays on disk).
    unchanged = "unchanged"  # Applied and identical: its state is kept as it is.


_ORDER = {Action.delete: 0, Action.create: 1, Action.update: 2, Action.unchanged: 3}


@dataclass(frozen=True)
class Change:
    """One job's line in the plan."""

    name: str
    action: Action
    fields: tuple[str, ...] = ()  # changed top-level spec fields, sorted
    before: Mapping[str, Any] | None = None  # applied normalized spec
    after: Mapping[str, Any] | None = None  # declared normalized spec
    next_run_before: datetime | None = None
    next_run_after: datetime | None = None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """docs/design.md section 7's ``diff --json`` entry (keys stable; ``notes`` added, and
        for an update ``values``: each changed field's old and new value)."""
        out: dict[str, Any] = {
            "name": self.name,
            "action": str(self.action),
            "fields": list(self.fields),
            "next_run_before": iso(self.next_run_before),
            "next_run_after": iso(self.next_run_after),
            "notes": list(self.notes),
        }
        if self.action is Action.update:
            out["values"] = self.values()
        return out

    def values(self) -> dict[str, dict[str, Any]]:
        """``{field: {"old": ..., "new": ...}}`` for each changed field (null when absent).
        Values are the normalized specs as written: a secret stays its ``${VAR}``
        reference, since expansion happens only at run time."""
        before, after = self.before or {}, self.after or {}
        return {f: {"old": _plain(before.get(f)), "new": _plain(after.get(f))} for f in self.fields}


class Plan:
    """Every job's change, in a stable order (delete, create, update, unchanged; by name
    in each).

    The unchanged jobs are kept as (state, spec) pairs and made Changes only when
    ``changes`` is asked for: a daemon's reload at 10,000 jobs changes one, and building
    the 9,999 others' Changes cost more than the rest of the reload. What the plan says
    is the same either way (``==`` compares ``changes``)."""

    __slots__ = ("_changed", "_same", "_all")

    def __init__(self, changes: Sequence[Change] = (), *, same: Sequence[tuple[JobState, JobSpec]] = ()) -> None:
        self._changed = tuple(changes)  # as given, in order; with ``same``: none unchanged
        self._same = tuple(same)  # unchanged jobs: (applied state, declared spec)
        self._all: tuple[Change, ...] | None = None if self._same else self._changed

    @property
    def changes(self) -> tuple[Change, ...]:
        if self._all is None:
            self._all = self._changed + tuple(_unchanged(spec, old) for old, spec in sorted(self._same, key=_by_name))
        return self._all

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.changes == other.changes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Plan(changes={self.changes!r})"

    @property
    def changed(self) -> tuple[Change, ...]:
        """The changes that are not ``unchanged``, in the plan's order (cheap: the
        unchanged jobs' Changes are not built)."""
        return tuple(c for c in self._changed if c.action is not Action.unchanged)

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.unchanged for c in self._changed)

    @property
    def counts(self) -> dict[str, int]:
        out = {str(a): 0 for a in (Action.create, Action.update, Action.delete, Action.unchanged)}
        for c in self._changed:
            out[str(c.action)] += 1
        out[str(Action.unchanged)] += len(self._same)
        return out

    def summary(self) -> str:
        """``2 to create, 1 to update, 0 to delete`` (plus ``, 3 unchanged`` if any)."""
        n = self.counts
        text = f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete"
        if n["unchanged"]:
            text += f", {n['unchanged']} unchanged"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": [_marked(c) for c in self.changes if c.action is not Action.unchanged],
            "unchanged": [c.name for c in self.changes if c.action is Action.unchanged],
            "summary": self.counts,
        }


def _unchanged(spec: JobSpec, old: JobState) -> Change:
    return Change(
        spec.name,
        Action.unchanged,
        before=old.spec,
        after=spec.data,
        next_run_before=old.next_run,
        next_run_after=old.next_run,
    )


def _marked(change: Change) -> dict[str, Any]:
    """A change's JSON, with ``permissions_widened: {"from", "to"}`` added when it lets an
    agent do more unattended than before (README, Unattended safety)."""
    out = change.to_json()
    wider = widening(change.before, change.after) if change.action is not Action.delete else None
    if wider:
        out["permissions_widened"] = wider
    return out


def reconcile(
    specs: Sequence[JobSpec],
    state: State,
    now: datetime,
    *,
    revision: str | None = None,
) -> tuple[State, Plan]:
    """The state after applying ``specs`` at ``now``, and the plan that says so.

    A job whose spec is unchanged keeps its JobState object as it is; when nothing changes
    at all the very same State comes back (``revision``/``applied_at`` untouched), so an
    apply that changes nothing writes nothing."""
    return _reconcile(specs, state, now, revision, plan_only=False)


def plan_for(specs: Sequence[JobSpec], state: State, now: datetime) -> Plan:
    """The plan ``reconcile`` gives, without the state it would write: what `diff`
    shows. The same Plan, but a new job's JobState (and the schedule signature it
    keeps) is not built: 10,000 of them were 14% of a cold `diff` (issue 17)."""
    return _reconcile(specs, state, now, None, plan_only=True)[1]


def _reconcile(specs: Sequence[JobSpec], state: State, now: datetime, revision: str | None, *, plan_only: bool) -> tuple[State, Plan]:
    jobs: dict[str, JobState] = {}
    changes: list[Change] = []
    same: list[tuple[JobState, JobSpec]] = []
    orphans = list(state.orphans)
    applied = state.jobs

    # One pass, lean: a daemon's reload at 10,000 jobs comes here for one edited file.
    for spec in specs:
        name = spec.name
        if name in jobs:
            raise ValueError(f"job {name!r} is declared twice")
        old = applied.get(name)
        if old is None:
            js, change = _create(spec, now, plan_only)
        elif old.spec_hash == spec.spec_hash and old.schedule_sig == spec.schedule_sig:
            jobs[name] = old
            same.append((old, spec))
            continue
        else:
            js, change = _update(spec, old, now)
            if old.pause is not None:
                # `cronfile pause` holds across applies (cronfile/pause.py).
                js, change = _keep_pause(old, js, change)
        jobs[name] = js  # type: ignore[assignment]  # None only with plan_only: no State made
        changes.append(change)

    for name in sorted(applied.keys() - jobs.keys()):
        old = state.jobs[name]
        notes = [f"history kept in runs/{name}/"]
        if old.running:
            n = len(old.running)
            notes.append(f"{n} run{'s' if n != 1 else ''} in flight will finish")
            # Like `kubectl delete cronjob --cascade=orphan`: runs in flight finish and
            # are recorded; the engine finds them in State.orphans.
            orphans.extend(r if r.job == name else _with_job(r, name) for r in old.running)
        changes.append(
            Change(
                name,
                Action.delete,
                fields=(),
                before=old.spec,
                after=None,
                next_run_before=old.next_run,
                next_run_after=None,
                notes=tuple(notes),
            )
        )

    changes.sort(key=lambda c: (_ORDER[c.action], c.name))
    plan = Plan(changes, same=same)
    if not plan.has_changes or plan_only:
        return state, plan
    new_state = state.with_(
        jobs=jobs,
        orphans=tuple(orphans),
        revision=revision,
        applied_at=now,
        # The names that changed, as State.with_job records them: a store then writes
        # those jobs, not compares all of them (State.changed_since).
        _delta=(state.jobs, jobs, frozenset(c.name for c in changes)),
    )
    return new_state, plan


def _by_name(pair: tuple[JobState, JobSpec]) -> str:
    return pair[1].name


def _plain(value: Any) -> Any:
    """A spec value as JSON data (mappings and sequences copied as dicts and lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _with_job(run: Running, job: str) -> Running:
    return replace(run, job=job)


def _never_fires_note(schedule: Schedule, now: datetime) -> str:
    past = schedule.prev_at_or_before(now)
    if past is not None:
        return f"never fires: {iso(past)} is in the past"
    return "never fires: the schedule has no time after now"


def _create(spec: JobSpec, now: datetime, plan_only: bool = False) -> tuple[JobState | None, Change]:
    schedule = spec.build_schedule(created_at=now)
    notes: list[str] = []
    status = JobStatus.scheduled
    next_run: datetime | None = None
    if not spec.enabled:
        status = JobStatus.paused
        notes.append("paused")
    elif schedule.at_boot:
        notes.append("runs each time an engine starts")
    else:
        next_run = schedule.next_after(now)
        if next_run is None:
            # docs/design.md 4: a once-only job whose instant is already past at first apply is
            # reported as never firing (and kept, completed, so status shows it).
            status = JobStatus.completed
            notes.append(_never_fires_note(schedule, now))
    js = None if plan_only else JobState(
        spec=spec.data,  # shared, never mutated: one copy per job in memory
        spec_hash=spec.spec_hash,
        schedule_sig=spec.schedule_sig,
        created_at=now,
        updated_at=now,
        state=status,
        next_run=next_run,
    )
    change = Change(
        spec.name,
        Action.create,
        fields=tuple(sorted(spec.data)),
        before=None,
        after=spec.data,
        next_run_before=None,
        next_run_after=next_run,
        notes=tuple(notes),
    )
    return js, change


def _changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    keys = set(before) | set(after)
    return tuple(sorted(k for k in keys if before.get(k, _MISSING) != after.get(k, _MISSING)))


def _update(spec: JobSpec, old: JobState, now: datetime) -> tuple[JobState, Change]:
    schedule = spec.build_schedule(created_at=old.created_at)
    sig_changed = old.schedule_sig != spec.schedule_sig
    notes: list[str] = []
    status = old.state
    next_run = old.next_run
    queued = old.queued

    if not spec.enabled:
        status, next_run, queued = JobStatus.paused, None, None
        notes.append("paused" if old.state is not JobStatus.paused else "still paused")
    elif spec.repeat is not None and old.run_count >= spec.repeat:
        status, next_run, queued = JobStatus.completed, None, None
        notes.append(f"completed: repeat {spec.repeat} reached ({old.run_count} runs)")
    elif schedule.at_boot:
        status, next_run = JobStatus.scheduled, None
        if old.state is JobStatus.paused:
            notes.append("resumed")
        notes.append("runs each time an engine starts")
    else:
        # Recompute from now on resume, on a schedule change, and for a completed job
        # (which runs again only if the new spec leaves it runs to make, e.g. `repeat`
        # raised or a once-only instant moved into the future). Otherwise keep next_run
        # exactly: no false catch-up, no lost run.
        recompute = old.state is not JobStatus.scheduled or sig_changed
        if recompute:
            next_run = schedule.next_after(now)
            if next_run is None:
                status = JobStatus.completed
                queued = None
                if old.state is JobStatus.completed and not sig_changed:
                    notes.append("completed")
                else:
                    notes.append(_never_fires_note(schedule, now))
            else:
                status = JobStatus.scheduled
                if old.state is JobStatus.paused:
                    notes.append("resumed: next run computed from now")
                elif old.state is JobStatus.completed:
                    notes.append("scheduled again: next run computed from now")
                elif next_run != old.next_run:
                    notes.append("schedule changed: next run recomputed from now")
                else:
                    # A new signature can give the same instant (a timezone change on an
                    # `every` job): say so, rather than "recomputed" beside "(kept)".
                    notes.append("schedule changed: next run unchanged")
                notes.append(CATCHUP_NONE)
        elif next_run is not None:
            notes.append(CATCHUP_NONE)

    js = old.with_(
        spec=spec.data,  # shared, never mutated: one copy per job in memory
        spec_hash=spec.spec_hash,
        schedule_sig=spec.schedule_sig,
        state=status,
        next_run=next_run,
        queued=queued,
        updated_at=now,
    )
    change = Change(
        spec.name,
        Action.update,
        fields=_changed_fields(old.spec, spec.data),
        before=old.spec,
        after=spec.data,
        next_run_before=old.next_run,
        next_run_after=next_run,
        notes=tuple(notes),
    )
    return js, change


def _keep_pause(old: JobState, js: JobState, change: Change) -> tuple[JobState, Change]:
    """The update of a job paused at runtime (cronfile/pause.py): the new spec is
    recorded, the pause stays (an apply never resumes a job; `cronfile resume` does)."""
    assert old.pause is not None
    kept = js.with_(state=JobStatus.paused, next_run=None, queued=None, pause=old.pause)
    notes = [pause_note(old.pause) + f"; kept (`cronfile resume {change.name}` to resume)"]
    if not (change.after or {}).get("enabled", True):
        notes.append("and `enabled: false` in the files")
    return kept, replace(change, next_run_after=None, notes=tuple(notes))
