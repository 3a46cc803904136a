"""The PostgreSQL store: one database shared by the daemons of several hosts.

``state_url: postgresql://user:${PGPASSWORD}@db.example/cronfile`` selects it
(docs/design.md 14). The only module that imports ``psycopg`` (STYLE.md habit 7: one seam
per library); the driver is the optional extra ``cronfile[postgres]``.

What lives where, and why:

- ``cronfile_meta``: one row (version, git revision, applied_at, orphans, a change
  counter). Every read-modify-write of the state locks it (``SELECT ... FOR UPDATE``), so
  transactions are serializable across processes and hosts, as ``state.lock`` makes them
  on one host. The counter goes up by one per write.
- ``cronfile_jobs``: one row per job (the JSON of ``JobState.encode()``) with the counter
  value of the write that last changed it; a deleted job leaves a row with no data (a
  tombstone), so that a reader can tell. A store keeps the jobs it read, and a
  transaction reads only the rows changed since (a daemon's claim reads a row or two, not
  10,000), then writes only the jobs that changed.
- ``cronfile_claims``: UNIQUE (job, scheduled_for). A transaction that adds a run for an
  instant inserts its claim row in the same database transaction; a conflict aborts it
  (``ClaimConflict``): that instant was claimed elsewhere, and is never run twice.
- ``cronfile_engines``: a lease per engine, renewed by a thread every ``RENEW_S`` seconds
  and expiring ``LEASE_S`` after the last renewal, by the database's clock (hosts' clocks
  are not compared). An engine whose lease expired is dead for its peers, which record
  its runs ``interrupted``; on its own host a dead pid says so at once. A lock whose
  renewal fails reports ``held == False`` before its lease can expire anywhere, and the
  engine stops claiming.
- ``cronfile_daemons``: one daemon per host (per database), by the same kind of lease.
- ``cronfile_history``, ``cronfile_logs`` (bytea, at most the job's ``output_limit``),
  ``cronfile_audit``, ``cronfile_outbox``: what the file store keeps in ``runs/``,
  ``audit.jsonl`` and ``outbox/``; an outbox entry is taken by one engine with one
  ``UPDATE ... WHERE engine = <the dead one>``.

JSON is stored as ``json`` (text kept as written, key order too), not ``jsonb``: nothing
queries inside it, and records read back exactly as the file store gives them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

from ..clock import iso, parse_iso
from ..errors import LockedError, StateError, StateWriteError, StoreUnavailable
from ..state import STATE_VERSION, JobState, Running, State
from .base import EngineInfo, Finding, Txn

__all__ = [
    "IDLE_IN_TXN_S",
    "LEASE_S",
    "RENEW_S",
    "SCHEMA_VERSION",
    "ClaimConflict",
    "PostgresStore",
    "StoreUnavailable",
    "redact",
    "require_driver",
]

# The lease constants, in one place (docs/design.md 14.3). A lease is renewed every
# RENEW_S and lapses LEASE_S after the last renewal; an engine stops claiming HELD_S after
# its last successful renewal began, well before any peer can see its lease expired.
RENEW_S = 5.0
LEASE_S = 15.0
HELD_S = LEASE_S - 3.0
CONNECT_TIMEOUT_S = 5
# What bounds a session that holds the meta row's lock and stops talking (a hung or
# vanished process, a half-open connection): docs/design.md 14.3. The server ends a
# cronfile session idle inside a transaction for IDLE_IN_TXN_S (rolling it back, so
# the lock goes), and any statement after STATEMENT_S; TCP keepalives, both ways, and
# TCP_USER_TIMEOUT_S on unacknowledged data, tell either end that the other is gone.
IDLE_IN_TXN_S = 8  # under the lock wait (lock_timeout, 10 s): a waiting peer gets the lock, no error
STATEMENT_S = 60
KEEPALIVE_IDLE_S = 5
KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3
TCP_USER_TIMEOUT_S = 10
STALE_MARGIN_S = 5  # a cronfile session idle in a transaction this much longer is ended by its peers
SCHEMA_VERSION = 1
_POOL_IDLE = 4  # connections kept open per store for the next call
_CLAIM_TRIGGERS = ("schedule", "catchup", "queued")  # runs of a scheduled instant
_CLAIMS_KEEP_DAYS = 35
# Logs of runs in flight on this host: <local dir>/spool/<job>/<run id>.log (not runs/,
# which is the file store's: a repo's .cronfile/ may hold both, before a migration).
SPOOL = "spool"  # claim rows older than this are pruned (an instant never recurs)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cronfile_schema (version int NOT NULL);
CREATE TABLE IF NOT EXISTS cronfile_meta (
    id int PRIMARY KEY CHECK (id = 1),
    state_version int NOT NULL,
    revision text,
    applied_at text,
    orphans json NOT NULL DEFAULT '[]',
    counter bigint NOT NULL DEFAULT 0,
    written_at timestamptz
);
INSERT INTO cronfile_meta (id, state_version) VALUES (1, {state_version}) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS cronfile_jobs (
    name text PRIMARY KEY,
    data json,
    changed bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS cronfile_jobs_changed ON cronfile_jobs (changed);
CREATE TABLE IF NOT EXISTS cronfile_claims (
    job text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    run_id text NOT NULL,
    engine text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, scheduled_for)
);
CREATE TABLE IF NOT EXISTS cronfile_history (
    id bigserial PRIMARY KEY,
    job text NOT NULL,
    run_id text,
    record json NOT NULL,
    host text,
    engine text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cronfile_history_job ON cronfile_history (job, id);
CREATE TABLE IF NOT EXISTS cronfile_logs (
    job text NOT NULL,
    run_id text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (job, run_id)
);
CREATE TABLE IF NOT EXISTS cronfile_audit (id bigserial PRIMARY KEY, record json NOT NULL);
CREATE TABLE IF NOT EXISTS cronfile_engines (
    engine_id text PRIMARY KEY,
    host text NOT NULL,
    pid int,
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS cronfile_daemons (
    host text PRIMARY KEY,
    token text NOT NULL,
    pid int,
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS cronfile_outbox (
    key text PRIMARY KEY,
    run_id text NOT NULL,
    engine text NOT NULL,
    body bytea NOT NULL,
    bad text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cronfile_outbox_run ON cronfile_outbox (run_id);
"""


def require_driver() -> None:
    """A StateError (exit 2) naming the install command when psycopg is missing."""
    _psycopg()


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StateError(
            "state_url names a PostgreSQL database but the driver is not installed: "
            "pip install 'cronfile[postgres]'"
        ) from None
    return psycopg


def redact(url: str) -> str:
    """``url`` without its password (``location``, every message)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unreadable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class ClaimConflict(StateWriteError):
    """An instant this transaction claimed was claimed elsewhere: nothing was written."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check(what: str, value: str) -> str:
    """Job names and run ids name this host's spool folders too: one that would climb
    out of them is refused, as by the file store."""
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or "\x00" in value or ".." in value or value.startswith("."):
        raise ValueError(f"{what} {value!r} cannot be used in a path")
    return value


def _pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lease:
    """A row this process keeps alive by renewing it; ``held`` turns False once a
    renewal is overdue (a lost connection), before the row can expire for anyone else."""

    def __init__(self, store: PostgresStore, renew_sql: str, params: dict[str, Any], on_release: str, what: str) -> None:
        self._store = store
        self._renew_sql = renew_sql
        self._params = params
        self._release_sql = on_release
        self._what = what
        self._ok_at = time.monotonic()
        self._released = False
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name=f"cronfile-lease-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def held(self) -> bool:
        return not self._released and time.monotonic() - self._ok_at < HELD_S

    def _renew_once(self) -> bool:
        t0 = time.monotonic()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._store._connect()
            row = self._conn.execute(self._renew_sql, self._params).fetchone()
        except Exception:
            with suppress(Exception):
                if self._conn is not None:
                    self._conn.close()
            self._conn = None
            return False
        if row is None:
            return False
        self._ok_at = t0
        return True

    def _run(self) -> None:
        ok = True
        # Every RENEW_S; after a failed renewal every second, so that a short outage
        # costs the engine a second of claiming, not the rest of a renewal period.
        while not self._stop.wait(RENEW_S if ok else 1.0):
            ok = self._renew_once()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._stop.set()
        with suppress(Exception):
            if self._conn is None or self._conn.closed:
                self._conn = self._store._connect()
            self._conn.execute(self._release_sql, self._params)
        with suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EngineLease(_Lease):
    def __init__(self, store: PostgresStore, engine_id: str) -> None:
        super().__init__(
            store,
            "INSERT INTO cronfile_engines (engine_id, host, pid, expires_at)"
            " VALUES (%(id)s, %(host)s, %(pid)s, now() + make_interval(secs => %(lease)s))"
            " ON CONFLICT (engine_id) DO UPDATE SET renewed_at = now(), expires_at = EXCLUDED.expires_at"
            " RETURNING 1",
            {"id": engine_id, "host": store.host, "pid": os.getpid(), "lease": LEASE_S},
            "DELETE FROM cronfile_engines WHERE engine_id = %(id)s",
            "engine",
        )
        self.engine_id = engine_id

    def release(self) -> None:
        super().release()
        self._store._held_engines.pop(self.engine_id, None)


class DaemonLease(_Lease):
    def __init__(self, store: PostgresStore, token: str) -> None:
        super().__init__(
            store,
            "UPDATE cronfile_daemons SET renewed_at = now(),"
            " expires_at = now() + make_interval(secs => %(lease)s)"
            " WHERE host = %(host)s AND token = %(token)s RETURNING 1",
            {"host": store.host, "token": token, "lease": LEASE_S},
            "DELETE FROM cronfile_daemons WHERE host = %(host)s AND token = %(token)s",
            "daemon",
        )


class PostgresStore:
    """A PostgreSQL database as the store (see the module docstring). Cheap to build;
    connects on first use."""

    shared = True  # several hosts use it: applies check the git revision (cronfile/shared.py)

    def __init__(self, url: str, local_dir: Path, *, lock_timeout: float = 10.0) -> None:
        self.url = url
        self._local_dir = Path(local_dir)
        self.lock_timeout = lock_timeout
        # The name this host goes by among the database's hosts (one daemon per host):
        # CRONFILE_HOST where two hosts share a hostname (containers), else the hostname.
        self.host = os.environ.get("CRONFILE_HOST") or socket.gethostname()
        self._pool: list[Any] = []
        self._pool_lock = threading.Lock()
        self._ready_done = False
        self._tls = threading.local()
        self._cache_lock = threading.Lock()
        self._counter = -1  # the change counter of the jobs cached (-1: none)
        self._jobs: dict[str, JobState] = {}
        # The State last read or written, by its counter: read again unchanged, it is the
        # very object, so the engine's writer knows its own writes (StateWriter.ours).
        self._state_at: tuple[int, State] | None = None
        self._held_engines: dict[str, EngineLease] = {}
        self._unsent: set[tuple[str, str]] = set()  # logs kept while the database was away
        self._claims_pruned = 0.0
        self._tcp: dict[str, str] | None = None  # libpq's keepalive options (_tcp_options)

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    @property
    def location(self) -> str:
        return redact(self.url)

    @property
    def local_dir(self) -> Path:
        return self._local_dir

    def watch_file(self) -> None:
        """No file changes when another process writes the state (the daemon polls)."""
        return None

    def child_env(self) -> dict[str, str]:
        """What a cronfile started by this one (the MCP server's `run`) needs to open
        this store: the URL (as expanded) and this host's folder."""
        return {"CRONFILE_STATE_URL": self.url, "CRONFILE_STATE_DIR": str(self._local_dir.absolute())}

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> Any:
        """A new session, with the timeouts that keep a stuck one from holding the
        state's lock for good (IDLE_IN_TXN_S and the rest, above). Keepalive options the
        URL gives are its own."""
        psycopg = _psycopg()
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                # (the host, so that pg_stat_activity tells whose session is whose)
                application_name=f"cronfile {self.host}"[:63],
                **self._tcp_options(),
            )
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot reach the state database {self.location}: {_first_line(e)}") from None
        try:
            conn.execute(self._session_sql())
        except psycopg.Error as e:
            with suppress(Exception):
                conn.close()
            raise StoreUnavailable(f"the state database {self.location}: {_first_line(e)}") from None
        return conn

    def _tcp_options(self) -> dict[str, str]:
        """libpq's keepalive options (not over a Unix socket, where they mean nothing),
        but for those the URL sets itself."""
        if self._tcp is None:
            from psycopg import conninfo, pq

            try:
                given = conninfo.conninfo_to_dict(self.url)
            except Exception:  # noqa: BLE001 - connect says what is wrong with it
                given = {}
            host = str(given.get("host") or "")
            options = {
                "keepalives": "1",
                "keepalives_idle": str(KEEPALIVE_IDLE_S),
                "keepalives_interval": str(KEEPALIVE_INTERVAL_S),
                "keepalives_count": str(KEEPALIVE_COUNT),
            }
            if pq.version() >= 120000:
                options["tcp_user_timeout"] = str(TCP_USER_TIMEOUT_S * 1000)
            unix = host.startswith("/") or (not host and not given.get("hostaddr"))
            self._tcp = {} if unix else {k: v for k, v in options.items() if k not in given}
        return self._tcp

    def _session_sql(self) -> str:
        """The settings of each of cronfile's sessions (one round trip, once per
        connection): the lock wait, the idle-in-transaction and statement limits, and the
        server's side of the keepalives."""
        return (
            f"SET lock_timeout = {int(self.lock_timeout * 1000)};"
            f" SET idle_in_transaction_session_timeout = {IDLE_IN_TXN_S * 1000};"
            f" SET statement_timeout = {STATEMENT_S * 1000};"
            f" SET tcp_keepalives_idle = {KEEPALIVE_IDLE_S};"
            f" SET tcp_keepalives_interval = {KEEPALIVE_INTERVAL_S};"
            f" SET tcp_keepalives_count = {KEEPALIVE_COUNT}"
        )

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A connection from the small pool (autocommit: each statement, or each
        ``conn.transaction()`` block, commits on its own). Database errors become
        StoreUnavailable (or LockedError for a lock wait that timed out)."""
        psycopg = _psycopg()
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None or conn.closed:
            conn = self._connect()
        ok = False
        try:
            yield conn
            ok = True
        except psycopg.errors.LockNotAvailable:
            raise LockedError(
                f"the state in {self.location} is locked by another process for more than "
                f"{self.lock_timeout:g}s (a stuck cronfile apply, tick or run?){self._lock_holders()}"
            ) from None
        except psycopg.errors.UniqueViolation as e:
            raise ClaimConflict(f"{self.location}: {_first_line(e)}") from None
        except psycopg.Error as e:
            raise StoreUnavailable(f"the state database {self.location}: {_first_line(e)}") from None
        finally:
            broken = conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            if broken or (not ok and conn.broken):
                with suppress(Exception):
                    conn.close()
            else:
                with self._pool_lock:
                    if len(self._pool) < _POOL_IDLE:
                        self._pool.append(conn)
                        conn = None
                if conn is not None:
                    with suppress(Exception):
                        conn.close()

    def _lock_holders(self) -> str:
        """Who holds the meta row's lock, for the message of a lock wait that timed out
        ("; held by session 4242 (cronfile host-a, idle in transaction for 12s)"). A
        cronfile session idle in a transaction for well over IDLE_IN_TXN_S (one the
        server's limit did not reach: a cronfile older than that limit, a pooler that
        dropped the setting) is ended here, so that it cannot hold the state for good;
        any other session (someone's psql) is only named."""
        try:
            with self._conn() as conn:
                rows = conn.execute(
                    "SELECT a.pid, a.application_name, a.state,"
                    " extract(epoch FROM now() - coalesce(a.state_change, a.xact_start))::int,"
                    " a.wait_event IS NOT DISTINCT FROM 'ClientRead'"
                    " FROM pg_stat_activity a WHERE a.pid IN (SELECT l.pid FROM pg_locks l"
                    "   WHERE l.locktype = 'relation' AND l.relation = 'cronfile_meta'::regclass AND l.granted)"
                    "   AND a.pid <> pg_backend_pid() AND a.wait_event_type IS DISTINCT FROM 'Lock'"
                    " ORDER BY a.xact_start LIMIT 3"
                ).fetchall()
                said = []
                for pid, app, state, seconds, reading in rows:
                    what = f"session {pid} ({app or 'no application name'}, {state or '?'} for {seconds}s)"
                    # Idle in a transaction, or waiting for the rest of a pipeline (an
                    # executemany whose client stopped before its Sync: the server's
                    # idle limit does not count that time).
                    waiting = state == "idle in transaction" or (state == "active" and reading)
                    stale = str(app or "").startswith("cronfile") and waiting
                    if stale and seconds is not None and seconds > IDLE_IN_TXN_S + STALE_MARGIN_S:
                        ended = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
                        what += ": ended it" if ended else ": could not end it"
                    said.append(what)
        except Exception:  # noqa: BLE001 - a diagnosis never replaces the error it explains
            return ""
        return f"; held by {', '.join(said)}" if said else ""

    def close(self) -> None:
        """Close the pooled connections (leases keep their own until released)."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            with suppress(Exception):
                conn.close()

    def _ready(self) -> None:
        if not self._ready_done:
            self.ensure()

    # -- state and claims --------------------------------------------------------------

    def ensure(self) -> None:
        """Create the tables (once per database, under an advisory lock so that two
        hosts starting together do not race), and check the schema version."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('cronfile schema'))")
            have = conn.execute("SELECT to_regclass('cronfile_schema') IS NOT NULL").fetchone()[0]
            version = None
            if have:
                row = conn.execute("SELECT max(version) FROM cronfile_schema").fetchone()
                version = row[0] if row else None
            if version is not None and version != SCHEMA_VERSION:
                raise StateError(
                    f"{self.location} holds cronfile schema version {version}; this cronfile "
                    f"reads version {SCHEMA_VERSION}"
                )
            if version is None:
                conn.execute(_SCHEMA.format(state_version=STATE_VERSION))
                conn.execute("INSERT INTO cronfile_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        self._ready_done = True

    def created(self) -> bool:
        if self._ready_done:
            return True  # tables are never dropped under a running cronfile
        # An unreachable database raises (StoreUnavailable): "no tables" would read as an
        # empty history, and a command would print nothing instead of the error.
        with self._conn() as conn:
            return bool(conn.execute("SELECT to_regclass('cronfile_schema') IS NOT NULL").fetchone()[0])

    def exists(self) -> bool:
        if not self.created():
            return False
        with self._conn() as conn:
            row = conn.execute("SELECT written_at IS NOT NULL FROM cronfile_meta WHERE id = 1").fetchone()
        return bool(row and row[0])

    def _load(self, conn: Any, meta: tuple[Any, ...]) -> State:
        """The State from the meta row and the job rows changed since this store last
        read them (all of them the first time)."""
        counter, version, revision, applied_at, orphans = meta
        if version != STATE_VERSION:
            raise StateError(
                f"{self.location}: state version {version!r} is not supported by this cronfile "
                f"(it reads version {STATE_VERSION})"
            )
        with self._cache_lock:
            have, jobs, last = self._counter, self._jobs, self._state_at
        if last is not None and last[0] == counter:
            return last[1]
        if have != counter:
            if have < 0 or have > counter:
                rows = conn.execute("SELECT name, data FROM cronfile_jobs WHERE data IS NOT NULL").fetchall()
                jobs = {}
            else:
                rows = conn.execute(
                    "SELECT name, data FROM cronfile_jobs WHERE changed > %s", (have,)
                ).fetchall()
                jobs = dict(jobs)
            try:
                for name, data in rows:
                    if data is None:
                        jobs.pop(name, None)
                    else:
                        jobs[name] = JobState.decode(data)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise StateError(f"{self.location}: malformed job row ({type(e).__name__}: {e})") from None
            with self._cache_lock:
                if counter >= self._counter:
                    self._counter, self._jobs = counter, jobs
        try:
            head = State.decode({"version": version, "revision": revision, "applied_at": applied_at, "orphans": orphans or [], "jobs": {}})
        except StateError as e:
            raise StateError(f"{self.location}: {e}") from None
        state = head.with_(jobs=dict(jobs))
        with self._cache_lock:
            self._state_at = (counter, state)  # any (counter, state) pair is consistent
        return state

    _META = "SELECT counter, state_version, revision, applied_at, orphans FROM cronfile_meta WHERE id = 1"

    def read(self) -> State:
        """A committed state (one REPEATABLE READ snapshot); no lock."""
        self._ready()
        with self._conn() as conn, conn.transaction():
            # (it holds no lock: the idle limit that ends a stuck writer need not hurry it
            # while it decodes every job of a first read)
            conn.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                f" SET LOCAL idle_in_transaction_session_timeout = {STATEMENT_S * 1000}"
            )
            meta = conn.execute(self._META).fetchone()
            return self._load(conn, meta)

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """Lock the meta row, read what changed, yield a Txn; on a clean exit write the
        jobs that changed and a claim row per new run of an instant, in one database
        transaction. An exception inside (or a claim conflict) writes nothing."""
        if getattr(self._tls, "in_txn", False):
            raise RuntimeError("Store.transaction is not re-entrant")
        self._ready()
        if self._counter < 0:
            # The first transaction of this store: every job is read and decoded (10,000
            # of them take seconds) before the meta row is locked, so that the locked
            # part reads only what changed since, and stays well within IDLE_IN_TXN_S.
            self.read()
        self._tls.in_txn = True
        try:
            with self._conn() as conn:
                with conn.transaction():
                    # (lock_timeout: the session's, set when it connected)
                    meta = conn.execute(self._META + " FOR UPDATE").fetchone()
                    state = self._load(conn, meta)
                    txn = Txn(state)
                    yield txn
                    written = self._write(conn, meta[0], state, txn.state) if txn.changed else None
                if written is not None:
                    with self._cache_lock:
                        if written[0] > self._counter:
                            self._counter, self._jobs = written
                        self._state_at = (written[0], txn.state)
        finally:
            self._tls.in_txn = False

    def _write(self, conn: Any, counter: int, old: State, new: State) -> tuple[int, dict[str, JobState]] | None:
        """Write what differs between ``old`` and ``new`` under the meta row's lock; the
        new counter and jobs, or None when nothing differed."""
        n = counter + 1
        upserts: list[tuple[str, str | None, int]] = []
        for name, js in new.jobs.items():
            was = old.jobs.get(name)
            if was is js:
                continue
            enc = js.encode()
            if was is not None and was.encode() == enc:
                continue
            upserts.append((name, json.dumps(enc, ensure_ascii=False), n))
        upserts += [(name, None, n) for name in old.jobs if name not in new.jobs]
        head_old, head_new = old.encode(jobs=False), new.encode(jobs=False)
        if not upserts and head_old == head_new:
            return None
        self._claim(conn, old, new)
        if upserts:
            # One statement (not executemany's pipeline: a client stopped between its
            # statements and its Sync holds the lock where the server's idle limit does
            # not count; the peers' backstop in _lock_holders would be needed then).
            names, datas, changed = zip(*upserts, strict=True)
            conn.execute(
                "INSERT INTO cronfile_jobs (name, data, changed)"
                " SELECT * FROM unnest(%s::text[], %s::json[], %s::bigint[])"
                " ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, changed = EXCLUDED.changed",
                (list(names), list(datas), list(changed)),
            )
        conn.execute(
            "UPDATE cronfile_meta SET counter = %s, revision = %s, applied_at = %s, orphans = %s::json,"
            " written_at = now() WHERE id = 1",
            (n, head_new["revision"], head_new["applied_at"], json.dumps(head_new["orphans"])),
        )
        return n, dict(new.jobs)

    def _claim(self, conn: Any, old: State, new: State) -> None:
        """A claim row per run of an instant that ``new`` adds; raises ClaimConflict
        (rolling the transaction back) when an instant was claimed before. An engine of
        this process whose lease lapsed claims nothing."""
        before = {r.run_id for js in old.jobs.values() for r in js.running}
        fresh: list[tuple[str, Running]] = [
            (name, r)
            for name, js in new.jobs.items()
            if js is not old.jobs.get(name)
            for r in js.running
            if r.run_id not in before and r.scheduled_for is not None and r.trigger in _CLAIM_TRIGGERS
        ]
        if not fresh:
            return
        for engine in {r.engine for _, r in fresh}:
            lease = self._held_engines.get(engine)
            if lease is None:
                continue
            alive = conn.execute(
                "SELECT expires_at > now() FROM cronfile_engines WHERE engine_id = %s", (engine,)
            ).fetchone()
            if not lease.held or not alive or not alive[0]:
                raise StoreUnavailable(
                    f"engine {engine[:6]}'s lease on {self.location} lapsed: it claims nothing until it is renewed"
                )
        for name, r in fresh:
            cur = conn.execute(
                "INSERT INTO cronfile_claims (job, scheduled_for, run_id, engine) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                # As the state keeps it (milliseconds), so the same instant is one key.
                (name, parse_iso(iso(r.scheduled_for)), r.run_id, r.engine),
            )
            if cur.rowcount != 1:
                raise ClaimConflict(
                    f"{name} at {r.scheduled_for.isoformat() if r.scheduled_for else '?'} was claimed "
                    f"by another engine of {self.location}: not run here"
                )
        if time.monotonic() - self._claims_pruned > 3600:
            self._claims_pruned = time.monotonic()
            conn.execute(
                "DELETE FROM cronfile_claims WHERE claimed_at < now() - make_interval(days => %s)",
                (_CLAIMS_KEEP_DAYS,),
            )

    def claimed(self, job: str) -> list[tuple[datetime, str, str]]:
        """(scheduled_for, run_id, engine) of the job's claim rows, oldest first (tests,
        ``doctor``)."""
        self._ready()
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT scheduled_for, run_id, engine FROM cronfile_claims WHERE job = %s ORDER BY scheduled_for",
                (job,),
            ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    # -- history -----------------------------------------------------------------------

    def append_history(self, job: str, record: dict[str, Any]) -> None:
        _check("job name", job)  # as the file store: a name is also a folder of a host
        self._ready()
        run_id = record.get("run_id")
        host = record.get("host") if isinstance(record.get("host"), str) else None
        engine = record.get("engine") if isinstance(record.get("engine"), str) else None
        pending = (job, run_id) in self._unsent if isinstance(run_id, str) else False
        with self._conn() as conn, conn.transaction():
            if pending:
                self._upload(conn, job, str(run_id))
            conn.execute(
                "INSERT INTO cronfile_history (job, run_id, record, host, engine) VALUES (%s, %s, %s::json, %s, %s)",
                (
                    job,
                    run_id if isinstance(run_id, str) else None,
                    json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str),
                    host or (self.host if "status" in record else None),
                    engine,
                ),
            )
        if pending:
            with self._cache_lock:
                self._unsent.discard((job, str(run_id)))

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]:
        if n is not None and n <= 0:
            return []
        if not self.created():
            return []
        with self._conn() as conn:
            if n is None:
                rows = conn.execute(
                    "SELECT record FROM cronfile_history WHERE job = %s ORDER BY id", (job,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT record FROM (SELECT id, record FROM cronfile_history WHERE job = %s"
                    " ORDER BY id DESC LIMIT %s) t ORDER BY id",
                    (job, n),
                ).fetchall()
        return [r[0] for r in rows if isinstance(r[0], dict)]

    def last_runs(self, n: int) -> dict[str, list[dict[str, Any]]]:
        """Every job's records of its last ``n`` runs, in one query: each run's first
        record (min id per job and run_id), ranked per job newest first, and the records
        of the runs ranked ``n`` or better."""
        if n <= 0 or not self.created():
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "WITH runs AS (SELECT job, run_id, min(id) AS first FROM cronfile_history"
                "   WHERE run_id IS NOT NULL AND run_id <> '' GROUP BY job, run_id),"
                " ranked AS (SELECT job, run_id, row_number() OVER (PARTITION BY job ORDER BY first DESC) AS rn"
                "   FROM runs)"
                " SELECT h.job, h.record FROM cronfile_history h"
                " JOIN ranked r ON r.job = h.job AND r.run_id = h.run_id AND r.rn <= %s"
                " ORDER BY h.job, h.id",
                (n,),
            ).fetchall()
        out: dict[str, list[dict[str, Any]]] = {}
        for job, record in rows:
            if isinstance(record, dict):
                out.setdefault(job, []).append(record)
        return out

    def history_jobs(self) -> list[str]:
        if not self.created():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT job FROM cronfile_history UNION SELECT job FROM cronfile_logs ORDER BY 1"
            ).fetchall()
        names = {r[0] for r in rows}
        runs = self._local_dir / SPOOL
        with suppress(OSError):
            names |= {p.name for p in runs.iterdir() if p.is_dir() and any(p.glob("*.log"))}
        return sorted(names)

    def prune(self, job: str, keep: int) -> None:
        """Keep the last ``keep`` runs (records of one run_id are one run) and their logs."""
        keep = max(keep, 0)
        self._ready()
        with self._conn() as conn, conn.transaction():
            rows = conn.execute(
                "WITH runs AS (SELECT coalesce(run_id, 'line:' || id) AS k, min(id) AS first"
                "   FROM cronfile_history WHERE job = %(job)s GROUP BY 1),"
                " kept AS (SELECT k FROM runs ORDER BY first DESC LIMIT %(keep)s)"
                " DELETE FROM cronfile_history WHERE job = %(job)s"
                "   AND coalesce(run_id, 'line:' || id) NOT IN (SELECT k FROM kept)"
                " RETURNING run_id",
                {"job": job, "keep": keep},
            ).fetchall()
            dropped = sorted({r[0] for r in rows if r[0]})
            if dropped:
                conn.execute(
                    "DELETE FROM cronfile_logs WHERE job = %s AND run_id = ANY(%s)", (job, dropped)
                )
        for run_id in dropped:
            with suppress(OSError, ValueError):
                self._spool(job, run_id).unlink()

    # -- logs --------------------------------------------------------------------------

    def _spool(self, job: str, run_id: str) -> Path:
        _check("job name", job)
        _check("run id", run_id)
        return self._local_dir / SPOOL / job / f"{run_id}.log"

    def log_file(self, job: str, run_id: str) -> Path:
        """This host's spool file of a run in flight (``<local dir>/spool/<job>/``)."""
        path = self._spool(job, run_id)
        for d in (self._local_dir, path.parent.parent, path.parent):
            with suppress(FileExistsError):
                d.mkdir(mode=0o700, parents=True)
        return path

    def keep_log(
        self, job: str, run_id: str, *, limit: int | None = None, empty: bool = False, engine: str | None = None
    ) -> str | None:
        """Upload the spool file (its first ``limit`` bytes) into ``cronfile_logs``; the
        local copy stays until the run is pruned, so this host's deliveries still read it.
        Returns the spool file's path (what the history records as ``log_path``).

        Never raises for an unreachable database: the upload is then left for the run's
        history record, which the engine writes next and retries until it lands
        (``append_history`` uploads a pending log in the same transaction)."""
        path = self._spool(job, run_id)
        if not path.exists():
            # A log that stayed empty was never made (cronfile/runlog.py): nothing to
            # upload; readers take the missing log of a recorded run as empty. Not so for
            # a run of another host's engine (a peer recovering it): its log, if any, was
            # in that host's spool, and no path of this host stands for it.
            if not empty or (engine is not None and not self._ran_here(engine)):
                return None
            return str(path.resolve())
        if limit is not None:
            with suppress(OSError):
                if path.stat().st_size > limit:
                    os.truncate(path, limit)
        try:
            self._ready()
            with self._conn() as conn:
                self._upload(conn, job, run_id)
        except StateError:
            with self._cache_lock:
                self._unsent.add((job, run_id))
        return str(path.resolve())

    def _ran_here(self, engine_id: str) -> bool:
        """Whether ``engine_id`` ran on this host (False if that cannot be told)."""
        if engine_id in self._held_engines:
            return True
        try:
            if not self.created():
                return False
            with self._conn() as conn:
                row = conn.execute("SELECT host FROM cronfile_engines WHERE engine_id = %s", (engine_id,)).fetchone()
        except StateError:
            return False
        return row is not None and row[0] == self.host

    def _upload(self, conn: Any, job: str, run_id: str) -> None:
        try:
            data = self._spool(job, run_id).read_bytes()
        except OSError:
            return
        conn.execute(
            "INSERT INTO cronfile_logs (job, run_id, data) VALUES (%s, %s, %s)"
            " ON CONFLICT (job, run_id) DO UPDATE SET data = EXCLUDED.data",
            (job, run_id, data),
        )

    def read_log(self, job: str, run_id: str, *, offset: int = 0, limit: int | None = None) -> bytes | None:
        if self.created():
            with self._conn() as conn:
                row = conn.execute(
                    "SELECT data FROM cronfile_logs WHERE job = %s AND run_id = %s", (job, run_id)
                ).fetchone()
            if row is not None:
                data = bytes(row[0])[offset:]
                return data if limit is None else data[:limit]
        try:
            with self._spool(job, run_id).open("rb") as f:  # a run in flight on this host
                if offset:
                    f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except (OSError, ValueError):
            return None

    def log_ids(self, job: str) -> list[str]:
        ids: set[str] = set()
        if self.created():
            with self._conn() as conn:
                ids = {r[0] for r in conn.execute("SELECT run_id FROM cronfile_logs WHERE job = %s", (job,))}
        with suppress(OSError, ValueError):
            ids |= {p.name[: -len(".log")] for p in (self._local_dir / SPOOL / job).glob("*.log")}
        return sorted(ids)

    # -- audit -------------------------------------------------------------------------

    def append_audit(self, record: dict[str, Any]) -> None:
        self._ready()
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO cronfile_audit (record) VALUES (%s::json)",
                (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str),),
            )

    def read_audit(self) -> list[dict[str, Any]]:
        if not self.created():
            return []
        with self._conn() as conn:
            rows = conn.execute("SELECT record FROM cronfile_audit ORDER BY id").fetchall()
        return [r[0] for r in rows if isinstance(r[0], dict)]

    # -- engines and the daemon --------------------------------------------------------

    def engine_lock(self, engine_id: str) -> EngineLease:
        """A lease row for this engine, renewed by a thread until ``release``."""
        self._ready()
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "SELECT host, pid, expires_at > now() FROM cronfile_engines WHERE engine_id = %s FOR UPDATE",
                (engine_id,),
            ).fetchone()
            if row is not None and row[2] and not (row[0] == self.host and not _pid_alive(row[1])):
                raise LockedError(f"engine id {engine_id!r} is already in use ({self.location})")
            conn.execute(
                "INSERT INTO cronfile_engines (engine_id, host, pid, expires_at)"
                " VALUES (%s, %s, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (engine_id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,"
                "   started_at = now(), renewed_at = now(), expires_at = EXCLUDED.expires_at",
                (engine_id, self.host, os.getpid(), LEASE_S),
            )
        lease = EngineLease(self, engine_id)
        self._held_engines[engine_id] = lease
        lease.start()
        return lease

    def engine_alive(self, engine_id: str) -> bool:
        """Its lease has not expired by the database's clock; on this host, also its
        process still exists (a SIGKILLed engine here is dead at once)."""
        if engine_id in self._held_engines:
            return True
        if not self.created():
            return False
        with self._conn() as conn:
            row = conn.execute(
                "SELECT host, pid, expires_at > now() FROM cronfile_engines WHERE engine_id = %s", (engine_id,)
            ).fetchone()
        if row is None or not row[2]:
            return False
        host, pid, _ = row
        return not (host == self.host and not _pid_alive(pid))

    def engines(self) -> list[EngineInfo]:
        if not self.created():
            return []
        with self._conn() as conn:
            conn.execute("DELETE FROM cronfile_engines WHERE expires_at < now() - interval '1 day'")
            rows = conn.execute(
                "SELECT engine_id, host, pid, started_at, renewed_at, expires_at > now()"
                " FROM cronfile_engines ORDER BY started_at, engine_id"
            ).fetchall()
        out = []
        for engine_id, host, pid, started, renewed, unexpired in rows:
            alive = bool(unexpired) and not (host == self.host and not _pid_alive(pid))
            if engine_id in self._held_engines:
                alive = True
            out.append(EngineInfo(engine_id, alive, host, pid, started, renewed))
        return out

    def daemons(self) -> list[tuple[str, int | None, datetime, bool]]:
        """(host, pid, last renewal, alive) of each daemon row (``status``)."""
        if not self.created():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT host, pid, renewed_at, expires_at > now() FROM cronfile_daemons ORDER BY host"
            ).fetchall()
        return [
            (h, p, r, bool(a) and not (h == self.host and not _pid_alive(p))) for h, p, r, a in rows
        ]

    def daemon_lock(self) -> DaemonLease:
        """One daemon per host on this database: a lease row keyed by the host name. A
        row left by a daemon of this host that died (its pid is gone) is taken over."""
        self._ready()
        token = os.urandom(8).hex()
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "SELECT pid, expires_at > now() FROM cronfile_daemons WHERE host = %s FOR UPDATE",
                (self.host,),
            ).fetchone()
            if row is not None and row[1] and _pid_alive(row[0]):
                raise LockedError(
                    f"a cronfile daemon (pid {row[0]}) is already running on {self.host} for {self.location}"
                )
            conn.execute(
                "INSERT INTO cronfile_daemons (host, token, pid, expires_at)"
                " VALUES (%s, %s, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (host) DO UPDATE SET token = EXCLUDED.token, pid = EXCLUDED.pid,"
                "   started_at = now(), renewed_at = now(), expires_at = EXCLUDED.expires_at",
                (self.host, token, os.getpid(), LEASE_S),
            )
        lease = DaemonLease(self, token)
        lease.start()
        return lease

    def daemon_running(self) -> bool:
        """Whether a daemon of any host holds a live lease on this database."""
        return any(alive for _, _, _, alive in self.daemons())

    def daemon_pid(self) -> int | None:
        """This host's daemon's pid, if it runs."""
        for host, pid, _, alive in self.daemons():
            if host == self.host and alive:
                return pid
        return None

    # -- the delivery outbox -----------------------------------------------------------

    def outbox_put(self, engine_id: str, entries: list[tuple[str, bytes]]) -> None:
        if not entries:
            return
        self._ready()
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO cronfile_outbox (key, run_id, engine, body) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET engine = EXCLUDED.engine, body = EXCLUDED.body, bad = NULL",
                [(key, key.rsplit(".", 1)[0], engine_id, body) for key, body in entries],
            )

    def outbox_pending(self, run_id: str) -> list[str]:
        if not self.created():
            return []
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT key FROM cronfile_outbox WHERE run_id = %s AND bad IS NULL ORDER BY key", (run_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def outbox_adopt(self, engine_id: str, alive: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        """One ``UPDATE ... WHERE engine = <dead one>`` per dead engine: of two adopters,
        the second finds the rows taken (row locks, then the WHERE checked again)."""
        if not self.created():
            return []
        with self._conn() as conn:
            owners = [r[0] for r in conn.execute("SELECT DISTINCT engine FROM cronfile_outbox WHERE bad IS NULL")]
            for owner in owners:
                if owner == engine_id or alive(owner):
                    continue
                conn.execute(
                    "UPDATE cronfile_outbox SET engine = %s WHERE engine = %s AND bad IS NULL", (engine_id, owner)
                )
            rows = conn.execute(
                "SELECT key, body FROM cronfile_outbox WHERE engine = %s AND bad IS NULL ORDER BY key", (engine_id,)
            ).fetchall()
        return [(k, bytes(b)) for k, b in rows]

    def outbox_done(self, engine_id: str, key: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM cronfile_outbox WHERE key = %s AND engine = %s", (key, engine_id))

    def outbox_bad(self, engine_id: str, key: str, why: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE cronfile_outbox SET bad = %s WHERE key = %s AND engine = %s", (why or "unreadable", key, engine_id)
            )

    # -- diagnosis ---------------------------------------------------------------------

    def write_problem(self) -> str | None:
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1")
            self._ready()
            with self._conn() as conn, conn.transaction():
                conn.execute("SELECT 1 FROM cronfile_meta WHERE id = 1 FOR UPDATE NOWAIT")
        except LockedError:
            return None  # a transaction holds it: the database answers and is writable
        except (StateError, OSError) as e:
            return str(e)
        return None

    def clock_skew(self, time_now: Callable[[], float]) -> float | None:
        try:
            with self._conn() as conn:
                before = time_now()
                db = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0]
                after = time_now()
        except StateError:
            return None
        return float(db) - (before + after) / 2

    def written_at(self) -> datetime | None:
        if not self.created():
            return None
        with self._conn() as conn:
            row = conn.execute("SELECT written_at FROM cronfile_meta WHERE id = 1").fetchone()
        return row[0] if row else None

    def inspect(self) -> list[Finding]:
        try:
            if not self.created():
                return [Finding("state database", "info", f"{self.location} has no cronfile tables yet: nothing applied", "run `cronfile apply`")]
            with self._conn() as conn:
                version = conn.execute("SELECT max(version) FROM cronfile_schema").fetchone()[0]
        except StateError as e:
            return [Finding("state database", "fail", str(e), "check state_url, the network and the server")]
        if version != SCHEMA_VERSION:
            return [Finding("state database", "fail", f"{self.location}: schema version {version}, this cronfile reads {SCHEMA_VERSION}")]
        return [Finding("state database", "ok", f"{self.location} (schema version {version})")]
