"""Errors and problems.

Every problem a user can cause carries its source (file, line, column) and the field
path, so that it prints as ``path:line:col: field: message`` (octodns' habit of keeping
each loaded mapping's origin). Problems are collected and raised together.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong (or worth a warning) in the user's input."""

    path: str
    line: int = 0
    column: int = 0
    field: str = ""
    message: str = ""
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        head = f"{where}: "
        if self.severity == "warning":
            head += "warning: "
        if self.field:
            head += f"{self.field}: "
        return head + self.message

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
            "severity": self.severity,
        }


class CronfileError(Exception):
    """Base of every error cronfile reports to a user. ``exit_code`` is the CLI's."""

    exit_code = 2


class UsageError(CronfileError):
    """The command line or the environment is wrong (exit 2)."""


@dataclass
class SpecError(CronfileError):
    """One or more problems in job files or the config (exit 2)."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems if p.severity == "error")


class StateError(CronfileError):
    """The state dir or ``state.json`` cannot be used as it is (exit 2)."""


class StateWriteError(StateError):
    """The store cannot be written or locked: a full disk, a read-only filesystem,
    no permission. The state is left as it was (every write is atomic). A daemon
    waits and tries again; a command stops with this one line (exit 2) instead of an
    internal error with a traceback (found by tests/faults)."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


class StoreUnavailable(StateWriteError):
    """A shared store (a database) cannot be reached or refused the statement: nothing
    was written. A daemon waits and tries again (as for a full disk); a command exits
    2; `cronfile doctor` reports it as its "state store" check."""


class LockedError(CronfileError):
    """Another process holds a lock that this one needs (exit 2)."""


def why(e: BaseException) -> str:
    """An error in a log line: the OS's words and the file, not a repr."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror} ({e.filename})" if e.filename else e.strerror
    return str(e)
