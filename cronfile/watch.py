"""The file watcher: the one place that imports watchfiles.

Built on watchfiles' RustNotify (the notifier under ``watchfiles.watch``) so that the
watch is in place when ``start`` returns. Two watches, each on a background thread: ``jobs.d`` recursively (job files), and the
repo root plus the state dir non-recursively (``cronfile.yaml``, and ``state.json``
replaced by an ``apply`` from another process). Watching the state dir recursively would
wake the daemon on every log line a run writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .load import CONFIG_NAME, JOBS_DIR, SUFFIXES

# watchfiles groups events: it yields once no new event came for STEP_MS (at most
# DEBOUNCE_MS after the first), so an editor's write-rename-chmod is one reload.
STEP_MS = 50
DEBOUNCE_MS = 1600


class Watcher:
    def __init__(self, root: Path, state_dir: Path, on_change: Callable[[set[str]], None]) -> None:
        self.root = Path(root).resolve()
        self.jobs_dir = self.root / JOBS_DIR
        self.state_dir = Path(state_dir).resolve()
        self.on_change = on_change
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()

    def classify(self, path: str) -> str | None:
        p = Path(path)
        if p.name == CONFIG_NAME and p.parent == self.root:
            return "files"
        if p.parent == self.state_dir and p.name == "state.json":
            return "state"
        try:
            p.relative_to(self.jobs_dir)
        except ValueError:
            return None
        # A folder event (created, renamed) or a job file; editors' temp files are not.
        if p.suffix in SUFFIXES or not p.suffix:
            return "files"
        return None

    def _open(self, paths: list[Path], recursive: bool) -> Any:
        """Establish a watch now (not lazily on a thread), so that when ``start`` returns
        every later change is seen; the caller re-checks the files once after it."""
        from watchfiles._rust_notify import RustNotify

        return RustNotify([str(p) for p in paths], False, False, 300, recursive, True)

    def _loop(self, notify: Any) -> None:
        try:
            with notify:
                while not self._stop.is_set():
                    raw = notify.watch(DEBOUNCE_MS, STEP_MS, 5000, self._stop)
                    if raw in ("timeout", "signal"):
                        continue
                    if raw == "stop":
                        return
                    kinds = {k for _, path in raw if (k := self.classify(path))}
                    if kinds:
                        self.on_change(kinds)
        except Exception as e:  # noqa: BLE001 - a dead watcher must not kill the daemon
            if not self._stop.is_set():
                print(f"cronfile: file watcher stopped: {e}; restart the daemon to watch again", flush=True)

    def start(self) -> None:
        plans: list[tuple[list[Path], bool]] = [([self.root, self.state_dir], False)]
        if self.jobs_dir.is_dir():
            plans.append(([self.jobs_dir], True))
        for paths, recursive in plans:
            notify = self._open(paths, recursive)
            t = threading.Thread(target=self._loop, args=(notify,), name="watch", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=6)
