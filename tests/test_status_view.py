"""``cronfile status``'s table kept ready to print (cronfile/statusview.py, issue 17 round
5): it is printed only while nothing it was made of changed, and then it prints, byte for
byte, what the full path prints. Each change a user or another process can make (to the
job files, the config, the state, the history, the daemon's lock, a backup put back)
makes the next status take the full path, whose output is compared with a status that
keeps nothing (``CRONFILE_NO_CACHE=1``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import cronfile
from test_status_batch import _run

from cronfile.console import root_of
from cronfile.parsecache import RACY_NS
from cronfile.statusview import daemon_running, print_ready, signature, view_path
from cronfile.stores.sqlite import SqliteStore

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
USAGE = {"input_tokens": 100, "output_tokens": 7, "cost_usd": 0.001}


def _job(name: str, schedule: str = "0 0 1 1 *", extra: str = "") -> str:
    return f"schedule: '{schedule}'\nshell: echo {name}\n{extra}"


def _repo(root: Path) -> Path:
    (root / "jobs.d" / "team").mkdir(parents=True)
    (root / "cronfile.yaml").write_text("timezone: UTC\n")
    for i in range(5):
        (root / "jobs.d" / "team" / f"j{i}.yaml").write_text(_job(f"j{i}"))
    # overdue while no engine runs (its next run is set in the past below)
    (root / "jobs.d" / "late.yaml").write_text(_job("late", "*/5 * * * *"))
    (root / "jobs.d" / "agent.yaml").write_text("schedule: '0 0 1 1 *'\nprompt: summarize\nagent: llm\nbudget:\n  tokens_per_day: 1000\n")
    (root / "jobs.d" / "tokyo.yaml").write_text(_job("tokyo", "30 9 * * *", "timezone: Asia/Tokyo\n"))
    return root


def _setup(repo: Path) -> None:
    """Applied, with runs, a runtime pause, a job not applied and one changed since."""
    _cli(repo, "apply", "-q")
    store = SqliteStore(repo / ".cronfile")
    for i in range(12):
        store.append_history("j0", _run("j0", f"a{i:02d}", ["success", "failed"][i % 2], T0 + timedelta(minutes=i)))
        store.append_history("agent", _run("agent", f"g{i:02d}", "success", T0 + timedelta(minutes=i), usage=USAGE))
    store.close()
    with sqlite3.connect(repo / ".cronfile" / "state.db") as db:  # `late` missed its run an hour ago
        (body,) = db.execute("SELECT body FROM jobs WHERE name = 'late'").fetchone()
        data = json.loads(body)
        data["next_run"] = (T0 + timedelta(hours=2)).isoformat()
        (seq,) = db.execute("SELECT seq FROM head").fetchone()  # a write, as the store makes one
        db.execute("UPDATE head SET seq = ?", (seq + 1,))
        db.execute("UPDATE jobs SET body = ?, seq = ? WHERE name = 'late'", (json.dumps(data), seq + 1))
    db.close()
    _cli(repo, "pause", "j2", "--reason", "maintenance")
    (repo / "jobs.d" / "team" / "j1.yaml").write_text(_job("j1", "7 7 * * *"))  # changed
    (repo / "jobs.d" / "team" / "new.yaml").write_text(_job("new"))  # not applied


def _settled(repo: Path) -> None:
    """Wait (on the clock, bounded) until every job file is older than the racy window:
    only a load that read no file within it writes the status index the view needs."""
    files = [*repo.rglob("*.yaml")]
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in files)
    deadline = time.monotonic() + 10
    while time.time_ns() - newest < RACY_NS:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _cli(repo: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    """``cronfile ARGV`` run in ``repo`` by this process (cli.main: the whole command but
    the interpreter's start), its output. Another process's commands use ``cronfile``."""
    import contextlib
    import io

    from cronfile.cli import main

    was = {k: os.environ.get(k) for k in env or {}}
    cwd = os.getcwd()
    out = io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(repo)
        with contextlib.redirect_stdout(out):
            assert main(list(argv)) == 0
    finally:
        gc.collect()  # (the command's store and its connections, as at a process's exit)
        os.chdir(cwd)
        for k, v in was.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out.getvalue()


def _status(repo: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    return _cli(repo, "status", *extra, env=env)


def _moving(text: str) -> str:
    """``text`` with the clock's moving parts ("in 2m 56s", "in 59s", "5m ago") and the
    column padding they change made alike: a whole duration is one N, so "in 1m 0s" and
    "in 59s", a second apart, read the same."""
    return re.sub(r" +", " ", re.sub(r"\b\d+[smhd](?: \d+[smhd])*\b", "N", text))


def _as_full(repo: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    """`status` equals a status that keeps nothing. (Its "5m ago" texts move with the
    clock: a second apart, both are run again, a few times at most; on a machine so
    loaded that two commands never fall in one second, all but those texts are equal.)"""
    for _ in range(5):
        kept = _status(repo, *extra, env=env)
        plain = _status(repo, *extra, env={**(env or {}), "CRONFILE_NO_CACHE": "1"})
        if kept == plain:
            return kept
    assert _moving(kept) == _moving(plain)
    return kept


def _ready(repo: Path, monkeypatch: pytest.MonkeyPatch, *, as_json: bool = False) -> bool:
    """Whether the next `status` (run in ``repo``, no flags) prints the kept table."""
    monkeypatch.chdir(repo)
    args = argparse.Namespace(C=".", state_dir=None)
    return print_ready(args, root_of(args), as_json=as_json)[0] is not None


def _backup(repo: Path) -> None:
    state = repo / ".cronfile"
    with sqlite3.connect(state / "state.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    (repo.parent / "backup.db").write_bytes((state / "state.db").read_bytes())


def _restore(repo: Path) -> None:
    """What the store's error message tells a user to do: put a backup back (made before
    the previous status; the writes since are lost)."""
    state = repo / ".cronfile"
    for p in state.glob("state.db-*"):
        p.unlink()
    shutil.copyfile(repo.parent / "backup.db", state / "state.db")


def _same_size_and_mtime(repo: Path) -> None:
    p = repo / "jobs.d" / "team" / "j3.yaml"
    st = p.stat()
    p.write_text(p.read_text().replace("0 0 1 1 *", "0 0 2 1 *"))  # as long, another schedule
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns


def _history_row_deleted(repo: Path) -> None:
    with sqlite3.connect(repo / ".cronfile" / "state.db") as db:
        db.execute("DELETE FROM history WHERE id = (SELECT min(id) FROM history WHERE job = 'j0')")
    db.close()


def _new_run(repo: Path) -> None:
    store = SqliteStore(repo / ".cronfile")
    store.append_history("agent", _run("agent", "g-new", "failed", T0 + timedelta(hours=2), usage=USAGE))
    store.close()


CHANGES: dict[str, Callable[[Path], object]] = {
    "edit": lambda r: (r / "jobs.d" / "team" / "j0.yaml").write_text(_job("j0", "5 4 * * *")),
    "rename": lambda r: (r / "jobs.d" / "team" / "j4.yaml").rename(r / "jobs.d" / "team" / "j4b.yaml"),
    "delete": lambda r: (r / "jobs.d" / "team" / "j3.yaml").unlink(),
    "new file": lambda r: (r / "jobs.d" / "team" / "j9.yaml").write_text(_job("j9")),
    "new folder": lambda r: (r / "jobs.d" / "more").mkdir() or (r / "jobs.d" / "more" / "k.yaml").write_text(_job("k")),
    "config": lambda r: (r / "cronfile.yaml").write_text("timezone: Europe/Berlin\n"),
    "same size and mtime": _same_size_and_mtime,
    "broken file": lambda r: (r / "jobs.d" / "team" / "j4.yaml").write_text("schedule: [\n"),
    "apply": lambda r: cronfile("apply", "-q", cwd=r),
    "pause": lambda r: cronfile("pause", "j3", cwd=r),
    "resume": lambda r: cronfile("resume", "j2", cwd=r),
    "a run": lambda r: cronfile("run", "j4", cwd=r),
    "a run recorded": _new_run,
    "a history row deleted": _history_row_deleted,
    "state.db restored from a backup": _restore,
    # the seq the backup had reached handed out again, to another row: only each row's seq tells
    "state.db restored from a backup, then written to the same seq": lambda r: _restore(r) or cronfile("pause", "j3", cwd=r),
}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One repo per change, made at once, so that one wait lets them all settle."""
    out = {name: _repo(tmp_path_factory.mktemp(name.replace(" ", "-")) / "repo") for name in [*CHANGES, "daemon", "other state", "paths", "json", "colour"]}
    for repo in out.values():
        _setup(repo)
    paths = out["paths"]  # a job that reads a context file
    (paths / "notes.txt").write_text("short\n")
    (paths / "jobs.d" / "reads.yaml").write_text("schedule: '0 0 1 1 *'\nprompt: read\nagent: llm\ncontext:\n  files: [notes.txt]\n")
    _backup(out["state.db restored from a backup"])
    _backup(out["state.db restored from a backup, then written to the same seq"])
    for repo in out.values():
        _settled(repo)
    return out


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_kept_table_is_the_full_one_and_every_change_is_seen(repos: dict[str, Path], change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repos[change]
    before = _as_full(repo)  # (the first status writes the view)
    assert "overdue" in before and "paused at runtime" in before and "not applied" in before
    assert "budget left" in before and "has changes in jobs.d" in before
    assert _ready(repo, monkeypatch)
    if change == "edit":  # printed from the view by a `cronfile` of its own, as the full path prints it
        for _ in range(5):
            got = cronfile("status", cwd=repo)
            assert got.returncode == 0, got.stderr
            plain = _status(repo, env={"CRONFILE_NO_CACHE": "1"})
            if got.stdout == plain:
                break
        else:
            assert got.stdout == plain
    if change.startswith("state.db restored"):
        assert cronfile("pause", "j4", cwd=repo).returncode == 0  # lost by the restore
        before = _as_full(repo)
        assert "j4 is paused" in before and _ready(repo, monkeypatch)
    CHANGES[change](repo)
    # the change is seen (an apply leaves the table of what it applied ready: cli._prime_status)...
    assert _ready(repo, monkeypatch) == (change == "apply")
    after = _as_full(repo)  # ...and shown as a full read shows it
    assert after != before or change == "a history row deleted"
    if change.startswith("state.db restored"):
        assert "j4 is paused" not in after


def test_the_kept_json_is_the_full_one_and_every_change_is_seen(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """`status --json` (docs/design.md 7) from its own kept rows: byte for byte the full
    path's, with overdue and usage (and budget left) made at each print."""
    repo = repos["json"]
    before = _as_full(repo, "--json")
    rows = {r["name"]: r for r in json.loads(before)}
    assert rows["late"]["overdue"] is True and rows["agent"]["budget_left"]["tokens"] == 1000 - 12 * 107
    assert _ready(repo, monkeypatch, as_json=True) and not _ready(repo, monkeypatch)
    for change in ("a run recorded", "pause", "edit"):
        CHANGES[change](repo)
        assert not _ready(repo, monkeypatch, as_json=True)
        after = _as_full(repo, "--json")
        assert after != before
        assert _ready(repo, monkeypatch, as_json=True) == (change != "edit")  # (an edit this recent: racy, not kept)
        before = after
    assert json.loads(after)[0]["usage_24h"]["input_tokens"] == 1300


def test_a_running_daemon_is_seen_by_the_kept_table(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine: `late` is overdue. The daemon's lock held: it is not (the probe)."""
    import fcntl

    repo = repos["daemon"]
    assert "late is overdue" in _as_full(repo)
    assert _ready(repo, monkeypatch)
    lock = repo / ".cronfile" / "daemon.lock"
    assert daemon_running(lock) is False
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a daemon holds it (filelock)
        assert daemon_running(lock) is True
        assert _ready(repo, monkeypatch)
        held = _as_full(repo)
        assert "overdue" not in held
    finally:
        os.close(fd)
    assert "late is overdue" in _as_full(repo)


def test_the_kept_table_is_not_used_for_another_state_dir(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repos["other state"]
    _as_full(repo)
    assert _ready(repo, monkeypatch)
    other = repo.parent / "elsewhere"
    shutil.copytree(repo / ".cronfile", other)
    monkeypatch.chdir(repo)
    args = argparse.Namespace(C=".", state_dir=str(other))
    assert print_ready(args, root_of(args))[0] is None  # (the same state, but reached another way)
    _cli(repo, "apply", "-q", "--state-dir", str(other))
    _cli(repo, "pause", "j3", "--state-dir", str(other))
    elsewhere = _as_full(repo, "--state-dir", str(other))
    assert "j3 is paused at runtime" in elsewhere and "j3 is paused" not in _as_full(repo)



def test_the_kept_coloured_table_is_the_full_one_and_every_change_is_seen(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The table for a terminal (FORCE_COLOR here) is kept in a file of its own, painted
    cell by cell as render_status paints it; NEXT red for an overdue job."""
    repo = repos["colour"]
    colour = {"FORCE_COLOR": "1"}
    before = _as_full(repo, env=colour)
    assert "\x1b[31m" in before and "\x1b[33m! j2 is paused" in before
    monkeypatch.chdir(repo)
    args = argparse.Namespace(C=".", state_dir=None)
    assert print_ready(args, root_of(args), color=True)[0] is not None and not _ready(repo, monkeypatch)
    for change in ("a run recorded", "resume"):
        CHANGES[change](repo)
        assert print_ready(args, root_of(args), color=True)[0] is None
        after = _as_full(repo, env=colour)
        assert after != before and print_ready(args, root_of(args), color=True)[0] is not None
        before = after


def test_jobs_whose_paths_are_checked_each_time_keep_no_table(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that reads a context file: its checks read other files than the job files,
    made again at each status (statusread), so no table is kept for that repo."""
    repo = repos["paths"]
    view_path(repo).unlink(missing_ok=True)  # type: ignore[union-attr]  # (one apply may have left before the job was added)
    _as_full(repo)
    _as_full(repo)
    assert not _ready(repo, monkeypatch)
    assert view_path(repo) is not None and not view_path(repo).exists()  # type: ignore[union-attr]


def test_the_signature_sees_what_the_loader_reads(tmp_path: Path) -> None:
    """Every file ``load.files_signature`` takes is in the view's signature, which also
    changes when a folder is swapped for a symlink to another with the same files."""
    from cronfile.load import files_signature

    repo = _repo(tmp_path / "repo")
    (repo / "jobs.d" / ".hidden.yaml").write_text(_job("h"))
    (repo / "jobs.d" / "readme.txt").write_text("not a job\n")
    (repo / "jobs.d" / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    sig = signature(repo)
    assert set(files_signature(repo)) <= set(sig)
    assert sig[str(repo / "jobs.d" / "dangling.yaml")] == -1
    copy = tmp_path / "copy"
    shutil.copytree(repo / "jobs.d" / "team", copy)
    shutil.rmtree(repo / "jobs.d" / "team")
    (repo / "jobs.d" / "team").symlink_to(copy)
    assert signature(repo) != sig


def test_a_state_reached_through_a_variable_or_home_is_the_one_it_leads_to(tmp_path: Path) -> None:
    """The route is kept as resolved: `${WHICH}` in CRONFILE_STATE_URL and `~` in
    CRONFILE_STATE_DIR lead to another database when the variable or HOME changes, and
    the table kept for the first must not be printed for the second (found by review:
    it printed prod's applied table for an empty state)."""
    repo = _repo(tmp_path / "r")
    _settled(repo)
    url = {"CRONFILE_STATE_URL": f"file://{tmp_path}/st-${{WHICH}}"}
    _cli(repo, "apply", "-q", env={**url, "WHICH": "prod"})
    prod = _as_full(repo, env={**url, "WHICH": "prod"})
    assert "not applied" not in prod.split("\n")[1]
    (tmp_path / "st-empty").mkdir()
    empty = _status(repo, env={**url, "WHICH": "empty"})
    assert empty == _status(repo, env={**url, "WHICH": "empty", "CRONFILE_NO_CACHE": "1"}) and empty != prod
    for home in ("h1", "h2"):
        (tmp_path / home / "st").mkdir(parents=True)
    via_home = {"CRONFILE_STATE_DIR": "~/st"}
    _cli(repo, "apply", "-q", env={**via_home, "HOME": str(tmp_path / "h1")})
    h1 = _as_full(repo, env={**via_home, "HOME": str(tmp_path / "h1")})
    h2 = _status(repo, env={**via_home, "HOME": str(tmp_path / "h2")})
    assert h2 == _status(repo, env={**via_home, "HOME": str(tmp_path / "h2"), "CRONFILE_NO_CACHE": "1"}) and h2 != h1


def test_a_damaged_kept_table_is_read_the_full_way(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    repo = repos["other state"]
    full = _as_full(repo)
    assert _ready(repo, monkeypatch)
    where = view_path(repo.resolve())
    assert where is not None
    data = pickle.loads(where.read_bytes())
    data["body"] = b"not a pickle"
    where.write_bytes(pickle.dumps(data))
    # (_as_full: no internal error, and what a status that keeps nothing prints; its
    # "ago" texts move with the clock, so `full` from before may be a minute behind)
    assert _as_full(repo).splitlines()[0] == full.splitlines()[0]


def test_the_kept_table_serves_a_status_from_any_folder_of_the_repo(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The current folder counts only through the relative paths it resolves: a status
    from jobs.d/ and one from the repo's top read the same state (found by review: each
    rewrote the kept table, so neither was ever printed from it)."""
    repo = repos["other state"]
    _as_full(repo)
    assert _ready(repo, monkeypatch)
    monkeypatch.chdir(repo / "jobs.d" / "team")
    args = argparse.Namespace(C=".", state_dir=None)
    assert print_ready(args, root_of(args))[0] is not None
    # A relative state dir is resolved from where the command runs: elsewhere, another route.
    monkeypatch.chdir(repo)
    assert print_ready(argparse.Namespace(C=".", state_dir=".cronfile"), root_of(args))[0] is None


def test_a_status_after_a_write_reads_the_database_marks_once(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The marks print_ready took (before anything of the state was read) are the full
    path's too: at 10k jobs each read of them costs about 34 ms, on every status after a
    daemon's write."""
    from cronfile import statusview

    repo = repos["other state"]
    _as_full(repo)
    _cli(repo, "pause", "j4")  # a write: the kept table no longer holds
    calls: list[object] = []
    real = statusview.db_marks
    monkeypatch.setattr(statusview, "db_marks", lambda db: calls.append(db) or real(db))
    out = _status(repo)
    assert "j4" in out and len(calls) == 1, calls
    assert _ready(repo, monkeypatch)  # and the table is kept again, with those marks
