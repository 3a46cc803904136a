"""The store implementations the contract suite runs against, and how each is opened.

A ``Backend`` is what a test hands to a child process (it pickles): the child opens the
same store from it. To add an implementation (the PostgreSQL store): an opener in
``OPENERS`` (address -> Store) and a setup in ``SETUPS`` (a generator yielding the
address of a fresh, empty store, cleaning up after the yield). Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cronfile.stores.base import Store


def _open_file(address: str) -> Store:
    from cronfile.stores.file import FileStore

    return FileStore(Path(address))


def _setup_file(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "state")


def _open_sqlite(address: str) -> Store:
    from cronfile.stores.sqlite import SqliteStore

    return SqliteStore(Path(address))


OPENERS: dict[str, Callable[[str], Store]] = {"file": _open_file, "sqlite": _open_sqlite}
SETUPS: dict[str, Callable[[Path], Iterator[str]]] = {"file": _setup_file, "sqlite": _setup_file}
# How long after its holder is SIGKILLed an engine may still count as alive (a leased
# store waits out its lease; a lock the OS drops is gone at once: 0).
DEAD_AFTER: dict[str, float] = {"file": 0.0, "sqlite": 0.0}


@dataclass(frozen=True)
class Backend:
    kind: str
    address: str

    def open(self) -> Store:
        return OPENERS[self.kind](self.address)

    @property
    def dead_after(self) -> float:
        return DEAD_AFTER[self.kind]
