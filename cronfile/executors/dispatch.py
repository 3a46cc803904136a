"""From a job to its executor, by the kind's declaration in ``registry.py``.

Separate from the registry because validation imports the registry and must not import
the executors (and through them the process machinery); runs import this module.
"""

from __future__ import annotations

from typing import Protocol

from . import agent, command, shell
from .base import Executor
from .registry import KINDS, Kind

__all__ = ["executor_for"]

_MODULES = {m.__name__.rpartition(".")[2]: m for m in (agent, command, shell)}


class _HasKind(Protocol):
    @property
    def kind(self) -> Kind: ...


def executor_for(spec: _HasKind) -> Executor:
    """The executor for a job's kind (the class its declaration names)."""
    module, _, cls = KINDS[spec.kind].executor.rpartition(".")
    return getattr(_MODULES[module], cls)()
