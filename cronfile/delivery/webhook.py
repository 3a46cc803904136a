"""``webhook``: POST the run's result to a URL; and the HTTP plumbing every HTTP target uses.

This is the only module that imports httpx (STYLE.md, habit 7): :class:`Http` is the
seam, used by webhook, healthchecks and telegram, and tests replace its network with
``transport=httpx.MockTransport(...)`` or point it at a local server.

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
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..secrets import MissingVariable
from ..spec import Config, Target
from . import netguard
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
from .retry import TRIES, backoff, should_retry

__all__ = ["FORMATS", "Http", "HttpOutcome", "WebhookDeliverer", "render", "sign"]

USER_AGENT = f"cronfile/{__version__}"
TIMEOUT = 10.0  # seconds, per connect / read / write (docs/design.md section 5)
JSON_OUTPUT_LIMIT = 64 * 1024  # bytes of output in json and text bodies
SLACK_SECTION_LIMIT = 3000  # Slack: a section block's text
DISCORD_CONTENT_LIMIT = 2000  # Discord: a message's content
FORMATS = ("json", "slack", "discord", "text")
_SNIPPET = 300  # characters of a failed response's body kept in the error


# -- HTTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpOutcome:
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    refused: str | None = None  # "refused: <why>"; nothing was sent
    body: str = ""  # the start of the last response's body


class _Refused(Exception):
    pass


class Http:
    """POST with the retry policy (retry.py) and, for URLs from job files, the network
    guard (netguard.py), connecting to the address that was checked."""

    def __init__(
        self,
        *,
        config: Config,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None],
        resolver: netguard.Resolver = netguard.default_resolver,
        tries: int = TRIES,
        timeout: float = TIMEOUT,
    ) -> None:
        self.config = config
        self.transport = transport
        self.sleep = sleep
        self.resolver = resolver
        self.tries = tries
        self.timeout = timeout

    def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        guard: bool = True,
    ) -> HttpOutcome:
        """POST ``content``; up to ``tries`` tries. ``guard`` applies netguard (and
        re-checks before every try, so a DNS answer that changes between tries is
        judged again). Never raises for network trouble."""
        for attempt in range(1, self.tries + 1):
            status: int | None = None
            snippet = ""
            err: BaseException | None = None
            try:
                status, snippet = self._send_once(url, content, headers, guard)
            except _Refused as r:
                return HttpOutcome(False, attempt - 1, refused=f"refused: {r}")
            except httpx.TimeoutException as e:
                err = TimeoutError(f"timed out after {self.timeout:g}s ({type(e).__name__})")
            except httpx.TransportError as e:
                err = _as_builtin(e)
            except OSError as e:  # DNS, from the guard's resolver
                err = e
            if err is None and status is not None and 200 <= status < 300:
                return HttpOutcome(True, attempt, status, body=snippet)
            error = _describe(status, snippet, err)
            if attempt == self.tries or not should_retry(status, err):
                return HttpOutcome(False, attempt, status, error, body=snippet)
            self.sleep(backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self, url: str, content: bytes, headers: Mapping[str, str], guard: bool
    ) -> tuple[int, str]:
        try:
            u = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise _Refused(f"invalid URL ({e})") from None
        # httpx.Headers merges case-insensitively: a job's `content-type` replaces ours
        # instead of going out beside it.
        # identity: the few bytes of an error body we keep are then readable as they come.
        hdrs = httpx.Headers({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        hdrs.update(headers)
        extensions: dict[str, Any] = {}
        target = u
        if guard:
            # Check the URL as httpx will send it, so that the two URL parsers (urllib's
            # in netguard, httpx's here) cannot disagree about which host is meant.
            canonical = str(u)
            host = u.raw_host.decode("ascii").lower()
            if (urlsplit(canonical).hostname or "").lower() != host.strip("[]"):
                raise _Refused(f"ambiguous URL host ({host!r})")
            addresses, reason = netguard.check_url(
                canonical,
                allowlist=self.config.webhook_allowlist,
                allow_private=self.config.allow_private_webhooks,
                resolver=self.resolver,
            )
            if reason is not None:
                raise _Refused(reason)
            # Pin: connect to the checked address; the name still goes in Host and, for
            # https, in SNI, against which httpcore also verifies the certificate.
            target = u.copy_with(host=addresses[0])
            hdrs["Host"] = u.netloc.decode("ascii")
            if u.scheme == "https":
                extensions["sni_hostname"] = host
        # trust_env=False: an HTTP(S)_PROXY from the environment would connect to the
        # proxy instead of the checked address, undoing the pin.
        with httpx.Client(
            transport=self.transport,
            timeout=self.timeout,
            follow_redirects=False,  # a redirect could lead past the guard
            trust_env=False,
        ) as client:
            # httpx's timeout is per operation: an endpoint that trickles a header byte
            # every few seconds never trips it. The whole try gets `timeout` seconds;
            # then its connection is closed under it (the read fails at once).
            expired = threading.Event()

            def expire() -> None:
                expired.set()
                client.close()

            timer = threading.Timer(self.timeout, expire)
            timer.daemon = True
            timer.start()
            try:
                request = client.build_request(
                    "POST", target, content=content, headers=hdrs, extensions=extensions
                )
                response = client.send(request, stream=True)
                try:
                    # Read only the start: a hostile endpoint could answer with gigabytes.
                    got = b""
                    try:
                        for chunk in response.iter_raw():
                            got += chunk
                            if len(got) >= 4096:
                                break
                    except httpx.StreamConsumed:  # a transport that answered with a read body
                        got = response.content
                finally:
                    response.close()
            except (httpx.TransportError, RuntimeError):
                if expired.is_set():
                    raise httpx.ReadTimeout(f"no complete answer within {self.timeout:g}s") from None
                raise
            finally:
                timer.cancel()
            return response.status_code, got[:4096].decode("utf-8", "replace")


def _as_builtin(e: httpx.TransportError) -> BaseException:
    """httpx's errors as the standard ones retry.should_retry understands."""
    cause: BaseException | None = e
    for _ in range(10):  # a bounded walk: exception chains can, rarely, loop
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause  # permanent: asking again gets the same certificate
        cause = cause.__cause__ or cause.__context__
    if isinstance(e, httpx.NetworkError | httpx.RemoteProtocolError):
        return ConnectionError(str(e) or type(e).__name__)
    # UnsupportedProtocol, ProxyError, LocalProtocolError: our request is wrong.
    return RuntimeError(f"{type(e).__name__}: {e}")


def _describe(status: int | None, snippet: str, err: BaseException | None) -> str:
    if err is not None:
        if isinstance(err, TimeoutError):
            return str(err)
        text = str(err) or type(err).__name__
        return f"connection failed: {text}" if isinstance(err, OSError) else text
    line = " ".join(snippet.split())[:_SNIPPET]
    out = f"HTTP {status}"
    if status is not None and 300 <= status < 400:
        out += " (redirects are not followed; use the final URL)"
    return f"{out}: {line}" if line else out


def outcome_result(deliverer: BaseDeliverer, out: HttpOutcome) -> DeliveryResult:
    if out.refused:
        return deliverer.result(False, out.attempts, skipped=deliverer.mask(out.refused))
    return deliverer.result(out.ok, out.attempts, status_code=out.status_code, error=out.error)


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
        headers = httpx.Headers({"Content-Type": content_type})
        headers.update(extra)
        if secret is not None:
            headers["X-Cronfile-Signature"] = sign(secret, body)
        if report.delivery_key:
            # The same on every try and every resend after a crash: a receiver that has
            # seen it drops the copy (deliveries are at least once).
            headers["X-Cronfile-Delivery"] = report.delivery_key
        return outcome_result(self, self.http.post(url, content=body, headers=headers))
