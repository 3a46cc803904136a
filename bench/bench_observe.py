"""Observability: how long a scrape of /metrics and a load of the status page take on N
applied jobs (the daemon's HTTP server, in this process, over 127.0.0.1).

    python bench/bench_observe.py [--tiny] [N ...]      # default N = 100 1000

Each request runs R times (10 full, 3 tiny) after one warm-up (the first scrape reads
every job's history once for its last success); the table gives the median and p90 and
the body's size. Goal: a scrape under 1 s at 1,000 jobs, so a 15 s scrape interval has
room to spare.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cronfile_argv, header, median, parser, quantile, ratio, table, workdir  # noqa: E402
from gen_jobs import generate  # noqa: E402

SCRAPE_GOAL_S = 1.0


def main() -> None:
    args = parser(__doc__.split("\n\n")[0], "job counts (default 100 1000)").parse_args()
    header("observability: /metrics and the status page", args)
    sizes = [20] if args.tiny else (args.sizes or [100, 1000])
    repeats = 3 if args.tiny else 10
    from cronfile.health import Health
    from cronfile.httpserve import Listen, StatusServer
    from cronfile.stores.file import FileStore

    rows = []
    for n in sizes:
        with workdir("observe", args.keep) as d:
            generate(d, n)
            subprocess.run([*cronfile_argv(), "-C", str(d), "apply", "-q"], check=True, capture_output=True)
            store = FileStore(d / ".cronfile")
            server = StatusServer(Listen(("127.0.0.1", 0)), root=d, store=store, environ={}, health=Health(store.write_problem))
            server.start()
            try:
                for path, goal in (("metrics", SCRAPE_GOAL_S), ("", None)):
                    url = server.url + path
                    urllib.request.urlopen(url, timeout=120).read()  # warm-up
                    times, size = [], 0
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        size = len(urllib.request.urlopen(url, timeout=120).read())
                        times.append(time.perf_counter() - t0)
                    med = median(times)
                    rows.append((f"/{path} ({n} jobs)", repeats, (med or 0) * 1000, (quantile(times, 0.9) or 0) * 1000, size // 1024, f"{goal * 1000:.0f}" if goal else "-", ratio(med, goal)))
            finally:
                server.stop()
    table(["request", "runs", "median ms", "p90 ms", "KiB", "goal ms", "median/goal"], rows)


if __name__ == "__main__":
    main()
