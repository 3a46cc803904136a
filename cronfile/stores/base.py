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
- **History** (``append_history``, ``read_history``, ``last_runs``, ``history_jobs``,
  ``prune``): one record per run, append-only, read back oldest first; a record appended
  later for the same ``run_id`` (the deliveries line) is merged by readers (docs/design.md
  7.2). ``last_runs`` reads every job's last few runs at once (``status``).
- **Logs** (``log_file``, ``keep_log``, ``read_log``, ``log_ids``): a run writes its
  output to a local file the store names; once the run ends ``keep_log`` makes it durable
  where the store keeps logs and returns what the history records as ``log_path``. Callers
  read a log back through ``read_log`` only, never by opening ``log_path``.
- **Audit** (``append_audit``, ``read_audit``).
- **Engines** (``engine_lock``, ``engine_alive``, ``engines``): liveness of each engine
  (daemon, tick, run); a dead engine's runs are recovered by a live one.
- **The daemon** (``daemon_lock``, ``daemon_running``, ``daemon_pid``): one daemon per
  state dir, or per host for a shared store.
- **The outbox** (``outbox_put``, ``outbox_pending``, ``outbox_adopt``, ``outbox_done``,
  ``outbox_bad``): deliveries persisted before they are sent, at least once. The store
  keeps each entry as opaque bytes under its key (``cronfile.outbox.Entry`` encodes and
  decodes them), so an entry it cannot decode is the caller's to set aside.
- **Diagnosis** (``created``, ``write_problem``, ``clock_skew``, ``written_at``,
  ``inspect``): what ``cronfile doctor`` and ``/healthz`` ask of a store.

Errors: a store that cannot be written raises ``errors.StateWriteError`` (a daemon waits
and tries again); a lock held elsewhere past its timeout is ``errors.LockedError``;
unreadable state is ``errors.StateError``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from ..state import State

__all__ = ["EngineInfo", "Finding", "HeldLock", "Store", "Txn", "tail_runs"]


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
    """Something this process holds until ``release`` (or the end of a ``with``). Keep a
    reference: a lock object dropped may be released when it is garbage-collected."""

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
    where: str | None = None  # what to show a person: its lock file, its row


@dataclass(frozen=True)
class Finding:
    """One thing ``cronfile doctor`` reports about a store (``Store.inspect``)."""

    check: str  # the check's name, e.g. "state dir"
    level: str  # "ok" | "info" | "warn" | "fail"
    message: str
    fix: str | None = None


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

    def watch_file(self) -> Path | None:
        """The file another process's commit changes (the daemon watches it), or None
        when there is none to watch (a database elsewhere: the daemon polls instead)."""
        ...

    def child_env(self) -> dict[str, str]:
        """Environment variables that make a child ``cronfile`` open this same store."""
        ...

    # -- state and claims ----------------------------------------------------------

    def ensure(self) -> None:
        """Create what the store needs (directories, tables); idempotent."""
        ...

    def created(self) -> bool:
        """Whether ``ensure`` ever ran for this store (it may hold no state yet)."""
        ...

    def exists(self) -> bool:
        """Whether any state was ever written (an apply happened)."""
        ...

    def read(self) -> State: ...

    def transaction(self) -> AbstractContextManager[Txn]: ...

    # -- history -------------------------------------------------------------------

    def append_history(self, job: str, record: dict[str, Any]) -> None: ...

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]: ...

    def last_runs(self, n: int) -> dict[str, list[dict[str, Any]]]:
        """Every job's records of its last ``n`` runs, in one read (``status`` at 10,000
        jobs made a query per job): job -> records, oldest first, for the jobs with any
        run. A run is the records sharing a ``run_id``, placed by its first record (a
        deliveries line appended later does not move it); records without a ``run_id``
        are no run and are left out. Per job, what ``tail_runs(read_history(job), n)``
        returns."""
        ...

    def history_jobs(self) -> list[str]:
        """Names of the jobs that have any history or log (deleted jobs' stay), sorted."""
        ...

    def prune(self, job: str, keep: int) -> None:
        """Keep the last ``keep`` runs (records sharing a ``run_id`` are one run) and
        their logs; drop the rest with their logs."""
        ...

    # -- logs ----------------------------------------------------------------------

    def log_file(self, job: str, run_id: str) -> Path:
        """The local file a run writes its output to while it runs."""
        ...

    def keep_log(
        self, job: str, run_id: str, *, limit: int | None = None, empty: bool = False, engine: str | None = None
    ) -> str | None:
        """Make a finished run's log durable (at most ``limit`` bytes: its head, as the
        runner keeps it); return what the history records as ``log_path`` (None: the run
        wrote no log). Also called for a dead engine's run, by the engine recovering it.
        ``empty``: the run had a log that stayed empty, so its file was never made
        (cronfile/runlog.py): its ``log_path`` all the same, and readers read it as empty.
        ``engine``: the engine that ran it, when the caller is another (recovery): a run
        of another host's engine has its log there, not here, and ``empty`` then says
        nothing about it (None, as for any log not on this host)."""
        ...

    def read_log(self, job: str, run_id: str, *, offset: int = 0, limit: int | None = None) -> bytes | None:
        """A run's log from byte ``offset``, at most ``limit`` bytes; None when there is
        no log (never written, or pruned). A run in flight on this host reads as far as
        it has written (``logs -f`` polls with a growing offset)."""
        ...

    def log_ids(self, job: str) -> list[str]:
        """Run ids of the job that have a log (kept, or being written here), sorted."""
        ...

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

    def outbox_put(self, engine_id: str, entries: list[tuple[str, bytes]]) -> None:
        """Persist (key, body) entries owned by ``engine_id``, durably, before any is
        sent. Raises OSError or StateWriteError when they cannot be written."""
        ...

    def outbox_pending(self, run_id: str) -> list[str]:
        """The keys of a run's entries not yet done, whichever engine owns them."""
        ...

    def outbox_adopt(self, engine_id: str, alive: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        """Take over the entries of engines ``alive`` calls dead, and return them with
        all of ``engine_id``'s own (left from before a restart, or still queued: the
        caller skips those it holds). Each entry is taken by one engine only."""
        ...

    def outbox_done(self, engine_id: str, key: str) -> None:
        """The entry was delivered and recorded: remove it."""
        ...

    def outbox_bad(self, engine_id: str, key: str, why: str) -> None:
        """Set an entry aside that cannot be decoded: never adopted or pending again."""
        ...

    # -- diagnosis -----------------------------------------------------------------

    def write_problem(self) -> str | None:
        """Why the store cannot be written right now (a probe write), or None."""
        ...

    def clock_skew(self, time_now: Callable[[], float]) -> float | None:
        """The store's clock minus ``time_now()`` in seconds (a file's mtime, a
        database's now()); None when it cannot tell (nothing set up yet)."""
        ...

    def written_at(self) -> datetime | None:
        """When the state was last written, by the store's clock (None: never)."""
        ...

    def inspect(self) -> list[Finding]:
        """The store's own checks for ``cronfile doctor`` (file modes and owners; a
        reachable database, its schema version)."""
        ...


def tail_runs(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The records of the last ``n`` runs among ``records`` (one job's history, oldest
    first), in their order: ``Store.last_runs``'s meaning for one job. A run is placed by
    its first record; records without a ``run_id`` are left out."""
    if n <= 0:
        return []
    firsts: dict[str, int] = {}
    for i, rec in enumerate(records):
        rid = rec.get("run_id")
        if isinstance(rid, str) and rid and rid not in firsts:
            firsts[rid] = i
    if len(firsts) > n:
        kept = set(list(firsts)[-n:])
    else:
        kept = set(firsts)
    return [rec for rec in records if isinstance(rec.get("run_id"), str) and rec["run_id"] in kept]
