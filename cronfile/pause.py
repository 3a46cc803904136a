"""Runtime pause and resume: pure functions of (job state, spec, schedule, now).

``enabled: false`` in a job file is the durable way to stop a job: reviewed, in git,
applied. ``cronfile pause NAME`` is the fast way ("stop that job now"), like the pause
commands of hermes, PRX and odek: an override kept in the state (``JobState.pause``),
which applies and restarts keep, until ``cronfile resume NAME`` ends it.

While paused a job's ``state`` is ``paused`` and its ``next_run`` is None, so ``due``,
the claim and the daemon's wake-up skip it with no rule of their own. A buffered
occurrence (``concurrency: queue``) is dropped; a run already started finishes.
Resuming computes the next run from the time of the resume, like re-enabling a job in
the files (docs/design.md 4): no catch-up burst for the occurrences the pause skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import iso
from .state import JobState, JobStatus, Pause, State

if TYPE_CHECKING:
    from .schedule import Schedule
    from .spec import JobSpec

__all__ = ["drift", "pause", "pause_note", "resume"]


def pause(js: JobState, p: Pause) -> JobState:
    """``js`` paused by ``p``. Pausing a paused job replaces who, when and why."""
    return js.with_(state=JobStatus.paused, next_run=None, queued=None, pause=p)


def resume(js: JobState, spec: JobSpec, schedule: Schedule, now: datetime) -> tuple[JobState, str]:
    """``js`` without its runtime pause, timed from ``now``, and a line saying what follows.

    ``spec`` is the applied spec (``spec_from_data(js.spec)``) and ``schedule`` its
    ``build_schedule(created_at=js.created_at)``. A job not paused at runtime comes back
    as it is."""
    if js.pause is None:
        if js.state is JobStatus.paused:
            return js, "not paused at runtime: it is `enabled: false` in the files"
        return js, "not paused"
    status, next_run, note = _timing(spec, js, schedule, now)
    return js.with_(state=status, next_run=next_run, queued=None, pause=None, updated_at=now), note


def _timing(
    spec: JobSpec, js: JobState, schedule: Schedule, now: datetime
) -> tuple[JobStatus, datetime | None, str]:
    """Where a job stands once nothing holds it back at runtime: reconcile's rules for a
    job re-enabled in the files (next run from now, no catch-up)."""
    if not spec.enabled:
        return JobStatus.paused, None, "still paused: `enabled: false` in the files"
    if spec.repeat is not None and js.run_count >= spec.repeat:
        return JobStatus.completed, None, f"completed: repeat {spec.repeat} reached"
    if schedule.at_boot:
        return JobStatus.scheduled, None, "runs each time an engine starts"
    next_run = schedule.next_after(now)
    if next_run is None:
        return JobStatus.completed, None, "completed: the schedule has no time after now"
    return JobStatus.scheduled, next_run, f"next run {iso(next_run)} (computed from now; no catch-up)"


def pause_note(p: Pause) -> str:
    """``paused at runtime by ann@box (mcp) since ...: reason; `cronfile resume NAME```."""
    via = f" ({p.via})" if p.via and p.via != "cli" else ""
    why = f": {p.reason}" if p.reason else ""
    return f"paused at runtime by {p.user}@{p.host}{via} since {iso(p.at)}{why}"


def drift(state: State) -> list[dict[str, Any]]:
    """The runtime overrides the repo does not show: every job paused at runtime, by name.
    ``diff`` and ``status`` list them; ``apply`` keeps them."""
    out = []
    for name in sorted(state.jobs):
        p = state.jobs[name].pause
        if p is not None:
            out.append({"name": name, "kind": "paused", **p.encode(), "note": pause_note(p)})
    return out
