"""SIGTERM and SIGINT, seen by a thread of their own whichever thread the kernel gives
them to.

A Python signal handler runs only in the main thread, between two of its bytecodes. The
kernel delivers a signal sent to the process to any of its threads that does not block
it; when that is not the main thread, the C-level handler only marks the signal pending,
and a main thread asleep in a timed wait (the daemon's loop sleeps up to a minute at a
time; `cronfile run` waits for its process with no timeout) does not see it until the
wait ends. A daemon with a run in flight has half a dozen threads: twice in CI, and once
in 32 loops of two daemon tests of tests/test_contain.py, the daemon ignored a SIGTERM for
the 40 s the test waited (py-spy: its main thread asleep in that wait). tests/test_signals.py
sends the signal to chosen threads with tgkill.

Here the Python handler does nothing; ``signal.set_wakeup_fd`` makes the C-level handler
write the signal's number to a pipe, whichever thread it runs in, and a thread reading
that pipe calls ``on_signal`` with the signal's name. That thread takes no lock a handler
could interrupt (the old handlers set events, and an event's lock is not re-entrant).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

__all__ = ["SignalWatch"]


def _ignore(_signum: int, _frame: Any) -> None:
    """The Python-level handler: the pipe says what came (see the module's text)."""


class SignalWatch:
    """While entered (in the main thread), ``on_signal(name)`` is called from a thread
    of its own for each of ``signals`` the process receives, instead of their default
    action. Entered in another thread it does nothing (only the main thread can set
    handlers), as before."""

    def __init__(self, on_signal: Callable[[str], None], signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self._on_signal = on_signal
        self._signals = {int(s) for s in signals}
        self._old: dict[int, Any] = {}
        self._old_fd: int | None = None
        self._fds: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SignalWatch:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> SignalWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        r, w = os.pipe()  # (not inherited by children: PEP 446)
        os.set_blocking(w, False)  # set_wakeup_fd's own requirement: a handler never blocks
        self._fds = (r, w)
        self._thread = threading.Thread(target=self._read, args=(r,), name="cronfile-signals", daemon=True)
        self._thread.start()
        self._old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._old = {s: signal.signal(s, _ignore) for s in self._signals}
        return self

    def stop(self) -> None:
        """The handlers and the wakeup fd as they were; the thread ends."""
        if self._fds is None:
            return
        r, w = self._fds
        self._fds = None
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
        signal.set_wakeup_fd(-1 if self._old_fd is None else self._old_fd)
        os.close(w)  # the reader sees the end of the pipe and ends
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        os.close(r)

    def _read(self, r: int) -> None:
        while True:
            try:
                data = os.read(r, 64)  # (EINTR is retried by Python itself: PEP 475)
            except OSError:
                return
            if not data:
                return
            for b in data:
                if b in self._signals:
                    self._on_signal(signal.Signals(b).name)
