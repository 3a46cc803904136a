"""Fixtures of the store contract suite: ``backend`` (and ``store``) once per
implementation in ``backends.SETUPS``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cronfile.stores.base import Store

from .backends import SETUPS, Backend


@pytest.fixture(params=sorted(SETUPS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        request.getfixturevalue("pg_server")  # a real server (tests/pg.py), for the session
    setup = SETUPS[request.param](tmp_path)
    address = next(setup)
    try:
        yield Backend(request.param, address)
    finally:
        next(setup, None)


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
