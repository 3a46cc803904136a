"""APScheduler 3 as the benchmarks drive it: the peer a Python user would write.

    python bench/_aps_runner.py fire N PERIOD OUTDIR   # N jobs, every PERIOD s, as subprocesses
    python bench/_aps_runner.py idle N                 # N cron jobs, none due soon
    python bench/_aps_runner.py load JOBS_DIR          # the generated YAML jobs -> JSON figures

``fire`` and ``idle`` print ``ready`` once the scheduler runs and stop on SIGTERM. Jobs
run the same shell command as cronfile's (``/bin/sh -c``), on a thread pool as large as
cronfile's ``max_concurrent``. Not a benchmark itself; bench_*.py start it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path


def _run(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=False)


def _scheduler(workers: int):  # noqa: ANN202 - APScheduler is optional, untyped here
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max(workers, 4))},
        # As cronfile: one late start still counts for a minute; no overlap of a job.
        job_defaults={"misfire_grace_time": 60, "coalesce": True, "max_instances": 1},
        timezone="UTC",
    )


def _serve(sched) -> None:  # noqa: ANN001
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sched.start()
    print("ready", flush=True)
    stop.wait()
    sched.shutdown(wait=True)


def fire(n: int, period: int, out: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    sched = _scheduler(n)
    second = "*" if period == 1 else f"*/{period}"
    Path(out).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sched.add_job(_run, CronTrigger(second=second, timezone="UTC"), args=[f"date +%s.%N >> {out}/job-{i:05d}"], id=f"job-{i:05d}")
    _serve(sched)


def idle(n: int) -> None:
    from apscheduler.triggers.cron import CronTrigger

    sched = _scheduler(4)
    hour = (datetime.now(UTC).hour + 12) % 24  # twelve hours away: never due while measured
    for i in range(n):
        sched.add_job(_run, CronTrigger(minute=i % 60, hour=hour, timezone="UTC"), args=["true"], id=f"job-{i:05d}")
    _serve(sched)


_ONCE = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def load(jobs_dir: str) -> None:
    """Read and parse every job file (PyYAML, its C loader when built), add each job
    with the matching trigger, start the scheduler; print time and memory as JSON."""
    import yaml
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    sched = _scheduler(4)
    files = sorted(Path(jobs_dir).rglob("*.yaml"))
    for path in files:
        data = yaml.load(path.read_bytes(), Loader=loader)
        expr = str(data["schedule"])
        tz = data.get("timezone", "UTC")
        fields = expr.split()
        if _ONCE.match(expr):
            trigger = DateTrigger(datetime.fromisoformat(expr), timezone=tz)
        elif len(fields) == 6:
            # APScheduler has no "L/W" nor 6-field crontab parser; seconds first, as cronfile.
            s, m, h, dom, mon, dow = fields
            trigger = CronTrigger(second=s, minute=m, hour=h, day=dom.replace("1W", "1"), month=mon, day_of_week=dow, timezone=tz)
        else:
            m, h, dom, mon, dow = fields
            # APScheduler's day_of_week counts from Monday=0; cronfile's (cron's) from Sunday.
            trigger = CronTrigger(minute=m, hour=h, day=dom.replace("1W", "1"), month=mon, day_of_week=_dow(dow), timezone=tz)
        body = data.get("shell") or data.get("command") or data.get("prompt")
        sched.add_job(_run, trigger, args=[str(body)], id=path.stem, name=data.get("description"))
    sched.start(paused=True)
    t1 = time.perf_counter()
    jobs = sched.get_jobs()
    print(json.dumps({"files": len(files), "jobs": len(jobs), "load_s": t1 - t0, "rss_mb": _rss_mb(), "rss_before_mb": rss0}))
    sched.shutdown(wait=False)


def _dow(dow: str) -> str:
    if dow in ("*", "1-5"):
        return {"*": "*", "1-5": "mon-fri"}[dow]
    return dow  # names (mon..sun) mean the same in both


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) / 1024 if m else 0.0


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "fire":
        fire(int(rest[0]), int(rest[1]), rest[2])
    elif mode == "idle":
        idle(int(rest[0]))
    elif mode == "load":
        load(rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
