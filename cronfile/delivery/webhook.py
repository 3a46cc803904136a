"""``webhook``: POST the run's result to a URL, through the httpx seam in ``http.py``.

Body formats (``format:``):

- ``json`` (default): ``{job, run_id, status, trigger, scheduled_for, started_at,
  finished_at, duration_s, exit_code, output, output_truncated, log_path, host,
  description, message}``; ``output`` is the *tail* of the output, at most 64 KiB
  (the end of an agent's answer is its summary; the end of a failing script's output is
  its error), and ``output_truncated`` is true when the engine or this cap cut it.
- ``slack``: ``{"text": <status line>, "blocks": [<status line>, <output tail in a code
  block>]}``, each section within Slack's 3000-character limit, ``& < >`` escaped.
- ``discord``: ``{"content": <status line + output tail in a code block>}`` within
  Discord's 2000-character limit; mentions in it never ping anyone.
- ``text``: ``text/plain``, the status line, a blank line, the output tail (64 KiB).

With ``secret:``, the exact body bytes are signed: ``X-Cronfile-Signature:
sha256=<hex HMAC-SHA256(secret, body)>`` (GitHub's ``X-Hub-Signature-256`` scheme). No
timestamp is signed; a receiver that fears replays can keep the ``run_id`` it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from ..secrets import MissingVariable
from ..spec import Config, Target
from .base import (
    BaseDeliverer,
    DeliveryResult,
    Report,
    status_line,
    tail_bytes,
    tail_fit,
    utf16_len,
    with_marker,
)
from .http import Http, merge_headers, outcome_result

__all__ = ["FORMATS", "WebhookDeliverer", "render", "sign"]

JSON_OUTPUT_LIMIT = 64 * 1024  # bytes of output in json and text bodies
SLACK_SECTION_LIMIT = 3000  # Slack: a section block's text
DISCORD_CONTENT_LIMIT = 2000  # Discord: a message's content
FORMATS = ("json", "slack", "discord", "text")


# -- bodies ------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _fence_safe(text: str) -> str:
    # A ``` inside the output would close the code block early; a zero-width space
    # between the backticks keeps it visible and inert.
    return text.replace("```", "``\u200b`")


def _head_fit(text: str, limit: int) -> str:
    if utf16_len(text) <= limit:
        return text
    out, used = [], 1  # room for the ellipsis
    for ch in text:
        used += utf16_len(ch)
        if used > limit:
            break
        out.append(ch)
    return "".join(out) + "…"


def _slack_escape(ch: str) -> str:
    # Slack mrkdwn: &, < and > must be escaped, everything else is literal.
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(ch, ch)


def json_body(report: Report) -> dict[str, Any]:
    output, cut = tail_bytes(report.output, JSON_OUTPUT_LIMIT)
    duration = report.duration_s
    return {
        "job": report.job,
        "run_id": report.run_id,
        "status": str(report.status),
        "trigger": str(report.trigger),
        "scheduled_for": _iso(report.scheduled_for),
        "started_at": _iso(report.started_at),
        "finished_at": _iso(report.finished_at),
        "duration_s": round(duration, 3) if duration is not None else None,
        "exit_code": report.exit_code,
        "output": output,
        "output_truncated": report.output_truncated or cut,
        "log_path": report.log_path,
        "host": report.host,
        "description": report.description,
        "message": report.message,
    }


def slack_body(report: Report) -> dict[str, Any]:
    line = _head_fit("".join(map(_slack_escape, status_line(report))), SLACK_SECTION_LIMIT)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": line}}]
    if report.output.strip():
        raw, _ = tail_bytes(report.output, JSON_OUTPUT_LIMIT)
        fence_open, fence_close = "```\n", "\n```"
        room = SLACK_SECTION_LIMIT - utf16_len(fence_open + fence_close)
        tail, cut = tail_fit(_fence_safe(raw), room, _slack_escape)
        if cut or report.output_truncated:
            marker = "[…output truncated…]\n"
            tail, _ = tail_fit(_fence_safe(raw), room - utf16_len(marker), _slack_escape)
            tail = marker + tail
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": fence_open + tail + fence_close}}
        )
    # `text` is the notification's fallback; the blocks are what the channel shows.
    return {"text": line, "blocks": blocks}


def discord_body(report: Report) -> dict[str, Any]:
    line = _head_fit(status_line(report), DISCORD_CONTENT_LIMIT // 4)
    content = line
    if report.output.strip():
        raw, _ = tail_bytes(report.output, JSON_OUTPUT_LIMIT)
        frame = line + "\n```\n" + "\n```"
        room = DISCORD_CONTENT_LIMIT - utf16_len(frame)
        tail, cut = tail_fit(_fence_safe(raw), room)
        if cut or report.output_truncated:
            marker = "[…output truncated…]\n"
            tail, _ = tail_fit(_fence_safe(raw), room - utf16_len(marker))
            tail = marker + tail
        content = line + "\n```\n" + tail + "\n```"
    # allowed_mentions: an @everyone in a job's output must not page a whole server.
    return {"content": content, "allowed_mentions": {"parse": []}}


def text_body(report: Report) -> str:
    tail, cut = tail_bytes(report.output, JSON_OUTPUT_LIMIT)
    text = status_line(report) + "\n"
    if report.output:
        text += "\n" + with_marker(tail, cut or report.output_truncated)
    return text


def render(fmt: str, report: Report) -> tuple[bytes, str]:
    """(body bytes, content type) for ``format: fmt``."""
    if fmt == "text":
        return text_body(report).encode("utf-8"), "text/plain; charset=utf-8"
    builders = {"json": json_body, "slack": slack_body, "discord": discord_body}
    if fmt not in builders:
        raise ValueError(f"unknown webhook format {fmt!r} (known: {', '.join(FORMATS)})")
    data = builders[fmt](report)
    return json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json"


def sign(secret: str, body: bytes) -> str:
    """The X-Cronfile-Signature value: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# -- the target --------------------------------------------------------------------------


class WebhookDeliverer(BaseDeliverer):
    def __init__(
        self, target: Target, config: Config, environ: Mapping[str, str], *, http: Http
    ) -> None:
        super().__init__(target, config, environ)
        self.http = http

    def deliver(self, report: Report) -> DeliveryResult:
        opts = self.target.options
        try:
            # The URL itself may be a secret (Slack and Discord webhook URLs are).
            url = self.expand(self.target.dest, "webhook")
            secret = self.expand(opts["secret"], "secret") if opts.get("secret") else None
            extra = {
                str(k): self.expand(v, f"headers.{k}")
                for k, v in (opts.get("headers") or {}).items()
            }
            body, content_type = render(str(opts.get("format", "json")), report)
        except (MissingVariable, ValueError) as e:
            return self.result(False, 0, error=str(e))
        own: dict[str, str] = {}
        if secret is not None:
            own["X-Cronfile-Signature"] = sign(secret, body)
        if report.delivery_key:
            # The same on every try and every resend after a crash: a receiver that has
            # seen it drops the copy (deliveries are at least once).
            own["X-Cronfile-Delivery"] = report.delivery_key
        # A job's `content-type` replaces ours; our signature and key replace a job's.
        headers = merge_headers({"Content-Type": content_type}, extra, own)
        return outcome_result(self, self.http.post(url, content=body, headers=headers))
