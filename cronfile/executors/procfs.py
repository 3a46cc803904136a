"""The one reader of ``/proc``: processes, their process groups, and which run they
belong to (a run's processes carry ``CRONFILE_RUN_ID=<run id>`` in their environment).

Used by the process-group code (executors/process.py: is a group still alive), the
containment tracker (executors/contain.py: who is whose) and the engine's recovery
(which group still runs a run whose engine died). Where there is no ``/proc`` (macOS),
``all_stats`` is empty and the callers fall back on what ``kill(2)`` tells."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "GATE_NAME",
    "RUN_ID_ENV",
    "Stat",
    "all_stats",
    "environ",
    "group_runs",
    "iter_stats",
    "live",
    "run_group",
    "run_spawned",
    "stat",
]

RUN_ID_ENV = "CRONFILE_RUN_ID"
# $0 of the gate a parked run waits behind (executors/process.py): `sh -c GATE NAME ARGV`.
GATE_NAME = "cronfile-gate"


@dataclass(frozen=True)
class Stat:
    """A process as /proc/PID/stat shows it."""

    pid: int
    ppid: int
    state: bytes
    start: int  # clock ticks after boot: with the pid, who a process is
    sid: int = 0
    pgid: int = 0


def stat(pid: int) -> Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # Fields after the parenthesised command name: state ppid pgrp session ...
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return Stat(pid, int(fields[1]), fields[0], int(fields[19]), int(fields[3]), int(fields[2]))
    except (IndexError, ValueError):
        return None


def iter_stats() -> Iterator[Stat]:
    """Every process (none without /proc), read as it is reached."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            st = stat(int(entry))
            if st is not None:
                yield st


def all_stats() -> list[Stat]:
    return list(iter_stats())


def live(st: Stat | None) -> bool:
    """Not a zombie (nor dead)."""
    return st is not None and st.state not in (b"Z", b"X")


def environ(pid: int) -> list[bytes]:
    """The process's environment (empty if it cannot be read: gone, a zombie, not ours)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _marker(run_id: str) -> bytes:
    return f"{RUN_ID_ENV}={run_id}".encode()


def group_runs(pgid: int, run_id: str) -> bool:
    """Whether process group ``pgid`` still runs run ``run_id`` (guards against PID
    reuse): a member's environment holds its run id. Without /proc we can only check
    that the group exists."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc"):
        return True
    needle = _marker(run_id)
    return any(st.pgid == pgid and needle in environ(st.pid) for st in iter_stats())


def run_group(pid: int | None, run_id: str) -> int | None:
    """The process group still running ``run_id``, if any. With no pid recorded (the
    engine died between spawning the run and recording its pid: found by tests/faults)
    the group is found by the run id in its members' environment (Linux /proc); never
    group 0, 1 or our own."""
    if pid:
        return pid if group_runs(pid, run_id) else None
    needle = _marker(run_id)
    own = os.getpgrp()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit() or needle not in environ(int(entry)):
            continue
        st = stat(int(entry))
        if st is not None and st.pgid > 1 and st.pgid != own:
            return st.pgid
    return None


def run_spawned(run_id: str) -> bool:
    """Whether a live process runs run ``run_id``'s job: found by the run id in its
    environment, and not a gate (a parked run waiting for its instant, process.py).
    For a run in flight whose pid is not recorded yet (docs/design.md 2: written up to
    0.2 s after the spawn). False without /proc."""
    needle = _marker(run_id)
    gate = GATE_NAME.encode()
    for st in iter_stats():
        if not live(st) or needle not in environ(st.pid):
            continue
        try:
            with open(f"/proc/{st.pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[3] == gate:
            continue  # behind its gate: let go at the instant, by an exec
        return True
    return False
