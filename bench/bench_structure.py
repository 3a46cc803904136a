"""What a thread per run costs: the kernel work of cronfile's run path, done three ways.

    python bench/bench_structure.py [--tiny] [--seconds S] [--repeats R] [N ...]
    # default N = 20 200, S = 8, R = 3; tiny: N = 5, S = 2, R = 1

No scheduler, no state, no log: each second, N runs of ``date +%s.%N >> OUT/<job>``,
each doing what a run of the daemon asks of the kernel (cronfile/executors/process.py,
contain.py): two pipes (output, gate); a cgroup made, where this process may make them
(cgroup v2, as the daemon's containment detects it); the job spawned parked behind its
gate (``subprocess.Popen`` of ``/bin/sh -c _GATE``, process.py's own, new session, ``close_fds``, the
daemon's environment), moved into the cgroup; at the second, its gate written; its
output read to EOF by one shared loop (``selectors``), the process reaped, the cgroup
removed. Done by:

- ``one thread``: a loop does every run's steps in turn, and the shared loop's
  reading, in one thread (what an event-loop engine would do);
- ``a thread per run``: a pooled thread per run does its run's steps, parks on an event
  until the second, then waits for its end, which the shared loop's thread signals
  (what ``cronfile daemon`` does, docs/performance.md);
- ``a thread per run, one at a time``: the same, but a lock lets one run's thread run
  at a time between its waits.

Beside them, ``the spawn floor`` as bench_throughput.py measures it (one loop,
``Popen(shell=True)`` and ``wait``: no pipe, no gate, no cgroup).

Printed: the process's own CPU (utime + stime, children excluded) per run, median of R
interleaved rounds of S seconds each, and its ratio to the spawn floor's; the gap between
the first two rows is what the structure costs (issue 17's goal: the daemon at most x10
the spawn floor). ``--tiny`` only shows that the script works.
"""

from __future__ import annotations

import math
import os
import queue
import resource
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, median, note, parser, ratio, table, workdir  # noqa: E402

from cronfile.executors.process import _GATE, GATE_NAME  # the daemon's own gate  # noqa: E402


def _cgroup_base() -> Path | None:
    try:
        from cronfile.executors.contain import containment

        c = containment()
    except Exception as e:  # noqa: BLE001 - a bench: say why, go on without
        note(f"no cgroup step ({e})")
        return None
    if c.mechanism != "cgroup2" or c.cgroup_base is None:
        note(f"no cgroup step: containment here is {c.mechanism} ({c.detail})")
        return None
    return c.cgroup_base


class _Run:
    """One run's kernel objects, from its staging to its end."""

    def __init__(self, out: Path, job: int, cg: Path | None, env: dict[str, str]) -> None:
        self.r, w = os.pipe()
        gr, self.gw = os.pipe()
        self.cg = cg
        if cg is not None:
            cg.mkdir()
        try:
            self.p = subprocess.Popen(
                ["/bin/sh", "-c", _GATE, GATE_NAME, "/bin/sh", "-c", f"date +%s.%N >> {out}/job-{job:05d}"],
                cwd=out,
                env=env,
                stdin=gr,
                stdout=w,
                stderr=w,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(w)
            os.close(gr)
        if cg is not None:
            fd = os.open(cg / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, str(self.p.pid).encode())
            finally:
                os.close(fd)
        self.ended = threading.Event()

    def release(self) -> None:
        os.write(self.gw, b"\n")
        os.close(self.gw)

    def end(self) -> None:
        """After its output's EOF: reap, remove the cgroup."""
        self.p.wait()
        if self.cg is not None:
            self.cg.rmdir()


class _Loop:
    """The shared output loop: reads every run's pipe; at EOF calls ``on_eof(run)``."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = os.pipe()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)

    def add(self, run: _Run) -> None:
        with self.lock:
            self.sel.register(run.r, selectors.EVENT_READ, run)

    def step(self, on_eof: Callable[[_Run], None], timeout: float | None = None) -> int:
        n = 0
        for key, _ in self.sel.select(timeout):
            run = key.data
            if run is None:
                os.read(self.wake_r, 4096)
                continue
            if os.read(run.r, 65536):
                continue
            with self.lock:
                self.sel.unregister(run.r)
            os.close(run.r)
            on_eof(run)
            n += 1
        return n


def _seconds(seconds: int, body: Callable[[float], None]) -> None:
    next_at = math.floor(time.time()) + 1
    for _ in range(seconds):
        body(next_at)
        next_at += 1


def one_thread(out: Path, n: int, seconds: int, cg: Path | None, env: dict[str, str]) -> None:
    loop = _Loop()

    def second(at: float) -> None:
        time.sleep(max(0.0, at - 0.6 - time.time()))
        runs = [_Run(out, i, None if cg is None else cg / f"bench-structure-{os.getpid()}-{at:.0f}-{i}", env) for i in range(n)]
        for run in runs:
            loop.add(run)
        time.sleep(max(0.0, at - time.time()))
        for run in runs:
            run.release()
        left = n
        while left:
            left -= loop.step(lambda run: run.end())

    _seconds(seconds, second)


def thread_per_run(out: Path, n: int, seconds: int, cg: Path | None, env: dict[str, str], lane: bool = False) -> None:
    loop = _Loop()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            loop.step(lambda run: run.ended.set(), 0.2)

    threading.Thread(target=serve, daemon=True).start()
    one = threading.Lock() if lane else None
    inbox: list[queue.SimpleQueue[tuple[float, threading.Event] | None]] = [queue.SimpleQueue() for _ in range(n)]
    done: queue.SimpleQueue[int] = queue.SimpleQueue()

    def waiting(wait: Callable[[], object]) -> None:
        if one is not None:
            one.release()
        try:
            wait()
        finally:
            if one is not None:
                one.acquire()

    failed: list[BaseException] = []

    def worker(i: int) -> None:
        while (job := inbox[i].get()) is not None:
            at, go = job
            if one is not None:
                one.acquire()
            try:
                run = _Run(out, i, None if cg is None else cg / f"bench-structure-{os.getpid()}-{at:.0f}-{i}", env)
                loop.add(run)
                os.write(loop.wake_w, b"x")  # the loop's select takes the new pipe
                waiting(go.wait)
                run.release()
                waiting(run.ended.wait)
                run.end()
            except BaseException as e:  # noqa: BLE001 - the main thread says it
                failed.append(e)
            finally:
                if one is not None:
                    one.release()
            done.put(i)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for w in workers:
        w.start()

    def second(at: float) -> None:
        time.sleep(max(0.0, at - 0.6 - time.time()))
        go = threading.Event()
        for q in inbox:
            q.put((at, go))
        time.sleep(max(0.0, at - time.time()))
        go.set()
        for _ in range(n):
            done.get()
        if failed:
            raise failed[0]

    try:
        _seconds(seconds, second)
    finally:
        for q in inbox:
            q.put(None)
        stop.set()


def spawn_floor(out: Path, n: int, seconds: int, cg: Path | None, env: dict[str, str]) -> None:
    def second(at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        procs = [subprocess.Popen(f"date +%s.%N >> {out}/job-{i:05d}", shell=True) for i in range(n)]
        for p in procs:
            p.wait()

    _seconds(seconds, second)


SHAPES: dict[str, Callable[..., None]] = {
    "the spawn floor": spawn_floor,
    "one thread": one_thread,
    "a thread per run": thread_per_run,
    "a thread per run, one at a time": lambda *a: thread_per_run(*a, lane=True),
}


def child(shape: str, n: int, seconds: int, out: str, with_cg: bool) -> None:
    """One shape in a process of its own (so that its CPU is its own); prints its CPU."""
    cg = _cgroup_base() if with_cg else None
    env = dict(os.environ, CRONFILE_JOB="x", CRONFILE_RUN_ID="y", CRONFILE_SCHEDULED_FOR="z", CRONFILE_TRIGGER="schedule")
    SHAPES[shape](Path(out), n, 1, cg, env)  # a second to warm up, not counted
    t0 = resource.getrusage(resource.RUSAGE_SELF)  # (microseconds; os.times counts 10 ms ticks)
    SHAPES[shape](Path(out), n, seconds, cg, env)
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"cpu {(t1.ru_utime - t0.ru_utime) + (t1.ru_stime - t0.ru_stime)!r}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1")
        return
    p = parser(__doc__.split("\n", 1)[0], "runs a second (default 20 200)")
    p.add_argument("--seconds", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args()
    sizes = args.sizes or ([5] if args.tiny else [20, 200])
    seconds = args.seconds or (2 if args.tiny else 8)
    reps = args.repeats or (1 if args.tiny else 3)
    header("structure: a thread per run against one thread, the same kernel work", args)
    with_cg = _cgroup_base() is not None
    rows = []
    with workdir("structure", args.keep) as d:
        for n in sizes:
            cpu: dict[str, list[float]] = {s: [] for s in SHAPES}
            names = list(SHAPES)
            for r in range(reps):
                for shape in names[r % len(names) :] + names[: r % len(names)]:
                    out = d / f"out-{n}"
                    out.mkdir(exist_ok=True)
                    res = subprocess.run(
                        [sys.executable, __file__, "--child", shape, str(n), str(seconds), str(out), "1" if with_cg else "0"],
                        capture_output=True,
                        text=True,
                        timeout=seconds * 10 + 120,
                    )
                    if res.returncode != 0:
                        raise SystemExit(f"{shape} at {n} runs a second failed:\n{res.stderr[-2000:]}")
                    used = float(res.stdout.strip().rsplit(" ", 1)[1])
                    cpu[shape].append(used / (n * seconds) * 1000)
            floor = median(cpu["the spawn floor"])
            for shape in names:
                ms = median(cpu[shape])
                rows.append((shape, n, reps, round(ms, 3), ratio(ms, floor)))
    print(f"CPU per run, medians of {reps} interleaved rounds of {seconds}s ({'with' if with_cg else 'without'} a cgroup per run):")
    table(["shape", "runs/s", "rounds", "CPU ms/run", "vs the spawn floor"], rows)


if __name__ == "__main__":
    main()
