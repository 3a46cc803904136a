"""Helpers for engine tests: a jobs repo on disk, an in-process engine on a fake clock,
and a real daemon process that tests can signal, kill and read."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cronfile.clock import FakeClock
from cronfile.engine import Engine
from cronfile.history import merged_history
from cronfile.load import load_project
from cronfile.stores.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` seconds.
    The pause starts at 2 ms and doubles up to ``interval``."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, interval)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs. os.kill(pid, 0) also reaches zombies, and a sandbox whose
    PID 1 does not reap leaves killed orphans as zombies for ever: those count as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True  # no /proc (macOS): a reaped orphan is gone, so kill(0) is enough
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def write_job(root: Path, name: str, text: str) -> Path:
    path = root / "jobs.d" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # atomic, like an editor's save: the watcher sees one event
    return path


class LocalEngine:
    """An Engine in this process on a FakeClock; runs are real processes."""

    def __init__(self, root: Path, start: datetime, *, mode: str = "tick") -> None:
        self.root = root
        self.clock = FakeClock(start)
        self.store = SqliteStore(root / ".cronfile")
        self.log = io.StringIO()
        project = load_project(root, now=start)
        assert project.ok, [str(p) for p in project.errors]
        self.engine = Engine(root, self.store, project=project, mode=mode, clock=self.clock, log_stream=self.log)

    def __enter__(self) -> LocalEngine:
        self.engine.__enter__()
        self.engine.apply(self.engine.project, "test")
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.wait_idle(30)
        self.engine.__exit__(*exc)

    def step(self, to: datetime | None = None, *, wait: bool = True) -> list[Any]:
        """Move the clock, claim what is due, start it; optionally wait for the runs."""
        if to is not None:
            self.clock.set(to)
        claims, _ = self.engine.claim_due(self.clock.now())
        self.engine.dispatch(claims)
        if wait:
            assert self.engine.wait_idle(30)
            # Deliveries go through the outbox, beside the runs: their results too.
            assert self.engine.outbox.drain(time.monotonic() + 30)
        return claims

    def state(self, job: str) -> Any:
        return self.store.read().jobs[job]

    def history(self, job: str) -> list[dict[str, Any]]:
        return merged_history(self.store, job, None)


class Daemon:
    """`cronfile daemon` as a real child process, its log in a file."""

    def __init__(
        self,
        root: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.root = root
        self.log_path = root / f"daemon-{time.monotonic_ns()}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cronfile", "-C", str(root), *extra, "daemon", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            pass_fds=pass_fds,  # inherited, as from a careless parent
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 15.0, count: int = 1) -> list[str]:
        rx = re.compile(pattern)

        def found() -> list[str] | None:
            hits = [ln for ln in self.text().splitlines() if rx.search(ln)]
            if self.proc.poll() is not None and len(hits) < count:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.text()}")
            return hits if len(hits) >= count else None

        return wait_for(found, timeout, what=f"{count} log line(s) matching {pattern!r}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def __enter__(self) -> Daemon:
        self.wait_log(r"cronfile daemon \d+ on ")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def state_data(state_dir: Path) -> dict[str, Any]:
    """The state in a state dir as the JSON of docs/design.md section 4."""
    return SqliteStore(state_dir).read().encode()


def state_snapshot(state_dir: Path) -> tuple[int, dict[str, Any]]:
    """The state and its change counter: equal snapshots mean nothing was written."""
    import sqlite3

    with sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True) as conn:
        (seq,) = conn.execute("SELECT seq FROM head").fetchone()
    return seq, state_data(state_dir)


def read_state(root: Path) -> dict[str, Any]:
    """The state as the JSON of docs/design.md section 4 (what state.json held)."""
    return SqliteStore(root / ".cronfile").read().encode()


def history(root: Path, job: str) -> list[dict[str, Any]]:
    return merged_history(SqliteStore(root / ".cronfile"), job, None)


def count_transactions(writer: Any) -> list[int]:
    """Count ``writer``'s transactions from now on (engine's StateWriter): the returned
    list's one item is the count so far."""
    count = [0]
    real_txn = writer.txn

    def counting() -> Any:
        count[0] += 1
        return real_txn()

    writer.txn = counting
    return count
