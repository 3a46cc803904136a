"""Throughput: N jobs every second through one engine, and what its state costs as jobs grow.

    python bench/bench_throughput.py [--tiny] [--seconds S] [--repeats R] [N ...]
        [--scale-sizes 1000,10000,30000] [--profile]
    # default N = 150 200, S = 20, R = 3; tiny: N = 5, S = 3, R = 1, scale at 100 jobs

Part 1, runs per second (issue 17). N jobs on ``* * * * * *`` (every second), each
``date +%s.%N >> OUT/<job>`` (the job records its own start), with ``max_concurrent: N``,
run for S seconds by:

- ``cronfile daemon`` (its state in the run's own `.cronfile/`);
- APScheduler 3 (bench/_aps_runner.py ``fire``: a thread pool of N, subprocess with
  shell=True), when installed;
- the floor: no scheduler, one plain Python loop that at each second starts the same N
  commands (``subprocess.Popen(..., shell=True)``) and reaps them: what spawning costs
  this machine's Python at best.

The three run interleaved (in turn within each of R rounds, the order rotating), and
each figure is the median over the rounds. Measured over the window from 1 s after a
peer is ready to S s later:

- CPU per run: the process's own utime + stime from /proc over the window (its threads,
  not its children: the jobs' shells are not the scheduler's cost), divided by the runs
  that started in the window. For the floor, its parent-side CPU per spawn. Shown with
  the ratio to the floor's (goal: at most x10). /proc counts in 10 ms ticks: at --tiny
  the CPU columns are within a tick or two and only show that the script works.
- runs per second achieved, and missed runs (a second in which a job did not start).
- start lateness p50 / p99 (a start's time minus its second), and p99's ratio to the
  floor's (goal: within x1.5 at 200 jobs, with none missed).

Part 2, state cost by job count (issue 17's table; ``--scale-sizes``, default 1000,
10000, 30000): N generated quiet jobs (gen_jobs.py, none due); cold ``diff`` against an
empty state (no parse cache); first ``apply``; ``status``; one state transaction as a
run pays it three times (bench_scale.state_txn_seconds); then ``cronfile daemon``: RSS
once ready and the time from one edited file to its ``update`` line (median of
``--edits``).

``--profile`` adds two more cronfile rounds (not counted in the table) with py-spy
recording the daemon (the thread holding the GIL, then every thread not idle) (``pip install py-spy``; it needs ptrace rights: root or
``kernel.yama.ptrace_scope=0``), and prints the engine's top costs by function,
inclusive and self, as a share of its samples.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Daemon,
    aps_argv,
    apscheduler_missing,
    cpu_seconds,
    cronfile_argv,
    header,
    median,
    note,
    parser,
    quantile,
    ratio,
    rss_mb,
    run_timed,
    table,
    workdir,
)
from gen_jobs import generate  # noqa: E402

SETTLE = 1.0  # seconds after ready before the window opens
GOALS = {"cpu_ratio": 10.0, "p99_ratio": 1.5, "edit_10k": 0.150, "edit_30k": 0.300, "rss_30k": 120.0, "status_10k": 0.300, "diff_10k": 1.5}


@dataclass
class Round:
    """One peer's run over one window."""

    cpu_s: float
    window_s: float
    slots: int  # whole seconds whose starts were counted
    late_ms: list[float]
    missing: int
    extra: int

    @property
    def runs(self) -> int:
        return len(self.late_ms)

    @property
    def runs_per_s(self) -> float | None:
        return self.runs / self.slots if self.slots else None

    @property
    def cpu_per_run_ms(self) -> float | None:
        """CPU rate over run rate: the window's CPU and its counted seconds need not
        line up to the millisecond."""
        rate = self.runs_per_s
        return self.cpu_s / self.window_s * 1000 / rate if rate else None


@dataclass
class Peer:
    name: str
    rounds: list[Round] = field(default_factory=list)

    def med(self, f: Callable[[Round], float | None]) -> float | None:
        vals = [v for v in (f(r) for r in self.rounds) if v is not None]
        return median(vals) if vals else None


def starts(out: Path, n: int, t_from: float, t_to: float) -> tuple[int, list[float], int, int]:
    """(seconds counted, lateness ms of each start, missing, extra) for the whole
    seconds in the window."""
    first = math.ceil(t_from)
    last = math.floor(t_to) - 1  # a start in the last second may land after the window
    seconds = max(0, last - first + 1)
    late: list[float] = []
    extra = 0
    for i in range(n):
        path = out / f"job-{i:05d}"
        seen: set[int] = set()
        for word in path.read_text().split() if path.exists() else []:
            t = float(word)
            slot = math.floor(t)
            if slot < first or slot > last:
                continue
            if slot in seen:
                extra += 1
                continue
            seen.add(slot)
            late.append((t - slot) * 1000)
    return seconds, late, seconds * n - len(late), extra


def _window(pid: int, seconds: float) -> tuple[float, float, float]:
    """Sleep through the window; (opened, closed, CPU seconds of ``pid`` within it)."""
    time.sleep(SETTLE)
    c0, t0 = cpu_seconds(pid), time.time()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.time()
    return t0, t1, c1 - c0


def run_cronfile(d: Path, n: int, seconds: float, profile_to: Path | None = None, gil: bool = False) -> Round:
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(d / ".cronfile", ignore_errors=True)
    generate(d, n, profile="firing", period=1, out=out, max_concurrent=max(n, 4))
    daemon = Daemon([*cronfile_argv(), "-C", str(d), "daemon"])
    spy = None
    try:
        daemon.wait_for(r"cronfile daemon \d+ on", timeout=300)
        if profile_to is not None:
            spy = subprocess.Popen(
                [_py_spy() or "py-spy", "record", "-p", str(daemon.pid), "-r", "200", "-f", "raw", "-o", str(profile_to), "-d", str(int(seconds + SETTLE + 1)), *(["--gil"] if gil else [])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        t0, t1, cpu = _window(daemon.pid, seconds)
    finally:
        daemon.stop()
        if spy is not None:
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                note(f"py-spy exited {spy.returncode}: {err.strip()[-300:]}")
    return Round(cpu, t1 - t0, *starts(out, n, t0, t1))


def run_aps(d: Path, n: int, seconds: float) -> Round:
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    daemon = Daemon(aps_argv("fire", str(n), "1", str(out)))
    try:
        daemon.wait_for("^ready$", timeout=120)
        t0, t1, cpu = _window(daemon.pid, seconds)
    finally:
        daemon.stop()
    return Round(cpu, t1 - t0, *starts(out, n, t0, t1))


def run_floor(d: Path, n: int, seconds: float) -> Round:
    """The floor in its own process (so its CPU is its own): ``--floor-child``."""
    out = d / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    total = int(SETTLE + seconds + 2)
    proc = Daemon([sys.executable, __file__, "--floor-child", str(n), str(total), str(out)])
    try:
        proc.wait_for("^ready$", timeout=60)
        t0, t1, cpu = _window(proc.pid, seconds)
        proc.proc.wait(timeout=total + 60)
    finally:
        proc.stop()
    return Round(cpu, t1 - t0, *starts(out, n, t0, t1))


def floor_child(n: int, total: int, out: str) -> None:
    """At each whole second for ``total`` seconds, start the N commands, then reap them."""
    print("ready", flush=True)
    next_at = math.floor(time.time()) + 1
    end = next_at + total
    while next_at < end:
        time.sleep(max(0.0, next_at - time.time() - 0.002))
        while time.time() < next_at:
            pass  # the last two milliseconds spun, as bench_firing's floor
        procs = [subprocess.Popen(f"date +%s.%N >> {out}/job-{i:05d}", shell=True) for i in range(n)]
        for p in procs:
            p.wait()
        next_at += 1


# -- part 2: state costs by job count ----------------------------------------------------------


def scale_rows(n: int, reps: int, edits: int, keep: bool) -> list[tuple[object, ...]]:
    from bench_scale import edit_latencies, state_txn_seconds

    rows: list[tuple[object, ...]] = []
    with workdir("throughput-scale", keep) as d:
        t0 = time.perf_counter()
        files = generate(d, n)
        note(f"generated {n} job files in {time.perf_counter() - t0:.1f}s")
        base = [*cronfile_argv(), "-C", str(d)]
        cold = {**os.environ, "CRONFILE_NO_CACHE": "1"}
        diffs = [run_timed([*base, "diff", "-q", "--state-dir", str(d / "empty")], ok=(1,), env=cold) for _ in range(reps)]
        state = d / "state"
        run_timed([*base, "apply", "-q", "--state-dir", str(state)])
        status = [run_timed([*base, "status", "--state-dir", str(state)]) for _ in range(reps)]
        txn, _ = state_txn_seconds(state, max(reps, 5))
        daemon = Daemon([*base, "daemon", "--state-dir", str(state)])
        try:
            daemon.wait_for(r"cronfile daemon \d+ on", timeout=900)
            time.sleep(1.0)
            rss = rss_mb(daemon.pid)
            lat = edit_latencies(daemon, files, edits)
            rss_after = rss_mb(daemon.pid)
        finally:
            daemon.stop()
    edit_goal = GOALS["edit_10k"] if n <= 10_000 else GOALS["edit_30k"]
    rows.append(("one state transaction (x3 per run)", n, txn * 1000, "-", "-"))
    rows.append((f"one edited file applied by the daemon (median of {edits})", n, median(lat) * 1000, f"{edit_goal * 1000:g}", ratio(median(lat), edit_goal)))
    rows.append(("daemon RSS MB once ready / after edits", n, f"{rss:.0f} / {rss_after:.0f}", f"{GOALS['rss_30k']:g} at 30k", ratio(max(rss, rss_after), GOALS["rss_30k"]) if n >= 30_000 else "-"))
    cold_s = median([r.seconds for r in diffs])
    rows.append((f"cold `diff`, empty state (median of {reps})", n, cold_s * 1000, f"{GOALS['diff_10k'] * 1000:g} at 10k", ratio(cold_s, GOALS["diff_10k"]) if n == 10_000 else "-"))
    st = median([r.seconds for r in status])
    rows.append((f"`status` (median of {reps})", n, st * 1000, f"{GOALS['status_10k'] * 1000:g} at 10k", ratio(st, GOALS["status_10k"]) if n == 10_000 else "-"))
    return rows


# -- profile -------------------------------------------------------------------------------------


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_report(raw: Path, what: str, top: int = 25) -> None:
    """Inclusive and self shares by function from py-spy's raw (collapsed) stacks."""
    if not raw.exists():
        note(f"no profile written at {raw}")
        return
    incl: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        total += n
        for f in set(frames):
            incl[f] += n
        own[frames[-1]] += n
    if not total:
        note("the profile is empty")
        return
    print(f"engine profile, {what}: {total} samples (py-spy, 200/s)")
    table(["inclusive %", "function (file)"], [(f"{100 * v / total:.1f}", k) for k, v in incl.most_common(top)])
    table(["self %", "function (file)"], [(f"{100 * v / total:.1f}", k) for k, v in own.most_common(top)])


def _frame(f: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file.py:func`` with the path shortened."""
    if " (" not in f:
        return f if not f.startswith("process ") and not f.startswith("thread ") else ""
    func, _, where = f.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/cronfile/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1] if marker != "/cronfile/" else "cronfile/" + path.split(marker, 1)[1]
            break
    return f"{path}:{func}"


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-child":
        floor_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    p = parser(__doc__.split("\n\n")[0], "jobs every second (default 150 200; tiny 5)")
    p.add_argument("--seconds", type=float, help="window per run (default 20; tiny 3)")
    p.add_argument("--repeats", type=int, help="rounds, each peer once per round (default 3; tiny 1)")
    p.add_argument("--peers", default="cronfile,apscheduler,floor", help="comma-separated subset")
    p.add_argument("--scale-sizes", help="job counts for the state costs (default 1000,10000,30000; tiny 100; 0: skip)")
    p.add_argument("--edits", type=int, help="edited files timed through the daemon (default 3; tiny 1)")
    p.add_argument("--profile", action="store_true", help="one extra cronfile run under py-spy, its top costs printed")
    args = p.parse_args()
    header("throughput", args)
    sizes = args.sizes or ([5] if args.tiny else [150, 200])
    seconds = args.seconds or (3.0 if args.tiny else 20.0)
    reps = args.repeats or (1 if args.tiny else 3)
    edits = args.edits or (1 if args.tiny else 3)
    scale = [int(x) for x in (args.scale_sizes or ("100" if args.tiny else "1000,10000,30000")).split(",") if int(x) > 0]
    wanted = set(args.peers.split(","))
    aps_why = apscheduler_missing() if "apscheduler" in wanted else "not asked for (--peers)"
    if aps_why:
        note(f"APScheduler 3 skipped: {aps_why}")
    runners: list[tuple[str, Callable[[Path, int, float], Round]]] = []
    if "cronfile" in wanted:
        runners.append(("cronfile daemon", run_cronfile))
    if aps_why is None:
        runners.append(("APScheduler 3", run_aps))
    if "floor" in wanted:
        runners.append(("floor: Python loop spawning", run_floor))
    rows: list[tuple[object, ...]] = []
    for n in sizes if runners else []:
        peers = {name: Peer(name) for name, _ in runners}
        with workdir("throughput", args.keep) as d:
            for rnd in range(reps):
                k = rnd % len(runners)
                for name, run in runners[k:] + runners[:k]:  # the order rotates each round
                    r = run(d, n, seconds)
                    peers[name].rounds.append(r)
                    note(f"{n} jobs, round {rnd + 1}, {name}: {r.runs} runs, {r.missing} missed, CPU {r.cpu_s:.2f}s")
            if args.profile and "cronfile" in wanted:
                if _py_spy() is None:
                    note("--profile: py-spy is not installed (pip install py-spy)")
                else:
                    # Two more rounds, not counted: the GIL holder alone (the engine's
                    # Python CPU), then every thread not asleep in the kernel (which
                    # adds lock and condition waits, and syscalls outside the GIL).
                    for gil, what in ((True, "the thread holding the GIL (Python CPU)"), (False, "every thread not idle (CPU, and waits on locks)")):
                        raw = d / f"engine-profile-{'gil' if gil else 'active'}.txt"
                        run_cronfile(d, n, seconds, profile_to=raw, gil=gil)
                        profile_report(raw, f"{n} jobs, {what}")
        floor = peers.get("floor: Python loop spawning")
        f_cpu = floor.med(lambda r: r.cpu_per_run_ms) if floor else None
        f_p50 = floor.med(lambda r: quantile(r.late_ms, 0.5)) if floor else None
        f_p99 = floor.med(lambda r: quantile(r.late_ms, 0.99)) if floor else None
        for peer in peers.values():
            cpu = peer.med(lambda r: r.cpu_per_run_ms)
            p50 = peer.med(lambda r: quantile(r.late_ms, 0.5))
            p99 = peer.med(lambda r: quantile(r.late_ms, 0.99))
            rows.append(
                (
                    peer.name,
                    n,
                    len(peer.rounds),
                    cpu,
                    ratio(cpu, f_cpu),
                    peer.med(lambda r: r.cpu_s / r.window_s),
                    peer.med(lambda r: r.runs_per_s),
                    peer.med(lambda r: r.missing),
                    p50,
                    p99,
                    ratio(p50, f_p50),
                    ratio(p99, f_p99),
                )
            )
    if rows:
        print(f"runs every second, medians of {reps} interleaved rounds of {seconds:g}s (goals: CPU/run <= x10 the floor's; at 200 jobs none missed and p99 <= x1.5 the floor's):")
        table(["scheduler", "jobs", "rounds", "CPU ms/run", "vs floor", "cores", "runs/s", "missed", "p50 ms", "p99 ms", "p50 vs floor", "p99 vs floor"], rows)
    if scale:
        srows: list[tuple[object, ...]] = []
        for n in scale:
            srows += scale_rows(n, 1 if args.tiny else min(reps, 3), edits, args.keep)
        print("state cost by job count:")
        table(["measure", "jobs", "ms (or MB)", "goal ms", "vs goal"], srows)


if __name__ == "__main__":
    main()
