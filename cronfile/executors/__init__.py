"""Executors: how each kind of job (shell, command, prompt) becomes a process.

``executor_for(spec).prepare(ctx)`` gives a ``Prepared`` (what to spawn) or an
``Early`` outcome; ``cronfile.runner.execute`` does the spawning, waiting and retrying.
"""

from __future__ import annotations

from .base import Early, Executor, Prepared, RunContext, executor_for

__all__ = ["Early", "Executor", "Prepared", "RunContext", "executor_for"]
