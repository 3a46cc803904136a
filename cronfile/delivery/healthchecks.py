"""``healthchecks``: pings in the healthchecks.io convention (also Cronitor's and
Uptime Kuma's push monitors, which accept the same URLs).

- a run starts: ``POST <url>/start?rid=<uuid>``;
- it succeeded, or was silent (a silent run did its job): ``POST <url>?rid=<uuid>``;
- it failed, timed out, was refused or interrupted: ``POST <url>/fail?rid=<uuid>``;
- it was skipped, missed or cancelled: ``POST <url>/log?rid=<uuid>``, which healthchecks
  records without changing the check's state; it already notices a run that never came,
  and a skipped run means the previous one is still going and will ping for itself.

``rid`` pairs a start with its finish so healthchecks can time overlapping runs; it must
be a UUID, so a run id that is not one is mapped to a stable ``uuid5`` of job and run id.
The body is the status line and the tail of the output, 10 KiB in all (healthchecks
keeps 100 KB per ping; the tail is where the error is).

The /start ping goes out only when the target will also receive the run's finish ping
whatever its outcome (``on:`` includes success and failure): a start that is never
closed would make healthchecks report the job as hung.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..secrets import MissingVariable
from ..spec import FAILURES, Config, Status, Target
from .base import (
    TRUNCATED,
    BaseDeliverer,
    DeliveryResult,
    Report,
    status_line,
    tail_bytes,
    target_wants,
    with_marker,
)
from .http import Http, outcome_result

__all__ = ["BODY_LIMIT", "HealthchecksDeliverer", "ping_url", "run_uuid"]

BODY_LIMIT = 10 * 1024  # bytes of output sent with a finish ping
_SUCCESS = (Status.success, Status.silent)


def run_uuid(job: str, run_id: str) -> str:
    """``run_id`` if it is a UUID, else a UUID derived from it (same input, same UUID)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cronfile:{job}/{run_id}"))


def ping_url(base: str, suffix: str, rid: str) -> str:
    """``base`` with ``suffix`` (``""``, ``/start``, ``/fail``, ``/log``) added to its path
    and ``rid`` to its query, keeping any query it already has."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + suffix
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "rid"]
    query.append(("rid", rid))
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), parts.fragment))


def suffix_for(status: str) -> str:
    if status in _SUCCESS:
        return ""
    if status in FAILURES:
        return "/fail"
    return "/log"


class HealthchecksDeliverer(BaseDeliverer):
    def __init__(
        self, target: Target, config: Config, environ: Mapping[str, str], *, http: Http
    ) -> None:
        super().__init__(target, config, environ)
        self.http = http

    def start(self, report: Report) -> DeliveryResult | None:
        if not (
            target_wants(self.target, Status.success) and target_wants(self.target, Status.failed)
        ):
            return None
        return self._ping(report, "/start", b"")

    def deliver(self, report: Report) -> DeliveryResult:
        body = status_line(report) + "\n"
        if report.output:
            room = BODY_LIMIT - len(body.encode()) - len(TRUNCATED.encode()) - 1
            tail, cut = tail_bytes(report.output, max(room, 0))
            body += "\n" + with_marker(tail, cut or report.output_truncated)
        return self._ping(report, suffix_for(report.status), body.encode("utf-8"))

    def _ping(self, report: Report, suffix: str, body: bytes) -> DeliveryResult:
        try:
            base = self.expand(self.target.dest, "healthchecks")
        except MissingVariable as e:
            return self.result(False, 0, error=str(e))
        url = ping_url(base, suffix, run_uuid(report.job, report.run_id))
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if report.delivery_key:
            headers["X-Cronfile-Delivery"] = report.delivery_key  # as webhooks (outbox.py)
        return outcome_result(self, self.http.post(url, content=body, headers=headers))
