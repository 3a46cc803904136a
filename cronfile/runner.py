"""One run of one job: prepare, spawn, wait, retry; the outcome as a value.

The engine claims a run, builds a ``RunContext`` and calls :func:`execute`; it records
the returned :class:`Outcome` and hands it to delivery. ``execute`` never raises for
anything a job does (a failing program, a missing variable, a refused prompt): those are
outcomes. Time is an argument (``now``, ``sleep``), so tests and the engine decide it.

Retries happen inside the run (docs/design.md section 5): a failure or a timeout is tried
again up to ``retries`` times, waiting ``retry_backoff`` and doubling, capped at 10x. All
attempts write to the same log, each after the first under a header line.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO, Protocol

from .clock import iso
from .durations import format_duration
from .executors.base import Early, Prepared, RunContext
from .executors.contain import Box, containment
from .executors.dispatch import executor_for
from .executors.process import CD_EXIT, CD_MARK, MOVE_EXIT, MOVE_MARK, Proc, Staged, can_park, spawn
from .expect import check_expect
from .runlog import LazyLog, open_log
from .spec import JobSpec, Kind, Status, Trigger
from .steps import Call, CancelEvent, Stepper, Steps, Wait, drive
from .usage import Decoder, Usage

__all__ = ["Exit", "Outcome", "Start", "backoff_delay", "event_sleep", "execute", "execute_steps", "prepares_ahead"]

STOP_GRACE = 10.0  # SIGTERM, then SIGKILL this many seconds later (docs/design.md section 5)
NO_RETRIES_ENV = "CRONFILE_NO_RETRIES"  # "1": one attempt whatever `retries` says
SILENT_MARK = b"[SILENT]"


@dataclass
class Outcome:
    """What a run came to."""

    status: Status
    exit_code: int | None
    attempts: int  # processes started for the job itself (0: decided before spawning)
    started_at: datetime
    finished_at: datetime
    output_bytes: int
    truncated: bool
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # refused phrase/source, error, signal
    usage: Usage | None = None  # tokens (and cost) the agent reported, summed over attempts
    usage_error: str | None = None  # why usage is None although the profile reports it
    # The run got as far as its log (made at the first byte: runlog.py): the history
    # records a log_path for it even when nothing was written (Store.keep_log(empty=)).
    has_log: bool = False

    def to_record(self) -> dict[str, Any]:
        """The fields of the run's history line that the runner owns."""
        return {
            "status": str(self.status),
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 3),
            "output_bytes": self.output_bytes,
            "output_truncated": self.truncated,
            "message": self.message,
            "detail": dict(self.detail),
            "usage": self.usage.to_json() if self.usage is not None else None,
            **({"usage_error": self.usage_error} if self.usage_error else {}),
        }


class Start(Protocol):
    """When a run claimed ahead of its instant may start (the engine's ``Volley``)."""

    def may_park(self) -> bool:
        """Whether this run may start its process parked before the instant (if it can:
        executors.process.can_park)."""
        ...

    def wait(self, cancel: threading.Event | None) -> bool:
        """Block until the instant; False if ``cancel`` was set first."""
        ...

    def park(self, proc: Proc, cancel: threading.Event | None) -> bool:
        """``proc`` was started parked: block until it was released at the instant
        (True), or until ``cancel`` (False: still parked, the caller aborts it)."""
        ...

    def arm(self, proc: Proc | None, cancel: threading.Event | None, resume: Callable[[bool, None], None]) -> None:
        """``wait`` (``proc`` None) or ``park`` without blocking: ``resume(result, None)``
        once it is known (steps.Stepper)."""
        ...


class _Instant(Wait):
    """The run's instant (``Start.wait``), or its parked process's release
    (``Start.park``): True once it came, False if cancelled first."""

    def __init__(self, start: Start, proc: Proc | None, cancel: threading.Event | None) -> None:
        self.start, self.proc, self.cancel = start, proc, cancel

    def block(self) -> bool:
        if self.proc is None:
            return self.start.wait(self.cancel)
        return self.start.park(self.proc, self.cancel)

    def arm(self, stepper: Stepper, resume: Callable[[Any, BaseException | None], None]) -> None:
        arm = getattr(self.start, "arm", None)
        if arm is None:
            super().arm(stepper, resume)
        else:
            arm(self.proc, self.cancel, resume)


# How long after its leader's exit a stepped run waits for its output's end before a
# pool thread takes over the wait (Proc.wait: an output held open, polled).
_EOF_WAIT = 0.05


class Exit(Wait):
    """A run's process: its exit status once it is over (``Proc.wait``), None if
    ``timeout`` passed or ``cancel`` was set first."""

    def __init__(self, proc: Proc, timeout: float, cancel: threading.Event | None) -> None:
        self.proc, self.timeout, self.cancel = proc, timeout, cancel

    def block(self) -> int | None:
        return self.proc.wait(self.timeout, self.cancel)

    def arm(self, stepper: Stepper, resume: Callable[[Any, BaseException | None], None]) -> None:
        if self.cancel is not None and not isinstance(self.cancel, CancelEvent):
            super().arm(stepper, resume)  # (nothing would tell it of a cancel)
            return
        _ArmedExit(self, stepper, resume).arm()


class _ArmedExit:
    """An ``Exit`` armed: the first of the run's end, its cancel and its timeout resumes
    it; then nothing refers back to it (no cycle for the garbage collector: one a run
    made the daemon's young collections ten times as frequent)."""

    def __init__(self, wait: Exit, stepper: Stepper, resume: Callable[[Any, BaseException | None], None]) -> None:
        self.proc, self.cancel, self.stepper, self.resume = wait.proc, wait.cancel, stepper, resume
        self.deadline = time.monotonic() + wait.timeout
        self.lock = threading.Lock()
        self.taken = False
        self.timers: list[Any] = []

    def arm(self) -> None:
        self.timers.append(self.stepper.timers.add(self.deadline, self.stopped))
        if not self.proc.when_over(self.on_change):
            if self.take():
                self.stepper.call(partial(self.proc.wait, max(self.deadline - time.monotonic(), 0.0), self.cancel), self.resume)
            return
        if self.cancel is not None:
            self.cancel.hook(self.stopped)
            if self.taken:
                self.cancel.unhook(self.stopped)  # (over already, as when_over called)

    def take(self) -> bool:
        # The first of the exit, a cancel or the timeout; then nothing else listens.
        with self.lock:
            if self.taken:
                return False
            self.taken = True
        self.proc.unlisten(self.on_change)
        if self.cancel is not None:
            self.cancel.unhook(self.stopped)
        for t in self.timers:
            self.stepper.timers.cancel(t)
        return True

    def on_change(self, over: bool) -> None:
        if over:
            if self.take():
                self.resume(self.proc.returncode, None)
        elif len(self.timers) == 1:
            with self.lock:
                if not self.taken and len(self.timers) == 1:
                    self.timers.append(self.stepper.timers.add(time.monotonic() + _EOF_WAIT, self.held))

    def held(self) -> None:
        # Exited, but its output is still open: Proc.wait's polling, on a thread.
        if self.take():
            wait = partial(self.proc.wait, max(self.deadline - time.monotonic(), 0.0), self.cancel)
            self.stepper.call(wait, self.resume)

    def stopped(self) -> None:
        if self.take():
            self.resume(None, None)


def prepares_ahead(spec: JobSpec) -> bool:
    """Whether a run of ``spec`` can be prepared before its instant: preparing must not
    act, and an agent job's context script is a program with effects of its own."""
    return not (spec.kind is Kind.prompt and spec.context.script)


def event_sleep(seconds: float, cancel: threading.Event | None) -> bool:
    """Sleep, waking early when ``cancel`` is set. True if cancelled."""
    if cancel is None:
        threading.Event().wait(seconds)
        return False
    return cancel.wait(seconds)


def backoff_delay(backoff: float, failed_attempt: int) -> float:
    """The wait after the ``failed_attempt``-th attempt (1-based): ``backoff`` doubling
    each time, capped at 10x ``backoff``."""
    return min(backoff * 2 ** (failed_attempt - 1), 10 * backoff)


def _open_log(ctx: RunContext) -> LazyLog:
    # The file itself is made at the first byte written (cronfile/runlog.py); at once
    # for a manual run (it may have no entry in the state for `logs` to find it by) and
    # for a job with deliveries (a webhook receiver may open its log_path).
    return open_log(ctx.log_path, now=ctx.trigger == Trigger.manual or bool(ctx.spec.deliver))


def _write(log: BinaryIO, ctx: RunContext, data: bytes) -> None:
    for f in (log, ctx.stream):
        if f is None:
            continue
        try:
            f.write(data)
            f.flush()
        except (OSError, ValueError):
            pass


@dataclass
class _Attempt:
    status: Status
    exit_code: int | None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _judge(
    ctx: RunContext, proc: Proc, code: int | None, cancelled: bool, leader_code: int | None
) -> _Attempt:
    """The status of one attempt from how its process ended."""
    if code is None:
        signal_detail = {"signal": proc.killed_by} if proc.killed_by else {}
        if cancelled:
            return _Attempt(
                Status.cancelled, None, "cancelled; the process group was stopped", signal_detail
            )
        timeout = ctx.spec.timeout
        msg = f"timed out after {format_duration(timeout)}; the process group was stopped"
        if leader_code is not None:
            # The leader ended but something it started kept the output open: like
            # Debian cron, the run lasts until the output closes.
            msg += f" (its main process had exited {leader_code}, but processes it started kept the output open)"
        return _Attempt(Status.timeout, None, msg, {"timeout_s": timeout, **signal_detail})
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return _Attempt(Status.failed, None, f"killed by signal {name}", {"signal": name})
    if code == MOVE_EXIT and proc.head.startswith(MOVE_MARK):
        # Its shell could not move itself into the run's cgroup: the job never ran.
        msg = "could not start the job: its shell could not put itself in the run's cgroup"
        return _Attempt(Status.failed, None, msg, {"error": msg})
    if code == CD_EXIT and proc.head.startswith(CD_MARK):
        # Its gate's shell could not enter the workdir (removed since it was checked, or
        # no longer searchable): the job never ran.
        msg = "could not start the job: its workdir could not be entered"
        return _Attempt(Status.failed, None, msg, {"error": msg})
    if code != 0:
        return _Attempt(Status.failed, code, f"exit code {code}", {})
    if proc.head.lstrip().startswith(SILENT_MARK):
        return _Attempt(Status.silent, 0, "output began with [SILENT]", {"reason": "[SILENT]"})
    return _Attempt(Status.success, 0)


def _decoded(
    ctx: RunContext,
    prepared: Prepared,
    dec: Decoder,
    result: _Attempt,
    log: BinaryIO,
    tally: _Tally,
) -> _Attempt:
    """An agent attempt read through its profile's decoder: its usage counted, its
    answer checked against ``expect:``, and the stderr it held back shown if it failed."""
    tally.add_usage(dec)
    if result.status is Status.success and ctx.spec.expect:
        why = check_expect(ctx.spec.expect, dec.answer)
        if why is not None:
            result = _Attempt(Status.failed, 0, why, {"expect": why})
    if result.status not in (Status.success, Status.silent) and dec.stderr.strip():
        text = prepared.masker.mask(dec.stderr.decode("utf-8", "replace")).strip()
        name = os.path.basename(prepared.argv[0])
        _write(log, ctx, tally.line(f"[cronfile: stderr of {name}]") + text.encode() + b"\n")
    return result


def execute(
    ctx: RunContext,
    *,
    now: Callable[[], datetime],
    on_spawn: Callable[[int], None] = lambda pid: None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float, threading.Event | None], bool] = event_sleep,
    start: Start | None = None,
) -> Outcome:
    """Run ``ctx``'s job to an outcome.

    ``on_spawn(pid)`` is called for each process group as soon as it exists (the
    engine records it before waiting, for crash recovery); for a parked process, once
    it is released. ``cancel``, when set, stops the run (process group and any backoff
    wait) and gives ``cancelled``. ``sleep(s, cancel)`` waits between attempts and
    returns True if cancelled. ``start``: the run was claimed ahead of its instant
    (module docstring)."""
    return drive(execute_steps(ctx, now=now, on_spawn=on_spawn, cancel=cancel, sleep=sleep, start=start))


def execute_steps(
    ctx: RunContext,
    *,
    now: Callable[[], datetime],
    on_spawn: Callable[[int], None] = lambda pid: None,
    cancel: threading.Event | None = None,
    sleep: Callable[[float, threading.Event | None], bool] = event_sleep,
    start: Start | None = None,
) -> Steps:
    """``execute`` as steps (cronfile/steps.py): yields where it would block; its
    return value is the Outcome."""
    tally = _Tally(started=now())
    result: _Attempt | None = None
    # Every process of the run, context script included, goes into one box, emptied
    # after each attempt and closed at the end: nothing the run started outlives it.
    box = containment().box(ctx.run_id, ctx.engine)
    try:
        result = yield from _execute(ctx, tally, box, now, on_spawn, cancel, sleep, start)
    finally:
        if box.closes_at_once():
            box.close()
        else:
            yield Call(box.close)
    return Outcome(
        result.status,
        result.exit_code,
        tally.attempts,
        tally.started,
        now(),
        tally.output_bytes,
        tally.truncated,
        result.message,
        result.detail,
        tally.usage,
        tally.usage_error if tally.usage is None else None,
        tally.has_log,
    )


def _execute(
    ctx: RunContext,
    tally: _Tally,
    box: Box,
    now: Callable[[], datetime],
    on_spawn: Callable[[int], None],
    cancel: threading.Event | None,
    sleep: Callable[[float, threading.Event | None], bool],
    start: Start | None,
) -> Steps:
    result: _Attempt | None = None
    if start is not None and not prepares_ahead(ctx.spec):
        result = yield from _await(start, cancel, tally, now)
        start = None
    if result is None:
        # One deadline for the first attempt: the context script and the agent together.
        ctx = dataclasses.replace(ctx, box=box, deadline=time.monotonic() + ctx.spec.timeout)

        def prepare() -> Prepared | Early:
            try:
                return executor_for(ctx.spec).prepare(ctx, cancel=cancel, on_spawn=on_spawn)
            except OSError as e:
                return Early(Status.failed, f"could not prepare the run: {e}", {"error": str(e)})

        # Preparing acts (a context script runs) only where it cannot be done ahead.
        prepared = prepare() if prepares_ahead(ctx.spec) else (yield Call(prepare))
        if isinstance(prepared, Early):
            # Even an outcome decided before spawning is the run's, at its instant.
            result = (yield from _await(start, cancel, tally, now)) or _Attempt(
                prepared.status, None, prepared.message, dict(prepared.detail)
            )
        elif cancel is not None and cancel.is_set():
            result = _Attempt(Status.cancelled, None, "cancelled before it started")
        else:
            try:
                log = _open_log(ctx)
            except OSError as e:
                msg = f"cannot open the run's log {ctx.log_path}: {e.strerror or e}"
                result = (yield from _await(start, cancel, tally, now)) or _Attempt(
                    Status.failed, None, msg, {"error": msg}
                )
            else:
                tally.has_log = True
                if box.note:
                    _write(log, ctx, f"[cronfile: {box.note}]\n".encode())
                with log:
                    result = yield from _attempts(ctx, prepared, log, tally, on_spawn, cancel, sleep, start, now, box)
                if log.problem is not None:
                    result = _log_lost(result, log.problem)
                    tally.has_log = log.created  # never made: no empty log to record
    return result


def _log_lost(result: _Attempt, problem: str) -> _Attempt:
    """The run's output could not all be kept (its log made at the first byte could not
    be made, or a write failed): the run fails with why, as when the log could not be
    opened at the start (runlog.py). An outcome that is already a failure keeps its
    status and says both."""
    if result.status in (Status.success, Status.silent):
        return _Attempt(Status.failed, result.exit_code, problem, {"error": problem})
    message = f"{result.message}; {problem}" if result.message else problem
    return _Attempt(result.status, result.exit_code, message, {**result.detail, "error": problem})


def _await(
    start: Start | None, cancel: threading.Event | None, tally: _Tally, now: Callable[[], datetime]
) -> Steps:
    """Wait for the instant (if the run has one ahead); None once it came, else the
    cancelled attempt."""
    if start is None:
        return None
    if not (yield _Instant(start, None, cancel)):
        return _Attempt(Status.cancelled, None, "cancelled before its instant")
    tally.started = now()
    return None


@dataclass
class _Tally:
    """What the attempts of one run add up to."""

    started: datetime
    attempts: int = 0
    output_bytes: int = 0  # produced, kept or dropped
    kept: int = 0  # in the log: the output cap is for the whole run, not each attempt
    truncated: bool = False
    ends_with_newline: bool = True
    usage: Usage | None = None
    usage_error: str | None = None
    has_log: bool = False

    def add_usage(self, dec: Decoder) -> None:
        if dec.usage is not None:
            self.usage = dec.usage if self.usage is None else self.usage + dec.usage
        elif dec.problem:
            self.usage_error = dec.problem

    def add(self, proc: Proc, limit: int) -> None:
        self.output_bytes += proc.output_bytes
        self.kept += min(proc.output_bytes, max(limit - self.kept, 0))
        self.truncated = self.truncated or proc.truncated
        self.ends_with_newline = proc.ends_with_newline

    def line(self, text: str) -> bytes:
        """A line of cronfile's own in the log, on a line of its own."""
        data = (b"" if self.ends_with_newline else b"\n") + text.encode() + b"\n"
        self.ends_with_newline = True
        return data


def _attempts(
    ctx: RunContext,
    prepared: Prepared,
    log: BinaryIO,
    tally: _Tally,
    on_spawn: Callable[[int], None],
    cancel: threading.Event | None,
    sleep: Callable[[float, threading.Event | None], bool],
    start: Start | None,
    now: Callable[[], datetime],
    box: Box,
) -> Steps:
    spec = ctx.spec
    retries = max(spec.retries, 0)
    if ctx.environ.get(NO_RETRIES_ENV) == "1":
        # Set by `cronfile render kubernetes` in its pods: Kubernetes retries through
        # backoffLimit, so retrying here too would run each attempt twice over.
        retries = 0
    total = 1 + retries
    result = _Attempt(Status.failed, None, "no attempt ran")
    for attempt in range(1, total + 1):
        if attempt > 1:
            delay = backoff_delay(spec.retry_backoff, attempt - 1)
            if (yield Call(partial(sleep, delay, cancel))):
                return _Attempt(Status.cancelled, None, "cancelled while waiting to retry")
            header = f"--- attempt {attempt} of {total} (after {format_duration(delay)} backoff) ---"
            _write(log, ctx, tally.line(header))
        proc: Proc | None = None
        staged: Staged | None = None
        if attempt == 1 and start is not None:
            # Before the instant: the output pipe and its reader, and the process itself
            # if it may wait parked; at the instant, only what is left.
            try:
                staged = Staged(
                    prepared, log, output_limit=ctx.output_limit, stream=ctx.stream, box=box
                )
                if can_park(prepared) and start.may_park():
                    proc, staged = staged.spawn(gate=True), None
            except OSError:
                proc = staged = None  # spawned at the instant, where the error is judged
            if proc is not None:
                if not (yield _Instant(start, proc, cancel)):
                    yield Call(proc.abort)
                    return _Attempt(Status.cancelled, None, "cancelled before its instant")
                tally.started = proc.released_at or now()
            else:
                early = yield from _await(start, cancel, tally, now)
                if early is not None:
                    if staged is not None:
                        staged.discard()
                    return early
        tally.attempts = attempt
        try:
            if proc is None and staged is not None:
                proc = staged.spawn()
            elif proc is None:
                proc = spawn(
                    prepared,
                    log,
                    output_limit=ctx.output_limit - tally.kept,
                    stream=ctx.stream,
                    box=box,
                )
        except OSError as e:
            # Treated as a failure (retried too): ENOENT, EACCES, E2BIG, EMFILE...
            msg = f"could not start {prepared.argv[0]}: {e.strerror or e}"
            result = _Attempt(Status.failed, None, msg, {"error": msg})
            _write(log, ctx, tally.line(f"[cronfile: {msg}]"))
            continue
        on_spawn(proc.pid)
        # The first attempt's deadline began before its context script ran.
        deadline = time.monotonic() + spec.timeout
        if attempt == 1 and ctx.deadline is not None and not prepares_ahead(spec):
            deadline = ctx.deadline
        code = yield Exit(proc, max(deadline - time.monotonic(), 0.0), cancel)
        leader_code = proc.returncode
        if code is None:
            yield Call(partial(proc.stop, STOP_GRACE))
        else:
            # Ended, output closed: what it left running in the background goes too.
            left = None if proc.finish_at_once() else (yield Call(partial(proc.finish, STOP_GRACE)))
            if left:
                _write(log, ctx, tally.line(f"[cronfile: processes the run left running were stopped ({left})]"))
        cancelled = code is None and cancel is not None and cancel.is_set()
        tally.add(proc, ctx.output_limit)
        result = _judge(ctx, proc, code, cancelled, leader_code)
        if proc.decoder is not None:
            result = _decoded(ctx, prepared, proc.decoder, result, log, tally)
        if result.status in (Status.success, Status.silent, Status.cancelled):
            break
    return result
