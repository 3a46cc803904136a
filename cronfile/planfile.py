"""Saved plans: `cronfile diff --out PLAN`, then `cronfile apply --plan PLAN`.

Like terraform's saved plan (and octodns' ``--checksum``): apply carries out the plan
that was reviewed, or nothing. The file records digests of what the plan was computed
from, the job files (and cronfile.yaml) and the applied set in the state; ``apply
--plan`` recomputes both under the state lock and refuses (exit 2, nothing changed) if
either moved, or if the plan it would carry out is not the saved one.

The state's digest covers what reconcile compares (each applied job's spec hash, its
schedule signature and its state), not the runtime fields a running engine rewrites on
every fire (``next_run``, ``running``): a daemon firing jobs does not invalidate a
reviewed plan, another apply does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CronfileError

if TYPE_CHECKING:
    from .load import Project
    from .reconcile import Plan
    from .state import State

__all__ = ["PLAN_VERSION", "PlanMoved", "file_digests", "make_plan_file", "plan_key", "read_plan_file", "state_digest", "verify"]

PLAN_VERSION = 1
KIND = "cronfile-plan"


class PlanMoved(CronfileError):
    """The repo or the state is no longer what the saved plan was computed from (exit 2)."""


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digests(project: Project) -> dict[str, str]:
    """Each file the project was loaded from (cronfile.yaml and the job files), by its
    path relative to the repo root, with the digest of its bytes as they are now."""
    from .load import CONFIG_NAME

    root = project.root
    paths = [root / CONFIG_NAME] if (root / CONFIG_NAME).exists() else []
    paths += [Path(p) if os.path.isabs(p) else Path(p) for p in project.file_names]
    out: dict[str, str] = {}
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), os.path.abspath(root))
        try:
            out[rel] = _sha(Path(p).read_bytes())
        except OSError:
            out[rel] = "missing"
    return dict(sorted(out.items()))


def _combined(files: Mapping[str, str]) -> str:
    return _sha(json.dumps(sorted(files.items())).encode())


def state_digest(state: State) -> str:
    """The applied set: (name, spec hash, schedule signature, state) of every job."""
    rows = sorted((name, js.spec_hash, js.schedule_sig, str(js.state)) for name, js in state.jobs.items())
    return _sha(json.dumps(rows).encode())


def plan_key(plan: Plan) -> list[list[Any]]:
    """What a plan does, without the clock's part (next runs move with time): each
    change's name, action and fields."""
    from .reconcile import Action

    return [[c.name, str(c.action), list(c.fields)] for c in plan.changes if c.action is not Action.unchanged]


def make_plan_file(project: Project, state: State, plan: Plan, *, now: datetime, revision: str | None) -> dict[str, Any]:
    from .clock import iso

    files = file_digests(project)
    return {
        "kind": KIND,
        "version": PLAN_VERSION,
        "created_at": iso(now),
        "root": str(project.root.resolve()),
        "revision": revision,
        "files_digest": _combined(files),
        "files": files,
        "state_digest": state_digest(state),
        "plan": plan.to_json(),
        "key": plan_key(plan),
    }


def read_plan_file(path: Path) -> dict[str, Any]:
    from .errors import UsageError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"--plan {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"--plan {path}: not a plan file ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise UsageError(f"--plan {path}: not a plan file (written by `cronfile diff --out`)")
    if data.get("version") != PLAN_VERSION:
        raise UsageError(f"--plan {path}: plan version {data.get('version')!r} is not one this cronfile reads ({PLAN_VERSION})")
    return data


def verify(saved: Mapping[str, Any], project: Project, state: State, plan: Plan, *, shown: str) -> None:
    """Raise PlanMoved, saying what moved, unless ``plan`` (computed now from ``project``
    and ``state``) is exactly the saved one, from the same files and applied set."""
    # Not the root's path: a plan made in CI (another checkout of the same files, a copy
    # of the state) applies on the host; the digests say whether it is the same.
    moved: list[str] = []
    files = file_digests(project)
    old_files: Mapping[str, str] = saved.get("files") or {}
    if _combined(files) != saved.get("files_digest"):
        changed = sorted(f for f in set(files) | set(old_files) if files.get(f) != old_files.get(f))
        for f in changed[:5]:
            what = "added" if f not in old_files else "removed" if f not in files else "changed"
            moved.append(f"{f} {what}")
        if len(changed) > 5:
            moved.append(f"and {len(changed) - 5} more files")
        if not changed:
            moved.append("the job files changed")
    if state_digest(state) != saved.get("state_digest"):
        moved.append("the applied state changed (another apply, or the daemon re-applied)")
    if not moved and plan_key(plan) != saved.get("key"):
        moved.append("the plan computed now differs from the saved one")
    if moved:
        raise PlanMoved(
            f"{shown} is stale: " + "; ".join(moved) + ". Nothing was applied; run `cronfile diff --out` again and review it"
        )
