"""A session that holds the PostgreSQL state's lock and then says nothing -- a hung
host, or one whose connection a partition left half-open -- does not stop the others
for good: the server ends a cronfile session idle inside a transaction after
IDLE_IN_TXN_S, rolling back what it wrote, and the lock goes (docs/design.md 14.3)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from engine_helpers import wait_for
from pg import PgServer, TcpProxy

from cronfile.errors import LockedError
from cronfile.state import JobState
from cronfile.stores.postgres import IDLE_IN_TXN_S, STALE_MARGIN_S, PostgresStore

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _job(name: str) -> JobState:
    return JobState(spec={"name": name, "shell": "true"}, spec_hash=f"h-{name}", schedule_sig="s", created_at=T0, next_run=T0)


def _hold_the_lock(store: PostgresStore) -> tuple[Any, int]:
    """A session of ``store`` (cronfile's own settings) that locks the meta row, writes
    to it, and then sits: (its connection, its server pid)."""
    conn = store._connect()
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("BEGIN")
    conn.execute("SELECT 1 FROM cronfile_meta WHERE id = 1 FOR UPDATE")
    conn.execute("UPDATE cronfile_meta SET revision = 'written by the stuck session' WHERE id = 1")
    return conn, pid


def _write_through(waiter: PostgresStore) -> list[str]:
    """Write a job through ``waiter``, again after each lock wait that timed out (as the
    engine does), within the bound a stuck holder is given; what each timeout said."""
    t0 = time.monotonic()
    said: list[str] = []
    while True:
        try:
            with waiter.transaction() as txn:
                txn.state = txn.state.with_job("two", _job("two"))
            return said
        except LockedError as e:
            said.append(str(e))
            assert time.monotonic() - t0 < IDLE_IN_TXN_S + STALE_MARGIN_S + 20, said


def _alive(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0] == 1


def test_a_cronfile_session_stuck_in_a_transaction_is_ended_and_its_lock_goes(pg_url: str, tmp_path: Path) -> None:
    stuck, other = PostgresStore(pg_url, tmp_path / "stuck"), PostgresStore(pg_url, tmp_path / "other")
    with other.transaction() as txn:
        txn.state = txn.state.with_job("one", _job("one")).with_(revision="r1")
    conn, pid = _hold_the_lock(stuck)
    t0 = time.monotonic()
    tries = 0
    while True:  # as the daemon does: a lock wait that timed out is tried again
        tries += 1
        try:
            with other.transaction() as txn:
                txn.state = txn.state.with_job("two", _job("two"))
            break
        except LockedError:
            assert time.monotonic() - t0 < IDLE_IN_TXN_S + other.lock_timeout + 10, "the stuck session kept the lock"
    waited = time.monotonic() - t0
    # Not before the server's limit (the lock was held), and within one more lock wait.
    assert IDLE_IN_TXN_S - 1 <= waited <= IDLE_IN_TXN_S + other.lock_timeout + 10, waited
    assert not _alive(pg_url, pid)
    got = other.read()
    assert sorted(got.jobs) == ["one", "two"]
    assert got.revision == "r1"  # the stuck session's write was rolled back
    with pytest.raises(psycopg.Error):  # and it hears so when it speaks again
        conn.execute("COMMIT")
    conn.close()


def test_a_half_open_connection_holding_the_lock_does_not_stop_a_daemon(pg_server: PgServer, pg_url: str, tmp_path: Path) -> None:
    """Host a (a session through a proxy) holds the lock when the network drops every
    packet (the proxy freezes: neither end hears of the other). The daemon of host b,
    connected directly, claims again once the server ended a's session, while the
    partition lasts; when it heals, a's connection says it is gone."""
    from faults.harness import MARK, DaemonProc, child_env, cli, make_repo, read_marks

    marks = tmp_path / "marks"
    marks.mkdir()
    job = f'schedule: "* * * * * *"\nconcurrency: allow\nshell: {MARK.format(marks=marks / "every")}\n'
    root = make_repo(tmp_path / "b", {"every": job})
    env = child_env(CRONFILE_STATE_URL=pg_url, CRONFILE_HOST="host-b")
    assert cli(root, "apply", env=env).code == 0
    proxy = TcpProxy(pg_server.port)
    via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}/{pg_url.rsplit('/', 1)[1]}"
    observer = PostgresStore(pg_url, tmp_path / "observer")
    host_a = PostgresStore(via_proxy, tmp_path / "a")
    with DaemonProc(root, env=env, tag="b") as b:
        b.wait_log("daemon", timeout=30)
        wait_for(lambda: observer.claimed("every") or None, 15.0, what="host b claiming")
        conn, pid = _hold_the_lock(host_a)
        proxy.freeze()
        held_at = datetime.now(UTC)
        try:
            # b's claims wait on the lock until the server ends a's session; then b
            # claims the instants since (its every-second job fires again).
            wait_for(lambda: not _alive(pg_url, pid), IDLE_IN_TXN_S + 10, what="the server ending a's session")
            ended_at = datetime.now(UTC)
            assert (ended_at - held_at).total_seconds() >= IDLE_IN_TXN_S - 1
            wait_for(
                lambda: any(c[0] > ended_at for c in observer.claimed("every")) or None,
                observer.lock_timeout + 15,
                what="host b claiming again while a's connection is still half-open",
            )
        finally:
            proxy.thaw()
        with pytest.raises(psycopg.Error):
            conn.execute("COMMIT")
        conn.close()
        stop_at = datetime.now(UTC)
        b.stop()
    # Every instant b claimed ran, once (but those at the stop).
    got = read_marks(tmp_path)
    assert len({m.scheduled_for for m in got}) == len(got)
    ran = {datetime.fromisoformat(m.scheduled_for) for m in got}
    early = {c[0] for c in observer.claimed("every") if c[0] < stop_at - timedelta(seconds=2)}
    assert sorted(early - ran) == []
    assert observer.read().revision != "written by the stuck session"


def test_a_lock_wait_that_times_out_names_the_holder_and_ends_a_stale_cronfile_session(pg_url: str, tmp_path: Path) -> None:
    """The server's limit is set by each cronfile session itself; a session without it
    (an older cronfile, a pooler that dropped the setting) that sits on the lock is ended
    by the next peer whose wait times out once it has been idle STALE_MARGIN_S past the
    limit. Anyone else's session (someone's psql) is named, never ended."""
    waiter = PostgresStore(pg_url, tmp_path / "waiter", lock_timeout=2)
    with waiter.transaction() as txn:
        txn.state = txn.state.with_job("one", _job("one"))
    with psycopg.connect(pg_url, autocommit=True, application_name="psql") as psql:
        psql_pid = psql.execute("SELECT pg_backend_pid()").fetchone()[0]
        psql.execute("BEGIN")
        psql.execute("SELECT 1 FROM cronfile_meta WHERE id = 1 FOR UPDATE")
        with pytest.raises(LockedError) as e, waiter.transaction():
            pass
        assert f"held by session {psql_pid} (psql, idle in transaction for " in str(e.value)
        assert "ended" not in str(e.value)
        psql.execute("ROLLBACK")
    old = psycopg.connect(pg_url, autocommit=True, application_name="cronfile old-host")
    old_pid = old.execute("SELECT pg_backend_pid()").fetchone()[0]
    old.execute("BEGIN")
    old.execute("SELECT 1 FROM cronfile_meta WHERE id = 1 FOR UPDATE")
    t0 = time.monotonic()
    said = _write_through(waiter)
    assert time.monotonic() - t0 >= IDLE_IN_TXN_S + STALE_MARGIN_S
    assert all(f"held by session {old_pid} (cronfile old-host, idle in transaction for " in m for m in said), said
    assert said[-1].endswith(": ended it"), said[-1]
    assert not _alive(pg_url, old_pid)
    assert sorted(waiter.read().jobs) == ["one", "two"]
    old.close()


def test_each_session_is_armed_against_a_half_open_connection(pg_url: str, tmp_path: Path) -> None:
    """What a half-open connection (a peer gone without a word) is detected by, as the
    kernel and the server hold it for a session of the store: TCP keepalives and a user
    timeout on this end, keepalives and the idle-in-transaction limit on the server's.
    (Packets that vanish cannot be made on 127.0.0.1 without root's firewall; the
    server's limit is shown at work above.)"""
    import socket

    from cronfile.stores.postgres import (
        KEEPALIVE_COUNT,
        KEEPALIVE_IDLE_S,
        KEEPALIVE_INTERVAL_S,
        TCP_USER_TIMEOUT_S,
    )

    s = PostgresStore(pg_url, tmp_path / "local")
    with s._conn() as conn:
        sock = socket.socket(fileno=conn.fileno())
        try:
            got = (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            )
        finally:
            sock.detach()  # the connection's, not ours to close
        assert got == (True, KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT, TCP_USER_TIMEOUT_S * 1000)
        server = conn.execute(
            "SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('tcp_keepalives_idle'),"
            " current_setting('lock_timeout'), application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        assert server == (f"{IDLE_IN_TXN_S}s", f"{KEEPALIVE_IDLE_S}", "10s", f"cronfile {s.host}"[:63])
    # A URL's own keepalive settings stand.
    own = PostgresStore(pg_url + "?keepalives_idle=30", tmp_path / "own")
    with own._conn() as conn:
        sock = socket.socket(fileno=conn.fileno())
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL_S
        finally:
            sock.detach()


def test_a_cronfile_session_stopped_inside_a_pipeline_is_ended_by_a_peer(pg_url: str, tmp_path: Path) -> None:
    """A session stopped between a pipeline's statements and its Sync (an executemany
    whose process was stopped) waits for its client as an `active` one: the server's
    idle limit does not count that time. A peer whose lock wait times out ends it once
    it has waited STALE_MARGIN_S past that limit."""
    holder = PostgresStore(pg_url, tmp_path / "holder")
    waiter = PostgresStore(pg_url, tmp_path / "waiter", lock_timeout=2)
    with waiter.transaction() as txn:
        txn.state = txn.state.with_job("one", _job("one"))
    conn = holder._connect()
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("BEGIN")
    conn.execute("SELECT 1 FROM cronfile_meta WHERE id = 1 FOR UPDATE")
    with pytest.raises(psycopg.Error), conn.pipeline():
        conn.execute("UPDATE cronfile_meta SET revision = 'mid-pipeline' WHERE id = 1")
        # (sent; the Sync is not: it goes when the pipeline block ends)
        t0 = time.monotonic()
        said = _write_through(waiter)
        assert time.monotonic() - t0 >= IDLE_IN_TXN_S + STALE_MARGIN_S - 1
        assert f"held by session {pid} (cronfile " in said[0] and ", active for " in said[0], said[0]
        assert said[-1].endswith(": ended it"), said[-1]
        assert not _alive(pg_url, pid)
    conn.close()
    got = waiter.read()
    assert sorted(got.jobs) == ["one", "two"] and got.revision != "mid-pipeline"
