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

from .state import State
from .stores.base import Store

__all__ = ["StateWriter"]


@dataclass
class _Update:
    """A change to state.json waiting for a shared transaction (StateWriter.commit)."""

    fn: Callable[[State], State]
    done: bool = False
    error: BaseException | None = None


class StateWriter:
    """State transactions of one engine over ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()  # held for each transaction (apply_project takes it too)
        self.seconds = 0.005  # how long a state transaction takes here (recent)
        self._updates: list[_Update] = []
        self._updates_lock = threading.Lock()
        self._committer = threading.Lock()
        # The state as this writer's last transaction left it (None: unknown), and whom
        # to tell when a transaction finds another one (written by another process, or
        # by an apply here): the daemon's loop then looks at it.
        self.last: State | None = None
        self.on_foreign: Callable[[], None] | None = None

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

    def commit(self, update: Callable[[State], State]) -> None:
        """Apply ``update`` (a pure State -> State) to state.json, in one transaction
        with whatever other threads submit meanwhile. Returns once ``update`` is
        persisted; raises what its transaction raised (nothing of that batch was
        written; the caller may retry)."""
        item = _Update(update)
        with self._updates_lock:
            self._updates.append(item)
        with self._committer:
            if not item.done:
                with self._updates_lock:
                    batch, self._updates = self._updates, []
                try:
                    with self.txn() as txn:
                        state = txn.state
                        for u in batch:
                            state = u.fn(state)
                        if state is not txn.state:
                            txn.state = state
                except BaseException as e:
                    for u in batch:
                        u.error, u.done = e, True
                else:
                    for u in batch:
                        u.done = True
        if item.error is not None:
            raise item.error
