"""memtrim.release runs after every daemon apply: it must never fail its caller."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_release_does_nothing_on_a_python_without_ctypes() -> None:
    # sys.modules["ctypes"] = None makes `import ctypes` raise ImportError, as on a
    # Python built without _ctypes.
    code = (
        "import sys\n"
        "sys.modules['ctypes'] = None\n"
        "from cronfile import memtrim\n"
        "memtrim.release()\n"
        "memtrim.release()\n"
        "print('ok', memtrim._malloc_trim())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok None\n", "")


def test_release_trims_with_glibc() -> None:
    import platform

    from cronfile import memtrim

    memtrim.release()
    if platform.libc_ver()[0] == "glibc":
        assert callable(memtrim._malloc_trim())
    else:
        assert memtrim._malloc_trim() is None
