"""``telegram``: the run's result as Bot API ``sendMessage`` calls.

``POST {telegram_api}/bot{token}/sendMessage`` with ``{"chat_id", "text"}``, plain text
(no ``parse_mode``, so nothing in the output needs escaping). A message holds at most
4096 characters (counted in UTF-16, as Telegram does); a result is the status line, a
blank line and the tail of the output, split into at most 3 messages, cut at a line
break where one is near. Three, because more than that buries a chat; the full output
is in ``cronfile logs``.

The token is part of the URL, so it is masked in every error this target reports. The
Bot API endpoint comes from cronfile.yaml (``telegram_api``), not from a job file, so it
is not held to ``webhook_allowlist``: whoever edits the config already controls the
engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..secrets import MissingVariable
from ..spec import Config, Target
from .base import TRUNCATED, BaseDeliverer, DeliveryResult, Report, status_line, tail_fit, utf16_len
from .http import Http

__all__ = ["MAX_MESSAGES", "MESSAGE_LIMIT", "TelegramDeliverer", "messages"]

MESSAGE_LIMIT = 4096
MAX_MESSAGES = 3
_LOOK_BACK = 512  # how far back from a message's end a line break is looked for


def split(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` UTF-16 units, each ending at a line break when one lies
    within the last ``_LOOK_BACK`` units, so a piece is never shorter than
    ``limit - _LOOK_BACK`` unless it is the last."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        end, used = 0, 0
        for i, ch in enumerate(rest):
            used += utf16_len(ch)
            if used > limit:
                break
            end = i + 1
        cut = rest.rfind("\n", 0, end)
        if cut > 0 and utf16_len(rest[cut:end]) <= _LOOK_BACK:
            end = cut + 1
        pieces.append(rest[:end])
        rest = rest[end:]
    if rest:
        pieces.append(rest)
    return pieces


def messages(report: Report) -> list[str]:
    """The texts to send, at most MAX_MESSAGES of at most MESSAGE_LIMIT each."""
    line = status_line(report)
    if utf16_len(line) > MESSAGE_LIMIT // 2:
        line = line[: MESSAGE_LIMIT // 4] + "…"
    if not report.output.strip():
        return [line]
    head = line + "\n\n"
    # Budget so that splitting (each piece at least limit - look-back) cannot make more
    # than MAX_MESSAGES pieces.
    room = MAX_MESSAGES * (MESSAGE_LIMIT - _LOOK_BACK) - utf16_len(head)
    tail, cut = tail_fit(report.output, room)
    if cut or report.output_truncated:
        tail, _ = tail_fit(report.output, room - utf16_len(TRUNCATED))
        tail = TRUNCATED + tail
    return [piece for piece in split(head + tail) if piece.strip()]


class TelegramDeliverer(BaseDeliverer):
    def __init__(
        self, target: Target, config: Config, environ: Mapping[str, str], *, http: Http
    ) -> None:
        super().__init__(target, config, environ)
        self.http = http

    def deliver(self, report: Report) -> DeliveryResult:
        try:
            token = self.expand(self.target.options.get("token", ""), "token")
            chat = self.target.dest
            chat_id = self.expand(chat, "telegram") if isinstance(chat, str) else chat
        except MissingVariable as e:
            return self.result(False, 0, error=str(e))
        if not token:
            return self.result(False, 0, error="telegram needs token: (e.g. ${TELEGRAM_BOT_TOKEN})")
        # Mask the token even when it was written literally rather than as ${VAR}.
        self.secrets.append(token)
        url = f"{self.config.telegram_api.rstrip('/')}/bot{token}/sendMessage"
        texts = messages(report)
        attempts = 0
        last_status: int | None = None
        for n, text in enumerate(texts, 1):
            body = json.dumps({"chat_id": chat_id, "text": text}, ensure_ascii=False).encode(
                "utf-8"
            )
            out = self.http.post(
                url, content=body, headers={"Content-Type": "application/json"}, guard=False
            )
            attempts += out.attempts
            last_status = out.status_code
            if not out.ok:
                where = f"message {n} of {len(texts)}: " if len(texts) > 1 else ""
                return self.result(
                    False,
                    attempts,
                    status_code=out.status_code,
                    error=where + (out.error or "failed"),
                )
        return self.result(True, attempts, status_code=last_status)
