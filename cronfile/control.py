"""Runtime control of applied jobs: pause and resume, shared by the CLI and `cronfile mcp`.

The edge around ``cronfile/pause.py``: one state transaction each (state.lock held for
milliseconds), then one audit line saying who, from where and why. A running daemon
notices the change as it notices an ``apply`` from another process: it watches
state.json being replaced (``cronfile/watch.py``) and re-reads it before each claim.
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime
from typing import Any

from .clock import iso
from .errors import UsageError
from .pause import pause, pause_note, resume
from .spec import spec_from_data
from .state import JobState, Pause
from .stores.base import Store

__all__ = ["pause_job", "resume_job", "who"]


def who() -> tuple[str, str]:
    """(user, host) of this process, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()


def _applied(store: Store, state: Any, name: str) -> JobState:
    js = state.jobs.get(name)
    if js is None:
        import difflib

        hint = difflib.get_close_matches(name, sorted(state.jobs), n=1)
        raise UsageError(
            f"no applied job named {name!r}"
            + (f" (did you mean {hint[0]}?)" if hint else " (run `cronfile apply` first)")
        )
    return js


def pause_job(store: Store, name: str, *, reason: str, now: datetime, via: str = "cli") -> JobState:
    """Pause an applied job at runtime; returns its new state. Raises UsageError for a
    job that is not applied."""
    user, host = who()
    p = Pause(at=now, user=user, host=host, reason=reason, via=via)
    with store.transaction() as txn:
        js = pause(_applied(store, txn.state, name), p)
        txn.state = txn.state.with_job(name, js)
    store.append_audit(
        {
            "time": iso(now),
            "user": user,
            "host": host,
            "source": via,
            "action": "pause",
            "job": name,
            "reason": reason,
            "summary": f"paused {name}",
        }
    )
    return js


def resume_job(store: Store, name: str, *, now: datetime, via: str = "cli") -> tuple[JobState, str, bool]:
    """End a job's runtime pause; its next run is computed from ``now``. Returns the new
    state, a line saying what follows, and whether it was paused at all (nothing is
    written or audited when it was not)."""
    user, host = who()
    with store.transaction() as txn:
        old = _applied(store, txn.state, name)
        spec = spec_from_data(old.spec)
        js, note = resume(old, spec, spec.build_schedule(created_at=old.created_at), now)
        if js is not old:
            txn.state = txn.state.with_job(name, js)
    if old.pause is None:
        return js, note, False
    store.append_audit(
        {
            "time": iso(now),
            "user": user,
            "host": host,
            "source": via,
            "action": "resume",
            "job": name,
            "was": pause_note(old.pause),
            "summary": f"resumed {name}: {note}",
        }
    )
    return js, note, True
