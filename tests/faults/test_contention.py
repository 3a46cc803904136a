"""Contention: a daemon, several `cronfile tick` loops, a `cronfile run NAME` loop and an
editor running `cronfile apply`, all at once on one state dir, while a killer SIGKILLs
ticks and manual runs at random moments (some ticks also die by injected faults in the
middle of a state write, holding state.lock). Then the daemon itself is SIGKILLed.

Judged afterwards: no scheduled instant ran twice (marks and records), no update lost
(the last applied edit is what the state holds; every claim counted in run_count has
its record; every manual run that reported its status has its record), no deadlock
(every command finished within its timeout, the daemon kept firing), and every lock was
released by its SIGKILLed holder (state.lock, daemon.lock and every engine lock can be
taken at once afterwards)."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from .harness import (
    FINAL,
    MARK,
    DaemonProc,
    child_env,
    cli,
    duplicates,
    figure,
    make_repo,
    read_marks,
    read_records,
    read_state,
    running_ids,
    wait_for,
    write_file,
)

pytestmark = pytest.mark.slow



def edited(marks: Path, version: int) -> str:
    # The schedule flips with each version: every apply of a new version recomputes
    # next_run from that apply's own `now`, read before it waited for state.lock.
    step = 2 if version % 2 else 3
    return f'description: "version {version}"\nschedule: "*/{step} * * * * *"\nshell: {MARK.format(marks=marks / "edited")}\n'


def jobs(marks: Path) -> dict[str, str]:
    return {
        "every": f'schedule: "* * * * * *"\nshell: {MARK.format(marks=marks / "every")}\n',
        "forbid": f'schedule: "*/2 * * * * *"\nshell: {MARK.format(marks=marks / "forbid")}; sleep 1.5\n',
        "manual": f'schedule: "@yearly"\nshell: {MARK.format(marks=marks / "manual")}\n',
        "edited": edited(marks, 0),
    }


def flap(marks: Path) -> str:
    return f'schedule: "* * * * * *"\nshell: {MARK.format(marks=marks / "flap")}\n'


# The normal run's storm ends as soon as it has done what an 18 s storm did on a loaded
# machine (19 s: apply 15, killed 16, run 14, tick 53), or after its seconds, whichever
# comes first; --long runs its whole 240 s.
GOALS = {"apply": 15, "killed": 16, "run": 14, "tick": 50}


class Actors:
    """The processes of the storm, and what they did."""

    def __init__(self, root: Path, seconds: float, seed: int, goals: dict[str, int] | None = None) -> None:
        self.root = root
        self.until = time.monotonic() + seconds
        self.goals = goals or {}
        self.rng = random.Random(seed)
        self.live: dict[int, object] = {}
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.hung: list[str] = []
        self.errors: list[str] = []
        self.manual_ok = 0  # `run manual` that finished and reported its status
        self.version = 0  # the last version of `edited` an apply reported applied
        self.written = 0  # the last version written to jobs.d (a daemon may apply it itself)
        self.reverts: list[str] = []
        self.lock_timeouts: list[str] = []  # a command that gave up waiting for a lock  # the state seen holding an older version than that

    def going(self) -> bool:
        """Whether the storm goes on: its time is not up, and some goal is not reached."""
        if time.monotonic() >= self.until:
            return False
        if not self.goals:
            return True
        with self.lock:
            return any(self.counts[k] < n for k, n in self.goals.items())

    def track(self, proc: object) -> None:
        with self.lock:
            self.live[proc.pid] = proc  # type: ignore[attr-defined]

    def done(self, what: str, res) -> None:
        with self.lock:
            self.counts[what] += 1
            if res.hung:
                self.hung.append(what)
            elif res.code == -9:
                self.counts["killed"] += 1
            elif "is held by another process" in res.err:
                self.lock_timeouts.append(f"{what}: {res.err.strip()[-300:]}")
            elif "Traceback" in res.err or "internal error" in res.err or res.code not in (0, 1, 2):
                self.errors.append(f"{what} exited {res.code}: {res.err[-800:]}")

    def untrack(self, res_proc_pid: int) -> None:
        with self.lock:
            self.live.pop(res_proc_pid, None)

    def cmd(self, what: str, *args: str, env: dict[str, str] | None = None):
        started: list[int] = []

        def on_start(p) -> None:
            started.append(p.pid)
            self.track(p)

        res = cli(self.root, *args, timeout=60, env=env, on_start=on_start)
        if started:
            self.untrack(started[0])
        self.done(what, res)
        return res

    def ticks(self, n: int) -> None:
        while self.going():
            # One tick in four dies by itself in the middle of a state write or right
            # after a claim, holding state.lock or with runs just claimed.
            faulty = self.rng.random() < 0.25
            env = child_env(CRONFILE_FAULT="mid-state-write:0.3,after-claim:0.5") if faulty else None
            self.cmd("tick", "tick", "-q", env=env)

    def runs(self) -> None:
        while self.going():
            res = self.cmd("run", "run", "manual", "-q")
            if res.code == 0:
                with self.lock:
                    self.manual_ok += 1

    def applies(self) -> None:
        marks = self.root / "marks"
        v = 0
        while self.going():
            v += 1
            write_file(self.root / "jobs.d" / "edited.yaml", edited(marks, v))
            self.written = v
            flap_path = self.root / "jobs.d" / "flap.yaml"
            if v % 3 == 0:
                write_file(flap_path, flap(marks))
            elif flap_path.exists() and v % 3 == 1:
                flap_path.unlink()
            res = self.cmd("apply", "apply", "-q")
            if res.code == 0:
                self.version = v
            time.sleep(self.rng.uniform(0.0, 0.4))

    def monitor(self) -> None:
        """Watch state.json: once an apply of version v returned, the state must never
        hold an older version again (a lost update)."""
        path = self.root / ".cronfile" / "state.json"
        while self.going():
            floor = self.version  # read before the state: it can only grow meanwhile
            try:
                desc = read_state(path.parent)["jobs"]["edited"]["spec"].get("description", "")
            except (OSError, KeyError):
                continue
            seen = int(desc.split()[-1])
            if seen < floor:
                self.reverts.append(f"version {seen} after version {floor} was applied")
            time.sleep(0.02)

    def killer(self) -> None:
        while self.going():
            time.sleep(self.rng.uniform(0.5, 2.5))
            with self.lock:
                victims = [p for p in self.live.values() if p.returncode is None]  # type: ignore[attr-defined]
                if not victims:
                    continue
                p = self.rng.choice(victims)
                try:
                    os.kill(p.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                except ProcessLookupError:
                    pass


def _free(path: Path) -> bool:
    """Whether a lock file can be taken at once (its holder, if any, is gone)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_daemon_ticks_runs_and_applies_at_once_never_double_lose_or_deadlock(tmp_path, long):
    seconds = 240 if long else float(os.environ.get("CRONFILE_FAULTS_STORM", 18))
    seed = int(time.time())
    root = make_repo(tmp_path / "repo", jobs(tmp_path / "repo" / "marks"), "max_concurrent: 16\nshutdown_grace: 1s\nhistory_limit: 1000000\n")
    state_dir = root / ".cronfile"
    assert cli(root, "apply", "-q").code == 0
    daemon = DaemonProc(root, tag="storm")
    daemon.wait_log("cronfile daemon")
    actors = Actors(root, seconds, seed, None if long else GOALS)
    threads = [threading.Thread(target=actors.ticks, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=f) for f in (actors.runs, actors.applies, actors.killer, actors.monitor)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    assert not any(t.is_alive() for t in threads), "an actor is stuck"
    storm = time.monotonic() - started
    assert daemon.alive(), daemon.text()[-3000:]
    daemon_text = daemon.text()
    assert daemon.kill9() == -9  # the daemon dies holding daemon.lock and runs in flight

    # Every lock whose holder was SIGKILLed is free, at once.
    for lock in [state_dir / "state.lock", state_dir / "daemon.lock", *(state_dir / "engines").glob("*.lock")]:
        assert _free(lock), f"{lock.name} is still held after every holder died"
    # A new daemon starts (daemon.lock), recovers, fires, and stops cleanly.
    with DaemonProc(root, tag="after") as d:
        d.wait_log("cronfile daemon")
        n = len(read_marks(root))
        wait_for(lambda: len(read_marks(root)) > n, timeout=10, what="the new daemon to fire")
        assert d.stop() == 0, d.text()[-3000:]

    state = read_state(state_dir)
    marks = read_marks(root)
    records = read_records(state_dir)
    dups = duplicates(marks, records)
    # No update lost: the state holds the last version an apply reported applied (a
    # tick that loaded older files before it must not have put them back) ...
    applied = state["jobs"]["edited"]["spec"].get("description")
    # ... every claim counted in run_count has its record (claims of `every` never
    # overlap an edit or a deletion: run_count is only ever incremented) ...
    every_runs = [r for r in records.runs.get("every", {}).values() if r.get("status") in FINAL and r.get("trigger") != "manual"]
    # ... and every manual run that reported its status has its record.
    manual_runs = [r for r in records.runs.get("manual", {}).values() if r.get("trigger") == "manual" and r.get("status") == "success"]
    lost = [m for m in marks if records.runs.get(m.job, {}).get(m.run_id, {}).get("status") not in FINAL]
    stamps = sorted(m.scheduled_for for m in marks if m.job == "every")
    gaps = _max_gap(stamps)
    figure(
        f"contention: {storm:.0f}s, {sum(v for k, v in actors.counts.items() if k != 'killed')} commands "
        f"({', '.join(f'{k} {v}' for k, v in sorted(actors.counts.items()))}), {len(marks)} runs, "
        f"last applied version {actors.version}, duplicates {len(dups)}, losses {len(lost)}, "
        f"reverts {len(actors.reverts)}, lock timeouts {len(actors.lock_timeouts)}, hung {len(actors.hung)}, longest gap between runs of the every-second job {gaps:.1f}s"
    )
    assert actors.hung == [], "a command hung (deadlock?)"
    assert actors.errors == []
    assert actors.lock_timeouts == [], "state.lock was held for seconds"
    assert dups == []
    assert lost == [], lost[:5]
    assert records.conflicts == [] and all(n == 1 for n in records.finals.values())
    assert actors.reverts == [], "a stale apply put back an older version"
    # The last daemon applied the files at its start: the state holds the last version
    # written, which may be newer than the last `apply` that reported success (that apply
    # was killed, or the watching daemon applied the file first).
    assert actors.written >= actors.version
    assert applied == f"version {actors.written}", "the state does not hold the files' last version"
    assert state["jobs"]["every"]["run_count"] == len(every_runs)
    assert len(manual_runs) >= actors.manual_ok
    assert running_ids(state) == {}
    assert gaps < 10, "the daemon stopped firing for a while"
    assert "Traceback" not in daemon_text


def _max_gap(stamps: list[str]) -> float:
    from datetime import datetime

    times = [datetime.fromisoformat(s) for s in stamps]
    return max(((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)), default=0.0)
