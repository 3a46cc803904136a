"""Several hosts on one PostgreSQL state: claims per second, and start lateness beside the
file store.

    python bench/bench_hosts.py [--tiny] [--seconds S] [--claim-seconds C]
    # default S = 60, C = 10

Two measures, each for both stores in the same run:

- claims per second: three processes, each with its own store, claim the instants of one
  job as fast as they can (a transaction that reads the job, adds a run for its next
  instant and advances it). For the file store that is three processes on one state
  dir; for PostgreSQL three "hosts" on one database. Each instant is claimed once
  (checked); the figure is claims per second, all three together.
- start lateness: an every-second job (``date +%s.%N >> OUT``) for S seconds, run by one
  daemon on the file store, then by three daemons (CRONFILE_HOST host-0..2) on one
  database. The lateness is the job's own start minus its instant; p50, p99, max, and
  any instant run twice (must be 0) or not at all.

The PostgreSQL server is a throwaway cluster (initdb, pg_ctl) on 127.0.0.1 with fsync
off: what is measured is cronfile's round trips and locking, not a disk. Without
Debian's postgresql package or psycopg the PostgreSQL rows are skipped with the reason.
"""

from __future__ import annotations

import glob
import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import Daemon, cronfile_argv, header, note, parser, quantile, table, workdir  # noqa: E402

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


# -- a throwaway PostgreSQL ------------------------------------------------------------


class Server:
    """initdb + pg_ctl in a temp folder, as the postgres user when run as root."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        self.bindir = Path(found[-1]).parent if found else None
        self.base = Path(tempfile.mkdtemp(prefix="cronfile-bench-pg-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def missing(self) -> str | None:
        if self.bindir is None:
            return "PostgreSQL is not installed (apt-get install -y postgresql)"
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg is not installed (pip install 'cronfile[postgres]')"
        return None

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.base, timeout=120)

    def start(self) -> None:
        assert self.bindir is not None
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.base.chmod(0o755)
        self._run(str(self.bindir / "initdb"), "-D", str(self.base / "data"), "-U", "postgres", "--auth=trust", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c max_connections=200"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-l", str(self.base / "log"), "-o", opts, "-w", "start")

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name}")
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.bindir is not None and (self.base / "data").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "stop")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


# -- claims per second -----------------------------------------------------------------


def _open(kind: str, address: str, local: str) -> Any:
    if kind == "file":
        from cronfile.stores.file import FileStore

        return FileStore(Path(address))
    from cronfile.stores.postgres import PostgresStore

    return PostgresStore(address, Path(local))


def _claimer(kind: str, address: str, local: str, me: str, go: Any, seconds: float, out: Any) -> None:
    from cronfile.state import Running

    store = _open(kind, address, local)
    store.read()
    out.put(("ready", me, []))
    go.wait(120)
    until = time.monotonic() + seconds
    won: list[str] = []
    while time.monotonic() < until:
        with store.transaction() as txn:
            js = txn.state.jobs["j"]
            at = js.next_run
            r = Running(f"{me}-{len(won)}", at, at, "schedule", me)
            txn.state = txn.state.with_job("j", js.with_(running=(r,), next_run=at + timedelta(seconds=1), run_count=js.run_count + 1))
        won.append(at.isoformat())
    out.put(("done", me, won))


def claims_per_second(kind: str, address: str, local: Path, seconds: float) -> tuple[float, int, int]:
    """(claims per second of 3 processes, claims, instants claimed twice)."""
    from cronfile.state import JobState

    store = _open(kind, address, str(local))
    with store.transaction() as txn:
        txn.state = txn.state.with_job("j", JobState(spec={"name": "j"}, spec_hash="h", schedule_sig="s", created_at=T0, next_run=T0))
    ctx = multiprocessing.get_context("spawn")
    q, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claimer, args=(kind, address, str(local / f"p{i}"), f"e{i}", go, seconds, q)) for i in range(3)]
    for p in procs:
        p.start()
    for _ in procs:
        q.get(timeout=120)
    go.set()
    won = [at for _ in procs for at in q.get(timeout=seconds + 120)[2]]
    for p in procs:
        p.join(60)
    twice = sum(1 for n in Counter(won).values() if n > 1)
    return len(won) / seconds, len(won), twice


# -- start lateness --------------------------------------------------------------------


JOB = 'schedule: "* * * * * *"\nconcurrency: allow\nshell: date +%s.%N >> {out}\n'


def lateness(roots: list[Path], envs: list[dict[str, str]], out: Path, seconds: float) -> tuple[list[float], int, int, int]:
    """Run one daemon per root; (lateness ms, rounds, missing, extra)."""
    for root in roots:
        (root / "jobs.d").mkdir(parents=True, exist_ok=True)
        (root / "jobs.d" / "tick.yaml").write_text(JOB.format(out=out))
    subprocess.run([*cronfile_argv(), "-C", str(roots[0]), "apply", "-q"], env=envs[0], check=True, capture_output=True)
    daemons = [Daemon([*cronfile_argv(), "-C", str(r), "daemon"], env=e) for r, e in zip(roots, envs, strict=True)]
    try:
        for d in daemons:
            d.wait_for(r"cronfile daemon \d+", 60)
        t_from = time.time() + 1
        time.sleep(seconds)
        t_to = time.time()
    finally:
        for d in daemons:
            d.stop()
    first, last = math.floor(t_from) + 1, math.floor(t_to) - 2
    starts = [float(x) for x in out.read_text().split()] if out.exists() else []
    slots = Counter(math.floor(t) for t in starts if first <= math.floor(t) <= last)
    late = [(t - math.floor(t)) * 1000 for t in starts if first <= math.floor(t) <= last]
    rounds = max(0, last - first + 1)
    return late, rounds, rounds - len(slots), sum(n - 1 for n in slots.values() if n > 1)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], "(unused)")
    p.add_argument("--seconds", type=float, help="seconds of the every-second job per store (default 60; tiny 5)")
    p.add_argument("--claim-seconds", type=float, help="seconds of claiming per store (default 10; tiny 1)")
    args = p.parse_args()
    header("several hosts", args)
    seconds = args.seconds or (5.0 if args.tiny else 60.0)
    claim_s = args.claim_seconds or (1.0 if args.tiny else 10.0)
    server = Server()
    why = server.missing()
    if why is None:
        try:
            server.start()
        except (OSError, subprocess.SubprocessError) as e:
            why = f"the PostgreSQL server did not start: {e}"
    if why:
        note(f"PostgreSQL rows skipped: {why}")
    try:
        with workdir("hosts", args.keep) as d:
            base = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
            claim_rows = []
            rate, n, twice = claims_per_second("file", str(d / "claims-file" / "state"), d / "claims-file", claim_s)
            claim_rows.append(("file store, 3 processes", f"{claim_s:g}", n, round(rate), twice))
            if not why:
                url = server.database("claims")
                rate, n, twice = claims_per_second("postgres", url, d / "claims-pg", claim_s)
                claim_rows.append(("postgresql, 3 processes", f"{claim_s:g}", n, round(rate), twice))
            table(["store", "seconds", "claims", "claims/s", "instants twice"], claim_rows)
            print()
            rows = []
            late, rounds, missing, extra = lateness([d / "file-host"], [base], d / "file.out", seconds)
            rows.append(("file store, 1 daemon", rounds, len(late), missing, extra, quantile(late, 0.5), quantile(late, 0.99), max(late) if late else None))
            if not why:
                url = server.database("lateness")
                envs = [{**base, "CRONFILE_STATE_URL": url, "CRONFILE_HOST": f"host-{i}"} for i in range(3)]
                late, rounds, missing, extra = lateness([d / f"pg-host{i}" for i in range(3)], envs, d / "pg.out", seconds)
                rows.append(("postgresql, 3 daemons", rounds, len(late), missing, extra, quantile(late, 0.5), quantile(late, 0.99), max(late) if late else None))
            table(["store", "rounds", "starts", "missing", "twice", "p50 ms", "p99 ms", "max ms"], rows)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
