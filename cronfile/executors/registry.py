"""Every kind of job, declared once: its key in a job file (``prompt``, ``shell``,
``command``) with that key's JSON schema, the fields that apply to it alone, and the
executor that turns it into a process (docs/design.md section 6).

Derived from these declarations: the job schema's three keys and its "one of them"
rule (``cronfile.schemagen`` writes both shipped copies), the checks that a job has
exactly one and that prompt-only fields are not on other jobs (``cronfile.spec``), and
``cronfile.executors.dispatch.executor_for``.

This module imports nothing from cronfile: validation reads it, so an executor is
named here (``"module.Class"`` in this package), and ``executors/dispatch.py``, which
runs import and validation does not, resolves the name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = ["KINDS", "ExecutorKind", "Kind", "job_kind", "keys_phrase"]


class Kind(StrEnum):
    """What a job runs (cronfile.spec re-exports it)."""

    prompt = "prompt"  # An agent profile with the assembled prompt.
    shell = "shell"  # /bin/sh -c with the text.
    command = "command"  # An argv, no shell.


@dataclass(frozen=True)
class ExecutorKind:
    kind: Kind  # also the job file's key
    schema: Mapping[str, Any]  # the key's JSON schema (with a description and an example)
    executor: str  # "module.Class" in cronfile.executors
    only: tuple[str, ...] = ()  # job fields that apply to this kind alone


_KINDS = (
    ExecutorKind(
        Kind.prompt,
        {
            "type": "string",
            "minLength": 1,
            "description": "Text handed to the agent profile (see `agent`) as one argv element, or on stdin if the profile says so; never through a shell.",
            "examples": ["Summarize the alerts in ./alerts and list action items."],
        },
        "agent.AgentExecutor",
        only=("agent", "model", "permissions", "context", "allow_injection_risk", "budget", "expect"),
    ),
    ExecutorKind(
        Kind.shell,
        {
            "type": "string",
            "minLength": 1,
            "description": "A command line run by /bin/sh -c.",
            "examples": ["df -h | tail -n +2"],
        },
        "shell.ShellExecutor",
    ),
    ExecutorKind(
        Kind.command,
        {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string"},
            "description": "An argv run directly, with no shell.",
            "examples": [["python", "check.py"]],
        },
        "command.CommandExecutor",
    ),
)

KINDS: Mapping[Kind, ExecutorKind] = MappingProxyType({k.kind: k for k in _KINDS})


def job_kind(data: Mapping[str, Any]) -> Kind | None:
    """The kind of a job's data: the first declared key it has (None: it has none)."""
    return next((k for k in KINDS if k.value in data), None)


def keys_phrase() -> str:
    """``prompt, shell or command``: the keys, as messages list them."""
    keys = [k.value for k in KINDS]
    return f"{', '.join(keys[:-1])} or {keys[-1]}"
