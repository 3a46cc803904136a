"""``stdout``: the run's result as one block in the engine's own log.

Under systemd or Docker the engine's stdout is the journal or ``docker logs``, so this is
the zero-setup target: ``== backup run 0193…: failed (exit 2, 3.0s) ==`` and the output.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from ..durations import format_duration
from ..spec import Config, Target
from .base import BaseDeliverer, DeliveryResult, Report

__all__ = ["StdoutDeliverer", "render"]


def render(report: Report) -> str:
    """The block: a header line, then the output (with a final newline)."""
    facts = []
    if report.exit_code is not None:
        facts.append(f"exit {report.exit_code}")
    if report.duration_s is not None:
        facts.append(format_duration(report.duration_s, rounded=True))
    head = f"== {report.job} run {report.run_id}: {report.status}"
    if facts:
        head += f" ({', '.join(facts)})"
    head += " =="
    lines = [head]
    if report.message:
        lines.append(report.message)
    if report.output_truncated:
        lines.append(f"[output truncated; the log: {report.log_path}]")
    body = "\n".join(lines) + "\n" + report.output
    return body if body.endswith("\n") else body + "\n"


class StdoutDeliverer(BaseDeliverer):
    def __init__(
        self,
        target: Target,
        config: Config,
        environ: Mapping[str, str],
        *,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(target, config, environ)
        self.stream = stream

    def deliver(self, report: Report) -> DeliveryResult:
        # sys.stdout looked up now, not at import: tests and daemons may swap it.
        stream = self.stream if self.stream is not None else sys.stdout
        try:
            # One write, so blocks of runs finishing together do not interleave line by line.
            stream.write(render(report))
            stream.flush()
        except (OSError, ValueError) as e:  # a closed pipe or a closed stream
            return self.result(False, 1, error=f"{type(e).__name__}: {e}")
        return self.result(True, 1)
