"""Firing precision: how late a job's process starts after its scheduled instant.

    python bench/bench_firing.py [--tiny] [--seconds S] [--cron-minutes M] [N ...]
    # default N = 1 100, S = 120, M = 3

N jobs due at the same instants, every P seconds (P = 1 for up to 10 jobs, else 10;
``--period`` overrides), with ``max_concurrent: N``. Each job is the shell command
``date +%s.%N >> OUT/<job>``: the job records its own start, so the lateness includes
everything between the instant and a process of the job running (waking, claiming,
spawning /bin/sh, which then spawns date: about a millisecond, the same for every peer).
The scheduled instant is that time rounded down to a multiple of P.

Peers: `cronfile daemon` (6-field cron `*/P * * * * *`); APScheduler 3
(BackgroundScheduler, CronTrigger(second=*/P), a thread pool of N, the command through
subprocess with shell=True); Debian's cron (minute-level: `* * * * *`, measured over M
minutes, its lateness at the minute; skipped at --tiny). Only rounds that begin after a
daemon is ready and end before it is stopped count; a job that did not start in such a
round counts as missing. The "floor" row is no scheduler at all: N threads, parked in
advance, released at the instant, each starting the same command with subprocess; it
is what this machine allows a Python scheduler at best, and is not counted as a peer.

Goals (issue 7): p99 under 10 ms for 1 job and under 50 ms for 100 jobs, at or ahead of
every peer.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CronRun,
    Daemon,
    aps_argv,
    apscheduler_missing,
    cron_missing,
    cronfile_argv,
    header,
    note,
    parser,
    quantile,
    ratio,
    table,
    workdir,
)
from gen_jobs import generate  # noqa: E402


def goal_p99_ms(n: int) -> float:
    return 10.0 if n == 1 else 50.0


@dataclass
class Result:
    peer: str
    n: int
    period: int
    rounds: int
    late_ms: list[float]
    missing: int
    extra: int

    def row(self, best_peer_p50: float | None, best_peer_p99: float | None) -> tuple[object, ...]:
        p50, p99 = quantile(self.late_ms, 0.5), quantile(self.late_ms, 0.99)
        mx = max(self.late_ms) if self.late_ms else None
        is_cronfile = self.peer.startswith("cronfile")
        goal = goal_p99_ms(self.n) if is_cronfile else None
        return (
            self.peer,
            self.n,
            self.period,
            self.rounds,
            len(self.late_ms),
            self.missing,
            p50,
            p99,
            mx,
            f"{goal:g}" if goal else "-",
            ratio(p99, goal) if goal else "-",
            ratio(p50, best_peer_p50) if is_cronfile else "-",
            ratio(p99, best_peer_p99) if is_cronfile else "-",
        )


def collect(out: Path, n: int, period: int, t_from: float, t_to: float, margin: float) -> tuple[int, list[float], int, int]:
    """(rounds, lateness ms of each start, missing, extra) for the rounds whose instant
    is after ``t_from`` and at least ``margin`` before ``t_to``."""
    first = math.floor(t_from / period) * period + period
    last = math.floor((t_to - margin) / period) * period
    rounds = max(0, int((last - first) / period) + 1)
    late: list[float] = []
    extra = 0
    for i in range(n):
        path = out / f"job-{i:05d}"
        seen: set[int] = set()
        lines = path.read_text().split() if path.exists() else []
        for line in lines:
            t = float(line)
            slot = math.floor(t / period) * period
            if slot < first or slot > last:
                continue
            if slot in seen:
                extra += 1  # a second start in one slot: a run later than the period
                continue
            seen.add(slot)
            late.append((t - slot) * 1000)
    missing = rounds * n - len(late)
    return rounds, late, missing, extra


def run_peer(start: Callable[[Path], tuple[Callable[[], None], float]], d: Path, n: int, period: int, seconds: float, margin: float) -> tuple[int, list[float], int, int]:
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stop, ready = start(out)
    try:
        time.sleep(seconds)
    finally:
        stopped = time.time()
        stop()
    return collect(out, n, period, ready, stopped, margin)


FLOOR = "floor: Python spawning, no scheduler"


def spawn_floor(d: Path, n: int, rounds: int) -> tuple[int, int, list[float], int, int]:
    """What any Python scheduler pays at best: at each instant, ``n`` threads parked
    beforehand are released together and each starts the job's command with
    subprocess (Popen releases the GIL while it forks, so they overlap). Returns
    (period, rounds, lateness ms, missing, extra) like the peers."""
    import subprocess
    import threading

    period = 1 if n <= 10 else 2
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    instants: list[float] = []
    for _ in range(rounds):
        go = threading.Event()

        def job(i: int, go: threading.Event = go) -> None:
            go.wait()
            subprocess.run(f"date +%s.%N >> {out}/job-{i:05d}", shell=True, check=False)

        threads = [threading.Thread(target=job, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        instant = (math.floor(time.time() / period) + 1) * period
        time.sleep(max(0.0, instant - time.time() - 0.002))
        while time.time() < instant:
            pass  # the last two milliseconds spun, so the release itself is on time
        go.set()
        instants.append(instant)
        for t in threads:
            t.join()
    late: list[float] = []
    extra = 0
    for i in range(n):
        path = out / f"job-{i:05d}"
        starts = sorted(float(x) for x in path.read_text().split()) if path.exists() else []
        extra += max(0, len(starts) - len(instants))
        late += [(t - slot) * 1000 for t, slot in zip(starts, instants, strict=False)]
    return period, len(instants), late, len(instants) * n - len(late), extra


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], "jobs due at once (default 1 100; tiny 1 5)")
    p.add_argument("--seconds", type=float, help="how long each seconds-level run lasts (default 120; tiny 2)")
    p.add_argument("--cron-minutes", type=int, default=3, help="minutes Debian cron is measured per size (default 3)")
    p.add_argument("--period", type=int, help="seconds between fires (divides 60; default 1 for up to 10 jobs, else 10)")
    p.add_argument("--peers", default="cronfile,apscheduler,cron,floor", help="comma-separated subset to run")
    p.add_argument("--floor-rounds", type=int, help="rounds of the spawn floor (default 20; tiny 1)")
    args = p.parse_args()
    header("firing precision", args)
    sizes = args.sizes or ([1, 5] if args.tiny else [1, 100])
    seconds = args.seconds or (2.0 if args.tiny else 120.0)
    wanted = set(args.peers.split(","))
    aps_why = apscheduler_missing() if "apscheduler" in wanted else "APScheduler 3 not asked for (--peers)"
    cron_why = cron_missing(args.tiny) if "cron" in wanted else "Debian cron not asked for (--peers)"
    for why in (aps_why, cron_why):
        if why:
            note(f"peer skipped: {why}")
    results: list[Result] = []
    for n in sizes:
        period = args.period or (1 if n <= 10 else 10)
        margin = min(period, 20)
        with workdir("firing", args.keep) as d:
            if "cronfile" in wanted:

                def start_cronfile(out: Path, n: int = n, period: int = period, d: Path = d) -> tuple[Callable[[], None], float]:
                    generate(d, n, profile="firing", period=period, out=out, max_concurrent=max(n, 4))
                    daemon = Daemon([*cronfile_argv(), "-C", str(d), "daemon"])
                    daemon.wait_for(r"cronfile daemon \d+ on", timeout=300)
                    return daemon.stop, time.time()

                results.append(Result("cronfile daemon", n, period, *run_peer(start_cronfile, d, n, period, seconds, margin)))
            if aps_why is None:

                def start_aps(out: Path, n: int = n, period: int = period) -> tuple[Callable[[], None], float]:
                    daemon = Daemon(aps_argv("fire", str(n), str(period), str(out)))
                    daemon.wait_for("^ready$", timeout=120)
                    return daemon.stop, time.time()

                results.append(Result("APScheduler 3", n, period, *run_peer(start_aps, d, n, period, seconds, margin)))
            if "floor" in wanted:
                fp, *rest = spawn_floor(d, n, args.floor_rounds or (1 if args.tiny else 20))
                results.append(Result(FLOOR, n, fp, *rest))
            if cron_why is None:

                def start_cron(out: Path, n: int = n) -> tuple[Callable[[], None], float]:
                    run = CronRun([f"* * * * * root date +\\%s.\\%N >> {out}/job-{i:05d}" for i in range(n)]).__enter__()
                    return (lambda: run.__exit__(None, None, None)), time.time()

                # Until the M-th minute after start, plus room for the last round's starts.
                wait = (60 - time.time() % 60) + 60 * (args.cron_minutes - 1) + 25
                note(f"Debian cron, {n} jobs: measuring {args.cron_minutes} minutes ({wait:.0f}s)")
                results.append(Result("Debian cron (minute-level)", n, 60, *run_peer(start_cron, d, n, 60, wait, 20)))
    rows = []
    for r in results:
        peers = [x.late_ms for x in results if x.n == r.n and not x.peer.startswith("cronfile") and x.peer != FLOOR and x.late_ms]
        best50 = min((quantile(v, 0.5) or 0 for v in peers), default=None)
        best99 = min((quantile(v, 0.99) or 0 for v in peers), default=None)
        rows.append(r.row(best50, best99))
    table(["scheduler", "jobs", "period s", "rounds", "starts", "missing", "p50 ms", "p99 ms", "max ms", "goal p99 ms", "vs goal", "p50 vs best peer", "p99 vs best peer"], rows)
    for r in results:
        if r.extra:
            note(f"{r.peer}, {r.n} jobs: {r.extra} start(s) fell in an already filled slot (later than the period, or doubled)")


if __name__ == "__main__":
    main()
