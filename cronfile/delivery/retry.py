"""When to try a delivery again, and how long to wait first.

Pure: no clock, no sleeping, no I/O libraries. The deliverers turn their library's errors
into the standard ones tested here (``TimeoutError``, ``ConnectionError``, ``OSError``)
so that this module need not import httpx.
"""

from __future__ import annotations

import smtplib
import ssl

__all__ = ["BASE", "CAP", "TRIES", "backoff", "should_retry"]

TRIES = 3  # docs/design.md section 5: "webhooks: 3 tries".
BASE = 1.0  # Seconds before the second try; the third waits 2 s.
CAP = 30.0  # Never wait longer than this between tries, whatever TRIES becomes.


# I/O errors that will not go away by asking again: a refused address, a server without
# STARTTLS, a certificate that does not match.
_PERMANENT = (
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPNotSupportedError,
    ssl.SSLCertVerificationError,
)


def backoff(attempt: int, base: float = BASE, cap: float = CAP) -> float:
    """Seconds to wait after failed try number ``attempt`` (1-based): base, 2*base, 4*base...
    capped at ``cap``.

    No jitter: deliveries of one run go out once, not from a fleet of clients at the same
    instant, so there is no herd to spread; a fixed sequence keeps tests exact."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    # min() before the power would still overflow for huge attempts; cap the exponent.
    return min(cap, base * 2 ** min(attempt - 1, 62))


def should_retry(status_code: int | None, error: BaseException | None) -> bool:
    """Whether a failed try is worth repeating.

    Retried: connection errors, timeouts, DNS failures (all ``OSError``), HTTP 5xx, and
    HTTP 408 and 429, which say "try again later" in so many words. Not retried: any
    other 4xx (the request itself is wrong: a second identical one fails the same way),
    3xx (redirects are not followed, so they cannot succeed later), SMTP 5xx replies and
    refused addresses (permanent by RFC 5321), a server without STARTTLS, a bad certificate, and anything that is not an I/O error
    (a missing ``${VAR}``, a bad URL)."""
    if error is not None:
        if isinstance(error, _PERMANENT):
            return False
        code = getattr(error, "smtp_code", None)
        if isinstance(code, int):
            # RFC 5321: 4yz replies are transient, 5yz permanent.
            return 400 <= code < 500
        return isinstance(error, OSError)
    if status_code is None:
        return False
    return status_code >= 500 or status_code in (408, 429)
