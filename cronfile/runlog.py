"""A run's log file, created on its first byte (issue 17, round 4).

Creating the file was the costliest step of a silent run's start: on ext4 a new inode
in a folder whose logs are pruned as fast as they are made costs about 0.5 ms of the
engine's CPU (the allocator skips recently deleted inodes), as much as the spawn itself.
Most scheduled runs print nothing, so the file is made when the first byte comes, by
whichever thread writes it (the shared output thread, or the runner for its own lines).

What users see is unchanged (tests/test_runlog.py): a run that printed nothing has no
file, and the readers take "no file" for a run that had a log as an empty log: ``logs``
prints nothing and exits 0 (a run in flight is found by its entry in the state), the
history record keeps its ``log_path`` (``Store.keep_log(..., empty=True)``), pruning
removes what exists. A manual run (``cronfile run NAME``) makes its file at once: the
run of a job not applied yet has no entry in the state, and its file is how ``logs``
finds it while it runs. So does a job with deliveries: a webhook receiver may open the
``log_path`` it is sent.

The folder is made (and checked writable) before the run starts, so a log that cannot be
written still fails the run before anything is spawned, as before. The file itself can
still fail to be made at the first byte (the folder removed meanwhile, no inode left,
EMFILE in the shared output thread) or a write can fail (a full disk): the log keeps its
first error (``LazyLog.problem``), writes no more after it, and the runner fails the run
with it, as when the log could not be opened at the start; a log never made is then not
recorded as an empty one (``log_path`` null).
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["LazyLog", "in_flight", "open_log"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class LazyLog:
    """A binary append-only file opened (0600) at its first non-empty write. As a file:
    ``write``, ``flush``, ``close``, a context manager; a write after ``close`` raises
    ValueError, a failed open or write OSError (callers treat both as a lost write). The
    first OSError sticks: every later write raises it again, without trying (no log with
    a hole in it, no open retried on every chunk while the process has no fd left)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._closed = False
        self._made = False
        self._error: tuple[str, OSError] | None = None
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        """Whether the file was made (something was written)."""
        return self._made

    @property
    def problem(self) -> str | None:
        """Why output was lost (the first failed open or write), as the run's message;
        None if every write reached the file."""
        if self._error is None:
            return None
        what, e = self._error
        return f"cannot {what} the run's log {self.path}: {e.strerror or e}"

    def write(self, data: bytes) -> int:
        if not data:
            if self._closed:
                raise ValueError("write to a closed log")
            return 0
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed log")
            if self._error is not None:
                e = self._error[1]
                raise OSError(e.errno, e.strerror, e.filename)
            fd = self._fd
            if fd is None:
                fd = self._open()
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            except OSError as e:
                self._error = ("write", e)
                raise
        return len(data)

    def _open(self) -> int:
        # The state dir is 0700 and every file in it 0600 (docs/design.md 1.1).
        try:
            fd = self._fd = os.open(self.path, _FLAGS, 0o600)
        except OSError as e:
            self._error = ("open", e)
            raise
        self._made = True
        return fd

    def make(self) -> None:
        """Make the file now, empty (a run that no state entry names while in flight)."""
        with self._lock:
            if self._fd is None and not self._closed and self._error is None:
                self._open()

    def flush(self) -> None:
        """Nothing is buffered: every write is in the file when it returns."""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> LazyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_log(path: Path, *, now: bool = False) -> LazyLog:
    """The log of a run about to start: its folder made (0700) and writable, the file
    itself made at the first byte (``now``: at once). OSError if the folder cannot be
    made or written."""
    parent = path.parent
    # (One access() when the folder is there, as it is for every run but a job's first:
    # a mkdir that fails EEXIST and the stat after it cost more.)
    if not os.access(parent, os.W_OK | os.X_OK):
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(parent))
    log = LazyLog(path)
    if now:
        log.make()
    return log


def in_flight(store: Any, job: str) -> set[str]:
    """Run ids of ``job`` in flight that have started, from the state (empty if it
    cannot be read): how ``logs`` finds a run that has printed nothing yet, and so has
    no file. A run claimed but not started (waiting for a ``max_concurrent`` slot, for
    its instant, for the run it replaces) is not counted: ``logs`` still shows the
    latest run that ran. Started: its pid is recorded, or (the pid is written up to 0.2 s
    after the spawn, docs/design.md 2) a process of it runs on this host."""
    from .errors import CronfileError

    try:
        state = store.read()
    except (OSError, CronfileError):
        return set()
    js = state.jobs.get(job)
    runs = [*(js.running if js is not None else ()), *(r for r in state.orphans if r.job == job)]
    started = {r.run_id for r in runs if r.pid is not None}
    waiting = [r.run_id for r in runs if r.pid is None]
    if waiting:
        from .executors.procfs import run_spawned

        started.update(r for r in waiting if run_spawned(r))
    return started
