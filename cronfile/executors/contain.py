"""Containment: every process a run starts ends with the run.

A process group is not enough: a job's grandchild that calls ``setsid`` (or a daemon that
double-forks) leaves the group, and ``killpg`` no longer reaches it. So each run also gets
a *box* that the job cannot leave by accident:

- ``cgroup2`` (Linux, where the engine can create a cgroup v2 beside its own: as root, or
  in a subtree systemd delegated). Each run gets ``<our cgroup>/cronfile-run.<engine id>.<run id>``
  (_box_name);
  no process of the run executes a single instruction of the job outside it: a
  ``/bin/sh`` job is held behind the gate (process.py, as a parked run is) while the
  engine moves it in, then let go; any other program moves itself between fork and exec
  (``mover``, a preexec function: fork() instead of vfork(), which copies the daemon
  and cost 60 ms of lateness with 20 runs due at once, so only where the gate cannot
  be used). A move after the spawn without holding the child lost a double fork made in
  its first milliseconds on a loaded machine (tests/test_contain.py). A forked,
  setsid'd, double-forked process stays a member; the run is over when the cgroup is
  empty, and ending it is ``cgroup.kill`` (or SIGKILL to each member on kernels older
  than 5.14). A crashed engine's runs are found again by their cgroup's name.
- ``subreaper`` (Linux otherwise): the engine is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so an orphaned descendant of a run is re-parented to the
  engine instead of to init and never leaves the engine's process tree. A tracker thread
  walks ``/proc`` while runs are in flight and tags every descendant of a run's processes
  with the run (pid and start time, so a reused pid is not mistaken for it). An orphan
  that was born and orphaned between two walks (a double fork within 50 ms) is tagged by
  its ``CRONFILE_RUN_ID`` if it kept it, else given to every run in flight when it
  started: it is stopped when the first of them ends.
- ``process-group`` (macOS and other systems): best effort, the run's process group only.

``CRONFILE_CONTAINMENT=cgroup2|subreaper|process-group`` forces a mechanism (for tests and
for hosts where detection guesses wrong); a forced ``cgroup2`` that does not work is an
error, never a silent downgrade. ``cronfile doctor`` says which mechanism is in force.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .procfs import Stat, all_stats, environ, live, stat

__all__ = [
    "Box",
    "Containment",
    "ContainmentError",
    "containment",
    "inside_run",
    "recover_run",
    "sweep_empty",
    "terminate_run_box",
]

ENV = "CRONFILE_CONTAINMENT"
MECHANISMS = ("cgroup2", "subreaper", "process-group")
_PREFIX = "cronfile-run."  # cgroup names: cronfile-run.<engine id>.<run id> (_box_name)
_MOVE_TRIES = 5  # a child re-making its run cgroup swept by another engine
_PROBE = "cronfile-probe."  # cronfile-probe.<pid>-<hex>: _cgroup_base's test cgroup


def _box_name(run_id: str, engine: str = "") -> str:
    """A run's cgroup: cronfile-run.<engine id>.<run id>. Cgroups are host-wide, and a run
    id is unique within one state only: two daemons of one host (two repos) can draw the
    same id for runs of the same second (history.new_run_id's 4 hex digits), and one
    run's end would stop the other's processes. The engine id tells them apart; the
    recovering engine reads it from the dead run's claim (state.Running.engine)."""
    return f"{_PREFIX}{engine}.{run_id}" if engine else f"{_PREFIX}{run_id}"
_PR_SET_CHILD_SUBREAPER = 36
_TRACK_EVERY = 0.05  # seconds between two walks of /proc (subreaper)


class ContainmentError(RuntimeError):
    """A forced mechanism is not available here."""


@dataclass(frozen=True)
class Containment:
    """The mechanism in force for this process, and why."""

    mechanism: str
    detail: str
    cgroup_base: Path | None = None  # cgroup2: where the runs' cgroups are made

    def box(self, run_id: str, engine: str = "") -> Box:
        """``engine``: the claiming engine's id, part of the cgroup's name (_box_name)."""
        if self.mechanism == "cgroup2" and self.cgroup_base is not None:
            try:
                return _CgroupBox(run_id, self.cgroup_base, engine)
            except OSError as e:
                # (cgroup.max.descendants reached, the tree changed under us): the run
                # still runs, and its log says what it lacks.
                box = Box(run_id)
                box.note = f"no cgroup for this run ({e.strerror or e}): its process group only"
                return box
        if self.mechanism == "subreaper":
            return _TrackedBox(run_id)
        return Box(run_id)


# -- detection ---------------------------------------------------------------------------

_lock = threading.Lock()
_current: Containment | None = None


def containment(environ: dict[str, str] | None = None) -> Containment:
    """The mechanism of this process, detected once (and the subreaper flag set)."""
    global _current
    with _lock:
        if _current is None:
            _current = _detect(dict(os.environ if environ is None else environ))
        return _current


def _detect(environ: dict[str, str]) -> Containment:
    forced = environ.get(ENV, "").strip()
    if forced and forced not in MECHANISMS:
        raise ContainmentError(f"{ENV}={forced!r}: expected one of {', '.join(MECHANISMS)}")
    if not sys.platform.startswith("linux"):
        if forced and forced != "process-group":
            raise ContainmentError(f"{ENV}={forced}: only process-group works on {sys.platform}")
        return Containment(
            "process-group",
            f"{sys.platform}: best effort, a run's process group only (a process that calls setsid can outlive its run)",
        )
    if forced == "process-group":
        return Containment("process-group", f"forced by {ENV} (a process that calls setsid can outlive its run)")
    why = ""
    if forced in ("", "cgroup2"):
        base, why = _cgroup_base()
        if base is not None:
            return Containment("cgroup2", f"a cgroup per run under {base}", base)
        if forced == "cgroup2":
            raise ContainmentError(f"{ENV}=cgroup2 but cgroup v2 is not usable here: {why}")
    if _set_subreaper():
        prefix = f"forced by {ENV}" if forced else f"no cgroup v2 ({why})"
        return Containment("subreaper", f"{prefix}; this process is a child subreaper and tracks each run's descendants")
    if forced == "subreaper":
        raise ContainmentError(f"{ENV}=subreaper but prctl(PR_SET_CHILD_SUBREAPER) failed")
    return Containment("process-group", f"no cgroup v2 ({why}) and no subreaper: a run's process group only")


def _own_cgroup() -> str | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:].strip()
    except OSError:
        return None
    return None


def _cgroup_mount(path: str) -> Path | None:
    """The directory of cgroup ``path`` (from /proc/self/cgroup) in a cgroup2 mount. A
    tmpfs at /sys/fs/cgroup (cgroup v1 or hybrid) is not it: mountinfo says which is."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if not right.startswith("cgroup2 "):
            continue
        fields = left.split()
        root, mount = fields[3], fields[4]
        if path == root or path.startswith(root.rstrip("/") + "/"):
            rel = path[len(root.rstrip("/")) :].lstrip("/")
            return Path(mount) / rel
    return None


def _cgroup_base() -> tuple[Path | None, str]:
    """Where this process can make cgroups and move its children into them; proven by
    moving a real child there and reading its /proc/PID/cgroup back."""
    own = _own_cgroup()
    if own is None:
        return None, "no cgroup v2 line in /proc/self/cgroup"
    base = _cgroup_mount(own)
    if base is None:
        return None, "no cgroup2 file system mounted for this process's cgroup"
    if f"/{_PREFIX}" in own:
        return None, f"this process runs inside a run's cgroup ({own})"
    probe = base / f"{_PROBE}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError as e:
        return None, f"cannot create a cgroup under {base}: {e.strerror or e}"
    try:
        # A child that waits for a line, is moved meanwhile, then says where it is.
        try:
            child = subprocess.Popen(
                ["/bin/sh", "-c", "read _ && cat /proc/self/cgroup"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as e:
            return None, f"cannot start a probe process ({e})"
        try:
            _move_tree(probe, child.pid)
            moved = ""
        except OSError as e:
            moved = f"cannot move a process into a cgroup under {base} ({e.strerror or e})"
        try:
            out, _ = child.communicate(b"\n", timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
        if moved:
            return None, moved
        rel = "0::" + (own.rstrip("/") + "/" + probe.name)
        if rel.encode() not in out.split(b"\n"):
            return None, f"a process moved into {probe} did not land there"
        return base, ""
    finally:
        _rmdir(probe, 2.0)


def _set_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[int]:
    """The children of ``pid`` (every thread's), from /proc."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            # No CONFIG_PROC_CHILDREN: look for them the long way.
            return [st.pid for st in all_stats() if st.ppid == pid]
    return out


def _move_tree(cgroup: Path | str, pid: int, *, descendants: bool = True) -> None:
    """Move ``pid`` into ``cgroup``, then whatever it had forked before the move (its
    descendants, moved parent first: anything forked after its parent moved is born
    inside; ``descendants=False``: a process held behind a gate has none to look for).
    A process that already exited is no error; anything else is OSError."""
    procs = f"{cgroup}/cgroup.procs"
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, str(p).encode())
            finally:
                os.close(fd)
        except ProcessLookupError:
            continue
        except OSError as e:
            if p != pid and e.errno in (errno.ESRCH, errno.EINVAL):
                continue  # exited meanwhile (EINVAL: a zombie)
            raise
        if descendants:
            todo += _children(p)


def _rmdir(path: Path | str, timeout: float) -> bool:
    # An empty cgroup can be removed at once; a just-emptied one may take a moment.
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


# -- signals ---------------------------------------------------------------------------


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- boxes -------------------------------------------------------------------------------


class Box:
    """What a run's processes are kept in. The base class is the process-group fallback:
    it holds nothing, and the process group is all that is stopped."""

    mechanism = "process-group"
    holds = False  # whether a child must be held until started() (cgroup2)

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.note = ""  # why this run has less containment than the engine's mechanism

    def spawning(self) -> None:
        """A process of the run is about to be spawned (started() follows once it is)."""

    def started(self, pid: int, *, held: bool = False) -> None:
        """A process of the run was spawned (``held``: it waits behind a gate, so it has
        started nothing of its own yet)."""

    def mover(self) -> Callable[[], None] | None:
        """For a child that cannot be held: a function it runs between fork and exec."""
        return None

    def moved_by_child(self) -> str | None:
        """For a ``/bin/sh`` child (``holds`` only): the cgroup it writes itself into
        before it runs anything of the job (executors/process.py, ``_MOVE``)."""
        return None

    def pids(self) -> list[int]:
        """The live processes of the run."""
        return []

    def alive(self) -> bool:
        """Whether any process of the run still runs (zombies do not count)."""
        return bool(self.pids())

    def signal(self, sig: int) -> None:
        for pid in self.pids():
            _signal(pid, sig)

    def kill(self) -> None:
        """SIGKILL to every member, again until none is left to fork another."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            time.sleep(0.01)

    def stop(self, grace: float) -> str | None:
        """SIGTERM to every process of the run, SIGKILL after ``grace`` seconds to what is
        left; returns once they are gone (bounded). The signal that had to be used, if any."""
        if not self.alive():
            return None
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        if _wait(lambda: not self.alive(), grace):
            return "SIGTERM"
        self.kill()
        _wait(lambda: not self.alive(), 5.0)
        return "SIGKILL"

    def stop_at_once(self) -> bool:
        """``stop`` where nothing is left to stop (True); False if ``stop`` has to."""
        return not self.alive()

    def closes_at_once(self) -> bool:
        """Whether ``close`` has nothing to wait for."""
        return not self.alive()

    def close(self) -> None:
        """The run is over: kill what is left at once and free the box."""
        if self.alive():
            self.kill()
            _wait(lambda: not self.alive(), 5.0)


class _CgroupBox(Box):
    mechanism = "cgroup2"
    holds = True

    def __init__(self, run_id: str, base: Path, engine: str = "") -> None:
        super().__init__(run_id)
        self.path = base / _box_name(run_id, engine)
        self._dir = str(self.path)  # (os calls on a str: no Path made again per call)
        self._events = f"{self._dir}/cgroup.events"
        # Seen empty since the last process was put in: a cgroup nothing is moved into
        # stays empty (its members' forks are born inside it), so close() need not
        # look again after stop() found it so (a read of cgroup.events a run).
        self._empty = False
        self._gone = False  # removed by stop() (made again by the next spawn)
        if self._dir in _made:
            _made.discard(self._dir)  # made ahead (make_ahead): no mkdir racing 200 others
            return
        try:
            os.mkdir(self._dir)
        except FileExistsError:
            pass  # left by an engine that died: the same run's

    def moved_by_child(self) -> str | None:
        self._empty = self._gone = False
        return self._dir

    def mover(self) -> Callable[[], None] | None:
        self._empty = self._gone = False
        path = str(self.path)
        procs = str(self.path / "cgroup.procs")

        def move() -> None:  # in the child: syscalls on paths prepared here, no locks
            # Another engine's start may sweep the (still empty) cgroup between the
            # parent's mkdir and this write: seen under load as "Exception occurred in
            # preexec_fn". Make it again and retry; a write into a cgroup removed after
            # the open fails (ENOENT/ENODEV) and is retried the same way.
            for attempt in range(_MOVE_TRIES):
                try:
                    fd = os.open(procs, os.O_WRONLY)
                except FileNotFoundError:
                    if attempt == _MOVE_TRIES - 1:
                        raise
                    with suppress(FileExistsError):
                        os.mkdir(path)
                    continue
                try:
                    os.write(fd, b"0")
                    return
                except OSError as e:
                    if attempt == _MOVE_TRIES - 1 or e.errno not in (errno.ENOENT, errno.ENODEV):
                        raise
                finally:
                    os.close(fd)

        self.path.mkdir(exist_ok=True)  # swept while empty: made again
        return move

    def started(self, pid: int, *, held: bool = False) -> None:
        self._empty = self._gone = False
        for attempt in range(_MOVE_TRIES):
            try:
                _move_tree(self._dir, pid, descendants=not held)
                return
            except OSError as e:
                # Swept while empty (sweep_empty, by another engine's start): ENOENT at
                # the open, ENODEV at a write into the removed cgroup. Made again.
                if attempt == _MOVE_TRIES - 1 or e.errno not in (errno.ENOENT, errno.ENODEV):
                    raise
                self.path.mkdir(exist_ok=True)

    def _procs(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def pids(self) -> list[int]:
        return [p for p in self._procs() if live(stat(p))]

    def alive(self) -> bool:
        # (os calls, not Path.read_text: this runs twice per run.)
        try:
            fd = os.open(self._events, os.O_RDONLY | os.O_CLOEXEC)
            try:
                text = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            return False
        if b"populated 0" in text.split(b"\n"):
            self._empty = True
            return False
        return bool(self.pids())

    def kill(self) -> None:
        kill = self.path / "cgroup.kill"
        if kill.exists():  # Linux 5.14+: the kernel kills every member, forks included
            try:
                kill.write_text("1")
                return
            except OSError:
                pass
        super().kill()

    def stop(self, grace: float) -> str | None:
        # The common end of an attempt: nothing of it is left, and the cgroup is removed
        # at once instead of read first (cgroup.events: an open, a read and a close a
        # run; issue 17). The kernel refuses to remove one that holds a process
        # (EBUSY): that is stopped as before. A next attempt's spawn makes it again, as
        # after sweep_empty.
        return None if self.stop_at_once() else super().stop(grace)

    def stop_at_once(self) -> bool:
        try:
            os.rmdir(self._dir)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        self._empty = self._gone = True
        return True

    def closes_at_once(self) -> bool:
        return self._gone

    def close(self) -> None:
        if self._gone:
            return
        if not self._empty:
            super().close()
        _rmdir(self._dir, 2.0)


class _TrackedBox(Box):
    mechanism = "subreaper"

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.members: dict[int, int] = {}  # pid -> start time
        self.roots: set[int] = set()  # processes the engine spawned for the run
        self.opened = _boot_ticks()
        self.closed = False
        # While a process of the run is being spawned: when that began (clock ticks).
        # A child of ours born since is maybe that process, not yet in roots: no walk
        # may take it for an adopted orphan (_Tracker.walk). (A spawn that fails leaves
        # it set until the box closes: orphans born since wait for a later walk.)
        self.spawn_since: int | None = None
        _tracker.add(self)

    def spawning(self) -> None:
        since = _boot_ticks()
        with _tracker.lock:
            if self.spawn_since is None:
                self.spawn_since = since

    def started(self, pid: int, *, held: bool = False) -> None:
        st = stat(pid)
        with _tracker.lock:
            self.roots.add(pid)
            self.spawn_since = None
            if st is not None:
                self.members[pid] = st.start
        _tracker.walk()

    def pids(self) -> list[int]:
        _tracker.walk()
        with _tracker.lock:
            items = list(self.members.items())
        out = []
        for pid, start in items:
            st = stat(pid)
            if st is not None and live(st) and st.start == start:
                out.append(pid)
        return out

    def close(self) -> None:
        super().close()
        self.closed = True
        _tracker.remove(self)
        _tracker.reap(self)


def poll_until(
    done: Callable[[], bool], timeout: float, each: Callable[[], object] = lambda: None
) -> bool:
    """Look at ``done`` until it holds (True) or ``timeout`` seconds pass (False),
    backing off from 5 ms to 0.1 s; ``each`` runs before every look (a reap, so that an
    exited child of ours does not linger as a zombie). For what cannot be waited for:
    processes that are not our children."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        each()
        if done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.1)


def _wait(done: Callable[[], bool], timeout: float) -> bool:
    return poll_until(done, timeout, _tracker.reap_all)


def _boot_ticks() -> int:
    """Now, in the clock ticks of /proc/PID/stat's start time."""
    try:
        up = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return int(up * os.sysconf("SC_CLK_TCK"))


class _Tracker:
    """The subreaper's bookkeeping: which live process belongs to which run."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.boxes: list[_TrackedBox] = []
        self._wake = threading.Condition(self.lock)
        self._thread: threading.Thread | None = None
        self._walking = threading.Lock()

    def add(self, box: _TrackedBox) -> None:
        with self.lock:
            self.boxes.append(box)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="cronfile-tracker", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def remove(self, box: _TrackedBox) -> None:
        with self.lock:
            if box in self.boxes:
                self.boxes.remove(box)

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.boxes:
                    self._wake.wait()
            self.walk()
            self.reap_all()
            time.sleep(_TRACK_EVERY)

    def walk(self) -> None:
        """Tag every live descendant of a tagged process with that process's run."""
        with self._walking:
            stats = {st.pid: st for st in all_stats()}
            me = os.getpid()
            with self.lock:
                boxes = list(self.boxes)
                # (Read under the lock that started() takes: a spawn that ended before
                # is in its box's roots, one that did not is in spawn_since.)
                spawns = [b.spawn_since for b in boxes if b.spawn_since is not None]
                owner: dict[tuple[int, int], list[_TrackedBox]] = {}
                for box in boxes:
                    for pid, start in box.members.items():
                        owner.setdefault((pid, start), []).append(box)
            children: dict[int, list[Stat]] = {}
            for st in stats.values():
                children.setdefault(st.ppid, []).append(st)
            new: dict[int, list[_TrackedBox]] = {}
            # Orphans the engine adopted that no walk saw being born. Not the engine's own
            # helpers (git, a probe): those share its session; a run's processes never
            # do (each run starts a session of its own).
            own_sid = os.getsid(0)
            for st in children.get(me, []):
                if (st.pid, st.start) in owner or st.sid == own_sid:
                    continue
                if not any(st.pid in b.roots for b in boxes):
                    if spawns and st.start >= min(spawns) - 1:
                        # Maybe a run's own process whose Popen has not returned: taken
                        # for an orphan it was reaped here (its exit status lost, the run
                        # recorded `success` with no exit code) and, with its environment
                        # unreadable once it had exited, given to every run in flight,
                        # the first of which to end stopped it. The next walk decides.
                        continue
                    found = self._claimants(st, boxes)
                    if found:
                        owner[(st.pid, st.start)] = found
                        new[st.pid] = found
            # Down the tree from every tagged process.
            todo = [stats[pid] for (pid, start) in owner if pid in stats and stats[pid].start == start]
            while todo:
                parent = todo.pop()
                for child in children.get(parent.pid, []):
                    key = (child.pid, child.start)
                    if key in owner:
                        continue
                    owner[key] = owner[(parent.pid, parent.start)]
                    new[child.pid] = owner[key]
                    todo.append(child)
            with self.lock:
                for pid, bxs in new.items():
                    st = stats[pid]
                    for b in bxs:
                        b.members.setdefault(pid, st.start)

    @staticmethod
    def _claimants(st: Stat, boxes: list[_TrackedBox]) -> list[_TrackedBox]:
        env = environ(st.pid)
        for b in boxes:
            if f"CRONFILE_RUN_ID={b.run_id}".encode() in env:
                return [b]
        # Born and orphaned between two walks, its marker cleared: every run in flight
        # when it started may own it; the first of them to end stops it.
        return [b for b in boxes if b.roots and b.opened <= st.start and not b.closed]

    def reap(self, box: _TrackedBox) -> None:
        """Adopted orphans of ``box`` that exited: reap them (they are our children
        now). Never a child we did not tag: a Popen elsewhere waits for its own."""
        me = os.getpid()
        for pid in list(box.members):
            if pid in box.roots:
                continue  # spawned by us: its Popen reaps it
            st = stat(pid)
            if st is not None and st.ppid == me and st.state == b"Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def reap_all(self) -> None:
        with self.lock:
            boxes = list(self.boxes)
        for b in boxes:
            self.reap(b)


_tracker = _Tracker()


# -- recovery and the recursion guard ------------------------------------------------------


_made: set[str] = set()  # cgroups made ahead of their runs' boxes (make_ahead)


def make_ahead(runs: Iterable[tuple[str, str]]) -> None:
    """Make the cgroups of runs (run id, engine id) about to start together, one after
    another from one thread, before their threads do: 200 threads' mkdirs at once cost
    several times one's each (the kernel's cgroup lock, and the GIL given up at each).
    A cgroup that cannot be made here is left to its box (it says why in the run's log).
    Nothing if runs get no cgroup."""
    if containment().mechanism != "cgroup2":
        return
    for run_id, engine in runs:
        path = _ahead_path(run_id, engine)
        if path is None:
            return
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError:
            continue
        _made.add(path)


def _ahead_path(run_id: str, engine: str) -> str | None:
    """The cgroup a box of this run uses (_CgroupBox._dir), or None with no cgroups."""
    base = containment().cgroup_base
    return None if base is None else f"{base}/{_box_name(run_id, engine)}"


def drop_ahead(run_id: str, engine: str) -> None:
    """A run whose cgroup was made ahead ended without a box taking it (cancelled, or
    the daemon stopped before its slot came): its empty cgroup goes, and is forgotten."""
    if not _made:
        return
    path = _ahead_path(run_id, engine)
    if path is not None and path in _made:
        _made.discard(path)
        with suppress(OSError):
            os.rmdir(path)


def _run_box_names(run_id: str, engine: str) -> tuple[str, ...]:
    """Where a run's cgroup may be: under its engine's name, or (made by a cronfile from
    before engine ids were in the name) under its run id alone."""
    return (_box_name(run_id, engine), _box_name(run_id)) if engine else (_box_name(run_id),)


def recover_run(run_id: str, grace: float = 10.0, *, engine: str = "") -> bool:
    """A dead engine's run (``engine``: the id in its claim): stop whatever is left in
    its cgroup (if runs get one here) and remove it. True if anything was left."""
    c = containment()
    if c.mechanism != "cgroup2" or c.cgroup_base is None:
        return False
    had = False
    for name in _run_box_names(run_id, engine):
        if not (c.cgroup_base / name).is_dir():
            continue
        box = _CgroupBox(run_id, c.cgroup_base, engine if name != _box_name(run_id) else "")
        if box.alive():
            had = True
            box.stop(grace)
        box.close()
    return had


def sweep_empty() -> int:
    """Remove the empty run cgroups under our base: those of runs whose engine died
    (their processes all gone) or whose state dir is gone. A cgroup with a process in it
    cannot be removed (EBUSY) and stays; an empty one of a run in flight elsewhere (between
    two attempts) is made again at its next spawn. Returns how many were removed."""
    c = containment()
    if c.cgroup_base is None:
        return 0
    removed = 0
    try:
        names = os.listdir(c.cgroup_base)
    except OSError:
        return 0
    for name in names:
        if name.startswith(_PROBE) and _probe_in_use(name):
            # Another process is testing cgroup2 with it right now (_cgroup_base): removed
            # between its mkdir and its write, that process fell back to subreaper.
            continue
        if name.startswith((_PREFIX, _PROBE)):
            try:
                os.rmdir(c.cgroup_base / name)
                removed += 1
            except OSError:
                pass
    return removed


def _probe_in_use(name: str) -> bool:
    """Whether the process that made probe cgroup ``name`` (cronfile-probe.<pid>-<hex>)
    still lives."""
    try:
        pid = int(name[len(_PROBE) :].split("-", 1)[0])
    except ValueError:
        return False
    return pid > 0 and live(stat(pid))


def terminate_run_box(run_id: str, engine: str = "") -> bool:
    """Whether a dead engine's run still has processes in its cgroup (if runs get one
    here); SIGTERM to them if so. The wait and the SIGKILL come later (recover_run):
    this runs under state.lock."""
    c = containment()
    if c.cgroup_base is None:
        return False
    pids: list[int] = []
    for name in _run_box_names(run_id, engine):
        try:
            text = (c.cgroup_base / name / "cgroup.procs").read_text()
            pids += [int(p) for p in text.split()]
        except (OSError, ValueError):
            pass
    for pid in pids:
        _signal(pid, signal.SIGTERM)
        _signal(pid, signal.SIGCONT)
    return bool(pids)


def inside_run(pid: int | None = None, marker: Iterable[str] = ("engines",)) -> str | None:
    """Whether process ``pid`` (default: this one) runs inside a cronfile run, judged by
    what the process cannot change about itself: its cgroup is a run's, or one of its
    ancestors holds a cronfile engine lock open (``<state>/engines/<id>.lock``). Returns
    a description of the evidence, or None."""
    if not sys.platform.startswith("linux"):
        return None
    pid = os.getpid() if pid is None else pid
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if line.startswith("0::") and f"/{_PREFIX}" in line:
                return f"its cgroup is a run's ({line[3:]})"
    except OSError:
        pass
    st = stat(pid)
    seen = 0
    while st is not None and st.ppid > 1 and seen < 256:
        seen += 1
        parent = st.ppid
        try:
            fds = os.listdir(f"/proc/{parent}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{parent}/fd/{fd}")
            except OSError:
                continue
            parts = target.split("/")
            if len(parts) >= 2 and parts[-2] in marker and parts[-1].endswith(".lock"):
                return f"its ancestor process {parent} is a cronfile engine (it holds {target})"
        st = stat(parent)
    return None
