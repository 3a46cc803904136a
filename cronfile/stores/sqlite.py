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
- Files, as in the file store (``cronfile.store.Store``, which this class extends):
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

import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..clock import parse_iso
from ..errors import LockedError, StateError
from ..state import STATE_VERSION, JobState, Running, State
from ..store import (
    FILE_MODE,
    HISTORY_NAME,
    StateWriteError,
    Store,
    Txn,
    _check_component,
    _fsync_dir,
    _read_lines,
    fault,
)

__all__ = ["DB_NAME", "SCHEMA_VERSION", "SqliteStore"]

DB_NAME = "state.db"
SCHEMA_VERSION = 1  # PRAGMA user_version; a newer one is an error, never a guess
MIGRATED = ".migrated"
# Tombstones (rows of removed jobs) are purged once this many changes old; a reader that
# is further behind reads every row again. Checked every _PURGE_EVERY changes.
_KEEP_TOMBSTONES = 1024
_PURGE_EVERY = 256

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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


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


class SqliteStore(Store):
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
        self._memo_db: _Memo | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.state_dir)!r})"

    # -- the database --------------------------------------------------------------

    def _connect(self, path: Path) -> sqlite3.Connection:
        # isolation_level=None: transactions are the explicit BEGINs below.
        conn = sqlite3.connect(path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        """A connection of this process's pool, for one statement or transaction."""
        self._open_db()
        with self._pool_lock:
            if self._pool_pid != os.getpid():  # forked: the parent's connections are not ours
                self._pool, self._pool_pid = [], os.getpid()
            conn = self._pool.pop() if self._pool else None
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

    def close(self) -> None:
        """Close the pooled connections (they are reopened on the next use)."""
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            with suppress(sqlite3.Error):
                conn.close()

    def _db_error(self, e: sqlite3.Error) -> StateError:
        text = str(e)
        if isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return LockedError(
                f"{self.db_path} is locked by another process for more than "
                f"{self.lock_timeout:g}s (a stuck cronfile apply, tick or run?)"
            )
        if isinstance(e, sqlite3.OperationalError) and any(
            w in text for w in ("readonly", "read-only", "disk", "full", "unable to open", "I/O")
        ):
            return StateWriteError(f"cannot write {self.db_path}: {text}")
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
            state = Store.read(self)  # the file store's reader: same checks, same errors
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
                jobs = {
                    name: JobState.decode(json.loads(body))
                    for name, body in conn.execute("SELECT name, body FROM jobs WHERE body IS NOT NULL")
                }
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
        self._local.in_txn = True
        try:
            with self._conn() as conn:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    memo = self._load(conn)
                except sqlite3.Error as e:
                    raise self._db_error(e) from None
                txn = Txn(memo.state)
                yield txn
                try:
                    wrote = self._write(conn, memo, txn.state)
                    if wrote is None:
                        conn.execute("ROLLBACK")
                        return
                    fault("mid-state-write")
                    conn.execute("COMMIT")
                except sqlite3.Error as e:
                    raise self._db_error(e) from None
                self._memo_db = wrote
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
            rows.append((name, seq, None if js is None else _dumps(js.encode())))
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
        return _Memo(memo.db_id, seq, head, state)

    # -- history -------------------------------------------------------------------

    def append_history(self, job: str, record: dict[str, Any]) -> None:
        """Append one run's record (one committed, fsync'd transaction)."""
        _check_component("job name", job)
        self._ready()
        try:
            with self._conn() as conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT OR IGNORE INTO history_jobs (job) VALUES (?)", (job,))
                conn.execute(
                    "INSERT INTO history (job, run_id, body) VALUES (?, ?, ?)", (job, _run_id(record), _dumps(record))
                )
                fault("mid-history-write")
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._db_error(e) from None

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]:
        """The job's records, oldest first; only the last ``n`` when given."""
        _check_component("job name", job)
        if n is not None and n <= 0:
            return []
        if not self.db_path.exists() and not self.history_path(job).exists():
            return []
        try:
            with self._conn() as conn:
                if n is None:
                    rows = conn.execute("SELECT body FROM history WHERE job = ? ORDER BY id", (job,)).fetchall()
                else:
                    rows = conn.execute(
                        "SELECT body FROM (SELECT id, body FROM history WHERE job = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                        (job, n),
                    ).fetchall()
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        out = []
        for (body,) in rows:
            with suppress(ValueError):
                rec = json.loads(body)
                if isinstance(rec, dict):
                    out.append(rec)
        return out

    def history_jobs(self) -> list[str]:
        """The jobs with any history (a removed job's history stays)."""
        if not self.db_path.exists() and not self.state_path.exists() and not self.runs_dir.is_dir():
            return []
        try:
            with self._conn() as conn:
                return [j for (j,) in conn.execute("SELECT job FROM history_jobs ORDER BY job")]
        except sqlite3.Error as e:
            raise self._db_error(e) from None

    def prune(self, job: str, keep: int) -> None:
        """Keep the last ``keep`` runs (history_limit) and their logs; the logs of the
        dropped runs are deleted. Counted in runs, not records (a run's record and its
        deliveries line are one run). Reads only this job's rows, through the index."""
        _check_component("job name", job)
        if not self.db_path.exists():
            return
        keep = max(keep, 0)
        key = _run_key_sql()
        try:
            with self._conn() as conn:
                (runs,) = conn.execute(f"SELECT COUNT(DISTINCT {key}) FROM history WHERE job = ?", (job,)).fetchone()
                if runs <= keep:
                    return
                conn.execute("BEGIN IMMEDIATE")
                (runs,) = conn.execute(f"SELECT COUNT(DISTINCT {key}) FROM history WHERE job = ?", (job,)).fetchone()
                if runs <= keep:  # another process pruned meanwhile
                    conn.execute("ROLLBACK")
                    return
                firsts = f"SELECT {key} AS k, MIN(id) AS first FROM history WHERE job = ? GROUP BY k"
                if keep:
                    (cutoff,) = conn.execute(
                        f"SELECT first FROM ({firsts}) ORDER BY first DESC LIMIT 1 OFFSET ?", (job, keep - 1)
                    ).fetchone()
                else:
                    cutoff = None
                drop = f"SELECT k FROM ({firsts})" + (" WHERE first < ?" if cutoff is not None else "")
                args: tuple[Any, ...] = (job, job, cutoff) if cutoff is not None else (job, job)
                dropped = [
                    r for (r,) in conn.execute(
                        f"SELECT DISTINCT run_id FROM history WHERE job = ? AND run_id IS NOT NULL AND {key} IN ({drop})",
                        args,
                    )
                ]
                conn.execute(f"DELETE FROM history WHERE job = ? AND {key} IN ({drop})", args)
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        for run_id in dropped:
            try:
                log = self.job_dir(job) / f"{_check_component('run id', run_id)}.log"
            except ValueError:
                continue
            with suppress(FileNotFoundError):
                log.unlink()


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
