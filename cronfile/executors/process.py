"""Spawning and stopping runs: the only module that starts a process.

Every run gets its own session and process group (``start_new_session=True``), as
supercronic does: "Run in a separate process group so that in interactive usage, CTRL+C
stops supercronic, not the children". It also lets a timeout stop the whole tree the
job started, not only its first process: SIGTERM to the group, then SIGKILL to the
group after a grace period if anything in it is left (docs/design.md section 5).

Output (stdout and stderr merged into one pipe, so the log keeps their order) is copied
by a reader thread into the run's log: masked (secrets.StreamMasker), capped, and
mirrored to a stream when one is given.

When is a run over? When its first process (the group leader) has exited *and* its
output is closed. Like Debian cron, which waits for the job's output pipe before it
mails the output, a background process that still holds the pipe keeps the run going,
up to its timeout. A process that left the group (setsid, a daemon) cannot be stopped
with the group, so once the group is empty the pipe is closed on our side instead of
waiting for it.

Where the daemon allows it (``close_inherited_fds``, Linux), a run whose first process
is one of our gate shells (below) is started by ``os.posix_spawn`` instead of ``Popen``:
about 130 us of the engine's CPU instead of 220 (issue 17, round 10). posix_spawn has no
working directory (Python 3.11) and closes no descriptors, so the gate's shell enters
the workdir itself and restores PWD and OLDPWD as the job's environment has them
(``_CD``), and the daemon makes every descriptor it inherited close-on-exec at its start
(all that Python and our libraries open are already).

A run claimed ahead of its instant can be started *parked* (``spawn(..., gate=True)``):
its process group exists before the instant, held by a gate, and ``Proc.release()`` lets
it go at the instant with one write. The gate is ``/bin/sh`` reading one line from a pipe
on its stdin, then exec'ing the job's own argv with stdin on /dev/null, so the job keeps
the gate's pid, process group and session. Only jobs that are themselves
``/bin/sh -c TEXT`` are parked (``can_park``): whatever the gate's shell does to the
environment at its start (drop names that are not identifiers, reset IFS, OPTIND and
PPID, set PWD) the job's shell does to the same environment anyway, so the job sees
exactly what an unparked run sees (tests/test_firing.py compares them). If cronfile dies
before the release, the pipe's write end closes with it and the gate reads EOF and exits
111 without running anything: a parked run never starts without its engine.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, BinaryIO

from ..secrets import Masker
from ..usage import Decoder, decoder_for
from .base import Prepared
from .contain import Box, poll_until
from .procfs import GATE_NAME, iter_stats, live
from .shell import SHELL

__all__ = [
    "CD_EXIT",
    "CD_MARK",
    "GATE_EXIT",
    "MOVE_EXIT",
    "MOVE_MARK",
    "Captured",
    "Proc",
    "Staged",
    "can_park",
    "close_inherited_fds",
    "group_alive",
    "kill_group",
    "run_capture",
    "spawn",
]

_CHUNK = 64 * 1024
_HEAD = 256  # bytes of (masked) output kept to check the first line for [SILENT]
# After a forced stop, how much of what is already in the pipe is still copied. Bounded:
# a process outside the group may go on writing for ever.
_DRAIN_LIMIT = 4 * 1024 * 1024

# The gate of a parked run (module docstring). `read` needs a variable: one no job uses,
# unset before the exec. `0<>/dev/null` is what subprocess.DEVNULL opens (read-write).
_GATE_VAR = "__cronfile_gate"
_GATE = f'read -r {_GATE_VAR} || exit 111; unset {_GATE_VAR}; exec 0<>/dev/null; exec "$@"'
GATE_EXIT = 111  # a gate that read EOF: its engine went away before the instant
# A /bin/sh job under cgroup2 moves itself into its run's cgroup ($1) before anything
# else (the gate, or the job): one write in the child instead of the engine's write
# after the spawn (issue 17, round 9: 11% of the daemon's run thread). A cgroup swept
# meanwhile (another engine's start) is made again, as the engine's move did; if it
# still cannot, the job never runs: the shell says so and exits MOVE_EXIT.
MOVE_EXIT = 112
MOVE_MARK = b"[cronfile: could not put the run in its cgroup "
_MOVE = (
    '{ echo 0 >"$1/cgroup.procs"; } 2>/dev/null || '
    '{ /bin/mkdir -p "$1" && echo 0 >"$1/cgroup.procs"; } 2>/dev/null || '
    f'{{ echo "{MOVE_MARK.decode()}$1]" >&2; exit {MOVE_EXIT}; }}; shift; '
)
_MOVE_GATE = _MOVE + _GATE
_MOVE_EXEC = _MOVE + 'exec "$@"'
# A gate's shell started by os.posix_spawn (_spawn_fast) enters the run's workdir ($1)
# itself, then puts PWD and OLDPWD back as the job's environment has them ($2, $3: "-"
# for unset, "=VALUE" for set), so the job's own shell sees what a Popen(cwd=...) child
# sees: `cd` set both. If the workdir went away since the run was prepared, the job
# never runs: the shell says so and exits CD_EXIT.
CD_EXIT = 113
CD_MARK = b"[cronfile: could not enter the run's workdir "
_CD = (
    f'cd -P -- "$1" 2>/dev/null || {{ echo "{CD_MARK.decode()}$1]" >&2; exit {CD_EXIT}; }}; '
    "case $2 in -) unset PWD;; *) PWD=${2#=};; esac; "
    "case $3 in -) unset OLDPWD;; *) OLDPWD=${3#=};; esac; shift 3; "
)


def can_park(prepared: Prepared) -> bool:
    """Whether ``prepared`` can be started parked behind the gate without the job seeing
    any difference: a ``/bin/sh -c`` job with nothing to read on stdin."""
    return (
        prepared.stdin is None
        and prepared.argv[:2] == [SHELL, "-c"]
        and _GATE_VAR not in prepared.env
    )


class _Reader(threading.Thread):  # a thread of its own: a run that mirrors to a stream
    """Copies one pipe into ``sink`` until EOF, or until ``stop()``: then what is already
    in the pipe is drained (without blocking) and the read end is closed. ``done`` runs
    in this thread once the copying is over."""

    def __init__(
        self, fd: int, sink: Callable[[bytes], None], done: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(daemon=True, name=f"cronfile-reader-{fd}")
        self._fd = fd
        self._sink = sink
        self._done = done
        # A self-pipe wakes the select() below; no polling while the child is quiet.
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._closed = False

    def discard(self) -> None:
        """Close the fds of a reader that was never started."""
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)

    def stop(self) -> None:
        with self._lock:
            # Once closed, the fd number may belong to someone else's file: never write.
            if not self._closed:
                try:
                    os.write(self._wake_w, b"x")
                except OSError:
                    pass

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(self._fd, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in sel.select()}
                if self._wake_r in ready:
                    self._drain()
                    break
                chunk = os.read(self._fd, _CHUNK)
                if not chunk:
                    break
                self._sink(chunk)
        finally:
            sel.close()
            try:
                self._done()
            finally:
                with self._lock:
                    self._closed = True
                    for fd in (self._fd, self._wake_r, self._wake_w):
                        os.close(fd)

    def _drain(self) -> None:
        _drain(self._fd, self._sink)


def _drain(fd: int, sink: Callable[[bytes], None]) -> None:
    """What is already in the pipe ``fd`` (up to _DRAIN_LIMIT), into ``sink``, without
    blocking: a run's stop leaves what its processes wrote last."""
    os.set_blocking(fd, False)
    copied = 0
    while copied < _DRAIN_LIMIT:
        try:
            chunk = os.read(fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            return
        copied += len(chunk)
        sink(chunk)


class _Epoll:
    """The few calls of a ``selectors`` selector the shared loop makes, straight on an
    epoll object: register, unregister and select with the ``selectors`` errors, but
    ``select`` gives each ready fd's data, not a SelectorKey (selectors' bookkeeping
    was a third of the loop's CPU: four registrations and two events a run)."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._data: dict[int, object] = {}

    def register(self, fd: int, events: int, data: object = None) -> None:
        if fd in self._data:
            raise KeyError(f"{fd} is already registered")
        self._ep.register(fd, select.EPOLLIN)  # OSError for a closed fd
        self._data[fd] = data

    def unregister(self, fd: int) -> None:
        del self._data[fd]  # KeyError: not registered (as selectors)
        with contextlib.suppress(OSError):
            self._ep.unregister(fd)  # (closed already: the kernel dropped it)

    def select(self) -> list[object]:
        data = self._data
        return [data[fd] for fd, _ in self._ep.poll() if fd in data]


class _Selector:
    """``selectors.DefaultSelector`` where there is no epoll, with ``_Epoll``'s select."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()

    def register(self, fd: int, events: int, data: object = None) -> None:
        self._sel.register(fd, selectors.EVENT_READ, data)

    def unregister(self, fd: int) -> None:
        self._sel.unregister(fd)

    def select(self) -> list[object]:
        return [key.data for key, _ in self._sel.select()]


class _ReadLoop:
    """One thread that copies the output pipes of every run (an epoll selector) instead of
    a thread per run: a thread's start, its stack, its own selector and self-pipe cost a
    run about as much as its spawn (bench/bench_throughput.py). Idle, it blocks in the
    selector with no timeout: no wake-ups. A sink runs in this thread, so only sinks that
    cannot block (a log file, a buffer) come here; a run mirrored to a stream (`cronfile
    run NAME` on a terminal) keeps a thread of its own (``_Reader``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._ops: list[tuple[str, _LoopReader]] = []

    def _ensure(self) -> None:
        # caller holds self._lock. Made on first use, and again in a forked child.
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._sel = _Epoll() if hasattr(select, "epoll") else _Selector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._ops = []
        threading.Thread(target=self._run, args=(self._sel, self._wake_r), name="cronfile-output", daemon=True).start()

    def submit(self, op: str, reader: _LoopReader | _ExitWatch) -> None:
        with self._lock:
            self._ensure()
            self._ops.append((op, reader))
            if len(self._ops) > 1:
                return  # the loop is woken for the first op already, and takes them all
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # a wake-up is pending already

    def add(self, reader: _LoopReader | _ExitWatch) -> None:
        """Start watching ``reader``'s fd. With epoll, registered from this thread at
        once (epoll takes registrations while another thread waits in it): no write to
        the loop's wake pipe and no wake-up of the loop for it, two a run (issue 17,
        round 9). In order with the ops queued before it, which go first."""
        with self._lock:
            self._ensure()
            sel = self._sel
            if isinstance(sel, _Epoll) and not self._ops:
                try:
                    sel.register(reader._fd, selectors.EVENT_READ, reader)
                    return
                except (OSError, ValueError, KeyError):
                    pass  # said and ended in the loop's thread, as before
        self.submit("add", reader)

    def _run(self, sel: _Epoll | _Selector, wake_r: int) -> None:
        # Every run's output goes through this one thread: nothing one reader raises
        # may end it (each step is guarded; a surprise is reported, then the loop goes
        # on), or no run's output would be read again for the daemon's life.
        while True:
            try:
                events = sel.select()
            except InterruptedError:
                continue
            for reader in events:
                try:
                    if reader is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                        with self._lock:
                            ops, self._ops = self._ops, []
                        for op, r in ops:
                            try:
                                if op == "add":
                                    r._add(sel)
                                else:
                                    r._stop(sel)
                            except Exception as e:  # noqa: BLE001 - see above
                                _LoopReader._report(e)
                                r._end(sel)
                    else:
                        reader._readable(sel)
                except Exception as e:  # noqa: BLE001 - see above
                    _LoopReader._report(e)
                    if reader is not None:
                        reader._end(sel)


_LOOP = _ReadLoop()


class _LoopReader:
    """A pipe copied into ``sink`` by the shared ``_ReadLoop`` until EOF, or until
    ``stop()``: then what is already in the pipe is drained (without blocking) and the
    read end is closed; ``done`` runs (in the loop's thread) once the copying is over.
    ``is_alive`` and ``join`` as a ``_Reader`` thread's."""

    def __init__(
        self, fd: int, sink: Callable[[bytes], None], done: Callable[[], None] = lambda: None
    ) -> None:
        self._fd = fd
        self._sink = sink
        self._done = done
        self._started = False
        self._over = threading.Event()
        self.on_over: Callable[[], None] | None = None  # hears the end, in the loop's thread

    def start(self) -> None:
        self._started = True
        _LOOP.add(self)

    def discard(self) -> None:
        """Close the fd of a reader that was never started."""
        os.close(self._fd)

    def stop(self) -> None:
        if self._started and not self._over.is_set():
            _LOOP.submit("stop", self)

    def is_alive(self) -> bool:
        return self._started and not self._over.is_set()

    def join(self, timeout: float | None = None) -> None:
        if self._started:
            self._over.wait(timeout)

    # -- in the loop's thread ----------------------------------------------------------------

    def _add(self, sel: _Epoll | _Selector) -> None:
        if self._over.is_set():
            return
        try:
            sel.register(self._fd, selectors.EVENT_READ, self)
        except (OSError, ValueError) as e:
            self._report(e)
            self._end(sel)

    def _readable(self, sel: _Epoll | _Selector) -> None:
        if self._over.is_set():
            return  # ended earlier in the same batch of events: its fd is closed (or another's now)
        try:
            chunk = os.read(self._fd, _CHUNK)
            if chunk:
                self._sink(chunk)
                return
        except BaseException as e:  # noqa: BLE001 - said as the reader's thread would have said it
            self._report(e)
        self._end(sel)

    def _stop(self, sel: _Epoll | _Selector) -> None:
        if self._over.is_set():
            return
        try:
            _drain(self._fd, self._sink)
        except BaseException as e:  # noqa: BLE001
            self._report(e)
        self._end(sel)

    def _end(self, sel: _Epoll | _Selector) -> None:
        if self._over.is_set():
            return
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(self._fd)
        try:
            self._done()
        except BaseException as e:  # noqa: BLE001
            self._report(e)
        finally:
            try:
                os.close(self._fd)
            except OSError as e:
                self._report(e)
            finally:
                self._over.set()
                on_over = self.on_over  # (read once: the Proc may clear it meanwhile)
                if on_over is not None:
                    on_over()

    @staticmethod
    def _report(e: BaseException) -> None:
        threading.excepthook(threading.ExceptHookArgs((type(e), e, e.__traceback__, threading.current_thread())))


class _ExitWatch:
    """The exit of a spawned process, seen by the shared ``_ReadLoop`` through a pidfd
    (Linux 5.3+): the loop reaps it (``Popen.poll``) and sets ``exited``. One thread
    watching every run's leader instead of each run's thread polling ``waitpid`` with
    sleeps that double from 0.5 ms (``Popen.wait(timeout)``): several wake-ups per run,
    each a GIL hand-over (issue 17, round 4). ``watch`` is None where there is no pidfd
    (macOS, older kernels): the caller then waits as before."""

    def __init__(self, fd: int, popen: _Child) -> None:
        self._fd = fd
        self._popen = popen
        self.exited = threading.Event()
        self.on_over: Callable[[], None] | None = None  # hears the exit, in the loop's thread
        self._over = False

    @classmethod
    def watch(cls, popen: _Child) -> _ExitWatch | None:
        if _PIDFD_OPEN is None:
            return None
        try:
            fd = _PIDFD_OPEN(popen.pid)
        except OSError:
            return None  # an old kernel (ENOSYS), or seccomp: wait as before
        w = cls(fd, popen)
        try:
            _LOOP.add(w)
        except OSError:
            os.close(fd)  # the loop could not start (EMFILE): the process is running, so
            return None  # it must still be watched: its run waits as before
        return w

    # -- in the loop's thread ----------------------------------------------------------------

    def _add(self, sel: _Epoll | _Selector) -> None:
        sel.register(self._fd, selectors.EVENT_READ, self)

    def _readable(self, sel: _Epoll | _Selector) -> None:
        self._end(sel)

    def _stop(self, sel: _Epoll | _Selector) -> None:
        self._end(sel)

    def _end(self, sel: _Epoll | _Selector) -> None:
        if self._over:
            return
        self._over = True
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(self._fd)
        try:
            os.close(self._fd)
        finally:
            # Reaped here (the waiting thread may have reaped it already: that is fine),
            # then the waiter is woken. Set even on a surprise: it then polls itself.
            try:
                self._popen.poll()
            finally:
                self.exited.set()
                on_over = self.on_over  # (read once: the Proc may clear it meanwhile)
                if on_over is not None:
                    on_over()


_PIDFD_OPEN: Callable[[int], int] | None = getattr(os, "pidfd_open", None) if sys.platform.startswith("linux") else None


class _Output:
    """The sink of a run's merged output: mask, cap, write to the log and the stream."""

    def __init__(self, log: BinaryIO, limit: int, stream: IO[bytes] | None, masker: Masker) -> None:
        self._log = log
        self._limit = max(limit, 0)
        self._stream = stream
        self._masker = masker.stream()
        self.written = 0
        self.dropped = 0
        self.head = b""
        self.ends_with_newline = True  # nothing written yet: a header needs no newline first

    def feed(self, raw: bytes) -> None:
        if self.written >= self._limit:
            # Past the cap: counted and dropped, never scanned (masking is the costly
            # part, and nothing of it would be kept).
            self.dropped += len(raw)
            return
        self._emit(self._masker.feed(raw))

    def close(self) -> None:
        self._emit(self._masker.flush())
        if self.dropped:
            marker = f"\n[cronfile: output truncated after {self.written} bytes; {self.dropped} bytes dropped]\n"
            self._write(marker.encode())
        self._flush()

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        # Keep the head: the start of a run's output says what it did; the marker at the
        # end says how much more there was.
        room = self._limit - self.written
        kept = data[: max(room, 0)]
        self.dropped += len(data) - len(kept)
        if kept:
            self.written += len(kept)
            self._write(kept)

    def _write(self, data: bytes) -> None:
        self.ends_with_newline = data.endswith(b"\n")
        try:
            self._log.write(data)
            self._log.flush()  # `cronfile logs` of a run in flight shows what came so far
        except (OSError, ValueError):
            # Keep draining the pipe regardless, or the child blocks on a full pipe. The
            # log itself keeps the first failure and the run is failed by it (runlog.LazyLog).
            pass
        if self._stream is not None:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None  # the terminal went away; the log still has it all

    def _flush(self) -> None:
        for f in (self._log, self._stream):
            try:
                if f is not None:
                    f.flush()
            except (OSError, ValueError):
                pass


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours to signal
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        return True
    # kill(2) also reaches zombies, and in a container whose PID 1 does not reap
    # orphans an exited grandchild stays a zombie: look at /proc for a live member.
    return any(st.pgid == pgid and live(st) for st in iter_stats())


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float, reap: Callable[[], object] = lambda: None) -> bool:
    """Wait up to ``timeout`` for group ``pgid`` to be empty. Members that are not our
    children cannot be waited for, so this polls, backing off to 0.1 s."""
    # reap: our own exited leader must not linger as a zombie member
    return poll_until(lambda: not group_alive(pgid), timeout, reap)


def _check_pgid(pgid: int) -> None:
    # Signalling group 0 or 1, or our own group, would hit cronfile itself.
    if pgid <= 1 or pgid == os.getpgrp():
        raise ValueError(f"refusing to signal process group {pgid}")


def terminate_group(pgid: int) -> None:
    """SIGTERM (and SIGCONT) to a leftover group, without waiting; never group 0, 1 or
    our own."""
    if pgid <= 1 or pgid == os.getpgrp():
        return
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)


def kill_group(pgid: int, grace: float = 10.0) -> bool:
    """Stop a leftover process group (the engine's crash recovery): SIGTERM, then SIGKILL
    after ``grace`` seconds if anything is left. True if there was anything to stop."""
    _check_pgid(pgid)
    if not group_alive(pgid):
        return False
    _signal_group(pgid, signal.SIGTERM)
    _signal_group(pgid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
    if not _wait_group_gone(pgid, grace):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(pgid, 1.0)
    return True


class Proc:
    """A running process group. ``pid`` is the leader's pid, which is also the group id."""

    def __init__(
        self,
        popen: _Child,
        readers: list[_Reader | _LoopReader],
        output: _Output | None,
        gate: int | None = None,
        box: Box | None = None,
    ) -> None:
        self._popen = popen
        self.box = box
        self._readers = readers
        self._output = output
        self.pid: int = popen.pid
        self.killed_by: str | None = None  # the signal stop() had to use, if any
        self.released_at: datetime | None = None  # parked: when its releaser let it go
        self.decoder: Decoder | None = None  # what read the output (Prepared.output_format)
        self._gate = gate  # write end of a parked process's gate; None once let go
        self._gate_lock = threading.Lock()
        self._exit = _ExitWatch.watch(popen)  # None: Popen.wait polls (no pidfd here)
        # Set in the loop's thread once it has seen both the exit and the end of every
        # output pipe: ``wait`` then sleeps once for both (issue 17).
        self._over: threading.Event | None = None
        self._listeners: list[Callable[[bool], None]] = []  # when_over
        if self._exit is not None and readers and all(isinstance(r, _LoopReader) for r in readers):
            self._over = threading.Event()
            for r in readers:
                r.on_over = self._check_over  # type: ignore[union-attr]
            self._exit.on_over = self._check_over
            self._check_over()  # (either may have come already)

    def _check_over(self) -> None:
        if self._over is None or self._exit is None or not self._exit.exited.is_set():
            return
        over = not any(r.is_alive() for r in self._readers)
        if over:
            self._over.set()
            # Nothing of the loop refers back to this Proc any more (no cycle left for
            # the garbage collector: issue 17, round 9).
            self._exit.on_over = None
            for r in self._readers:
                r.on_over = None  # type: ignore[union-attr]
        for fn in list(self._listeners):
            fn(over)

    def when_over(self, fn: Callable[[bool], None]) -> bool:
        """Have ``fn(over)`` called, in the output loop's thread, at the leader's exit
        and at each end of an output pipe after it: ``over`` once the run is over as
        ``wait`` means it (exit and EOF). False, and nothing registered, where ``wait``
        has to poll instead (no pidfd, or a reader on a thread of its own)."""
        if self._over is None:
            return False
        self._listeners.append(fn)
        self._check_over()  # (it may have come already)
        return True

    def unlisten(self, fn: Callable[[bool], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def finish_at_once(self) -> bool:
        """``finish`` where nothing of the run is left, without waiting: True if that was
        so (the box is closed as ``finish`` leaves it); False if ``finish`` must stop
        what is left (it may wait up to its grace)."""
        if self.box is None:
            return True
        _signal_group(self.pid, signal.SIGTERM)  # harmless if the group is empty
        return self.box.stop_at_once()

    @property
    def parked(self) -> bool:
        """Started parked (``spawn(gate=True)``) and neither released nor aborted yet."""
        return self._gate is not None

    def release(self) -> bool:
        """Let a parked process run: one line down its gate. False if it was not parked
        any more or its gate is gone (killed while parked: ``wait`` then says how)."""
        with self._gate_lock:
            fd, self._gate = self._gate, None
        if fd is None:
            return False
        try:
            os.write(fd, b"\n")
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def abort(self) -> None:
        """A parked process never runs its job: its gate reads EOF and exits GATE_EXIT.
        Waits for that (a gate has nothing to stop: it exits at once)."""
        with self._gate_lock:
            fd, self._gate = self._gate, None
        if fd is None:
            return
        os.close(fd)
        try:
            self._popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.stop(1.0)
            return
        self._close_output()

    @property
    def returncode(self) -> int | None:
        """The leader's exit status once it exited (negative: the signal that ended it)."""
        return self._popen.poll()

    @property
    def output_bytes(self) -> int:
        """Bytes of (masked) output the run produced, kept or dropped."""
        return self._output.written + self._output.dropped if self._output else 0

    @property
    def truncated(self) -> bool:
        return bool(self._output and self._output.dropped)

    @property
    def head(self) -> bytes:
        """The first bytes of (masked) output, whether or not the cap kept them."""
        return self._output.head if self._output else b""

    @property
    def ends_with_newline(self) -> bool:
        return self._output.ends_with_newline if self._output else True

    def _output_done(self) -> bool:
        return not any(r.is_alive() for r in self._readers)

    def wait(
        self, timeout: float | None = None, cancel: threading.Event | None = None
    ) -> int | None:
        """Wait for the run to be over (module docstring) and return the leader's exit
        status; None if ``timeout`` passed or ``cancel`` was set first (the caller then
        decides whether to ``stop()``)."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), 0.0)

        def interrupted() -> bool:
            return (cancel is not None and cancel.is_set()) or left() == 0.0

        # The leader: a blocking wait, in slices only when a cancel event must be seen;
        # woken by the shared loop where a pidfd watches the exit (_ExitWatch).
        exited = self._exit.exited if self._exit is not None else None
        if self._over is not None and exited is not None and cancel is not None:
            # The exit and the output's end together, as the loop sees them, in one
            # sleep. At 200 runs a second the leader has often exited before its run's
            # thread gets here, and the loop has not read its output's EOF yet: reaping it
            # here first, the thread then waited again for the EOF, and after 5 ms looked
            # for processes left in the run's box and had the loop close the pipe (half
            # the runs). An output held open after the exit goes on below, at the next
            # slice, as before.
            while not self._over.is_set():
                if interrupted():
                    return None
                if not self._over.wait(min(left() or 0.1, 0.1)) and exited.is_set():
                    break
        while self._popen.poll() is None:
            if interrupted():
                return None
            slice_ = left() if cancel is None else min(left() or 0.1, 0.1)
            if exited is not None:
                if exited.is_set():
                    # Set and not reaped: the loop could not (a surprise it reported):
                    # wait as if there were no pidfd.
                    exited = None
                    continue
                exited.wait(slice_)
                continue
            try:
                self._popen.wait(timeout=slice_)
            except subprocess.TimeoutExpired:
                pass
        # The output: EOF, or the group is empty and only an escaped process holds it.
        pause = 0.005
        while not self._output_done():
            for r in self._readers:
                r.join(pause)
            if self._output_done():
                break
            if not self._anything_alive():
                self._close_output()
                break
            if interrupted():
                return None
            pause = min(pause * 2, 0.25)
        return self._popen.returncode

    def _anything_alive(self) -> bool:
        return group_alive(self.pid) or (self.box is not None and self.box.alive())

    def _signal_all(self, sig: int) -> None:
        _signal_group(self.pid, sig)
        if self.box is not None:
            self.box.signal(sig)

    def _wait_all_gone(self, timeout: float) -> bool:
        # poll: our own exited leader must not linger as a zombie
        return poll_until(lambda: not self._anything_alive(), timeout, self._popen.poll)

    def finish(self, grace: float = 10.0) -> str | None:
        """The run's main process ended and its output closed: stop whatever it left
        behind in its box (a background process, a daemon that called setsid). Returns
        the signal that had to be used, if anything was left."""
        if self.box is None:
            return None
        _signal_group(self.pid, signal.SIGTERM)  # harmless if the group is empty
        return self.box.stop(grace)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group and everything in the run's box, SIGKILL after ``grace``
        seconds to whatever is left; then close the output."""
        with self._gate_lock:
            fd, self._gate = self._gate, None
        if fd is not None:
            os.close(fd)  # a parked process is not let go by stopping it
        if self._popen.poll() is None or self._anything_alive():
            self.killed_by = "SIGTERM"
            self._signal_all(signal.SIGTERM)
            self._signal_all(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            if not self._wait_all_gone(grace):
                self.killed_by = "SIGKILL"
                _signal_group(self.pid, signal.SIGKILL)
                if self.box is not None:
                    self.box.kill()
                self._wait_all_gone(5.0)
        try:
            self._popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass  # unkillable (D state): leave it, do not hang the engine
        self._close_output()

    def _close_output(self) -> None:
        for r in self._readers:
            r.stop()
        for r in self._readers:
            r.join(5.0)


class _Pipes:
    """Output pipes with their readers already running, for a process to write into.
    ``shared``: read by the shared loop (sinks that cannot block), else a thread each."""

    def __init__(self, sinks: list[tuple[Callable[[bytes], None], Callable[[], None]]], *, shared: bool = True) -> None:
        self.ends: list[tuple[int, int]] = []
        readers: list[_Reader | _LoopReader] = []
        kind = _LoopReader if shared else _Reader
        try:
            for sink, done in sinks:
                r, w = os.pipe()
                self.ends.append((r, w))
                readers.append(kind(r, sink, done))
        except BaseException:
            for reader in readers:
                reader.discard()
            for r, w in self.ends[len(readers) :]:
                os.close(r)
                os.close(w)
            for _, w in self.ends[: len(readers)]:
                os.close(w)
            raise
        self.readers = readers
        for reader in readers:
            reader.start()
        self._open = True

    def close_writers(self) -> None:
        """Our copies of the write ends: once the child has its own, or if it never
        comes (the readers then see EOF and end)."""
        if self._open:
            self._open = False
            for _, w in self.ends:
                os.close(w)


def _start(
    prepared: Prepared,
    pipes: _Pipes,
    gate: tuple[int, int] | None = None,
    box: Box | None = None,
) -> _Child:
    """Start ``prepared`` in a new session writing into ``pipes``: one pipe gets stdout
    and stderr merged (in order), two get them apart. With ``gate`` (a pipe: read end,
    write end), parked behind the gate reading that pipe."""
    argv, stdin = prepared.argv, subprocess.DEVNULL if prepared.stdin is None else subprocess.PIPE
    # A run's cgroup must hold the child before it runs a single instruction of the job
    # (a fork in its first milliseconds would escape): a /bin/sh job's shell moves itself
    # in before it runs anything (_MOVE); any other program moves itself between fork and
    # exec (preexec: a fork() instead of a vfork(), which costs more, so only where the
    # shell cannot be used).
    preexec = None
    moves_itself: str | None = None  # the cgroup a /bin/sh job moves itself into (_MOVE)
    if box is not None and box.holds:
        if can_park(prepared):
            moves_itself = box.moved_by_child()
        elif gate is None:
            preexec = box.mover()
    if moves_itself is not None:
        script = _MOVE_GATE if gate is not None else _MOVE_EXEC
        argv = [SHELL, "-c", script, GATE_NAME, moves_itself, *argv]
        if gate is not None:
            stdin = gate[0]
    elif gate is not None:
        argv, stdin = [SHELL, "-c", _GATE, GATE_NAME, *argv], gate[0]
    if box is not None:
        box.spawning()
    # The readers run already, so that once the child runs nothing can fail before it
    # is watched. A gate's shell (it can enter the workdir itself) is started by
    # posix_spawn where the daemon allowed it (close_inherited_fds).
    fast = (
        _FAST_SPAWN
        and (moves_itself is not None or gate is not None)
        and prepared.stdin is None
        and min(pipes.ends[0][1], pipes.ends[-1][1], gate[0] if gate else 3) > 2
    )
    try:
        if fast:
            popen = _spawn_fast(argv, prepared, pipes, gate)
        else:
            popen = subprocess.Popen(
                argv,
                cwd=prepared.cwd,
                env=prepared.env,
                stdin=stdin,
                stdout=pipes.ends[0][1],
                stderr=pipes.ends[-1][1],
                start_new_session=True,
                close_fds=True,
                preexec_fn=preexec,
            )
    except subprocess.SubprocessError as e:
        # The child could not move itself into the run's cgroup: it never ran.
        raise OSError(f"could not start it in the run's cgroup ({e})") from None
    finally:
        pipes.close_writers()  # the child has its copy; ours would keep the pipe open for ever
        if gate is not None:
            os.close(gate[0])  # the same for the gate's read end
    if box is not None and moves_itself is None:
        # Into the run's box (executors/contain.py), before the held job is let go.
        try:
            # Behind a gate (held, or parked), the child has forked nothing yet.
            box.started(popen.pid, held=gate is not None)
        except OSError as e:
            _signal_group(popen.pid, signal.SIGKILL)
            popen.wait()
            raise OSError(f"could not put it in the run's cgroup: {e.strerror or e}") from None
    if prepared.stdin is not None:
        # A thread, so a child that reads its stdin late (or never) cannot block us on
        # a full pipe.
        threading.Thread(
            target=_feed_stdin, args=(popen.stdin, prepared.stdin), daemon=True
        ).start()
    return popen


# os.posix_spawn costs the engine about half of what Popen does (issue 17, round 10).
# It has no cwd (Python 3.11) and closes no descriptors, so it is used only where both
# are safe: for a gate's shell (it enters the workdir itself: _CD), in a process whose
# inherited descriptors were all made close-on-exec (close_inherited_fds; every
# descriptor Python and our libraries open is close-on-exec already, PEP 446).
_FAST_SPAWN = False
_SIGDEF = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, n))


def close_inherited_fds() -> int:
    """Make every descriptor above 2 this process inherited close-on-exec, and from
    then on start a gate's shell with os.posix_spawn (Linux). Returns how many were
    changed. The daemon calls it once at its start: its jobs never got those
    descriptors anyway (Popen's close_fds)."""
    global _FAST_SPAWN
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_spawn"):
        return 0
    changed = 0
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
                    changed += 1
            except OSError:
                pass  # listdir's own descriptor, closed since
    _FAST_SPAWN = True
    return changed


class _Spawned:
    """A child started by os.posix_spawn, with the part of Popen's face Proc uses:
    ``pid``, ``returncode``, ``poll`` and ``wait``, reaped under a lock as Popen does."""

    stdin = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            pid, status = self.pid, 0  # reaped by someone else: Popen says 0 too
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def poll(self) -> int | None:
        if self.returncode is None and self._lock.acquire(blocking=False):
            try:
                if self.returncode is None:
                    self._reap(os.WNOHANG)
            finally:
                self._lock.release()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            with self._lock:
                while self.returncode is None:
                    self._reap(0)
            return self.returncode
        end = time.monotonic() + timeout
        delay = 0.0005
        while (code := self.poll()) is None:
            left = end - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired([], timeout)
            time.sleep(min(delay, left, 0.05))
            delay *= 2
        return code


_Child = subprocess.Popen[bytes] | _Spawned  # a spawned leader, as Proc watches it


def _spawn_fast(
    argv: list[str], prepared: Prepared, pipes: _Pipes, gate: tuple[int, int] | None
) -> _Spawned:
    """``argv`` (a gate's shell: SHELL -c SCRIPT NAME ...) by os.posix_spawn, in a new
    session, with the workdir, PWD and OLDPWD passed for _CD to set."""
    env = prepared.env
    pwd, old = env.get("PWD"), env.get("OLDPWD")
    # Absolute, as Popen's chdir would take it from here: `cd` would look a relative
    # path up in the job's CDPATH first.
    cwd = os.fspath(prepared.cwd)
    if not os.path.isabs(cwd):
        cwd = os.path.join(os.getcwd(), cwd)
    full = [
        *argv[:2],
        _CD + argv[2],
        argv[3],
        cwd,
        "-" if pwd is None else "=" + pwd,
        "-" if old is None else "=" + old,
        *argv[4:],
    ]
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_DUP2, gate[0], 0)
        if gate is not None
        else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, pipes.ends[0][1], 1),
        (os.POSIX_SPAWN_DUP2, pipes.ends[-1][1], 2),
    ]
    pid = os.posix_spawn(SHELL, full, env, file_actions=actions, setsid=True, setsigdef=_SIGDEF)
    return _Spawned(pid)


def _feed_stdin(pipe: IO[bytes] | None, data: bytes) -> None:
    if pipe is None:
        return
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass  # the child did not want it all; that is its business
    finally:
        try:
            pipe.close()
        except OSError:
            pass


class Staged:
    """A run's process to be: its output pipe and the reader copying it into the log
    are set up already, so that spawning is all that is left to do (a run claimed ahead
    of its instant stages before it). ``spawn`` once, or ``discard``."""

    def __init__(
        self,
        prepared: Prepared,
        log: BinaryIO,
        *,
        output_limit: int,
        stream: IO[bytes] | None = None,
        box: Box | None = None,
    ) -> None:
        self.prepared = prepared
        self.box = box
        self._output = _Output(log, output_limit, stream, prepared.masker)
        self.decoder: Decoder | None = None
        # A stream (a terminal) may block its writer: such a run's output keeps a thread.
        shared = stream is None
        if prepared.output_format is None:
            self._pipes = _Pipes([(self._output.feed, self._output.close)], shared=shared)
        else:
            self.decoder = decoder_for(prepared.output_format)
            self._pipes = _Pipes(_decoded(self.decoder, self._output), shared=shared)

    def spawn(self, *, gate: bool = False) -> Proc:
        """Start the process in its own session and process group. Raises OSError when
        the program cannot be started. ``gate``: parked until ``Proc.release()`` (only
        if ``can_park``: ValueError otherwise)."""
        if gate and not can_park(self.prepared):
            self.discard()
            raise ValueError(f"{self.prepared.argv[0]} cannot be started parked")
        pipe = os.pipe() if gate else None
        try:
            popen = _start(self.prepared, self._pipes, pipe, self.box)
        except BaseException:
            if pipe is not None:
                os.close(pipe[1])
            raise
        proc = Proc(
            popen, self._pipes.readers, self._output, pipe[1] if pipe is not None else None, self.box
        )
        proc.decoder = self.decoder
        return proc

    def discard(self) -> None:
        """Never spawned: the reader sees EOF and ends."""
        self._pipes.close_writers()


def _decoded(
    decoder: Decoder, output: _Output
) -> list[tuple[Callable[[bytes], None], Callable[[], None]]]:
    """The sinks of a run whose output goes through ``decoder``: one merged pipe, or
    stdout and stderr apart (``decoder.split``); the log gets what the decoder returns,
    and its ``end`` once every pipe is closed."""
    lock = threading.Lock()
    open_pipes = [2 if decoder.split else 1]

    def sink(read: Callable[[bytes], bytes]) -> Callable[[bytes], None]:
        def feed(chunk: bytes) -> None:
            with lock:
                output.feed(read(chunk))

        return feed

    def done() -> None:
        with lock:
            open_pipes[0] -= 1
            if open_pipes[0] == 0:
                output.feed(decoder.end())
                output.close()

    if not decoder.split:
        return [(sink(decoder.out), done)]
    return [(sink(decoder.out), done), (sink(decoder.err), done)]


def spawn(
    prepared: Prepared,
    log: BinaryIO,
    *,
    output_limit: int,
    stream: IO[bytes] | None = None,
    gate: bool = False,
    box: Box | None = None,
) -> Proc:
    """Start ``prepared`` in its own session and process group, its output going to
    ``log``. Raises OSError when the program cannot be started. ``gate``: parked until
    ``Proc.release()`` (only if ``can_park(prepared)``: ValueError otherwise)."""
    return Staged(prepared, log, output_limit=output_limit, stream=stream, box=box).spawn(gate=gate)


@dataclass(frozen=True)
class Captured:
    """What a helper process (a context script) did."""

    exit_code: int | None  # None if it was stopped
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    cancelled: bool = False


def run_capture(
    prepared: Prepared,
    *,
    timeout: float,
    limit: int = 1024 * 1024,
    cancel: threading.Event | None = None,
    on_spawn: Callable[[int], None] | None = None,
    box: Box | None = None,
) -> Captured:
    """Run ``prepared`` to the end in its own process group, stdout and stderr kept
    apart (each up to ``limit`` bytes), with the same timeout handling as a run.
    Raises OSError when the program cannot be started."""
    out, err = bytearray(), bytearray()

    def keep(buf: bytearray) -> Callable[[bytes], None]:
        def sink(chunk: bytes) -> None:
            buf.extend(chunk[: max(limit - len(buf), 0)])

        return sink

    pipes = _Pipes([(keep(out), lambda: None), (keep(err), lambda: None)])
    try:
        popen = _start(prepared, pipes, box=box)
    except BaseException:
        pipes.close_writers()
        raise
    proc = Proc(popen, pipes.readers, None, box=box)
    if on_spawn is not None:
        on_spawn(proc.pid)
    code = proc.wait(timeout, cancel)
    if code is not None:
        proc.finish()  # what the script left running does not outlive it
    if code is None:
        proc.stop()
        cancelled = cancel is not None and cancel.is_set()
        return Captured(None, bytes(out), bytes(err), timed_out=not cancelled, cancelled=cancelled)
    return Captured(code, bytes(out), bytes(err))
