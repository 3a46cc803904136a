"""Stores: where cronfile keeps state between processes (``base`` is the interface).

``open_store`` is the one place a store is chosen: the SQLite store (``state.db``) for a state dir, or
the store a URL names (``state_url``; the PostgreSQL store, when built).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import EngineInfo, Finding, HeldLock, Store, Txn

__all__ = ["EngineInfo", "Finding", "HeldLock", "Store", "Txn", "open_store"]


def open_store(*, state_dir: Path, url: str | None = None) -> Store:
    """The store for ``url`` when one is given (``stores.url.resolve``: postgresql://,
    or file:///path for a state dir), else the SQLite store (``state.db``) at ``state_dir``; for a shared
    store ``state_dir`` is this host's own folder (``Store.local_dir``). Cheap: touches
    nothing until a method is called, but a missing driver is an error here, never a
    fall-back to the state dir."""
    if url:
        from .url import PG_SCHEMES, file_url_dir

        folder = file_url_dir(url)
        if folder is not None:
            state_dir = folder
        elif url.split("://", 1)[0].lower() in PG_SCHEMES:
            from .postgres import PostgresStore, require_driver

            require_driver()
            return PostgresStore(url, state_dir)
        else:
            raise UsageError(f"state store {url.split('://', 1)[0]}:// is not supported (postgresql://, or a state dir)")
    from .sqlite import SqliteStore

    return SqliteStore(state_dir)
