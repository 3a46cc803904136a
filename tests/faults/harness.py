"""Shared tools of the fault suite: jobs repos on disk, the real CLI and daemon as child
processes (with their peak memory), and readers of what the runs left behind: the
marks the jobs wrote themselves, the history lines, the state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_helpers import alive, wait_for  # noqa: F401  (one copy for all tests)

ROOT = Path(__file__).resolve().parents[2]
FIGURES: list[str] = []  # printed at the end of the session (conftest)

# Every run writes one line when it starts: its scheduled instant, run id and pid. The
# suite judges "executed twice" from these, not only from cronfile's own records.
# The statuses a run that started (or was claimed) ends with: every one but skipped
# and missed, which are recorded for runs that never were.
FINAL = ("success", "failed", "timeout", "silent", "refused", "interrupted", "cancelled")
MARK = 'echo "$CRONFILE_SCHEDULED_FOR $CRONFILE_RUN_ID $$ $CRONFILE_TRIGGER" >> "{marks}"'


def figure(text: str) -> None:
    """A line of figures, printed in the session's summary (conftest)."""
    FIGURES.append(text)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def write_file(path: Path, text: str | bytes) -> Path:
    """Write atomically (like an editor's save), so a watcher sees one complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(tmp, path)
    return path


def make_repo(root: Path, jobs: dict[str, str], config: str | None = None) -> Path:
    (root / "jobs.d").mkdir(parents=True, exist_ok=True)
    (root / "marks").mkdir(exist_ok=True)
    for name, text in jobs.items():
        write_file(root / "jobs.d" / f"{name}.yaml", text)
    if config is not None:
        write_file(root / "cronfile.yaml", config)
    return root


# -- child processes -----------------------------------------------------------------


@dataclass
class Result:
    code: int | None  # None: it hung and was killed at the timeout
    out: str
    err: str
    seconds: float
    max_rss_kb: int  # the child's own peak resident memory (wait4's rusage; see _LAUNCHER)

    @property
    def hung(self) -> bool:
        return self.code is None


# A child's peak RSS as wait4 reports it (ru_maxrss) is at least its parent's at the fork:
# Linux keeps the largest RSS of every memory image the process had, and exec counts
# the one it replaces, a copy of (or, after vfork, the same as) the parent's. Spawned by
# pytest, every child would "peak" at least at pytest's own size (127 MB in one run,
# 351 MB in a pytest-xdist worker that had run other tests first). So the command is
# forked by this small launcher (python -S, about 10 MB), which reports its pid, waits
# for it, reports its ru_maxrss and ends the way it ended (same code, same signal).
_LAUNCHER = """
import os, signal, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
os.write(fd, b"%d\\n" % pid)
while True:
    try:
        _, status, usage = os.wait4(pid, 0)
        break
    except InterruptedError:
        pass
os.write(fd, b"%d\\n" % usage.ru_maxrss)
os.close(fd)
if os.WIFSIGNALED(status):
    if os.WTERMSIG(status) != signal.SIGKILL:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
os._exit(os.waitstatus_to_exitcode(status))
"""


class _Child:
    """The command a launcher runs, as ``run``'s ``on_start`` sees it: its own pid (what
    a test signals) and the launcher's return code (None while it runs)."""

    def __init__(self, launcher: subprocess.Popen[bytes], pid: int) -> None:
        self._launcher = launcher
        self.pid = pid

    @property
    def returncode(self) -> int | None:
        return self._launcher.returncode


def run(
    args: Iterable[str],
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_start: Callable[[Any], None] | None = None,
) -> Result:
    """Run ``python -m cronfile ARGS`` and measure it: exit code, output, time and the
    peak RSS of that command alone (its launcher's os.wait4, see _LAUNCHER)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        rfd, wfd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(wfd), sys.executable, "-m", "cronfile", *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env or child_env(),
                cwd=cwd,
                start_new_session=True,
                pass_fds=(wfd,),
            )
        finally:
            os.close(wfd)
        with os.fdopen(rfd, "rb") as report:
            first = report.readline().strip()
            if on_start is not None:
                on_start(_Child(proc, int(first)) if first else proc)
            code: int | None = None
            while True:
                pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    code = os.waitstatus_to_exitcode(status)
                    proc.returncode = code  # reaped here; keep Popen from waiting again
                    break
                if time.monotonic() - start > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's session: both
                    os.wait4(proc.pid, 0)
                    proc.returncode = -9
                    break
                time.sleep(0.005)
            rest = report.read().split()
        rss = int(rest[0]) if rest else 0
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return Result(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds, rss)


def cli(root: Path, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None, **kw: Any) -> Result:
    return run(["-C", str(root), *args], timeout=timeout, env=env, **kw)


class DaemonProc:
    """`cronfile daemon` as a child process of its own session, its output in a file."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None, tag: str = "") -> None:
        self.root = root
        self.log_path = root / f"daemon-{tag or time.monotonic_ns()}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cronfile", "-C", str(root), "daemon"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or child_env(),
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_log(self, needle: str, timeout: float = 15.0, count: int = 1) -> None:
        def seen() -> bool:
            n = self.text().count(needle)
            if n < count and not self.alive():
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            return n >= count

        wait_for(seen, timeout, what=f"{count}x {needle!r} in the daemon's log")

    def kill9(self) -> int:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(15)
        self._log.close()
        return code

    def stop(self, timeout: float = 40.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> DaemonProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill9()



# -- what the runs left behind ---------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    job: str
    scheduled_for: str
    run_id: str
    pid: int
    trigger: str


def read_marks(root: Path) -> list[Mark]:
    out = []
    for path in sorted((root / "marks").glob("*")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 4:
                out.append(Mark(path.name, parts[0], parts[1], int(parts[2]), parts[3]))
    return out


@dataclass
class Records:
    """Every history file of a state dir, read line by line."""

    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # job -> run id -> merged
    finals: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job, run id) -> status lines
    torn: int = 0  # lines that are not JSON (a torn write)
    torn_last: int = 0  # of those, how many are the file's last line
    conflicts: list[str] = field(default_factory=list)  # a run recorded with two statuses


def _history_lines(state_dir: Path) -> list[tuple[str, list[bytes]]]:
    """(job, its history records as bytes) from state.db, else the history.jsonl files."""
    if (state_dir / "state.db").exists():
        from cronfile.stores.sqlite import SqliteStore

        store = SqliteStore(state_dir)
        return [(job, [json.dumps(r).encode() for r in store.read_history(job)]) for job in store.history_jobs()]
    out = []
    for hist in sorted((state_dir / "runs").glob("*/history.jsonl")):
        out.append((hist.parent.name, [ln for ln in hist.read_bytes().split(b"\n") if ln.strip()]))
    return out


def read_records(state_dir: Path) -> Records:
    rec = Records()
    for job, lines in _history_lines(state_dir):
        merged: dict[str, dict[str, Any]] = {}
        statuses: dict[str, str] = {}
        for i, line in enumerate(lines):
            try:
                r = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                rec.torn += 1
                rec.torn_last += i == len(lines) - 1
                continue
            rid = r.get("run_id")
            if not rid:
                continue
            if "status" in r:
                rec.finals[(job, rid)] += 1
                if rid in statuses and statuses[rid] != r["status"]:
                    rec.conflicts.append(f"{job} {rid}: {statuses[rid]} then {r['status']}")
                statuses[rid] = r["status"]
            merged.setdefault(rid, {}).update(r)
        rec.runs[job] = merged
    return rec


def read_state(state_dir: Path) -> dict[str, Any]:
    """The state, which must always be readable: state.db through the store, else
    state.json as JSON that State.decode accepts."""
    from cronfile.state import State

    if (state_dir / "state.db").exists():
        from cronfile.stores.sqlite import SqliteStore

        return SqliteStore(state_dir).read().encode()
    data = json.loads((state_dir / "state.json").read_bytes())
    State.decode(data)
    return data


def running_ids(state: dict[str, Any]) -> dict[str, str]:
    """run id -> job of every run the state says is in flight (orphans included)."""
    out = {r["run_id"]: name for name, js in state["jobs"].items() for r in js["running"]}
    out.update({r["run_id"]: r.get("job", "?") for r in state.get("orphans", [])})
    return out


def duplicates(marks: list[Mark], records: Records) -> list[str]:
    """Scheduled instants executed more than once, by the jobs' own marks and by the run
    records (manual runs have no instant and are left out)."""
    dups = []
    by_mark = Counter((m.job, m.scheduled_for) for m in marks if m.trigger != "manual")
    dups += [f"marks: {job} {when} x{n}" for (job, when), n in by_mark.items() if n > 1]
    by_record: Counter[tuple[str, str]] = Counter()
    for job, runs in records.runs.items():
        for r in runs.values():
            if r.get("status") in ("missed", "skipped") or r.get("trigger") == "manual":
                continue
            if r.get("scheduled_for"):
                by_record[(job, r["scheduled_for"])] += 1
    dups += [f"records: {job} {when} x{n}" for (job, when), n in by_record.items() if n > 1]
    return dups
