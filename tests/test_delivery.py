"""Delivery targets against local stand-ins: an HTTP server on 127.0.0.1 that records
requests (webhook, healthchecks, the Telegram Bot API), aiosmtpd for email. Waits between
tries go to an injected ``sleep`` that records them, so nothing here really sleeps.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import ssl
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message

import httpx
import pytest

import cronfile.delivery.dispatch as delivery
from cronfile.delivery import webhook as webhook_mod
from cronfile.delivery.base import DeliveryResult, Report, status_line, utf16_len
from cronfile.delivery.dispatch import deliver_all, deliverer_for, notify_start
from cronfile.delivery.email import EmailDeliverer
from cronfile.delivery.healthchecks import ping_url, run_uuid
from cronfile.delivery.telegram import MAX_MESSAGES, MESSAGE_LIMIT
from cronfile.durations import format_duration
from cronfile.spec import Config, Status, Target

try:
    from delivery_servers import RecordingServer, SmtpSink, closed_port, self_signed
except ImportError:  # tests/ became a package
    from tests.delivery_servers import RecordingServer, SmtpSink, closed_port, self_signed

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
RUN_ID = "20260302T090000Z-4f2a"
ENV = {"HOOK_SECRET": "s3cr3t-hook-key", "TOKEN": "tok-abcdef123456", "BOT": "123456:AAbbCCddEE"}
PRIVATE_OK = Config(allow_private_webhooks=True)


def report(**kw) -> Report:
    base = dict(
        job="backup",
        run_id=RUN_ID,
        status="success",
        trigger="schedule",
        scheduled_for=T0,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=42.2),
        exit_code=0,
        output="line 1\nall done\n",
        output_truncated=False,
        log_path=".cronfile/runs/backup/x.log",
        host="box1",
    )
    base.update(kw)
    return Report(**base)


class Sleeps(list):
    """An injected sleep that only remembers how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def server():
    with RecordingServer() as srv:
        yield srv


def hook(url: str, **options) -> Target:
    on = tuple(options.pop("on", ("always",)))
    return Target("webhook", url, on, options)


def send(
    target: Target, rep: Report | None = None, config: Config = PRIVATE_OK, sleep=None, **kw
) -> DeliveryResult:
    d = deliverer_for(target, config, ENV, sleep=sleep if sleep is not None else Sleeps(), **kw)
    return d.deliver(rep or report())


# -- the package surface ---------------------------------------------------------------


def test_the_delivery_modules_export_exactly_their_public_api():
    import cronfile.delivery.base as base

    assert sorted(base.__all__) == [
        "BaseDeliverer",
        "Deliverer",
        "DeliveryResult",
        "Report",
        "status_line",
        "target_wants",
    ]
    assert sorted(delivery.__all__) == [
        "deliver_all",
        "deliverer_class",
        "deliverer_for",
        "notify_start",
        "pings_start",
        "streams",
        "target_wants",
    ]
    for module in (base, delivery):
        for name in module.__all__:
            assert hasattr(module, name)


def test_only_the_http_module_imports_httpx():
    from pathlib import Path

    package = Path(delivery.__file__).parent
    importers = sorted(
        p.name
        for p in package.glob("*.py")
        if any(
            line.startswith(("import httpx", "from httpx")) for line in p.read_text().splitlines()
        )
    )
    assert importers == ["http.py"]


def test_a_result_serializes_with_every_key_present():
    assert DeliveryResult("stdout", True, 1).to_json() == {
        "key": None,
        "target": "stdout",
        "ok": True,
        "attempts": 1,
        "status_code": None,
        "error": None,
        "skipped": None,
    }


def test_duration_is_finished_minus_started_or_none():
    assert report().duration_s == pytest.approx(41.2)
    assert report(finished_at=None).duration_s is None


@pytest.mark.parametrize(
    ("kw", "line"),
    [
        ({}, "✅ backup succeeded in 41.2s"),
        ({"status": "failed", "exit_code": 2}, "❌ backup failed (exit 2) after 41.2s"),
        ({"status": "timeout", "exit_code": None}, "⏰ backup timed out after 41.2s"),
        ({"status": "silent"}, "🔇 backup succeeded silently in 41.2s"),
        (
            {
                "status": "refused",
                "exit_code": None,
                "started_at": None,
                "message": "injection phrase matched",
            },
            "🛑 backup was refused: injection phrase matched",
        ),
        ({"status": "interrupted", "exit_code": None}, "⚠️ backup was interrupted after 41.2s"),
        ({"status": "cancelled", "exit_code": None}, "🚫 backup was cancelled after 41.2s"),
        ({"status": "missed", "exit_code": None, "started_at": None}, "⌛ backup missed its start"),
        ({"finished_at": T0 + timedelta(seconds=193)}, "✅ backup succeeded in 3m12s"),
    ],
    ids=[
        "success",
        "failed",
        "timeout",
        "silent",
        "refused",
        "interrupted",
        "cancelled",
        "missed",
        "minutes",
    ],
)
def test_the_status_line_reads_as_a_sentence(kw, line):
    assert status_line(report(**kw)) == line


def test_durations_read_in_the_largest_sensible_unit():
    assert [format_duration(s, rounded=True) for s in (3.04, 59.9, 60, 3599, 3600, 7325)] == [
        "3.0s",
        "59.9s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]


# -- stdout ----------------------------------------------------------------------------


def test_stdout_writes_one_block_with_a_header_and_the_output():
    out = io.StringIO()
    result = send(Target("stdout", True), report(status="failed", exit_code=2), stream=out)
    assert result == DeliveryResult("stdout", True, 1)
    assert (
        out.getvalue() == f"== backup run {RUN_ID}: failed (exit 2, 41.2s) ==\nline 1\nall done\n"
    )


def test_stdout_defaults_to_sys_stdout_at_delivery_time(capsys):
    send(Target("stdout", True), report(output="no newline", exit_code=None, finished_at=None))
    assert capsys.readouterr().out == f"== backup run {RUN_ID}: success ==\nno newline\n"


# -- webhook formats -------------------------------------------------------------------


def test_json_body_has_every_documented_field(server):
    result = send(hook(server.url + "/hook"))
    assert result.ok and result.attempts == 1 and result.status_code == 200
    (req,) = server.requests
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("cronfile/")
    assert req.json() == {
        "job": "backup",
        "run_id": RUN_ID,
        "status": "success",
        "trigger": "schedule",
        "scheduled_for": "2026-03-02T09:00:00+00:00",
        "started_at": "2026-03-02T09:00:01+00:00",
        "finished_at": "2026-03-02T09:00:42.200000+00:00",
        "duration_s": 41.2,
        "exit_code": 0,
        "output": "line 1\nall done\n",
        "output_truncated": False,
        "log_path": ".cronfile/runs/backup/x.log",
        "host": "box1",
        "description": "",
        "message": "",
    }


def big_output(kib: int = 100) -> str:
    lines = [f"line {i:06d} " + "x" * 50 for i in range(kib * 1024 // 62 + 1)]
    return "\n".join(lines) + "\nSUMMARY: 3 alerts need action\n"


def test_json_output_keeps_the_last_64_kib_and_says_it_was_cut(server):
    output = big_output(100)
    send(hook(server.url), report(output=output))
    body = server.requests[0].json()
    assert body["output_truncated"] is True
    assert len(body["output"].encode()) == 64 * 1024
    assert output.endswith(body["output"])


def test_json_keeps_the_engines_truncation_flag(server):
    send(hook(server.url), report(output_truncated=True))
    assert server.requests[0].json()["output_truncated"] is True


def test_slack_body_respects_the_section_limit_for_100_kib_of_output(server):
    output = big_output(100) + "a <b> & c\n"
    send(hook(server.url, format="slack"), report(status="failed", exit_code=2, output=output))
    body = server.requests[0].json()
    assert body["text"] == "❌ backup failed (exit 2) after 41.2s"
    head, code = body["blocks"]
    assert head == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    assert code["type"] == "section" and code["text"]["type"] == "mrkdwn"
    text = code["text"]["text"]
    assert utf16_len(text) <= 3000
    assert text.startswith("```\n[…output truncated…]\n") and text.endswith("\n```")
    assert text.endswith("SUMMARY: 3 alerts need action\na &lt;b&gt; &amp; c\n\n```")


def test_slack_without_output_sends_only_the_status_block(server):
    send(hook(server.url, format="slack"), report(output=""))
    assert len(server.requests[0].json()["blocks"]) == 1


def test_discord_content_stays_within_2000_characters_for_100_kib_of_output(server):
    output = big_output(100) + "done 🎉 ``` @everyone\n"
    send(hook(server.url, format="discord"), report(output=output))
    body = server.requests[0].json()
    content = body["content"]
    assert utf16_len(content) <= 2000
    assert content.startswith("✅ backup succeeded in 41.2s\n```\n[…output truncated…]\n")
    # A ``` in the output cannot close the code block early.
    assert content.count("```") == 2
    assert content.endswith("done 🎉 ``\u200b` @everyone\n\n```")
    assert body["allowed_mentions"] == {"parse": []}


def test_discord_short_output_is_sent_whole(server):
    send(hook(server.url, format="discord"))
    assert (
        server.requests[0].json()["content"]
        == "✅ backup succeeded in 41.2s\n```\nline 1\nall done\n\n```"
    )


def test_text_format_is_the_status_line_and_the_output(server):
    send(hook(server.url, format="text"), report(status="failed", exit_code=1))
    (req,) = server.requests
    assert req.headers["content-type"] == "text/plain; charset=utf-8"
    assert req.text == "❌ backup failed (exit 1) after 41.2s\n\nline 1\nall done\n"


def test_an_unknown_format_is_a_failed_delivery_not_an_exception(server):
    result = send(hook(server.url, format="yaml"))
    assert not result.ok and result.attempts == 0 and "unknown webhook format" in result.error
    assert server.requests == []


# -- signing, headers, secrets ---------------------------------------------------------


def test_the_signature_is_an_hmac_of_the_exact_body_bytes(server):
    send(hook(server.url, secret="${HOOK_SECRET}"))
    (req,) = server.requests
    expected = hmac.new(ENV["HOOK_SECRET"].encode(), req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-cronfile-signature"] == f"sha256={expected}"


def test_no_signature_header_without_a_secret(server):
    send(hook(server.url))
    assert "x-cronfile-signature" not in server.requests[0].headers


def test_secrets_go_in_headers_and_never_in_the_body(server):
    target = hook(
        server.url,
        format="json",
        secret="${HOOK_SECRET}",
        headers={"Authorization": "Bearer ${TOKEN}", "X-Team": "ops"},
    )
    send(target, report(output="used ${TOKEN} here\n"))
    (req,) = server.requests
    assert req.headers["authorization"] == f"Bearer {ENV['TOKEN']}"
    assert req.headers["x-team"] == "ops"
    for secret in (ENV["HOOK_SECRET"], ENV["TOKEN"]):
        assert secret.encode() not in req.body
    # The output is passed through as the engine masked it, never expanded.
    assert req.json()["output"] == "used ${TOKEN} here\n"


def test_a_job_header_replaces_ours_instead_of_doubling_it(server):
    send(hook(server.url, headers={"content-type": "application/vnd.custom+json"}))
    assert server.requests[0].headers["content-type"] == "application/vnd.custom+json"


def test_a_missing_variable_fails_the_delivery_before_sending(server):
    result = send(hook(server.url, headers={"Authorization": "Bearer ${NOPE}"}))
    assert not result.ok and result.attempts == 0
    assert "NOPE" in result.error and "headers.Authorization" in result.error
    assert server.requests == []


def test_the_url_may_come_from_the_environment(server):
    result = deliverer_for(
        hook("${HOOK_URL}"), PRIVATE_OK, {"HOOK_URL": server.url + "/x"}
    ).deliver(report())
    assert result.ok and result.target == "webhook:${HOOK_URL}"
    assert server.requests[0].path == "/x"


# -- retries ---------------------------------------------------------------------------


def test_a_500_is_tried_three_times_with_1s_and_2s_waits(sleeps):
    with RecordingServer([500, 502, (503, b"upstream down")]) as srv:
        result = send(hook(srv.url), sleep=sleeps)
    assert len(srv.requests) == 3
    assert sleeps == [1.0, 2.0]
    assert result == DeliveryResult(f"webhook:{srv.url}", False, 3, 503, "HTTP 503: upstream down")


def test_a_500_then_a_200_succeeds_on_the_second_try(sleeps):
    with RecordingServer([500, 200]) as srv:
        result = send(hook(srv.url), sleep=sleeps)
    assert (result.ok, result.attempts, result.status_code) == (True, 2, 200)
    assert sleeps == [1.0]


def test_a_400_is_not_retried(sleeps):
    with RecordingServer([(400, b'{"error": "invalid_payload"}')]) as srv:
        result = send(hook(srv.url), sleep=sleeps)
    assert len(srv.requests) == 1 and sleeps == []
    assert (result.ok, result.attempts, result.status_code) == (False, 1, 400)
    assert result.error == 'HTTP 400: {"error": "invalid_payload"}'


def test_a_redirect_is_not_followed(sleeps):
    with RecordingServer([(302, b"", {"Location": "http://169.254.169.254/"})]) as srv:
        result = send(hook(srv.url), sleep=sleeps)
    assert len(srv.requests) == 1
    assert not result.ok and result.status_code == 302 and "not followed" in result.error


def test_a_closed_port_fails_after_three_tries(sleeps):
    result = send(hook(f"http://127.0.0.1:{closed_port()}/"), sleep=sleeps)
    assert (result.ok, result.attempts, result.status_code) == (False, 3, None)
    assert result.error.startswith("connection failed")
    assert sleeps == [1.0, 2.0]


def test_a_timeout_is_retried(sleeps):
    seen = []

    def slow(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ReadTimeout("read timed out", request=request)

    result = send(hook("http://127.0.0.1:9/"), sleep=sleeps, transport=httpx.MockTransport(slow))
    assert len(seen) == 3 and sleeps == [1.0, 2.0]
    assert result.error == "timed out after 10s (ReadTimeout)"


# -- the network guard in deliveries ---------------------------------------------------


def fake_dns(table: dict[str, str]):
    def resolve(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    return resolve


def test_a_name_resolving_to_metadata_is_refused_and_recorded_with_the_reason(server):
    dns = fake_dns({"metadata.example.com": "169.254.169.254"})
    target = hook("http://metadata.example.com/latest/meta-data/")
    (result,) = deliver_all([target], report(), PRIVATE_OK, ENV, resolver=dns, sleep=Sleeps())
    assert result == DeliveryResult(
        "webhook:http://metadata.example.com/latest/meta-data/",
        False,
        0,
        skipped="refused: metadata.example.com resolves to 169.254.169.254, which is a cloud metadata address",
    )
    assert result.to_json()["skipped"].startswith("refused: ")


def test_loopback_is_refused_without_allow_private(server):
    result = send(hook(server.url), config=Config())
    assert not result.ok and result.skipped == "refused: 127.0.0.1 is loopback"
    assert server.requests == []


def test_an_exact_allowlist_entry_reaches_loopback(server):
    result = send(hook(server.url), config=Config(webhook_allowlist=("127.0.0.1",)))
    assert result.ok


def test_the_connection_goes_to_the_checked_address_with_the_name_in_host(server):
    # "hooks.test" exists only in the fake resolver: the request can only arrive if the
    # deliverer connected to the address the guard checked, not to the name.
    dns = fake_dns({"hooks.test": "127.0.0.1"})
    config = Config(webhook_allowlist=("hooks.test",))
    result = send(hook(f"http://hooks.test:{server.port}/h"), config=config, resolver=dns)
    assert result.ok
    assert server.requests[0].headers["host"] == f"hooks.test:{server.port}"


def test_https_is_pinned_with_the_name_as_sni():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    dns = fake_dns({"hooks.example.com": "93.184.215.14"})
    result = send(
        hook("https://hooks.example.com/x"), resolver=dns, transport=httpx.MockTransport(handler)
    )
    assert result.ok
    (request,) = seen
    assert request.url == "https://93.184.215.14/x"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


@pytest.fixture
def tls_server(tmp_path):
    """An https stand-in whose certificate names hooks.test, and a client transport
    that trusts it (in place of the system's CAs)."""
    made = self_signed(tmp_path, "hooks.test")
    if made is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = made
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with RecordingServer(tls=server_ctx) as srv:
        yield srv, httpx.HTTPTransport(verify=client_ctx)


def test_https_reaches_the_pinned_address_and_verifies_the_name(tls_server):
    srv, transport = tls_server
    dns = fake_dns({"hooks.test": "127.0.0.1"})
    config = Config(webhook_allowlist=("hooks.test",))
    result = send(
        hook(f"https://hooks.test:{srv.port}/h"), config=config, resolver=dns, transport=transport
    )
    assert result.ok, result
    assert srv.requests[0].headers["host"] == f"hooks.test:{srv.port}"


def test_https_with_a_certificate_for_another_name_fails_without_retrying(tls_server, sleeps):
    srv, transport = tls_server
    dns = fake_dns({"other.test": "127.0.0.1"})
    config = Config(webhook_allowlist=("other.test",))
    result = send(
        hook(f"https://other.test:{srv.port}/h"),
        config=config,
        resolver=dns,
        transport=transport,
        sleep=sleeps,
    )
    assert (result.ok, result.attempts) == (False, 1) and sleeps == []
    assert "certificate" in result.error.lower(), result.error
    assert srv.requests == []


def test_a_dns_failure_is_retried_then_reported(sleeps):
    result = send(hook("https://nowhere.test/"), sleep=sleeps, resolver=fake_dns({}))
    assert (result.ok, result.attempts) == (False, 3)
    assert "Name or service not known" in result.error


# -- healthchecks ----------------------------------------------------------------------


def hc(url: str, on=("always",)) -> Target:
    return Target("healthchecks", url, tuple(on))


def test_healthchecks_pings_start_then_success_with_the_same_rid(server):
    target = hc(server.url + "/ping/abc")
    started = notify_start([target], report(), PRIVATE_OK, ENV)
    finished = deliver_all([target], report(), PRIVATE_OK, ENV)
    assert [r.ok for r in started + finished] == [True, True]
    start, done = server.requests
    rid = run_uuid("backup", RUN_ID)
    assert (start.path, start.query) == ("/ping/abc/start", {"rid": [rid]})
    assert (done.path, done.query) == ("/ping/abc", {"rid": [rid]})
    assert done.text.startswith("✅ backup succeeded in 41.2s\n\nline 1\nall done\n")


@pytest.mark.parametrize(
    ("status", "path"),
    [
        ("success", "/p"),
        ("silent", "/p"),
        ("failed", "/p/fail"),
        ("timeout", "/p/fail"),
        ("refused", "/p/fail"),
        ("interrupted", "/p/fail"),
        ("skipped", "/p/log"),
        ("missed", "/p/log"),
        ("cancelled", "/p/log"),
    ],
    ids=lambda v: str(v),
)
def test_healthchecks_pings_the_endpoint_for_each_outcome(server, status, path):
    (result,) = deliver_all([hc(server.url + "/p/")], report(status=status), PRIVATE_OK, ENV)
    assert result.ok
    assert server.requests[0].path == path


def test_healthchecks_failure_body_is_the_tail_of_the_output_within_10_kib(server):
    output = big_output(50)
    deliver_all(
        [hc(server.url)], report(status="failed", exit_code=3, output=output), PRIVATE_OK, ENV
    )
    (req,) = server.requests
    assert req.path == "/fail"
    assert len(req.body) <= 10 * 1024
    assert req.text.startswith("❌ backup failed (exit 3) after 41.2s\n\n[…output truncated…]\n")
    assert req.text.endswith("SUMMARY: 3 alerts need action\n")


def test_healthchecks_start_is_not_sent_when_the_finish_might_not_be():
    target = hc("http://127.0.0.1:9/p", on=("failure",))
    assert notify_start([target], report(), PRIVATE_OK, ENV) == []


def test_only_healthchecks_answers_a_run_start(server):
    targets = [Target("stdout", True), hook(server.url), hc(server.url)]
    results = notify_start(targets, report(), PRIVATE_OK, ENV, stream=io.StringIO())
    assert [r.target for r in results] == [f"healthchecks:{server.url}"]
    assert [r.path for r in server.requests] == ["/start"]


def test_a_uuid_run_id_is_the_rid_itself():
    rid = str(uuid.uuid4())
    assert run_uuid("backup", rid) == rid
    assert (
        run_uuid("backup", "not-a-uuid")
        == run_uuid("backup", "not-a-uuid")
        != run_uuid("other", "not-a-uuid")
    )


def test_ping_url_keeps_an_existing_query():
    assert (
        ping_url("https://hc.example/abc/?create=1", "/fail", "R")
        == "https://hc.example/abc/fail?create=1&rid=R"
    )


def test_healthchecks_urls_go_through_the_guard():
    dns = fake_dns({"hc.example.com": "169.254.169.254"})
    (result,) = deliver_all(
        [hc("https://hc.example.com/p")], report(), PRIVATE_OK, ENV, resolver=dns
    )
    assert not result.ok and result.skipped.startswith("refused: ")


# -- telegram --------------------------------------------------------------------------


def telegram_config(url: str) -> Config:
    # The Bot API endpoint is operator config, so no allow_private_webhooks here.
    return Config(telegram_api=url)


def tg(chat="-1001234", token="${BOT}", on=("always",)) -> Target:
    return Target("telegram", chat, tuple(on), {"token": token})


def test_telegram_sends_chat_id_and_text(server):
    result = send(tg(), config=telegram_config(server.url))
    assert result.ok and result.attempts == 1 and result.target == "telegram:-1001234"
    (req,) = server.requests
    assert req.path == f"/bot{ENV['BOT']}/sendMessage"
    assert req.json() == {
        "chat_id": "-1001234",
        "text": "✅ backup succeeded in 41.2s\n\nline 1\nall done\n",
    }


def test_telegram_splits_a_long_output_into_at_most_three_messages(server):
    output = big_output(100)
    send(tg(chat=42), report(output=output), config=telegram_config(server.url))
    texts = [r.json()["text"] for r in server.requests]
    assert 1 < len(texts) <= MAX_MESSAGES
    assert all(utf16_len(t) <= MESSAGE_LIMIT for t in texts)
    assert all(r.json()["chat_id"] == 42 for r in server.requests)
    assert texts[0].startswith("✅ backup succeeded in 41.2s\n\n[…output truncated…]\n")
    assert texts[-1].endswith("SUMMARY: 3 alerts need action\n")
    # Cut at line breaks: every message but the last ends with one.
    assert all(t.endswith("\n") for t in texts)


def test_telegram_counts_emoji_as_two_units(server):
    send(tg(), report(output="🎉" * 10_000), config=telegram_config(server.url))
    assert all(utf16_len(r.json()["text"]) <= MESSAGE_LIMIT for r in server.requests)


def test_telegram_never_puts_the_token_in_an_error(sleeps):
    body = json.dumps(
        {"ok": False, "description": f"Not Found: /bot{ENV['BOT']}/sendMessage"}
    ).encode()
    with RecordingServer([(404, body)]) as srv:
        result = send(tg(), config=telegram_config(srv.url), sleep=sleeps)
    assert not result.ok and result.status_code == 404
    assert ENV["BOT"] not in result.error and "/bot***/sendMessage" in result.error


def test_telegram_connection_errors_are_masked_and_retried(sleeps):
    result = send(
        tg(token=ENV["BOT"]),
        config=telegram_config(f"http://127.0.0.1:{closed_port()}"),
        sleep=sleeps,
    )
    assert (result.ok, result.attempts) == (False, 3)
    assert ENV["BOT"] not in json.dumps(result.to_json())


def test_telegram_without_a_token_fails_clearly():
    result = send(tg(token=""), config=telegram_config("http://127.0.0.1:9"))
    assert not result.ok and "needs token" in result.error


# -- email -----------------------------------------------------------------------------


@pytest.fixture
def smtp():
    sink = SmtpSink()
    with sink.running():
        yield sink


def smtp_config(port: int, **extra) -> Config:
    return Config(smtp={"host": "127.0.0.1", "port": port, "from": "cron@box1.example", **extra})


def parse(envelope) -> Message:
    return message_from_bytes(envelope.original_content)


def test_email_mails_the_status_line_and_the_output(smtp):
    target = Target("email", ["ops@example.com", "dev@example.com"])
    result = send(target, report(status="failed", exit_code=2), config=smtp_config(smtp.port))
    assert result == DeliveryResult("email:['ops@example.com', 'dev@example.com']", True, 1)
    (env,) = smtp.envelopes
    assert env.mail_from == "cron@box1.example"
    assert env.rcpt_tos == ["ops@example.com", "dev@example.com"]
    msg = parse(env)
    assert msg["Subject"] == "[cronfile] backup failed"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Cronfile-Run-Id"] == RUN_ID
    body = msg.get_payload(decode=True).decode().replace("\r\n", "\n")  # SMTP sends CRLF
    assert body == "❌ backup failed (exit 2) after 41.2s\n\nline 1\nall done\n"


def test_email_uses_the_targets_subject(smtp):
    send(
        Target("email", "ops@example.com", options={"subject": "Nightly backup"}),
        config=smtp_config(smtp.port),
    )
    assert parse(smtp.envelopes[0])["Subject"] == "Nightly backup"


def test_a_line_break_in_the_subject_is_refused_not_injected(smtp):
    target = Target("email", "ops@example.com", options={"subject": "hi\nBcc: x@evil.example"})
    result = send(target, config=smtp_config(smtp.port))
    assert (result.ok, result.attempts) == (False, 0) and "cannot build the message" in result.error
    assert smtp.envelopes == []


def test_email_to_a_closed_port_fails_after_three_tries(sleeps):
    result = send(
        Target("email", "ops@example.com"), config=smtp_config(closed_port()), sleep=sleeps
    )
    assert (result.ok, result.attempts) == (False, 3) and sleeps == [1.0, 2.0]


def test_a_refused_recipient_is_not_retried(sleeps):
    sink = SmtpSink(reject_rcpt="550 5.1.1 no such user")
    with sink.running():
        result = send(
            Target("email", "ghost@example.com"), config=smtp_config(sink.port), sleep=sleeps
        )
    assert (result.ok, result.attempts) == (False, 1) and sleeps == []
    assert "ghost@example.com (550)" in result.error


def test_starttls_is_required_when_configured(smtp, sleeps):
    # The stand-in offers no STARTTLS: a configured starttls must not fall back to
    # sending the password in the clear.
    config = smtp_config(smtp.port, starttls=True, username="cron", password="${TOKEN}")
    result = send(Target("email", "ops@example.com"), config=config, sleep=sleeps)
    assert (result.ok, result.attempts) == (False, 1)
    assert "STARTTLS" in result.error and ENV["TOKEN"] not in result.error
    assert smtp.envelopes == []


def test_starttls_then_login_then_send(tmp_path):
    made = self_signed(tmp_path, "smtp.test", san="IP:127.0.0.1")
    if made is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = made
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sink = SmtpSink(tls=server_ctx)
    with sink.running():
        config = smtp_config(sink.port, starttls=True, username="cron", password="${TOKEN}")
        deliverer = EmailDeliverer(
            Target("email", "ops@example.com"),
            config,
            ENV,
            sleep=Sleeps(),
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
        result = deliverer.deliver(report())
    assert result.ok, result
    assert sink.logins == [("cron", ENV["TOKEN"])]
    assert len(sink.envelopes) == 1


# -- deliver_all: filters and failures ---------------------------------------------------


@pytest.mark.parametrize(
    ("on", "status", "delivered"),
    [
        (("always",), "success", True),
        (("always",), "failed", True),
        (("always",), "silent", False),
        (("failure",), "success", False),
        (("failure",), "failed", True),
        (("failure",), "timeout", True),
        (("failure",), "silent", False),
        (("success",), "success", True),
        (("success",), "failed", False),
        (("silent",), "silent", True),
        (("silent",), "success", False),
        (("success", "silent"), "silent", True),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, tuple) else str(v),
)
def test_the_on_filter_decides_who_hears_about_a_run(server, on, status, delivered):
    (result,) = deliver_all([hook(server.url, on=on)], report(status=status), PRIVATE_OK, ENV)
    assert bool(server.requests) is delivered
    if not delivered:
        assert result == DeliveryResult(
            f"webhook:{server.url}", True, 0, skipped=f"on: [{', '.join(on)}]"
        )


def test_healthchecks_hears_a_silent_run_as_a_success_by_default(server):
    (result,) = deliver_all([hc(server.url)], report(status="silent"), PRIVATE_OK, ENV)
    assert result.ok and result.attempts == 1
    assert server.requests[0].path == "/"


def test_deliver_all_never_raises_when_every_try_fails(sleeps):
    port = closed_port()
    targets = [
        hook(f"http://127.0.0.1:{port}/"),
        hc(f"http://127.0.0.1:{port}/p"),
        tg(),
        Target("email", "ops@example.com"),
        Target("pager", "x"),
        hook("http://169.254.169.254/"),
    ]
    config = Config(
        allow_private_webhooks=True,
        telegram_api=f"http://127.0.0.1:{port}",
        smtp={"host": "127.0.0.1", "port": port},
    )
    results = deliver_all(targets, report(status="failed"), config, ENV, sleep=sleeps)
    assert [r.ok for r in results] == [False] * 6
    assert [r.attempts for r in results] == [3, 3, 3, 3, 0, 0]
    assert "unknown delivery target 'pager'" in results[4].error
    assert results[5].skipped == "refused: 169.254.169.254 is a cloud metadata address"


def test_a_crashing_deliverer_becomes_a_masked_error(server, monkeypatch):
    def boom(fmt, report):
        raise RuntimeError(f"bug while holding {ENV['HOOK_SECRET']}")

    monkeypatch.setattr(webhook_mod, "render", boom)
    targets = [hook(server.url, secret="${HOOK_SECRET}"), hook(server.url, format="text")]
    results = deliver_all(targets, report(), PRIVATE_OK, ENV)
    assert results[0] == DeliveryResult(
        f"webhook:{server.url}", False, 0, error="RuntimeError: bug while holding ***"
    )
    assert not results[1].ok  # the same bug, and the loop went on past the first


# -- the contract: every deliverer, one test body ------------------------------------------


KINDS = ["stdout", "webhook", "healthchecks", "telegram", "email"]


@pytest.fixture(params=KINDS)
def any_target(request, server, smtp):
    kind = request.param
    config = Config(
        allow_private_webhooks=True,
        telegram_api=server.url,
        smtp={"host": "127.0.0.1", "port": smtp.port, "from": "cron@box1.example"},
    )
    target = {
        "stdout": Target("stdout", True),
        "webhook": hook(server.url),
        "healthchecks": hc(server.url + "/p"),
        "telegram": tg(),
        "email": Target("email", "ops@example.com"),
    }[kind]
    return target, config


@pytest.mark.parametrize("status", [s.value for s in Status], ids=str)
def test_every_deliverer_returns_one_labelled_result_for_every_status(any_target, status):
    target, config = any_target
    rep = replace(report(status=status), output="héllo 🎉\n" * 3)
    results = deliver_all([target], rep, config, ENV, stream=io.StringIO(), sleep=Sleeps())
    assert len(results) == 1
    (result,) = results
    assert result.target == target.label()
    assert result.ok, result
    json.dumps(result.to_json())  # history lines are JSON
