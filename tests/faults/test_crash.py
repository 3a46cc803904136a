"""Crash: the real daemon on jobs firing every second, SIGKILLed again and again at random
moments and at named points (during a claim, a run, a state write, a history write, a
delivery, a recovery), restarted each time. Judged from the run records and from what
the jobs themselves wrote: no scheduled instant ran twice, every claimed run finished or
was recorded `interrupted`, state.json was readable after every kill, no leftover
process survived, and history lines are whole.

Torn lines: a SIGKILL cannot tear a history line (one write(2) of the whole line on an
O_APPEND descriptor is all or nothing for the killed process); only a power cut or a
full disk can. The suite injects that (`mid-history-write`: half a line, then SIGKILL)
and counts a torn line as tolerated only when it is such an injected fragment: the
reader skips it and the next record starts on a line of its own. A torn line anywhere
else fails the run, and so does a run whose record was the torn one and that was not
recorded `interrupted` afterwards.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from .harness import (
    FINAL,
    MARK,
    DaemonProc,
    alive,
    child_env,
    duplicates,
    figure,
    make_repo,
    read_marks,
    read_records,
    read_state,
    running_ids,
    wait_for,
)

pytestmark = pytest.mark.slow

# Each point with the probability of dying when the daemon reaches it: tuned so that a
# round usually ends within a second or two.
POINTS = {
    "after-claim": 0.35,
    # Runs claimed ahead of their instant, parked, not released yet: the gates must
    # exit unrun, the runs be recovered interrupted.
    "after-park": 0.35,
    "after-spawn": 0.25,
    "after-history": 0.5,
    "during-delivery": 0.5,
    # The run's deliveries persisted in the outbox, not sent yet.
    "after-outbox": 0.5,
    "mid-state-write": 0.12,
    "after-state-write": 0.12,
    "mid-history-write": 0.3,
    "mid-recovery": 0.6,
}
# Every record is kept (history_limit), so every claimed run can be looked up.
CONFIG = "max_concurrent: 64\nshutdown_grace: 1s\nhistory_limit: 1000000\n"


def jobs(marks) -> dict[str, str]:
    return {
        # Quick, delivered (so there is a delivery to die in).
        "quick": f'schedule: "* * * * * *"\nshell: {MARK.format(marks=marks / "quick")}\ndeliver: [stdout]\n',
        # Still running when the daemon dies: recovery must stop it, and never re-run it.
        "slow": f'schedule: "* * * * * *"\nconcurrency: allow\nshell: {MARK.format(marks=marks / "slow")}; sleep 20\n',
        # forbid: a run in flight makes the next instant `skipped`.
        "forbid": f'schedule: "*/2 * * * * *"\nshell: {MARK.format(marks=marks / "forbid")}; sleep 2.5\n',
    }


def test_sigkill_at_random_moments_never_runs_an_instant_twice_nor_loses_a_claimed_run(tmp_path, long):
    # Every point is hit in every mode; the rest of the rounds die at a random instant.
    per_point, timers = (10, 40) if long else (1, 5)
    rng = random.Random(int(time.time()))
    plan: list[str | None] = [*POINTS] * per_point + [None] * timers
    rng.shuffle(plan)
    rounds = len(plan)
    # Room for every slow run at once; a clean stop interrupts them after 1 s.
    root = make_repo(tmp_path / "repo", jobs(tmp_path / "repo" / "marks"), CONFIG)
    state_dir = root / ".cronfile"
    claimed: dict[str, str] = {}  # run id -> job, from every state.json seen after a kill
    kills: Counter[str] = Counter()
    started = time.monotonic()
    for n, point in enumerate(plan):
        env = child_env(CRONFILE_FAULT=f"{point}:{POINTS[point]}") if point else child_env()
        d = DaemonProc(root, env=env, tag=f"{n:03d}")
        if point:
            code = d.wait(6.0)
            if code is None:  # the point was not reached in time: kill it anyway
                code, how = d.kill9(), "timer"
            else:
                d.kill9()
                how = point if f"fault injected at {point}" in d.text() else f"exit {code}"
        else:
            time.sleep(rng.uniform(0.3, 2.5))
            code, how = d.kill9(), "timer"
        assert code == -9, f"round {n}: the daemon exited {code} instead of dying:\n{d.text()[-3000:]}"
        kills[how] += 1
        if (state_dir / "state.db").exists() or (state_dir / "state.json").exists():
            claimed.update(running_ids(read_state(state_dir)))  # readable after every kill
    # A last, clean daemon recovers what the previous one left, runs a little, and stops.
    with DaemonProc(root, tag="final") as d:
        d.wait_log("cronfile daemon")
        time.sleep(1.5)
        assert d.stop() == 0, d.text()[-3000:]
    elapsed = time.monotonic() - started

    state = read_state(state_dir)
    marks = read_marks(root)
    records = read_records(state_dir)
    claimed.update({m.run_id: m.job for m in marks})
    for job, runs in records.runs.items():
        claimed.update({rid: job for rid, r in runs.items() if r.get("status") in FINAL})

    dups = duplicates(marks, records)
    lost = sorted(f"{job} {rid}" for rid, job in claimed.items() if records.runs.get(job, {}).get(rid, {}).get("status") not in FINAL)
    doubled = [f"{job} {rid} x{n}" for (job, rid), n in records.finals.items() if n > 1]
    interrupted = sum(r.get("status") == "interrupted" for runs in records.runs.values() for r in runs.values())
    leftovers = [m for m in marks if m.job != "quick" and alive(m.pid)]
    if leftovers:  # recovery stops them (SIGTERM, then SIGKILL after 10 s)
        leftovers = [m for m in marks if m.job != "quick" and not _gone(m.pid)]
    figure(
        f"crash: {rounds} rounds, {sum(kills.values())} kills ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), "
        f"{len(marks)} runs, {len(claimed)} claimed, {interrupted} interrupted, "
        f"duplicates {len(dups)}, losses {len(lost)}, torn lines {records.torn} "
        f"(injected {kills['mid-history-write']}), {elapsed:.0f}s"
    )
    assert dups == []
    assert lost == []
    assert doubled == [] and records.conflicts == []
    assert running_ids(state) == {}, "a run is still marked in flight after a clean stop"
    assert records.torn <= kills["mid-history-write"], "a torn history line that no injected fault explains"
    assert leftovers == [], f"processes of dead daemons' runs still alive: {leftovers}"
    assert not list(state_dir.glob(".state.json.*.tmp")), "temp files of killed writers pile up"
    assert not list(state_dir.glob(".state.db.*.tmp")), "temp databases of killed writers pile up"
    for m in marks:  # what a job did agrees with what cronfile recorded about it
        r = records.runs[m.job][m.run_id]
        assert r["scheduled_for"] == m.scheduled_for, (m, r)
    assert len(marks) >= rounds // 2, "too few runs: the harness did not exercise the daemon"


def _gone(pid: int) -> bool:
    try:
        wait_for(lambda: not alive(pid), timeout=15, what=f"pid {pid} to stop")
    except AssertionError:
        return False
    return True
