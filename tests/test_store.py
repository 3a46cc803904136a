"""The state dir: atomic writes, modes, locks across real processes, history files."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cronfile.errors import LockedError, StateError
from cronfile.state import JobState, LastRun, Running, State
from cronfile.stores.file import FileStore, _split_write_id, encode_state

REPO_ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sample_state() -> State:
    js = JobState(
        spec={"name": "backup", "schedule": "0 3 * * *", "shell": "true", "timezone": "UTC"},
        spec_hash="abc",
        schedule_sig="def",
        created_at=T0,
        next_run=datetime(2026, 3, 3, 3, 0, tzinfo=UTC),
        last_run=LastRun("r1", "success", "schedule", T0, T0, T0),
        run_count=3,
        running=(Running("r2", T0, T0, "schedule", "e1", pid=123),),
    )
    return State(jobs={"backup": js}, revision="deadbeef", applied_at=T0)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "state")


# -- child processes -------------------------------------------------------------------


class Child:
    """A python child that prints ``ready`` once it holds what the test wants held."""

    def __init__(self, code: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("child did not get ready in time")
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"child said {line!r}: {err}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for c in made:
        c.kill()
        for f in (c.proc.stdout, c.proc.stderr):
            if f is not None:
                f.close()


def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# -- state.json ------------------------------------------------------------------------


def test_a_missing_state_file_reads_as_an_empty_state(store: FileStore) -> None:
    assert not store.exists()
    assert store.read() == State()
    assert not store.state_dir.exists()  # reading creates nothing


def test_a_transaction_writes_the_new_state_and_it_reads_back_equal(store: FileStore) -> None:
    with store.transaction() as txn:
        assert txn.state == State()
        txn.state = sample_state()
    assert store.exists()
    assert store.read() == sample_state()
    raw = store.state_path.read_bytes()
    write_id, body = _split_write_id(raw)
    assert write_id is not None and len(write_id) == 16
    assert body == encode_state(sample_state())
    assert json.loads(raw)["write_id"] == write_id  # still one JSON object


def _other_store_write(store: FileStore, state: State) -> None:
    """What another process's write looks like to ``store``: a FileStore of its own."""
    with FileStore(store.state_dir).transaction() as txn:
        txn.state = state


def test_every_write_has_a_new_write_id_and_a_write_of_nothing_keeps_the_file(store: FileStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    first = store.state_path.read_bytes()
    before = store.state_path.stat()
    with store.transaction() as txn:
        txn.state = State.decode(json.loads(first))  # equal, another object: same bytes
    assert store.state_path.stat().st_ino == before.st_ino  # nothing written
    with store.transaction() as txn:
        txn.state = txn.state.with_(revision="abc123")
    assert _split_write_id(store.state_path.read_bytes())[0] != _split_write_id(first)[0]


def test_a_store_sees_another_writers_state_even_when_size_inode_and_mtime_match(store: FileStore) -> None:
    """The kept State is reused only while the file is the same write. Inode numbers are
    reused right after a rename and a coarse clock gives two writes one mtime: make the
    new file look identical to the kept one on all three, and the write id still tells."""
    with store.transaction() as txn:
        txn.state = sample_state()
    assert store.read() == sample_state()
    kept = store._memo
    assert kept is not None
    changed = sample_state().with_(revision="r-other")  # same size? make it so below
    _other_store_write(store, changed)
    st = store.state_path.stat()
    store._memo = ((st.st_ino, st.st_size, st.st_mtime_ns), kept[1], kept[2], kept[3])
    assert store.read() == changed


def test_a_hand_edited_state_file_is_read_again(store: FileStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    assert store.read() == sample_state()
    raw = re.sub(r'"revision": [^,]*,', '"revision": "by-hand",', store.state_path.read_text(), count=1)
    store.state_path.write_text(raw)  # in place: the same write id and inode, another size
    assert store.read().revision == "by-hand"


def test_the_encoders_line_cache_gives_the_same_bytes_as_a_fresh_encode() -> None:
    lines: dict = {}
    s1 = sample_state().with_job("other", sample_state().jobs["backup"])
    assert encode_state(s1, lines) == encode_state(s1)
    js = s1.jobs["other"].with_(run_count=99)
    s2 = s1.with_job("other", js).with_job("backup", None)
    assert encode_state(s2, lines) == encode_state(s2)
    assert set(lines) == {"other"} and lines["other"][0] is js


def test_state_encodes_and_decodes_to_an_equal_state() -> None:
    s = sample_state()
    assert State.decode(json.loads(encode_state(s))) == s


def test_an_exception_inside_a_transaction_leaves_the_file_unchanged_byte_for_byte(
    store: FileStore,
) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    before = store.state_path.read_bytes()
    with pytest.raises(RuntimeError, match="crash"), store.transaction() as txn:
        txn.state = State(revision="other")
        raise RuntimeError("crash")
    assert store.state_path.read_bytes() == before
    assert sorted(p.name for p in store.state_dir.iterdir() if p.name.endswith(".tmp")) == []


def test_a_transaction_that_changes_nothing_does_not_rewrite_the_file(store: FileStore) -> None:
    with store.transaction() as txn:
        txn.state = sample_state()
    st = store.state_path.stat()
    with store.transaction() as txn:
        txn.state = State.decode(json.loads(store.state_path.read_bytes()))  # equal, not same
    st2 = store.state_path.stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


def test_a_transaction_on_a_fresh_dir_that_changes_nothing_creates_no_state_file(
    store: FileStore,
) -> None:
    with store.transaction():
        pass
    assert not store.exists()


def test_transactions_are_not_reentrant(store: FileStore) -> None:
    with (
        pytest.raises(RuntimeError, match="re-entrant"),
        store.transaction(),
        store.transaction(),
    ):
        pass


def test_write_bytes_atomic_replaces_the_file_and_leaves_no_temp_file(store: FileStore) -> None:
    store.ensure()
    target = store.state_dir / "x.bin"
    target.write_bytes(b"old")
    store.write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert [p.name for p in store.state_dir.iterdir() if p.name.startswith(".x.bin")] == []


BAD_STATE = [
    ("torn", b'{"version": 1, "jobs": {\n  "a": {\n    "spec', "is not valid JSON (line 3)"),
    ("not json", b"hello\n", "is not valid JSON (line 1)"),
    ("wrong version", b'{"version": 99, "jobs": {}}', "state version 99 is not supported"),
    ("no version", b'{"jobs": {}}', "state version None is not supported"),
    ("not an object", b"[1, 2]", "not a JSON object"),
    ("malformed job", b'{"version": 1, "jobs": {"a": {"spec": {}}}}', "malformed state"),
    ("binary", b"\xff\xfe\x00", "is not"),
]


@pytest.mark.parametrize(
    ("content", "message"), [b[1:] for b in BAD_STATE], ids=[b[0] for b in BAD_STATE]
)
def test_an_unreadable_state_file_is_an_error_naming_the_file_and_is_left_untouched(
    store: FileStore, content: bytes, message: str
) -> None:
    store.ensure()
    store.state_path.write_bytes(content)
    with pytest.raises(StateError) as err:
        store.read()
    text = str(err.value)
    assert str(store.state_path) in text
    assert message in text
    assert "move it aside" in text and "never replaces it silently" in text
    with pytest.raises(StateError), store.transaction() as txn:
        txn.state = sample_state()
    assert store.state_path.read_bytes() == content


# -- modes -----------------------------------------------------------------------------


def test_the_state_dir_and_its_parents_are_created_0700_with_a_gitignore_0600(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        store = FileStore(tmp_path / "a" / "b" / "state")
        with store.transaction() as txn:
            txn.state = sample_state()
        store.append_history("backup", {"run_id": "r1", "status": "success"})
        store.append_audit({"summary": "1 to create"})
    finally:
        os.umask(old)
    for d in (
        tmp_path / "a",
        tmp_path / "a" / "b",
        store.state_dir,
        store.runs_dir,
        store.runs_dir / "backup",
    ):
        assert mode(d) == 0o700, d
    assert store.gitignore_path.read_text() == "*\n"
    for f in (
        store.gitignore_path,
        store.state_path,
        store.lock_path,
        store.audit_path,
        store.history_path("backup"),
    ):
        assert mode(f) == 0o600, f


def test_an_existing_state_dir_with_a_wider_mode_is_tightened_to_0700(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    FileStore(d).ensure()
    assert mode(d) == 0o700


def test_an_existing_gitignore_is_left_as_the_user_wrote_it(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    (d / ".gitignore").write_text("*\n!keep\n")
    FileStore(d).ensure()
    assert (d / ".gitignore").read_text() == "*\n!keep\n"


# -- history ---------------------------------------------------------------------------


def test_history_lines_read_back_oldest_first_and_the_last_n(store: FileStore) -> None:
    for i in range(5):
        store.append_history("backup", {"run_id": f"r{i}", "status": "success"})
    assert [r["run_id"] for r in store.read_history("backup")] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r["run_id"] for r in store.read_history("backup", 2)] == ["r3", "r4"]
    assert store.read_history("backup", 0) == []
    assert store.read_history("never-ran") == []


def test_a_torn_last_history_line_is_skipped_and_the_next_append_still_reads(
    store: FileStore,
) -> None:
    store.append_history("backup", {"run_id": "r1", "status": "success"})
    with open(store.history_path("backup"), "ab") as f:
        f.write(b'{"run_id": "r2", "sta')  # a crash mid-write
    assert [r["run_id"] for r in store.read_history("backup")] == ["r1"]
    store.append_history("backup", {"run_id": "r3", "status": "failed"})
    assert [r["run_id"] for r in store.read_history("backup")] == ["r1", "r3"]


def test_each_history_record_is_one_line(store: FileStore) -> None:
    store.append_history("backup", {"run_id": "r1", "note": "two\nlines"})
    assert store.history_path("backup").read_bytes().count(b"\n") == 1


def test_prune_keeps_the_last_n_runs_and_their_logs_and_deletes_older_logs(
    store: FileStore,
) -> None:
    for i in range(6):
        store.log_file("backup", f"r{i}").write_text(f"out {i}")
        store.append_history("backup", {"run_id": f"r{i}", "status": "success"})
    store.log_file("backup", "r-inflight").write_text("still running")
    store.prune("backup", 2)
    assert [r["run_id"] for r in store.read_history("backup")] == ["r4", "r5"]
    logs = sorted(p.name for p in store.job_dir("backup").glob("*.log"))
    assert logs == ["r-inflight.log", "r4.log", "r5.log"]
    assert mode(store.history_path("backup")) == 0o600


def test_prune_counts_runs_so_a_runs_delivery_line_stays_with_its_record(store: FileStore) -> None:
    for i in range(4):
        store.log_file("backup", f"r{i}").write_text(f"out {i}")
        store.append_history("backup", {"run_id": f"r{i}", "status": "success"})
        store.append_history("backup", {"run_id": f"r{i}", "deliveries": [{"ok": True}]})
    store.prune("backup", 3)
    lines = store.read_history("backup")
    assert [r["run_id"] for r in lines] == ["r1", "r1", "r2", "r2", "r3", "r3"]
    assert sorted(p.name for p in store.job_dir("backup").glob("*.log")) == [
        "r1.log",
        "r2.log",
        "r3.log",
    ]


def test_prune_with_fewer_lines_than_the_limit_leaves_the_file_alone(store: FileStore) -> None:
    store.append_history("backup", {"run_id": "r1"})
    ino = store.history_path("backup").stat().st_ino
    store.prune("backup", 100)
    store.prune("never-ran", 1)
    assert store.history_path("backup").stat().st_ino == ino


def test_audit_lines_append(store: FileStore) -> None:
    store.append_audit({"summary": "1 to create"})
    store.append_audit({"summary": "0 to create"})
    assert [r["summary"] for r in store.read_audit()] == ["1 to create", "0 to create"]


BAD_NAMES = ["../etc", "a/b", "..", "", ".hidden", "a..b"]


@pytest.mark.parametrize(
    "name", BAD_NAMES, ids=["parent", "slash", "dotdot", "empty", "hidden", "inner-dotdot"]
)
def test_a_job_name_or_run_id_that_could_escape_the_state_dir_is_refused(
    store: FileStore, name: str
) -> None:
    with pytest.raises(ValueError, match="cannot be used in a path"):
        store.append_history(name, {})
    with pytest.raises(ValueError, match="cannot be used in a path"):
        store.log_file("backup", name)
    with pytest.raises(ValueError, match="cannot be used in a path"):
        store.engine_alive(name)


# -- locks across processes ------------------------------------------------------------


def test_an_engine_is_alive_while_a_child_holds_its_lock_and_gone_after_sigkill(
    store: FileStore, children: list[Child]
) -> None:
    store.ensure()
    child = Child(
        "import sys, time\n"
        "from cronfile.stores.file import FileStore\n"
        f"lock = FileStore({str(store.state_dir)!r}).engine_lock('child-engine')\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    children.append(child)
    child.wait_ready()
    assert store.engine_alive("child-engine")
    child.proc.send_signal(signal.SIGKILL)
    child.proc.wait(timeout=20)
    wait_until(lambda: not store.engine_alive("child-engine"))
    assert not (store.engines_dir / "child-engine.lock").exists()


def test_engine_alive_from_the_same_process_tells_its_own_engine_from_a_dead_one(
    store: FileStore,
) -> None:
    with store.engine_lock("mine"):
        (store.engines_dir / "dead.lock").write_text("")  # left by a crashed engine
        assert store.engine_alive("mine")
        assert FileStore(store.state_dir).engine_alive("mine")  # through the OS lock, no cache
        assert not store.engine_alive("dead")
        assert not store.engine_alive("never-existed")
    assert not store.engine_alive("mine")
    assert not (store.engines_dir / "mine.lock").exists()


def test_an_engine_id_cannot_be_taken_twice(store: FileStore) -> None:
    with store.engine_lock("e1"), pytest.raises(LockedError, match="already in use"):
        FileStore(store.state_dir).engine_lock("e1")


def test_a_second_daemon_is_refused_naming_the_pid_of_the_first(
    store: FileStore, children: list[Child]
) -> None:
    store.ensure()
    child = Child(
        "import time\n"
        "from cronfile.stores.file import FileStore\n"
        f"lock = FileStore({str(store.state_dir)!r}).daemon_lock()\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    children.append(child)
    child.wait_ready()
    assert store.daemon_running()
    with pytest.raises(LockedError, match=f"pid {child.proc.pid}"):
        store.daemon_lock()
    child.kill()
    assert not store.daemon_running()
    with store.daemon_lock() as held:
        assert store.daemon_pid() == os.getpid()
        assert mode(store.daemon_pid_path) == 0o600
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            FileStore(store.state_dir).daemon_lock()
        assert held.held
    assert not store.daemon_pid_path.exists()


def test_a_state_lock_held_too_long_is_a_locked_error(
    tmp_path: Path, children: list[Child]
) -> None:
    store = FileStore(tmp_path / "state", lock_timeout=0.3)
    store.ensure()
    child = Child(
        "import time\n"
        "from cronfile.stores.file import FileStore\n"
        f"with FileStore({str(store.state_dir)!r}).transaction():\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
    )
    children.append(child)
    child.wait_ready()
    held = r"state\.lock is held by another process for more than 0\.3s"
    with pytest.raises(LockedError, match=held), store.transaction():
        pass


INCREMENT = """
import sys
from cronfile.stores.file import FileStore
store = FileStore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with store.transaction() as txn:
        txn.state = txn.state.with_(revision=str(int(txn.state.revision or 0) + 1))
"""


def test_ten_processes_incrementing_under_transactions_lose_no_update(store: FileStore) -> None:
    store.ensure()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = [
        subprocess.Popen([sys.executable, "-c", INCREMENT, str(store.state_dir), "20"], env=env)
        for _ in range(10)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert store.read().revision == "200"


def test_threads_of_one_process_exclude_each_other_like_processes(store: FileStore) -> None:
    def work() -> None:
        for _ in range(25):
            with store.transaction() as txn:
                txn.state = txn.state.with_(revision=str(int(txn.state.revision or 0) + 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert store.read().revision == "100"
