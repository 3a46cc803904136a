"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, ``initdb`` and
``pg_ctl`` in a temporary folder, listening on a free port of 127.0.0.1 (no Unix socket).

Run as root (CI), the server runs as the ``postgres`` user (``runuser``), which PostgreSQL
insists on. One server per session (``pg_server``); each test that asks for ``pg_url``
gets a database of its own, dropped afterwards. Missing binaries fail in CI with the
install command (.ci/run installs them) and skip elsewhere, like ``require_program``.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL = "apt-get install -y postgresql"


def _missing(what: str) -> None:
    message = f"{what} is not installed; install it with: {INSTALL} (and pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pg_bin() -> Path:
    """The folder of initdb and pg_ctl (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    _missing("PostgreSQL (initdb, pg_ctl)")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A throwaway PostgreSQL cluster."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="cronfile-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._n = itertools.count(1)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self.base.chmod(0o755)
        r = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr or r.stdout}")
        # Speed over durability: a test server's data is thrown away.
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", opts, "-w", "-t", "60", "start")
        if r.returncode != 0:
            log = (self.base / "server.log").read_text(errors="replace") if (self.base / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr or r.stdout}\n{log[-2000:]}")

    def url(self, db: str = "postgres", *, password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_db(self) -> str:
        name = f"t{os.getpid()}_{next(self._n)}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_db(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


SERVER: PgServer | None = None  # the session's, while it runs (tests/stores/backends.py)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session."""
    global SERVER
    bindir = pg_bin()
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg (the cronfile[postgres] extra)")
    server = PgServer(bindir)
    server.start()
    SERVER = server
    try:
        yield server
    finally:
        SERVER = None
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database, dropped after the test."""
    name = pg_server.create_db()
    try:
        yield pg_server.url(name)
    finally:
        for _ in range(3):
            try:
                pg_server.drop_db(name)
                break
            except Exception:
                time.sleep(0.5)


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to the server, that can be cut (a network partition that
    closes every connection through it) or frozen (one that drops every packet: nothing
    passes either way, and neither end hears that the other is gone, as with a cable
    pulled; ``thaw`` delivers what was held, a close too)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.flowing = threading.Event()  # cleared while frozen
        self.flowing.set()
        self.held: list[socket.socket] = []  # connections made while frozen (never answered)
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.up.is_set():
                c.close()
                continue
            with self.lock:
                if not self.flowing.is_set():
                    self.held.append(c)  # a connect that times out, as into a black hole
                    continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                if not self.up.is_set():
                    # Cut while this one was being connected (after the check above): it
                    # is part of the partition. Registered after the cut's close, it
                    # outlived it, and the partition was not one.
                    for s in (c, u):
                        s.close()
                    continue
                self.conns += [c, u]
            for x, y in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        self.flowing.wait()  # (a close, too, waits for the thaw)
        for s in (src, dst):
            # shutdown first: a close alone neither wakes the other direction's thread
            # blocked in recv on the same socket nor sends the FIN (the kernel keeps the
            # socket while that recv runs), and the other end never heard it was closed.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.up.set()

    def freeze(self) -> None:
        with self.lock:
            self.flowing.clear()

    def thaw(self) -> None:
        with self.lock:
            held, self.held = self.held, []
            self.flowing.set()
        for c in held:
            c.close()
