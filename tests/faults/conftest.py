"""The fault suite's switches: ``--long`` (or CRONFILE_FAULTS_LONG=1) runs every attack
for minutes and prints its figures; without it a fast subset runs in the normal
``pytest -q``. Every test below this folder carries the ``faults`` marker, so
``pytest -m faults`` runs the suite alone and ``-m "not faults"`` leaves it out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import FIGURES

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="fault suite (tests/faults): run every attack for minutes and print its figures",
    )


def long_mode(config: pytest.Config) -> bool:
    # The option exists only when this conftest is loaded before the command line is
    # parsed (`pytest tests/faults --long`); the variable works from anywhere.
    try:
        flag = bool(config.getoption("long"))
    except ValueError:
        flag = False
    return flag or os.environ.get("CRONFILE_FAULTS_LONG", "") not in ("", "0")


@pytest.fixture
def long(request: pytest.FixtureRequest) -> bool:
    """True in --long mode."""
    return long_mode(request.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for line in FIGURES:
        terminalreporter.write_line(line)


# Under pytest-xdist (`pytest -n 2`, as CI runs) the figures are made in a worker; each
# worker hands its own to the controlling process, which prints them (tests/conftest.py).
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_figures"] = list(FIGURES)
