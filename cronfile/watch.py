"""The file watcher: the one place that imports watchfiles, and the one that talks to inotify.

What is watched: ``jobs.d`` recursively (job files), and the repo root plus the state dir
each on its own (``cronfile.yaml``; ``state.json`` replaced by an ``apply`` from another
process). Watching the state dir recursively would wake the daemon on every log line a
run writes.

On Linux: inotify through ctypes, read by one thread that blocks in ``poll`` on the
inotify fd and a self-pipe, so an idle daemon has no wake-ups at all. watchfiles'
RustNotify, which this replaced, slept and woke every ``STEP_MS`` on each of its two
threads (2,400 wake-ups a minute, most of the idle daemon's CPU; bench/bench_idle.py).
Elsewhere (macOS: FSEvents under watchfiles), or when inotify cannot be had, watchfiles.

Either way the watch is in place when ``start`` returns: the daemon re-checks the files
right after it, so nothing changed in between is lost.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import select
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .load import CONFIG_NAME, JOBS_DIR, SUFFIXES

# Events are grouped as watchfiles groups them: a batch is handed on once no new event
# came for STEP_MS (at most DEBOUNCE_MS after the first), so an editor's
# write-rename-chmod is one reload.
STEP_MS = 50
DEBOUNCE_MS = 1600

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000

_SELF = IN_DELETE_SELF | IN_MOVE_SELF
# A file counts once it is closed after writing (or renamed into place, or chmod'ed,
# or touched): not at each write(2), so a half-written file is not read. watchfiles
# reported IN_MODIFY too; nothing here needs it.
_NAMES = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB
# jobs.d, its folders and the root: every change of a name in them.
DIR_MASK = _NAMES | _SELF | IN_ONLYDIR
# jobs.d and its folders also IN_MODIFY (each write(2)), never reported: it only counts
# in Watcher.generation, so that an apply can tell a job file being written from one
# left alone (Watcher.settle). Not the root, where a daemon's own log may be written
# (cronfile.yaml is stat'ed instead: load.config_unchanged).
TREE_MASK = DIR_MASK | IN_MODIFY
# The state dir: only state.json being replaced (the store writes a temp file and
# renames it) or written in place; the lock files and audit.jsonl come and go too, but
# are filtered by name once read (inotify has no filter by name).
# The SQLite store commits by writing its WAL (state.db-wal) in place: IN_MODIFY.
STATE_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | _SELF | IN_ONLYDIR

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then name
_READ_SIZE = 64 * 1024  # about 2,000 events a read; the kernel queues 16,384 before overflow


class InotifyUnavailable(Exception):
    """inotify cannot be had here. ``polling`` when the reason is one of inotify's limits:
    watchfiles' native watcher is inotify too on Linux, and out of watches it leaves
    folders unwatched without a word (tried with max_user_watches=1: an edit in
    jobs.d/a/b went unseen), so only its polling can be trusted."""

    def __init__(self, reason: str, polling: bool = False) -> None:
        super().__init__(reason)
        self.polling = polling


class Watcher:
    def __init__(self, root: Path, state_file: Path | None, on_change: Callable[[set[str]], None]) -> None:
        """``state_file``: the file the store replaces at each state write
        (``Store.watch_file``); None: a store without one (nothing to watch there)."""
        self.root = Path(root).resolve()
        self.jobs_dir = self.root / JOBS_DIR
        # The folder holding the state file is watched (a write renames over the file).
        self.state_dir = Path(state_file).parent.resolve() if state_file is not None else self.root
        self.state_name = Path(state_file).name if state_file is not None else None
        self.on_change = on_change
        self.ready = threading.Event()  # set while the watch is live
        self.backend: str | None = None  # "inotify" or "watchfiles", once started
        self._impl: _Inotify | _Watchfiles | None = None
        # What changed since the last take_paths (the daemon's reload reads only those
        # files, load.reload_project): job file paths, or None when that is not known
        # (a folder came or went, events were lost, watchfiles). ``generation`` counts
        # the job-file events read, in-place writes (IN_MODIFY) included.
        self._lock = threading.Lock()
        self._changed: set[str] | None = None  # unknown until started
        self.generation = 0

    def classify(self, path: str) -> str | None:
        p = Path(path)
        if p.name == CONFIG_NAME and p.parent == self.root:
            return "files"
        # The store's file, and an SQLite store's write-ahead log, where commits land first.
        if self.state_name is not None and p.parent == self.state_dir and p.name in (self.state_name, self.state_name + "-wal"):
            return "state"
        try:
            rel = p.relative_to(self.jobs_dir)
        except ValueError:
            return None
        # Hidden names are never read (load._scan skips them): vim's .swp,
        # emacs' .#lock. A file hidden or unhidden by a rename shows under its other name.
        if any(part.startswith(".") for part in rel.parts):
            return None
        # A folder event (created, renamed) or a job file; editors' temp files are not.
        if p.suffix in SUFFIXES or not p.suffix:
            return "files"
        return None

    def take_paths(self) -> tuple[set[str] | None, int]:
        """The job files changed since the last call (None: anything may have; read the
        whole repo) and the generation now. Changes from here on go to the next call."""
        with self._lock:
            out, self._changed = self._changed, set()
            gen = self.generation
        if not self.ready.is_set() or not isinstance(self._impl, _Inotify):
            return None, gen
        return out, gen

    def forget_paths(self) -> None:
        """The next take_paths says "unknown": what was read may predate the watch."""
        with self._lock:
            self._changed = None

    def _note(self, paths: set[str] | None, bumps: int) -> None:
        with self._lock:
            if paths is None or self._changed is None:
                self._changed = None
            else:
                self._changed |= paths
            self.generation += bumps

    def settle(self) -> int | None:
        """Read what the kernel has queued for us now, and return the generation after
        it: equal to one taken before reading the files proves none of them changed
        since (inotify queues an event before the write that causes it returns). None
        when that cannot be known (no inotify, or the watch died). Job-file changes
        found here are reported at once; state changes are not (the caller is the
        daemon's loop, which reads the state next anyway)."""
        impl = self._impl
        if not self.ready.is_set() or not isinstance(impl, _Inotify):
            return None
        kinds = impl.drain()
        if kinds is None:
            return None
        if "files" in kinds:
            self.on_change({"files"})
        return self.generation

    def start(self) -> None:
        """Establish the watch now (not lazily on the thread): every change made after
        this returns is reported."""
        impl: _Inotify | _Watchfiles
        polling = False
        if sys.platform.startswith("linux"):
            try:
                impl = _Inotify(self)
            except InotifyUnavailable as e:
                polling = e.polling
                how = "watchfiles, polling every 300 ms" if polling else f"watchfiles, which wakes every {STEP_MS} ms"
                print(f"cronfile: inotify unavailable ({e}); watching with {how}", flush=True)
            else:
                self._begin(impl, "inotify")
                return
        self._begin(_Watchfiles(self, polling), "watchfiles")

    def _begin(self, impl: _Inotify | _Watchfiles, name: str) -> None:
        with self._lock:
            self._changed = set() if name == "inotify" else None
        impl.start()
        self._impl, self.backend = impl, name
        self.ready.set()

    def stop(self) -> None:
        if self._impl is not None:
            self._impl.stop()
        self.ready.clear()

    def _died(self, e: BaseException) -> None:
        # A dead watcher must not kill the daemon: it goes on firing from the applied
        # set, and says that edits are no longer seen.
        self.ready.clear()
        print(f"cronfile: file watcher stopped: {e}; restart the daemon to watch again", flush=True)


# -- inotify ----------------------------------------------------------------------------


class _Libc:
    """The three inotify calls, raising OSError like the os module. The seam tests
    replace to make inotify fail."""

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._init1 = libc.inotify_init1
            self._add = libc.inotify_add_watch
            self._rm = libc.inotify_rm_watch
        except (OSError, AttributeError) as e:
            raise InotifyUnavailable(f"no inotify in the C library: {e}") from e
        self._init1.argtypes, self._init1.restype = [ctypes.c_int], ctypes.c_int
        self._add.argtypes, self._add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        self._rm.argtypes, self._rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int

    def init1(self, flags: int) -> int:
        return _check(self._init1(flags))

    def add_watch(self, fd: int, path: str, mask: int) -> int:
        return _check(self._add(fd, os.fsencode(path), mask))

    def rm_watch(self, fd: int, wd: int) -> None:
        _check(self._rm(fd, wd))


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _libc() -> _Libc:
    return _Libc()


def parse_events(buf: bytes) -> Iterator[tuple[int, int, str]]:
    """(wd, mask, name) of each ``struct inotify_event`` in one read; name is "" for an
    event on the watched folder itself. The name is NUL-padded to an aligned length."""
    off = 0
    while off + _EVENT.size <= len(buf):
        wd, mask, _cookie, n = _EVENT.unpack_from(buf, off)
        off += _EVENT.size
        name = buf[off : off + n].split(b"\0", 1)[0]
        off += n
        yield wd, mask, os.fsdecode(name)


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


class _Inotify:
    """One inotify instance, one thread. Folders are the unit: every folder of jobs.d
    is watched on its own, so the set of watches follows the folders as they come and go
    (``_sync``)."""

    def __init__(self, w: Watcher) -> None:
        self.w = w
        self._root = str(w.root)
        self._jobs = str(w.jobs_dir)
        self._state = str(w.state_dir)
        self._libc = _libc()
        try:
            self._fd = self._libc.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            hint = ": raise fs.inotify.max_user_instances" if e.errno == errno.EMFILE else ""
            raise InotifyUnavailable(f"inotify_init1: {e.strerror}{hint}", polling=True) from e
        # wd -> the folder's path as the loader names it (under jobs.d for its folders,
        # the first path found for a folder reached twice through symlinks).
        self._paths: dict[int, str] = {}
        self._tree: set[int] = set()  # the wds of jobs.d and its folders
        self._root_wd: int | None = None
        self._state_wd: int | None = None
        self._warned: set[str] = set()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._reading = threading.Lock()  # the thread's reads and settle()'s
        try:
            self._sync(starting=True)
            self._wake_r, self._wake_w = os.pipe()  # stop() writes here; not inherited
        except OSError as e:
            os.close(self._fd)
            raise InotifyUnavailable(f"{e.strerror or e}", polling=True) from e
        except BaseException:
            os.close(self._fd)
            raise

    # -- the watches

    def _add(self, path: str, mask: int, starting: bool) -> int | None:
        """Watch ``path``; None if it is gone, not a folder or not readable. Out of
        watches: at start that is no inotify at all (so the fallback), later one folder
        unwatched, said once."""
        try:
            # IN_MASK_ADD: a folder with two roles (the state dir as the root) keeps both masks.
            return self._libc.add_watch(self._fd, path, mask | IN_MASK_ADD)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.ENOMEM):
                return None
            if starting:
                raise InotifyUnavailable("the inotify watch limit is reached: raise fs.inotify.max_user_watches", polling=True) from e
            if path not in self._warned:
                self._warned.add(path)
                print(f"cronfile: cannot watch {path}: {e.strerror} (raise fs.inotify.max_user_watches); edits in it are seen only along with other changes", flush=True)
            return None

    def _sync(self, starting: bool = False) -> set[str]:
        """Make the watches match the folders as they are now: the root and the state
        dir, jobs.d and every folder below it. Returns the kinds to report for folders
        that were not watched before (files may have been written in them before their
        watch landed)."""
        paths: dict[int, str] = {}
        root_wd = self._add(self._root, DIR_MASK, starting)
        if root_wd is not None:
            paths[root_wd] = self._root
        state_wd = self._add(self._state, STATE_MASK, starting) if self.w.state_name is not None else None
        if state_wd is not None:
            paths.setdefault(state_wd, self._state)
        tree: set[int] = set()
        # As the loader walks (load._scan): symlinked folders followed, each
        # real folder once (the kernel gives a folder watched twice its first wd, so two
        # symlinks back to jobs.d end here instead of looping), hidden folders and
        # folders outside the repo skipped, since the loader reads nothing in them.
        # Each folder is watched before it is listed, so a folder made meanwhile is
        # either listed or reported.
        stack = [self._jobs]
        while stack:
            d = stack.pop()
            if not _inside(os.path.realpath(d), self._root):
                continue
            wd = self._add(d, TREE_MASK, starting)
            if wd is None or wd in tree:
                continue
            tree.add(wd)
            paths.setdefault(wd, d)
            try:
                with os.scandir(d) as it:
                    subdirs = [e.path for e in it if not e.name.startswith(".") and _is_dir(e)]
            except OSError:
                continue
            stack.extend(sorted(subdirs, reverse=True))
        kinds: set[str] = set()
        if not starting:
            if tree - self._tree or (root_wd is not None and root_wd != self._root_wd):
                kinds.add("files")
            if state_wd is not None and state_wd != self._state_wd:
                kinds.add("state")
        for wd in self._paths.keys() - paths.keys():
            try:
                self._libc.rm_watch(self._fd, wd)
            except OSError:
                pass  # already gone (its folder was deleted): IN_IGNORED is on its way
        self._paths, self._tree, self._root_wd, self._state_wd = paths, tree, root_wd, state_wd
        return kinds

    # -- the events

    def _folder_kind(self, wd: int) -> set[str]:
        if wd == self._state_wd:
            return {"state"} | ({"files"} if wd == self._root_wd or wd in self._tree else set())
        return {"files"}

    def drain(self) -> set[str] | None:
        """Read everything queued now (Watcher.settle); the kinds it changes. None if
        the watch is stopped."""
        kinds: set[str] = set()
        with self._reading:
            if self._stopped:
                return None
            while True:
                got = self._read_one()
                if got is None:
                    return kinds
                kinds |= got

    def _read(self) -> set[str]:
        with self._reading:
            return self._read_one() or set()

    def _read_one(self) -> set[str] | None:
        """Read what is queued (None: nothing was); the kinds it changes. Folders that
        came, went or moved re-sync the watches once per read. The job files named go
        to Watcher._note, or "unknown" when a folder changed or events were lost."""
        try:
            buf = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return None
        kinds: set[str] = set()
        sync = False
        paths: set[str] | None = set()
        bumps = 0
        for wd, mask, name in parse_events(buf):
            if mask & IN_Q_OVERFLOW:
                # Events were lost: the daemon re-checks everything, and so do the watches.
                kinds |= {"files", "state"}
                sync = True
                paths = None
                bumps += 1
                continue
            folder = self._paths.get(wd)
            if folder is None:
                continue  # a watch already dropped; its last events trail behind
            if mask & (IN_IGNORED | _SELF):
                # The folder itself was deleted, moved or unmounted (IN_IGNORED: its
                # watch is gone): the parent's event says so too, unless the parent is
                # not watched (the root itself).
                folder_kinds = self._folder_kind(wd)
                kinds |= folder_kinds
                sync = True
                if "files" in folder_kinds:
                    paths, bumps = None, bumps + 1
                continue
            path = os.path.join(folder, name) if name else folder
            in_jobs = _inside(path, self._jobs)
            if mask & IN_ISDIR:
                if mask & IN_MODIFY:
                    continue
                sync = True
                if in_jobs and not name.startswith("."):
                    kinds.add("files")  # a folder came, went or moved, whatever its name
                    paths, bumps = None, bumps + 1
                    continue
            elif mask & IN_MODIFY and not mask & _NAMES and self.w.classify(path) == "files":
                # A write(2) to a job file: counted (a file being written is not one left
                # alone), not reported (it is read once closed: IN_CLOSE_WRITE). The
                # state dir's IN_MODIFY (SQLite's WAL) is reported as before.
                bumps += 1
                continue
            elif in_jobs and mask & (IN_CREATE | IN_MOVED_TO) and os.path.isdir(path):
                sync = True  # a symlink to a folder
                paths = None
            elif in_jobs and mask & (IN_DELETE | IN_MOVED_FROM) and path in self._paths.values():
                sync = True  # a symlink to a folder, gone
                paths = None
            kind = self.w.classify(path)
            if kind:
                kinds.add(kind)
                if kind == "files":
                    bumps += 1
                    if paths is not None:
                        paths.add(path)
        if sync:
            more = self._sync()
            if "files" in more:
                paths = None
                bumps += 1
            kinds |= more
        if bumps or paths is None:
            self.w._note(paths, bumps)
        return kinds

    # -- the thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - a dead watcher must not kill the daemon
            if not self._stopped:
                self.w._died(e)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        pending: set[str] = set()
        first = last = 0.0
        while True:
            if pending:
                now = time.monotonic()
                due = min(last + STEP_MS / 1000, first + DEBOUNCE_MS / 1000)
                if now >= due:
                    batch, pending = pending, set()
                    self.w.on_change(batch)
                    continue
                ready = poller.poll(math.ceil((due - now) * 1000))
            else:
                ready = poller.poll()  # no timeout: nothing wakes this thread but an event
            if any(fd == self._wake_r for fd, _ in ready):
                return
            if not ready:
                continue
            kinds = self._read()
            if kinds:
                now = time.monotonic()
                if not pending:
                    first = now
                last = now
                pending |= kinds

    def stop(self) -> None:
        if self._stopped:
            return
        with self._reading:
            self._stopped = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=6)
            if self._thread.is_alive():
                return  # stuck in on_change: leave its fds open under it
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks, as os.walk(followlinks=True) does
    except OSError:
        return False


# -- watchfiles ---------------------------------------------------------------------------


class _Watchfiles:
    """watchfiles' RustNotify (the notifier under ``watchfiles.watch``), two watches on
    two threads: jobs.d recursively, the root and the state dir not. A jobs.d made after
    start is not watched. ``polling``: see InotifyUnavailable."""

    def __init__(self, w: Watcher, polling: bool) -> None:
        self.w = w
        self.polling = polling
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _open(self, paths: list[Path], recursive: bool) -> Any:
        from watchfiles._rust_notify import RustNotify

        return RustNotify([str(p) for p in paths], False, self.polling, 300, recursive, True)

    def _loop(self, notify: Any) -> None:
        try:
            with notify:
                while not self._stop.is_set():
                    raw = notify.watch(DEBOUNCE_MS, STEP_MS, 5000, self._stop)
                    if raw in ("timeout", "signal"):
                        continue
                    if raw == "stop":
                        return
                    kinds = {k for _, path in raw if (k := self.w.classify(path))}
                    if kinds:
                        self.w.on_change(kinds)
        except Exception as e:  # noqa: BLE001 - a dead watcher must not kill the daemon
            if not self._stop.is_set():
                self.w._died(e)

    def start(self) -> None:
        plans: list[tuple[list[Path], bool]] = [(list(dict.fromkeys([self.w.root, self.w.state_dir])), False)]
        if self.w.jobs_dir.is_dir():
            plans.append(([self.w.jobs_dir], True))
        for paths, recursive in plans:
            notify = self._open(paths, recursive)
            t = threading.Thread(target=self._loop, args=(notify,), name="watch", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=6)
