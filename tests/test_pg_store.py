"""The PostgreSQL store against a real server (tests/pg.py): state and claims across
processes, leases, history, logs, audit, the outbox, the daemon per host."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_helpers import wait_for
from pg import PgServer, TcpProxy

from cronfile.errors import LockedError, StateError
from cronfile.state import JobState, Running, State
from cronfile.stores.postgres import (
    HELD_S,
    LEASE_S,
    ClaimConflict,
    PostgresStore,
    StoreUnavailable,
    redact,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def job(name: str, next_run: datetime | None = T0) -> JobState:
    return JobState(spec={"name": name, "shell": "true", "zeta": 1, "alpha": 2}, spec_hash=f"h-{name}", schedule_sig="s", created_at=T0, next_run=next_run)


def store(url: str, tmp_path: Path, name: str = "local") -> PostgresStore:
    return PostgresStore(url, tmp_path / name)


def test_state_round_trips_between_stores_and_only_changed_jobs_are_written(pg_url: str, tmp_path: Path) -> None:
    a, b = store(pg_url, tmp_path, "a"), store(pg_url, tmp_path, "b")
    assert not a.exists()
    assert a.read() == State()
    with a.transaction() as txn:
        state = txn.state
        for n in ("one", "two", "three"):
            state = state.with_job(n, job(n))
        txn.state = state.with_(revision="abc123", applied_at=T0)
    assert a.exists()
    got = b.read()
    assert sorted(got.jobs) == ["one", "three", "two"]
    assert got.revision == "abc123" and got.applied_at == T0
    assert list(got.jobs["one"].spec) == ["name", "shell", "zeta", "alpha"]  # key order kept
    # b changes one job and deletes another; a sees both (its cache is refreshed by row).
    with b.transaction() as txn:
        txn.state = txn.state.with_job("one", txn.state.jobs["one"].with_(run_count=7)).with_job("two", None)
    after = a.read()
    assert sorted(after.jobs) == ["one", "three"]
    assert after.jobs["one"].run_count == 7
    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = dict(conn.execute("SELECT name, changed FROM cronfile_jobs").fetchall())
    assert rows["three"] < rows["one"] == rows["two"]  # only the changed rows were rewritten


def test_an_exception_inside_a_transaction_writes_nothing(pg_url: str, tmp_path: Path) -> None:
    s = store(pg_url, tmp_path)
    with s.transaction() as txn:
        txn.state = txn.state.with_job("a", job("a"))
    with pytest.raises(RuntimeError), s.transaction() as txn:
        txn.state = txn.state.with_job("a", None).with_job("b", job("b"))
        raise RuntimeError("boom")
    assert sorted(store(pg_url, tmp_path, "fresh").read().jobs) == ["a"]
    assert sorted(s.read().jobs) == ["a"]


def test_a_claimed_instant_cannot_be_claimed_again_and_the_conflict_writes_nothing(pg_url: str, tmp_path: Path) -> None:
    a, b = store(pg_url, tmp_path, "a"), store(pg_url, tmp_path, "b")
    with a.transaction() as txn:
        txn.state = txn.state.with_job("j", job("j"))
    with a.transaction() as txn:
        js = txn.state.jobs["j"]
        txn.state = txn.state.with_job("j", js.with_(running=(Running("r1", T0, T0, "schedule", "e-a"),), next_run=T0 + timedelta(minutes=1)))
    # b (as a peer whose state was reset, e.g. by a hand edit) claims T0 again.
    with a.transaction() as txn:
        txn.state = txn.state.with_job("j", txn.state.jobs["j"].with_(running=()))
    with pytest.raises(ClaimConflict, match="claimed by another engine"), b.transaction() as txn:
        js = txn.state.jobs["j"]
        txn.state = txn.state.with_job("j", js.with_(running=(Running("r2", T0, T0, "schedule", "e-b"),), run_count=99))
    assert b.read().jobs["j"].run_count == 0
    assert [(r[1], r[2]) for r in a.claimed("j")] == [("r1", "e-a")]
    # A manual run (no instant of the schedule) takes no claim.
    with b.transaction() as txn:
        js = txn.state.jobs["j"]
        txn.state = txn.state.with_job("j", js.with_(running=(Running("m1", None, T0, "manual", "e-b"),)))
    assert len(a.claimed("j")) == 1


def _claimer(url: str, local: str, engine: str, go: threading.Event, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Claim instants of job j (one per second of a fake schedule) for ``seconds``
    once ``go`` is set."""
    s = PostgresStore(url, Path(local))
    s.read()  # connected and cached before the start
    out.put(("ready", engine))
    go.wait(60)
    until = time.time() + seconds
    won: list[str] = []
    conflicts = 0
    while time.time() < until:
        try:
            with s.transaction() as txn:
                js = txn.state.jobs["j"]
                assert js.next_run is not None
                at = js.next_run
                r = Running(f"{engine}-{len(won)}", at, at, "schedule", engine)
                txn.state = txn.state.with_job("j", js.with_(running=(r,), next_run=at + timedelta(seconds=1), run_count=js.run_count + 1))
            won.append(at.isoformat())
        except ClaimConflict:
            conflicts += 1
    out.put((engine, won, conflicts))


def test_processes_claiming_the_same_instants_win_each_once(pg_url: str, tmp_path: Path) -> None:
    s = store(pg_url, tmp_path)
    with s.transaction() as txn:
        txn.state = txn.state.with_job("j", job("j"))
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_claimer, args=(pg_url, str(tmp_path / f"p{i}"), f"e{i}", go, 3.0, q)) for i in range(4)]
    for p in procs:
        p.start()
    assert sorted(q.get(timeout=60)[1] for _ in procs) == ["e0", "e1", "e2", "e3"]
    go.set()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    every = [at for _, won, _ in results for at in won]
    assert len(every) == len(set(every)), "an instant was claimed twice"
    assert all(won for _, won, _ in results), "every process claimed some"
    final = s.read().jobs["j"]
    assert final.run_count == len(every)
    # Contiguous: every instant from T0 up to the last one was claimed by someone.
    instants = sorted(datetime.fromisoformat(a) for a in every)
    assert instants == [T0 + timedelta(seconds=i) for i in range(len(instants))]
    claimed = s.claimed("j")
    assert [c[0] for c in claimed] == instants
    print(f"\n{len(every)} claims in 3 s by 4 processes ({len(every) / 3:.0f}/s)")


def test_lease_liveness_from_this_host_and_from_another(pg_url: str, tmp_path: Path) -> None:
    s = store(pg_url, tmp_path)
    s.ensure()
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path\n"
            "from cronfile.stores.postgres import PostgresStore\n"
            f"s = PostgresStore({pg_url!r}, Path({str(tmp_path / 'child')!r}))\n"
            "lock = s.engine_lock('child-engine'); print('ready', flush=True); time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        other = store(pg_url, tmp_path, "other")
        other.host = "another-host"
        assert s.engine_alive("child-engine") and other.engine_alive("child-engine")
        info = {e.engine_id: e for e in other.engines()}["child-engine"]
        assert info.alive and info.host == socket.gethostname() and info.renewed_at is not None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        killed = time.monotonic()
        # On its own host a dead pid is dead at once; elsewhere, once the lease lapsed.
        assert not s.engine_alive("child-engine")
        assert other.engine_alive("child-engine")
        wait_for(lambda: not other.engine_alive("child-engine"), timeout=LEASE_S + 5)
        took = time.monotonic() - killed
        assert took <= LEASE_S + 5
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
def test_a_partitioned_engine_stops_claiming_before_its_lease_lapses_and_resumes(pg_server: PgServer, pg_url: str, tmp_path: Path) -> None:
    db = pg_url.rsplit("/", 1)[1]
    proxy = TcpProxy(pg_server.port)
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{db}"
    s = PostgresStore(url, tmp_path / "p")
    peer = store(pg_url, tmp_path, "peer")
    peer.host = "peer-host"
    with s.transaction() as txn:
        txn.state = txn.state.with_job("j", job("j"))
    lock = s.engine_lock("e-part")
    assert lock.held
    proxy.cut()
    cut_at = time.monotonic()
    wait_for(lambda: not lock.held, timeout=HELD_S + 2)
    lost = time.monotonic() - cut_at
    # The peer still sees the lease: held went False before it lapsed in the database.
    assert peer.engine_alive("e-part")
    assert lost < LEASE_S
    with pytest.raises(StoreUnavailable), s.transaction() as txn:
        js = txn.state.jobs["j"]
        txn.state = txn.state.with_job("j", js.with_(running=(Running("x", T0, T0, "schedule", "e-part"),)))
    proxy.restore()
    wait_for(lambda: lock.held, timeout=10)
    with s.transaction() as txn:
        js = txn.state.jobs["j"]
        txn.state = txn.state.with_job("j", js.with_(running=(Running("x", T0, T0, "schedule", "e-part"),)))
    assert [c[1] for c in peer.claimed("j")] == ["x"]
    lock.release()


def test_history_logs_audit_across_stores(pg_url: str, tmp_path: Path) -> None:
    a, b = store(pg_url, tmp_path, "a"), store(pg_url, tmp_path, "b")
    b.host = "host-b"
    for i in range(5):
        a.append_history("j", {"job": "j", "run_id": f"r{i}", "status": "success", "host": "host-a"})
    a.append_history("j", {"run_id": "r4", "deliveries": [{"target": "x"}]})
    assert [r["run_id"] for r in b.read_history("j")] == ["r0", "r1", "r2", "r3", "r4", "r4"]
    assert [r["run_id"] for r in b.read_history("j", 2)] == ["r4", "r4"]
    assert b.read_history("j", 0) == []
    # Logs: written to a local spool file, kept in the database (its head, capped).
    path = a.log_file("j", "r4")
    path.write_bytes(b"0123456789" * 10)
    assert a.read_log("j", "r4") == b"0123456789" * 10  # in flight: read from the spool
    assert a.keep_log("j", "r4", limit=25) is not None
    assert b.read_log("j", "r4") == b"0123456789" * 2 + b"01234"  # another host reads it
    assert b.read_log("j", "r4", offset=20, limit=3) == b"012"
    assert b.read_log("j", "nope") is None
    assert a.keep_log("j", "no-log") is None
    a.log_file("j", "r0").write_bytes(b"old")
    a.keep_log("j", "r0")
    assert b.log_ids("j") == ["r0", "r4"]
    assert b.history_jobs() == ["j"]
    # prune: runs, not lines; dropped runs lose their logs (here and in the database).
    a.prune("j", 2)
    assert [r["run_id"] for r in b.read_history("j")] == ["r3", "r4", "r4"]
    assert b.read_log("j", "r0") is None and not (tmp_path / "a" / "spool" / "j" / "r0.log").exists()
    a.append_audit({"at": "now", "revision": "abc", "changes": ["created j"]})
    assert b.read_audit() == [{"at": "now", "revision": "abc", "changes": ["created j"]}]


def test_outbox_entries_are_taken_by_one_engine(pg_url: str, tmp_path: Path) -> None:
    a, b, c = (store(pg_url, tmp_path, n) for n in "abc")
    a.outbox_put("dead", [("run1.0", b"one"), ("run1.1", b"two")])
    a.outbox_put("live", [("run2.0", b"three")])
    assert a.outbox_pending("run1") == ["run1.0", "run1.1"]
    results: dict[str, list[tuple[str, bytes]]] = {}

    def adopt(s: PostgresStore, me: str) -> None:
        results[me] = s.outbox_adopt(me, lambda e: e in ("live", "eng-b", "eng-c"))

    threads = [threading.Thread(target=adopt, args=(s, me)) for s, me in ((b, "eng-b"), (c, "eng-c"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = sorted(results["eng-b"] + results["eng-c"])
    assert taken == [("run1.0", b"one"), ("run1.1", b"two")]  # each once; live's stays
    owner = "eng-b" if results["eng-b"] else "eng-c"
    a.outbox_done(owner, "run1.0")
    a.outbox_bad(owner, "run1.1", "cannot decode")
    assert a.outbox_pending("run1") == []
    assert a.outbox_pending("run2") == ["run2.0"]


def test_one_daemon_per_host(pg_url: str, tmp_path: Path) -> None:
    a, b, other = (store(pg_url, tmp_path, n) for n in ("a", "b", "other"))
    other.host = "host-2"
    assert not a.daemon_running()
    lock = a.daemon_lock()
    with pytest.raises(LockedError, match=f"already running on {socket.gethostname()}"):
        b.daemon_lock()
    lock2 = other.daemon_lock()  # another host: its own daemon
    assert b.daemon_running() and b.daemon_pid() == os.getpid()
    assert sorted(h for h, *_ in b.daemons()) == sorted([socket.gethostname(), "host-2"])
    lock.release()
    lock2.release()
    assert not b.daemon_running()


def test_location_hides_the_password_and_an_unreachable_database_is_one_line(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.url("postgres", password="s3cret")
    assert "s3cret" not in PostgresStore(url, tmp_path).location
    assert redact("postgresql://u:p@h:5/db?sslmode=require") == "postgresql://u:***@h:5/db?sslmode=require"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = PostgresStore(f"postgresql://u:hunter2@127.0.0.1:{port}/x", tmp_path)
    with pytest.raises(StoreUnavailable) as e:
        dead.read()
    text = str(e.value)
    assert "\n" not in text and "hunter2" not in text and f"127.0.0.1:{port}" in text
    assert isinstance(e.value, StateError)


def test_a_recovered_silent_run_keeps_a_log_path_only_on_the_host_that_ran_it(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    from cronfile.observe import Observer
    from cronfile.recovery import reap
    from cronfile.spec import Trigger

    here = store(pg_url, tmp_path, "here")  # the dead engine's host
    peer = store(pg_url, tmp_path, "peer")
    here.host, peer.host = "host-a", "peer-host"
    here.ensure()
    # An engine of host-a, killed with a run spawned that printed nothing (no spool file).
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import time; from pathlib import Path\n"
            "from cronfile.stores.postgres import PostgresStore\n"
            f"s = PostgresStore({pg_url!r}, Path({str(tmp_path / 'child')!r}))\n"
            "lock = s.engine_lock('dead-a'); print('ready', flush=True); time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CRONFILE_HOST": "host-a", "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait(timeout=10)
    # Its lease lapses (what LEASE_S seconds would do), so the peer takes it for dead too.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE cronfile_engines SET expires_at = now() - interval '1 second' WHERE engine_id = 'dead-a'")

    def recover(s: PostgresStore, name: str) -> dict:
        run = Running(f"20260302T080000-{name}", T0, T0, Trigger.schedule, "dead-a", pid=child.pid)
        state = State(jobs={name: job(name).with_(running=(run,))})
        reaped = reap(state, store=s, engine_id=f"engine-{name}", now=T0 + timedelta(minutes=1), host=s.host,
                      observer=Observer(), log=lambda *a, **k: None)
        assert reaped.state.jobs[name].running == ()
        [rec] = s.read_history(name)
        assert rec["status"] == "interrupted" and rec["run_id"] == run.run_id
        return rec

    # A peer host: the run's log (had it printed) was in host-a's spool, not here.
    assert recover(peer, "p")["log_path"] is None
    # Its own host: a spawned run without a file stayed silent, its log_path kept.
    assert recover(here, "h")["log_path"] == str((tmp_path / "here" / "spool" / "h" / "20260302T080000-h.log").resolve())
