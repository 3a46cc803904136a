"""``email``: mail the run's output, the cron tradition (Debian cron's MAILTO).

SMTP settings come from cronfile.yaml's ``smtp`` mapping: ``host`` (default localhost),
``port`` (default 465 with ``ssl``, 587 with ``starttls``, else 25), ``starttls``,
``ssl`` (implicit TLS), ``username`` and ``password`` (``${VAR}`` expanded), ``from``
(default ``cronfile@<hostname>``). Recipients are the target's address or list. The
subject is the target's ``subject`` or ``[cronfile] <job> <status>``; the body is the
status line, a blank line and the output (the engine has already capped it).

Like cron, the mail says it was sent by a machine (``Auto-Submitted: auto-generated``,
RFC 3834) so vacation responders do not answer it. Tries: 3, as webhooks, on connection
errors, timeouts and SMTP 4xx replies; never on 5xx (RFC 5321: permanent).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ..secrets import MissingVariable
from ..spec import Config, Target
from .base import BaseDeliverer, DeliveryResult, Report, status_line, tail_bytes, with_marker
from .retry import TRIES, backoff, should_retry

__all__ = ["BODY_LIMIT", "TIMEOUT", "EmailDeliverer", "build_message"]

TIMEOUT = 10.0  # seconds, for the connection and each SMTP command
BODY_LIMIT = 1024 * 1024  # the engine's default output cap; a guard if it was raised


def build_message(
    report: Report, sender: str, recipients: list[str], subject: str | None
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject or f"[cronfile] {report.job} {report.status}"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    # A domain given: make_msgid() would otherwise ask DNS for this host's FQDN.
    if report.delivery_key:
        # Stable across resends (deliveries are at least once): mail systems and
        # clients drop a second message with the same Message-ID.
        msg["Message-ID"] = f"<{report.delivery_key}.cronfile@{report.host or socket.gethostname()}>"
    else:
        msg["Message-ID"] = make_msgid(domain=report.host or socket.gethostname())
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Cronfile-Job"] = report.job
    msg["X-Cronfile-Run-Id"] = report.run_id
    msg["X-Cronfile-Status"] = str(report.status)
    tail, cut = tail_bytes(report.output, BODY_LIMIT)
    body = status_line(report) + "\n"
    if report.output:
        body += "\n" + with_marker(tail, cut or report.output_truncated)
    if report.output_truncated or cut:
        body += f"\n\nFull output: {report.log_path} on {report.host}\n"
    msg.set_content(body)
    return msg


class EmailDeliverer(BaseDeliverer):
    def __init__(
        self,
        target: Target,
        config: Config,
        environ: Mapping[str, str],
        *,
        sleep: Callable[[float], None],
        tries: int = TRIES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(target, config, environ)
        self.sleep = sleep
        self.tries = tries
        # None: the system's CAs. Tests hand in a context that trusts their own server.
        self.ssl_context = ssl_context

    def deliver(self, report: Report) -> DeliveryResult:
        smtp = dict(self.config.smtp)
        try:
            dest = self.target.dest
            recipients = [
                self.expand(a, "email") for a in ([dest] if isinstance(dest, str) else dest)
            ]
            username = (
                self.expand(smtp["username"], "smtp.username") if smtp.get("username") else None
            )
            password = (
                self.expand(smtp["password"], "smtp.password") if smtp.get("password") else None
            )
            sender = self.expand(
                smtp.get("from") or f"cronfile@{socket.gethostname()}", "smtp.from"
            )
            subject = self.target.options.get("subject")
            # ${VAR} values never reach a delivery (docs/design.md section 5): a subject is
            # sent as written, references and all.
            subject = str(subject) if subject else None
        except MissingVariable as e:
            return self.result(False, 0, error=str(e))
        if password:
            self.secrets.append(password)  # masked even when written literally
        try:
            msg = build_message(report, sender, recipients, subject)
        except ValueError as e:  # a line break in a header: refused, not injected
            return self.result(False, 0, error=f"cannot build the message: {e}")
        for attempt in range(1, self.tries + 1):
            try:
                self._send(smtp, msg, username, password)
                return self.result(True, attempt)
            except Exception as e:  # smtplib raises OSError subclasses and a few others
                error = _describe(e)
                if attempt == self.tries or not should_retry(None, e):
                    code = getattr(e, "smtp_code", None)
                    return self.result(
                        False,
                        attempt,
                        status_code=code if isinstance(code, int) else None,
                        error=error,
                    )
            self.sleep(backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, smtp: Mapping[str, Any], msg: EmailMessage, username: str | None, password: str | None
    ) -> None:
        host = str(smtp.get("host") or "localhost")
        use_ssl = bool(smtp.get("ssl"))
        starttls = bool(smtp.get("starttls"))
        port = int(smtp.get("port") or (465 if use_ssl else 587 if starttls else 25))
        context = self.ssl_context or ssl.create_default_context()
        client: smtplib.SMTP
        if use_ssl:
            client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=TIMEOUT)
        with client:
            client.ehlo()
            if starttls and not use_ssl:
                client.starttls(context=context)
                client.ehlo()  # RFC 3207: forget what was learnt before TLS
            if username:
                client.login(username, password or "")
            client.send_message(msg)


def _describe(e: BaseException) -> str:
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(f"{addr} ({code})" for addr, (code, _) in e.recipients.items())
        return f"recipients refused: {refused}"
    if isinstance(e, smtplib.SMTPResponseException):
        text = (
            e.smtp_error.decode("utf-8", "replace")
            if isinstance(e.smtp_error, bytes)
            else str(e.smtp_error)
        )
        return f"SMTP {e.smtp_code}: {text}"
    if isinstance(e, TimeoutError | socket.timeout):
        return f"timed out after {TIMEOUT:g}s"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
