"""Stores: where cronfile keeps state between processes (``base`` is the interface).

``open_store`` is the one place a store is chosen: the file store for a state dir, or
the store a URL names (``state_url``; the PostgreSQL store, when built).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .base import EngineInfo, Finding, HeldLock, Store, Txn

__all__ = ["EngineInfo", "Finding", "HeldLock", "Store", "Txn", "open_store"]


def open_store(*, state_dir: Path, url: str | None = None) -> Store:
    """The store for ``url`` when one is given, else the file store at ``state_dir``.
    Cheap: touches nothing until a method is called."""
    if url:
        raise UsageError(f"state store {url.split('://', 1)[0]}:// is not supported (only a state dir)")
    if (Path(state_dir) / "state.db").exists():
        # A state dir already on the SQLite store (issue 17): every command uses it.
        from .sqlite import SqliteStore

        return SqliteStore(state_dir)
    from .file import FileStore

    return FileStore(state_dir)
