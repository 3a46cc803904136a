"""Shared helpers of the benchmarks: arguments, percentiles, tables, /proc readings,
running cronfile, and finding the peers (APScheduler 3, Debian cron).

Not a benchmark itself (CI runs ``bench/bench_*.py``). Standard library only: the
benchmarks run from a fresh clone with nothing but cronfile installed; a peer that is
missing is skipped with a printed reason.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- arguments and output ----------------------------------------------------------------


def parser(description: str, sizes_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tiny", action="store_true", help="CI size: a few seconds, no peer that needs apt")
    p.add_argument("sizes", nargs="*", type=int, help=sizes_help)
    p.add_argument("--keep", action="store_true", help="keep the temporary folders (printed)")
    return p


def header(title: str, args: argparse.Namespace) -> None:
    """What was measured where: noisy machines make figures meaningless without it."""
    load = os.getloadavg()
    print(f"# {title}, cronfile at {_revision()}")
    print(
        f"# python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {'tiny' if args.tiny else 'full'} size"
    )


def _revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return rev or "an unknown revision"


def note(text: str) -> None:
    print(f"note: {text}", flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table (numbers right, text left), printed at once."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_num(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    print(line(list(headers)))
    print(line(["-" * w for w in widths]))
    for r in cells:
        print(line(r))
    print(flush=True)


def _is_num(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[0-9.,]+( ?[a-zA-Z%/]+)?|x[0-9.]+|[0-9.]+x|-|n/a", text))


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as "x1.7"; "-" when either is missing."""
    if a is None or b is None or b == 0:
        return "-"
    return f"x{a / b:.2f}" if a / b < 10 else f"x{a / b:.0f}"


# -- statistics ----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    return quantile(values, 0.5)


# -- /proc -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (exited ones included), not its children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_switches(pid: int) -> dict[int, int]:
    """Context switches per live thread (voluntary + involuntary): each one is the thread
    going to sleep and being woken again, i.e. a wake-up."""
    out: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                text = f.read()
        except OSError:
            continue
        n = sum(int(m) for m in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", text, re.M))
        out[int(tid)] = n
    return out


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (utime+stime) per live thread."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) / 1024 if m else 0.0


# -- commands ----------------------------------------------------------------------------------


_COMPILED: list[str] = []


def compile_cronfile() -> str:
    """Compile the cronfile package to bytecode once, as ``pip install`` does, and say so.

    With ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines and CI images) and an
    editable install, every ``cronfile`` the benchmarks start would otherwise compile the
    whole package again (0.5-0.7 s), a cost no installed copy pays. The .pyc files go to
    the package's ``__pycache__`` (git-ignored); Python reads them whatever that variable
    says. Returns the note printed (once per process)."""
    if _COMPILED:
        return _COMPILED[0]
    import compileall

    spec = importlib.util.find_spec("cronfile")
    where = list(spec.submodule_search_locations or []) if spec else []
    if not where:
        text = "cronfile not importable here: its bytecode not compiled"
    else:
        ok = all(compileall.compile_dir(d, quiet=2) for d in where)
        count = sum(1 for d in where for _ in Path(d).rglob("*.py"))
        flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
        text = (
            f"cronfile compiled to bytecode ({count} modules in {', '.join(where)}) as an installed copy is"
            + (f"; PYTHONDONTWRITEBYTECODE={flag} here would otherwise recompile it at each start" if flag else "")
            + ("" if ok else " (some modules FAILED to compile)")
        )
    _COMPILED.append(text)
    note(text)
    return text


def cronfile_argv() -> list[str]:
    """The `cronfile` console script beside this interpreter (what users run); else
    ``python -m cronfile``. Its package is compiled to bytecode first (compile_cronfile)."""
    compile_cronfile()
    script = Path(sys.executable).parent / "cronfile"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cronfile"]


@dataclass
class Timed:
    seconds: float
    returncode: int
    max_rss_mb: float
    output: str = ""


def run_timed(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, ok: Sequence[int] = (0,)) -> Timed:
    """Wall time and peak RSS (wait4's rusage, this child only) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read() if proc.stdout else b""))
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = b"".join(out_chunks).decode(errors="replace")
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{output[-2000:]}")
    return Timed(elapsed, proc.returncode, usage.ru_maxrss / 1024, output)


@contextlib.contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix=f"cronfile-bench-{prefix}-"))
    # cronfile's parse cache (cronfile/parsecache.py) for this run only: each run starts
    # cold, and ~/.cache is left alone.
    old = os.environ.get("CRONFILE_CACHE_DIR")
    os.environ["CRONFILE_CACHE_DIR"] = str(d / "parse-cache")
    try:
        yield d
    finally:
        if old is None:
            os.environ.pop("CRONFILE_CACHE_DIR", None)
        else:
            os.environ["CRONFILE_CACHE_DIR"] = old
        if keep:
            note(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


class Daemon:
    """A long-running process whose output lines are collected with their arrival time
    (time.time()), so a benchmark can wait for a line and time it."""

    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its children are its own; our ^C does not reach them
        )
        self.pid = self.proc.pid
        self.lines: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> tuple[int, float, str]:
        """The first line at index >= ``start`` matching ``pattern``: (index, arrival, line)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            i = start
            while True:
                while i < len(self.lines):
                    at, text = self.lines[i]
                    if rx.search(text):
                        return i, at, text
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and i >= len(self.lines)):
                    tail = "\n".join(t for _, t in self.lines[-20:])
                    raise TimeoutError(f"no line matching {pattern!r} within {timeout:g}s from {self.argv[:3]}...; last lines:\n{tail}")
                self._cv.wait(min(left, 0.5))

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM to this process only (its pid, never a name), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=5)


# -- peers -------------------------------------------------------------------------------------


def apscheduler_missing() -> str | None:
    """None if APScheduler 3 is importable, else why not."""
    if importlib.util.find_spec("apscheduler") is None:
        return "APScheduler 3 is not installed (pip install 'apscheduler<4', or the bench extra)"
    from importlib.metadata import version

    v = version("apscheduler")
    if not v.startswith("3."):
        return f"APScheduler {v} is installed; these benchmarks drive the 3.x API (pip install 'apscheduler<4')"
    return None


def aps_argv(*args: str) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "_aps_runner.py"), *args]


CRON_BIN = Path("/usr/sbin/cron")
CRON_D = Path("/etc/cron.d")


def cron_missing(tiny: bool) -> str | None:
    """None if Debian's cron can be run by this benchmark here, else why not."""
    if tiny:
        return "Debian cron is skipped at --tiny (it needs apt, root and minute-long runs)"
    if not sys.platform.startswith("linux"):
        return "Debian cron is measured on Linux only"
    if not CRON_BIN.exists():
        return f"{CRON_BIN} is missing (apt-get install -y cron)"
    if os.geteuid() != 0:
        return "Debian cron reads /etc/cron.d and runs jobs as their user: the benchmark must run as root"
    if not CRON_D.is_dir() or not os.access(CRON_D, os.W_OK):
        return f"{CRON_D} is not writable"
    running = other_cron_pids()
    if running:
        return f"a cron daemon is already running (pid {', '.join(map(str, running))}); the benchmark starts its own and will not touch that one"
    return None


def other_cron_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "cron":
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


@dataclass
class CronRun:
    """Debian cron started in the foreground with one crontab in /etc/cron.d (removed
    again on exit). Debian cron has no option for another crontab folder, so the
    system's /etc/crontab is loaded too; its jobs run at :17 past the hour and at 06:25."""

    lines: list[str]
    name: str = field(default_factory=lambda: f"cronfile-bench-{os.getpid()}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def path(self) -> Path:
        return CRON_D / self.name  # no dot in the name: Debian cron skips such files

    def __enter__(self) -> CronRun:
        self.path.write_text("SHELL=/bin/sh\nPATH=/usr/bin:/bin\n" + "\n".join(self.lines) + "\n")
        self.path.chmod(0o644)
        self.proc = subprocess.Popen([str(CRON_BIN), "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"cron -f exited at once with {self.proc.returncode}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
