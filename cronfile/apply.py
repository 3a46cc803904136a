"""The apply use case: the files reconciled into the state, in one transaction, with one
audit line (docs/design.md section 4). `cronfile apply`, `tick` and the daemon (on a
file change) all apply through ``apply_project``."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .clock import iso
from .load import Project, cache_for, files_signature, load_project, racy_changed
from .state import State
from .stores.base import Store

__all__ = ["apply_logged", "apply_project", "log_problems"]


def apply_project(
    store: Store,
    project: Project,
    *,
    now: datetime,
    revision: str | None,
    source: str,
    lock: threading.Lock | None = None,
    on_reload: Callable[[Project], None] | None = None,
    check: Callable[[Project, State, Any], None] | None = None,
    unchanged: Callable[[Project], bool | None] | None = None,
) -> Any:
    """Reconcile the files into the state in one transaction; one audit line if anything
    changed. Returns the Plan. ``check(project, state, plan)`` runs under the lock before
    anything is written; if it raises, nothing is (`apply --plan`: planfile.verify).

    Two guards, both found by tests/faults (a daemon, ticks and `apply` on one state dir):

    - Stale files. The files are the truth, and an apply must not put back older files
      than an apply before it: a `tick` (or the daemon) that read the files, then waited
      for state.lock while `cronfile apply` recorded a newer edit, reverted that edit (a
      lost update). So, under the lock, the files' signature is compared with the one
      taken when they were read; if they changed, they are read again (``on_reload``
      hears of it) and the apply is retried, and the last try reads them under the
      lock (safe: whoever applies after us reads after we release). An equal signature
      proves nothing for a file read within a clock tick of a write: those files' bytes
      are compared too (``load.racy_changed``). ``unchanged(project)`` may answer
      instead, and cheaper: the daemon's watcher knows whether any file changed since
      it read them (True, False; None: it cannot tell, so the signature decides).
    - A stale clock. ``now`` was read before waiting for the lock; meanwhile another
      engine may have claimed a run at a later instant. A schedule change recomputes
      next_run "from now", and from a ``now`` older than that claim it could hand the
      claimed instant out again (a run twice). Reconcile therefore never plans from a
      time earlier than the latest the state has recorded (a claim, a run, an apply);
      this also covers a wall clock that jumped back."""
    import getpass

    from .errors import SpecError
    from .reconcile import reconcile
    from .shared import check_revision

    def read_again() -> Project:
        fresh = load_project(project.root, now=now, cache=cache_for(project), warnings=False)
        if fresh.errors:
            raise SpecError(fresh.errors)
        if on_reload is not None:
            on_reload(fresh)
        return fresh

    store.ensure()
    guard = lock or threading.Lock()
    for attempt in range(_STALE_RETRIES):
        stale = False
        with guard, store.transaction() as txn:
            if project.signature:
                same = unchanged(project) if unchanged is not None else None
                changed = files_signature(project.root) != project.signature if same is None else not same
                if changed and attempt < _STALE_RETRIES - 1:
                    stale = True  # read them again without holding the lock, and retry
                elif changed or (same is None and racy_changed(project)):
                    project = read_again()
            if not stale:
                if getattr(store, "shared", False):  # several hosts: never go back (cronfile/shared.py)
                    check_revision(project.root, txn.state.revision, revision)
                at = max(now, _latest_activity(txn.state) or now)
                new_state, plan = reconcile(project.specs, txn.state, at, revision=revision)
                if check is not None:
                    check(project, txn.state, plan)
                if plan.has_changes:
                    txn.state = new_state
        if not stale:
            break
        project = read_again()
    if plan.has_changes:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        store.append_audit(
            {
                "time": iso(now),
                "user": user,
                "host": socket.gethostname(),
                "source": source,
                "revision": revision,
                "summary": plan.summary(),
                "changes": [{"name": c.name, "action": str(c.action), "fields": list(c.fields)} for c in plan.changed],
            }
        )
    return plan


_STALE_RETRIES = 5


def _latest_activity(state: State) -> datetime | None:
    """The latest time the state records anything happening: an apply, a claim, a run's
    start or end, and the instant of a run claimed ahead of it (the daemon claims a few
    ms early: an apply in between must not plan that instant again)."""
    # Comprehensions, one field at a time: a loop per job cost 8 ms at 10,000 jobs, on
    # every apply the daemon makes for one edited file.
    jobs = state.jobs.values()
    times: list[datetime | None] = [state.applied_at]
    times += [t for r in state.orphans for t in (r.started_at, r.scheduled_for)]
    times += [js.updated_at for js in jobs]
    times += [js.created_at for js in jobs]
    times += [t for js in jobs if js.running for r in js.running for t in (r.started_at, r.scheduled_for)]
    lasts = [js.last_run for js in jobs if js.last_run is not None]
    times += [r.started_at for r in lasts]
    times += [r.finished_at for r in lasts]
    return max((t for t in times if t is not None), default=None)


def log_problems(log: Callable[..., None], problems: list[Any]) -> None:
    """Invalid files in an engine's log: the applied set stays."""
    log("", f"jobs.d has {len(problems)} problem(s); keeping the last good set:", event="reload.invalid", level="error")
    for p in problems:
        log("", f"  {p}", event="reload.invalid", level="error")


def apply_logged(
    store: Store,
    project: Project,
    *,
    now: datetime,
    source: str,
    lock: threading.Lock | None,
    log: Callable[..., None],
    unchanged: Callable[[Project], bool | None] | None = None,
) -> tuple[Project, Any, str | None] | None:
    """An engine's apply (the daemon's start and file changes, each tick): ``apply_project``
    with every outcome said in the engine's log (``log(job, text, event=, level=)``).
    Returns the project applied (read again if the files changed meanwhile), the Plan and
    the git revision; None when nothing was applied (the reason is logged). A locked or
    unreadable state raises."""
    from .errors import CronfileError, LockedError, SpecError, StateError, StateWriteError, why
    from .load import git_revision

    def reloaded(fresh: Project) -> None:
        nonlocal project
        project = fresh
        log("", "the files changed while they were applied: applying them as they are now")

    try:
        revision = git_revision(project.root)
        plan = apply_project(store, project, now=now, revision=revision, source=source, lock=lock, on_reload=reloaded, unchanged=unchanged)
    except SpecError as e:
        # Read again because they changed, the files are now invalid: the applied
        # set stays, as for any invalid change.
        log_problems(log, e.problems)
        return None
    except StateWriteError as e:
        # A full disk: the applied set stays as it was (the write is atomic).
        log("", f"not applied: {why(e)}", event="apply.failed", level="error")
        return None
    except (LockedError, StateError):
        raise
    except (OSError, CronfileError) as e:
        # The files kept changing while they were applied, or the audit line could
        # not be written: say so; the applied set is whatever the state holds.
        log("", f"not applied: {why(e)}", event="apply.failed", level="error")
        return None
    if plan.has_changes:
        for c in plan.changed:
            action = str(c.action)
            detail = f" ({', '.join(c.fields)})" if c.fields else ""
            nxt = f"; next run {iso(c.next_run_after)}" if c.next_run_after else ""
            log(c.name, f"{action}{detail}{nxt}", event=f"job.{action}")
        log("", f"applied: {plan.summary()}", event="apply")
    return project, plan, revision
