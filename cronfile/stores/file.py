"""The file store: the state dir on disk (``FileStore``, implementing ``stores.base.Store``).

Its layout (docs/design.md 1.1; outside tools and tests read ``runs/<job>/history.jsonl``,
so no name here changes): ``state.json``, ``state.lock``, ``daemon.lock``, ``daemon.pid``,
``engines/<engine id>.lock``, ``runs/<job>/history.jsonl``, ``runs/<job>/history.lock``,
``runs/<job>/<run id>.log``, ``audit.jsonl``, ``outbox/<run id>.<n>@<engine id>.json``,
``.gitignore``. Nothing outside this module names a path inside the state dir.

This is the edge: the only module that opens state files and the only one importing
``filelock`` (STYLE.md habit 7, one seam per library). Everything it stores is decoded by
``cronfile.state``; the decisions about what to store are made by the pure modules.

Recipes, and why:

- ``state.json`` is rewritten as temp file in the same directory, write, fsync,
  ``os.replace``, fsync of the directory. A reader sees the old file or the new one, never
  a torn one, so reads need no lock (the same recipe as git's lock-and-rename of refs).
- Read-modify-write of ``state.json`` holds ``state.lock`` (``FileStore.transaction``), for
  milliseconds: never while a job runs.
- History and audit lines are appended with one ``write`` of a whole line on an
  ``O_APPEND`` descriptor, then fsync. A crash can leave at most a torn last line, which
  readers skip.
- Liveness of an engine is a lock it holds for its whole life (``engines/<id>.lock``):
  the OS drops a flock when the process dies, even by SIGKILL, and a reused PID cannot
  fake it (systemd and PostgreSQL's postmaster.pid checks are PID based and can be).
- An outbox entry is one file, written as temp file, fsync, rename; its owner is in its
  name (``<key>@<engine id>.json``). An engine adopts a dead engine's entry by renaming it
  to its own id: of two adopters one rename wins, the other finds no file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from filelock import FileLock

from ..errors import LockedError, StateError, StateWriteError
from ..faults import fault
from ..state import State
from .base import EngineInfo, Finding, Txn, tail_runs

__all__ = ["DaemonLock", "EngineLock", "FileStore", "StateWriteError", "encode_state"]

DIR_MODE = 0o700
FILE_MODE = 0o600
STATE_NAME = "state.json"
HISTORY_NAME = "history.jsonl"
OUTBOX_NAME = "outbox"
# A checker (engine_alive) holds a dead engine's lock file for microseconds; a live
# engine holds it for its lifetime. Waiting this long before calling an engine alive
# keeps two concurrent checkers from mistaking each other for the engine. Short: the
# engine's checkers probe under state.lock, once per live engine with runs in flight, and
# at 0.2 s a daemon, three ticks and a `run` kept state.lock held for over a second per
# claim, so an every-second job lost instants as `missed` (tests/faults, contention).
# Erring is safe either way round: a dead engine taken for alive is reaped next time.
_ALIVE_PROBE_S = 0.02
_ALIVE_POLL_S = 0.002


def _write_error(what: str, path: Path, e: OSError) -> StateWriteError:
    return StateWriteError(f"cannot {what} {path}: {e.strerror or e}", e.errno)


def encode_state(state: State, lines: dict[str, tuple[Any, str]] | None = None) -> bytes:
    """The bytes of ``state.json``: stable (jobs sorted by State.encode, keys in a fixed
    order), so an apply that changes nothing writes nothing; one job per line, so diffs
    of the file read well. (Not ``indent=2``: that forces json's pure-Python encoder,
    about 3x slower, and this runs on every claim.)

    ``lines`` (name -> (JobState, its line)) is a cache a Store keeps between writes:
    JobStates are immutable, so a job whose object is the one encoded last time is not
    encoded again (at 10,000 jobs, 160 ms per write became the one changed job). It is
    updated in place to the jobs of ``state``."""
    out = ["{"]
    out += [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in state.encode(jobs=False).items()]
    body = []
    fresh: dict[str, tuple[Any, str]] = {}
    for name in sorted(state.jobs):
        js = state.jobs[name]
        hit = lines.get(name) if lines is not None else None
        if hit is not None and hit[0] is js:
            line = hit[1]
        else:
            line = f"  {json.dumps(name, ensure_ascii=False)}: {json.dumps(js.encode(), ensure_ascii=False)}"
        fresh[name] = (js, line)
        body.append(line)
    if lines is not None:
        lines.clear()
        lines.update(fresh)
    joined = ",\n".join(body)
    out.append(' "jobs": {' + ("\n" + joined + "\n " if body else "") + "}")
    out.append("}")
    return ("\n".join(out) + "\n").encode()


# state.json's first line after "{" names the write that made it: a random id. A Store
# keeps the State it last read or wrote and reuses it while the file is the same write:
# same inode, size, mtime *and* id (inode numbers are reused at once after a rename, and
# two writes within one tick of a coarse filesystem clock share an mtime). Decoding
# 10,000 jobs took 0.2 s on every claim of a daemon.
_WRITE_ID_PREFIX = b'{\n "write_id": "'
_WRITE_ID_LINE = len(_WRITE_ID_PREFIX) + 16 + 3  # prefix, 16 hex digits, '",\n'


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def _with_write_id(body: bytes, write_id: str) -> bytes:
    return _WRITE_ID_PREFIX + write_id.encode() + b'",\n' + body[2:]


def _split_write_id(raw: bytes) -> tuple[str | None, bytes]:
    """(write id, the bytes without it) of state.json's contents."""
    if raw.startswith(_WRITE_ID_PREFIX) and raw[_WRITE_ID_LINE - 3 : _WRITE_ID_LINE] == b'",\n':
        return raw[len(_WRITE_ID_PREFIX) : _WRITE_ID_LINE - 3].decode("ascii", "replace"), b"{\n" + raw[_WRITE_ID_LINE:]
    return None, raw


def _check_component(what: str, value: str) -> str:
    # Job names are validated by spec.NAME_RE, run and engine ids are ours; still, every
    # path built here is checked, so a bad value can never climb out of the state dir.
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or "\\" in value
        or "\x00" in value
        or ".." in value
        or value.startswith(".")
    ):
        raise ValueError(f"{what} {value!r} cannot be used in a path")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """One ``write`` of a whole line on an O_APPEND descriptor, then fsync.

    If the file ends in a torn line (a crash mid-write), a newline goes first so that the
    new record starts its own line and the torn fragment stays an unreadable line of its
    own (readers skip it) instead of swallowing the new record."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    data = line.encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        fault("mid-history-write", lambda: os.write(fd, data[: len(data) // 2]))
        while data:
            # A regular file takes the whole line in one write; the loop only guards
            # against a short write (disk full), where the rest must still follow.
            n = os.write(fd, data)
            data = data[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """Every readable record of a JSON-lines file; unreadable lines (a torn write) are
    skipped, never raised."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _run_key(record: dict[str, Any], index: int) -> object:
    run_id = record.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else ("line", index)


class _HeldLock:
    """A lock this process holds until ``release`` (or the end of a ``with`` block)."""

    def __init__(self, lock: FileLock, path: Path) -> None:
        self._lock = lock
        self.path = path

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EngineLock(_HeldLock):
    """Held by an engine for its lifetime; ``FileStore.engine_alive(id)`` tests it."""

    def __init__(self, lock: FileLock, path: Path, engine_id: str, store: FileStore) -> None:
        super().__init__(lock, path)
        self.engine_id = engine_id
        self._store = store

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        # Unlink first, while still holding the lock: a checker then either sees no file
        # (gone) or wins the lock on the unlinked file (gone); never a stale "alive".
        with suppress(FileNotFoundError):
            self.path.unlink()
        self._lock.release(force=True)
        self._store._held_engines.discard(self.engine_id)


class DaemonLock(_HeldLock):
    """``daemon.lock``, held by the one daemon of a state dir; ``daemon.pid`` beside it."""

    def __init__(self, lock: FileLock, path: Path, pid_path: Path) -> None:
        super().__init__(lock, path)
        self.pid_path = pid_path

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        with suppress(OSError, ValueError):
            if int(self.pid_path.read_text().strip()) == os.getpid():
                self.pid_path.unlink()
        self._lock.release(force=True)


class FileStore:
    """The state dir. Cheap to build; touches the disk only when asked."""

    def __init__(self, state_dir: Path, *, lock_timeout: float = 10.0) -> None:
        self.state_dir = Path(state_dir)
        self.lock_timeout = lock_timeout
        self.state_path = self.state_dir / STATE_NAME
        self.lock_path = self.state_dir / "state.lock"
        self.daemon_lock_path = self.state_dir / "daemon.lock"
        self.daemon_pid_path = self.state_dir / "daemon.pid"
        self.runs_dir = self.state_dir / "runs"
        self._real_dirs: dict[str, str] = {}  # job -> its runs folder, symlinks resolved (keep_log)
        self._log_dirs: dict[str, Path] = {}  # job -> its runs folder, made (log_file)
        self.engines_dir = self.state_dir / "engines"
        self.audit_path = self.state_dir / "audit.jsonl"
        self.gitignore_path = self.state_dir / ".gitignore"
        self.outbox_dir = self.state_dir / OUTBOX_NAME
        self._ensured = False
        self._swept = False
        self._local = threading.local()
        self._held_engines: set[str] = set()
        # The last state.json this Store read or wrote: ((dev, inode, size, mtime_ns,
        # ctime_ns),
        # write id, State, a digest of the bytes without the id); and the encoded line
        # of each job.
        self._memo: tuple[tuple[int, int, int, int, int], str, State, bytes] | None = None
        self._lines: dict[str, tuple[Any, str]] = {}

    def __repr__(self) -> str:
        return f"FileStore({str(self.state_dir)!r})"

    @property
    def location(self) -> str:
        return str(self.state_dir)

    @property
    def local_dir(self) -> Path:
        return self.state_dir

    def watch_file(self) -> Path:
        return self.state_path

    def child_env(self) -> dict[str, str]:
        return {"CRONFILE_STATE_DIR": str(self.state_dir.absolute())}

    # -- the directory -----------------------------------------------------------------

    def ensure(self) -> None:
        """Create the state dir (and missing parents) 0700, tighten a wider mode, and
        write the ``.gitignore`` holding ``*`` so it is never committed (docs/design.md 1)."""
        try:
            self._ensure()
        except OSError as e:
            raise _write_error("set up the state dir", Path(e.filename or self.state_dir), e) from None

    def _ensure(self) -> None:
        missing: list[Path] = []
        p = self.state_dir.absolute()
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            with suppress(FileExistsError):
                d.mkdir(mode=DIR_MODE)
        for d in (self.state_dir, self.runs_dir, self.engines_dir):
            with suppress(FileExistsError):
                d.mkdir(mode=DIR_MODE)
            # mkdir's mode is filtered by the umask, and an existing dir may be wider.
            if d.stat().st_mode & 0o777 != DIR_MODE:
                d.chmod(DIR_MODE)
        if not self.gitignore_path.exists():
            self.write_bytes_atomic(self.gitignore_path, b"*\n")
        self._ensured = True

    def _ready(self) -> None:
        if not self._ensured or not self.state_dir.is_dir():
            self.ensure()

    def created(self) -> bool:
        return self.state_dir.is_dir()

    def exists(self) -> bool:
        return self.state_path.exists()

    # -- state.json --------------------------------------------------------------------

    def read(self) -> State:
        """The current state; ``State()`` when there is none yet. No lock: writes are
        atomic renames. Anything unreadable is a StateError that names the file and says
        what to do; the file is never touched."""
        return self._read()[0]

    def _read(self) -> tuple[State, bytes | None]:
        """The state and a digest of the file's bytes without its write id (None: no
        file). A digest, not the bytes: at 10,000 jobs they are 5.5 MB a daemon kept."""
        try:
            fd = os.open(self.state_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return State(), None
        except OSError as e:
            raise StateError(f"{self.state_path}: cannot read it ({e.strerror})") from None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            memo = self._memo
            if memo is not None and memo[0] == key:
                head = os.pread(fd, _WRITE_ID_LINE, 0)
                if _split_write_id(head)[0] == memo[1]:
                    return memo[2], memo[3]
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read()
        except OSError as e:
            raise StateError(f"{self.state_path}: cannot read it ({e.strerror})") from None
        finally:
            os.close(fd)
        remedy = (
            "restore it from a backup or move it aside to start afresh; "
            "cronfile never replaces it silently"
        )
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            raise StateError(f"{self.state_path} is not UTF-8 text: {remedy}") from None
        except json.JSONDecodeError as e:
            raise StateError(
                f"{self.state_path} is not valid JSON (line {e.lineno}): {remedy}"
            ) from None
        try:
            state = State.decode(data)
        except StateError as e:
            raise StateError(f"{self.state_path}: {e}: {remedy}") from None
        write_id, body = _split_write_id(raw)
        digest = _digest(body)
        self._memo = (key, write_id, state, digest) if write_id is not None else None
        return state, digest

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """Hold ``state.lock``, read the state, yield a Txn; on a clean exit write
        ``txn.state`` if it differs. An exception inside writes nothing."""
        if getattr(self._local, "in_txn", False):
            # filelock would let this thread re-enter (or wait on itself for the
            # timeout): a nested read-modify-write is a bug, say so at once.
            raise RuntimeError("Store.transaction is not re-entrant")
        self._ready()
        # A fresh FileLock per transaction: its own descriptor, so threads of one process
        # exclude each other through the OS like separate processes do.
        from filelock import FileLock, Timeout  # (imported when a lock is taken)
        lock = FileLock(self.lock_path, timeout=self.lock_timeout, mode=FILE_MODE)
        try:
            lock.acquire()
        except Timeout:
            raise LockedError(
                f"{self.lock_path} is held by another process for more than "
                f"{self.lock_timeout:g}s (a stuck cronfile apply, tick or run?)"
            ) from None
        except OSError as e:
            raise _write_error("lock", self.lock_path, e) from None
        self._local.in_txn = True
        try:
            if not self._swept:
                self._sweep_temp_files()
            state, raw = self._read()
            txn = Txn(state)
            yield txn
            # Encode once, and write only if the bytes differ from what is on disk.
            body = encode_state(txn.state, self._lines) if txn.changed else None
            if body is not None and (digest := _digest(body)) != raw:
                write_id = secrets.token_hex(8)
                self._memo = None
                try:
                    self.write_bytes_atomic(self.state_path, _with_write_id(body, write_id))
                    st = os.stat(self.state_path)  # ours: every writer holds state.lock
                except OSError as e:
                    raise _write_error("write", self.state_path, e) from None
                self._memo = ((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), write_id, txn.state, digest)
                fault("after-state-write")
        finally:
            self._local.in_txn = False
            lock.release()

    def _sweep_temp_files(self) -> None:
        """Remove temp files of state.json left by a process killed between writing one
        and renaming it (they piled up, one per such crash: tests/faults). Called under
        state.lock, once per Store: every writer of state.json holds that lock, so no
        temp file of a live writer can be among them."""
        self._swept = True
        for tmp in self.state_dir.glob(f".{STATE_NAME}.*.tmp"):
            with suppress(OSError):
                tmp.unlink()

    def write_bytes_atomic(self, path: Path, data: bytes) -> None:
        """Temp file in the same dir, write, fsync, rename over ``path``, fsync the dir.
        The file ends up 0600."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 already; be explicit
            if path.name == STATE_NAME:
                fault("mid-state-write")
            os.replace(tmp, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    # -- run history -------------------------------------------------------------------

    def job_dir(self, job: str, *, create: bool = False) -> Path:
        d = self.runs_dir / _check_component("job name", job)
        if create and not d.is_dir():
            self._ready()
            with suppress(FileExistsError):
                d.mkdir(mode=DIR_MODE)
            d.chmod(DIR_MODE)
        return d

    def history_path(self, job: str) -> Path:
        return self.job_dir(job) / HISTORY_NAME

    def _history_lock(self, job: str) -> FileLock:
        # Appends and prune's rewrite exclude each other: an append landing between
        # prune's read and its rename would go to the replaced file and be lost.
        from filelock import FileLock
        return FileLock(
            self.job_dir(job, create=True) / "history.lock",
            timeout=self.lock_timeout,
            mode=FILE_MODE,
        )

    def append_history(self, job: str, record: dict[str, Any]) -> None:
        """Append one run's record to ``runs/<job>/history.jsonl``."""
        with self._history_lock(job):
            _append_line(self.history_path(job), record)

    def read_history(self, job: str, n: int | None = None) -> list[dict[str, Any]]:
        """The job's runs, oldest first; only the last ``n`` when given. Torn or
        unreadable lines are skipped."""
        records = _read_lines(self.history_path(job))
        if n is not None:
            records = records[-n:] if n > 0 else []
        return records

    def last_runs(self, n: int) -> dict[str, list[dict[str, Any]]]:
        """Every job's records of its last ``n`` runs (a file per job, read whole)."""
        out: dict[str, list[dict[str, Any]]] = {}
        if n <= 0:
            return out
        for job in self.history_jobs():
            try:
                records = tail_runs(self.read_history(job), n)
            except ValueError:  # a folder whose name is no job name
                continue
            if records:
                out[job] = records
        return out

    def history_jobs(self) -> list[str]:
        """The folders under ``runs/``: a job with history or a log (deleted jobs' stay)."""
        try:
            names = os.listdir(self.runs_dir)
        except OSError:
            return []
        return sorted(n for n in names if not n.startswith(".") and (self.runs_dir / n).is_dir())

    # -- run logs ----------------------------------------------------------------------

    def log_file(self, job: str, run_id: str) -> Path:
        """``runs/<job>/<run_id>.log``; the job's directory exists on return. The runner
        creates the file 0600 (docs/design.md 1.1)."""
        # The folder made once per job in this process, not looked at again at every run
        # (a stat and a few Paths a run). Removed since, the runner makes it again
        # (runlog.open_log), with the same mode.
        d = self._log_dirs.get(job)
        if d is None:
            d = self._log_dirs[job] = self.job_dir(job, create=True)
        return d / f"{_check_component('run id', run_id)}.log"

    def _log(self, job: str, run_id: str) -> Path:
        return self.job_dir(job) / f"{_check_component('run id', run_id)}.log"

    def keep_log(
        self, job: str, run_id: str, *, limit: int | None = None, empty: bool = False, engine: str | None = None
    ) -> str | None:
        """The log is already where it is kept: its absolute path (so a webhook receiver
        or a script elsewhere can open it), or None when the run wrote none (``empty``:
        a log that stayed empty was never made, and its path is returned all the same).
        ``engine`` changes nothing: every engine of a state dir runs on its host."""
        real = self._real_dirs.get(job)
        if real is not None and limit is None:
            # The common case, a run's end: the job's folder known, no Path. Its path
            # whether or not the file was made (``empty``: nothing to look at), else
            # only if it was.
            kept = os.path.join(real, f"{_check_component('run id', run_id)}.log")
            return kept if empty or os.path.exists(kept) else None
        path = self._log(job, run_id)
        if not path.exists():
            if not empty:
                return None
        elif limit is not None:
            with suppress(OSError):
                if path.stat().st_size > limit:
                    os.truncate(path, limit)
        # The job's folder resolved once (a realpath walk of every component at every
        # run's end cost more than the rest of this); the log in it is our own file.
        if real is None:
            real = self._real_dirs[job] = os.path.realpath(path.parent)
        return os.path.join(real, path.name)

    def read_log(self, job: str, run_id: str, *, offset: int = 0, limit: int | None = None) -> bytes | None:
        try:
            with self._log(job, run_id).open("rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def log_ids(self, job: str) -> list[str]:
        try:
            names = os.listdir(self.job_dir(job))
        except OSError:
            return []
        return sorted(n[: -len(".log")] for n in names if n.endswith(".log") and not n.startswith("."))

    def prune(self, job: str, keep: int) -> None:
        """Keep the last ``keep`` runs of the history (history_limit) and their logs; the
        logs of the dropped runs are deleted.

        Counted in runs, not lines: lines that share a ``run_id`` (a run's record and the
        delivery line appended after it) are one run, kept or dropped together. Logs
        without a history line are left alone: they belong to runs still in flight."""
        path = self.history_path(job)
        if not path.exists():
            return
        keep = max(keep, 0)
        with self._history_lock(job):
            records = _read_lines(path)
            keys = [_run_key(r, i) for i, r in enumerate(records)]
            runs = list(dict.fromkeys(keys))  # first appearance order
            if len(runs) <= keep:
                # Torn lines alone are no reason to rewrite: readers skip them.
                return
            kept_keys = set(runs[len(runs) - keep :])
            kept = [r for r, k in zip(records, keys, strict=True) if k in kept_keys]
            dropped = [r for r, k in zip(records, keys, strict=True) if k not in kept_keys]
            data = b"".join(
                (json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                for r in kept
            )
            self.write_bytes_atomic(path, data)
        for rec in dropped:
            run_id = rec.get("run_id")
            if not isinstance(run_id, str):
                continue
            try:
                log = self._log(job, run_id)
            except ValueError:
                continue
            with suppress(FileNotFoundError):
                log.unlink()

    def append_audit(self, record: dict[str, Any]) -> None:
        """One line per apply in ``audit.jsonl`` (docs/design.md 1)."""
        self._ready()
        _append_line(self.audit_path, record)

    def read_audit(self) -> list[dict[str, Any]]:
        return _read_lines(self.audit_path)

    # -- engines -----------------------------------------------------------------------

    def _engine_lock_path(self, engine_id: str) -> Path:
        return self.engines_dir / f"{_check_component('engine id', engine_id)}.lock"

    def engine_lock(self, engine_id: str) -> EngineLock:
        """Take ``engines/<id>.lock`` for this engine's lifetime. Use as a context manager
        or call ``.release()``; the OS drops it if the process dies."""
        self._ready()
        path = self._engine_lock_path(engine_id)
        # thread_local=False: the engine may release it from another thread than the one
        # that took it (a signal handler, the daemon's shutdown path).
        from filelock import FileLock, Timeout  # (imported when a lock is taken)
        lock = FileLock(path, mode=FILE_MODE, thread_local=False, blocking=False)
        try:
            lock.acquire()
        except Timeout:
            raise LockedError(f"engine id {engine_id!r} is already in use ({path})") from None
        except OSError as e:
            raise _write_error("lock", path, e) from None
        self._held_engines.add(engine_id)
        return EngineLock(lock, path, engine_id, self)

    def engine_alive(self, engine_id: str) -> bool:
        """Whether the engine that took ``engine_lock(engine_id)`` still lives.

        No lock file: gone (or never here). Lock won: gone, and its file is removed. Lock
        held past a short probe: alive. Works from the same process for another engine's
        id: each probe opens its own descriptor, and flock locks belong to descriptors."""
        if engine_id in self._held_engines:
            return True
        path = self._engine_lock_path(engine_id)
        if not path.exists():
            return False
        from filelock import FileLock, Timeout  # (imported when a lock is taken)
        lock = FileLock(path, mode=FILE_MODE, timeout=_ALIVE_PROBE_S)
        try:
            lock.acquire(poll_interval=_ALIVE_POLL_S)
        except Timeout:
            return True
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        try:
            with suppress(FileNotFoundError):
                path.unlink()
        finally:
            lock.release()
        return False

    def engines(self) -> list[EngineInfo]:
        """Every engine with a lock file, probed; a dead one's file is removed by the
        probe (as every engine start does), so it is listed once, not alive."""
        try:
            names = sorted(os.listdir(self.engines_dir))
        except OSError:
            return []
        out = []
        for name in names:
            if not name.endswith(".lock") or name.startswith("."):
                continue
            engine_id = name[: -len(".lock")]
            path = self.engines_dir / name
            pid = _recorded_pid(path)
            try:
                alive = self.engine_alive(engine_id)
            except (OSError, ValueError):
                alive = True  # cannot tell: do not call it dead
            out.append(EngineInfo(engine_id, alive, pid=pid, where=f"engines/{name}"))
        return out

    # -- the daemon --------------------------------------------------------------------

    def daemon_pid(self) -> int | None:
        """The pid the running daemon wrote beside its lock, if any."""
        try:
            return int(self.daemon_pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def daemon_running(self) -> bool:
        """Whether some process holds ``daemon.lock`` (a probe; takes nothing)."""
        if not self.daemon_lock_path.exists():
            return False
        from filelock import FileLock, Timeout  # (imported when a lock is taken)
        lock = FileLock(self.daemon_lock_path, mode=FILE_MODE, blocking=False)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    def daemon_lock(self) -> DaemonLock:
        """Take ``daemon.lock`` without waiting: one daemon per state dir. If another
        process holds it, LockedError names that process's pid."""
        self._ready()
        from filelock import FileLock, Timeout  # (imported when a lock is taken)
        lock = FileLock(self.daemon_lock_path, mode=FILE_MODE, thread_local=False, blocking=False)
        try:
            lock.acquire()
        except Timeout:
            pid = self.daemon_pid()
            who = f"pid {pid}" if pid is not None else "another process"
            raise LockedError(
                f"a cronfile daemon ({who}) is already running for {self.state_dir}"
                f" (it holds {self.daemon_lock_path})"
            ) from None
        except OSError as e:  # after Timeout, which is an OSError too
            raise _write_error("lock", self.daemon_lock_path, e) from None
        try:
            self.write_bytes_atomic(self.daemon_pid_path, f"{os.getpid()}\n".encode())
        except OSError as e:
            lock.release(force=True)
            raise _write_error("write", self.daemon_pid_path, e) from None
        except BaseException:
            lock.release(force=True)
            raise
        return DaemonLock(lock, self.daemon_lock_path, self.daemon_pid_path)

    # -- the delivery outbox -----------------------------------------------------------

    def _outbox_file(self, key: str, engine_id: str) -> Path:
        _check_component("outbox key", key)
        return self.outbox_dir / f"{key}@{_check_component('engine id', engine_id)}.json"

    def outbox_put(self, engine_id: str, entries: list[tuple[str, bytes]]) -> None:
        """Each entry atomically (temp file, fsync, rename), then one fsync of the dir."""
        if not entries:
            return
        self._ready()
        self.outbox_dir.mkdir(mode=DIR_MODE, exist_ok=True)
        for key, body in entries:
            path = self._outbox_file(key, engine_id)
            tmp = self.outbox_dir / f".{key}@{engine_id}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        _fsync_dir(self.outbox_dir)

    def outbox_pending(self, run_id: str) -> list[str]:
        try:
            names = os.listdir(self.outbox_dir)
        except OSError:
            return []
        return sorted(n.split("@", 1)[0] for n in names if n.startswith(f"{run_id}.") and n.endswith(".json"))

    def outbox_adopt(self, engine_id: str, alive: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        """One rename per dead engine's entry (the rename that wins takes it); temp files
        of a write that died half-way (never queued) are removed."""
        try:
            names = sorted(os.listdir(self.outbox_dir))
        except OSError:
            return []
        _check_component("engine id", engine_id)
        verdict: dict[str, bool] = {engine_id: True}
        taken: list[tuple[str, bytes]] = []
        for name in names:
            if not name.endswith(".json") or "@" not in name:
                if name.endswith(".tmp"):
                    with suppress(FileNotFoundError):
                        (self.outbox_dir / name).unlink()
                continue
            key, owner = name[: -len(".json")].split("@", 1)
            path = self.outbox_dir / name
            if owner != engine_id:
                if owner not in verdict:
                    verdict[owner] = alive(owner)
                if verdict[owner]:
                    continue
                mine = self.outbox_dir / f"{key}@{engine_id}.json"
                try:
                    os.rename(path, mine)
                except FileNotFoundError:
                    continue  # another engine took it first
                path = mine
            try:
                taken.append((key, path.read_bytes()))
            except FileNotFoundError:
                continue  # done meanwhile (our own worker)
        return taken

    def outbox_done(self, engine_id: str, key: str) -> None:
        with suppress(FileNotFoundError):
            self._outbox_file(key, engine_id).unlink()

    def outbox_bad(self, engine_id: str, key: str, why: str) -> None:
        """Renamed to ``<key>@<engine>.json.bad``, kept for a person to look at."""
        path = self._outbox_file(key, engine_id)
        with suppress(FileNotFoundError):
            os.replace(path, path.with_name(path.name + ".bad"))

    # -- diagnosis ---------------------------------------------------------------------

    def write_problem(self) -> str | None:
        probe = self.state_dir / f".healthz-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                os.write(fd, b"ok\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as e:
            where = f" ({e.filename})" if e.filename else ""
            return f"the state dir is not writable: {e.strerror or e}{where}"
        return None

    def clock_skew(self, time_now: Callable[[], float]) -> float | None:
        """mtime of a file written now in the state dir minus ``time_now()``."""
        if not self.state_dir.is_dir():
            return None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=self.state_dir)
        except OSError:
            return None
        try:
            os.write(fd, b"x")
            before = time_now()
            mtime = os.fstat(fd).st_mtime
        finally:
            os.close(fd)
            with suppress(OSError):
                os.unlink(tmp)
        return mtime - before

    def written_at(self) -> datetime | None:
        try:
            return datetime.fromtimestamp(self.state_path.stat().st_mtime, UTC)
        except OSError:
            return None

    def inspect(self) -> list[Finding]:
        """docs/design.md 1.1: the dir (and its subdirs) 0700, every file 0600, all ours.
        Bits that let others write are a fail (they could plant runs in state.json); bits
        that let them read are a warning (run output can hold what a job printed); a file
        owned by another user is a fail (the engine cannot rewrite it: typically `sudo
        cronfile ...`)."""
        shown = _display(self.state_dir)
        if not self.state_dir.exists():
            return [
                Finding(
                    "state dir",
                    "info",
                    f"{shown} does not exist yet: nothing applied",
                    "run `cronfile apply` (or start the daemon, which applies)",
                )
            ]
        if not self.state_dir.is_dir():
            return [Finding("state dir", "fail", f"{shown} is not a folder", f"move {shown} aside, or choose another with --state-dir")]
        uid = os.geteuid()
        wide: list[str] = []
        writable = False
        foreign: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.state_dir):
            for name in [None, *filenames]:
                path = Path(dirpath) if name is None else Path(dirpath) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue  # removed meanwhile (a prune, an engine lock released)
                if path.is_symlink():
                    continue
                rel = str(path.relative_to(self.state_dir)) if path != self.state_dir else "."
                want = DIR_MODE if name is None else FILE_MODE
                mode = st.st_mode & 0o777
                if mode != want:
                    wide.append(f"{rel} {mode:04o}")
                    writable = writable or bool(mode & 0o022)
                if st.st_uid != uid:
                    foreign.append(f"{rel} (uid {st.st_uid})")
            dirnames.sort()
        out = []
        if foreign:
            out.append(
                Finding(
                    "state dir",
                    "fail",
                    f"{_plural(len(foreign), 'path')} in {shown} owned by another user: {_names(foreign)}",
                    f"sudo chown -R {_user()} {shown}   (and run cronfile as one user)",
                )
            )
        if wide:
            out.append(
                Finding(
                    "state dir",
                    "fail" if writable else "warn",
                    f"{_plural(len(wide), 'path')} in {shown} not 0700 (folders) / 0600 (files): {_names(wide)}",
                    f"chmod -R u=rwX,go= {shown}",
                )
            )
        return out or [Finding("state dir", "ok", f"{shown}: folders 0700, files 0600, all yours")]


def _recorded_pid(path: Path) -> int | None:
    # Today's engine locks are empty; a pid written into one is shown when present.
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _display(path: Path) -> str:
    from ..load import display_path

    return display_path(path)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _names(items: list[str], limit: int = 5) -> str:
    # As doctor's own lists of names.
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())
