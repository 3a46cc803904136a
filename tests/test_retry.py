"""retry.py: the pure backoff sequence and the retry decision."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from cronfile.delivery.retry import BASE, CAP, TRIES, backoff, should_retry


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "expected"),
    [
        (1, 1.0, 30.0, 1.0),
        (2, 1.0, 30.0, 2.0),
        (3, 1.0, 30.0, 4.0),
        (5, 1.0, 30.0, 16.0),
        (6, 1.0, 30.0, 30.0),
        (2, 0.5, 30.0, 1.0),
        (10_000, 1.0, 30.0, 30.0),
    ],
    ids=["first", "second", "third", "fifth", "capped", "half-base", "huge-attempt"],
)
def test_backoff_doubles_from_base_up_to_the_cap(attempt, base, cap, expected):
    assert backoff(attempt, base, cap) == expected


def test_the_default_policy_waits_1s_then_2s_between_three_tries():
    assert TRIES == 3
    assert [backoff(a) for a in range(1, TRIES)] == [1.0, 2.0]
    assert (BASE, CAP) == (1.0, 30.0)


def test_backoff_rejects_attempts_counted_from_zero():
    with pytest.raises(ValueError, match="from 1"):
        backoff(0, 1.0, 30.0)


@pytest.mark.parametrize(
    ("status", "error", "retry"),
    [
        (200, None, False),
        (500, None, True),
        (502, None, True),
        (503, None, True),
        (400, None, False),
        (401, None, False),
        (404, None, False),
        (408, None, True),
        (429, None, True),
        (302, None, False),
        (None, None, False),
        (None, ConnectionRefusedError(111, "refused"), True),
        (None, TimeoutError("timed out"), True),
        (None, OSError("name does not resolve"), True),
        (None, ValueError("environment variable X is not set"), False),
        (None, RuntimeError("unsupported protocol"), False),
        (None, smtplib.SMTPServerDisconnected("gone"), True),
        (None, smtplib.SMTPResponseException(451, b"try later"), True),
        (None, smtplib.SMTPResponseException(554, b"no"), False),
        (None, smtplib.SMTPAuthenticationError(535, b"bad credentials"), False),
        (None, smtplib.SMTPRecipientsRefused({"a@b": (550, b"no such user")}), False),
        (None, smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), False),
        (None, ssl.SSLCertVerificationError("hostname mismatch"), False),
    ],
    ids=[
        "2xx-is-not-a-failure",
        "500",
        "502",
        "503",
        "400",
        "401",
        "404",
        "408-request-timeout",
        "429-too-many-requests",
        "redirect",
        "nothing-known",
        "connection-refused",
        "timeout",
        "dns",
        "missing-variable",
        "our-own-bad-request",
        "smtp-disconnected",
        "smtp-4xx",
        "smtp-5xx",
        "smtp-auth",
        "smtp-recipients-refused",
        "smtp-no-starttls",
        "bad-certificate",
    ],
)
def test_should_retry_transient_failures_only(status, error, retry):
    assert should_retry(status, error) is retry
