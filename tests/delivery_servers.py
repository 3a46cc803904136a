"""Local stand-ins for what deliveries talk to: an HTTP server that records every request
and answers from a script, an SMTP server (aiosmtpd) that keeps every envelope, and a
port where nothing listens. All on 127.0.0.1, all started and stopped by the test.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Recorded",
    "RecordingServer",
    "SmtpSink",
    "closed_port",
    "free_port",
    "self_signed",
]


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


# A scripted answer: a status, or (status, body), or (status, body, headers).
Answer = int | tuple[int, bytes] | tuple[int, bytes, dict[str, str]]


class RecordingServer:
    """``with RecordingServer([500, 500, 200]) as srv:`` answers the first two requests
    with 500, then 200 (and ``default`` once the script runs out); ``srv.requests``
    holds what arrived, in order."""

    def __init__(
        self,
        script: Iterable[Answer] = (),
        default: Answer = 200,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script = list(script)
        self.default = default
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.requests.append(
                        Recorded(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    answer = outer.script.pop(0) if outer.script else outer.default
                status, payload, extra = _unpack(answer, self.path)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        # A short poll so that shutdown() returns at once instead of after up to 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _unpack(answer: Answer, path: str) -> tuple[int, bytes, dict[str, str]]:
    if isinstance(answer, int):
        return answer, b"", {}
    if len(answer) == 2:
        return answer[0], answer[1], {}
    return answer  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting is refused at once."""
    return free_port()


def self_signed(directory: Path, name: str, san: str | None = None) -> tuple[Path, Path] | None:
    """A throwaway certificate and key for ``name`` made by the openssl command, or None
    when there is no openssl to make one."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName={san or 'DNS:' + name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1 keeping every envelope; ``reject_rcpt`` answers RCPT TO
    with that reply (e.g. ``"550 5.1.1 no such user"``)."""

    reject_rcpt: str | None = None
    tls: ssl.SSLContext | None = None  # offer STARTTLS (and require it) with this context
    envelopes: list[Any] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=True)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    @contextmanager
    def running(self) -> Iterator[SmtpSink]:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.tls,
            require_starttls=self.tls is not None,
            authenticator=self._authenticate,
        )
        controller.start()
        try:
            yield self
        finally:
            controller.stop()
