"""The permission floor of an unattended agent job (``permissions:``).

A scheduled agent has no human at hand to approve what it does, so what it may do is
decided in its file, up front, and handed to the CLI as that CLI's own sandbox and
approval flags (the built-in mapping is in ``cronfile.spec.BUILTIN_AGENTS``). Whatever
the level, the flags also make the CLI answer its own approval questions with "no"
instead of waiting for a person: an unattended run never waits for an approval.

Pure: levels in, ranks and marks out.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["DEFAULT", "Level", "level_of", "widening"]


class Level(StrEnum):
    """How much an agent job may do unattended, from least to most."""

    read_only = "read-only"  # Read files; change nothing, run nothing that could.
    workspace_write = "workspace-write"  # Also edit files in its workdir.
    full = "full"  # No sandbox, no approvals: anything the user running cronfile may do.

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.read_only: 0, Level.workspace_write: 1, Level.full: 2}
DEFAULT = Level.read_only


def level_of(data: Mapping[str, Any] | None) -> Level | None:
    """The level of a job's normalized data; None for a job that runs no agent."""
    if not data or "prompt" not in data:
        return None
    try:
        return Level(data.get("permissions", DEFAULT))
    except ValueError:
        return DEFAULT


def widening(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``{"from": "read-only", "to": "full"}`` when a change lets the agent do more than
    before (a new agent job counts from the read-only floor); else None."""
    new = level_of(after)
    if new is None:
        return None
    old = level_of(before) or DEFAULT
    if new.rank <= old.rank:
        return None
    return {"from": str(old), "to": str(new)}
