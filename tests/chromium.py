"""Headless Chromium (Debian's `chromium` package) as a test's browser: a screenshot and
the DOM after load, nothing more. Missing is a failure that says how to install it."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

INSTALL = "apt-get update && apt-get install -y chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def binary() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        raise AssertionError(f"chromium is not installed; the status page is tested in it: {INSTALL}")
    return found


def _run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [binary(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def screenshot(url: str, out: Path, width: int, height: int) -> Path:
    res = _run(f"--window-size={width},{height}", f"--screenshot={out}", url)
    assert out.is_file(), f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-2000:]}"
    return out


def dump_dom(url: str, width: int = 1280) -> str:
    res = _run(f"--window-size={width},900", "--dump-dom", url)
    assert res.returncode == 0 and "<html" in res.stdout, res.stderr[-2000:]
    return res.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])
