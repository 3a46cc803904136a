"""The engine's writes to state.json: serialized within the process (runs finish on
threads), timed (the daemon's lead before an instant makes room for two), and shared
(group commit: when many runs start or end together, their pid and end writes take a
few transactions instead of one each)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import CronfileError
from .state import State
from .stores.base import Store

__all__ = ["SOON", "StateWriter", "Update"]

# commit_soon: at most this long (seconds) before an update no other commit carried is
# written by a flush of its own.
SOON = 0.2


History = tuple[tuple[str, dict[str, Any]], ...]  # (job, record) lines to append


@dataclass
class Update:
    """A change waiting for a shared transaction (StateWriter.commit): history lines to
    append, then a change to the state."""

    fn: Callable[[State], State] | None
    history: History = ()
    prune: tuple[str, int] | None = None  # (job, runs to keep) once written
    on_error: Callable[[BaseException], None] | None = None  # commit_soon: no one waits
    done: bool = False
    error: BaseException | None = None
    prune_error: BaseException | None = None


class StateWriter:
    """State transactions of one engine over ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()  # held for each transaction (apply_project takes it too)
        self.seconds = 0.005  # how long a state transaction takes here (recent)
        self._updates: list[Update] = []
        self._updates_lock = threading.Lock()
        self._committer = threading.Lock()
        # The state as this writer's last transaction left it (None: unknown), and whom
        # to tell when a transaction finds another one (written by another process, or
        # by an apply here): the daemon's loop then looks at it.
        self.last: State | None = None
        self.on_foreign: Callable[[], None] | None = None
        self._soon: threading.Event | None = None  # commit_soon's flusher, once started

    def ours(self, state: State) -> bool:
        """``state`` (as the store reads it now) is what this writer last wrote or read:
        no other writer came since. The store's read returns the very object it wrote
        while the file is unchanged; anything else counts as another writer's."""
        return self.last is not None and state is self.last

    @contextmanager
    def txn(self) -> Iterator[Any]:
        """``store.transaction()``, one at a time in this process, and timed."""
        with self.lock:
            t0 = time.monotonic()
            entered = False
            ok = False
            txn: Any = None
            try:
                with self.store.transaction() as txn:
                    entered = True
                    if not self.ours(txn.state) and self.on_foreign is not None:
                        self.on_foreign()
                    yield txn
                ok = True
            finally:
                self.last = txn.state if ok and txn is not None else None
                if entered:
                    self.seconds = max(time.monotonic() - t0, 0.9 * self.seconds)

    def commit(
        self,
        update: Callable[[State], State] | None = None,
        *,
        history: History = (),
        prune: tuple[str, int] | None = None,
    ) -> BaseException | None:
        """Append ``history`` (job, record) lines, then apply ``update`` (a pure State ->
        State) to the state, in one transaction with whatever other threads submit
        meanwhile (group commit: one fsync for many runs). Returns once both are
        persisted; raises what its transaction raised (nothing of it was written; the
        caller may retry).

        Where the store's history is part of its transaction (``history_in_txn``: the
        SQLite store), the lines and the state change commit together, atomically, on
        the same connection: no second writer in this process waits on the database's
        lock. Elsewhere the lines are appended first, then the state is written.

        ``prune`` (job, keep): once written, the job's history is pruned to its last
        ``keep`` runs (``Store.prune``), the prunes of a batch in one more transaction;
        what that raised is returned (it never fails the commit)."""
        item = Update(update, tuple(history), prune)
        self._submit([item])
        if item.error is not None:
            raise item.error
        return item.prune_error

    def commit_soon(self, update: Callable[[State], State], on_error: Callable[[BaseException], None]) -> None:
        """Apply ``update`` in a shared transaction without waiting for it: the next
        commit of this writer carries it, or a flush at most ``SOON`` seconds later
        (a thread of its own, blocked while nothing waits). For what may lag a little
        and must not cost a transaction of its own: a run's pid, which its end (a
        commit that comes soon for most runs) then writes in the same transaction.
        ``on_error`` hears what its transaction raised (it is not retried)."""
        item = Update(update, on_error=on_error)
        with self._updates_lock:
            self._updates.append(item)
            if self._soon is None:
                self._soon = threading.Event()
                threading.Thread(target=self._flusher, args=(self._soon,), name="cronfile-flush", daemon=True).start()
        self._soon.set()

    def _flusher(self, soon: threading.Event) -> None:
        while True:
            soon.wait()
            time.sleep(SOON)
            soon.clear()
            with self._committer:
                with self._updates_lock:
                    batch, self._updates = self._updates, []
                if batch:
                    self._commit_batch(batch)

    def append_many(self, history: History) -> list[BaseException | None]:
        """History lines appended in shared transactions, each on its own: what each
        one's write raised (None: written)."""
        items = [Update(None, (line,)) for line in history]
        self._submit(items)
        return [u.error for u in items]

    def submit(self, items: list[Update]) -> None:
        """Commit ``items`` (with whatever else is waiting) and return once each is
        done; what went wrong is in each one's ``error`` and ``prune_error``."""
        self._submit(items)

    def _submit(self, items: list[Update]) -> None:
        with self._updates_lock:
            self._updates.extend(items)
        for item in items:
            if item.done:
                continue
            with self._committer:
                if item.done:
                    continue
                with self._updates_lock:
                    batch, self._updates = self._updates, []
                self._commit_batch(batch)

    def _commit_batch(self, batch: list[Update]) -> None:
        """Commit ``batch``, setting each update's ``done`` and ``error``."""
        atomic = bool(getattr(self.store, "history_in_txn", False))
        if not atomic:
            # Each update's lines on their own, first: one that cannot be written fails
            # its update alone, and its state change is not made (history first).
            for u in batch:
                try:
                    for job, record in u.history:
                        self.store.append_history(job, record)
                except BaseException as e:  # noqa: BLE001 - handed to its caller
                    u.error, u.done = e, True
            batch = [u for u in batch if not u.done]
        try:
            self._txn(batch, atomic)
        except (OSError, CronfileError) as e:
            # What the store or the disk said concerns every update alike, but for the
            # lines already appended above (a store whose history is not in the
            # transaction): those are written, and a retry would write them twice.
            for u in batch:
                if atomic or u.fn is not None:
                    u.error = e
        except BaseException as e:  # noqa: BLE001 - handed to its caller
            if len(batch) == 1:
                batch[0].error = e
            else:
                # One bad update must not fail the others: each again, alone.
                for u in batch:
                    try:
                        self._txn([u], atomic)
                    except BaseException as e1:  # noqa: BLE001
                        u.error = e1
        self._prune([u for u in batch if u.prune is not None and u.error is None], atomic)
        for u in batch:
            u.done = True
            if u.error is not None and u.on_error is not None:
                try:
                    u.on_error(u.error)
                except Exception:  # noqa: BLE001, S110 - a report must not fail the batch
                    pass

    def _prune(self, items: list[Update], atomic: bool) -> None:
        """The prunes of a batch's written updates: in one transaction where the store's
        history is in it (one fsync, and no second writer waiting on the database's lock
        at every run's end once a job has history_limit runs), else one by one."""
        due = getattr(self.store, "prune_due", None)
        if atomic and due is not None:
            # Only those that may drop anything (a read, no write lock): most runs' jobs
            # hold fewer than history_limit records.
            try:
                items = [u for u in items if u.prune is not None and due(*u.prune)]
            except (OSError, CronfileError) as e:
                for u in items:
                    u.prune_error = e
                return
        if not items:
            return
        if atomic:
            try:
                with self.txn():
                    for u in items:
                        assert u.prune is not None
                        self.store.prune(*u.prune)
                return
            except BaseException as e:  # noqa: BLE001 - handed to each caller; one by one below
                if isinstance(e, (OSError, CronfileError)):
                    for u in items:
                        u.prune_error = e
                    return
        for u in items:
            assert u.prune is not None
            try:
                self.store.prune(*u.prune)
            except BaseException as e:  # noqa: BLE001
                u.prune_error = e

    def _txn(self, batch: list[Update], atomic: bool) -> None:
        if not any(u.fn is not None or (atomic and u.history) for u in batch):
            return
        with self.txn() as txn:
            state = txn.state
            for u in batch:
                if atomic:
                    for job, record in u.history:
                        self.store.append_history(job, record)
                if u.fn is not None:
                    state = u.fn(state)
            if state is not txn.state:
                txn.state = state
