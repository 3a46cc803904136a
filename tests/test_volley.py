"""A volley's thread spawns the staged runs of its instant (cronfile/volley.py): at the
instant and never before, one after another in the engine's due order, their pids
written together; a run's own thread gets its process (or why it could not start) from
its ``spawn()``; a run cancelled before the instant is never spawned. Real processes,
the real clock, the containment of this host."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine_helpers import wait_for

from cronfile.clock import SystemClock
from cronfile.executors.base import Prepared
from cronfile.executors.contain import containment
from cronfile.executors.process import Staged
from cronfile.secrets import Masker
from cronfile.volley import Volley


@dataclass
class Run:
    run_id: str
    job: str


class Harness:
    """A volley ``lead`` seconds ahead, and what it was asked to record."""

    def __init__(self, lead: float = 0.5) -> None:
        self.clock = SystemClock()
        self.at = self.clock.now() + timedelta(seconds=lead)
        self.recorded: list[dict[str, tuple[str, int]]] = []
        self.done = threading.Event()
        self.volley = Volley(
            self.at,
            clock=self.clock,
            record_pids=lambda pids: self.recorded.append(dict(pids)) or True,
            txn_seconds=lambda: 0.005,
            done=lambda v: self.done.set(),
        )


def stamp_job(tmp_path: Path, name: str) -> Prepared:
    """A /bin/sh job that writes when it started (epoch seconds) to a file of its own."""
    script = f'date +%s.%N > "{tmp_path}/{name}.started"'
    return Prepared(["/bin/sh", "-c", script], tmp_path, {"PATH": "/usr/bin:/bin"}, None, Masker())


def started(tmp_path: Path, name: str) -> float | None:
    path = tmp_path / f"{name}.started"
    return float(path.read_text()) if path.exists() else None


def member_thread(h: Harness, run: Run, staged: Staged, cancel: threading.Event, out: dict[str, Any]) -> threading.Thread:
    """What a run's thread does with its volley (runner._attempts): wait with its staged
    process, then take the process (spawned by the volley, or by itself if it came late)
    and wait for its end."""

    def go() -> None:
        if not h.volley.member(run).wait(cancel, staged):
            staged.discard()
            out[run.run_id] = "cancelled"
            return
        try:
            proc = staged.spawn()
        except OSError as e:
            out[run.run_id] = e
            return
        out[run.run_id] = (proc.pid, proc.wait(10))

    return threading.Thread(target=go, daemon=True)


def test_the_staged_runs_of_an_instant_are_spawned_at_it_in_due_order_and_their_pids_written_at_once(tmp_path):
    h = Harness()
    names = [f"job{i}" for i in range(6)]
    runs = [Run(f"run-{n}", n) for n in names]
    boxes = [containment().box(r.run_id) for r in runs]
    staged = [Staged(stamp_job(tmp_path, n), io.BytesIO(), output_limit=1 << 20, box=b) for n, b in zip(names, boxes, strict=True)]
    for r in runs:
        h.volley.enlist(r.run_id)  # the engine's due order
    out: dict[str, Any] = {}
    # The runs' threads come in the other order: arrival does not decide.
    threads = [member_thread(h, r, s, threading.Event(), out) for r, s in zip(runs, staged, strict=True)]
    h.volley.start()
    for t in reversed(threads):
        t.start()
    for t in threads:
        t.join(20)
    try:
        assert all(isinstance(out[r.run_id], tuple) and out[r.run_id][1] == 0 for r in runs), out
        began = [s.began for s in staged]
        assert all(b is not None and b >= h.at for b in began)
        assert began == sorted(began)  # in the order enlisted
        for n, s in zip(names, staged, strict=True):
            # Nothing of a job runs before the instant, nor before its recorded start.
            own = started(tmp_path, n)
            assert own is not None
            assert own >= h.at.timestamp()
            assert own >= s.began.timestamp()
            assert s.spawned_at is not None and s.spawned_at >= s.began
        # Every pid in one transaction, the very processes the runs' threads waited for.
        wait_for(h.done.is_set, what="the volley to be over")
        assert len(h.recorded) == 1
        assert h.recorded[0] == {r.run_id: (r.job, out[r.run_id][0]) for r in runs}
        assert all(h.volley.spawned_at(r) == s.spawned_at for r, s in zip(runs, staged, strict=True))
    finally:
        for b in boxes:
            b.close()


def test_a_spawn_that_fails_at_the_instant_fails_in_the_runs_own_thread_only(tmp_path):
    h = Harness()
    good, bad = Run("run-good", "good"), Run("run-bad", "bad")
    gone = tmp_path / "no-such-folder"
    broken = Prepared(["/bin/sh", "-c", "true"], gone, {"PATH": "/usr/bin:/bin"}, None, Masker())
    stages = {
        good.run_id: Staged(stamp_job(tmp_path, "good"), io.BytesIO(), output_limit=1 << 20),
        bad.run_id: Staged(broken, io.BytesIO(), output_limit=1 << 20),
    }
    out: dict[str, Any] = {}
    for r in (bad, good):
        h.volley.enlist(r.run_id)
    threads = [member_thread(h, r, stages[r.run_id], threading.Event(), out) for r in (bad, good)]
    h.volley.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert isinstance(out[bad.run_id], OSError)
    assert out[good.run_id][1] == 0
    assert started(tmp_path, "good") is not None
    wait_for(h.done.is_set, what="the volley to be over")
    assert [set(p) for p in h.recorded] == [{good.run_id}]
    assert h.volley.spawned_at(bad) is not None  # it was tried, at the instant


def test_a_run_cancelled_before_the_instant_is_never_spawned(tmp_path):
    h = Harness(lead=1.0)
    keep, drop = Run("run-keep", "keep"), Run("run-drop", "drop")
    stages = {r.run_id: Staged(stamp_job(tmp_path, r.job), io.BytesIO(), output_limit=1 << 20) for r in (keep, drop)}
    cancels = {r.run_id: threading.Event() for r in (keep, drop)}
    out: dict[str, Any] = {}
    for r in (keep, drop):
        h.volley.enlist(r.run_id)
    threads = [member_thread(h, r, stages[r.run_id], cancels[r.run_id], out) for r in (keep, drop)]
    h.volley.start()
    for t in threads:
        t.start()
    cancels[drop.run_id].set()
    h.volley.poke()
    wait_for(lambda: drop.run_id in out, what="the cancelled run to give up")
    assert datetime.now(h.at.tzinfo) < h.at  # it gave up before the instant
    for t in threads:
        t.join(20)
    assert out[drop.run_id] == "cancelled"
    assert out[keep.run_id][1] == 0
    assert started(tmp_path, "drop") is None
    assert started(tmp_path, "keep") is not None
    assert h.volley.spawned_at(drop) is None
