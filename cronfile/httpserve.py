"""``cronfile daemon --http HOST:PORT``: metrics, health and the status page over HTTP.

Read-only by construction: only GET and HEAD are answered (anything else is 405), and
no route changes anything. Served from threads of the daemon's process with the
standard library's ``ThreadingHTTPServer`` (a scrape every 15 s and a person's browser
need no more); each request reads the state through its own ``Store`` (lock-free reads
of the atomically replaced state.json).

Routes:
- ``/metrics``: Prometheus text format (metrics.py).
- ``/healthz``: ``200 ok`` while the loop is alive and the state writable, else ``503``
  with the reasons, one a line (health.py).
- ``/``: the status page (statuspage.py); ``/jobs/NAME/runs/RUN_ID/log``: a run's log.
"""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import __version__
from .errors import CronfileError, UsageError
from .health import Health
from .secrets import Masker

if TYPE_CHECKING:
    from .stores.base import Store

__all__ = ["Listen", "StatusServer", "parse_listen"]

_HOST_PORT = re.compile(r"^(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):)?(?P<port>[0-9]{1,5})$")
_LOG_RE = re.compile(r"^/jobs/([^/]+)/runs/([^/]+)/log$")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
RECENT_RUNS = 10
REQUEST_TIMEOUT_S = 10.0


class Listen(tuple[str, int]):
    """(host, port) to bind."""

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]


def parse_listen(text: str | int, *, what: str = "--http") -> Listen:
    """``HOST:PORT``, ``[::1]:PORT`` or a bare ``PORT`` (then 127.0.0.1: off the network
    unless asked). Port 0 picks a free port (the log says which)."""
    raw = str(text).strip()
    m = _HOST_PORT.match(raw)
    if not m:
        raise UsageError(f"{what} {raw!r}: expected HOST:PORT or PORT (e.g. 127.0.0.1:9100)")
    port = int(m.group("port"))
    if port > 65535:
        raise UsageError(f"{what} {raw!r}: port {port} is out of range (0-65535)")
    host = m.group("host")
    if host is None:
        host = "127.0.0.1"
    elif host == "":
        raise UsageError(f"{what} {raw!r}: name the address (0.0.0.0 for every interface, 127.0.0.1 for this host)")
    return Listen((host.strip("[]"), port))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: Listen, app: StatusServer) -> None:
        import socket

        if ":" in listen.host:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__((listen.host, listen.port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"cronfile/{__version__}"
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # requests are not logged: a scrape every 15 s would drown the daemon's log

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _refuse(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"read-only: only GET and HEAD\n", head=False, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _send(self, code: int, ctype: str, body: bytes, *, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The page has inline style and nothing else: no script, no outside request.
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; frame-ancestors 'none'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, *, head: bool) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        try:
            if path == "/metrics":
                self._send(200, app.content_type, app.metrics.render(), head=head)
            elif path in ("/healthz", "/health"):
                ok, reasons = app.health.check()
                body = ("ok\n" if ok else "".join(f"{r}\n" for r in reasons)).encode()
                self._send(200 if ok else 503, "text/plain; charset=utf-8", body, head=head)
            elif path == "/":
                self._send(200, "text/html; charset=utf-8", app.page().encode(), head=head)
            elif (m := _LOG_RE.match(path)) is not None:
                found = app.log_page(unquote(m.group(1)), unquote(m.group(2)))
                if found is None:
                    self._send(404, "text/plain; charset=utf-8", b"no such run log\n", head=head)
                else:
                    self._send(200, "text/html; charset=utf-8", found.encode(), head=head)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /, /metrics or /healthz\n", head=head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except (OSError, CronfileError, ValueError) as e:
            self._send(500, "text/plain; charset=utf-8", f"cannot read the state: {e}\n".encode(), head=head)


class StatusServer:
    """The HTTP side of one daemon: owns its Metrics; reads the Health it is given."""

    def __init__(self, listen: Listen, *, root: Path, store: Store, environ: dict[str, str], health: Health) -> None:
        from .metrics import CONTENT_TYPE, Metrics  # prometheus-client: only with --http
        from .parsecache import ParseCache

        self.root = Path(root)
        self.store = store
        self.environ = environ
        self.health = health
        self.metrics = Metrics(self._read_state, self._read_history)
        self.content_type = CONTENT_TYPE
        self._cache = ParseCache()
        self._page_lock = threading.Lock()  # one page build at a time (its caches)
        self._schedules: dict[tuple[str, str, str], Any] = {}
        self._httpd = _Server(listen, self)
        self._thread: threading.Thread | None = None

    # The state and histories, read with this server's own Store (not the engine's).
    def _read_state(self) -> Any:
        return self.store.read()

    def _read_history(self, job: str) -> list[dict[str, Any]]:
        return self.store.read_history(job)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5}, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- the pages -----------------------------------------------------------------------

    def _masker(self, specs: Any) -> Masker:
        """The values of every ``${VAR}`` the jobs reference: masked wherever shown, as
        the runner masks them in the stored output."""
        values = [self.environ[v] for s in specs for v in s.env_refs() if v in self.environ]
        return Masker(values)

    def page(self) -> str:
        from .history import merged_history
        from .load import load_project
        from .render import status_rows
        from .schedule import ScheduleError, get_zone
        from .spec import spec_from_data
        from .state import JobStatus
        from .statuspage import HORIZON, next_fires, render_page

        with self._page_lock:
            now = datetime.now(UTC)
            project = load_project(self.root, now=now, cache=self._cache, warnings=False)
            state = self.store.read()
            names = sorted(set(state.jobs) | {s.name for s in project.specs})
            runs = {n: [r for r in merged_history(self.store, n, RECENT_RUNS + 5) if r.get("status")][-RECENT_RUNS:] for n in names}
            rows = status_rows(project.specs if project.ok else None, state, runs, now, engine_running=True)
            zones: dict[str, Any] = {}
            fires: dict[str, list[datetime]] = {}
            applied_specs = []
            for row in rows:
                name = row["name"]
                try:
                    zones[name] = get_zone(row.get("timezone") or "UTC")
                except ScheduleError:
                    zones[name] = UTC
                js = state.jobs.get(name)
                if js is None or js.state is not JobStatus.scheduled:
                    continue
                spec = spec_from_data(js.spec)
                applied_specs.append(spec)
                # The name too: the jitter offset comes from it (schedule_sig leaves it out).
                key = (name, js.schedule_sig, js.created_at.isoformat() if js.created_at else "")
                sched = self._schedules.get(key)
                if sched is None:
                    sched = self._schedules[key] = spec.build_schedule(created_at=js.created_at)
                if js.next_run is None:  # no fire left (a dated schedule that has passed)
                    fires[name] = []
                    continue
                # A next_run already past (due, or overdue while the engine catches up) is
                # not drawn; the schedule's fires from now on are.
                end = now + HORIZON
                first = [js.next_run] if now <= js.next_run <= end else []
                fires[name] = first + next_fires(sched, max(now, js.next_run), end)
            masker = self._masker([*project.specs, *applied_specs])
            problems = []
            if project.errors:
                problems.append(f"jobs.d has {len(project.errors)} problem(s); the daemon keeps the last good set (run cronfile validate)")
            problems += self.health.check()[1]
            rev = state.revision if getattr(state, "revision", None) else None
            applied = state.applied_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if state.applied_at else "never"
            meta = [
                f"{len(state.jobs)} jobs applied {applied}" + (f" (revision {rev[:12]})" if rev else ""),
                f"daemon pid {os.getpid()}, cronfile {__version__}",
                f"as of {now.astimezone().strftime('%H:%M:%S %Z')}, refreshes itself",
            ]
            return render_page(rows, runs, fires, now, zones=zones, title=f"cronfile · {self.root.resolve().name}", meta=meta, problems=problems, masker=masker)

    def log_page(self, job: str, run_id: str) -> str | None:
        """A run's log (masked, escaped), or None when there is no such run log."""
        from .load import load_project
        from .spec import NAME_RE
        from .statuspage import render_log

        if not NAME_RE.match(job) or not _RUN_ID_RE.match(run_id) or run_id.startswith("."):
            return None
        limit = 4 * 1024 * 1024
        try:
            data = self.store.read_log(job, run_id, limit=limit + 1)
        except ValueError:
            return None  # not a name that can be a run's
        if data is None:
            # A run that printed nothing has no file (runlog.py): an empty log if the run
            # is recorded with one.
            from .history import merged_history

            if not any(r.get("run_id") == run_id and r.get("log_path") for r in merged_history(self.store, job, None)):
                return None
            data = b""
        text = data[:limit].decode("utf-8", errors="replace")
        if len(data) > limit:
            text += "\n[... cut at 4 MiB]"
        with self._page_lock:
            project = load_project(self.root, cache=self._cache, warnings=False)
        return render_log(job, run_id, text, masker=self._masker(project.specs))
