"""Shared fixtures: generic helpers only (a spec factory and a fake clock)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

# The checkout's root, importable without an install (harmless once `pip install -e .`
# has run); child processes that tests spawn get it on PYTHONPATH the same way.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pg import pg_server, pg_url  # noqa: E402,F401  (a real PostgreSQL: tests/pg.py)

from cronfile.clock import FakeClock  # noqa: E402
from cronfile.spec import JobSpec, spec_from_data  # noqa: E402


def require_program(name: str, install: str) -> str:
    """The path of program `name`, which a test drives for real. Missing: in CI
    (`CI` set, as .ci/run runs) the test fails with the command that installs it, since
    .ci/run is meant to have installed it; elsewhere it is skipped with that command."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed; install it with: {install}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


# A Monday, well clear of any daylight-saving change in Europe or the US.
EPOCH = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def build_spec(**fields: Any) -> JobSpec:
    """A JobSpec from fields, normalized the way ``load`` normalizes a job file:
    defaults for name, schedule, timezone and a ``shell`` body; keys sorted; JSON values.
    Pass ``shell=None`` (or give ``prompt``/``command``) to drop the default body; a value
    of None removes a field."""
    data: dict[str, Any] = {"name": "job", "schedule": "0 9 * * *", "timezone": "UTC"}
    if not {"prompt", "command"} & set(fields):
        data["shell"] = "true"
    if "prompt" in fields and "agent" not in fields:
        data["agent"] = "codex"
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return spec_from_data(json.loads(json.dumps(data, sort_keys=True)))


# The fault suite's figures (tests/faults/conftest.py) when pytest-xdist runs the tests
# in workers (`pytest -n 2`, as CI does): the controlling process collects no tests, so
# it prints the figures each worker handed back.
_WORKER_FIGURES: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    _WORKER_FIGURES.extend(getattr(node, "workeroutput", {}).get("fault_figures", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _WORKER_FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for line in _WORKER_FIGURES:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True, scope="session")
def _private_parse_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every cronfile the tests run (in-process or spawned: they inherit the
    environment) keeps its parse cache in a temporary folder, not in ~/.cache."""
    import os

    old = os.environ.get("CRONFILE_CACHE_DIR")
    os.environ["CRONFILE_CACHE_DIR"] = str(tmp_path_factory.mktemp("parse-cache"))
    yield
    if old is None:
        os.environ.pop("CRONFILE_CACHE_DIR", None)
    else:
        os.environ["CRONFILE_CACHE_DIR"] = old


@pytest.fixture
def make_spec() -> Callable[..., JobSpec]:
    """``make_spec(name="backup", schedule="every 30m")`` -> JobSpec."""
    return build_spec


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock at 2026-03-02 08:00 UTC (a Monday)."""
    return FakeClock(EPOCH)
