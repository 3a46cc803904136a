"""The engine: clock -> due -> claim -> execute -> record -> deliver.

The decisions are pure (``reconcile``, ``due``); this module sequences them with the
effects (``store``, ``runner``, ``delivery``, ``watch``). Its guarantees, docs/design.md
section 5:

- At most once. A due run is claimed under ``state.lock`` by persisting the next
  ``next_run`` and a ``running`` entry in one atomic write, and only then spawned. A
  crash can lose a run (it is recorded ``interrupted`` on the next start), never run it
  twice. Every engine (daemon, tick, ``run NAME``) holds a lock file named by its id for
  its lifetime; a ``running`` entry whose engine lock is free belongs to a dead engine.
- No thundering herd: ``due.decide`` fires a job at most once however long we were down.
- No polling: the daemon sleeps until the earliest ``next_run`` or an event (a file
  change, a run that finished with an occurrence queued behind it, another writer's
  state, a signal), re-checking the wall clock at least every minute so a clock jump is
  noticed.
- On time: the daemon wakes a little before an instant (``_lead``: more for more runs
  and a slower state.json), claims the runs due at it (``due.decide``'s horizon; the
  claim is persisted before anything starts, as always), prepares them and parks their
  processes, and starts them together at the instant (``Volley``). Nothing of a run acts
  before its instant by the wall clock. Writes that many runs make at once (their pids,
  their ends) share transactions (``writer.StateWriter.commit``).
"""

from __future__ import annotations

import heapq
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

from .apply import apply_logged, log_problems
from .clock import Clock, SystemClock, boot_time, iso
from .errors import CronfileError, LockedError, StateWriteError, why
from .executors.procfs import group_runs
from .faults import fault
from .history import (
    RunRecord,
    delivery_line,
    delivery_recorded,
    last_success_output,
    merged_history,
    new_run_id,
    short_id,
)
from .load import (
    Project,
    cache_for,
    config_unchanged,
    files_signature,
    load_project,
    racy_changed,
    reload_project,
)
from .logfmt import LogWriter
from .memtrim import release as release_memory
from .observe import Observer
from .parsecache import ParseCache
from .recovery import reap, stop_leftovers
from .runpool import RunHandle, RunPool
from .schedule import Schedule
from .signals import SignalWatch
from .spec import Config, JobSpec, Status, Trigger, spec_from_data
from .state import JobState, LastRun, Running, State, share_specs
from .steps import Call, CancelEvent, Stepper, Steps, Task, Wait, drive
from .stores.base import Store
from .volley import Volley
from .writer import StateWriter, Update

_SCHEDULES_KEPT = 4096  # schedule_for keeps the Schedules of the jobs due most recently


class _NotAtBoot:
    at_boot = False


_NOT_AT_BOOT = _NotAtBoot()

# How long before an instant the daemon wakes to claim and prepare the runs due at it:
# a base, a share per run (a thread, the executor's prepare, the log, the output pipe and
# its reader, for the first few the parked process: 1-3 ms of this process's time each on
# a 2-core VM, more under load), and two state.json transactions (the claim, then the
# parked runs' pids), capped. 100 runs: about 330 ms, and all of them were ready at the
# instant in bench/bench_firing.py.
LEAD_BASE = 0.02
LEAD_PER_RUN = 0.003
LEAD_MAX = 2.0
AGAIN_GAP = 0.05  # another pass ahead of an instant only if it leaves this much
AGAIN_STEP = 0.1  # seconds between two passes ahead of one instant
AGAIN_MAX = 5  # passes ahead of one instant after the first
# How many runs of one instant may start parked (executors/process.py) rather than be
# spawned at the instant: about as many as there are CPUs (see Volley); every one where
# runs get a cgroup each (park_limit).
PARK = os.cpu_count() or 1


def park_limit(mechanism: str) -> int:
    """How many runs of one instant may start parked under containment ``mechanism``.
    With a cgroup a run, a /bin/sh job's process is started behind the gate anyway, and
    held there while it is moved into its cgroup (executors/process.py ``_start``): a
    parked start is the same process, the same move, made before the instant instead of
    at it. The moves are what the kernel serializes (0.2-0.5 ms each, of wall time:
    200 runs an instant took their last start 100 ms and more past it), so every run
    that can park does (issue 17 round 6). Elsewhere a parked start costs a shell more,
    and only the first few are worth it (see Volley)."""
    return sys.maxsize if mechanism == "cgroup2" else PARK
# A daemon on a shared store re-reads the state at least this often (seconds).
SHARED_POLL_S = 5.0


def _release(lock: Any) -> None:
    for name in ("release", "__exit__"):
        fn = getattr(lock, name, None)
        if fn is not None:
            try:
                fn() if name == "release" else fn(None, None, None)
            except Exception:  # noqa: BLE001 - best effort on a lock we are dropping
                pass
            return


@dataclass(order=True)
class Claim:
    """A run claimed in the state and waiting for a slot (ordered by due time)."""

    due: datetime
    seq: int
    job: str = field(compare=False)
    run_id: str = field(compare=False)
    spec: JobSpec = field(compare=False)
    trigger: Trigger = field(compare=False)
    scheduled_for: datetime | None = field(compare=False)
    claimed_at: datetime = field(compare=False)
    volley: Volley | None = field(default=None, compare=False)  # claimed ahead of its instant
    after: tuple[str, ...] = field(default=(), compare=False)  # replace: runs to be gone first
    queued_at: float = field(default=0.0, compare=False)  # monotonic: dispatched
    slot_wait: float = field(default=0.0, compare=False)  # seconds it waited for a free slot

    @property
    def ahead(self) -> bool:
        """Claimed before its instant (due.decide's horizon): it must wait for it."""
        return self.scheduled_for is not None and self.scheduled_for > self.claimed_at


class _EndCommit(Wait):
    """A run's end (its history line and its end in the state) in a shared transaction:
    ``StateWriter.commit`` on the run's thread; under a Stepper, with the other runs'
    ends that came meanwhile, handed over in one batch (the update's ``error`` says
    how it went: it never raises)."""

    def __init__(self, writer: StateWriter, item: Update) -> None:
        self.writer, self.item = writer, item

    def block(self) -> None:
        self.writer.submit([self.item])

    def arm(self, stepper: Stepper, resume: Callable[[Any, BaseException | None], None]) -> None:
        writer = self.writer

        def flush(items: list[Update]) -> list[tuple[Any, BaseException | None]]:
            writer.submit(items)
            return [(None, None)] * len(items)

        stepper.batch(writer, self.item, resume, flush)


class Engine:
    """One engine process: a daemon, a tick, or a `run NAME`."""

    def __init__(
        self,
        root: Path,
        store: Store,
        *,
        project: Project,
        mode: str,
        clock: Clock | None = None,
        environ: dict[str, str] | None = None,
        quiet: bool = False,
        log_stream: IO[str] | None = None,
        log_format: str = "text",
        observer: Observer | None = None,
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.project = project
        self.config: Config = project.config
        self.mode = mode
        self.clock: Clock = clock or SystemClock()
        self.environ = dict(os.environ if environ is None else environ)
        self.quiet = quiet
        self.log_stream = log_stream or (sys.stderr if mode == "run" else sys.stdout)
        self._logw = LogWriter(self.log_stream, log_format)
        # Metrics, the health check, the status page, systemd (cronfile/observe.py).
        self.observer: Observer = observer or Observer()
        self.engine_id = secrets.token_hex(8)
        self.host = socket.gethostname()
        self.writer = StateWriter(store)  # state transactions, timed and shared
        self.writer.on_foreign = lambda: self._wake.set()
        self._cv = threading.Condition()
        self._pending: list[Claim] = []
        self._active: dict[str, RunHandle | Task] = {}
        self._pool = RunPool()  # the runs' threads, reused
        # The daemon steps its runs on one thread (cronfile/steps.py); the other modes
        # run each on a thread of its own (a run with a stream to a terminal, too).
        self._stepper = Stepper(self._pool.submit, busy=self._logw.hold, idle=self._logw.release) if mode == "daemon" and os.environ.get("CRONFILE_THREAD_PER_RUN") != "1" else None
        self._unrun: list[RunRecord] = []  # missed and skipped occurrences to record (claim_due)
        self._unrun_busy = False  # a thread is writing them
        self._cancels: dict[str, CancelEvent] = {}
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._failed = 0
        self._locks: list[Any] = []
        self._spec_cache: dict[str, JobSpec] = {}
        share_specs({s.spec_hash: s for s in project.specs})  # before the first state read
        # The daemon re-reads only the files that changed (cronfile/parsecache.py): the
        # cache the command loaded the project with, kept in memory from here on.
        # (It was saved by the command; from here on it lives in memory: a save per edit
        # would cost more than the edit.)
        # A project read file by file keeps every file's result: reading the repo again
        # goes through those (load.ProjectCache), and the command's cache is let go.
        self._parse_cache: ParseCache | None = None
        for s in project.specs:
            s.forget_schedule()  # checking kept one each; the runs keep a few (schedule_for)
        if project.incremental:
            project.cache = None
        else:
            self._parse_cache = project.cache if project.cache is not None else ParseCache()
            self._parse_cache.path = None
        self._watcher: Any = None  # the daemon's (serve); it names the files that changed
        self._files = project  # the files as last read, valid or not (reload builds on it)
        self._specs_of: Project | None = None  # the project _spec_cache holds the specs of
        self._sched_cache: dict[str, tuple[JobSpec, Any, Any, Schedule]] = {}  # name -> (spec, created_at, offset, schedule)
        self._finished: list[str] = []
        self._volleys: set[Volley] = set()
        self._park = PARK  # runs of one instant that may start parked (park_limit, once detected)
        self._claimed_to: datetime | None = None  # the latest instant claimed ahead
        self._again: tuple[datetime | None, int] = (None, 0)  # an instant claimed ahead, passes again
        self._replaced: dict[str, str] = {}  # run id -> the run that replaces it
        self._start_pings: dict[str, threading.Thread] = {}  # healthchecks /start in flight
        self._redeliver: list[tuple[str, dict[str, Any]]] = []  # recovered runs' records
        self._adopted_at = time.monotonic()  # the last look for dead engines' outbox entries
        from .outbox import Outbox

        self.outbox = Outbox(store, self.engine_id, send=self._send_delivery, record=self._record_delivery, log=self.log)
        self._killers: dict[str, threading.Thread] = {}  # another engine's runs being stopped

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Engine:
        from .executors.contain import ContainmentError, containment, sweep_empty

        try:
            # Detected once, before any run: a run must not wait for the probe.
            self._park = park_limit(containment(self.environ).mechanism)
        except ContainmentError as e:
            raise CronfileError(str(e)) from None
        sweep_empty()  # run cgroups that dead engines (of any state dir) left empty
        self.store.ensure()
        if self.mode == "daemon":
            self._locks.append(self.store.daemon_lock())
        lock = self.store.engine_lock(self.engine_id)
        if hasattr(lock, "__enter__"):
            lock.__enter__()
        self._locks.append(lock)
        self.recover()
        return self

    def __exit__(self, *exc: object) -> None:
        self.outbox.stop()
        for lock in reversed(self._locks):
            _release(lock)
        self._locks.clear()

    def log(self, job: str, text: str, *, event: str = "log", level: str = "info", **fields: Any) -> None:
        """One log line (cronfile/logfmt.py: dated text or JSON); ``fields`` are the JSON
        keys that apply (run_id, scheduled_for, lateness_ms, status, ...)."""
        if self.quiet and (self.mode != "daemon" or level in ("debug", "info")):
            return  # a daemon's -q keeps its warnings and errors
        self._logw.write(datetime.now(UTC), level=level, event=event, msg=text, job=job, **fields)

    # -- state helpers -----------------------------------------------------------------

    def spec_for(self, js: JobState) -> JobSpec:
        spec = self._spec_cache.get(js.spec_hash)
        if spec is None:
            spec = spec_from_data(js.spec)
            self._spec_cache[js.spec_hash] = spec
        return spec

    def schedule_for(self, spec: JobSpec, js: JobState) -> Schedule:
        """A due job's Schedule. Kept for the jobs due most recently only: a Schedule is
        about 20 us to build and 200 bytes to keep, and a daemon of 30,000 jobs that
        kept one for each held 7 MB for jobs that fire once a day (issue 17). (A cache
        by schedule_sig, which leaves the name out, also gave a job another's jitter.)"""
        # (not iso(): this runs per job per pass; the offset kept apart, as iso kept it)
        offset = js.created_at.utcoffset() if js.created_at else None
        kept = self._sched_cache.get(spec.name)
        if kept is not None and kept[0] is spec and kept[1] == js.created_at and kept[2] == offset:
            return kept[3]  # type: ignore[no-any-return]
        sched = spec.build_schedule(created_at=js.created_at, keep=False)
        cache = self._sched_cache
        if len(cache) >= _SCHEDULES_KEPT:
            del cache[next(iter(cache))]  # the one kept longest ago
        cache[spec.name] = (spec, js.created_at, offset, sched)
        return sched

    def _reboot_schedule_for(self, spec: JobSpec, js: JobState) -> Schedule:
        """schedule_for, for the @reboot pass only: a job whose text is not @reboot
        (schedule.parse's rule: the text, stripped, in any case) is not one, and its
        Schedule is not built (the pass asks every job)."""
        if spec.schedule.strip().lower() != "@reboot":
            return _NOT_AT_BOOT  # type: ignore[return-value]
        return self.schedule_for(spec, js)

    # -- recovery ----------------------------------------------------------------------

    def _reap(self, state: State) -> tuple[State, tuple[tuple[str, Running, int | None], ...]]:
        """Inside a state transaction: dead engines' runs recorded and dropped
        (recovery.reap); returns the state and the groups to stop after it."""
        reaped = reap(state, store=self.store, engine_id=self.engine_id, now=self.clock.now(), host=self.host, observer=self.observer, log=self.log)
        self._redeliver.extend(reaped.redeliver)
        return reaped.state, reaped.stops

    def recover(self) -> None:
        """Runs left `running` by a dead engine become `interrupted`, never re-run."""
        with self.writer.txn() as txn:
            txn.state, stops = self._reap(txn.state)
        stop_leftovers(stops)
        self._recover_deliveries()

    def _recover_deliveries(self) -> None:
        """Dead engines' deliveries: their outbox entries are taken over, and a run
        recorded whose deliveries never reached the outbox gets them now."""
        if self.mode in ("daemon", "tick"):
            # (`run NAME` leaves them to the daemon or the next tick: not its business.)
            self.outbox.adopt(self.store.engine_alive)
        todo, self._redeliver = self._redeliver, []
        for job, record in todo:
            js = self.project_state_spec(job)
            if js is None or not js.deliver:
                continue
            if self.outbox.pending_keys(record["run_id"]) or delivery_recorded(self.store, job, record["run_id"]):
                continue
            try:
                self._queue_deliveries(job, js, record)
                self.log(job, f"run {short_id(record['run_id'])}: its deliveries were queued again (its engine died before)")
            except (OSError, CronfileError) as e:
                self.log(job, f"run {short_id(record['run_id'])}: could not queue its deliveries: {why(e)}")

    def project_state_spec(self, job: str) -> JobSpec | None:
        for spec in self.project.specs:
            if spec.name == job:
                return spec
        return None

    # -- applying ----------------------------------------------------------------------

    def apply(self, project: Project, source: str, unchanged: Callable[[Project], bool | None] | None = None) -> None:
        """Apply the files (apply.apply_logged); the runs use what was applied.
        ``unchanged``: see apply.apply_project."""
        applied = apply_logged(self.store, project, now=self.clock.now(), source=source, lock=self.writer.lock, log=self.log, unchanged=unchanged)
        if applied is None:
            return
        self.project, plan, revision = applied
        self._files = self.project
        self.config = self.project.config
        self._remember_specs(self.project)
        self.observer.applied(plan, revision, self.clock.now())
        if plan.has_changes:
            self._wake.set()
        if self.mode == "daemon":
            release_memory()  # what the read and the reconcile freed (2 ms at 30,000 jobs)

    def _remember_specs(self, project: Project) -> None:
        """Runs use the specs the files were just parsed to (spec_for would otherwise
        build a second copy of each from state.json), and only the current ones. A
        project reload_project patched from the last one swaps the jobs it swapped."""
        if project.patched_from is not None and project.patched_from() is self._specs_of:
            for old, new in project.swapped:
                self._spec_cache.pop(old.spec_hash, None)
                self._spec_cache[new.spec_hash] = new
        else:
            self._spec_cache = {s.spec_hash: s for s in project.specs}
        self._specs_of = project
        share_specs(self._spec_cache)  # the state's JobStates keep these specs' data

    def reload(self) -> None:
        """Re-read the files that changed (daemon, on a file event): only those the
        watcher names when it can (load.reload_project), else the repo through the
        parse cache. An invalid change keeps the last good set running, and says why."""
        w = self._watcher
        paths, gen = w.take_paths() if w is not None else (None, 0)
        now = self.clock.now()
        base = self._files
        out = reload_project(base, paths, now=now) if paths is not None else None
        if out is not None:
            project, differs = out
            if not differs and base is self.project:
                self.project = self._files = project
                return  # written again as it was
        else:
            project = load_project(self.root, now=now, cache=self._parse_cache or cache_for(self._files), warnings=False)
            if project.signature == self.project.signature and not racy_changed(self.project):
                self.project = self._files = project
                return  # nothing changed (the event was a temp file, or a folder)
        self._files = project
        if project.errors:
            log_problems(self.log, project.errors)
            return

        def unchanged(p: Project) -> bool | None:
            # Under the state lock (apply.apply_project's stale-files guard): no event
            # since the paths were taken proves the files are as read, without a walk.
            if p is not project or w is None:
                return None
            now_gen = w.settle()
            if now_gen is None or not config_unchanged(p):
                return None  # the walk decides
            return now_gen == gen

        self.apply(project, "daemon", unchanged)

    # -- claiming ----------------------------------------------------------------------

    def claim_due(self, now: datetime, horizon: datetime | None = None, *, defer_records: bool = False) -> tuple[list[Claim], State]:
        """One transaction: reap dead engines' runs, decide each job, persist the claims.

        ``horizon`` (the daemon, just before an instant): also claim the runs due by
        then (due.decide); those claims are ``ahead`` and start at their instant.
        ``defer_records`` (the daemon's loop): the missed and skipped occurrences' records
        are written by a thread of their own, in order, so that the loop dispatches the
        claimed runs without waiting for a history write per occurrence (a daemon that
        fell behind skipped hundreds an instant, and fell further behind writing them);
        ``wait_idle`` and the shutdown wait for them."""
        from .due import claim

        with self.writer.txn() as txn:
            state, stops = self._reap(txn.state)
            with self._cv:
                waiting = {c.run_id for c in self._pending}
            decided = claim(
                state,
                now,
                spec_for=self.spec_for,
                schedule_for=self.schedule_for,
                engine=self.engine_id,
                host=self.host,
                horizon=horizon,
                waiting=waiting,
                max_concurrent=self.config.max_concurrent,
            )
            state = decided.state
            if state is not txn.state:
                txn.state = state
        claims = []
        for c in decided.runs:
            claims.append(self._claim(c.job, c.run_id, c.spec, c.trigger, c.scheduled_for, now))
            claims[-1].after = c.after
            for old in c.after:
                self._replaced[old] = c.run_id
        if claims:
            fault("after-claim")
        stop_leftovers(stops)
        if self._redeliver:
            self._recover_deliveries()
        elif self.mode == "daemon" and time.monotonic() - self._adopted_at > 60:
            # Entries of a `run NAME` or `tick` that died since (cheap: one listdir).
            self._adopted_at = time.monotonic()
            self.outbox.adopt(self.store.engine_alive)
        if defer_records and decided.records:
            with self._cv:
                self._unrun.extend(decided.records)
                start = not self._unrun_busy
                self._unrun_busy = True
            if start:
                self._pool.submit(self._drain_unrun, "record-unrun")
        else:
            self._write_unrun(decided.records)
        for run_id in decided.cancel:
            self._cancel(run_id, state)
        return claims, state

    def _write_unrun(self, records: Any) -> None:
        records = list(records)
        if not records:
            return
        for rec in records:
            self._log_unrun(rec)
        lines = [rec.encode() for rec in records]
        # In shared transactions (one fsync for all of them), each failing on its own.
        errors = self.writer.append_many(tuple((rec.job, line) for rec, line in zip(records, lines, strict=True)))
        for rec, line, e in zip(records, lines, errors, strict=True):
            if e is None:
                self.observer.recorded(rec.job, line)
            elif isinstance(e, (OSError, CronfileError)):
                # The claims are persisted: they must still be dispatched.
                self.log(rec.job, f"could not record a {rec.status} occurrence: {why(e)}", event="state.write_failed", level="error")
            else:
                raise e

    def _drain_unrun(self) -> None:
        """The deferred records of missed and skipped occurrences (claim_due), in order."""
        while True:
            with self._cv:
                batch, self._unrun = self._unrun, []
                if not batch:
                    self._unrun_busy = False
                    self._cv.notify_all()
                    return
            try:
                self._write_unrun(batch)
            except Exception as e:  # noqa: BLE001 - the next ones must still be written
                self.log("", f"could not record {len(batch)} missed or skipped occurrences: {why(e)}", event="state.write_failed", level="error")

    def _log_unrun(self, rec: RunRecord) -> None:
        """The log line of an occurrence that was missed or skipped."""
        if rec.status == Status.missed:
            n = rec.missed_count or 0
            self.log(rec.job, f"missed {n} run{'s' if n != 1 else ''} ({iso(rec.missed_first)} .. {iso(rec.scheduled_for)}): {rec.message}", event="run.missed", level="warning", scheduled_for=iso(rec.scheduled_for), status=str(rec.status), missed_count=n)
        else:
            self.log(rec.job, f"skipped {iso(rec.scheduled_for)}: {rec.message}", event="run.skipped", level="warning", scheduled_for=iso(rec.scheduled_for), status=str(rec.status))

    def _claim(self, job: str, run_id: str, spec: JobSpec, trigger: Trigger, scheduled_for: datetime | None, now: datetime) -> Claim:
        self._seq += 1
        return Claim(scheduled_for or now, self._seq, job, run_id, spec, trigger, scheduled_for, now)

    def _cancel(self, run_id: str, state: State) -> None:
        """concurrency: replace -- stop a run (ours by its event, another engine's by signal)."""
        ev = self._cancels.get(run_id)
        if ev is not None:
            ev.set()
            self._poke_volleys()
            return
        with self._cv:
            if any(c.run_id == run_id for c in self._pending):
                # Still waiting for a slot: it starts cancelled, and spawns nothing.
                ev = self._cancels[run_id] = CancelEvent()
                ev.set()
                return
        from .executors.contain import recover_run
        from .executors.process import kill_group

        def stop(pgid: int | None, engine: str) -> None:
            if pgid is not None:
                kill_group(pgid, 10.0)
            recover_run(run_id, engine=engine)  # its cgroup, if runs get one here

        for js in state.jobs.values():
            for r in js.running:
                if r.run_id == run_id:
                    pgid = r.pid if r.pid and group_runs(r.pid, run_id) else None
                    t = threading.Thread(target=stop, args=(pgid, r.engine), daemon=True)
                    self._killers[run_id] = t
                    t.start()

    def _poke_volleys(self) -> None:
        """Cancel events were set: runs waiting for their instant look at theirs."""
        with self._cv:
            volleys = list(self._volleys)
        for v in volleys:
            v.poke()

    # -- dispatching -------------------------------------------------------------------

    def dispatch(self, claims: list[Claim]) -> None:
        """Start the claimed runs (as slots allow: max_concurrent). Runs claimed ahead of
        their instant go together in one Volley per instant."""
        volleys: dict[datetime, Volley] = {}
        for c in claims:
            if c.ahead and c.volley is None and c.scheduled_for is not None:
                v = volleys.get(c.scheduled_for)
                if v is None:
                    v = volleys[c.scheduled_for] = Volley(
                        c.scheduled_for,
                        clock=self.clock,
                        record_pids=self._record_volley_pids,
                        txn_seconds=lambda: self.writer.seconds,
                        done=self._volley_done,
                        park=self._park,
                    )
                c.volley = v
        if volleys:
            from .executors.contain import make_ahead

            make_ahead((c.run_id, self.engine_id) for c in claims if c.volley is not None)
        with self._cv:
            self._volleys.update(volleys.values())
            for c in claims:
                c.queued_at = time.monotonic()
                heapq.heappush(self._pending, c)
            self._start_pending()
        for v in volleys.values():
            v.start()

    def _start_pending(self) -> None:
        # caller holds self._cv. max_concurrent across jobs; more wait in due order.
        while self._pending and len(self._active) < max(1, self.config.max_concurrent):
            claim = heapq.heappop(self._pending)
            claim.slot_wait = time.monotonic() - claim.queued_at
            cancel = self._cancels.get(claim.run_id) or CancelEvent()
            self._cancels[claim.run_id] = cancel
            if claim.volley is not None:
                claim.volley.enlist()
            if self._stepper is not None:
                steps = self.execute_steps(claim, cancel)
                self._active[claim.run_id] = self._stepper.start(steps, partial(self._run_ended, claim), f"run-{claim.job}")
            else:
                self._active[claim.run_id] = self._pool.submit(partial(self._run_thread, claim, cancel), f"run-{claim.job}")

    def _run_thread(self, claim: Claim, cancel: threading.Event, stream: IO[bytes] | None = None) -> str:
        try:
            return self.execute(claim, cancel, stream=stream)
        finally:
            self._run_ended(claim)

    def _run_ended(self, claim: Claim, *_: object) -> None:
        """A run is over (its thread's end, or its steps' in the daemon): its slot is
        free."""
        if claim.volley is not None:
            from .executors.contain import drop_ahead

            drop_ahead(claim.run_id, self.engine_id)  # (a cgroup made ahead that no run took)
        with self._cv:
            self._active.pop(claim.run_id, None)
            self._cancels.pop(claim.run_id, None)
            self._start_pending()
            self._cv.notify_all()
        if self.mode != "daemon":
            self._wake.set()
        # A daemon's loop is woken by a run's end only when the claim has something to
        # do with it (a queued occurrence: _finish_update); a pass per run ended cost a
        # state transaction and a decision over every job, 200 times a second.

    def wait_idle(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._active or self._pending or self._unrun_busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left if left is not None else 1.0)
        return True

    # -- executing ---------------------------------------------------------------------

    def _budget_used(self, job: str, spec: JobSpec) -> Any:
        """The job's usage over the last 24 hours, if it has a ``budget:``."""
        if not spec.budget:
            return None
        from .usage import usage_since

        return usage_since(merged_history(self.store, job, None), self.clock.now() - timedelta(hours=24))

    def _wait_replaced(self, claim: Claim) -> list[dict[str, Any]]:
        """concurrency: replace -- wait until the runs this one replaces are over, their
        processes gone (bounded: their stop takes at most the kill grace, then SIGKILL)."""
        from .runner import STOP_GRACE

        waited = []
        for rid in claim.after:
            t0 = time.monotonic()
            with self._cv:
                threads: list[Any] = [self._active.get(rid), self._killers.get(rid)]
            for t in threads:
                if t is not None and t is not threading.current_thread() and getattr(t, "worker", None) is not threading.current_thread():
                    t.join(STOP_GRACE + 10.0)
            self._killers.pop(rid, None)
            took = round(time.monotonic() - t0, 3)
            waited.append({"run_id": rid, "waited_s": took})
            self.log(claim.job, f"run {short_id(claim.run_id)} waited {took:.1f}s for run {short_id(rid)} it replaces to stop")
        return waited

    def _record_pid(self, claim: Claim, pid: int, on_error: Callable[[BaseException], None]) -> None:
        pids = {claim.run_id: (claim.job, pid)}
        self.writer.commit_soon(lambda state: state.with_pids(pids), on_error)

    def _record_pids(self, pids: dict[str, tuple[str, int]]) -> None:
        """The process groups of runs in flight (run id -> job, pid), in one shared
        transaction."""
        self.writer.commit(lambda state: state.with_pids(pids))

    def _record_volley_pids(self, pids: dict[str, tuple[str, int]]) -> bool:
        """A volley's pids; False (and a warning) if they could not be written."""
        try:
            self._record_pids(pids)
        except (OSError, CronfileError) as e:
            self.log("", f"could not record the pids of {len(pids)} runs: {why(e)}", event="state.write_failed", level="warning")
            return False
        return True

    def _volley_done(self, volley: Volley) -> None:
        with self._cv:
            self._volleys.discard(volley)

    def execute(self, claim: Claim, cancel: threading.Event, *, stream: IO[bytes] | None = None) -> str:
        """Run one claimed run to its end: spawn, wait, record, deliver. Returns the status."""
        return drive(self.execute_steps(claim, cancel, stream=stream))

    def execute_steps(self, claim: Claim, cancel: threading.Event, *, stream: IO[bytes] | None = None) -> Steps:
        """``execute`` as steps (cronfile/steps.py): the daemon's Stepper drives it."""
        from .delivery.base import Report
        from .delivery.dispatch import notify_start, pings_start
        from .executors.base import RunContext
        from .runner import execute_steps

        spec = claim.spec
        log_path = self.store.log_file(claim.job, claim.run_id)
        from_job_output = None
        if spec.context.from_job:
            from_job_output = yield Call(partial(last_success_output, self.store, spec.context.from_job))
        budget_used = (yield Call(partial(self._budget_used, claim.job, spec))) if spec.budget else None
        ctx = RunContext(
            spec=spec,
            config=self.config,
            root=self.root,
            run_id=claim.run_id,
            job=claim.job,
            scheduled_for=claim.scheduled_for,
            trigger=claim.trigger,
            log_path=log_path,
            environ=self.environ,
            from_job_output=from_job_output,
            output_limit=self.config.output_limit,
            stream=stream,
            budget_used=budget_used,
            engine=self.engine_id,
        )
        report_base: dict[str, Any] = dict(job=claim.job, run_id=claim.run_id, trigger=claim.trigger, scheduled_for=claim.scheduled_for, log_path=str(log_path), host=self.host, description=spec.description)
        spawned_at: list[datetime] = []

        def on_spawn(pid: int) -> None:
            first = not spawned_at
            # (A parked run started when its volley let it go, a moment before this.)
            now = (first and claim.volley is not None and claim.volley.release_time(claim)) or self.clock.now()
            spawned_at.append(now)
            fault("after-spawn")

            def unrecorded(e: BaseException) -> None:
                # The run goes on; without its pid, a recovery finds its process group by
                # the run id in its environment. Raising here left the process unwatched.
                self.log(claim.job, f"run {short_id(claim.run_id)}: could not record its pid: {why(e)}", event="state.write_failed", level="warning", run_id=claim.run_id)

            if not (first and claim.volley is not None and claim.volley.spawned(claim, pid)):
                # Without waiting, and in a transaction that is not its own: its end
                # (most runs end within writer.SOON) or a flush SOON seconds later writes
                # it. Until then, as before it was written, a recovery finds the run's
                # process group by its run id (cgroup name, environment).
                self._record_pid(claim, pid, unrecorded)
            if first:
                self.observer.run_started(claim.job, claim.run_id, claim.trigger, claim.scheduled_for, now)
                fields: dict[str, Any] = {"run_id": claim.run_id, "trigger": claim.trigger, "scheduled_for": iso(claim.scheduled_for), "status": "running"}
                if claim.scheduled_for is not None and claim.trigger in (Trigger.schedule, Trigger.catchup):
                    late = (now - claim.scheduled_for).total_seconds() * 1000
                    self.log(claim.job, f"run {short_id(claim.run_id)} started ({claim.trigger}, {late:.0f} ms late)", event="run.started", lateness_ms=round(late, 1), **fields)
                else:
                    self.log(claim.job, f"run {short_id(claim.run_id)} started ({claim.trigger})", event="run.started", **fields)

        hc = [t for t in spec.deliver if pings_start(t.kind)]
        start_ping: threading.Thread | None = None
        volley = claim.volley
        if hc:
            # Beside the run, not before it (a slow endpoint must not delay the start);
            # joined before the finish ping so /start never arrives after it. A run
            # claimed ahead pings once its instant has come.
            started = Report(status="running", started_at=claim.scheduled_for if claim.ahead else claim.claimed_at, finished_at=None, exit_code=None, output="", output_truncated=False, **report_base)

            def ping() -> None:
                if volley is not None:
                    volley.over.wait()
                notify_start(hc, started, self.config, self.environ)

            start_ping = threading.Thread(target=ping, daemon=True)
            start_ping.start()
        start = volley.member(claim) if volley is not None else None
        waited = (yield Call(partial(self._wait_replaced, claim))) if claim.after else []
        try:
            outcome = yield from execute_steps(ctx, now=self.clock.now, on_spawn=on_spawn, cancel=cancel, start=start)
        finally:
            if volley is not None:
                volley.ended(claim)
        status = Status(outcome.status)
        if status == Status.cancelled and self._stop.is_set():
            status = Status.interrupted
        late = None
        if spawned_at and claim.scheduled_for is not None:
            late = round((spawned_at[0] - claim.scheduled_for).total_seconds() * 1000, 1)
        run = RunRecord.finished(
            job=claim.job,
            run_id=claim.run_id,
            trigger=Trigger(claim.trigger),
            scheduled_for=claim.scheduled_for,
            claimed_at=claim.claimed_at,
            outcome=outcome,
            status=status,
            log_path=self.store.keep_log(claim.job, claim.run_id, empty=outcome.has_log),
            host=self.host,
            engine=self.engine_id,
            lateness_ms=late,
        )
        if waited:
            run = replace(run, replaced=tuple(waited))
        if claim.slot_wait >= 0.5 and (claim.volley is None or claim.slot_wait > 2.0):
            note = f"waited {claim.slot_wait:.1f}s for a free slot (max_concurrent: {self.config.max_concurrent})"
            run = replace(run, slot_wait_s=round(claim.slot_wait, 3), message=f"{note}; {run.message}" if run.message else note)
        replaced_by = self._replaced.pop(claim.run_id, None)
        if replaced_by is not None and status == Status.cancelled:
            run = replace(run, replaced_by=replaced_by, message=f"{run.message}; replaced by run {replaced_by} (concurrency: replace)")
        record = run.encode()
        ends = self._finish_update(claim, outcome, status)
        # Where the store commits history with the state (SQLite) and nothing is to be
        # queued between them, the record and the run's end are one transaction, shared
        # with the other runs ending meanwhile (StateWriter.commit). Otherwise the record
        # first: a recovery reads it before the state.
        together = not spec.deliver and bool(getattr(self.store, "history_in_txn", False))
        pruned: list[BaseException | None] = []
        prune = (claim.job, self.config.history_limit)
        if together:
            # Handed to the writer with the other runs ending meanwhile (a Stepper's
            # batch: no thread waits for it); retried as _persist says if it failed.
            item = Update(ends, ((claim.job, record),), prune)
            yield _EndCommit(self.writer, item)
            recorded = item.error is None
            if recorded:
                pruned.append(item.prune_error)
            else:
                what = "its record and its end in the state"
                recorded = yield Call(partial(self._persist, claim, what, lambda: pruned.append(self.writer.commit(ends, history=((claim.job, record),), prune=prune))))
        else:
            recorded = yield Call(partial(self._persist, claim, "its record", lambda: self.writer.commit(history=((claim.job, record),))))
        fault("after-history")
        if recorded:
            self.observer.recorded(claim.job, record)
        # Without its record the run keeps its `running` entry, so that the next recovery
        # records it `interrupted` instead of it vanishing.
        dur = (outcome.finished_at - outcome.started_at).total_seconds()
        extra = f" (exit {outcome.exit_code})" if outcome.exit_code not in (None, 0) else ""
        if outcome.message and status != Status.success:
            extra += f": {outcome.message}"
        self.log(
            claim.job,
            f"run {short_id(claim.run_id)} {status} in {dur:.1f}s{extra}",
            event="run.finished",
            level="info" if status in (Status.success, Status.silent) else "warning",
            run_id=claim.run_id,
            scheduled_for=iso(claim.scheduled_for),
            lateness_ms=run.lateness_ms,
            status=str(status),
            duration_ms=round(dur * 1000, 1),
            exit_code=outcome.exit_code,
        )
        if status.is_failure:
            self._failed += 1
        # Delivery happens after the run is recorded, and never changes its status. The
        # run only puts its deliveries in the outbox (persisted) and frees its slot; the
        # outbox's workers send them (cronfile/outbox.py).
        if spec.deliver and recorded:
            if start_ping is not None:
                self._start_pings[claim.run_id] = start_ping
            yield Call(partial(self._persist, claim, "its deliveries to the outbox", lambda: self._queue_deliveries(claim.job, spec, record, skip_stdout=stream is not None)))
        if recorded and not together:
            # Its end in state.json only now: a crash before it leaves the run to the
            # recovery, which finds the record and queues the deliveries if they are not
            # in the outbox yet (at least once).
            yield Call(partial(self._persist, claim, "its end in state.json", lambda: pruned.append(self.writer.commit(ends, prune=prune))))
        e = pruned[-1] if pruned else None
        if isinstance(e, (OSError, CronfileError)):
            self.log(claim.job, f"could not prune history: {e}")
        elif e is not None:
            raise e
        return status

    def _queue_deliveries(self, job: str, spec: JobSpec, record: dict[str, Any], *, skip_stdout: bool = False) -> None:
        """A recorded run's deliveries into the outbox; then the targets its ``on:``
        filters out are recorded (after: a recovery takes any deliveries line as proof
        that the outbox got the rest)."""
        from .delivery.dispatch import pings_start
        from .outbox import entries_for

        entries, skipped = entries_for(record, spec, self.config, engine_id=self.engine_id, now=iso(self.clock.now()) or "", skip_stdout=skip_stdout, host=self.host)
        if not any(pings_start(e.target.get("kind", "")) for e in entries):
            self._start_pings.pop(record["run_id"], None)  # no finish ping will wait for it
        self.outbox.put(entries)
        fault("after-outbox")
        if skipped:
            self.store.append_history(job, delivery_line(record["run_id"], [r.to_json() for r in skipped]))

    def _send_delivery(self, entry: Any, stop: threading.Event) -> Any:
        from .delivery.dispatch import pings_start
        from .outbox import send

        if pings_start(entry.target.get("kind", "")):
            ping = self._start_pings.pop(entry.run_id, None)
            if ping is not None:
                ping.join(timeout=40)  # its /start must not arrive after the finish ping
        fault("during-delivery")
        return send(entry, self.config, self.environ, stop, output_limit=self.config.output_limit, store=self.store)

    def _record_delivery(self, entry: Any, result: Any) -> None:
        result = replace(result, key=entry.key)
        self.store.append_history(entry.job, delivery_line(entry.run_id, [result.to_json()]))
        self.observer.delivered(entry.job, entry.run_id, [result])
        if not result.ok:
            what = result.skipped if result.skipped else f"failed after {result.attempts} tries: {result.error}"
            self.log(entry.job, f"run {short_id(entry.run_id)} delivery to {result.target} {what}", event="delivery.failed", level="warning", run_id=entry.run_id, target=result.target)

    def _persist(self, claim: Claim, what: str, write: Callable[[], None]) -> bool:
        """A write a finished run depends on: its history line, its end in state.json.
        On a full disk, an unreadable state.json or a stuck state.lock, say so once and,
        in a daemon, retry with backoff until it works or the daemon stops; the next
        start then records the run from what is on disk (history first). Raising here
        killed the run's thread with a traceback and left the run `running` for as long
        as the daemon lived, so a `forbid` job skipped every run after (tests/faults)."""
        delay, said = 1.0, False
        while True:
            try:
                write()
                if said:
                    self.log(claim.job, f"run {short_id(claim.run_id)}: {what} written")
                return True
            except (OSError, CronfileError) as e:
                if not said:
                    again = "; retrying" if self.mode == "daemon" else ""
                    self.log(claim.job, f"run {short_id(claim.run_id)}: could not write {what}: {why(e)}{again}", event="state.write_failed", level="error", run_id=claim.run_id)
                    said = True
            if self.mode != "daemon" or self._stop.wait(delay):
                return False
            delay = min(delay * 2, 10.0)

    def _finish_update(self, claim: Claim, outcome: Any, status: str) -> Callable[[State], State]:
        """The run's end in the state (a pure update, for a shared transaction)."""
        last = LastRun(claim.run_id, status, claim.trigger, claim.scheduled_for, outcome.started_at, outcome.finished_at)

        def update(state: State) -> State:
            js = state.jobs.get(claim.job)
            if js is not None and any(r.run_id == claim.run_id for r in js.running):
                js = js.with_(running=tuple(r for r in js.running if r.run_id != claim.run_id), last_run=last)
                if js.queued is not None:
                    self._wake.set()  # concurrency: queue -- its buffered occurrence runs now
                return state.with_job(claim.job, js)
            if any(r.run_id == claim.run_id for r in state.orphans):
                return state.with_(orphans=tuple(r for r in state.orphans if r.run_id != claim.run_id))
            if js is not None and claim.trigger == Trigger.manual:
                return state.with_job(claim.job, js.with_(last_run=last))
            return state

        return update

    # -- modes -------------------------------------------------------------------------

    def run_now(self, spec: JobSpec, *, stream: IO[bytes] | None) -> str:
        """`cronfile run NAME`: claim a manual run, execute it in the foreground.

        SIGTERM or SIGINT stops the run's process group and records it `interrupted`
        (and delivers that): in a Kubernetes pod this process is PID 1, which the kernel
        would otherwise not even let SIGTERM stop."""
        cancel = threading.Event()

        got: list[str] = []

        def on_signal(name: str) -> None:
            # From cronfile/signals.py's thread, whichever thread the signal came to
            # (this one waits for the run's process with no timeout).
            got.append(name)
            self._stop.set()
            cancel.set()

        try:
            with SignalWatch(on_signal):
                return self._run_now(spec, stream=stream, cancel=cancel)
        finally:
            if got:
                self.log(spec.name, f"received {got[0]}: stopped the run")

    def _run_now(self, spec: JobSpec, *, stream: IO[bytes] | None, cancel: threading.Event) -> str:
        now = self.clock.now()
        run_id = new_run_id(now)
        with self.writer.txn() as txn:
            js = txn.state.jobs.get(spec.name)
            if js is not None:
                if js.running:
                    self.log(spec.name, f"note: {len(js.running)} run(s) of {spec.name} already in flight")
                running = js.running + (Running(run_id, None, now, Trigger.manual, self.engine_id),)
                txn.state = txn.state.with_job(spec.name, js.with_(running=running))
        claim = self._claim(spec.name, run_id, spec, Trigger.manual, None, now)
        status = self.execute(claim, cancel, stream=stream)
        # Its deliveries, before the command returns; a SIGTERM cuts them short (they
        # stay in the outbox for the daemon or the next tick).
        threading.Thread(target=lambda: (cancel.wait(), self.outbox.stop()), daemon=True).start()
        self.outbox.drain()
        return status

    def tick(self) -> int:
        """One pass: apply (if the files are valid), fire what is due, wait, exit."""
        if self.project.ok:
            self.apply(self.project, "tick")
        self._fire_reboot(only_after_boot=True)
        claims, _ = self.claim_due(self.clock.now())
        self.dispatch(claims)
        self.wait_idle()
        self.outbox.drain()  # bounded: every delivery has its tries and a timeout each
        return self._failed

    def _fire_reboot(self, *, only_after_boot: bool) -> None:
        """@reboot: once each time the daemon starts. `tick` fires it once per system boot
        (it runs every minute; a per-tick @reboot would be a per-minute job)."""
        from .due import claim_reboot

        boot = boot_time() if only_after_boot else None
        now = self.clock.now()
        with self.writer.txn() as txn:
            decided = claim_reboot(txn.state, now, spec_for=self.spec_for, schedule_for=self._reboot_schedule_for, engine=self.engine_id, boot=boot, only_after_boot=only_after_boot)
            if decided.runs:
                txn.state = decided.state
        self.dispatch([self._claim(c.job, c.run_id, c.spec, c.trigger, c.scheduled_for, now) for c in decided.runs])

    def serve(self) -> None:
        """The daemon loop: sleep until the earliest next_run (less the lead, to claim
        ahead of it) or an event; no polling."""
        from .due import next_wake
        from .watch import Watcher

        got: list[str] = []

        def on_signal(name: str) -> None:
            # From cronfile/signals.py's thread, whichever thread the signal came to: a
            # Python handler runs only in the main thread, which may be asleep for a
            # minute, and one that logged could hang inside the log's own lock. The loop
            # wakes and says so (below).
            got.append(name)
            self._stop.set()
            self._wake.set()

        # Import what a run needs now, so the first run is not late by an import.
        from . import runner  # noqa: F401
        from .delivery import base, dispatch  # noqa: F401

        dispatch.preload(self.project.specs)  # (only the kinds the jobs deliver to: httpx is 15 MB)
        from .executors import agent, command, process, shell  # noqa: F401
        watcher = Watcher(self.root, self.store.watch_file(), on_change=self._on_change)
        signals = SignalWatch(on_signal).start()  # (stopped in the finally below)
        try:
            self.apply(self.project, "daemon")
            watcher.start()
            self._watcher = watcher
            if files_signature(self.root) != self.project.signature or racy_changed(self.project):
                watcher.forget_paths()  # read them all: what changed came before the watch
                self._reload.set()  # changed while we were starting: the watch came too late
            # Printed once applied and watching: from here on every edit is seen.
            self.log("", f"cronfile daemon {os.getpid()} on {self.root.resolve()} (state {self.store.location}); engine {self.engine_id[:6]}; {len(self.project.specs)} jobs", event="daemon.started")
            self.observer.ready(self.store.read(), self.clock.now())
            self._fire_reboot(only_after_boot=False)
            last_wall = self.clock.now()
            last_mono = time.monotonic()
            backoff = 0.0
            planned: tuple[datetime, float] | None = None  # the instant (and lead) woken early for
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                # Wall and monotonic readings taken together and kept as a pair: a jump
                # is wall time minus monotonic time between two passes, however long a
                # pass took, so a jump during a pass is logged by the next one (reading
                # the clock again before sleeping lost it: tests/faults/test_clock.py).
                now = self.clock.now()
                now_mono = time.monotonic()
                jump = (now - last_wall).total_seconds() - (now_mono - last_mono)
                if jump > 5:
                    self.log("", f"the wall clock jumped {jump:+.0f}s (forward): occurrences in between are missed, not run in a burst (catchup: once runs the latest)", event="clock.jump", level="warning")
                elif jump < -5:
                    self.log("", f"the wall clock jumped {jump:+.0f}s (back): runs already done are not repeated; nothing fires before the next runs already planned", event="clock.jump", level="warning")
                # Woken `lead` before an instant: claim the runs due at it now.
                horizon = None
                if planned is not None and now < planned[0] and (planned[0] - now).total_seconds() <= planned[1]:
                    horizon = planned[0]
                planned = None
                try:
                    claims, state = self.claim_due(now, horizon, defer_records=True)
                except (OSError, LockedError, StateWriteError) as e:
                    # Nothing was claimed (the claim is one atomic write), so nothing
                    # fires; say why and try again soon. A full disk used to end the
                    # daemon with an internal error (found by tests/faults).
                    backoff = min(backoff * 2, 30.0) if backoff else 2.0
                    self.log("", f"cannot claim runs: {why(e)}; nothing fired; trying again in {backoff:g}s", event="claim.failed", level="error")
                    self.observer.pass_failed(why(e), now, now + timedelta(seconds=backoff))
                    self._wake.clear()
                    last_wall, last_mono = now, now_mono
                    self.clock.sleep_until(now + timedelta(seconds=backoff), self._wake)
                    continue
                if backoff:
                    self.log("", "claiming works again", event="claim.recovered")
                    backoff = 0.0
                if horizon is not None and (self._claimed_to is None or horizon > self._claimed_to):
                    self._claimed_to = horizon
                    self._again = (horizon, 0)
                self.dispatch(claims)
                wake = next_wake(state.jobs.values(), now)
                if wake is None or (wake - now).total_seconds() > 3600:
                    # Nothing soon: still wake hourly (cheap) to notice dead engines' runs.
                    wake = now + timedelta(hours=1)
                elif wake > now and (self._claimed_to is None or wake > self._claimed_to):
                    # Wake ahead of the instant. An instant already claimed ahead (what is
                    # left at it waits for a run in flight) is decided at the instant.
                    lead = self._lead(state, wake)
                    planned = (wake, lead)
                    wake -= timedelta(seconds=lead)
                elif wake > now and wake == self._claimed_to and self._again[0] == wake and self._again[1] < AGAIN_MAX:
                    # Claimed ahead already, and what is left waits for runs in flight
                    # (concurrency other than allow is decided with no run in flight, or
                    # at the instant). Most of those runs end before the instant: a few
                    # more passes ahead, AGAIN_STEP apart, claim and prepare the ones
                    # whose run ended, instead of spawning them all unprepared at it
                    # (issue 17 round 4: at 200 jobs a second, most of the p99). The
                    # same decision as the first pass's, only later.
                    left = (wake - now).total_seconds()
                    if left > LEAD_BASE + 2 * self.writer.seconds + AGAIN_GAP:
                        self._again = (wake, self._again[1] + 1)
                        planned = (wake, left)
                        wake = now + timedelta(seconds=min(AGAIN_STEP, left - LEAD_BASE - 2 * self.writer.seconds))
                if self.store.watch_file() is None:
                    # A shared store (docs/design.md 14): no file tells of another host's
                    # apply or pause, or of a peer that died: look again every few seconds.
                    wake = min(wake, now + timedelta(seconds=SHARED_POLL_S))
                last_wall, last_mono = now, now_mono
                self.observer.pass_done(state, now, wake)
                self._wake.clear()
                if self._reload.is_set() or self._stop.is_set():
                    continue
                self.clock.sleep_until(wake, self._wake)
        finally:
            if got:
                self.log("", f"received {got[0]}: no new runs; waiting up to {self.config.shutdown_grace:g}s for {len(self._active)} in flight", event="daemon.stopping")
            self.observer.stopping()
            watcher.stop()
            self._shutdown()
            signals.stop()

    def _lead(self, state: State, instant: datetime) -> float:
        """Seconds before ``instant`` to claim and prepare the runs due at it."""
        from .due import due_by

        n = min(due_by(state.jobs.values(), instant), max(1, self.config.max_concurrent))
        return min(LEAD_BASE + LEAD_PER_RUN * n + 2 * self.writer.seconds, LEAD_MAX)

    def _on_change(self, kinds: set[str]) -> None:
        if "files" in kinds:
            self._reload.set()
        elif kinds == {"state"}:
            # Our own state writes (every run's end) are no news to the loop: only
            # another writer's are (writer.StateWriter.on_foreign also says so).
            # Read between two of our transactions (the writer's lock): one in progress
            # is between its COMMIT and the store's memo of it, and a read there decoded
            # the rows it wrote for nothing (5% of the engine's CPU at 200 runs a second,
            # issue 17 round 4). Bounded: never wait long on a writer.
            locked = self.writer.lock.acquire(timeout=1.0)
            try:
                if self.writer.ours(self.store.read()):
                    return
            except (OSError, CronfileError):
                pass
            finally:
                if locked:
                    self.writer.lock.release()
        self._wake.set()

    def _shutdown(self) -> None:
        """Wait up to shutdown_grace for runs in flight; stop the rest (interrupted)."""
        # Also when the loop ended by an error (state.json became unreadable): runs that
        # cannot record their end stop retrying (see _persist) instead of holding the
        # exit for the whole grace period.
        self._stop.set()
        with self._cv:
            pending = list(self._pending)
            self._pending.clear()
        if pending:
            from .executors.contain import drop_ahead

            for c in pending:
                drop_ahead(c.run_id, self.engine_id)
        if pending:
            now = self.clock.now()
            with self.writer.txn() as txn:
                state = txn.state
                for c in pending:
                    js = state.jobs.get(c.job)
                    if js is not None:
                        state = state.with_job(c.job, js.with_(running=tuple(r for r in js.running if r.run_id != c.run_id)))
                txn.state = state
            for c in pending:
                rec = RunRecord.skipped(job=c.job, when=c.scheduled_for or now, message="the daemon stopped before a slot was free", host=self.host, run_id=c.run_id, status=Status.interrupted)
                self.store.append_history(c.job, rec.encode())
        t0 = time.monotonic()
        if not self.wait_idle(self.config.shutdown_grace):
            with self._cv:
                for ev in self._cancels.values():
                    ev.set()
            self._poke_volleys()
            self.wait_idle(15.0)
        # Deliveries get what is left of the grace (at least 2 s); whatever a target
        # does, what is not sent by then stays in the outbox for the next start.
        deadline = max(t0 + self.config.shutdown_grace, time.monotonic() + 2.0)
        if not self.outbox.drain(deadline):
            self.log("", "deliveries not made yet stay in the outbox; they go out after the restart", event="delivery.deferred", level="warning")
        self.outbox.stop()
        self.log("", "stopped", event="daemon.stopped")
