"""`cronfile status` at N jobs, applied and with run history (issue 17: < 300 ms at 10k).

    python bench/bench_status.py [--tiny] [--repeats R] [--history H] [--keep] [N]   # default N = 10000

Builds a jobs repo of N generated jobs (gen_jobs.py), applies it (SQLite store, the
default), runs one job for real with `cronfile run` and gives every job H records shaped
like that run's (one store transaction: H real runs of 10,000 jobs would take an hour),
then times, as a user runs them, with cronfile's bytecode compiled first (this machine
sets PYTHONDONTWRITEBYTECODE=1; a pip install compiles): `cronfile status` (text),
`status --json`, and `status` right after a job file was edited (each repeat edits another
file first). Each is run once to warm up, then R times; the median wall time and CPU
seconds (user + sys) are shown.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
from _common import cronfile_argv, note, workdir  # noqa: E402
from gen_jobs import generate  # noqa: E402

GOAL_S = 0.300
STATUSES = ("success", "success", "success", "failed", "success", "timeout", "success", "success", "skipped", "success")


def add_history(state_dir: Path, names: list[str], per_job: int, sample: dict[str, object]) -> int:
    from cronfile.stores import open_store

    store = open_store(state_dir=state_dir)
    now = datetime.now(UTC)
    count = 0
    with store.transaction():
        for i, job in enumerate(names):
            for k in range(per_job):
                start = now - timedelta(hours=per_job - k, seconds=i % 60)
                rec = dict(sample)
                rec.update(
                    job=job,
                    run_id=start.strftime("%Y%m%dT%H%M%S-") + f"{(i * per_job + k) & 0xFFFF:04x}",
                    trigger="schedule",
                    scheduled_for=start.isoformat(timespec="milliseconds"),
                    claimed_at=start.isoformat(timespec="milliseconds"),
                    started_at=start.isoformat(timespec="milliseconds"),
                    finished_at=(start + timedelta(seconds=2)).isoformat(timespec="milliseconds"),
                    status=STATUSES[(i + k) % len(STATUSES)],
                    log_path=f"{state_dir}/runs/{job}/{k}.log",
                )
                store.append_history(job, rec)
                count += 1
    return count


def timed(argv: list[str], cwd: Path) -> tuple[float, float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed")
    return wall, usage.ru_utime + usage.ru_stime, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", nargs="?", type=int, default=10_000)
    p.add_argument("--tiny", action="store_true", help="200 jobs, 3 records each, 1 repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--history", type=int, default=12, help="records per job (default 12; status shows the last 10)")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    n, reps, hist = (200, 1, 3) if args.tiny else (args.n, args.repeats, args.history)
    base = cronfile_argv()  # compiles cronfile's bytecode first, and says so
    with workdir("status", args.keep) as d:
        files = generate(d, n)
        env_argv = [*base, "-C", str(d)]
        subprocess.run([*env_argv, "apply", "-q"], check=True, stdout=subprocess.DEVNULL)
        first = sorted(files)[0]
        name = first.stem
        subprocess.run([*env_argv, "run", name], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import json

        sample = json.loads(subprocess.run([*env_argv, "history", name, "--json"], check=True, capture_output=True).stdout)[-1]
        names = [f.stem for f in sorted(files)]
        t0 = time.perf_counter()
        records = add_history(d / ".cronfile", names, hist, sample)
        note(f"{n} jobs applied, {records} history records written in {time.perf_counter() - t0:.1f}s")
        rows = []
        for label, extra, edit in (
            ("status", [], False),
            ("status --json", ["--json"], False),
            ("status, right after a job file was edited", [], True),
        ):
            argv = [*env_argv, "status", *extra]
            timed(argv, d)  # warm-up (and the caches written, as any earlier command leaves them)
            walls, cpus = [], []
            for k in range(reps):
                if edit:  # each run the first after an edit: nothing cached covers it
                    f = files[(k * 7919) % len(files)]
                    f.write_text(f.read_text() + f"# edited {k}\n")
                wall, cpu, _out = timed(argv, d)
                walls.append(wall)
                cpus.append(cpu)
            rows.append((label, median(walls), median(cpus)))
    print(f"\n`cronfile status`, {n} jobs, {hist} history records each, median of {reps} (goal < {GOAL_S * 1000:g} ms at 10k)\n")
    print(f"{'command':<44} {'wall ms':>8} {'CPU ms':>8}")
    for label, wall, cpu in rows:
        print(f"{label:<44} {wall * 1000:8.0f} {cpu * 1000:8.0f}")


if __name__ == "__main__":
    main()
