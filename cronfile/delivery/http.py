"""The one httpx seam (STYLE.md, habit 7): :class:`Http` POSTs with the retry policy
(``retry.py``) and, for URLs from job files, the network guard (``netguard.py``). The
webhook, healthchecks and telegram targets use it; tests replace its network with
``transport=httpx.MockTransport(...)`` or point it at a local server.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..spec import Config
from . import netguard
from .base import BaseDeliverer, DeliveryResult
from .retry import TRIES, backoff, should_retry

__all__ = ["TIMEOUT", "USER_AGENT", "Http", "HttpOutcome", "merge_headers", "outcome_result"]

USER_AGENT = f"cronfile/{__version__}"
TIMEOUT = 10.0  # seconds, per connect / read / write (docs/design.md section 5)
_SNIPPET = 300  # characters of a failed response's body kept in the error


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


def merge_headers(*layers: Mapping[str, str]) -> Mapping[str, str]:
    """Request headers, later layers winning case-insensitively (HTTP header names are
    case-insensitive: a job's ``content-type`` replaces ours instead of going beside it)."""
    out = httpx.Headers()
    for layer in layers:
        out.update(layer)
    return out
