"""What ``cronfile status`` keeps between commands (issue 17, round 4), and that it never
shows anything a full read would not:

- the status index (parsecache.StatusIndex, statusread.py): each job's name, spec hash
  and shown fields, used while the files' signature is unchanged. An edit, a rename, a
  delete, a new file, a config change and a rewrite of the same size and mtime are each
  seen as a full load sees them; the checks of the paths jobs use are made each time.
- the recent-runs memo (statusmemo.py): each job's last runs as status shows them,
  brought up to date by reading again only the jobs with history rows added since; rows
  gone from other jobs, a replaced top row, another database are each a full read.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import cronfile
from test_status_batch import _old_json, _run

from cronfile.load import load_project
from cronfile.parsecache import RACY_NS
from cronfile.render import LAST_RUN_KEYS
from cronfile.statusmemo import _read_all, recent_runs
from cronfile.statusread import read_status_repo, status_fields
from cronfile.stores.sqlite import SqliteStore


def _job(name: str, schedule: str = "0 0 1 1 *", extra: str = "") -> str:
    return f"schedule: '{schedule}'\nshell: echo {name}\n{extra}"


def _repo(root: Path) -> Path:
    (root / "jobs.d" / "team").mkdir(parents=True)
    (root / "cronfile.yaml").write_text("timezone: UTC\ncontext_file_limit: 1024\n")
    for i in range(6):
        (root / "jobs.d" / "team" / f"j{i}.yaml").write_text(_job(f"j{i}"))
    (root / "notes.txt").write_text("short\n")
    (root / "jobs.d" / "reads.yaml").write_text("schedule: '0 0 1 1 *'\nprompt: read\nagent: llm\ncontext:\n  files: [notes.txt]\n")
    (root / "jobs.d" / "agent.yaml").write_text("schedule: '0 0 1 1 *'\nprompt: summarize\nagent: llm\n")
    return root


def _settled(paths: list[Path]) -> None:
    """Wait (on the clock, bounded) until every file is older than the racy window: only
    a load that read no file within it writes the index."""
    newest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in paths)
    deadline = time.monotonic() + 10
    while time.time_ns() - newest < RACY_NS:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _files(repo: Path) -> list[Path]:
    return [*repo.rglob("*.yaml"), repo / "notes.txt"]


def _args(repo: Path) -> argparse.Namespace:
    return argparse.Namespace(C=str(repo), state_dir=None, state_url=None, json=True)


def _seen(repo: Path) -> tuple[list[tuple[str, str, dict[str, Any]]], int, bool]:
    got = read_status_repo(_args(repo))
    return [(s.name, s.spec_hash, status_fields(s.data)) for s in got.specs], got.error_count, got.from_index


def _full(repo: Path) -> tuple[list[tuple[str, str, dict[str, Any]]], int]:
    project = load_project(repo, warnings=False)
    return [(s.name, s.spec_hash, status_fields(s.data)) for s in project.specs], len(project.errors)


def _rename(repo: Path) -> None:
    (repo / "jobs.d" / "team" / "j1.yaml").rename(repo / "jobs.d" / "team" / "j1b.yaml")


def _same_size_and_mtime(repo: Path) -> None:
    p = repo / "jobs.d" / "team" / "j2.yaml"
    st = p.stat()
    text = p.read_text()
    p.write_text(text.replace("0 0 1 1 *", "0 0 2 1 *"))  # as long, another schedule
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns


CHANGES = {
    "edit": lambda r: (r / "jobs.d" / "team" / "j0.yaml").write_text(_job("j0", "5 4 * * *")),
    "rename": _rename,
    "delete": lambda r: (r / "jobs.d" / "team" / "j3.yaml").unlink(),
    "new file": lambda r: (r / "jobs.d" / "team" / "j9.yaml").write_text(_job("j9")),
    "new folder": lambda r: (r / "jobs.d" / "more").mkdir() or (r / "jobs.d" / "more" / "k.yaml").write_text(_job("k")),
    "config": lambda r: (r / "cronfile.yaml").write_text("timezone: Europe/Berlin\ncontext_file_limit: 1024\n"),
    "same size and mtime": _same_size_and_mtime,
    "broken file": lambda r: (r / "jobs.d" / "team" / "j4.yaml").write_text("schedule: [\n"),
    "duplicate name": lambda r: (r / "jobs.d" / "team" / "j5b.yaml").write_text("name: j5\n" + _job("j5")),
    "context file grows": lambda r: (r / "notes.txt").write_text("x" * 2000),
}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One repo per change, made at once, so that one wait lets them all settle."""
    out = {name: _repo(tmp_path_factory.mktemp(name.replace(" ", "-"))) for name in [*CHANGES, "unchanged", "cli"]}
    _with_runs(out["cli"])
    _settled([f for r in out.values() for f in _files(r)])
    return out


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_status_index_sees_every_change_a_full_load_sees(repos: dict[str, Path], change: str) -> None:
    repo = repos[change]
    before = _full(repo)
    assert _seen(repo)[:2] == before  # a full load: it writes the index
    assert _seen(repo) == (*before, True)  # read from the index
    CHANGES[change](repo)
    after = _full(repo)
    assert before[1] == 0 and after != before  # (the change is one status shows)
    # A job file or the config changed: a full load. A file a job reads changed: the
    # index still stands, and the paths' checks, made each time, see it.
    assert _seen(repo) == (*after, change == "context file grows")


def test_the_index_is_not_used_for_another_repo_or_with_the_cache_off(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repos["unchanged"]
    _seen(repo)
    assert _seen(repo)[2] is True
    monkeypatch.setenv("CRONFILE_NO_CACHE", "1")
    assert _seen(repo) == (*_full(repo), False)


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
USAGE = {"input_tokens": 100, "output_tokens": 7, "cost_usd": 0.001}


def _with_runs(repo: Path) -> None:
    assert cronfile("apply", "-q", cwd=repo).returncode == 0
    store = SqliteStore(repo / ".cronfile")
    for i in range(12):
        store.append_history("j0", _run("j0", f"a{i:02d}", ["success", "failed"][i % 2], T0 + timedelta(minutes=i)))
        store.append_history("agent", _run("agent", f"g{i:02d}", "success", T0 + timedelta(minutes=i), usage=USAGE))


def test_status_json_is_the_full_reads_before_and_after_an_edit_and_new_runs(repos: dict[str, Path]) -> None:
    repo = repos["cli"]
    store = SqliteStore(repo / ".cronfile")
    t0, usage = T0, USAGE

    def same() -> list[dict[str, Any]]:
        new = cronfile("status", "--json", cwd=repo)
        assert new.returncode == 0, new.stderr
        assert new.stdout == _old_json(repo)[0]
        return json.loads(new.stdout)

    same()  # writes the index and the memo
    cache = Path(os.environ["CRONFILE_CACHE_DIR"])
    assert list(cache.glob("*.status.pickle")) and list(cache.glob("*.runs.pickle"))
    same()  # reads both
    store.append_history("j0", _run("j0", "late", "timeout", t0 + timedelta(hours=1)))
    store.append_history("j0", {"run_id": "a01", "deliveries": [{"target": "stdout", "ok": True, "key": "a01.0"}]})
    store.append_history("agent", _run("agent", "g-new", "success", t0 + timedelta(hours=2), usage=usage))
    (repo / "jobs.d" / "team" / "j1.yaml").write_text(_job("j1", "7 7 * * *"))
    rows = {r["name"]: r for r in same()}
    assert rows["j0"]["recent"][-1] == "timeout" and rows["j1"]["drift"] == "changed"
    assert rows["agent"]["usage_24h"]["input_tokens"] == 1300


# -- the recent-runs memo ------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteStore:
    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    s = SqliteStore(tmp_path / "state")
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for i in range(40):
        job = f"j{i % 4}"
        s.append_history(job, _run(job, f"r{i:02d}", ["success", "failed", "timeout"][i % 3], at + timedelta(minutes=i), usage={"input_tokens": i, "output_tokens": 1}))
        if i % 7 == 0:
            s.append_history(job, {"run_id": f"r{i:02d}", "deliveries": [{"target": "stdout", "ok": True, "key": "k"}]})
    s.append_history("j0", {"job": "j0", "status": "success"})  # no run id: no run
    return s


AGENTS = {"j1", "j3"}


def _check(store: SqliteStore, how: str, agents: set[str] = AGENTS) -> None:
    got = recent_runs(store, agents)
    want = _read_all(store, agents)
    assert got.how == how
    assert _plain(got.summaries) == want.summaries
    for job in agents | set(want.summaries):
        assert got.usage_runs(job) == want.usage_runs(job) if job in agents else True


def _plain(summaries: dict[str, Any]) -> dict[str, Any]:
    """The memo keeps a last run as the tuple of its values (render.LAST_RUN_KEYS)."""
    return {job: (recent, dict(zip(LAST_RUN_KEYS, last, strict=True)) if isinstance(last, tuple) else last) for job, (recent, last) in summaries.items()}


def _at(i: int) -> datetime:
    return datetime(2026, 3, 3, 8, 0, tzinfo=UTC) + timedelta(minutes=i)


def test_new_runs_are_read_for_their_jobs_only_and_give_what_a_full_read_gives(store: SqliteStore) -> None:
    _check(store, "read")
    _check(store, "kept")
    store.append_history("j2", _run("j2", "n1", "failed", _at(1)))
    store.append_history("j1", _run("j1", "n2", "success", _at(2), usage={"input_tokens": 5, "output_tokens": 5}))
    store.append_history("j1", {"run_id": "r01", "deliveries": []})  # a late line of an old run
    store.append_history("j9", _run("j9", "n3", "success", _at(3)))  # a job's first run
    store.append_history("j8", {"job": "j8", "status": "success"})  # no run id
    _check(store, "updated")
    _check(store, "kept")
    _check(store, "updated", AGENTS | {"j0"})  # an agent job it kept no usage of


def test_a_prune_with_its_runs_updates_and_rows_gone_elsewhere_read_everything(store: SqliteStore) -> None:
    _check(store, "read")
    store.append_history("j0", _run("j0", "n1", "success", _at(1)))
    store.prune("j0", 3)  # as the engine does at a run's end
    _check(store, "updated")
    store.prune("j1", 2)  # a prune without a run of that job
    _check(store, "read")
    db = sqlite3.connect(store.db_path)
    with db:
        db.execute("DELETE FROM history WHERE id = (SELECT min(id) FROM history WHERE job = 'j2')")
    _check(store, "read")
    with db:  # the top row replaced by another under the same id, as many rows as before
        (top,) = db.execute("SELECT max(id) FROM history").fetchone()
        db.execute("DELETE FROM history WHERE id = ?", (top,))
        db.execute("INSERT INTO history (id, job, run_id, body) VALUES (?, 'j3', 'zz', ?)", (top, json.dumps(_run("j3", "zz", "failed", _at(9)))))
    _check(store, "read")
    db.close()


def test_another_database_at_the_same_path_is_read_in_full(store: SqliteStore, tmp_path: Path) -> None:
    _check(store, "read")
    store.close()
    for p in (tmp_path / "state").glob("state.db*"):
        p.unlink()
    fresh = SqliteStore(tmp_path / "state")
    fresh.append_history("j0", _run("j0", "x", "success", _at(0)))
    _check(fresh, "read")
    assert _plain(recent_runs(fresh, AGENTS).summaries) == {"j0": (("success",), {"run_id": "x", "status": "success", "started_at": _at(0).isoformat(timespec="seconds"), "finished_at": (_at(0) + timedelta(seconds=3)).isoformat(timespec="seconds")})}


def test_a_store_without_history_and_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    empty = SqliteStore(tmp_path / "none")
    assert recent_runs(empty, AGENTS).summaries == {}
    assert not (tmp_path / "none" / "state.db").exists()  # status made no database


# -- the applied jobs ------------------------------------------------------------------------


def _applied_now(state_dir: Path) -> dict[str, Any]:
    from cronfile.render import applied

    return {name: applied(js) for name, js in SqliteStore(state_dir).read().jobs.items()}


def test_the_applied_jobs_kept_are_the_states_after_applies_runs_pauses_and_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cronfile.statusmemo import applied_jobs

    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    repo = _repo(tmp_path / "repo")
    state = repo / ".cronfile"
    assert cronfile("apply", "-q", cwd=repo).returncode == 0

    def check(how: str) -> dict[str, Any]:
        jobs, got = applied_jobs(SqliteStore(state))
        assert got == how
        assert jobs == _applied_now(state)
        return jobs

    check("read")
    check("kept")
    assert cronfile("run", "j0", cwd=repo).returncode == 0  # last run, run count
    jobs = check("updated")
    assert jobs["j0"].last_run["status"] == "success"
    assert cronfile("pause", "j1", "--reason", "maintenance", cwd=repo).returncode == 0
    assert check("updated")["j1"].pause["reason"] == "maintenance"
    (repo / "jobs.d" / "team" / "j2.yaml").unlink()
    (repo / "jobs.d" / "team" / "j0.yaml").write_text(_job("j0", "9 9 * * *"))
    assert cronfile("apply", "-q", cwd=repo).returncode == 0
    jobs = check("updated")
    assert "j2" not in jobs and jobs["j0"].spec["schedule"] == "9 9 * * *"
    check("kept")


def test_the_applied_jobs_of_another_database_or_a_broken_head_are_read_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cronfile.statusmemo import applied_jobs

    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    repo = _repo(tmp_path / "repo")
    state = repo / ".cronfile"
    assert cronfile("apply", "-q", cwd=repo).returncode == 0
    assert applied_jobs(SqliteStore(state))[1] == "read"
    for p in state.glob("state.db*"):
        p.unlink()
    (repo / "jobs.d" / "team" / "j3.yaml").unlink()
    assert cronfile("apply", "-q", cwd=repo).returncode == 0  # a new database, fewer jobs
    jobs, how = applied_jobs(SqliteStore(state))
    assert how == "read" and jobs == _applied_now(state) and "j3" not in jobs
    before = cronfile("status", cwd=repo)
    assert before.returncode == 0
    with sqlite3.connect(state / "state.db") as db:
        db.execute("UPDATE head SET seq = seq + 1, body = '{\"version\": 999}'")
    broken = cronfile("status", cwd=repo)
    monkeypatch.setenv("CRONFILE_NO_CACHE", "1")
    plain = cronfile("status", cwd=repo)
    assert broken.returncode == plain.returncode == 2
    assert broken.stderr == plain.stderr and "version" in broken.stderr


def _a_zone_file() -> Path:
    """A TZif file to install under a new name (the system's UTC, else tzdata's)."""
    import zoneinfo

    for d in zoneinfo.TZPATH:
        if (Path(d) / "UTC").is_file():
            return Path(d) / "UTC"
    from importlib.resources import files

    return Path(str(files("tzdata.zoneinfo") / "UTC"))


def test_a_problem_is_not_kept_by_the_index_a_new_timezone_database_fixes_it(tmp_path: Path) -> None:
    """The parse cache never keeps a broken file (what decides its problems may change
    under it); the status index must not keep its error count either."""
    repo = tmp_path / "repo"
    (repo / "jobs.d").mkdir(parents=True)
    (repo / "jobs.d" / "j.yaml").write_text("schedule: '0 9 * * *'\nshell: echo hi\ntimezone: Foo/Bar\n")
    _settled(_files(repo)[:-1])
    for _ in range(2):
        bad = cronfile("status", cwd=repo)
        assert "has 1 problem" in bad.stderr, bad
    assert "Foo/Bar" in cronfile("validate", cwd=repo).stderr
    tz = tmp_path / "tz"
    (tz / "Foo").mkdir(parents=True)
    (tz / "Foo" / "Bar").write_bytes(_a_zone_file().read_bytes())
    env = {"PYTHONTZPATH": str(tz)}
    assert cronfile("validate", cwd=repo, env=env).returncode == 0
    good = cronfile("status", cwd=repo, env=env)
    plain = cronfile("status", cwd=repo, env={**env, "CRONFILE_NO_CACHE": "1"})
    assert (good.returncode, good.stdout, good.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert good.returncode == 0 and "problem" not in good.stderr, good


def test_a_transient_read_error_is_not_kept_by_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from cronfile import load

    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    repo = _repo(tmp_path / "repo")
    _settled(_files(repo))
    flaky = str(repo / "jobs.d" / "team" / "j3.yaml")
    real = load._read_capped

    def read_capped(path: Any) -> Any:
        if str(path) == flaky:
            raise OSError(errno.EIO, os.strerror(errno.EIO))  # a disk hiccup, once
        return real(path)

    monkeypatch.setattr(load, "_read_capped", read_capped)
    assert _seen(repo)[1:] == (1, False)
    monkeypatch.setattr(load, "_read_capped", real)
    assert _seen(repo) == (*_full(repo), False)
    assert _seen(repo) == (*_full(repo), True)  # the good read is kept
    assert _full(repo)[1] == 0


def _restore(state: Path, backup: Path) -> None:
    """What the store's error message tells a user to do: put a backup back."""
    import shutil

    for p in state.glob("state.db-*"):
        p.unlink()
    shutil.copyfile(backup, state / "state.db")


def _paused(repo: Path, env: dict[str, str] | None = None) -> dict[str, bool]:
    out = cronfile("status", "--json", cwd=repo, env=env)
    assert out.returncode == 0, out
    return {r["name"]: bool(r["pause"]) for r in json.loads(out.stdout)}


@pytest.mark.parametrize("more_writes", [0, 3])
def test_the_applied_jobs_after_state_db_is_restored_from_a_backup_are_the_restored_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, more_writes: int) -> None:
    """A backup has the database's id, and after it is put back the seq numbers it had
    reached are handed out again for other rows: the memo must see the rows it kept are
    not those any more, with no write since the restore (0) and with some (3)."""
    from cronfile.statusmemo import applied_jobs

    monkeypatch.setenv("CRONFILE_CACHE_DIR", str(tmp_path / "cache"))
    repo = _repo(tmp_path / "repo")
    state = repo / ".cronfile"
    assert cronfile("apply", "-q", cwd=repo).returncode == 0
    assert cronfile("status", cwd=repo).returncode == 0
    with sqlite3.connect(state / "state.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    backup = tmp_path / "backup.db"
    backup.write_bytes((state / "state.db").read_bytes())
    assert cronfile("pause", "j0", cwd=repo).returncode == 0
    for i in range(more_writes):
        assert cronfile("pause", f"j{i + 2}", cwd=repo).returncode == 0
    assert _paused(repo)["j0"]  # the memo is of this
    _restore(state, backup)
    assert cronfile("pause", "j1", cwd=repo).returncode == 0
    for _ in range(more_writes):
        assert cronfile("resume", "j1", cwd=repo).returncode == 0
        assert cronfile("pause", "j1", cwd=repo).returncode == 0
    plain = _paused(repo, env={"CRONFILE_NO_CACHE": "1"})
    assert plain["j1"] and not plain["j0"]
    assert _paused(repo) == plain
    jobs, how = applied_jobs(SqliteStore(state))
    assert jobs == _applied_now(state) and how == "kept"
