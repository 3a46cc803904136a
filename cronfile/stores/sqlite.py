"""The single-host store in one SQLite file: ``state.db`` in the state dir.

Why (issue 17): ``state.json`` holds every job and is rewritten and fsync'd on every
claim, pid write and end of a run, and a process whose copy is stale decodes all of it:
a state transaction cost 5 / 42 / 231 ms at 1k / 10k / 30k jobs. Here a transaction
writes the rows of the jobs that changed, and a reader reloads only the rows written
since its last read, so the cost follows the change, not the job count
(``bench/bench_state.py`` measures both stores side by side).

What lives where:

- ``state.db`` (stdlib ``sqlite3``, WAL mode, ``synchronous=FULL``):
  - ``head``: one row: the database's random id, a change counter ``seq``, the lowest
    ``seq`` a reader may be behind and still read incrementally (``purged_to``), and
    the state's small fields (version, revision, applied_at, orphans) as JSON.
  - ``jobs``: one row per job: its JobState as JSON and the ``seq`` that last wrote it;
    a removed job stays as a row without a body (a tombstone) so that a reader learns
    of the removal; tombstones older than ``_KEEP_TOMBSTONES`` changes are purged, and
    a reader further behind than that reads every row again.
  - ``history``: one row per history record, indexed by (job, id): the last N of a job
    and ``prune`` touch that job's rows only. ``history_jobs`` lists the jobs with any.
    Also indexed by (job, run_id) once ``last_runs`` (``status``) first runs: a run's
    first record is then one probe away. Made then, not with the database: each history
    append writes one more page of WAL for it, which on a tiny disk is felt (the fault
    suite's 256 KB tmpfs filled again sooner); building it is 0.2 s at 240,000 records,
    once. Where it cannot be made (a read-only filesystem), ``last_runs`` reads job by job.
- Files, as in the file store (``cronfile.stores.file.FileStore``, which this class extends):
  run logs, the audit log, engine and daemon locks, the delivery outbox.

Recipes, and why:

- A read-modify-write is ``BEGIN IMMEDIATE`` (the one writer lock of the database,
  waited for up to ``lock_timeout``): serializable, so a (job, instant) is claimed at
  most once across processes. A read is a deferred transaction: it sees one committed
  snapshot and never waits for a writer (WAL).
- ``synchronous=FULL``: each commit fsyncs the WAL before returning, so a run's claim
  is durable before it starts. A SIGKILL anywhere before the commit leaves the previous
  state (SQLite rolls the WAL's uncommitted frames back on the next open).
- The database is created whole: schema, first row and any imported ``state.json`` are
  written to a temp file that is renamed to ``state.db`` (under ``state.lock``), so
  ``state.db`` existing means it is complete. Its WAL and shared-memory files get the
  database file's mode (0600) from SQLite.
- Upgrading: the first open of a state dir that has ``state.json`` (and
  ``runs/<job>/history.jsonl`` files) imports them in that same temp file, then renames
  the old files ``*.migrated``; an interrupted migration is finished by the next open.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..clock import parse_iso
from ..errors import LockedError, StateError, StateWriteError
from ..faults import fault
from ..state import STATE_VERSION, JobState, Running, State
from .base import Txn
from .file import (
    FILE_MODE,
    HISTORY_NAME,
    FileStore,
    _check_component,
    _fsync_dir,
    _read_lines,
)

__all__ = ["DB_NAME", "SCHEMA_VERSION", "SqliteStore"]

DB_NAME = "state.db"
SCHEMA_VERSION = 1  # PRAGMA user_version; a newer one is an error, never a guess
MIGRATED = ".migrated"
# Tombstones (rows of removed jobs) are purged once this many changes old; a reader that
# is further behind reads every row again. Checked every _PURGE_EVERY changes.
_KEEP_TOMBSTONES = 1024
_PURGE_EVERY = 256
# Specs whose JSON a store keeps (the jobs that change often: those that run).
_SPEC_JSON_MAX = 2048
_DECODE_ROWS = 1000  # job rows decoded per json.loads when reading them all

_SCHEMA = """
CREATE TABLE head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    db_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    purged_to INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body TEXT
) WITHOUT ROWID;
CREATE INDEX jobs_seq ON jobs (seq);
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    run_id TEXT,
    body TEXT NOT NULL
);
CREATE INDEX history_job ON history (job, id);
CREATE TABLE history_jobs (job TEXT PRIMARY KEY) WITHOUT ROWID;
"""

_REMEDY = "restore it from a backup or move it aside to start afresh; cronfile never replaces it silently"


# json.dumps with any option builds a JSONEncoder at every call: one, kept (the same
# text; a few microseconds saved on each of the rows and records a run writes).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def _head_body(state: State) -> str:
    return _dumps(state.encode(jobs=False))


def _run_key_sql() -> str:
    # A run is its run_id; a record without one is a run of its own (as the file store).
    return "COALESCE(run_id, '#' || id)"


class _Memo:
    """The State a SqliteStore last read or wrote, and where it stands in the database."""

    __slots__ = ("db_id", "head", "seq", "state")

    def __init__(self, db_id: str, seq: int, head: str, state: State) -> None:
        self.db_id = db_id
        self.seq = seq
        self.head = head
        self.state = state


class SqliteStore(FileStore):
    """The state dir with its state and history in ``state.db``. Cheap to build; opens
    the database on first use. Safe to share between threads (a small pool of
    connections) and across processes (SQLite's locks)."""

    def __init__(self, state_dir: Path, *, lock_timeout: float = 10.0) -> None:
        super().__init__(state_dir, lock_timeout=lock_timeout)
        self.db_path = self.state_dir / DB_NAME
        self._pool: list[sqlite3.Connection] = []
        self._pool_pid = os.getpid()
        self._pool_lock = threading.Lock()
        self._db_ready = False
        self._immutable = False  # opened on a read-only filesystem
        self._memo_db: _Memo | None = None
        self._spec_json: dict[int, tuple[Any, str]] = {}  # id(spec) -> (spec, its JSON): _row
        self._has_run_index = False

    # ``append_history`` inside ``transaction()`` (the same thread) writes on the
    # transaction's connection: the line commits with the state, or not at all. The
    # engine's writer (cronfile/writer.py) commits a run's record and its end together.
    history_in_txn = True

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.state_dir)!r})"

    def watch_file(self) -> Path:
        """``state.db``: the watcher also takes its write-ahead log (``state.db-wal``),
        where every commit lands first."""
        return self.db_path

    def written_at(self) -> datetime | None:
        times = []
        for p in (self.db_path, self.db_path.with_name(DB_NAME + "-wal")):
            with suppress(OSError):
                times.append(p.stat().st_mtime)
        return datetime.fromtimestamp(max(times), UTC) if times else None

    # -- the database --------------------------------------------------------------

    def _connect(self, path: Path) -> sqlite3.Connection:
        # isolation_level=None: transactions are the explicit BEGINs below.
        conn = sqlite3.connect(path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            # After a checkpoint the WAL is cut back to this size instead of keeping the
            # largest it ever grew to (SQLite's default).
            conn.execute("PRAGMA journal_size_limit=1048576")
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            conn.close()
            if not _read_only_fs(path.parent):
                raise
            # A read-only filesystem: WAL mode cannot make its shared-memory file, so
            # the database is opened as immutable (nothing can change it there);
            # `status` and `diff` work, a write is StateWriteError (_writable).
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
            )
            self._immutable = True
        return conn

    def _writable(self) -> None:
        self._open_db()
        if self._immutable:
            raise StateWriteError(f"cannot write {self.db_path}: {os.strerror(errno.EROFS)}", errno.EROFS)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """A connection of this process's pool, for one statement or transaction."""
        self._open_db()
        with self._pool_lock:
            if self._pool_pid != os.getpid():  # forked: the parent's connections are not ours
                self._pool, self._pool_pid = [], os.getpid()
            try:
                conn = self._pool.pop()
            except IndexError:  # (_query pops without the lock)
                conn = None
        if conn is None:
            try:
                conn = self._connect(self.db_path)
            except sqlite3.Error as e:
                raise self._db_error(e) from None
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        finally:
            if conn.in_transaction:  # an error inside a commit: give back a clean one
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            with self._pool_lock:
                if self._pool_pid == os.getpid() and len(self._pool) < 8:
                    self._pool.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """One read statement's rows (no explicit transaction: one snapshot anyway).
        The hot path of ``status`` (a query per job): no context manager, no stat."""
        if not self._db_ready:
            self._open_db()
        outer = getattr(self._local, "conn", None)
        if outer is not None:  # inside this thread's transaction: see its own writes
            try:
                return outer.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise self._db_error(e) from None
        pool = self._pool
        try:
            conn = pool.pop() if self._pool_pid == os.getpid() else None
        except IndexError:
            conn = None
        try:
            if conn is None:
                conn = self._connect(self.db_path)
            rows = conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        if self._pool_pid == os.getpid() and len(pool) < 8:
            pool.append(conn)  # list.append/pop are atomic: no lock needed
        else:
            conn.close()
        return rows

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A connection to write on: inside a state transaction of this thread, that
        transaction's (the write commits with it, or not at all: an engine appends a
        dead run's record under the state transaction that drops the run, and a second
        connection would wait for the first for ever); else its own BEGIN IMMEDIATE."""
        outer = getattr(self._local, "conn", None)
        if outer is not None:
            self._local.wrote = True  # the transaction commits even if the state did not change
            yield outer
            return
        with self._conn() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                _make_room(conn, e)
                raise

    def close(self) -> None:
        """Close the pooled connections (they are reopened on the next use)."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            with suppress(sqlite3.Error):
                conn.close()

    def _db_error(self, e: sqlite3.Error) -> StateError:
        """What a person should read for an SQLite error: locked (LockedError), cannot
        write (StateWriteError, with the errno a daemon waits out), or damaged."""
        name = getattr(e, "sqlite_errorname", "") or ""
        text = str(e)
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (not name and "locked" in text):
            return LockedError(
                f"{self.db_path} is locked by another process for more than "
                f"{self.lock_timeout:g}s (a stuck cronfile apply, tick or run?)"
            )
        if name.startswith("SQLITE_FULL"):
            return StateWriteError(f"cannot write {self.db_path}: {os.strerror(errno.ENOSPC)}", errno.ENOSPC)
        if name.startswith("SQLITE_READONLY"):
            return StateWriteError(f"cannot write {self.db_path}: {text}", errno.EROFS)
        if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            return StateWriteError(f"cannot write {self.db_path}: {text}", errno.EIO)
        return StateError(f"{self.db_path} is not a readable cronfile state database ({text}): {_REMEDY}")

    def _open_db(self) -> None:
        """Make sure ``state.db`` exists, creating it (and importing ``state.json`` and
        history files of an older cronfile) on first use; check its schema version."""
        if self._db_ready:
            return
        if not self.db_path.exists():
            self._ready()
            self._create_db()
        self._check_schema()
        self._finish_migration()
        self._db_ready = True

    def _check_schema(self) -> None:
        try:
            conn = self._connect(self.db_path)
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT seq FROM head").fetchone()
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        finally:
            conn.close()
        if version != SCHEMA_VERSION:
            raise StateError(
                f"{self.db_path}: schema version {version} is not supported by this cronfile "
                f"(it reads version {SCHEMA_VERSION}): {_REMEDY}"
            )

    def _create_db(self) -> None:
        """Build the database in a temp file and rename it to ``state.db``, under
        ``state.lock`` (another process may be doing the same)."""
        from filelock import FileLock, Timeout  # (here: `status` and `diff` never lock)

        lock = FileLock(self.lock_path, timeout=self.lock_timeout, mode=FILE_MODE)
        try:
            lock.acquire()
        except Timeout:
            raise LockedError(f"{self.lock_path} is held by another process for more than {self.lock_timeout:g}s") from None
        except OSError as e:
            raise StateWriteError(f"cannot lock {self.lock_path}: {e.strerror or e}", e.errno) from None
        try:
            if self.db_path.exists():
                return
            for tmp in self.state_dir.glob(f".{DB_NAME}.*.tmp*"):
                with suppress(OSError):
                    tmp.unlink()
            tmp = self.state_dir / f".{DB_NAME}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
                os.close(fd)
                conn = self._connect(tmp)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    legacy = self._import_legacy(conn)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                finally:
                    conn.close()  # checkpoints the WAL into the file and removes it
                if legacy:
                    # Until the old files are renamed: the next open finishes the job.
                    fd = os.open(self._pending_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
                    os.close(fd)
                fault("mid-migration")
                # A WAL left beside a database that was moved aside would be replayed
                # into this one: it belongs to the old database, not to this one.
                for stale in ("-wal", "-shm"):
                    with suppress(FileNotFoundError):
                        os.unlink(f"{self.db_path}{stale}")
                os.replace(tmp, self.db_path)
                _fsync_dir(self.state_dir)
                fault("after-migration")
            except OSError as e:
                raise StateWriteError(f"cannot create {self.db_path}: {e.strerror or e}", e.errno) from None
            except sqlite3.Error as e:
                raise self._db_error(e) from None
            finally:
                for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
                    with suppress(FileNotFoundError):
                        leftover.unlink()
        finally:
            lock.release()

    def _import_legacy(self, conn: sqlite3.Connection) -> bool:
        """The first row, and what an older cronfile left: ``state.json`` and every
        ``runs/<job>/history.jsonl`` (torn lines skipped, as their readers did). Whether
        there was anything to import."""
        state = State()
        migrated = False
        if self.state_path.exists():
            state = FileStore.read(self)  # the file store's reader: same checks, same errors
            migrated = True
        conn.execute(
            "INSERT INTO head (id, db_id, seq, purged_to, body) VALUES (1, ?, ?, 0, ?)",
            (secrets.token_hex(8), 1 if migrated else 0, _head_body(state)),
        )
        conn.executemany(
            "INSERT INTO jobs (name, seq, body) VALUES (?, 1, ?)",
            ((name, _dumps(js.encode())) for name, js in state.jobs.items()),
        )
        if self.runs_dir.is_dir():
            for d in sorted(self.runs_dir.iterdir()):
                path = d / HISTORY_NAME
                if not path.is_file():
                    continue
                records = _read_lines(path)
                conn.execute("INSERT OR IGNORE INTO history_jobs (job) VALUES (?)", (d.name,))
                conn.executemany(
                    "INSERT INTO history (job, run_id, body) VALUES (?, ?, ?)",
                    ((d.name, _run_id(r), _dumps(r)) for r in records),
                )
                migrated = True
        return migrated

    @property
    def _pending_path(self) -> Path:
        return self.state_dir / "state.db.migrating"

    def _finish_migration(self) -> None:
        """Rename what was imported to ``*.migrated`` (also when a crash came between the
        rename of the new database and these renames: they were imported all the same).
        Only while ``state.db.migrating`` says so: a ``state.json`` that appears later
        was written by an older cronfile, and is left for a person to look at."""
        if not self._pending_path.exists():
            return
        legacy = [self.state_path]
        if self.runs_dir.is_dir():
            legacy += [d / HISTORY_NAME for d in self.runs_dir.iterdir()]
        try:
            for path in legacy:
                with suppress(FileNotFoundError):  # another process renamed it first
                    os.replace(path, path.with_name(path.name + MIGRATED))
            self._pending_path.unlink(missing_ok=True)
            _fsync_dir(self.state_dir)
        except OSError as e:
            raise StateWriteError(f"cannot finish the move to {self.db_path}: {e.strerror or e}", e.errno) from None

    # -- state ---------------------------------------------------------------------

    def exists(self) -> bool:
        if not self.db_path.exists():
            return self.state_path.exists()  # an older cronfile's state, imported on open
        try:
            with self._conn() as conn:
                row = conn.execute("SELECT seq FROM head").fetchone()
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        return bool(row and row[0] > 0)

    def read(self) -> State:
        """The committed state; ``State()`` when there is none yet. Reads only the rows
        changed since this store's last read or write."""
        if not self.db_path.exists() and not self.state_path.exists():
            return State()
        try:
            with self._conn() as conn:
                conn.execute("BEGIN")
                memo = self._load(conn)
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        return memo.state

    def _load(self, conn: sqlite3.Connection) -> _Memo:
        """The state as of ``conn``'s transaction, from the memo and the rows written
        since it."""
        row = conn.execute("SELECT db_id, seq, purged_to, body FROM head").fetchone()
        if row is None:
            raise StateError(f"{self.db_path} has no head row: {_REMEDY}")
        db_id, seq, purged_to, head = row
        memo = self._memo_db
        if memo is not None and memo.db_id == db_id and memo.seq == seq:
            return memo
        try:
            if memo is not None and memo.db_id == db_id and purged_to <= memo.seq < seq:
                jobs = dict(memo.state.jobs)
                for name, body in conn.execute("SELECT name, body FROM jobs WHERE seq > ?", (memo.seq,)):
                    if body is None:
                        jobs.pop(name, None)
                    else:
                        jobs[name] = JobState.decode(json.loads(body))
            else:
                # One json.loads per _DECODE_ROWS rows (a call per row cost a third more;
                # all rows at once held every row's text, their join and their decoded
                # JSON at the same time: 88 MB of a 30,000-job daemon's peak), with the
                # cyclic GC paused: decoded JSON holds no cycles, and the collections that
                # 10,000 jobs' worth of new objects set off took half the time.
                cur = conn.execute("SELECT name, body FROM jobs WHERE body IS NOT NULL")
                jobs = {}
                enabled = gc.isenabled()
                gc.disable()
                try:
                    while rows := cur.fetchmany(_DECODE_ROWS):
                        bodies = json.loads("[" + ",".join(body for _, body in rows) + "]")
                        for (name, _), d in zip(rows, bodies, strict=True):
                            jobs[name] = JobState.decode(d)
                        del rows, bodies
                finally:
                    if enabled:
                        gc.enable()
            if memo is not None and memo.head == head:
                old = memo.state
                state = State(jobs=jobs, revision=old.revision, applied_at=old.applied_at, orphans=old.orphans)
            else:
                state = _decode_head(head, jobs)
        except StateError as e:
            raise StateError(f"{self.db_path}: {e}: {_REMEDY}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StateError(f"{self.db_path}: malformed state ({type(e).__name__}: {e}): {_REMEDY}") from None
        memo = _Memo(db_id, seq, head, state)
        self._memo_db = memo
        return memo

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """``BEGIN IMMEDIATE``, read the state, yield a Txn; on a clean exit write the
        rows of the jobs ``txn.state`` changed and commit. An exception inside writes
        nothing."""
        if getattr(self._local, "in_txn", False):
            raise RuntimeError("Store.transaction is not re-entrant")
        self._ready()
        self._writable()
        self._local.in_txn = True
        try:
            with self._conn() as conn:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    memo = self._load(conn)
                except sqlite3.Error as e:
                    raise self._db_error(e) from None
                txn = Txn(memo.state)
                self._local.conn = conn
                self._local.wrote = False
                self._local.after_commit = []  # prune's log deletions: only once committed
                try:
                    yield txn
                finally:
                    self._local.conn = None
                try:
                    wrote = self._write(conn, memo, txn.state)
                    if wrote is None and not self._local.wrote:
                        conn.execute("ROLLBACK")
                        txn.state = memo.state  # (equal: nothing to write)
                        return
                    fault("mid-state-write")
                    conn.execute("COMMIT")
                except sqlite3.Error as e:
                    _make_room(conn, e)
                    raise self._db_error(e) from None
                for job, run_ids in self._local.after_commit:
                    self._drop_logs(job, run_ids)
                if wrote is not None:
                    self._memo_db = wrote
                    # The caller keeps what ``read()`` returns from now on (the very
                    # object, while no one else writes): the engine's writer tells its
                    # own writes from another process's by it (writer.StateWriter.ours).
                    txn.state = wrote.state
                else:
                    txn.state = memo.state
                fault("after-state-write")
        finally:
            self._local.in_txn = False

    def _write(self, conn: sqlite3.Connection, memo: _Memo, state: State) -> _Memo | None:
        """Write what ``state`` changed since ``memo``; the new memo (None: nothing)."""
        before = memo.state
        if state is before:
            return None
        names = state.changed_since(before)
        head = _head_body(state)
        if not names and head == memo.head:
            return None
        seq = memo.seq + 1
        rows = []
        for name in sorted(names):
            js = state.jobs.get(name)
            rows.append((name, seq, None if js is None else self._row(js)))
        conn.executemany(
            "INSERT INTO jobs (name, seq, body) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, body = excluded.body",
            rows,
        )
        purged_to = None
        if seq % _PURGE_EVERY == 0 and seq > _KEEP_TOMBSTONES:
            purged_to = seq - _KEEP_TOMBSTONES
            conn.execute("DELETE FROM jobs WHERE body IS NULL AND seq <= ?", (purged_to,))
        if purged_to is None:
            conn.execute("UPDATE head SET seq = ?, body = ?", (seq, head))
        else:
            conn.execute("UPDATE head SET seq = ?, body = ?, purged_to = ?", (seq, head, purged_to))
        return _Memo(memo.db_id, seq, head, state.settled())

    def _row(self, js: JobState) -> str:
        """A job's row: ``_dumps(js.encode())``, byte for byte, with its spec's JSON (the
        bulk of it, and the same object from one change of the job to the next: a run
        writes its job three times) encoded once. Remembered by the spec object itself,
        held here, so an id is never taken for another object's."""
        spec = js.spec
        hit = self._spec_json.get(id(spec))
        if hit is None or hit[0] is not spec:
            if len(self._spec_json) >= _SPEC_JSON_MAX:
                self._spec_json.clear()
            hit = self._spec_json[id(spec)] = (spec, _dumps(spec))
        d = js.encode()
        del d["spec"]
        return '{"spec":' + hit[1] + "," + _dumps(d)[1:]

    # -- history -------------------------------------------------------------------

    def append_history(self, job: str, record: dict[str, Any]) -> None:
        """Append one run's record (one committed, fsync'd transaction)."""
        _check_component("job name", job)
        if getattr(self._local, "conn", None) is None:
            # (Inside a state transaction both were checked as it began: a group commit
            # appends a line per run ending, and this was a stat each.)
            self._ready()
            self._writable()
        try:
            with self._writing() as conn:
                conn.execute("INSERT OR IGNORE INTO history_jobs (job) VALUES (?)", (job,))
                conn.execute(
                    "INSERT INTO history (job, run_id, body) VALUES (?, ?, ?)", (job, _run_id(record), _dumps(record))
                )
                fault("mid-history-write")
        except sqlite3.Error as e:
            raise self._db_error(e) from None

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]:
        """The job's records, oldest first; only the last ``n`` when given."""
        _check_component("job name", job)
        if n is not None and n <= 0:
            return []
        if not self._db_ready and not self.db_path.exists() and not self.history_path(job).exists():
            return []
        if n is None:
            rows = self._query("SELECT body FROM history WHERE job = ? ORDER BY id", (job,))
        else:
            rows = self._query(
                "SELECT body FROM (SELECT id, body FROM history WHERE job = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                (job, n),
            )
        return _decode_records(rows)

    def last_runs(self, n: int) -> dict[str, list[dict[str, Any]]]:
        """Every job's records of its last ``n`` runs, in one statement: per job, walk its
        records newest first through the (job, id) index to the first record of its
        ``n``-th last run (a record is a run's first when the (job, run_id) index has no
        older one), then read the records from there on, less those of runs that began
        before it (a late deliveries line of an older run). Only the tail of each job is
        read, however long its history."""
        if n <= 0:
            return {}
        if not self._db_ready and not self.db_path.exists() and not self.state_path.exists():
            return {}
        if not self._history_run_index():
            return FileStore.last_runs(self, n)  # (reads through read_history: correct, slower)
        rows = self._query(_LAST_RUNS_SQL, (n - 1, n - 1))
        out: dict[str, list[dict[str, Any]]] = {}
        if not rows:
            return out
        try:
            recs = json.loads("[" + ",".join(body for _, body in rows) + "]")
        except ValueError:
            recs = []
            for _, body in rows:
                try:
                    recs.append(json.loads(body))
                except ValueError:
                    recs.append(None)
        for (job, _), rec in zip(rows, recs, strict=True):
            if isinstance(rec, dict):
                out.setdefault(job, []).append(rec)
        return out

    @contextmanager
    def snapshot(self) -> Iterator[bool]:
        """Reads of this thread in the block (``_query``: read_history, last_runs,
        history_mark) see one snapshot of the database: for a reader that derives several
        things from the history at once (cronfile/statusmemo.py). Yields False, reading
        nothing, when there is no database."""
        if getattr(self._local, "conn", None) is not None:
            yield True
            return
        if not self._db_ready and not self.db_path.exists():
            yield False
            return
        with self._conn() as conn:
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as e:
                raise self._db_error(e) from None
            self._local.conn = conn
            try:
                yield True
            finally:
                self._local.conn = None
                with suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    def jobs_mark(self) -> tuple[str, int, int, str]:
        """(the database's id, its seq, purged_to, the head row's body): what tells a
        reader that kept what it derived from the jobs' rows which rows to read again
        (those with a higher seq, as ``read`` does with its own memo)."""
        db_id, seq, purged_to, head = self._query("SELECT db_id, seq, purged_to, body FROM head")[0]
        return str(db_id), int(seq), int(purged_to), str(head)

    def job_seqs(self) -> dict[str, int]:
        """Each job row's name and the seq that wrote it (deleted jobs' rows too), from
        the seq index alone: what tells a reader that kept the rows up to a seq whether
        they are still those (a backup put back hands the same seqs out again)."""
        return dict(self._query("SELECT name, seq FROM jobs INDEXED BY jobs_seq"))

    def jobs_since(self, seq: int) -> list[tuple[str, JobState | None]]:
        """The jobs whose rows were written after ``seq``, decoded (None: deleted)."""
        out: list[tuple[str, JobState | None]] = []
        try:
            for name, body in self._query("SELECT name, body FROM jobs WHERE seq > ?", (seq,)):
                out.append((name, None if body is None else JobState.decode(json.loads(body))))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StateError(f"{self.db_path}: malformed state ({type(e).__name__}: {e}): {_REMEDY}") from None
        return out

    def history_mark(self) -> tuple[str, int, int, tuple[Any, ...] | None]:
        """(the database's id, the highest history row id, the number of history rows,
        (job, run_id, body length) of the highest row): what tells a reader that kept
        what it derived from the history whether rows came or went since."""
        (db_id,) = self._query("SELECT db_id FROM head")[0]
        top, count = self._query("SELECT max(id), count(*) FROM history")[0]
        row = self._query("SELECT job, run_id, length(body) FROM history WHERE id = ?", (top,)) if top is not None else []
        return str(db_id), int(top or 0), int(count), tuple(row[0]) if row else None

    def history_jobs_after(self, after: int) -> dict[str, int]:
        """The jobs with history rows above id ``after``, each with its row count."""
        return dict(
            self._query(
                "SELECT d.job, (SELECT count(*) FROM history c WHERE c.job = d.job) "
                "FROM (SELECT DISTINCT job FROM history WHERE id > ?) d",
                (after,),
            )
        )

    def history_counts(self) -> dict[str, int]:
        """Every job's number of history rows."""
        return dict(self._query("SELECT job, count(*) FROM history GROUP BY job"))

    def _history_run_index(self) -> bool:
        """Whether ``history_run`` exists, made now if it can be (a database from before
        it); False when it cannot (a read-only filesystem, the lock held elsewhere)."""
        if self._has_run_index:
            return True
        if self._query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'history_run'"):
            self._has_run_index = True
            return True
        if self._immutable:
            return False
        try:
            with self._conn() as conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("CREATE INDEX IF NOT EXISTS history_run ON history (job, run_id)")
                conn.execute("COMMIT")
        except (sqlite3.Error, StateError):
            return False
        self._has_run_index = True
        return True

    def history_jobs(self) -> list[str]:
        """The jobs with any history (a removed job's history stays)."""
        if not self.db_path.exists() and not self.state_path.exists() and not self.runs_dir.is_dir():
            return []
        try:
            with self._conn() as conn:
                return [j for (j,) in conn.execute("SELECT job FROM history_jobs ORDER BY job")]
        except sqlite3.Error as e:
            raise self._db_error(e) from None

    def prune_due(self, job: str, keep: int) -> bool:
        """Whether ``prune(job, keep)`` may have anything to drop: more than ``keep``
        records (each run has at least one). One count over the (job, id) index: cheaper
        than counting runs, and the engine asks at every run's end."""
        return self._query("SELECT COUNT(*) FROM history WHERE job = ?", (job,))[0][0] > max(keep, 0)

    def prune(self, job: str, keep: int) -> None:
        """Keep the last ``keep`` runs (history_limit) and their logs; the logs of the
        dropped runs are deleted. Counted in runs, not records (a run's record and its
        deliveries line are one run). Reads only this job's rows, through the index."""
        _check_component("job name", job)
        if not self.db_path.exists():
            return
        keep = max(keep, 0)
        if not self.prune_due(job, keep):
            return  # the common case, without the write lock
        key = _run_key_sql()
        count = f"SELECT COUNT(DISTINCT {key}) FROM history WHERE job = ?"
        if self._query(count, (job,))[0][0] <= keep:
            return
        dropped: list[str] = []
        try:
            with self._writing() as conn:
                (runs,) = conn.execute(count, (job,)).fetchone()
                if runs > keep:  # (another process may have pruned meanwhile)
                    firsts = f"SELECT {key} AS k, MIN(id) AS first FROM history WHERE job = ? GROUP BY k"
                    args: tuple[Any, ...] = (job, job)
                    drop = f"SELECT k FROM ({firsts})"
                    if keep:
                        (cutoff,) = conn.execute(
                            f"SELECT first FROM ({firsts}) ORDER BY first DESC LIMIT 1 OFFSET ?", (job, keep - 1)
                        ).fetchone()
                        drop += " WHERE first < ?"
                        args = (job, job, cutoff)
                    dropped = [
                        r
                        for (r,) in conn.execute(
                            f"SELECT DISTINCT run_id FROM history WHERE job = ? AND run_id IS NOT NULL AND {key} IN ({drop})",
                            args,
                        )
                    ]
                    conn.execute(f"DELETE FROM history WHERE job = ? AND {key} IN ({drop})", args)
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        if getattr(self._local, "conn", None) is not None:
            # Inside a state transaction (the engine's writer prunes in its own): the
            # rows go only when it commits, so their logs go then too, not before.
            self._local.after_commit.append((job, dropped))
        else:
            self._drop_logs(job, dropped)

    def _drop_logs(self, job: str, run_ids: list[str]) -> None:
        for run_id in run_ids:
            try:
                log = self.job_dir(job) / f"{_check_component('run id', run_id)}.log"
            except ValueError:
                continue
            with suppress(FileNotFoundError):
                log.unlink()


# Store.last_runs: ``cut`` is each job's first record of its n-th last run (0: it has
# fewer runs; known without a probe when it has fewer than n records), materialized so
# that it is worked out once per job, not per record. Both parameters are n - 1.
_LAST_RUNS_SQL = """
WITH cut AS MATERIALIZED (
    SELECT j.job AS job, CASE
        WHEN (SELECT id FROM history WHERE job = j.job ORDER BY id DESC LIMIT 1 OFFSET ?) IS NULL THEN 0
        ELSE COALESCE((
            SELECT f.id FROM history f
            WHERE f.job = j.job AND f.run_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM history e WHERE e.job = f.job AND e.run_id = f.run_id AND e.id < f.id)
            ORDER BY f.id DESC LIMIT 1 OFFSET ?), 0)
        END AS first
    FROM history_jobs j
)
SELECT h.job, h.body FROM cut JOIN history h ON h.job = cut.job AND h.id >= cut.first
WHERE h.run_id IS NOT NULL
  AND (cut.first = 0 OR NOT EXISTS (SELECT 1 FROM history e WHERE e.job = h.job AND e.run_id = h.run_id AND e.id < cut.first))
ORDER BY h.job, h.id
"""


def _make_room(conn: sqlite3.Connection, e: sqlite3.Error) -> None:
    """After a full disk: roll back, then checkpoint the WAL into the database and
    truncate it, so the retry that follows (a daemon retries) finds the WAL's space
    free. On a small filesystem the WAL alone filled it (tests/faults, a 256 KB tmpfs)."""
    if not (getattr(e, "sqlite_errorname", "") or "").startswith("SQLITE_FULL"):
        return
    with suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _decode_records(rows: list[tuple[str]]) -> list[dict[str, Any]]:
    """History bodies, decoded in one ``json.loads`` of them all (a call per record
    cost as much as the decoding); one at a time only if that fails."""
    if not rows:
        return []
    try:
        recs = json.loads("[" + ",".join(body for (body,) in rows) + "]")
    except ValueError:
        recs = []
        for (body,) in rows:
            with suppress(ValueError):
                recs.append(json.loads(body))
    return [r for r in recs if isinstance(r, dict)]


def _run_id(record: dict[str, Any]) -> str | None:
    run_id = record.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _decode_head(head: str, jobs: dict[str, JobState]) -> State:
    d = json.loads(head)
    if not isinstance(d, dict):
        raise StateError("not a JSON object")
    if d.get("version") != STATE_VERSION:
        raise StateError(
            f"state version {d.get('version')!r} is not supported by this cronfile (it reads version {STATE_VERSION})"
        )
    return State(
        jobs=jobs,
        revision=d.get("revision"),
        applied_at=parse_iso(d.get("applied_at")),
        orphans=tuple(Running.decode(r) for r in d.get("orphans", ())),
    )
