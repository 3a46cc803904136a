"""Deliveries go through the outbox (cronfile/outbox.py): they never hold a run slot, a
shutdown does not wait for a silent target past its grace, what was not sent goes out
after the restart (at least once, with one idempotency key), and no ${VAR} value reaches
a log or a delivered body. Real daemons, real sockets on 127.0.0.1, real signals."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from delivery_servers import RecordingServer
from engine_helpers import Daemon, history, wait_for, write_job

pytestmark = pytest.mark.slow


class SilentServer:
    """Accepts every connection and never answers (the issue's target)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held: list[socket.socket] = []
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def silent():
    s = SilentServer()
    yield s
    s.close()


def config(root: Path, text: str = "") -> None:
    (root / "cronfile.yaml").write_text("allow_private_webhooks: true\n" + text)


def test_a_silent_webhook_never_holds_a_run_slot(tmp_path, silent):
    config(tmp_path, "max_concurrent: 1\nshutdown_grace: 2s\n")
    write_job(tmp_path, "hooked", f'schedule: "* * * * * *"\nshell: "true"\nconcurrency: allow\ndeliver:\n  - webhook: {silent.url}\n')
    write_job(tmp_path, "every", 'schedule: "* * * * * *"\nshell: "true"\n')
    with Daemon(tmp_path) as d:
        d.wait_log(r"every run \w+ success", count=5, timeout=20)
        wait_for(lambda: silent.accepted >= 1, what="a delivery to reach the silent server")
        t0 = time.monotonic()
        assert d.stop() == 0
        took = time.monotonic() - t0
    # shutdown_grace 2 s, plus a few: the silent target does not hold the exit.
    assert took < 8, f"shutdown took {took:.1f}s"
    runs = history(tmp_path, "every")
    assert sum(r["status"] == "success" for r in runs) >= 5
    assert not [r for r in runs if r["status"] == "skipped" and "still going" in r.get("message", "")]
    outbox = list((tmp_path / ".cronfile" / "outbox").glob("*.json"))
    assert outbox, "the deliveries not made should wait in the outbox"


def test_what_a_shutdown_left_unsent_is_sent_after_the_restart_once_with_its_key(tmp_path, silent):
    config(tmp_path, "shutdown_grace: 1s\n")
    write_job(tmp_path, "once", 'schedule: "@reboot"\nshell: "echo done"\ndeliver:\n  - webhook: ${HOOK_URL}\n')
    with Daemon(tmp_path, env={"HOOK_URL": silent.url}) as d:
        d.wait_log(r"once run \w+ success")
        wait_for(lambda: silent.accepted >= 1, what="the delivery to reach the silent server")
        assert d.stop() == 0
    (run,) = history(tmp_path, "once")
    assert run["deliveries"] == []  # not made: nothing recorded as failed
    with RecordingServer() as srv:
        # The restart fires @reboot again: only the first run's request is counted.
        write_job(tmp_path, "once", 'schedule: "@daily"\nshell: "echo done"\ndeliver:\n  - webhook: ${HOOK_URL}\n')
        with Daemon(tmp_path, env={"HOOK_URL": srv.url + "/hook"}) as d:
            wait_for(lambda: srv.requests, what="the delivery after the restart")
            wait_for(lambda: history(tmp_path, "once")[0]["deliveries"], what="its result in the history")
            assert d.stop() == 0
        keys = [r.headers.get("x-cronfile-delivery") for r in srv.requests]
    assert keys == [f"{run['run_id']}.0"]
    body = json.loads(srv.requests[0].body)
    assert body["run_id"] == run["run_id"] and body["status"] == "success"
    (after,) = history(tmp_path, "once")
    assert [d["ok"] for d in after["deliveries"]] == [True]
    assert not list((tmp_path / ".cronfile" / "outbox").glob("*.json"))


def test_every_try_of_a_delivery_carries_the_same_key(tmp_path):
    config(tmp_path)
    with RecordingServer([500, 200]) as srv:
        write_job(tmp_path, "j", f'schedule: "@reboot"\nshell: "true"\ndeliver:\n  - webhook: {srv.url}/h\n')
        with Daemon(tmp_path) as d:
            wait_for(lambda: len(srv.requests) == 2, timeout=20, what="two tries")
            assert d.stop() == 0
    (run,) = history(tmp_path, "j")
    assert {r.headers["x-cronfile-delivery"] for r in srv.requests} == {f"{run['run_id']}.0"}


def test_no_var_value_reaches_the_log_or_a_delivered_body(tmp_path):
    config(tmp_path)
    secret, token = "hook-secret-4f1d2c", "bearer-token-9a8b7c"
    with RecordingServer() as srv:
        write_job(
            tmp_path,
            "leaky",
            'schedule: "@reboot"\n'
            "env:\n  T: ${TOK}\n"
            # HOOKSEC is only the delivery's: the job never gets it; TOK it gets as $T.
            'shell: \'echo "sec=[$HOOKSEC] tok=$T"; echo "' + secret + ' again"\'\n'
            "deliver:\n"
            f"  - webhook: {srv.url}/h\n"
            "    secret: ${HOOKSEC}\n"
            "    headers:\n      Authorization: Bearer ${TOK}\n",
        )
        env = {"HOOKSEC": secret, "TOK": token}
        with Daemon(tmp_path, env=env) as d:
            wait_for(lambda: srv.requests, what="the delivery")
            assert d.stop() == 0
    (run,) = history(tmp_path, "leaky")
    log = Path(run["log_path"]).read_text()
    assert "sec=[]" in log  # not passed to the job at all
    assert token not in log and secret not in log and "tok=***" in log and "*** again" in log
    (req,) = srv.requests
    assert secret not in req.text and token not in req.text
    assert req.headers["authorization"] == f"Bearer {token}"  # sent where it belongs
    assert "x-cronfile-signature" in req.headers


def test_a_run_that_waited_for_a_slot_says_so(tmp_path):
    config(tmp_path, "max_concurrent: 1\nshutdown_grace: 1s\n")
    write_job(tmp_path, "hog", 'schedule: "@reboot"\nshell: "sleep 3"\n')
    write_job(tmp_path, "small", 'schedule: "* * * * * *"\nshell: "true"\n')
    with Daemon(tmp_path) as d:
        d.wait_log(r"small run \w+ success", timeout=20)
        assert d.stop() == 0
    runs = history(tmp_path, "small")
    waited = [r for r in runs if r["status"] == "success" and r.get("slot_wait_s")]
    assert waited and "free slot" in waited[0]["message"]
    # An instant decided while the run before it still waited for the slot says so. Once
    # that run started, the next may be skipped behind it as "still going": under load
    # even `true` can outlast a second (seen in CI). An instant is decided at or before it
    # (claims ahead), and the run left the queue a moment before its started_at: an
    # instant less than a second before that may have been decided after it left (seen
    # in CI); those earlier were surely decided while it waited.
    started = datetime.fromisoformat(waited[0]["started_at"])
    skipped = [r for r in runs if r["status"] == "skipped"]
    behind_waiting = [r for r in skipped if datetime.fromisoformat(r["scheduled_for"]) < started - timedelta(seconds=1)]
    assert behind_waiting and all("waiting for a free slot" in r["message"] for r in behind_waiting), skipped
    assert all("waiting for a free slot" in r["message"] or "still going" in r["message"] for r in skipped), skipped


def test_an_entry_from_a_newer_version_is_set_aside_not_guessed(tmp_path):
    from cronfile.outbox import Outbox
    from cronfile.stores.file import FileStore

    box = tmp_path / "outbox"
    box.mkdir()
    (box / "r1.0@dead.json").write_text(json.dumps({"version": 99}))
    logs = []
    o = Outbox(FileStore(tmp_path), "me", send=lambda e, s: None, record=lambda e, r: None, log=lambda j, t: logs.append(t))
    assert o.adopt(lambda engine: False) == 0
    assert (box / "r1.0@me.json.bad").exists() and "unreadable" in logs[0]


class TrickleServer:
    """Answers one header line every 0.3 s, for ever: httpx's per-operation timeout never
    trips on it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.conns = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    @staticmethod
    def _drip(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"X-Drip: 1\r\n")
                time.sleep(0.3)
        except OSError:
            conn.close()


def test_each_try_of_a_webhook_ends_within_its_timeout_even_if_the_target_trickles():
    from cronfile.delivery.http import Http
    from cronfile.spec import Config

    srv = TrickleServer()
    http = Http(config=Config(allow_private_webhooks=True), sleep=lambda s: None, timeout=1.0, tries=2)
    t0 = time.monotonic()
    out = http.post(f"http://127.0.0.1:{srv.sock.getsockname()[1]}/h", content=b"{}", headers={}, guard=False)
    took = time.monotonic() - t0
    srv.sock.close()
    assert not out.ok and out.attempts == 2 and "timed out after 1s" in (out.error or ""), out
    assert took < 5, f"two tries of 1 s took {took:.1f}s"
