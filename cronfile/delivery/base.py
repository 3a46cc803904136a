"""The delivery interface: what every target receives and what it reports back.

The engine records a run first, then hands a :class:`Report` to ``deliver_all``
(``dispatch.py``, which also builds each target's deliverer from its declaration in
``kinds.py``; this module imports none of the deliverers),
which applies each target's ``on:`` filter and returns one :class:`DeliveryResult` per
target for the run's history line. A delivery never changes the run's status and never
raises (docs/design.md section 5).

Filtered-out targets get a result too (``ok=True, attempts=0, skipped="on: [failure]"``)
so that ``cronfile history`` can say why a target heard nothing; a caller that wants
only the targets that were meant to hear drops results with ``ok`` and ``skipped`` both
set. A refusal by the network guard is ``ok=False, skipped="refused: <why>"``: the user
asked for a delivery and did not get it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..durations import format_duration
from ..secrets import Masker, expand_text
from ..spec import Config, Status, Target
from .kinds import kind_of

__all__ = [
    "BaseDeliverer",
    "Deliverer",
    "DeliveryResult",
    "Report",
    "status_line",
    "target_wants",
]

TRUNCATED = "[…output truncated…]\n"  # put before a tail wherever a human reads it


@dataclass(frozen=True)
class Report:
    """One recorded run, as every target sees it. ``output`` is already masked."""

    job: str
    run_id: str
    status: str
    trigger: str
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    output: str
    output_truncated: bool
    log_path: str
    host: str
    description: str = ""
    message: str = ""  # why, when the output cannot say: a refusal, a missing program
    delivery_key: str = ""  # <run id>.<n>: the same for every try and every resend

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class DeliveryResult:
    """How one target fared. ``ok`` is False for a refusal (``skipped`` says why) and for
    a failure after every try (``error`` says why, secrets masked)."""

    target: str
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    skipped: str | None = None
    key: str | None = None  # the outbox entry's idempotency key

    def to_json(self) -> dict[str, Any]:
        # Every key always present: history lines keep one shape (docs/design.md section 7).
        return {
            "key": self.key,
            "target": self.target,
            "ok": self.ok,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "error": self.error,
            "skipped": self.skipped,
        }


class Deliverer(Protocol):
    def deliver(self, report: Report) -> DeliveryResult: ...

    def start(self, report: Report) -> DeliveryResult | None: ...


class BaseDeliverer:
    """Shared plumbing: the target, the config, the environment, and ${VAR} expansion
    that remembers every value it brought in so errors can be masked."""

    def __init__(self, target: Target, config: Config, environ: Mapping[str, str]) -> None:
        self.target = target
        self.config = config
        self.environ = environ
        self.label = target.label()
        self.secrets: list[str] = []

    def expand(self, text: str, where: str) -> str:
        value, found = expand_text(str(text), self.environ, where=where)
        self.secrets.extend(found)
        return value

    def mask(self, text: str) -> str:
        return Masker(self.secrets).mask(text)

    def result(self, ok: bool, attempts: int, **kw: Any) -> DeliveryResult:
        if kw.get("error"):
            kw["error"] = self.mask(kw["error"])
        return DeliveryResult(self.label, ok, attempts, **kw)

    def start(self, report: Report) -> DeliveryResult | None:
        return None

    def deliver(self, report: Report) -> DeliveryResult:  # pragma: no cover - abstract
        raise NotImplementedError


# -- what humans read ------------------------------------------------------------------

EMOJI: dict[str, str] = {
    Status.success: "✅",
    Status.failed: "❌",
    Status.timeout: "⏰",
    Status.silent: "🔇",
    Status.refused: "🛑",
    Status.skipped: "⏭️",
    Status.missed: "⌛",
    Status.interrupted: "⚠️",
    Status.cancelled: "🚫",
}


def status_line(report: Report) -> str:
    """One line for a chat message or a subject: ``✅ daily-briefing succeeded in 41.2s``,
    ``❌ backup failed (exit 2) after 3.0s``."""
    name, st = report.job, report.status
    dur = report.duration_s
    took = f" in {format_duration(dur, rounded=True)}" if dur is not None else ""
    after = f" after {format_duration(dur, rounded=True)}" if dur is not None else ""
    exit_ = f" (exit {report.exit_code})" if report.exit_code is not None else ""
    sentences: dict[str, str] = {
        Status.success: f"{name} succeeded{took}",
        Status.failed: f"{name} failed{exit_}{after}",
        Status.timeout: f"{name} timed out{after}",
        Status.silent: f"{name} succeeded silently{took}",
        Status.refused: f"{name} was refused",
        Status.skipped: f"{name} was skipped",
        Status.missed: f"{name} missed its start",
        Status.interrupted: f"{name} was interrupted{after}",
        Status.cancelled: f"{name} was cancelled{after}",
    }
    text = sentences.get(st, f"{name}: {st}{exit_}{after}")
    if report.message:
        text += f": {report.message}"
    return f"{EMOJI.get(st, '•')} {text}"


def tail_bytes(text: str, limit: int) -> tuple[str, bool]:
    """The last ``limit`` bytes of ``text`` in UTF-8, cut on a character boundary; and
    whether anything was cut. The tail, because the end of an agent's answer is where
    its summary is, and the end of a failing script's output is where its error is."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    # A cut inside a multi-byte character leaves continuation bytes at the front; drop them.
    return data[len(data) - limit :].decode("utf-8", "ignore"), True


def utf16_len(text: str) -> int:
    """Length as Telegram, Discord and Slack count it (UTF-16 code units): an emoji
    outside the BMP counts 2. Counting code points would overshoot their limits."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def tail_fit(
    text: str, limit: int, escape: Callable[[str], str] = lambda ch: ch
) -> tuple[str, bool]:
    """The longest tail of ``text`` whose escaped form fits in ``limit`` UTF-16 units.
    Returns (escaped tail, whether anything was cut)."""
    out: list[str] = []
    used = 0
    # Only the last `limit` characters can possibly fit; do not walk a megabyte.
    window = text[-limit:] if limit > 0 else ""
    for ch in reversed(window):
        piece = escape(ch)
        cost = utf16_len(piece)
        if used + cost > limit:
            break
        out.append(piece)
        used += cost
    kept = len(out)
    return "".join(reversed(out)), kept < len(text)


def with_marker(tail: str, cut: bool) -> str:
    return TRUNCATED + tail if cut else tail


def target_wants(target: Target, status: str) -> bool:
    """The ``on:`` filter, with one exception: a liveness monitor (healthchecks) is not a
    notification, so a silent run (which succeeded) pings it as a success wherever a
    success would. Otherwise its /start would never be closed and it would report the
    job as hung."""
    if target.wants(status):
        return True
    decl = kind_of(target.kind)
    return (
        decl is not None
        and decl.monitor
        and status == Status.silent
        and target.wants(Status.success)
    )
