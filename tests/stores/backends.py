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


def _open_postgres(address: str) -> Store:
    from cronfile.stores.postgres import PostgresStore

    url, local = address.split("\n", 1)
    return PostgresStore(url, Path(local))


def _setup_postgres(tmp_path: Path) -> Iterator[str]:
    """A fresh database on the session's server (tests/pg.py; the conftest starts it)."""
    import pg

    assert pg.SERVER is not None
    name = pg.SERVER.create_db()
    try:
        yield f"{pg.SERVER.url(name)}\n{tmp_path / 'local'}"
    finally:
        pg.SERVER.drop_db(name)


OPENERS: dict[str, Callable[[str], Store]] = {"file": _open_file, "sqlite": _open_sqlite, "postgres": _open_postgres}
SETUPS: dict[str, Callable[[Path], Iterator[str]]] = {"file": _setup_file, "sqlite": _setup_file, "postgres": _setup_postgres}
# How long after its holder is SIGKILLed an engine may still count as alive (a leased
# store waits out its lease; a lock the OS drops is gone at once: 0). The PostgreSQL
# store knows a dead pid on its own host at once; the lease is the bound elsewhere.
DEAD_AFTER: dict[str, float] = {"file": 0.0, "sqlite": 0.0, "postgres": 20.0}


@dataclass(frozen=True)
class Backend:
    kind: str
    address: str

    def open(self) -> Store:
        return OPENERS[self.kind](self.address)

    @property
    def dead_after(self) -> float:
        return DEAD_AFTER[self.kind]
