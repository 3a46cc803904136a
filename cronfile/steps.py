"""A run as a generator of waits, and the two ways to drive one (issue 17, round 9).

A run (``Engine.execute_steps``, ``runner.execute_steps``) is written once, as a
generator that ``yield``s a :class:`Wait` wherever it would block and is resumed with
what the wait came to (or has the wait's exception thrown into it). Two drivers step it:

- :func:`drive`: the wait blocks the calling thread (``Wait.block``). `cronfile run`,
  `cronfile tick` and the tests run a run so, on a thread of its own, as before.
- :class:`Stepper`: the daemon's. One thread steps every run; a wait is *armed*
  (``Wait.arm``) and its run resumed by whoever sees it come: the volley's thread at the
  release, the output loop's at the process's end, a timer at a timeout, a cancel event,
  a batch of end commits. What can only block (a retry's backoff, stopping what a run
  left running, a context script) runs on a pool thread (:class:`Call`), and the run
  comes back when it returns.

Why: a thread per run cost about 1 ms a run at 200 runs a second (bench_structure.py):
each of a run's half-dozen sleeps and wake-ups, and each of its syscalls, was a GIL
hand-over among up to 200 threads. Stepped by one thread, a run's syscalls are made one
after another by a thread that keeps the GIL, as a plain loop spawning processes does.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

__all__ = ["Call", "CancelEvent", "Steps", "Stepper", "Task", "Wait", "drive"]

Resume = Callable[[Any, "BaseException | None"], None]
Steps = Generator["Wait", Any, Any]
Submit = Callable[[Callable[[], object], str], object]


class Wait:
    """Something a run waits for."""

    def block(self) -> Any:
        """Wait for it on this thread; what the run is resumed with (or raise)."""
        raise NotImplementedError

    def arm(self, stepper: Stepper, resume: Resume) -> None:
        """Have ``resume(value, error)`` called once it comes, without blocking. By
        default: ``block`` on a pool thread."""
        stepper.call(self.block, resume)


class Call(Wait):
    """A call that may block: on the caller's thread (``drive``), or a pool thread."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def block(self) -> Any:
        return self.fn()


def drive(steps: Steps) -> Any:
    """Run ``steps`` to its end on this thread, each wait blocking; its return value."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            wait = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        try:
            value = wait.block()
        except BaseException as e:  # noqa: BLE001 - thrown into the run, where it came from
            error = e


class CancelEvent(threading.Event):
    """A run's cancel event that also tells those armed on it (``Stepper``): a run waiting
    for its process is resumed at once when it is cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks: list[Callable[[], None]] = []
        self._hooks_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._hooks_lock:
            hooks, self._hooks = self._hooks, []
        for fn in hooks:
            fn()

    def hook(self, fn: Callable[[], None]) -> None:
        """``fn()`` once the event is set (at once if it is already)."""
        with self._hooks_lock:
            if not self.is_set():
                self._hooks.append(fn)
                return
        fn()

    def unhook(self, fn: Callable[[], None]) -> None:
        with self._hooks_lock:
            try:
                self._hooks.remove(fn)
            except ValueError:
                pass


class Task:
    """One run being stepped; ``join`` and ``is_alive`` as a thread's (the engine keeps
    its runs as handles it can join: ``concurrency: replace``, ``wait_idle``)."""

    worker: threading.Thread | None = None  # (a RunHandle's: no thread is the run's)

    def __init__(self, steps: Steps, done: Callable[[Any, BaseException | None], None], name: str) -> None:
        self.steps = steps
        self.name = name
        self._done_cb = done
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()


class _Timers:
    """Callbacks at monotonic times, by one thread (made on first use). Cancelled ones
    stay in the heap until their time or until most of the heap is cancelled."""

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []  # [when, seq, fn or None]
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._dead = 0
        self._thread: threading.Thread | None = None

    def add(self, when: float, fn: Callable[[], None]) -> list[Any]:
        entry = [when, next(self._seq), fn]
        with self._cv:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cronfile-timers", daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:
                self._cv.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._cv:
            if entry[2] is None:
                return
            entry[2] = None
            self._dead += 1
            if self._dead > 64 and self._dead * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._dead = 0

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                        self._dead = max(self._dead - 1, 0)
                    if not self._heap:
                        self._cv.wait()
                        continue
                    left = self._heap[0][0] - time.monotonic()
                    if left <= 0:
                        entry = heapq.heappop(self._heap)
                        fn, entry[2] = entry[2], None
                        break
                    self._cv.wait(left)
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - a timer must not end the thread
                threading.excepthook(threading.ExceptHookArgs((type(e), e, e.__traceback__, threading.current_thread())))


class Stepper:
    """Steps runs (generators of waits) on one thread, made on first use.

    ``submit(fn, name)`` runs what may block (a ``RunPool``'s). A run's own code never
    blocks this thread for long: what would is a :class:`Call`, or a wait armed on
    whoever sees it come. Everything a run does between two waits (a spawn, a log line,
    a state update handed to the writer) happens here, one run after another."""

    def __init__(self, submit: Submit, *, busy: Callable[[], None] | None = None, idle: Callable[[], None] | None = None) -> None:
        """``busy()`` and ``idle()`` in this stepper's thread, as it starts stepping after
        a sleep and before it sleeps again (the engine holds its log lines between)."""
        self._submit = submit
        self._on_busy = busy
        self._on_idle = idle
        self._ready: deque[tuple[Task, Any, BaseException | None]] = deque()
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self.timers = _Timers()
        self._batches: dict[Any, list[tuple[Any, Resume]]] = {}

    def start(self, steps: Steps, done: Callable[[Any, BaseException | None], None], name: str) -> Task:
        """Step ``steps`` from its start; ``done(result, error)`` in this stepper's thread
        at its end."""
        task = Task(steps, done, name)
        self._push(task, None, None)
        return task

    def _push(self, task: Task, value: Any, error: BaseException | None) -> None:
        with self._cv:
            self._ready.append((task, value, error))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cronfile-runs", daemon=True)
                self._thread.start()
            elif len(self._ready) == 1:
                self._cv.notify()

    def resumer(self, task: Task) -> Resume:
        """``resume(value, error)`` for ``task``: the first call steps it on, later ones
        are ignored (a wait may be seen to come in more ways than one)."""
        fired = [False]
        lock = threading.Lock()

        def resume(value: Any, error: BaseException | None = None) -> None:
            with lock:
                if fired[0]:
                    return
                fired[0] = True
            self._push(task, value, error)

        return resume

    def call(self, fn: Callable[[], Any], resume: Resume, name: str = "cronfile-call") -> None:
        """``fn()`` on a pool thread; ``resume`` with what it returned or raised."""

        def run() -> None:
            try:
                value = fn()
            except BaseException as e:  # noqa: BLE001 - thrown into the run
                resume(None, e)
                return
            resume(value, None)

        self._submit(run, name)

    def batch(self, key: Any, item: Any, resume: Resume, flush: Callable[[list[Any]], list[tuple[Any, BaseException | None]]]) -> None:
        """Gather ``item``s under ``key`` while one batch of them is in hand on a pool
        thread: ``flush(items)`` returns each one's (value, error), in order, and each
        item's run is resumed with its own. (The runs' end commits: one state
        transaction for all that ended meanwhile, without a thread waiting for each.)"""
        with self._cv:
            pending = self._batches.get(key)
            if pending is not None:
                pending.append((item, resume))
                return
            self._batches[key] = [(item, resume)]

        def run() -> None:
            while True:
                with self._cv:
                    got = self._batches[key]
                    if not got:
                        del self._batches[key]
                        return
                    self._batches[key] = []
                try:
                    results = flush([item for item, _ in got])
                except BaseException as e:  # noqa: BLE001 - each run hears it
                    results = [(None, e)] * len(got)
                for (_, res), (value, error) in zip(got, results, strict=True):
                    res(value, error)

        self._submit(run, "cronfile-commit")

    def _run(self) -> None:
        busy = False
        while True:
            with self._cv:
                item = self._ready.popleft() if self._ready else None
            if item is None:
                if busy:
                    busy = False
                    self._hook(self._on_idle)
                with self._cv:
                    while not self._ready:
                        self._cv.wait()
                    item = self._ready.popleft()
            if not busy:
                busy = True
                self._hook(self._on_busy)
            self._step(*item)

    @staticmethod
    def _hook(fn: Callable[[], None] | None) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - never the end of the stepper
            threading.excepthook(threading.ExceptHookArgs((type(e), e, e.__traceback__, threading.current_thread())))

    def _step(self, task: Task, value: Any, error: BaseException | None) -> None:
        try:
            wait = task.steps.throw(error) if error is not None else task.steps.send(value)
        except StopIteration as stop:
            self._end(task, stop.value, None)
            return
        except BaseException as e:  # noqa: BLE001 - the run's end, said like a thread's
            self._end(task, None, e)
            return
        resume = self.resumer(task)
        try:
            wait.arm(self, resume)
        except BaseException as e:  # noqa: BLE001 - thrown into the run at its next step
            resume(None, e)  # (unless the wait resumed it already: then it goes on)

    def _end(self, task: Task, result: Any, error: BaseException | None) -> None:
        try:
            task._done_cb(result, error)
        except BaseException as e:  # noqa: BLE001
            error = error or e
        finally:
            task._done.set()
        if error is not None and not isinstance(error, (SystemExit, KeyboardInterrupt)):
            threading.excepthook(threading.ExceptHookArgs((type(error), error, error.__traceback__, threading.current_thread())))
