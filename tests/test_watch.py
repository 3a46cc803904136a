"""The file watcher on real files: what it reports, what it ignores, that an idle watch
never wakes, and the watchfiles fallback.

No sleep-and-hope. A test that expects a callback waits for it. A test that expects
none makes a change the watcher must report *after* the one it must ignore, and waits
for that: inotify's queue is ordered and read by one thread, so had the ignored change
been reported it would show up first. That proof holds for the inotify watcher only
(watchfiles reads the root and jobs.d on two threads), so those tests are Linux-only;
what either watcher must report runs over both.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from engine_helpers import wait_for

from cronfile import watch
from cronfile.watch import InotifyUnavailable, Watcher, parse_events

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="inotify is Linux's")
BACKENDS = [pytest.param("inotify", marks=linux_only), "watchfiles"]


class Calls:
    """on_change's calls, in order, each a frozenset of kinds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[frozenset[str]] = []

    def __call__(self, kinds: set[str]) -> None:
        with self._lock:
            self._calls.append(frozenset(kinds))

    @property
    def list(self) -> list[frozenset[str]]:
        with self._lock:
            return list(self._calls)

    def wait(self, kind: str, timeout: float = 10.0) -> list[frozenset[str]]:
        """Until a call reports ``kind``; every call so far."""
        return wait_for(lambda: (calls := self.list) and any(kind in c for c in calls) and calls, timeout, what=f"a {kind!r} callback")

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    (root / ".cronfile").mkdir()
    return root.resolve()


@pytest.fixture
def watching(repo, monkeypatch):
    """start(backend="inotify"|"watchfiles", root=repo) -> (watcher, calls); all stopped
    at the end. "watchfiles" is reached the way the daemon reaches it: inotify failing."""
    started: list[Watcher] = []

    def start(backend: str = "inotify", root: Path = repo, on_change=None, state_file: str = "state.json") -> tuple[Watcher, Calls]:
        if backend == "watchfiles":
            monkeypatch.setattr(watch, "_libc", _no_inotify)
        calls = Calls()
        w = Watcher(root, root / ".cronfile" / state_file, on_change or calls)
        w.start()
        started.append(w)
        assert w.backend == backend
        assert w.ready.is_set()
        return w, calls

    yield start
    for w in started:
        w.stop()


def _no_inotify() -> watch._Libc:
    raise InotifyUnavailable("no inotify in the C library: test")


def replace_state(root: Path, text: str = "{}") -> None:
    """As the store writes state.json: a temp file beside it, renamed over it."""
    tmp = root / ".cronfile" / ".state.json.x1.tmp"
    tmp.write_text(text)
    os.replace(tmp, root / ".cronfile" / "state.json")


def nothing_before_a_state_callback(calls: Calls, root: Path) -> None:
    """The sentinel: replace state.json, wait for its callback, and check that nothing
    came before it (see the module docstring)."""
    replace_state(root)
    assert calls.wait("state") == [frozenset({"state"})]


def inotify_watches(w: Watcher) -> int:
    """How many folders the kernel watches for this watcher."""
    assert isinstance(w._impl, watch._Inotify)
    info = Path(f"/proc/self/fdinfo/{w._impl._fd}").read_text()
    return sum(1 for line in info.splitlines() if line.startswith("inotify wd:"))


# -- what either watcher reports ------------------------------------------------------------


def test_a_commit_to_state_db_by_another_process_is_reported_as_state(watching, repo):
    from cronfile.state import State
    from cronfile.stores.sqlite import SqliteStore

    store = SqliteStore(repo / ".cronfile")
    with store.transaction() as txn:  # the database exists before the watch starts
        txn.state = State(revision="a")
    _, calls = watching("inotify", state_file="state.db")
    calls.clear()
    code = (
        "import sys\nfrom cronfile.stores.sqlite import SqliteStore\n"
        "with SqliteStore(sys.argv[1]).transaction() as txn:\n"
        "    txn.state = txn.state.with_(revision='b')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", code, str(repo / ".cronfile")], check=True, env=env)
    assert {"state"} in calls.wait("state")




@pytest.mark.parametrize("backend", BACKENDS)
def test_a_job_file_created_edited_renamed_and_deleted_is_reported_each_time(watching, repo, backend):
    _, calls = watching(backend)
    job = repo / "jobs.d" / "a.yaml"
    steps = [
        ("create", lambda: job.write_text("schedule: '@daily'\n")),
        ("edit", lambda: job.write_text("schedule: '@hourly'\n")),
        ("rename", lambda: job.rename(repo / "jobs.d" / "b.yml")),
        ("delete", lambda: (repo / "jobs.d" / "b.yml").unlink()),
    ]
    for what, step in steps:
        calls.clear()
        step()
        assert calls.wait("files")[0] == {"files"}, what


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_edit_of_cronfile_yaml_is_reported(watching, repo, backend):
    _, calls = watching(backend)
    (repo / "cronfile.yaml").write_text("max_concurrent: 2\n")
    assert calls.wait("files") == [{"files"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_json_replaced_by_another_process_is_reported_as_state(watching, repo, backend):
    _, calls = watching(backend)
    replace_state(repo)
    assert calls.wait("state") == [{"state"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_returns_promptly_and_ends_the_thread(watching, backend):
    w, _ = watching(backend)
    threads = [t for t in threading.enumerate() if t.name == "watch"]
    assert threads
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 2
    assert not any(t.is_alive() for t in threads)
    assert not w.ready.is_set()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_watcher_whose_callback_fails_stops_and_says_so_without_raising(watching, repo, capsys, backend):
    failed = threading.Event()

    def on_change(kinds: set[str]) -> None:
        failed.set()
        raise RuntimeError("boom")

    w, _ = watching(backend, on_change=on_change)
    (repo / "jobs.d" / "a.yaml").write_text("x: 1\n")
    wait_for(failed.is_set, what="the callback")
    wait_for(lambda: "file watcher stopped: boom" in capsys.readouterr().out, what="the message")
    assert not w.ready.is_set()


# -- inotify ---------------------------------------------------------------------------------


@linux_only
def test_an_editor_save_is_one_callback(watching, repo):
    _, calls = watching()
    jobs = repo / "jobs.d"
    (jobs / "a.yaml").write_text("schedule: '@daily'\n")
    calls.wait("files")
    calls.clear()
    # vim: swap file, a probe file, a backup, the new file, its mode, the backup gone.
    (jobs / ".a.yaml.swp").write_bytes(b"\0" * 64)
    (jobs / "4913").write_text("")
    (jobs / "4913").unlink()
    os.rename(jobs / "a.yaml", jobs / "a.yaml~")
    (jobs / "a.yaml.tmp").write_text("schedule: '@hourly'\n")
    os.replace(jobs / "a.yaml.tmp", jobs / "a.yaml")
    os.chmod(jobs / "a.yaml", 0o644)
    (jobs / "a.yaml~").unlink()
    (jobs / ".a.yaml.swp").unlink()
    assert calls.wait("files") == [{"files"}]
    calls.clear()
    nothing_before_a_state_callback(calls, repo)


@linux_only
def test_editor_temp_files_alone_are_no_callback(watching, repo):
    _, calls = watching()
    jobs = repo / "jobs.d"
    for name in (".a.yaml.swp", "a.yaml~", "a.yaml.bak", "#a.yaml#", ".#a.yaml"):
        (jobs / name).write_text("x")
        (jobs / name).unlink()
    nothing_before_a_state_callback(calls, repo)


@linux_only
def test_log_files_in_the_state_dir_are_no_callback(watching, repo):
    _, calls = watching()
    state = repo / ".cronfile"
    (state / "audit.jsonl").write_text("{}\n")
    (state / "state.lock").write_text("")
    (state / "runs" / "job").mkdir(parents=True)
    (state / "runs" / "job" / "r1.log").write_text("a line\n")
    with (state / "runs" / "job" / "history.jsonl").open("a") as f:
        f.write("{}\n")
    nothing_before_a_state_callback(calls, repo)


@linux_only
def test_a_new_nested_folder_with_files_written_at_once_is_reported_and_then_watched(watching, repo):
    w, calls = watching()
    deep = repo / "jobs.d" / "team" / "nightly"
    deep.mkdir(parents=True)
    (deep / "a.yaml").write_text("x: 1\n")  # likely before the watch lands: the folder is reported
    assert calls.wait("files") == [{"files"}]
    wait_for(lambda: inotify_watches(w) == 5, what="root, state dir, jobs.d and the two new folders watched")
    calls.clear()
    (deep / "b.yaml").write_text("x: 2\n")
    assert calls.wait("files") == [{"files"}]


@linux_only
def test_a_folder_moved_in_is_watched_and_one_moved_out_is_not(watching, repo):
    w, calls = watching()
    outside = repo / "drafts"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "a.yaml").write_text("x: 1\n")
    os.rename(outside, repo / "jobs.d" / "drafts")
    calls.wait("files")
    wait_for(lambda: inotify_watches(w) == 5, what="the moved-in folders watched")
    calls.clear()
    (repo / "jobs.d" / "drafts" / "sub" / "b.yaml").write_text("x: 2\n")
    assert calls.wait("files") == [{"files"}]

    calls.clear()
    os.rename(repo / "jobs.d" / "drafts", repo / "gone")
    assert calls.wait("files") == [{"files"}]
    wait_for(lambda: inotify_watches(w) == 3, what="the moved-out folders unwatched")
    calls.clear()
    (repo / "gone" / "sub" / "c.yaml").write_text("x: 3\n")
    nothing_before_a_state_callback(calls, repo)


@linux_only
def test_a_folder_renamed_inside_jobs_d_keeps_its_watch_under_the_new_name(watching, repo):
    w, calls = watching()
    (repo / "jobs.d" / "old").mkdir()
    calls.wait("files")
    calls.clear()
    os.rename(repo / "jobs.d" / "old", repo / "jobs.d" / "new")
    calls.wait("files")
    calls.clear()
    (repo / "jobs.d" / "new" / "a.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]
    assert inotify_watches(w) == 4


@linux_only
def test_a_deleted_folder_leaves_no_watch_behind(watching, repo):
    w, calls = watching()
    (repo / "jobs.d" / "a" / "b").mkdir(parents=True)
    wait_for(lambda: inotify_watches(w) == 5, what="the folders watched")
    calls.clear()
    shutil.rmtree(repo / "jobs.d" / "a")
    assert calls.wait("files") == [{"files"}]
    wait_for(lambda: inotify_watches(w) == 3, what="their watches gone")


@linux_only
def test_jobs_d_made_after_start_is_noticed_and_then_watched(watching, repo):
    shutil.rmtree(repo / "jobs.d")
    w, calls = watching()
    assert inotify_watches(w) == 2
    (repo / "jobs.d").mkdir()
    assert calls.wait("files") == [{"files"}]
    wait_for(lambda: inotify_watches(w) == 3, what="jobs.d watched")
    calls.clear()
    (repo / "jobs.d" / "a.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]
    # ... and again after it is deleted and made once more.
    calls.clear()
    shutil.rmtree(repo / "jobs.d")
    calls.wait("files")
    (repo / "jobs.d").mkdir()
    wait_for(lambda: inotify_watches(w) == 3, what="the new jobs.d watched")
    calls.clear()
    (repo / "jobs.d" / "b.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]


@linux_only
def test_a_symlinked_folder_is_watched_at_its_target_once(watching, repo):
    shared = repo / "shared"
    shared.mkdir()
    os.symlink("../shared", repo / "jobs.d" / "one")
    os.symlink("../shared", repo / "jobs.d" / "two")
    # Two links back to jobs.d: load._scan walks each real folder once; so do we.
    os.symlink(".", repo / "jobs.d" / "loop1")
    os.symlink(".", repo / "jobs.d" / "loop2")
    w, calls = watching()
    assert inotify_watches(w) == 4  # root, state dir, jobs.d, shared
    (shared / "a.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]


@linux_only
def test_a_symlink_to_a_folder_made_after_start_is_followed(watching, repo):
    (repo / "shared").mkdir()
    w, calls = watching()
    os.symlink("../shared", repo / "jobs.d" / "shared")
    assert calls.wait("files") == [{"files"}]
    wait_for(lambda: inotify_watches(w) == 4, what="the link's target watched")
    calls.clear()
    (repo / "shared" / "a.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]
    calls.clear()
    (repo / "jobs.d" / "shared").unlink()
    calls.wait("files")
    wait_for(lambda: inotify_watches(w) == 3, what="the target unwatched")


@linux_only
def test_a_symlinked_folder_outside_the_repo_is_not_watched(watching, repo, tmp_path):
    # The loader refuses it (and reads nothing in it), so its files cannot matter.
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", repo / "jobs.d" / "elsewhere")
    w, _ = watching()
    assert inotify_watches(w) == 3


@linux_only
def test_a_queue_overflow_reports_files_and_state_and_the_watch_goes_on(watching, repo):
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to make")
    calls = Calls()
    release = threading.Event()

    def on_change(kinds: set[str]) -> None:
        calls(kinds)
        release.wait(30)  # hold the thread, so nothing reads the queue while it fills

    w, _ = watching("inotify", on_change=on_change)
    jobs = repo / "jobs.d"
    (jobs / "first.yaml").write_text("x: 1\n")
    wait_for(lambda: calls.list, what="the first callback")
    for i in range(limit // 2 + 10):  # two events each: IN_CREATE, IN_CLOSE_WRITE
        (jobs / f"{i}.yaml").touch()
    # Made once the queue is full, so its own event is lost: only the re-sync finds it.
    (jobs / "late").mkdir()
    calls.clear()
    release.set()
    calls.wait("state")
    assert {"files", "state"} <= calls.list[0]
    wait_for(lambda: inotify_watches(w) == 4, what="the late folder watched by the re-sync")
    calls.clear()
    (jobs / "late" / "a.yaml").write_text("x: 2\n")
    calls.wait("files")


@linux_only
def test_an_idle_watcher_never_wakes(watching, repo):
    w, calls = watching()
    (tid,) = [t.native_id for t in threading.enumerate() if t.name == "watch"]
    wait_for(lambda: thread_is_blocked(tid), what="the watch thread blocked")
    before = voluntary_switches(tid)
    time.sleep(1.0)  # the window measured, not a wait for anything
    assert voluntary_switches(tid) == before
    # The count is the watch thread's: a change wakes it.
    (repo / "jobs.d" / "a.yaml").write_text("x: 1\n")
    calls.wait("files")
    assert voluntary_switches(tid) > before
    assert w.ready.is_set()


@linux_only
def test_the_watchfiles_fallback_wakes_while_idle_which_is_why_it_is_the_fallback(watching):
    # Shows that the measure above can see wake-ups at all.
    watching("watchfiles")
    tids = [t.native_id for t in threading.enumerate() if t.name == "watch"]
    before = {tid: voluntary_switches(tid) for tid in tids}
    time.sleep(1.0)
    assert all(voluntary_switches(tid) > before[tid] + 5 for tid in tids)


def voluntary_switches(tid: int) -> int:
    for line in Path(f"/proc/self/task/{tid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches for thread {tid}")


def thread_is_blocked(tid: int) -> bool:
    """Asleep, and the same count of switches twice in a row: parked in poll."""
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    if "\nState:\tS" not in status:
        return False
    first = voluntary_switches(tid)
    time.sleep(0.02)
    return voluntary_switches(tid) == first


# -- the fallback ----------------------------------------------------------------------------


@linux_only
def test_without_inotify_the_watchfiles_watcher_takes_over_and_says_why(watching, repo, capsys):
    w, calls = watching("watchfiles")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"cronfile: inotify unavailable (no inotify in the C library: test); watching with watchfiles, which wakes every {watch.STEP_MS} ms"]
    (repo / "jobs.d" / "a.yaml").write_text("x: 1\n")
    assert calls.wait("files") == [{"files"}]


class _OutOfWatches(watch._Libc):
    def add_watch(self, fd: int, path: str, mask: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@linux_only
def test_out_of_inotify_watches_falls_back_to_polling(monkeypatch, repo, capsys):
    # watchfiles' native watcher is inotify too, and would run out the same way (silently).
    monkeypatch.setattr(watch, "_libc", _OutOfWatches)
    calls = Calls()
    w = Watcher(repo, repo / ".cronfile" / "state.json", calls)
    w.start()
    try:
        assert w.backend == "watchfiles"
        assert "max_user_watches" in capsys.readouterr().out
        (repo / "jobs.d" / "a.yaml").write_text("x: 1\n")
        assert calls.wait("files") == [{"files"}]
    finally:
        w.stop()


@linux_only
def test_stopping_closes_the_inotify_instance(repo):
    def inotify_fds() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if _link(fd) == "anon_inode:inotify")

    before = inotify_fds()
    w = Watcher(repo, repo / ".cronfile" / "state.json", Calls())
    w.start()
    assert inotify_fds() == before + 1
    w.stop()
    assert inotify_fds() == before


def _link(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


# -- pure parts ------------------------------------------------------------------------------


def test_parse_events_reads_records_with_padded_names_and_without_names():
    def record(wd: int, mask: int, name: bytes, size: int) -> bytes:
        return struct.pack("iIII", wd, mask, 0, size) + name.ljust(size, b"\0")

    buf = record(1, watch.IN_CREATE, b"a.yaml", 16) + record(2, watch.IN_DELETE_SELF, b"", 0) + record(-1, watch.IN_Q_OVERFLOW, b"", 0)
    assert list(parse_events(buf)) == [(1, watch.IN_CREATE, "a.yaml"), (2, watch.IN_DELETE_SELF, ""), (-1, watch.IN_Q_OVERFLOW, "")]


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("jobs.d/a.yaml", "files"),
        ("jobs.d/team/a.yml", "files"),
        ("jobs.d/team", "files"),
        ("cronfile.yaml", "files"),
        ("jobs.d/a.yaml.swp", None),
        ("jobs.d/.a.yaml.swp", None),
        ("jobs.d/.#a.yaml", None),
        ("jobs.d/.drafts/a.yaml", None),
        ("jobs.d/4913", "files"),  # vim's probe: no suffix, so maybe a folder
        ("jobs.d/a.yaml~", None),
        ("jobs.d/a.tmp", None),
        ("jobs.d/notes.md", None),
        ("other/a.yaml", None),
        ("sub/cronfile.yaml", None),
        (".cronfile/state.json", "state"),
        (".cronfile/state.db", "state"),
        (".cronfile/state.db-wal", "state"),
        (".cronfile/state.db-shm", None),
        (".cronfile/state.lock", None),
        (".cronfile/runs/j/state.json", None),
    ],
    ids=lambda v: str(v),
)
def test_classify(repo, rel, kind):
    # The store's file: state.db (and its WAL) for the SQLite store, state.json for the file store.
    watched = "state.db" if ".cronfile/state.db" in rel else "state.json"
    w = Watcher(repo, repo / ".cronfile" / watched, Calls())
    assert w.classify(str(repo / rel)) == kind
