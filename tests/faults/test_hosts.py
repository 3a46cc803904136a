"""Several hosts on one PostgreSQL state (issue 18): four daemons, each with its own copy
of the repo and its own host name (CRONFILE_HOST), an every-second job. First one of them
is killed and left dead, so that its peers must wait out its lease; meanwhile (the lease
lapses during the attack, not after it) each of the other three is SIGKILLed every 10 s
in turn and restarted at once (as systemd's Restart= does).

Judged afterwards: no instant ran twice (by the jobs' own marks and by the records);
every instant outside the kill gaps ran; every run in flight on a killed daemon ends
`interrupted`, within the lease plus 5 s of the kill (at once when its own host's
daemon restarts: a dead pid there needs no lease)."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronfile.state import Running
from cronfile.stores.postgres import LEASE_S, PostgresStore

from .harness import MARK, DaemonProc, child_env, cli, figure, make_repo, read_marks, wait_for

pytestmark = pytest.mark.slow

SECONDS = 60  # long mode; the normal run's 30 s (one left dead, then 3 kills in turn) keeps CI short
KILL_EVERY = 10
GAP = 2.0  # seconds around a kill in which an instant may be lost (claimed, then killed)


def _engine(d: DaemonProc) -> str:
    m = wait_for(lambda: re.search(r"; engine ([0-9a-f]{6});", d.text()), 30, what="the daemon's engine id")
    return m.group(1)


def _in_flight(store: PostgresStore, prefix: str) -> list[Running]:
    return [r for js in store.read().jobs.values() for r in js.running if r.engine.startswith(prefix)]


def _final(store: PostgresStore, run_ids: set[str]) -> dict[str, dict]:
    out = {}
    for rec in store.read_history("every"):
        if rec.get("run_id") in run_ids and rec.get("status"):
            out[rec["run_id"]] = rec
    return out


def test_three_daemons_on_one_database_killed_in_turn(pg_url: str, tmp_path: Path, long: bool) -> None:
    seconds = SECONDS if long else SECONDS // 2
    marks = tmp_path / "marks"
    marks.mkdir()
    job = f'schedule: "* * * * * *"\nconcurrency: allow\nshell: {MARK.format(marks=marks / "every")}; sleep 0.7\n'
    hosts = 4  # three killed in turn and restarted, one killed first and left dead
    roots = [make_repo(tmp_path / f"host{i}", {"every": job}) for i in range(hosts)]
    envs = [child_env(CRONFILE_STATE_URL=pg_url, CRONFILE_HOST=f"host-{i}") for i in range(hosts)]
    r = cli(roots[0], "apply", env=envs[0])
    assert r.code == 0, r.err
    store = PostgresStore(pg_url, tmp_path / "observer")
    daemons = [DaemonProc(roots[i], env=envs[i], tag=f"{i}-0") for i in range(hosts)]
    killed: list[tuple[datetime, str, list[str], bool]] = []  # when, engine, runs in flight, restarted
    old: list[DaemonProc] = []
    try:
        engines = [_engine(d) for d in daemons]
        t0 = datetime.now(UTC)
        start = time.monotonic()
        # One killed first and left dead, while it runs something: only its peers (other
        # hosts) can recover its run, once its lease has lapsed, which it does while the
        # others are killed in turn below (so the attack's window covers the lease).
        dead, flight = wait_for(lambda: next(((i, f) for i in range(hosts) if (f := _in_flight(store, engines[i]))), None), 10.0, what="a daemon with a run in flight")
        daemons[dead].kill9()
        killed.append((datetime.now(UTC), engines[dead], [r.run_id for r in flight], False))
        turn = [i for i in range(hosts) if i != dead]
        for k in range(seconds // KILL_EVERY):
            time.sleep(max(0.0, start + KILL_EVERY * (k + 1) - 1.5 - time.monotonic()))
            # In turn, and while it runs something: the next daemon in turn that has a run
            # in flight (whichever wakes first wins most claims, so one may have none).
            def victim(k: int = k) -> tuple[int, list[Running]] | None:
                for j in range(3):
                    i = turn[(k + j) % 3]
                    if flight := _in_flight(store, engines[i]):
                        return i, flight
                return None

            i, flight = wait_for(victim, 10.0, what="a daemon with a run in flight")
            daemons[i].kill9()
            killed.append((datetime.now(UTC), engines[i], [r.run_id for r in flight], True))
            old.append(daemons[i])
            daemons[i] = DaemonProc(roots[i], env=envs[i], tag=f"{i}-{k + 1}")
            engines[i] = _engine(daemons[i])
        end = t0 + timedelta(seconds=seconds)
        time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
        every_killed = {rid for _, _, ids, _ in killed for rid in ids}
        wait_for(lambda: len(_final(store, every_killed)) == len(every_killed), LEASE_S + 15, what="the killed daemons' runs recorded")
        last = datetime.now(UTC)
    finally:
        for d in daemons:
            if d.alive():
                d.stop()
        for d in old:
            d.kill9()
    # 1. No instant twice.
    got = read_marks(tmp_path)
    by_mark = Counter(m.scheduled_for for m in got)
    assert [w for w, n in by_mark.items() if n > 1] == []
    records = [r for r in store.read_history("every") if r.get("status") not in (None, "missed", "skipped")]
    by_record = Counter(r["scheduled_for"] for r in records)
    assert [w for w, n in by_record.items() if n > 1] == []
    # 2. Every instant outside the kill gaps ran.
    ran = {datetime.fromisoformat(m.scheduled_for) for m in got}
    first = t0.replace(microsecond=0) + timedelta(seconds=3)
    want = [first + timedelta(seconds=s) for s in range(int((last - first).total_seconds()) - 2)]
    gaps = [(w - timedelta(seconds=GAP), w + timedelta(seconds=GAP)) for w, *_ in killed]
    outside = [w for w in want if not any(a <= w <= b for a, b in gaps)]
    lost = [w.isoformat() for w in outside if w not in ran]
    assert lost == [], f"instants outside the kill gaps that did not run: {lost}"
    # 3. Every run in flight on a killed daemon ends interrupted, within lease + 5 s.
    finals = _final(store, every_killed)
    worst = {True: 0.0, False: 0.0}
    for when, engine, ids, restarted in killed:
        for rid in ids:
            rec = finals[rid]
            # (or it ended, its record written, just before the kill landed: seen under
            # -n 2; the recovery then lets its own record stand, recovery.reap)
            ended_first = rec["status"] != "interrupted" and datetime.fromisoformat(rec["finished_at"]) <= when
            assert rec["status"] == "interrupted" or ended_first, rec
            took = (datetime.fromisoformat(rec["finished_at"]) - when).total_seconds()
            assert took <= LEASE_S + 5, (engine, rid, took)
            worst[restarted] = max(worst[restarted], took)
    assert all(ids for _, _, ids, _ in killed), "each kill hit a run in flight"
    figure(
        f"hosts: {len(want)} instants, {len(outside)} outside {len(killed)} kill gaps, all ran once; "
        f"{len(every_killed)} runs in flight on killed daemons ended interrupted, at worst "
        f"{worst[True]:.1f}s after the kill (restarted on its host), {worst[False]:.1f}s (left dead: peers, lease {LEASE_S:g}s)"
    )


def _lock_holders(url: str) -> list[tuple[Any, ...]]:
    """Each database session holding a granted lock: pid, application, state, since, query."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT a.pid, a.application_name, a.client_port, a.state, a.wait_event, a.state_change, a.xact_start, left(a.query, 120) "
                "FROM pg_stat_activity a WHERE a.pid IN (SELECT pid FROM pg_locks WHERE granted) AND a.pid <> pg_backend_pid()"
            ).fetchall()
    except psycopg.Error as e:
        return [("cannot ask the server", str(e))]


def test_a_daemon_cut_from_the_database_stops_claiming_and_finishes_what_it_started(pg_server: Any, pg_url: str, tmp_path: Path) -> None:
    """Host a reaches the database through a proxy that is cut for 8 s (under the lease)
    while runs of its are in flight; host b is connected throughout. Host a claims
    nothing while cut, records its runs once it is back, and claims again; b runs every
    instant meanwhile; no instant runs twice."""
    from pg import TcpProxy

    marks = tmp_path / "marks"
    marks.mkdir()
    # Runs of 4 s: those a starts before b is up are still in flight at the cut, and end
    # during it (their records wait for the database).
    job = f'schedule: "* * * * * *"\nconcurrency: allow\nshell: {MARK.format(marks=marks / "every")}; sleep 4\n'
    proxy = TcpProxy(pg_server.port)
    db = pg_url.rsplit("/", 1)[1]
    via_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}/{db}"
    ra, rb = make_repo(tmp_path / "a", {"every": job}), make_repo(tmp_path / "b", {"every": job})
    ea = child_env(CRONFILE_STATE_URL=via_proxy, CRONFILE_HOST="host-a")
    eb = child_env(CRONFILE_STATE_URL=pg_url, CRONFILE_HOST="host-b")
    assert cli(ra, "apply", env=ea).code == 0
    store = PostgresStore(pg_url, tmp_path / "observer")
    # a starts alone, so that it has runs in flight whoever wins the instants once b is
    # up (b, without the proxy between it and the database, may win every one of them
    # on a loaded machine: seen under `-n 2`).
    with DaemonProc(ra, env=ea, tag="a") as a:
        engine_a = _engine(a)
        wait_for(lambda: _in_flight(store, engine_a) or None, 15.0, what="a run of host a in flight")
        with DaemonProc(rb, env=eb, tag="b") as b:
            _engine(b)
            flight = wait_for(lambda: _in_flight(store, engine_a) or None, 15.0, what="a run of host a in flight")
            proxy.cut()
            cut_at = datetime.now(UTC)
            a.wait_log("cannot claim runs", timeout=10)
            time.sleep(8)  # the partition: shorter than the lease, so no peer takes a's runs
            proxy.restore()
            back_at = datetime.now(UTC)
            try:
                a.wait_log("claiming works again", timeout=30)
            except AssertionError as e:  # (seen once in CI: say who holds the state's locks)
                raise AssertionError(f"{e}; sessions holding locks: {_lock_holders(pg_url)}") from None
            ids = {r.run_id for r in flight}
            wait_for(lambda: len(_final(store, ids)) == len(ids), 30, what="a's runs recorded")
            # b leaves (its runs end), so that the next instants are a's to claim.
            b_left = datetime.now(UTC)
            assert b.stop() == 0
        wait_for(lambda: any(c[2].startswith(engine_a) and c[0] > b_left for c in store.claimed("every")) or None, 20, what="host a claiming again")
        a.stop()
    got = read_marks(tmp_path)
    assert [w for w, n in Counter(m.scheduled_for for m in got).items() if n > 1] == []
    finals = _final(store, ids)
    assert {r["status"] for r in finals.values()} == {"success"}
    # While cut, a claimed nothing: every instant then was b's.
    claims = {c[0]: c[2] for c in store.claimed("every")}
    cut_span = [w for w in claims if cut_at + timedelta(seconds=1) <= w <= back_at]
    assert cut_span and all(not claims[w].startswith(engine_a) for w in cut_span)
    ran = {datetime.fromisoformat(m.scheduled_for) for m in got}
    assert [w.isoformat() for w in cut_span if w not in ran] == []
    # And after, a claims again.
    assert any(claims[w].startswith(engine_a) for w in claims if w > back_at)


def _meta_holder(url: str, host: str) -> int | None:
    """The server pid of ``host``'s session that holds the meta row's lock, if one does."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'relation' AND l.relation = 'cronfile_meta'::regclass AND l.granted"
            "   AND a.application_name = %s AND a.wait_event_type IS DISTINCT FROM 'Lock'",
            (f"cronfile {host}",),
        ).fetchone()
    return row[0] if row else None


def test_a_daemon_hung_holding_the_state_lock_stops_its_peer_for_the_idle_limit_only(pg_url: str, tmp_path: Path) -> None:
    """Host a's daemon is stopped (SIGSTOP: a hung process; its connection stays open)
    in the middle of a state transaction, holding the meta row's lock. The server ends
    its session IDLE_IN_TXN_S later, and host b claims again; a, continued, finds its
    session gone, retries, and claims again; no instant runs twice."""
    import signal

    from cronfile.stores.postgres import IDLE_IN_TXN_S, STALE_MARGIN_S

    marks = tmp_path / "marks"
    marks.mkdir()
    job = f'schedule: "* * * * * *"\nconcurrency: allow\nshell: {MARK.format(marks=marks / "every")}\n'
    ra, rb = make_repo(tmp_path / "a", {"every": job}), make_repo(tmp_path / "b", {"every": job})
    ea = child_env(CRONFILE_STATE_URL=pg_url, CRONFILE_HOST="host-a")
    eb = child_env(CRONFILE_STATE_URL=pg_url, CRONFILE_HOST="host-b")
    assert cli(ra, "apply", env=ea).code == 0
    store = PostgresStore(pg_url, tmp_path / "observer")
    with DaemonProc(ra, env=ea, tag="a") as a, DaemonProc(rb, env=eb, tag="b") as b:
        engine_a, _ = _engine(a), _engine(b)
        # Stop a while its session holds the lock (its transactions take milliseconds:
        # watch for one, stop a, and look again; continue it if it let go meanwhile).
        deadline = time.monotonic() + 60
        held = None
        while held is None:
            assert time.monotonic() < deadline, "never caught host a holding the state's lock"
            if _meta_holder(pg_url, "host-a") is None:
                continue
            a.proc.send_signal(signal.SIGSTOP)
            held = _meta_holder(pg_url, "host-a")
            if held is None:
                a.proc.send_signal(signal.SIGCONT)
        stopped_at = datetime.now(UTC)
        try:
            # The server ends it after IDLE_IN_TXN_S; b, if its lock wait timed out first
            # (a stopped between an executemany's statements and its Sync, which the
            # server's limit does not count), once it is STALE_MARGIN_S past that.
            bound = IDLE_IN_TXN_S + STALE_MARGIN_S + store.lock_timeout + 10
            try:
                wait_for(lambda: _meta_holder(pg_url, "host-a") is None, bound, what="a's session ended")
            except AssertionError as e:
                raise AssertionError(f"{e}; sessions holding locks: {_lock_holders(pg_url)}") from None
            freed_at = datetime.now(UTC)
            took = (freed_at - stopped_at).total_seconds()
            assert took >= IDLE_IN_TXN_S - 1
            wait_for(lambda: any(c[0] > freed_at and not c[2].startswith(engine_a) for c in store.claimed("every")) or None, 15, what="host b claiming again")
        finally:
            a.proc.send_signal(signal.SIGCONT)
        # a finds its session ended (its transaction wrote nothing), and goes on.
        b_left = datetime.now(UTC)
        assert b.stop() == 0
        wait_for(lambda: any(c[2].startswith(engine_a) and c[0] > b_left for c in store.claimed("every")) or None, 30, what="host a claiming again")
        assert a.stop() == 0
    got = read_marks(tmp_path)
    assert [w for w, n in Counter(m.scheduled_for for m in got).items() if n > 1] == []
    figure(f"hosts: a daemon hung holding the state's lock lost its session {took:.1f}s after (idle limit {IDLE_IN_TXN_S}s); its peer claimed again, and it did once continued")
