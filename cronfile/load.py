"""The jobs repo on disk -> a Project: config, job specs, and every problem found.

This is the edge that reads files; the parsing and checking it calls (``yamlsrc``,
``spec``) are pure. Loading never raises for bad input: problems are collected, each
with its file, line and column, and the caller decides (validate lists them, apply
refuses to touch state, the daemon keeps its last good set).
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import operator
import os
import stat
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import Problem
from .parsecache import RACY_NS, Entry, FileKey, ParseCache, config_fingerprint, file_key
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
# path -> (inode, size, mtime_ns, ctime_ns) of cronfile.yaml and every job file, as
# walked, packed in one int (``_stamp``); -1 for a name that could not be stat'ed (a
# dangling symlink). A daemon keeps one per file: as a tuple of four ints it was 9 MB
# at 30,000 files (issue 17).
Signature = dict[str, int]


def _stamp(st: os.stat_result) -> int:
    """(inode, size, mtime_ns, ctime_ns) as one int, each in its own 64 bits (the times
    shifted by 2**63: one before 1970 is negative). Equal stamps, equal four."""
    return st.st_ino | st.st_size << 64 | (st.st_mtime_ns + _HALF) << 128 | (st.st_ctime_ns + _HALF) << 192


_HALF = 1 << 63


@dataclass(frozen=True, slots=True)
class FileResult:
    """One job file as the loader read it: what ``reload_project`` reuses for the files
    that did not change."""

    path: str  # as walked (below root/jobs.d as given)
    shown: str  # as problems and specs name it
    specs: tuple[JobSpec, ...]  # its valid jobs, in file order
    problems: tuple[Problem, ...]

    @property
    def order(self) -> str:
        """Its place in the walk (Paths' order: "/" sorts lowest). Worked out when asked
        (a file came or went): a daemon keeps a FileResult per file."""
        folder, name = os.path.split(self.path)
        return _order(folder) + name

    def same(self, other: FileResult) -> bool:
        """Whether both hold the same jobs and problems, down to where each field is."""
        return self.problems == other.problems and len(self.specs) == len(other.specs) and all(
            a == b and a.source == b.source and a.line == b.line and a.positions == b.positions for a, b in zip(self.specs, other.specs, strict=True)
        )


@dataclass(frozen=True, slots=True)
class _Index:
    """What an assembly knew, for reload_project to patch the next one."""

    specs: list[JobSpec]  # the project's jobs, by name: each where it comes first in the walk
    dupes: frozenset[str]  # names declared more than once
    pathy: tuple[JobSpec, ...]  # the jobs whose paths are checked (path_problems), in walk order
    head: int  # how many problems come before those of the paths

    @property
    def by_name(self) -> dict[str, JobSpec]:
        return {s.name: s for s in self.specs}

    def named(self, name: str) -> JobSpec | None:
        """The job named ``name`` (a bisection: a dict of 30,000 names, and its copy at
        each edit, cost a daemon 1 MB each)."""
        specs = self.specs
        i = bisect.bisect_left(specs, name, key=_name)
        return specs[i] if i < len(specs) and specs[i].name == name else None


@dataclass
class Project:
    root: Path
    config: Config
    specs: list[JobSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    file_names: list[str] = field(default_factory=list)  # the job files read, as walked
    signature: Signature = field(default_factory=dict)  # path -> (inode, size, mtime_ns, ctime_ns) of what was read
    cache: ParseCache | None = field(default=None, repr=False, compare=False)  # what it was loaded with
    # Files read within a clock tick of being written, with a digest of what was read:
    # an equal signature does not prove they are unchanged (see racy_changed).
    racy: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    # What reload_project needs to read again only the files that changed: each job
    # file's result (by absolute path, in walk order), the folders walked (by real path:
    # their path as walked, as shown, and absolute), and the problems of cronfile.yaml
    # and of the walk. Empty for a project loaded with ``files=`` or with warnings.
    entries: dict[str, FileResult] = field(default_factory=dict, repr=False, compare=False)
    dirs: dict[str, tuple[str, str | None, str]] = field(default_factory=dict, repr=False, compare=False)
    base_problems: tuple[Problem, ...] = field(default=(), repr=False, compare=False)
    incremental: bool = field(default=False, repr=False, compare=False)
    index: _Index | None = field(default=None, repr=False, compare=False)
    # Made by reload_project from that project (a weak reference: no chain of projects
    # kept alive) by swapping these (old, new) specs: what a cache of specs can patch.
    patched_from: Callable[[], Project | None] | None = field(default=None, repr=False, compare=False)
    swapped: tuple[tuple[JobSpec, JobSpec], ...] = field(default=(), repr=False, compare=False)

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

    files: list[tuple[str, str, os.stat_result | None, str, str]] = field(default_factory=list)  # path, shown, stat, absolute, order
    problems: list[Problem] = field(default_factory=list)
    signature: Signature = field(default_factory=dict)
    dirs: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)  # real path -> as walked, as shown, absolute


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
    sig: Signature = scan.signature
    config = str(root / CONFIG_NAME)
    try:
        st = os.stat(config)
        sig[config] = _stamp(st)
    except FileNotFoundError:
        if os.path.islink(config):
            sig[config] = _UNREADABLE
    except OSError:
        sig[config] = _UNREADABLE
    if not jobs_dir.is_dir():
        return scan
    real_root = root.resolve()
    seen: set[str] = set()
    found: list[tuple[str, str, os.stat_result | None, str, str]] = []
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
            if absdir == dirpath:
                absdir = dirpath
            scan.dirs[real] = (dirpath, rel, absdir)
            # Sorted as Paths sort, by component: with "/" as the lowest character.
            order = _order(dirpath)
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
                sig[full] = _UNREADABLE
                if not signature_only:
                    shown = full if rel is None else (name if rel == "." else rel + "/" + name)
                    if err.errno == errno.ELOOP:
                        scan.problems.append(Problem(shown, message="symlink loop; refused"))
                    elif e.is_symlink() and not _inside(Path(os.path.realpath(full)), real_root):
                        scan.problems.append(Problem(shown, message="symlink leads outside the repo; refused"))
                    elif os.path.lexists(full):
                        scan.problems.append(Problem(shown, message="not a regular file"))
                continue
            sig[full] = _stamp(st)
            if signature_only:
                continue
            shown = full if rel is None else (name if rel == "." else rel + "/" + name)
            if e.is_symlink() and not _inside(Path(os.path.realpath(full)), real_root):
                scan.problems.append(Problem(shown, message="symlink leads outside the repo; refused"))
                continue
            if not stat.S_ISREG(st.st_mode):
                scan.problems.append(Problem(shown, message="not a regular file"))
                continue
            # (the absolute path is the walked one whenever the root was given absolute:
            # one string, not two, for each file a daemon keeps)
            found.append((full, shown, st, full if absdir is dirpath else absdir + "/" + name, order + name))
    found.sort(key=lambda t: t[4])
    scan.files = found
    return scan


_UNREADABLE = -1


def _order(dirpath: str) -> str:
    """The sort key of a folder's files (plus their name): Paths' order, by component."""
    return dirpath.replace("/", "\0") + "\0"


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
            todo.append((str(p), display_path(Path(p)), st, os.path.abspath(p), ""))
    context = config_fingerprint(config) if cache is not None else ""
    entries: dict[str, FileResult] = {}
    for path, shown, st, key, _ in todo:
        entry = None
        if cache is not None and st is not None:
            entry = cache.get(key, file_key(st), shown, context)
        if entry is not None:
            found, more = entry.specs, entry.problems
            for s in found:
                if s.source is not shown and s.source == shown:
                    # The walk's string, which the signature keeps too: one copy of each
                    # path in a daemon, not two (a spec is immutable to everyone else).
                    object.__setattr__(s, "source", shown)
        else:
            found_l, more_l, read_st = parse_file(path, shown, config, now, fresh)
            found, more = tuple(found_l), tuple(more_l)
            if cache is not None and read_st is not None:
                _memoize(found)
                cache.put(key, Entry(file_key(read_st), shown, context, found, more))
        entries[key] = FileResult(path, shown, found, more)
    if cache is not None and files is None:
        cache.forget_unseen()
    base = tuple(problems)
    specs, problems, index = _assemble(root, config, base, entries.values(), now, (os.environ if environ is None else environ) if warnings else None)
    incremental = files is None and jobs_dir is None and not warnings
    return Project(
        root=root,
        config=config,
        specs=specs,
        problems=problems,
        file_names=[t[0] for t in todo],
        signature=scan.signature,
        # A ProjectCache is the previous project's results: kept here, every later
        # project would read through (and keep alive) the first one (issue 17).
        cache=None if isinstance(cache, ProjectCache) else cache,
        racy=fresh,
        entries=entries if incremental else {},
        dirs=scan.dirs if incremental else {},
        base_problems=base if incremental else (),
        incremental=incremental,
        index=index if incremental else None,
    )


_name = operator.attrgetter("name")


def _memoize(specs: tuple[JobSpec, ...]) -> None:
    for s in specs:
        s.spec_hash, s.schedule_sig  # noqa: B018 - computed once, kept in the cache


def _assemble(
    root: Path,
    config: Config,
    base: tuple[Problem, ...],
    results: Iterable[FileResult],
    now: datetime,
    environ: Mapping[str, str] | None,
) -> tuple[list[JobSpec], list[Problem], _Index]:
    """The project's jobs (by name) and problems from each file's result, in walk order:
    a name declared twice is kept where it comes first. What load_project and
    reload_project share, so a project read again file by file is the one a full load
    gives. ``environ`` None: no warnings."""
    problems = list(base)
    first: dict[str, JobSpec] = {}  # each name where it comes first
    dupes: set[str] = set()
    for r in results:
        if r.problems:
            problems += r.problems
        for spec in r.specs:
            name = spec.name
            if name in first:
                dupes.add(name)
                was = first[name]
                problems.append(
                    Problem(
                        spec.source,
                        spec.line,
                        1,
                        "name",
                        f"duplicate job name {name!r} (also in {was.source}:{was.line})",
                    )
                )
                continue
            first[name] = spec
    specs = list(first.values())
    problems += cross_problems(specs)
    head = len(problems)
    pathy = tuple(s for s in specs if _pathy(s))
    problems += _path_problems(pathy, root, config)
    if environ is not None:
        problems += warnings_for(specs, root, now, environ)
    specs.sort(key=_name)
    return specs, problems, _Index(specs, frozenset(dupes), pathy, head)


def _pathy(spec: JobSpec) -> bool:
    if spec._over is None and "context" not in spec.data:
        # What the properties below give for such a spec, read off its data (three
        # derivations per job at every load, issue 17).
        return spec.data.get("workdir", ".") != "."
    return spec.workdir != "." or bool(spec.context.files) or bool(spec.context.script)


def _path_problems(specs: Iterable[JobSpec], root: Path, config: Config) -> list[Problem]:
    """The files a job reads and where it runs: inside the repo only."""
    from .paths import path_problems

    return [p for spec in specs for p in path_problems(spec, root, config)]


def _ref_ok(spec: JobSpec, index: _Index) -> bool:
    """No cross_problems for ``spec`` among the jobs of ``index``."""
    ref = spec.context.from_job
    return ref is None or (ref != spec.name and index.named(ref) is not None)


def _patch(prev: Project, pairs: list[tuple[FileResult, FileResult]]) -> tuple[list[JobSpec], list[Problem], _Index, list[tuple[JobSpec, JobSpec]]] | None:
    """``prev``'s jobs and problems with the files in ``pairs`` (old, new) edited, without
    a pass over every job: None unless the edit leaves every check across files as it
    was (the same names in each file, none declared twice, no from_job problem before or
    after, no path to check, the same problems in the file). Then only the jobs change
    (each in its place by name), and the paths other jobs use are checked again, as a
    full assembly checks them."""
    idx = prev.index
    if idx is None:
        return None
    swaps: list[tuple[JobSpec, JobSpec]] = []
    for old, new in pairs:
        if old.problems != new.problems or len(old.specs) != len(new.specs):
            return None
        for a, b in zip(old.specs, new.specs, strict=True):
            name = a.name
            if b.name != name or name in idx.dupes or idx.named(name) is not a:
                return None
            if _pathy(a) or _pathy(b) or not _ref_ok(a, idx) or not _ref_ok(b, idx):
                return None
            swaps.append((a, b))
    specs = list(prev.specs)
    for a, b in swaps:
        i = bisect.bisect_left(specs, a.name, key=_name)
        if i >= len(specs) or specs[i] is not a:
            return None
        specs[i] = b
    problems = prev.problems[: idx.head] + _path_problems(idx.pathy, prev.root, prev.config)
    return specs, problems, _Index(specs, idx.dupes, idx.pathy, idx.head), swaps


def reload_project(prev: Project, changed: Iterable[str], *, now: datetime | None = None) -> tuple[Project, bool] | None:
    """``prev`` with the job files at the paths in ``changed`` read again (a file that is
    gone is dropped, a new one added in its place in the walk), and whether any job or
    problem differs from ``prev``'s. The daemon's reload: the watcher says which files
    changed, and at 10,000 files walking them all cost more than reading one.

    None when it cannot be done file by file, and the caller loads the whole repo:
    ``prev`` loaded with ``files=``, ``jobs_dir=`` or warnings; cronfile.yaml changed
    (it decides every job's spec); a folder came, went, or is not one the walk took;
    a symlink, or anything else than a regular file, is or was at a changed path
    (the walk words those). The result equals what ``load_project(prev.root,
    warnings=False)`` gives for the same files (tests/test_reload.py)."""
    if not prev.incremental:
        return None
    now = now or datetime.now(UTC)
    config_abs = os.path.abspath(prev.root / CONFIG_NAME)
    entries = prev.entries
    sig = dict(prev.signature)
    racy = dict(prev.racy)
    cache = prev.cache
    context = config_fingerprint(prev.config) if cache is not None else ""
    updated: dict[str, FileResult | None] = {}
    for p in dict.fromkeys(changed):
        if os.path.abspath(p) == config_abs:
            return None
        folder, name = os.path.split(p)
        real = os.path.realpath(folder)
        if real not in prev.dirs or os.path.realpath(p) in prev.dirs:
            return None  # a folder changed, or a file in a folder the walk did not take
        if name.startswith(".") or not name.endswith(SUFFIXES):
            if os.path.isdir(p):
                return None
            continue  # never read by the loader
        walked, rel, absdir = prev.dirs[real]
        full, key = walked + "/" + name, absdir + "/" + name
        if full in sig and key not in entries:
            return None  # a name the walk refused (a symlink, a FIFO): it words those
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            updated[key] = None
            sig.pop(full, None)
            racy.pop(full, None)
            continue
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        sig[full] = _stamp(st)
        racy.pop(full, None)
        shown = full if rel is None else (name if rel == "." else rel + "/" + name)
        # Read again whatever the cache holds: the watcher saw it change.
        found_l, more_l, read_st = parse_file(full, shown, prev.config, now, racy)
        found, more = tuple(found_l), tuple(more_l)
        if cache is not None and read_st is not None:
            _memoize(found)
            cache.put(key, Entry(file_key(read_st), shown, context, found, more))
        updated[key] = FileResult(full, shown, found, more)
    moved = False  # a file came or went
    edited: list[tuple[FileResult, FileResult]] = []
    new_entries = dict(entries)
    for key, r in updated.items():
        old = new_entries.get(key)
        if r is None:
            if old is not None:
                del new_entries[key]
                moved = True
            continue
        if old is None:
            moved = True
        elif not r.same(old):
            edited.append((old, r))
        new_entries[key] = r
    if moved:
        new_entries = dict(sorted(new_entries.items(), key=lambda kv: kv[1].order))
    differs = moved or bool(edited)
    specs, problems, index = prev.specs, prev.problems, prev.index
    swaps: list[tuple[JobSpec, JobSpec]] = []
    if differs:
        patched = None if moved else _patch(prev, edited)
        if patched is not None:
            specs, problems, index, swaps = patched
        else:
            specs, problems, index = _assemble(prev.root, prev.config, prev.base_problems, new_entries.values(), now, None)
    project = Project(
        root=prev.root,
        config=prev.config,
        specs=specs,
        problems=problems,
        file_names=[r.path for r in new_entries.values()] if moved else prev.file_names,
        signature=sig,
        cache=cache,
        racy=racy,
        entries=new_entries,
        dirs=prev.dirs,
        base_problems=prev.base_problems,
        incremental=True,
        index=index,
        patched_from=weakref.ref(prev) if differs and swaps else None,
        swapped=tuple(swaps),
    )
    return project, differs


class ProjectCache(ParseCache):
    """A parse cache made of a project's own file results: what a daemon reads the whole
    repo again through (a lost event, a new folder, cronfile.yaml edited). It keeps
    nothing of its own: the ParseCache a daemon kept beside its project held every
    file's entry a second time, 17 MB at 30,000 files (issue 17).

    A file's result is reused on the ParseCache's terms: the file has the identity
    (inode, size, times) the project read it with, is shown by the same path, is
    checked against the same cronfile.yaml, is not one read within RACY_NS of its last
    write, and has no error."""

    def __init__(self, project: Project, *, now_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(now_ns=now_ns)
        self.project = project
        self.context = config_fingerprint(project.config)

    def get(self, path: str, key: FileKey, shown: str, context: str) -> Entry | None:
        p = self.project
        r = p.entries.get(path)
        if (
            r is None
            or context != self.context
            or r.shown != shown
            or r.path in p.racy
            or p.signature.get(r.path) != _stamp_of(key)
            or self.now_ns() - max(key[3], key[4]) < RACY_NS
            or any(pr.severity == "error" for pr in r.problems)
        ):
            self.misses += 1
            return None
        self.hits += 1
        return Entry(key, shown, context, r.specs, r.problems)

    def put(self, path: str, entry: Entry) -> None:
        pass  # the project load_project makes holds it

    def forget_unseen(self) -> None:
        pass

    def save(self) -> None:
        pass


def cache_for(project: Project) -> ParseCache | None:
    """The cache to read ``project``'s repo again through: the one it was loaded with,
    else its own file results (ProjectCache), else none. A project never holds a
    ProjectCache (load_project drops it), so this serves the newest project's results."""
    if project.cache is not None:
        return project.cache
    return ProjectCache(project) if project.incremental else None


def _stamp_of(key: FileKey) -> int:
    """``_stamp`` of a parse cache's file key (device, inode, size, mtime, ctime)."""
    return key[1] | key[2] << 64 | (key[3] + _HALF) << 128 | (key[4] + _HALF) << 192


def config_unchanged(project: Project) -> bool:
    """Whether cronfile.yaml's stat is the one ``project`` was read with (one stat: the
    daemon's watcher counts writes to job files, not to it)."""
    config = str(project.root / CONFIG_NAME)
    try:
        st = os.stat(config)
        now: int | None = _stamp(st)
    except FileNotFoundError:
        now = _UNREADABLE if os.path.islink(config) else None
    except OSError:
        now = _UNREADABLE
    return project.signature.get(config) == now and config not in project.racy


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
