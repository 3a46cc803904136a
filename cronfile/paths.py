"""What a job may read and where it may run: inside the jobs repo, nothing else.

``context.files`` are regular files inside the repo after resolving symlinks, each at
most ``context_file_limit`` bytes and all of a job's together at most
``context_total_limit``; ``workdir`` and a ``context.script`` that names a file
(``./gather.sh``) resolve inside the repo too. One function per rule, used three times
with the same words: by ``validate`` (an error at file:line:col), at run time (the file
may have changed since: the run is ``refused`` with the reason, never a hang on a FIFO
or a read of /dev/zero), and by ``render kubernetes`` (refused).

Reading is careful: the path is resolved first, then opened with O_NONBLOCK (a FIFO
does not block the open) and checked with fstat on the open descriptor (what is read is
what was checked), and at most the limit plus one byte is read.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import Any

from .errors import Problem

__all__ = [
    "PathRefused",
    "check_context_file",
    "path_problems",
    "read_context_files",
    "script_path",
    "within",
]


class PathRefused(Exception):
    """A path a job names is not allowed (the message says why)."""


def within(root: Path, path: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root`` (resolved)."""
    try:
        path.resolve().relative_to(root.resolve())
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop (3.11)
        return False
    return True


def check_context_file(root: Path, rel: str, limit: int) -> str | None:
    """Why context file ``rel`` cannot be used (None: it can). A missing file is not a
    reason here (validate warns; the run fails to read it)."""
    if os.path.isabs(rel):
        return f"context file {rel} is outside the jobs repo (an absolute path)"
    path = root / rel
    if not within(root, path):
        return f"context file {rel} is outside the jobs repo (after resolving symlinks)"
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"context file {rel} cannot be read: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return f"context file {rel} is not a regular file"
    if st.st_size > limit:
        return f"context file {rel} has {st.st_size} bytes, more than context_file_limit ({limit})"
    return None


def script_path(spec: Any) -> str | None:
    """The file a ``context.script`` names, if its first word is a path (``./x.sh``)."""
    script = spec.context.script
    if not script:
        return None
    try:
        words = shlex.split(script)
    except ValueError:
        words = script.split()
    first = words[0] if words else ""
    return first if "/" in first else None


def _workdir_reason(root: Path, workdir: str) -> str | None:
    if workdir == ".":
        return None  # the repo itself (most jobs: two realpath walks per run saved)
    if os.path.isabs(workdir) or not within(root, root / workdir):
        return f"workdir {workdir} is outside the jobs repo"
    return None


def _script_reason(root: Path, spec: Any) -> str | None:
    first = script_path(spec)
    if first is None:
        return None
    if os.path.isabs(first) or not within(root, root / spec.workdir / first):
        return f"context.script {first} is outside the jobs repo"
    return None


def path_problems(spec: Any, root: Path, config: Any) -> list[Problem]:
    """Every path rule ``spec`` breaks, each at its file:line:col (validate)."""
    out: list[Problem] = []
    why = _workdir_reason(root, spec.workdir)
    if why:
        out.append(Problem(spec.source, *spec.where("workdir"), "workdir", why))
    why = _script_reason(root, spec)
    if why:
        out.append(Problem(spec.source, *spec.where("context", "script"), "context.script", why))
    total = 0
    for i, rel in enumerate(spec.context.files):
        why = check_context_file(root, rel, config.context_file_limit)
        if why:
            out.append(Problem(spec.source, *spec.where("context", "files", i), f"context.files[{i}]", why))
            continue
        try:
            total += (root / rel).stat().st_size
        except OSError:
            continue
        if total > config.context_total_limit:
            why = f"context files of this job have {total} bytes up to {rel}, more than context_total_limit ({config.context_total_limit})"
            out.append(Problem(spec.source, *spec.where("context", "files", i), f"context.files[{i}]", why))
            break
    return out


def run_paths_reason(root: Path, spec: Any) -> str | None:
    """At run time: why the run's workdir or context script is not allowed (None: ok)."""
    return _workdir_reason(root, spec.workdir) or _script_reason(root, spec)


def read_context_files(root: Path, rels: list[str] | tuple[str, ...], file_limit: int, total_limit: int) -> list[tuple[str, str]]:
    """(rel, text) of each context file. Raises PathRefused for a file that breaks a
    rule (it may have changed since validate), OSError for one that cannot be read."""
    out = []
    total = 0
    for rel in rels:
        why = check_context_file(root, rel, file_limit)
        if why:
            raise PathRefused(why)
        real = (root / rel).resolve()
        # O_NONBLOCK: if it became a FIFO since the check, the open does not wait for a
        # writer; fstat on the descriptor then refuses it.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PathRefused(f"context file {rel} is not a regular file")
            if not within(root, real):
                raise PathRefused(f"context file {rel} is outside the jobs repo (after resolving symlinks)")
            chunks, got = [], 0
            while got <= file_limit:
                chunk = os.read(fd, min(1024 * 1024, file_limit + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        finally:
            os.close(fd)
        if got > file_limit:
            raise PathRefused(f"context file {rel} has more than context_file_limit ({file_limit}) bytes")
        total += got
        if total > total_limit:
            raise PathRefused(f"context files of this job have more than context_total_limit ({total_limit}) bytes")
        out.append((rel, b"".join(chunks).decode("utf-8", errors="replace")))
    return out
