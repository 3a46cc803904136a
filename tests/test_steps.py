"""A run as steps (cronfile/steps.py): the blocking driver and the daemon's Stepper
give the same outcomes, the Stepper keeps every run on one thread, and a stepped run
comes back at its process's end, its timeout, its cancel, or when its output that a
background process held open is over."""

from __future__ import annotations

import os
import threading
import time

import pytest
from helpers_proc import T0, make_ctx, make_spec, wait_for

from cronfile import steps
from cronfile.runner import execute, execute_steps
from cronfile.runpool import RunPool
from cronfile.spec import Status
from cronfile.steps import Call, CancelEvent, Stepper, drive


def _now():
    return T0


def test_drive_sends_each_waits_result_and_throws_its_error_back():
    def gen():
        a = yield Call(lambda: 2)
        try:
            yield Call(lambda: 1 / 0)
        except ZeroDivisionError:
            b = 40
        return a + b

    assert drive(gen()) == 42


def test_the_stepper_steps_every_run_on_one_thread_and_calls_block_elsewhere():
    pool = RunPool(idle=1.0)
    stepper = Stepper(pool.submit)
    seen: list[tuple[int, str]] = []
    results: dict[int, object] = {}
    done = threading.Event()

    def gen(i):
        seen.append((threading.get_ident(), "step"))
        t = yield Call(lambda: (time.sleep(0.05), threading.get_ident())[1])
        seen.append((t, "call"))
        seen.append((threading.get_ident(), "step"))
        if i == 3:
            raise ValueError("run 3 failed")
        return i * 10

    def ended(i):
        def cb(result, error):
            results[i] = error if error is not None else result
            if len(results) == 20:
                done.set()

        return cb

    hooks = []
    old = threading.excepthook
    threading.excepthook = lambda args: hooks.append(args.exc_value)
    try:
        tasks = [stepper.start(gen(i), ended(i), f"run-{i}") for i in range(20)]
        assert done.wait(10)
    finally:
        threading.excepthook = old
    assert all(not t.is_alive() for t in tasks)
    step_threads = {t for t, kind in seen if kind == "step"}
    call_threads = {t for t, kind in seen if kind == "call"}
    assert len(step_threads) == 1 and not step_threads & call_threads
    assert results[5] == 50 and isinstance(results[3], ValueError)
    assert [str(e) for e in hooks] == ["run 3 failed"]  # said like a thread's end


def test_a_cancel_event_tells_its_hooks_once_even_when_set_before():
    ev = CancelEvent()
    got = []
    ev.hook(lambda: got.append(1))
    ev.unhook(lambda: None)  # (not hooked: nothing)
    ev.set()
    ev.set()
    ev.hook(lambda: got.append(2))  # already set: at once
    assert got == [1, 2]


def test_timers_fire_in_order_and_a_cancelled_one_never_does():
    timers = steps._Timers()
    got, done = [], threading.Event()
    now = time.monotonic()
    timers.add(now + 0.2, lambda: (got.append("b"), done.set()))
    gone = timers.add(now + 0.1, lambda: got.append("never"))
    timers.add(now + 0.05, lambda: got.append("a"))
    timers.cancel(gone)
    assert done.wait(5)
    assert got == ["a", "b"]


def _stepped(ctx, **kw):
    """``execute`` of ``ctx`` through a Stepper, as the daemon runs it."""
    pool = RunPool(idle=1.0)
    stepper = Stepper(pool.submit)
    out: list = []
    ended = threading.Event()
    stepper.start(execute_steps(ctx, now=_now, **kw), lambda r, e: (out.append(e or r), ended.set()), "run")
    assert ended.wait(60)
    assert not isinstance(out[0], BaseException), out[0]
    return out[0]


CASES = {
    "success": dict(shell="echo hello"),
    "failure": dict(shell="echo no; exit 3"),
    "timeout": dict(shell="sleep 30", timeout=0.5),
    "retried": dict(shell="exit 4", retries=1, retry_backoff=0.1),
    # Its leader exits at once; the background sleep keeps the output open 0.3 s more.
    "held output": dict(shell="(sleep 0.3; echo late) & echo early"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_stepped_run_comes_to_what_a_blocking_one_does(tmp_path, case):
    spec = make_spec(name="job", **CASES[case])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = execute(make_ctx(tmp_path / "a", spec), now=_now)
    ctx = make_ctx(tmp_path / "b", spec)
    b = _stepped(ctx)
    assert (b.status, b.exit_code, b.attempts, b.output_bytes) == (a.status, a.exit_code, a.attempts, a.output_bytes)
    assert b.message == a.message
    if case == "held output":
        assert ctx.log_path.read_bytes() == b"early\nlate\n"


def test_a_stepped_run_is_resumed_by_its_cancel(tmp_path):
    spec = make_spec(name="job", shell="echo $$ > pid; exec sleep 30", timeout=60)
    ctx = make_ctx(tmp_path, spec)
    cancel = CancelEvent()
    pid_file = tmp_path / "pid"
    threading.Thread(target=lambda: (wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 10), cancel.set()), daemon=True).start()
    t0 = time.monotonic()
    outcome = _stepped(ctx, cancel=cancel)
    assert outcome.status is Status.cancelled
    assert time.monotonic() - t0 < 10  # (its cancel, not its 60 s timeout)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_stepper_says_when_it_starts_working_and_before_it_sleeps():
    pool = RunPool(idle=1.0)
    events: list[str] = []
    stepper = Stepper(pool.submit, busy=lambda: events.append("busy"), idle=lambda: events.append("idle"))
    ended = threading.Event()

    def gen():
        events.append("step 1")
        yield Call(lambda: time.sleep(0.1))
        events.append("step 2")

    stepper.start(gen(), lambda r, e: ended.set(), "run")
    assert ended.wait(10)
    wait_for(lambda: events[-1:] == ["idle"], 5)
    # Asleep while the call blocked a pool thread: idle between the steps.
    assert events == ["busy", "step 1", "idle", "busy", "step 2", "idle"]
