"""``shell:`` jobs: the text runs through ``/bin/sh -c``, as a crontab line does."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .base import Early, Prepared, RunContext, prepare_common

__all__ = ["ShellExecutor"]

SHELL = "/bin/sh"  # Debian cron's default SHELL; the same on every host


class ShellExecutor:
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
        return Prepared([SHELL, "-c", ctx.spec.shell or ""], cwd, env, None, masker)
