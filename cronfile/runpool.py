"""Threads for runs, kept and reused: a run's thread was a new ``threading.Thread`` each
(its start, a Condition and a lock: about a tenth of the daemon's Python CPU at 200 runs
a second, bench/bench_throughput.py --profile). A worker that finished a run waits
``IDLE`` seconds for the next one, then ends: an idle daemon keeps no threads.

The daemon steps its runs on one thread (cronfile/steps.py) and uses these threads
only for what blocks (a backoff, a context script, a batch of end commits); `tick` and
`cronfile run` run each run on one.

Never a bound: every run submitted gets a thread at once (the engine's ``max_concurrent``
is the limit, counted by the engine), an idle one if there is one, else a new one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["IDLE", "RunHandle", "RunPool"]

IDLE = 30.0


class RunHandle:
    """One submitted run, as a thread was: ``join`` and ``is_alive``."""

    def __init__(self, fn: Callable[[], object], name: str) -> None:
        self.fn = fn
        self.name = name
        self.worker: threading.Thread | None = None  # the thread running it, once started
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def _run(self) -> None:
        me = threading.current_thread()
        self.worker = me
        me.name = self.name
        try:
            self.fn()
        finally:
            self._done.set()


class RunPool:
    """Daemon threads that run one submitted callable after another."""

    def __init__(self, idle: float = IDLE) -> None:
        self._idle_s = idle
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a run and not yet promised one
        self._q: queue.SimpleQueue[RunHandle] = queue.SimpleQueue()

    def submit(self, fn: Callable[[], object], name: str) -> RunHandle:
        handle = RunHandle(fn, name)
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._q.put(handle)
                return handle
        threading.Thread(target=self._work, args=(handle,), name=name, daemon=True).start()
        return handle

    def _work(self, handle: RunHandle | None) -> None:
        while True:
            if handle is not None:
                try:
                    handle._run()
                except Exception as e:  # noqa: BLE001 - said as a thread of its own would say it
                    threading.excepthook(threading.ExceptHookArgs((type(e), e, e.__traceback__, threading.current_thread())))
                handle = None  # nothing of a finished run is kept while idle
                with self._lock:
                    self._idle += 1
            try:
                handle = self._q.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    # Between the timeout and here a run may have been promised to an
                    # idle worker (this one, as far as the count goes): take it.
                    if self._q.empty():
                        self._idle -= 1
                        return
                handle = None
                continue
