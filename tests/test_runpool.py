"""The runs' threads (cronfile/runpool.py): every run gets a thread at once however many
are in flight, a finished run's thread takes the next run, and an idle pool ends its
threads."""

from __future__ import annotations

import threading
import time

from cronfile.runpool import RunPool


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_every_run_gets_a_thread_at_once_and_finished_threads_are_reused_then_end():
    pool = RunPool(idle=0.5)
    gate = threading.Event()
    started = []
    lock = threading.Lock()

    def run(i: int) -> None:
        with lock:
            started.append((i, threading.current_thread().ident))
        gate.wait(10)

    before = set(threading.enumerate())
    handles = [pool.submit(lambda i=i: run(i), f"run-{i}") for i in range(30)]
    _wait(lambda: len(started) == 30)  # none waits for another: no bound
    assert all(h.is_alive() for h in handles)
    gate.set()
    for h in handles:
        h.join(10)
        assert not h.is_alive()
    workers = {ident for _, ident in started}
    assert len(workers) == 30

    again = []
    handles = [pool.submit(lambda: again.append(threading.current_thread().ident), "run-x") for _ in range(10)]
    for h in handles:
        h.join(10)
    assert len(again) == 10 and set(again) <= workers  # taken by the idle threads
    _wait(lambda: not (set(threading.enumerate()) - before))  # idle: all ended


def test_a_run_that_raises_is_reported_as_a_thread_s_would_be_and_its_thread_goes_on(monkeypatch):
    reported = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append((args.exc_type, args.thread.name)))
    pool = RunPool(idle=5)

    def boom() -> None:
        raise RuntimeError("boom")

    pool.submit(boom, "run-boom").join(5)
    seen = []
    pool.submit(lambda: seen.append(1), "run-ok").join(5)
    assert seen == [1]
    assert reported == [(RuntimeError, "run-boom")]
