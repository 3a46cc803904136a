"""A real daemon with `--http 127.0.0.1:0 --log-format json`, and plain HTTP against it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from engine_helpers import Daemon


class HttpDaemon(Daemon):
    """`cronfile daemon --http 127.0.0.1:0 --log-format json`: the port comes from its
    `http.listening` log line."""

    def __init__(self, root: Path, *extra: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        super().__init__(root, *extra, env=env, args=("--http", "127.0.0.1:0", "--log-format", "json", *args))
        self.url = ""

    def __enter__(self) -> HttpDaemon:
        super().__enter__()
        line = self.wait_log(r'"event": "http.listening"')[0]
        self.url = json.loads(line)["url"]
        return self

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.text().splitlines() if ln.startswith("{")]


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()
