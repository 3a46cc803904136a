"""Idle cost: CPU seconds and wake-ups of a daemon holding N jobs of which none is due.

    python bench/bench_idle.py [--tiny] [--seconds S] [N ...]     # default N = 1000, S = 60

Peers, each holding the same number of jobs, none due while measured: `cronfile daemon`
(generated quiet jobs, see gen_jobs.py), APScheduler 3's BackgroundScheduler (cron
triggers twelve hours away) and Debian's cron (one /etc/cron.d file, same).

All daemons run side by side (they are idle, so they hardly compete) and are measured
over the same window, which starts once each is ready plus a settling pause. CPU is
utime+stime of the daemon process (all its threads, not its children) from
/proc/PID/stat; wake-ups are the context switches of its threads from
/proc/PID/task/*/status. Goal (issue 7): cronfile under 0.05 CPU s per minute at 1,000 jobs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CronRun,
    Daemon,
    aps_argv,
    apscheduler_missing,
    cpu_seconds,
    cron_missing,
    cronfile_argv,
    header,
    note,
    parser,
    ratio,
    rss_mb,
    table,
    thread_cpu,
    thread_switches,
    workdir,
)
from gen_jobs import generate  # noqa: E402

GOAL_CPU_PER_MIN = 0.05


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], "job counts (default 1000; tiny 50)")
    p.add_argument("--seconds", type=float, help="measuring window (default 60; tiny 3)")
    args = p.parse_args()
    header("idle cost", args)
    sizes = args.sizes or ([50] if args.tiny else [1000])
    window = args.seconds or (3.0 if args.tiny else 60.0)
    settle = 1.0 if args.tiny else 5.0
    aps_why = apscheduler_missing()
    cron_why = cron_missing(args.tiny)
    for why in (aps_why, cron_why):
        if why:
            note(f"peer skipped: {why}")
    rows: list[tuple[object, ...]] = []
    details: list[str] = []
    for n in sizes:
        with workdir("idle", args.keep) as d:
            generate(d, n)
            # name -> (pid, stop); each started and waited for in turn, then measured together.
            peers: dict[str, tuple[int, Callable[[], None]]] = {}
            stack: list[Callable[[], None]] = []
            try:
                t0 = time.monotonic()
                cf = Daemon([*cronfile_argv(), "-C", str(d), "daemon"])
                stack.append(cf.stop)
                cf.wait_for(r"cronfile daemon \d+ on", timeout=300)
                note(f"cronfile daemon ready with {n} jobs in {time.monotonic() - t0:.2f}s")
                peers["cronfile daemon"] = (cf.pid, cf.stop)
                if aps_why is None:
                    aps = Daemon(aps_argv("idle", str(n)))
                    stack.append(aps.stop)
                    aps.wait_for("^ready$", timeout=120)
                    peers["APScheduler 3 (BackgroundScheduler)"] = (aps.pid, aps.stop)
                if cron_why is None:
                    hour = (time.gmtime().tm_hour + 12) % 24
                    cron = CronRun([f"{i % 60} {hour} * * * root true" for i in range(n)]).__enter__()
                    stack.append(lambda c=cron: c.__exit__(None, None, None))
                    peers["Debian cron"] = (cron.pid, lambda: None)
                time.sleep(settle)
                before = {name: (cpu_seconds(pid), thread_switches(pid), thread_cpu(pid)) for name, (pid, _) in peers.items()}
                t_start = time.monotonic()
                time.sleep(window)
                elapsed = time.monotonic() - t_start
                after = {name: (cpu_seconds(pid), thread_switches(pid), rss_mb(pid), thread_cpu(pid)) for name, (pid, _) in peers.items()}
            finally:
                for stop in reversed(stack):
                    stop()
            per_min = 60.0 / elapsed
            for name, (pid, _) in peers.items():
                cpu0, sw0, tcpu0 = before[name]
                cpu1, sw1, rss, tcpu1 = after[name]
                per_thread = {tid: sw1[tid] - sw0.get(tid, 0) for tid in sw1}
                wakeups = sum(per_thread.values())
                cpu = cpu1 - cpu0
                goal = GOAL_CPU_PER_MIN if name.startswith("cronfile") else None
                rows.append((name, n, elapsed, cpu, cpu * per_min, wakeups, wakeups * per_min, len(sw1), rss, f"{goal:g}" if goal else "-", ratio(cpu * per_min, goal)))
                busiest = sorted(per_thread.items(), key=lambda kv: -kv[1])[:4]
                details.append(
                    f"{name} ({n} jobs), busiest threads per minute: "
                    + ", ".join(
                        f"{'main' if tid == pid else 'tid ' + str(tid)}: {v * per_min:.0f} wake-ups, {(tcpu1.get(tid, 0) - tcpu0.get(tid, 0)) * per_min:.2f} CPU s"
                        for tid, v in busiest
                    )
                )
    table(["daemon", "jobs", "window s", "CPU s", "CPU s/min", "wake-ups", "wake-ups/min", "threads", "RSS MB", "goal CPU s/min", "vs goal"], rows)
    for line in details:
        print(line)
    print("note: CPU is sampled in clock ticks (10 ms); a figure under 0.01 s means 'at most one tick'.")


if __name__ == "__main__":
    main()
