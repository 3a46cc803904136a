"""The delivery outbox: a run's deliveries, persisted, sent by a few workers beside the runs.

A run that ends writes its record, then one outbox entry per target that wants it
(persisted by the store: ``Store.outbox_put``; the file store writes one file each,
atomically) and frees its slot: a slow or silent target never holds a run slot, and never delays the next run.
Workers (``WORKERS``) send the entries, each attempt with its own timeout; the result
goes into the run's history (a ``deliveries`` line) and only then is the entry removed.

At least once: an engine that dies with entries stored leaves them to the next engine
(daemon or tick), which takes them over (``Store.outbox_adopt``: each entry is taken by
one engine only).
A crash after a send but before its removal sends again, so every request carries a
stable idempotency key, ``<run id>.<n>`` (header ``X-Cronfile-Delivery``; the email's
Message-ID), by which a receiver can drop the second copy. A shutdown waits for the
workers only until its deadline (``shutdown_grace``); what is not sent by then stays
stored and goes out after the restart.

Entries hold no secret: ``${VAR}`` references stay references, expanded at send time,
and the names to mask are listed, not their values.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = ["VERSION", "WORKERS", "Abandoned", "Entry", "Outbox"]

VERSION = 1
WORKERS = 4  # deliveries in flight at once per engine


class Abandoned(BaseException):
    """A send given up because the engine stops (BaseException: no deliverer's
    ``except Exception`` may turn it into a failed result)."""


@dataclass(frozen=True)
class Entry:
    """One delivery of one run to one target."""

    key: str  # <run id>.<n>: the idempotency key
    job: str
    run_id: str
    target: dict[str, Any]  # kind, dest, on, options: as the job file had it
    report: dict[str, Any]  # the Report's fields (times as ISO text), output excepted
    mask_vars: list[str] = field(default_factory=list)  # names of ${VAR}s to mask
    engine: str = ""
    created_at: str = ""

    def encode(self) -> bytes:
        data = {"version": VERSION, **asdict(self)}
        return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"outbox entry version {data.get('version') if isinstance(data, dict) else '?'}; expected {VERSION}")
        data.pop("version")
        return cls(**data)


SendFn = Callable[[Entry, threading.Event], Any]  # a DeliveryResult, or raises Abandoned
RecordFn = Callable[[Entry, Any], None]


class Outbox:
    """An engine's outbox and its workers; the store keeps the entries."""

    def __init__(
        self,
        store: Store,
        engine_id: str,
        *,
        send: SendFn,
        record: RecordFn,
        log: Callable[[str, str], None],
        workers: int = WORKERS,
    ) -> None:
        self.store = store
        self.engine_id = engine_id
        self._send = send
        self._record = record
        self._log = log
        self._workers = max(1, workers)
        self._queue: deque[Entry] = deque()
        self._cv = threading.Condition()
        self._busy = 0
        self._threads: list[threading.Thread] = []
        self._flight: set[str] = set()  # keys being sent
        self.stopping = threading.Event()

    # -- writing ---------------------------------------------------------------------------

    def put(self, entries: list[Entry]) -> None:
        """Persist ``entries`` (durably, before any is sent), then queue them. Raises
        OSError (or StateWriteError) when they cannot be written (the caller retries)."""
        if not entries:
            return
        self.store.outbox_put(self.engine_id, [(e.key, e.encode()) for e in entries])
        self._enqueue(entries)

    def pending_keys(self, run_id: str) -> list[str]:
        """Keys of the stored entries of ``run_id``, whichever engine's."""
        return self.store.outbox_pending(run_id)

    def adopt(self, alive: Callable[[str], bool]) -> int:
        """Take over the entries of engines that are gone (and any of ours not queued):
        the store gives each to one engine only. Returns how many."""
        with self._cv:
            held = {e.key for e in self._queue} | self._flight
        taken = []
        for key, body in self.store.outbox_adopt(self.engine_id, alive):
            if key in held:
                continue
            try:
                entry = Entry.decode(body)
            except (ValueError, TypeError) as e:
                self._log("", f"outbox entry {key}@{self.engine_id} is unreadable ({e}); set aside")
                self.store.outbox_bad(self.engine_id, key, str(e))
                continue
            taken.append(entry)
        self._enqueue(taken)
        return len(taken)

    # -- workers ---------------------------------------------------------------------------

    def _enqueue(self, items: list[Entry]) -> None:
        if not items:
            return
        with self._cv:
            # Put again after a partial failure: not queued twice.
            known = {e.key for e in self._queue} | self._flight
            self._queue.extend(e for e in items if e.key not in known)
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < min(self._workers, len(self._queue) + self._busy):
                t = threading.Thread(target=self._work, name="cronfile-delivery", daemon=True)
                self._threads.append(t)
                t.start()
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self.stopping.is_set():
                    if not self._cv.wait(30.0) and not self._queue:
                        self._threads = [t for t in self._threads if t is not threading.current_thread()]
                        return  # idle: the next put starts a worker again
                if self.stopping.is_set():
                    return
                entry = self._queue.popleft()
                self._busy += 1
                self._flight.add(entry.key)
            try:
                self._deliver(entry)
            finally:
                with self._cv:
                    self._busy -= 1
                    self._flight.discard(entry.key)
                    self._cv.notify_all()

    def _deliver(self, entry: Entry) -> None:
        try:
            result = self._send(entry, self.stopping)
        except Abandoned:
            return  # stays stored: sent after the restart
        while True:
            try:
                self._record(entry, result)
                break
            except (OSError, RuntimeError) as e:
                self._log(entry.job, f"run {entry.run_id}: could not record the delivery to {result.target}: {e}; retrying")
                if self.stopping.wait(2.0):
                    return  # not recorded: sent again after the restart (at least once)
        try:
            self.store.outbox_done(self.engine_id, entry.key)
        except OSError as e:
            # Recorded: a resend after the restart carries the same idempotency key.
            self._log(entry.job, f"run {entry.run_id}: could not remove its sent delivery {entry.key}: {e}")

    def drain(self, deadline: float | None = None) -> bool:
        """Wait until every queued delivery was made (True), or until ``deadline``
        (time.monotonic()); then what is left stays stored."""
        with self._cv:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(min(left, 1.0) if left is not None else 1.0)
        return True

    def stop(self) -> None:
        """No new sends; a send in flight is abandoned at its next wait."""
        self.stopping.set()
        with self._cv:
            self._cv.notify_all()


# -- from a run to entries, and from an entry to a request --------------------------------

_REPORT_FIELDS = (
    "job", "run_id", "status", "trigger", "scheduled_for", "started_at", "finished_at",
    "exit_code", "output_truncated", "log_path", "host", "description", "message",
)


def entries_for(
    record: dict[str, Any],
    spec: Any,
    config: Any,
    *,
    engine_id: str,
    now: str,
    skip_stdout: bool = False,
    host: str = "",
) -> tuple[list[Entry], list[Any]]:
    """The outbox entries of a recorded run (``record``: its history line), one per
    target that wants its status; and the results of the targets its ``on:`` filters
    out (recorded at once: nothing to send)."""
    from .delivery.base import DeliveryResult
    from .delivery.dispatch import streams, target_wants
    from .executors.base import delivery_only_names
    from .secrets import var_names

    report = {k: record.get(k) for k in _REPORT_FIELDS}
    report["description"] = report.get("description") or spec.description
    report["host"] = report.get("host") or host
    report["output_truncated"] = bool(record.get("output_truncated"))
    report["message"] = report.get("message") or ""
    names = sorted(
        var_names(spec.data.get("env") or {})
        | var_names(spec.data.get("deliver") or [])
        | var_names(dict(config.smtp))
        | delivery_only_names(spec, config)
    )
    entries: list[Entry] = []
    skipped: list[Any] = []
    for n, t in enumerate(spec.deliver):
        if skip_stdout and streams(t.kind):
            continue  # `run NAME` streamed the output to the terminal already
        if not target_wants(t, str(record.get("status"))):
            skipped.append(DeliveryResult(t.label(), True, 0, skipped=f"on: [{', '.join(t.on)}]"))
            continue
        target = {"kind": t.kind, "dest": t.dest, "on": list(t.on), "options": dict(t.options)}
        entries.append(
            Entry(f"{record['run_id']}.{n}", record["job"], record["run_id"], target, report, names, engine_id, now)
        )
    return entries, skipped


def send(
    entry: Entry,
    config: Any,
    environ: dict[str, str],
    stop: threading.Event,
    *,
    output_limit: int,
    store: Store,
    **kw: Any,
) -> Any:
    """Make one delivery: rebuild its Report (the output read from the run's log in
    ``store``, masked
    again with every secret the job's ${VAR}s bring in), send it with the idempotency
    key, waits between tries cut short by ``stop`` (then Abandoned)."""
    from datetime import datetime

    from .delivery.base import Report
    from .delivery.dispatch import _crashed, deliverer_for
    from .delivery.kinds import literal_secrets
    from .secrets import Masker
    from .spec import Target

    t = entry.target
    target = Target(t["kind"], t["dest"], tuple(t.get("on") or ("always",)), dict(t.get("options") or {}))
    secrets = [environ[n] for n in entry.mask_vars if n in environ]
    if config.smtp.get("password"):
        secrets.append(str(config.smtp["password"]))
    secrets += literal_secrets(target.kind, target.options)
    masker = Masker(secrets)
    r = entry.report
    output, cut = _read_output(store, r, output_limit)

    def when(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if isinstance(v, str) else None

    report = Report(
        job=r["job"],
        run_id=r["run_id"],
        status=str(r["status"]),
        trigger=str(r.get("trigger") or ""),
        scheduled_for=when(r.get("scheduled_for")),
        started_at=when(r.get("started_at")),
        finished_at=when(r.get("finished_at")),
        exit_code=r.get("exit_code"),
        output=masker.mask(output),
        output_truncated=bool(r.get("output_truncated")) or cut,
        log_path=str(r.get("log_path") or ""),
        host=str(r.get("host") or ""),
        description=masker.mask(str(r.get("description") or "")),
        message=masker.mask(str(r.get("message") or "")),
        delivery_key=entry.key,
    )

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Abandoned()

    if stop.is_set():
        raise Abandoned()
    try:
        return deliverer_for(target, config, environ, sleep=sleep, **kw).deliver(report)
    except Exception as exc:  # a deliverer's bug must not stop the worker
        return _crashed(target, environ, exc)


def _read_output(store: Store, report: dict[str, Any], limit: int) -> tuple[str, bool]:
    if not report.get("log_path"):
        return "", False
    try:
        data = store.read_log(str(report["job"]), str(report["run_id"]), limit=limit + 1)
    except (OSError, ValueError):
        return "", False
    if data is None:
        return "", False
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit
