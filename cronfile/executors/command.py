"""``command:`` jobs: an argv run directly, no shell in between."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..spec import Status
from .base import Early, Prepared, RunContext, prepare_common, resolve_program

__all__ = ["CommandExecutor"]


class CommandExecutor:
    def prepare(
        self,
        ctx: RunContext,
        *,
        cancel: threading.Event | None = None,
        on_spawn: Callable[[int], None] | None = None,
    ) -> Prepared | Early:
        common = prepare_common(ctx)
        if isinstance(common, Early):
            return common
        cwd, env, masker = common
        argv = list(ctx.spec.command)
        if not argv:
            return Early(Status.failed, "command is empty", {"error": "command is empty"})
        # Resolved here, against the child's PATH and workdir, so that "not found" is a
        # clear message instead of an OSError from exec.
        program = resolve_program(argv[0], cwd, env)
        if program is None:
            msg = f"program {argv[0]!r} not found"
            msg += " in workdir" if "/" in argv[0] else " on PATH"
            return Early(Status.failed, msg, {"error": msg})
        return Prepared([program, *argv[1:]], cwd, env, None, masker)
