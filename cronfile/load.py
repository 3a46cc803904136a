"""The jobs repo on disk -> a Project: config, job specs, and every problem found.

This is the edge that reads files; the parsing and checking it calls (``yamlsrc``,
``spec``) are pure. Loading never raises for bad input: problems are collected, each
with its file, line and column, and the caller decides (validate lists them, apply
refuses to touch state, the daemon keeps its last good set).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import Problem
from .parsecache import RACY_NS, Entry, ParseCache, config_fingerprint, file_key
from .spec import (
    Config,
    JobSpec,
    config_from_document,
    cross_problems,
    is_job_name,
    job_from_document,
)
from .yamlsrc import MAX_FILE_BYTES, Document, load_documents

CONFIG_NAME = "cronfile.yaml"
JOBS_DIR = "jobs.d"
SUFFIXES = (".yaml", ".yml")
Signature = tuple[tuple[str, int, int, int, int], ...]


@dataclass
class Project:
    root: Path
    config: Config
    specs: list[JobSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    file_names: list[str] = field(default_factory=list)  # the job files read, as walked
    signature: Signature = ()  # (path, inode, size, mtime_ns, ctime_ns) of what was read
    cache: ParseCache | None = field(default=None, repr=False, compare=False)  # what it was loaded with
    # Files read within a clock tick of being written, with a digest of what was read:
    # an equal signature does not prove they are unchanged (see racy_changed).
    racy: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def files(self) -> list[Path]:
        return [Path(f) for f in self.file_names]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def job(self, name: str) -> JobSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    @property
    def jobs_dir(self) -> Path:
        return self.root / JOBS_DIR


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the cwd when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


@dataclass
class _Scan:
    """One walk of the repo: the job files to read, the problems of the walk, and the
    signature of everything the loader would read. Paths are strings: at 10,000 files,
    building Path objects cost more than the walk."""

    files: list[tuple[str, str, os.stat_result | None, str]] = field(default_factory=list)  # path, shown, stat, absolute
    problems: list[Problem] = field(default_factory=list)
    signature: Signature = ()


def _walk(top: str) -> Iterator[tuple[str, list[str], list[os.DirEntry[str]]]]:
    """``os.walk(top, followlinks=True)`` on ``os.scandir``, yielding the file entries
    themselves: their type comes free with the listing, and their path is joined in C
    (at 10,000 files os.walk's pure-Python joins and a second stat per file were most
    of a reload). The caller prunes ``dirs`` in place, as with os.walk."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        dirs: list[str] = []
        files: list[os.DirEntry[str]] = []
        with it:
            for e in it:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                (dirs.append(e.name) if is_dir else files.append(e))  # type: ignore[func-returns-value]
        yield d, dirs, files
        stack.extend(d + "/" + n for n in reversed(dirs))


def _scan(root: Path, jobs_dir: Path, *, signature_only: bool = False) -> _Scan:
    """Walk ``jobs_dir`` once: every ``*.yaml``/``*.yml`` below it, sorted; symlinks that
    lead outside the repo are refused, hidden files and folders skipped, each real folder
    visited once (two symlinks back to jobs.d made a walk branch 2^40 ways before the
    kernel's ELOOP: tests/faults)."""
    scan = _Scan()
    sig: list[tuple[str, int, int, int, int]] = []
    config = str(root / CONFIG_NAME)
    try:
        st = os.stat(config)
        sig.append((config, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    except FileNotFoundError:
        if os.path.islink(config):
            sig.append((config, -1, -1, -1, -1))
    except OSError:
        sig.append((config, -1, -1, -1, -1))
    if not jobs_dir.is_dir():
        scan.signature = tuple(sig)
        return scan
    real_root = root.resolve()
    seen: set[str] = set()
    found: list[tuple[str, tuple[str, str, os.stat_result | None, str]]] = []
    for dirpath, dirnames, entries in _walk(str(jobs_dir)):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if not _inside(Path(real), real_root):
            scan.problems.append(Problem(display_path(Path(dirpath)), message="symlinked folder leads outside the repo; refused"))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        if not signature_only:
            rel = _display_dir(dirpath)
            absdir = os.path.abspath(dirpath)
            # Sorted as Paths sort, by component: with "/" as the lowest character.
            order = dirpath.replace("/", "\0") + "\0"
        for e in sorted(entries, key=lambda e: e.name):
            name = e.name
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            full = e.path
            try:
                st = e.stat()
            except OSError as err:
                # A dangling symlink is still a file the loader reports: let its
                # appearance change the signature, or the daemon never re-reads and never
                # says so (found by tests/faults).
                sig.append((full, -1, -1, -1, -1))
                if not signature_only:
                    shown = full if rel is None else (name if rel == "." else rel + "/" + name)
                    if err.errno == errno.ELOOP:
                        scan.problems.append(Problem(shown, message="symlink loop; refused"))
                    elif e.is_symlink() and not _inside(Path(os.path.realpath(full)), real_root):
                        scan.problems.append(Problem(shown, message="symlink leads outside the repo; refused"))
                    elif os.path.lexists(full):
                        scan.problems.append(Problem(shown, message="not a regular file"))
                continue
            sig.append((full, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            if signature_only:
                continue
            shown = full if rel is None else (name if rel == "." else rel + "/" + name)
            if e.is_symlink() and not _inside(Path(os.path.realpath(full)), real_root):
                scan.problems.append(Problem(shown, message="symlink leads outside the repo; refused"))
                continue
            if not stat.S_ISREG(st.st_mode):
                scan.problems.append(Problem(shown, message="not a regular file"))
                continue
            found.append((order + name, (full, shown, st, absdir + "/" + name)))
    found.sort(key=lambda t: t[0])
    scan.files = [f for _, f in found]
    # In walk order: two walks of the same files give the same order, and any change
    # makes the signatures differ (at worst a reordered folder costs one needless
    # re-check).
    scan.signature = tuple(sig)
    return scan


def _display_dir(dirpath: str) -> str | None:
    """display_path of a folder, for joining its file names to: None when files in it
    are shown by their full path (the folder is not below the cwd)."""
    try:
        rel = os.path.relpath(dirpath)
    except ValueError:
        return None
    return None if rel.startswith("..") else rel


def read_documents(path: Path | str, shown: str | None = None) -> tuple[list[Document], list[Problem]]:
    docs, problems, _ = _read_documents(path, shown)
    return docs, problems


def _read_documents(path: Path | str, shown: str | None = None, racy_out: dict[str, bytes] | None = None) -> tuple[list[Document], list[Problem], os.stat_result | None]:
    """``racy_out`` collects a digest of each file read that changed within RACY_NS of
    being read (see ``racy_changed``)."""
    shown = display_path(Path(path)) if shown is None else shown
    try:
        raw, st = _read_capped(path)
    except _NotRegular:
        return [], [Problem(shown, message="not a regular file")], None
    except OSError as e:
        return [], [Problem(shown, message=f"cannot read: {e.strerror or e}")], None
    if racy_out is not None and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        racy_out[str(path)] = _digest(raw)
    docs, problems = load_documents(raw, shown)
    return docs, problems, st


class _NotRegular(Exception):
    pass


def _read_capped(path: Path | str) -> tuple[bytes, os.stat_result]:
    """The file's bytes, at most MAX_FILE_BYTES + 1 of them (enough for load_documents
    to refuse it as too large), and its stat. Reading it whole first took a sparse 4 GiB
    file into memory; a FIFO named cronfile.yaml blocked for ever (both found by
    tests/faults): so open without blocking, and read only a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular
        chunks: list[bytes] = []
        left = MAX_FILE_BYTES + 1
        # Ask for the size fstat gave (+1 to see growth), then small reads to EOF: each
        # os.read allocates the size it is asked for, and 1 MiB per call (twice per
        # file) cost 0.13 s over 10,000 job files.
        want = st.st_size + 1
        while left > 0:
            ask = min(left, want)
            chunk = os.read(fd, ask)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            if len(chunk) < ask:
                break  # a regular file reads short only at its end: no read for EOF
            want = 1 << 16
        return b"".join(chunks), st
    finally:
        os.close(fd)


def load_config(root: Path, racy_out: dict[str, bytes] | None = None) -> tuple[Config, list[Problem]]:
    path = root / CONFIG_NAME
    if not path.exists():
        return config_from_document(None)
    docs, problems, _ = _read_documents(path, racy_out=racy_out)
    if len(docs) > 1:
        problems.append(Problem(display_path(path), docs[1].line, 1, message="holds more than one YAML document"))
    cfg, more = config_from_document(docs[0] if docs else None)
    if docs:
        cfg = Config(**{**cfg.__dict__, "path": display_path(path)})
    return cfg, problems + more


def parse_file(path: str, shown: str, config: Config, now: datetime, racy_out: dict[str, bytes] | None = None) -> tuple[list[JobSpec], list[Problem], os.stat_result | None]:
    """One job file -> its valid jobs (in file order) and its problems, and the stat of
    what was read. Checks across files (duplicate names, references) come after."""
    docs, problems, st = _read_documents(path, shown, racy_out)
    if not docs and not problems:
        # Not an error: commenting a whole file out is a way to switch its jobs off.
        # But a file truncated by a bad save looks the same, so say so.
        problems.append(Problem(shown, 1, 1, message="holds no job (empty, or only comments)", severity="warning"))
    single = len(docs) == 1
    specs: list[JobSpec] = []
    for doc in docs:
        stem = os.path.splitext(os.path.basename(path))[0]
        spec, more = job_from_document(doc, config, default_name=stem if single else None, now=now)
        problems += more
        if spec is None:
            continue
        if not is_job_name(spec.name):
            problems.append(
                Problem(
                    spec.source,
                    *spec.where("name"),
                    "name",
                    f"{spec.name!r} is not a valid job name (lower-case letters, digits, '.', '_', '-', "
                    "but not '..'; 1-64 characters, starting with a letter or digit)",
                )
            )
            continue
        specs.append(spec)
    return specs, problems, st


def load_project(
    root: Path | str,
    *,
    files: list[Path] | None = None,
    jobs_dir: Path | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
    cache: ParseCache | None = None,
    warnings: bool = True,
) -> Project:
    """Load and check the jobs repo at ``root``. ``files`` limits the jobs read to those
    files; ``jobs_dir`` reads another folder than ``root/jobs.d``. ``cache`` skips
    files that did not change since it saw them (see ``parsecache``); ``warnings=False``
    leaves out the per-job warnings (``warnings_for``), which depend on the clock, the
    environment and other files, and are never cached."""
    root = Path(root)
    now = now or datetime.now(UTC)
    scan = _scan(root, jobs_dir or root / JOBS_DIR)
    fresh: dict[str, bytes] = {}
    config, problems = load_config(root, fresh)
    if files is None:
        problems += scan.problems
        todo = scan.files
    else:
        todo = []
        for p in files:
            try:
                st = os.stat(p)
            except OSError:
                st = None
            todo.append((str(p), display_path(Path(p)), st, os.path.abspath(p)))
    context = config_fingerprint(config) if cache is not None else ""
    specs: list[JobSpec] = []
    where: dict[str, tuple[str, int]] = {}
    for path, shown, st, key in todo:
        entry = None
        if cache is not None and st is not None:
            entry = cache.get(key, file_key(st), shown, context)
        if entry is not None:
            found, more = list(entry.specs), list(entry.problems)
        else:
            found, more, read_st = parse_file(path, shown, config, now, fresh)
            if cache is not None and read_st is not None:
                for s in found:
                    s.spec_hash, s.schedule_sig  # noqa: B018 - computed once, kept in the cache
                cache.put(key, Entry(file_key(read_st), shown, context, tuple(found), tuple(more)))
        problems += more
        for spec in found:
            if spec.name in where:
                fpath, fline = where[spec.name]
                problems.append(
                    Problem(
                        spec.source,
                        spec.line,
                        1,
                        "name",
                        f"duplicate job name {spec.name!r} (also in {fpath}:{fline})",
                    )
                )
                continue
            where[spec.name] = (spec.source, spec.line)
            specs.append(spec)
    if cache is not None and files is None:
        cache.forget_unseen()
    problems += cross_problems(specs)
    from .paths import path_problems

    for spec in specs:  # the files a job reads and where it runs: inside the repo only
        if spec.workdir != "." or spec.context.files or spec.context.script:
            problems += path_problems(spec, root, config)
    if warnings:
        problems += warnings_for(specs, root, now, os.environ if environ is None else environ)
    specs.sort(key=lambda s: s.name)
    return Project(root=root, config=config, specs=specs, problems=problems, file_names=[p for p, _, _, _ in todo], signature=scan.signature, cache=cache, racy=fresh)


def racy_changed(project: Project) -> bool:
    """Whether a file the project read within a clock tick of its last write now holds
    something else. A filesystem whose clock ticks coarsely can give a second write in
    the same tick the same mtime and ctime (and the same size), so for those files an
    equal signature proves nothing (git's "racily clean" entries); their bytes do."""
    for path, digest in project.racy.items():
        try:
            raw, _ = _read_capped(path)
        except (OSError, _NotRegular):
            return True
        if _digest(raw) != digest:
            return True
    return False


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def files_signature(root: Path, jobs_dir: Path | None = None) -> Signature:
    """(path, inode, size, mtime_ns, ctime_ns) of cronfile.yaml and every job file:
    different signatures mean something to re-read (equal ones may not mean the
    opposite, see ``racy_changed``). Taken before reading, so a change made meanwhile shows as a
    difference the next time."""
    return _scan(root, jobs_dir or root / JOBS_DIR, signature_only=True).signature


def warnings_for(specs: list[JobSpec], root: Path, now: datetime, environ: Mapping[str, str]) -> list[Problem]:
    """What is legal but probably not what the user meant."""
    from . import schedule as sched

    out: list[Problem] = []
    for s in specs:
        try:
            schedule = s.build_schedule(created_at=now)
        except sched.ScheduleError:
            continue
        for msg in sched.dst_warnings(schedule, now):
            out.append(Problem(s.source, *s.where("schedule"), "schedule", msg, severity="warning"))
        if schedule.kind == "once" and schedule.next_after(now) is None:
            out.append(Problem(s.source, *s.where("schedule"), "schedule", f"{s.schedule} is in the past: this job will never fire", severity="warning"))
        from .yamlsrc import dotted

        seen: set[tuple[str, tuple[str | int, ...]]] = set()
        for var, fpath in s.env_ref_paths():
            if var not in environ and (var, fpath) not in seen:
                seen.add((var, fpath))
                what = "the run will fail" if fpath[0] == "env" else "that delivery will fail"
                out.append(
                    Problem(s.source, *s.where(*fpath), dotted(fpath), f"${{{var}}} is not set in this environment ({what} if it is not set for the engine)", severity="warning")
                )
        for i, f in enumerate(s.context.files):
            if not (root / f).exists():
                out.append(Problem(s.source, *s.where("context", "files", i), f"context.files[{i}]", f"{f} does not exist (yet)", severity="warning"))
        if s.context.script and not (root / s.workdir / s.context.script).exists() and "/" in s.context.script:
            out.append(Problem(s.source, *s.where("context", "script"), "context.script", f"{s.context.script} does not exist (yet)", severity="warning"))
    return out


def git_revision(root: Path) -> str | None:
    """The commit of the jobs repo if it is a git checkout (``-dirty`` when jobs.d or
    cronfile.yaml have uncommitted changes); None otherwise."""
    import subprocess

    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    rev = res.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "jobs.d", "cronfile.yaml"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    if dirty.returncode == 0 and dirty.stdout.strip():
        rev += "-dirty"
    return rev
