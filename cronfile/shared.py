"""Rules for a state shared by the hosts of one database (docs/design.md 14).

Every host has its own copy of the jobs repo, and every daemon applies its copy when it
starts and when a file changes. On one host that is the truth; across hosts a copy that
is behind would put back jobs a newer copy removed, and two copies would take turns
rewriting the applied set. So, with a shared store, an apply checks the git revision
the state was last applied from: it goes ahead only from that commit or a descendant of
it (``git merge-base --is-ancestor``), and refuses otherwise, changing nothing.
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import CronfileError

__all__ = ["RevisionBehind", "check_revision", "render_daemons"]


class RevisionBehind(CronfileError):
    """This checkout does not contain the commit the shared state was applied from (exit 2;
    a daemon logs it and keeps its jobs as they are)."""


def _commit(rev: str | None) -> str | None:
    return rev.removesuffix("-dirty") if rev else None


def check_revision(root: Path, applied: str | None, ours: str | None) -> None:
    """Raise RevisionBehind unless ``ours`` is ``applied`` or a descendant of it. Either
    unknown (not a git checkout) lets the apply through: nothing to compare."""
    a, o = _commit(applied), _commit(ours)
    if not a or not o or a == o:
        return
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "merge-base", "--is-ancestor", a, o],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return
    if res.returncode == 0:
        return
    raise RevisionBehind(
        f"the shared state was applied from commit {a[:12]}, which this checkout "
        f"({o[:12]}) does not contain: pull (or check out a descendant of it) and apply "
        "again; nothing was changed"
    )


def render_daemons(daemons: list[tuple[str, int | None, Any, bool]], now: datetime) -> str:
    """The daemons of a shared store, for ``cronfile status``: host, pid, the last lease
    renewal and whether the lease holds."""
    if not daemons:
        return "\ndaemons: none is running on any host"
    rows = [("HOST", "PID", "RENEWED", "LEASE")]
    for host, pid, renewed, alive in daemons:
        ago = f"{max((now - renewed).total_seconds(), 0):.0f}s ago" if renewed is not None else "-"
        rows.append((host, str(pid or "-"), ago, "held" if alive else "expired"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\ndaemons:\n" + "\n".join(lines)
