"""`cronfile daemon`: the engine with what watches it (log format, HTTP, systemd).

Flags win over cronfile.yaml: ``--log-format`` over ``log_format``, ``--http`` over
``http``. The HTTP server is off unless one of them asks for it.
"""

from __future__ import annotations

import argparse
import gc
import os
from typing import TYPE_CHECKING

from .errors import SpecError, UsageError

if TYPE_CHECKING:
    from .console import Out

__all__ = ["cmd_daemon", "log_format_of"]


def log_format_of(args: argparse.Namespace, config_data: dict[str, object]) -> str:
    from .logfmt import FORMATS

    fmt = getattr(args, "log_format", None) or config_data.get("log_format") or "text"
    if fmt not in FORMATS:
        raise UsageError(f"--log-format {fmt}: use text or json")
    return str(fmt)


def cmd_daemon(args: argparse.Namespace, out: Out) -> int:
    from .console import EXIT_OK, load_repo, refuse_inside_run, store_of
    from .engine import Engine
    from .executors.process import close_inherited_fds
    from .health import Health
    from .observe import Observers
    from .sdnotify import from_environ

    refuse_inside_run("start a daemon")
    # Descriptors this daemon inherited become close-on-exec, so that its jobs can be
    # started by os.posix_spawn (executors/process.py) and still get none of them.
    close_inherited_fds()
    project = load_repo(args, warnings=False)
    if project.errors:
        raise SpecError(project.errors)
    data = dict(project.config.data or {})
    fmt = log_format_of(args, data)
    http = getattr(args, "http", None)
    listen = None
    if http or data.get("http") not in (None, "", False):
        # Imported only for a daemon that serves: http.server brings ssl and email
        # (6 MB of every daemon's memory, issue 17).
        from .httpserve import StatusServer, parse_listen

        if http:
            listen = parse_listen(http)
        else:
            listen = parse_listen(data["http"], what=f"{project.config.path}: http:")
    store = store_of(args, project)
    health = Health(store.write_problem)
    observers = Observers([health])
    # Read (and removed from the environment the jobs inherit) before the engine copies it.
    notifier = from_environ(os.environ, alive=health.loop_problem)
    if notifier is not None:
        observers.add(notifier)
    engine = Engine(project.root, store, project=project, mode="daemon", quiet=out.quiet, log_format=fmt, observer=observers)
    server = None
    with engine:
        if listen is not None:
            try:
                server = StatusServer(listen, root=project.root, store=store, environ=engine.environ, health=health)
            except OSError as e:
                raise UsageError(f"--http {listen.host}:{listen.port}: cannot listen: {e.strerror or e}") from None
            observers.add(server.metrics)
            server.start()
            engine.log("", f"serving {server.url} (status page), {server.url}metrics, {server.url}healthz", event="http.listening", url=server.url)
        # The jobs just loaded live as long as the daemon: move them out of the cyclic
        # GC's sight. At 10,000 jobs a full collection walks millions of objects and
        # landed, 0.1-0.3 s at a time, in the middle of reloads and claims.
        gc.collect()
        gc.freeze()
        # A run allocates some thousands of objects that refcounting frees: at the default
        # 700 a young collection came every few runs (0.25 ms each, the GIL held), and
        # every tenth one an older (1-4 ms). 20,000 makes them about 5x rarer: 0.15 ->
        # 0.05 s of collections over 1,800 runs at 200 a second (issue 17 round 6).
        gc.set_threshold(20_000, 20, 20)
        from .memtrim import release

        release()  # the load's and the state read's freed blocks, back to the system
        try:
            engine.serve()
        finally:
            if server is not None:
                server.stop()
    return EXIT_OK
