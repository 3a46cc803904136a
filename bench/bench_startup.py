"""Start-up: wall time of `cronfile --version` and of `cronfile status` on N applied jobs.

    python bench/bench_startup.py [--tiny] [N ...]      # default N = 100

Each command runs R times (20 full, 3 tiny); the table gives the median and the spread.
`python -c pass` is the floor any Python CLI pays; APScheduler's import time (when it is
installed) is what a Python scheduler script pays before its first line. Goal (issue 7):
`cronfile --version` under 150 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    apscheduler_missing,
    cronfile_argv,
    header,
    median,
    note,
    parser,
    quantile,
    ratio,
    run_timed,
    table,
    workdir,
)
from gen_jobs import generate  # noqa: E402

VERSION_GOAL_S = 0.150


def main() -> None:
    args = parser(__doc__.split("\n\n")[0], "job counts for `status` (default 100)").parse_args()
    header("start-up", args)
    sizes = args.sizes or [100]
    repeats = 3 if args.tiny else 20
    cf = cronfile_argv()
    rows = []

    def measure(label: str, argv: list[str], cwd: Path | None = None, goal: float | None = None) -> float | None:
        times = [run_timed(argv, cwd=cwd).seconds for _ in range(repeats)]
        med = median(times)
        rows.append((label, len(times), (med or 0) * 1000, (quantile(times, 0.1) or 0) * 1000, (quantile(times, 0.9) or 0) * 1000, f"{goal * 1000:.0f}" if goal else "-", ratio(med, goal)))
        return med

    measure("python -c pass (floor)", [sys.executable, "-c", "pass"])
    measure("cronfile --version", [*cf, "--version"], goal=VERSION_GOAL_S)
    missing = apscheduler_missing()
    if missing is None:
        measure("python -c 'import apscheduler...' (peer)", [sys.executable, "-c", "from apscheduler.schedulers.blocking import BlockingScheduler"])
    else:
        note(f"APScheduler import not measured: {missing}")
    for n in sizes:
        with workdir("startup", args.keep) as d:
            generate(d, n)
            run_timed([*cf, "-C", str(d), "apply", "-q"])
            measure(f"cronfile status ({n} jobs)", [*cf, "-C", str(d), "status"])
    table(["command", "runs", "median ms", "p10 ms", "p90 ms", "goal ms", "median/goal"], rows)


if __name__ == "__main__":
    main()
