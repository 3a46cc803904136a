"""What each job file parsed to, kept between commands so unchanged files are not read again.

Reading and checking a job file (YAML, JSON schema, cron fields) costs about 0.5 ms; at
10,000 files every ``diff`` paid 4-5 s for it though one file changed. The loader asks
this cache first: an entry is reused when the file's identity is the same (device,
inode, size, mtime and ctime in nanoseconds, taken from the descriptor the file was read
through) *and* so is everything else that decides the result: the path as shown, the
``cronfile.yaml`` in force, and cronfile's own code.

Correctness before speed:

- A file changed within ``RACY_NS`` of being read is not cached (git's "racily clean"
  rule): a filesystem whose clock ticks coarsely can give two writes in one tick the
  same mtime, and the second would otherwise be served from the first's entry.
- The cache is a hint. A missing, unreadable, foreign or corrupt cache file is ignored
  (and rewritten); writing it is best effort (a full disk or a read-only home only
  costs speed) and atomic (temp file and rename), so two commands at once cannot tear
  it; the last writer wins, and either version is valid.
- Where: one file per jobs repo (named by a hash of its absolute path) in
  ``CRONFILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/cronfile``, else ``~/.cache/cronfile``
  (as ruff, mypy and pre-commit keep theirs), so a `validate` in a pre-commit hook and a
  `diff` in a checkout with no state dir are fast too. ``CRONFILE_NO_CACHE=1`` turns
  it off.
- It is a pickle. It is loaded only if it and its folder are owned by this user and
  writable by no one else: whoever can write there can already run code as the user
  (their shell's startup files are no better guarded). The folder is made 0700.

The daemon keeps one in memory for its whole life (``persist=False``): a file edit then
costs the one file, not all of them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Problem


def cache_dir(environ: Mapping[str, str]) -> Path:
    """``CRONFILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/cronfile``, else ``~/.cache/cronfile``."""
    if environ.get("CRONFILE_CACHE_DIR"):
        return Path(environ["CRONFILE_CACHE_DIR"]).expanduser()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cronfile"

FORMAT = 1
RACY_NS = 2_000_000_000  # a file changed less than 2 s before it was read is not cached

FileKey = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class Entry:
    """One file's parse: its jobs (valid ones, in file order) and its problems."""

    key: FileKey
    shown: str  # the path as problems and specs name it (relative to the cwd)
    context: str  # config_fingerprint() at the time
    specs: tuple[Any, ...]  # JobSpec
    problems: tuple[Problem, ...]


def _code_fingerprint() -> str:
    """cronfile's version, Python's, and the files that decide what a job file parses
    to: an upgrade, or an edit to the code in a development checkout, empties the cache."""
    from . import __version__

    here = Path(__file__).parent
    parts = [__version__, str(FORMAT), sys.version]
    for name in ("spec.py", "yamlsrc.py", "schedule.py", "durations.py", "load.py", "fastschema.py", "errors.py", "parsecache.py", "statusread.py", "schemas/job.schema.json", "delivery/kinds.py", "executors/registry.py"):
        try:
            st = (here / name).stat()
        except OSError:
            parts.append(f"{name}:-")
            continue
        parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    # The validator's version decides what is valid too (found without importing it).
    import importlib.util

    spec = importlib.util.find_spec("jsonschema")
    origin = Path(spec.origin).parent if spec and spec.origin else None
    try:
        js = os.stat(origin / "_keywords.py") if origin else None
        parts.append(f"jsonschema:{js.st_mtime_ns}:{js.st_size}" if js else "jsonschema:-")
    except OSError:
        parts.append("jsonschema:-")
    return "|".join(parts)


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _ours_to_fix(file: os.stat_result, folder: os.stat_result) -> bool:
    """A cache refused only for its modes, in a folder of ours: save() tightens and
    rewrites it. Anything owned by someone else is left alone."""
    uid = os.getuid()
    return file.st_uid == uid and folder.st_uid == uid


def config_fingerprint(config: Any) -> str:
    """A digest of the Config a file was checked against (defaults, timezone, agents)."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:24]


class ParseCache:
    """path -> Entry, optionally loaded from and saved to the file ``path``."""

    def __init__(self, path: Path | None = None, *, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self.now_ns = now_ns
        self.entries: dict[str, Entry] = {}
        self.code = _code_fingerprint()
        self.hits = 0
        self.misses = 0
        self._dirty = False
        self._refused = False  # a cache file we may not trust: never overwrite it either
        self._seen: set[str] = set()
        if path is not None:
            self._load(path)

    @classmethod
    def for_repo(cls, root: Path, environ: Mapping[str, str] | None = None) -> ParseCache | None:
        """The cache of the jobs repo at ``root``: one file per repo in the user's cache
        dir, so `validate` in a pre-commit hook and `diff` in a checkout with no state
        dir benefit too. None when ``CRONFILE_NO_CACHE=1``."""
        env = os.environ if environ is None else environ
        if env.get("CRONFILE_NO_CACHE") == "1":
            return None
        return cls(cache_dir(env) / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]}.pickle")

    def _load(self, path: Path) -> None:
        data, self._refused = _read_private(path)
        if isinstance(data, dict) and data.get("code") == self.code and isinstance(data.get("entries"), dict):
            self.entries = data["entries"]

    def get(self, path: str, key: FileKey, shown: str, context: str) -> Entry | None:
        self._seen.add(path)
        e = self.entries.get(path)
        if e is not None and e.key == key and e.shown == shown and e.context == context:
            self.hits += 1
            return e
        self.misses += 1
        return None

    def put(self, path: str, entry: Entry) -> None:
        """Keep ``entry`` unless the file changed too recently to trust its timestamps,
        or has errors: a broken file is read again each time, so its messages never
        outlive what decides them (a timezone database upgrade, say)."""
        self._seen.add(path)
        newest = max(entry.key[3], entry.key[4])
        if self.now_ns() - newest < RACY_NS or any(p.severity == "error" for p in entry.problems):
            if self.entries.pop(path, None) is not None:
                self._dirty = True
            return
        self.entries[path] = entry
        self._dirty = True

    def forget_unseen(self) -> None:
        """Drop the entries of files not looked up since the last call (deleted files)."""
        gone = set(self.entries) - self._seen
        for p in gone:
            del self.entries[p]
        self._dirty = self._dirty or bool(gone)
        self._seen = set()

    def save(self) -> None:
        """Write the cache if it changed; best effort, atomic."""
        if self.path is None or not self._dirty or self._refused:
            return
        blob = pickle.dumps({"code": self.code, "entries": self.entries}, protocol=pickle.HIGHEST_PROTOCOL)
        if _write_private(self.path, blob):
            self._dirty = False


def _read_private(path: Path) -> tuple[Any, bool]:
    """The pickle at ``path`` (None if missing, unreadable or not to be trusted), and
    whether it must not be overwritten either (a file we may not trust, not ours)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None, False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _private(st) or not _private(os.stat(path.parent)):
            return None, not _ours_to_fix(st, os.stat(path.parent))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return pickle.load(f), False  # noqa: S301 - see the module docstring
    except Exception:  # noqa: BLE001 - a cache that cannot be read is an empty cache
        return None, False
    finally:
        os.close(fd)


def _write_private(path: Path, blob: bytes) -> bool:
    """Write ``blob`` to ``path`` atomically in a folder of ours made 0700; best effort."""
    tmp = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        dst = os.stat(path.parent)
        if dst.st_uid != os.getuid():
            return False  # someone else's folder: never write a pickle there
        if dst.st_mode & 0o077:
            os.chmod(path.parent, 0o700)  # made wider by a umask, or by hand
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


# -- what `cronfile status` needs of the repo ---------------------------------------------

STATUS_FORMAT = 2


@dataclass(frozen=True)
class StatusIndex:
    """What ``cronfile status`` needs of a jobs repo, as a full load gave it: each job's
    name, spec hash and the few fields status shows, the config, and how many errors the
    load found. At 10,000 jobs, unpickling the parse cache's JobSpecs only to show drift
    was most of a ``status`` (issue 17); this is a tenth of its size.

    It stands for the load only while ``signature`` (``load.files_signature``: the stat
    of cronfile.yaml and of every job file, by path) is the repo's now, and the code is
    the same: an edit, a rename, a delete, a new file, a config change and a rewrite of
    the same size and mtime (its ctime moves) all change the signature, and status then
    loads the repo in full. It is written only from a load that read no file within
    ``RACY_NS`` of its last write (a coarse clock could give a second write the same
    stamps). The checks of the paths jobs use (workdir, context files: other files than
    the job files) are made again each time on the jobs that have any (``pathy``)."""

    code: str  # _code_fingerprint()
    root: str  # the repo, absolute
    signature: dict[str, tuple[int, int, int, int]]
    config: Any  # spec.Config
    errors: int  # error problems of the load, but those of paths
    pathy: tuple[Any, ...]  # the JobSpecs whose paths are checked (load.path_problems)
    jobs: tuple[tuple[str, str, dict[str, Any]], ...]  # name, spec_hash, status_fields(data), by name
    # statusview.signature taken before the load it was written from (None: not taken):
    # equal to the repo's now, it stands for ``signature`` (one stat walk, not two)
    view_sig: Any = None


def status_index_path(root: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Beside the repo's parse cache; None when ``CRONFILE_NO_CACHE=1``."""
    env = os.environ if environ is None else environ
    if env.get("CRONFILE_NO_CACHE") == "1":
        return None
    return cache_dir(env) / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]}.status.pickle"


def read_status_index(path: Path, root: Path, signature: Mapping[str, Any]) -> StatusIndex | None:
    """The index at ``path`` if it is for ``root``, this code and ``signature``."""
    index = load_status_index(path, root)
    return index if index is not None and index.signature == signature else None


def load_status_index(path: Path, root: Path) -> StatusIndex | None:
    """The index at ``path`` if it is for ``root`` and this code (its signature, the
    caller checks)."""
    data, _ = _read_private(path)
    if not isinstance(data, dict) or data.get("format") != STATUS_FORMAT:
        return None
    index = data.get("index")
    if not isinstance(index, StatusIndex) or index.root != str(root.resolve()):
        return None
    if index.code != _code_fingerprint():
        return None
    return index


def write_status_index(path: Path, index: StatusIndex) -> None:
    """Best effort, atomic (as ParseCache.save)."""
    _write_private(path, pickle.dumps({"format": STATUS_FORMAT, "index": index}, protocol=pickle.HIGHEST_PROTOCOL))


def code_fingerprint() -> str:
    return _code_fingerprint()
