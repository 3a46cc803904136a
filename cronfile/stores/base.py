"""The store interface: everything cronfile keeps between processes, as protocols.

An engine, the CLI, doctor, the MCP server and the status page talk to a store only
through these methods; nothing outside a store names a path inside the state dir
(docs/design.md 1.1). Implementations:

- ``cronfile.stores.file.FileStore``: the state dir on local disk (``.cronfile/``).
- ``cronfile.stores.postgres.PostgresStore``: a PostgreSQL database shared by daemons on
  several hosts (``state_url: postgresql://...``).

``tests/stores/`` holds one contract suite that every implementation must pass (in the
spirit of APScheduler 4's data-store tests): what a caller may rely on is what that suite
checks, not what one implementation happens to do.

The pieces, and the guarantee each carries:

- **State** (``read``, ``transaction``): the applied set and each job's runtime record
  (``cronfile.state.State``). A transaction is serializable: of two concurrent
  read-modify-writes, the second sees the first's result. An exception inside the block
  writes nothing. ``read`` takes no lock and sees a committed state, never a torn one.
- **Claims**: a claim is a ``Running`` entry a transaction adds to a job. Because
  transactions are serializable, a (job, scheduled instant) is claimed at most once
  across every process (and, for a shared store, every host) using the store.
- **History** (``append_history``, ``read_history``, ``history_jobs``, ``prune``): one
  record per run, append-only, read back oldest first; a record appended later for the
  same ``run_id`` (the deliveries line) is merged by readers (docs/design.md 7.2).
- **Logs** (``log_file``, ``keep_log``, ``read_log``): a run writes its output to a local
  file the store names; once the run ends ``keep_log`` makes it durable where the store
  keeps logs and returns what the history records as ``log_path``.
- **Audit** (``append_audit``, ``read_audit``).
- **Engines** (``engine_lock``, ``engine_alive``, ``engines``): liveness of each engine
  (daemon, tick, run); a dead engine's runs are recovered by a live one.
- **The daemon** (``daemon_lock``, ``daemon_running``, ``daemon_pid``): one daemon per
  state dir, or per host for a shared store.
- **The outbox** (``outbox_put``, ``outbox_pending``, ``outbox_adopt``, ``outbox_done``,
  ``outbox_bad``): deliveries persisted before they are sent, at least once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from ..state import State

if TYPE_CHECKING:
    from ..outbox import Entry

__all__ = ["EngineInfo", "HeldLock", "Store", "Txn"]


class Txn:
    """One read-modify-write of the state: read ``state``, assign a new one."""

    def __init__(self, state: State) -> None:
        self.original = state
        self.state = state

    @property
    def changed(self) -> bool:
        """Whether ``state`` was replaced (a store may still find nothing to write)."""
        return self.state is not self.original


class HeldLock(Protocol):
    """Something this process holds until ``release`` (or the end of a ``with``)."""

    @property
    def held(self) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class EngineInfo:
    """One engine a store knows of (``status``, ``doctor``)."""

    engine_id: str
    alive: bool
    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    renewed_at: datetime | None = None  # the last lease renewal, for a leased store


@runtime_checkable
class Store(Protocol):
    """Where cronfile keeps its state. See the module docstring for the guarantees."""

    @property
    def location(self) -> str:
        """What to show a person: a directory, or a URL without its password."""
        ...

    @property
    def local_dir(self) -> Path:
        """This host's own directory for what never leaves it (the daemon's health file,
        logs of runs in flight). For the file store it is the state dir itself."""
        ...

    # -- state and claims ----------------------------------------------------------

    def ensure(self) -> None: ...

    def exists(self) -> bool:
        """Whether any state was ever written (an apply happened)."""
        ...

    def read(self) -> State: ...

    def transaction(self) -> AbstractContextManager[Txn]: ...

    # -- history -------------------------------------------------------------------

    def append_history(self, job: str, record: dict[str, Any]) -> None: ...

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]: ...

    def history_jobs(self) -> list[str]:
        """Names of the jobs that have any history (deleted jobs' history stays)."""
        ...

    def prune(self, job: str, keep: int) -> None: ...

    # -- logs ----------------------------------------------------------------------

    def log_file(self, job: str, run_id: str) -> Path:
        """The local file a run writes its output to while it runs."""
        ...

    def keep_log(self, job: str, run_id: str, *, limit: int | None = None) -> str | None:
        """Make a finished run's log durable (at most ``limit`` bytes, its tail); return
        what the history records as ``log_path`` (None: the run wrote no log)."""
        ...

    def read_log(self, job: str, run_id: str) -> bytes | None: ...

    # -- audit ---------------------------------------------------------------------

    def append_audit(self, record: dict[str, Any]) -> None: ...

    def read_audit(self) -> list[dict[str, Any]]: ...

    # -- engines and the daemon ----------------------------------------------------

    def engine_lock(self, engine_id: str) -> HeldLock: ...

    def engine_alive(self, engine_id: str) -> bool: ...

    def engines(self) -> list[EngineInfo]: ...

    def daemon_lock(self) -> HeldLock: ...

    def daemon_running(self) -> bool: ...

    def daemon_pid(self) -> int | None: ...

    # -- the delivery outbox -------------------------------------------------------

    def outbox_put(self, engine_id: str, entries: list[Entry]) -> None: ...

    def outbox_pending(self, run_id: str) -> list[str]:
        """The keys of a run's deliveries not yet done."""
        ...

    def outbox_adopt(self, engine_id: str, alive: Callable[[str], bool]) -> list[Entry]:
        """Take over the entries of engines that are not alive (and this engine's own
        left from before a restart): each entry is taken by one engine only."""
        ...

    def outbox_done(self, engine_id: str, key: str) -> None: ...

    def outbox_bad(self, engine_id: str, key: str, why: str) -> None: ...
