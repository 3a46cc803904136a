"""Runs claimed ahead of one instant, started together at it (docs/design.md section 5,
"On time"). The engine makes a ``Volley`` per instant and hands it what it needs: the
clock, a way to record pids, how long a state transaction takes, and whom to tell when
it is over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from .clock import Clock, iso
from .faults import fault

__all__ = ["Member", "Volley"]

# How long after the release a volley waits for the pids of members that came late (they
# were still preparing at the instant) to record them with the others.
LATE_WAIT = 1.0


class Member(Protocol):
    """A run of a volley, as the volley sees it (the engine's Claim)."""

    @property
    def run_id(self) -> str: ...

    @property
    def job(self) -> str: ...


class Volley:
    """Runs claimed ahead of one instant, started together at it.

    The daemon claims the runs due at an instant a little before it; each run is then
    prepared (executor, log, environment) and joins here: a daemon's runs, stepped by
    one thread (cronfile/steps.py), arm themselves here (``_arm``) and are resumed at
    the release; a run on a thread of its own blocks here (``_wait``). The first
    ``park`` runs that are ``/bin/sh`` jobs start their process group parked
    (executors/process.py) before the instant; the others wait for it and spawn then.
    This volley's thread waits for the instant by the wall clock, releases the parked
    processes (one write each) and lets the runs' threads go on; then it records the
    pids of all its runs in one state transaction (the parked ones before the instant
    already, when there is time for it). A run that joins after the release starts at
    once and records its own pid.

    Why only a few parked: released together, 100 processes share 2 CPUs and each gets
    through its start later than when they are spawned one after another (measured with
    bench/bench_firing.py, p50 97-102 ms against 75-82 ms); a handful, up to the number
    of CPUs, start sooner parked than spawned (1 job: p50 2.7 ms against 3.4 ms). Where
    runs get a cgroup each, a spawned /bin/sh job is held at the same gate anyway while
    it is moved in, and the moves are serialized by the kernel: there the engine parks
    every run it can (``engine.park_limit``; 200 runs: p99 175 ms against 256-276).

    At most once holds as before: the claim was persisted before any process existed,
    and a parked process runs its job only when released; if this process dies first,
    the gates read EOF and exit (the runs are then recovered ``interrupted``, like runs
    claimed and never spawned). A run cancelled before the instant (``replace``, the end
    of ``shutdown_grace``) is never released. Pids not yet recorded when this process
    dies are found by run id (``executors/procfs.run_group``)."""

    def __init__(
        self,
        at: datetime,
        *,
        clock: Clock,
        record_pids: Callable[[dict[str, tuple[str, int]]], bool],
        txn_seconds: Callable[[], float],
        done: Callable[[Volley], None],
        park: int = 0,
    ) -> None:
        """``record_pids`` writes the pids of runs (run id -> job, pid) in one state
        transaction, True if it could; ``txn_seconds`` is how long one takes here lately;
        ``done`` hears that the volley is over (released, or given up)."""
        self.at = at
        self._clock = clock
        self._record_pids = record_pids
        self._txn_seconds = txn_seconds
        self._done = done
        # The volley's thread waits on ``_cv`` (members arriving, pids reported); the
        # members do not wait on it: each is resumed on its own (``_armed``). One
        # condition for both woke every waiting member at each arrival: 200 members made
        # 20,000 wake-ups an instant, 0.4 ms of CPU a run (issue 17 round 5).
        self._cv = threading.Condition(threading.Lock())
        self._park = park  # how many more runs may start parked
        self._expected = 0  # members with a thread
        self._here: set[str] = set()  # run ids of the members waiting here
        self._gone = 0  # members cancelled before the instant
        self._parked: dict[str, tuple[str, Any]] = {}  # run id -> (job, its parked Proc)
        self._pids: dict[str, tuple[str, int]] = {}  # run id -> (job, pid) to record
        self._ended: set[str] = set()  # members whose spawning is over (or never came)
        self._recorded: set[str] = set()
        # What the thread waits for after the release, kept as it comes so that a member
        # wakes it only when that may be complete (issue 17, round 10: a wake-up per
        # spawn and per end, each comparing three sets of 200, was a third of the
        # volley's CPU): the run ids in _pids, _recorded or _ended, and how many of
        # _here are not among them.
        self._acc: set[str] = set()
        self._here_left = 0
        self._closed = False  # pids reported from now on are recorded by their runs
        self.released = False
        self._release_time: datetime | None = None  # when the parked runs were let go
        self.over = threading.Event()  # released, or given up
        self._wake = threading.Event()
        # Members stepped instead of blocking here (steps.Stepper): run id -> (cancel,
        # resume). Resumed (True) after the release, or (False) once cancelled first.
        self._armed: dict[str, tuple[threading.Event | None, Callable[[Any, Any], None]]] = {}

    def __repr__(self) -> str:
        return f"Volley({iso(self.at)}, {self._expected} runs)"

    def enlist(self) -> None:
        with self._cv:
            self._expected += 1

    def member(self, claim: Member) -> _Member:
        return _Member(self, claim)

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"volley-{iso(self.at)}", daemon=True).start()

    def poke(self) -> None:
        """A cancel event was set: the members waiting here look at theirs."""
        gone = []
        with self._cv:
            if not self.released:
                for run_id, (cancel, resume) in list(self._armed.items()):
                    if cancel is not None and cancel.is_set():
                        del self._armed[run_id]
                        self._parked.pop(run_id, None)
                        if run_id in self._here and run_id not in self._acc:
                            self._here_left -= 1
                        self._here.discard(run_id)
                        self._gone += 1
                        gone.append(resume)
                if gone:
                    self._cv.notify_all()
        self._wake.set()
        for resume in gone:
            resume(False, None)

    # -- what the members call -----------------------------------------------------------

    def _may_park(self) -> bool:
        with self._cv:
            if self.released or self._park <= 0:
                return False
            self._park -= 1
            return True

    def _wait(self, claim: Member, proc: Any, cancel: threading.Event | None) -> bool:
        """``_arm``, blocking this thread until the run is resumed (a run on a thread of
        its own: ``CRONFILE_THREAD_PER_RUN``)."""
        came = threading.Event()
        got: list[bool] = []
        self._arm(claim, proc, cancel, lambda value, _error: (got.append(value), came.set()))
        came.wait()
        return got[0]

    def _arm(self, claim: Member, proc: Any, cancel: threading.Event | None, resume: Callable[[Any, Any], None]) -> None:
        """``_wait`` without blocking: ``resume(True, None)`` after the release,
        ``resume(False, None)`` if ``cancel`` came first (then found by ``poke``)."""
        run_id = claim.run_id
        with self._cv:
            late = self.released
            if not late:
                if cancel is not None and cancel.is_set():
                    self._gone += 1
                    self._cv.notify_all()
                    self._wake.set()
                else:
                    if proc is not None:
                        self._parked[run_id] = (claim.job, proc)
                    if run_id not in self._here and run_id not in self._acc:
                        self._here_left += 1
                    self._here.add(run_id)
                    self._armed[run_id] = (cancel, resume)
                    if len(self._here) + self._gone >= self._expected:
                        self._cv.notify_all()  # the last one: the thread may go on
                    return
        if not late:
            resume(False, None)
            return
        if proc is not None:
            proc.released_at = self._clock.now()  # (its start: before, not after, the job's)
            proc.release()
        resume(True, None)

    def _resume_armed(self) -> None:
        with self._cv:
            armed, self._armed = self._armed, {}
        for _, resume in armed.values():
            resume(True, None)

    def spawned(self, claim: Member, pid: int) -> bool:
        """A member's first process exists: True if this volley records its pid (in its
        one transaction), False if the caller must (it came too late for that)."""
        with self._cv:
            if claim.run_id in self._recorded:
                return True
            if self._closed:
                return False
            self._pids[claim.run_id] = (claim.job, pid)
            self._account(claim.run_id)
            return True

    def ended(self, claim: Member) -> None:
        """A member's run is over: whatever it spawned was reported."""
        with self._cv:
            self._ended.add(claim.run_id)
            self._account(claim.run_id)

    def _account(self, run_id: str) -> None:
        """(Under ``_cv``.) ``run_id``'s pid is known, recorded, or will never come; the
        thread is woken once what it waits for after the release may be complete."""
        if run_id in self._acc:
            return
        self._acc.add(run_id)
        if run_id in self._here:
            self._here_left -= 1
        if self.released and (self._here_left <= 0 or len(self._acc) >= self._expected):
            self._cv.notify_all()

    # -- the volley's thread ---------------------------------------------------------------

    def _run(self) -> None:
        clock = self._clock
        try:
            # Until every member is here (parked or waiting), or the instant.
            with self._cv:
                while len(self._here) + self._gone < self._expected:
                    left = (self.at - clock.now()).total_seconds()
                    if left <= 0:
                        break
                    self._cv.wait(min(left, 1.0))
                early = {rid: (job, proc.pid) for rid, (job, proc) in self._parked.items()}
            # The parked runs' pids, before the instant if a transaction fits there.
            if early and (self.at - clock.now()).total_seconds() > 2 * self._txn_seconds():
                self._record(early)
            if early:
                fault("after-park")  # test-only (store.fault): die with runs parked
            while True:
                with self._cv:
                    if self._expected and self._gone >= self._expected:
                        break  # every member was cancelled
                if clock.now() >= self.at:
                    break
                # A wall clock that jumps back makes this wait longer: nothing of a run
                # acts before its instant (tests/faults/test_clock.py).
                clock.sleep_until(self.at, self._wake)
                self._wake.clear()
            with self._cv:
                self.released = True
                procs = [proc for _, proc in self._parked.values()]
                # When they were let go (just before): their runs' start, not when their
                # threads wake after it (release_time).
                self._release_time = clock.now()
                for proc in procs:
                    proc.released_at = self._release_time
            for proc in procs:
                proc.release()
            self.over.set()
            self._resume_armed()
            # Then every other pid, once each member has spawned (or ended), in one go:
            # those waiting here (up to 5 s), and those that came after the release (up
            # to LATE_WAIT more: a pid recorded by its own run is a transaction per run).
            t0 = time.monotonic()
            deadline, late_deadline = t0 + 5.0, t0 + LATE_WAIT
            with self._cv:
                for rid, (job, proc) in self._parked.items():
                    if rid not in self._recorded:
                        self._pids[rid] = (job, proc.pid)
                        self._account(rid)
                while True:
                    here_done = self._here_left <= 0
                    if here_done and len(self._acc) >= self._expected:
                        break
                    left = (late_deadline if here_done else deadline) - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                rest = {rid: v for rid, v in self._pids.items() if rid not in self._recorded}
                self._closed = True
            if rest:
                self._record(rest)
        finally:
            with self._cv:
                self.released = self._closed = True
                self._cv.notify_all()
            self.over.set()
            self._resume_armed()
            self._done(self)

    def release_time(self, claim: Member) -> datetime | None:
        """When ``claim``'s parked process was let go (None: it was not parked here)."""
        with self._cv:
            return self._release_time if claim.run_id in self._parked else None

    def _record(self, pids: dict[str, tuple[str, int]]) -> None:
        # If they cannot be written, the runs go on; a recovery finds their groups by
        # run id (executors/procfs.run_group).
        if self._record_pids(pids):
            with self._cv:
                self._recorded.update(pids)
                for rid in pids:
                    self._account(rid)


class _Member:
    """One run of a volley, as the runner sees it (runner.Start)."""

    def __init__(self, volley: Volley, claim: Member) -> None:
        self._volley = volley
        self._claim = claim

    def may_park(self) -> bool:
        return self._volley._may_park()

    def wait(self, cancel: threading.Event | None) -> bool:
        return self._volley._wait(self._claim, None, cancel)

    def park(self, proc: Any, cancel: threading.Event | None) -> bool:
        return self._volley._wait(self._claim, proc, cancel)

    def arm(self, proc: Any, cancel: threading.Event | None, resume: Callable[[Any, Any], None]) -> None:
        self._volley._arm(self._claim, proc, cancel, resume)
