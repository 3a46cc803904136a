"""The parse cache: unchanged files are not read again, and a changed one always is.

Every test loads the same repo twice, the second time through a cache the first filled,
and checks the second load equals a load with no cache at all: the cache may only make
loading faster, never different.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
from cli_helpers import cronfile

from cronfile import load as load_mod
from cronfile.load import load_project
from cronfile.parsecache import RACY_NS, ParseCache

JOB = 'schedule: "0 3 * * *"\nshell: echo {n}\n'


def write(root: Path, rel: str, text: str, *, age_s: float = 10.0) -> Path:
    """Write a file and date it ``age_s`` seconds back (older than the racy window)."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    old = time.time() - age_s
    os.utime(p, (old, old))
    return p


def rewrite_keeping_size_and_mtime(p: Path, text: str) -> None:
    """Write ``text`` (the same length as what ``p`` holds) and put the mtime back, until
    the ctime shows the write (a coarse clock may need a tick)."""
    st = p.stat()
    assert len(text.encode()) == st.st_size
    deadline = time.monotonic() + 5
    while p.stat().st_ctime_ns == st.st_ctime_ns and time.monotonic() < deadline:
        p.write_text(text)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(5):
        write(tmp_path, f"jobs.d/team/job{i}.yaml", JOB.format(n=i))
    return tmp_path


@pytest.fixture
def reads(monkeypatch):
    """The job files parse_file actually read."""
    seen: list[str] = []
    real = load_mod.parse_file

    def spy(path, *a, **kw):
        seen.append(os.path.basename(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(load_mod, "parse_file", spy)
    return seen


def same(a, b) -> None:
    assert [s.data for s in a.specs] == [s.data for s in b.specs]
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]
    assert [s.source for s in a.specs] == [s.source for s in b.specs]
    assert [s.where("schedule") for s in a.specs] == [s.where("schedule") for s in b.specs]


def later() -> int:
    """A clock 10 s ahead: files just written count as settled (ctime cannot be dated
    back); the racy window has a test of its own."""
    return time.time_ns() + 10 * 10**9


def cached_load(repo: Path, tmp: Path, now_ns=later):
    cache = ParseCache(tmp / "c.pickle", now_ns=now_ns)
    project = load_project(repo, cache=cache)
    cache.save()
    return project, cache


def test_a_second_load_reads_no_file_and_gives_the_same_project(repo, tmp_path, reads):
    first, _ = cached_load(repo, tmp_path)
    assert len(reads) == 5
    reads.clear()
    second, cache = cached_load(repo, tmp_path)
    assert reads == [] and cache.hits == 5
    same(second, first)
    same(second, load_project(repo))


def test_an_edited_file_is_read_again_and_only_it(repo, tmp_path, reads):
    cached_load(repo, tmp_path)
    reads.clear()
    write(repo, "jobs.d/team/job2.yaml", 'schedule: "0 4 * * *"\nshell: echo changed\n')
    second, _ = cached_load(repo, tmp_path)
    assert reads == ["job2.yaml"]
    assert second.job("job2").data["schedule"] == "0 4 * * *"
    same(second, load_project(repo))


def test_an_edit_of_the_same_size_and_mtime_is_still_seen(repo, tmp_path, reads):
    """In place, same length, mtime put back: the ctime still differs (and an editor's
    save by rename changes the inode)."""
    p = repo / "jobs.d/team/job1.yaml"
    cached_load(repo, tmp_path)
    rewrite_keeping_size_and_mtime(p, JOB.format(n=7))  # "echo 1" -> "echo 7"
    reads.clear()
    second, _ = cached_load(repo, tmp_path)
    assert reads == ["job1.yaml"]
    assert second.job("job1").data["shell"] == "echo 7"
    q = repo / "jobs.d/team/job3.yaml"
    tmp = q.with_suffix(".tmp")
    tmp.write_text(JOB.format(n=8))
    os.utime(tmp, ns=(q.stat().st_atime_ns, q.stat().st_mtime_ns))
    os.replace(tmp, q)
    reads.clear()
    third, _ = cached_load(repo, tmp_path)
    assert reads == ["job3.yaml"] and third.job("job3").data["shell"] == "echo 8"


def test_a_file_changed_within_the_racy_window_is_not_cached(repo, tmp_path, reads):
    write(repo, "jobs.d/team/fresh.yaml", JOB.format(n=9), age_s=0)
    cached_load(repo, tmp_path, now_ns=time.time_ns)
    reads.clear()
    cached_load(repo, tmp_path, now_ns=time.time_ns)
    assert "fresh.yaml" in reads  # read again: its timestamps cannot be trusted yet
    assert RACY_NS >= 1_000_000_000


def test_a_new_and_a_deleted_file(repo, tmp_path, reads):
    cached_load(repo, tmp_path)
    reads.clear()
    (repo / "jobs.d/team/job0.yaml").unlink()
    write(repo, "jobs.d/new.yaml", JOB.format(n=5))
    second, cache = cached_load(repo, tmp_path)
    assert reads == ["new.yaml"]
    assert {s.name for s in second.specs} == {"job1", "job2", "job3", "job4", "new"}
    assert not any(k.endswith("job0.yaml") for k in cache.entries)  # forgotten
    same(second, load_project(repo))


def test_a_changed_cronfile_yaml_reads_every_file_again(repo, tmp_path, reads):
    cached_load(repo, tmp_path)
    reads.clear()
    write(repo, "cronfile.yaml", "defaults:\n  timezone: Europe/Berlin\n")
    second, _ = cached_load(repo, tmp_path)
    assert len(reads) == 5
    assert {s.timezone for s in second.specs} == {"Europe/Berlin"}


def test_a_file_with_errors_is_read_again_each_time_and_warnings_come_back(repo, tmp_path, reads):
    """Errors are never cached (what decides them, like the timezone database, may
    change without the file changing); a file's own warnings are."""
    write(repo, "jobs.d/bad.yaml", 'schedule: "61 * * * *"\nshell: x\n')
    write(repo, "jobs.d/empty.yaml", "# switched off\n")
    first, _ = cached_load(repo, tmp_path)
    reads.clear()
    second, _ = cached_load(repo, tmp_path)
    assert reads == ["bad.yaml"]
    assert [str(p) for p in second.problems] == [str(p) for p in first.problems]
    assert any("bad.yaml:1:" in str(p) for p in second.errors)
    assert any("empty.yaml" in str(p) and p.severity == "warning" for p in second.problems)


def test_a_corrupt_foreign_or_unsafe_cache_file_is_ignored(repo, tmp_path, reads):
    path = tmp_path / "c.pickle"
    path.write_bytes(b"\x80\x05garbage")
    project, _ = cached_load(repo, tmp_path)
    same(project, load_project(repo))
    assert pickle.loads(path.read_bytes())["entries"]  # rewritten, valid
    os.chmod(path, 0o666)  # writable by others: not loaded
    assert ParseCache(path).entries == {}
    os.chmod(path, 0o600)
    assert ParseCache(path).entries


def test_a_cache_folder_made_group_writable_is_tightened_and_someone_elses_file_is_left(repo, tmp_path):
    path = tmp_path / "cache" / "c.pickle"
    path.parent.mkdir(mode=0o775)
    os.chmod(path.parent, 0o775)
    cache = ParseCache(path, now_ns=later)
    load_project(repo, cache=cache)
    cache.save()
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert ParseCache(path).entries  # trusted now
    os.chmod(path, 0o620)  # group-writable file: refused, then rewritten 0600 by us
    again = ParseCache(path, now_ns=later)
    assert again.entries == {}
    load_project(repo, cache=again)
    again.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600" and ParseCache(path).entries


def test_cronfiles_own_code_changing_empties_the_cache(repo, tmp_path, monkeypatch):
    cached_load(repo, tmp_path)
    monkeypatch.setattr("cronfile.parsecache._code_fingerprint", lambda: "another build")
    assert ParseCache(tmp_path / "c.pickle").entries == {}


def test_the_command_line_keeps_one_cache_per_repo_in_cronfile_cache_dir(repo, tmp_path):
    cache_dir = tmp_path / "cache"
    env = {"CRONFILE_CACHE_DIR": str(cache_dir)}
    # A process cannot date a file's ctime back: wait until the files are settled.
    newest = max(p.stat().st_ctime_ns for p in repo.rglob("*.yaml"))
    while time.time_ns() - newest < RACY_NS:
        time.sleep(0.05)
    first = cronfile("validate", cwd=repo, env=env)
    assert first.returncode == 0, first.stderr
    files = list(cache_dir.iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    again = cronfile("validate", cwd=repo, env=env)
    assert again.stdout == first.stdout and again.stderr == first.stderr
    off = cronfile("validate", cwd=repo, env={"CRONFILE_CACHE_DIR": str(tmp_path / "none"), "CRONFILE_NO_CACHE": "1"})
    assert off.returncode == 0 and not (tmp_path / "none").exists()


def test_diff_warns_only_about_the_jobs_it_creates_or_updates(repo, tmp_path):
    env = {"CRONFILE_CACHE_DIR": str(tmp_path / "cache"), "MISSING_VAR_X": ""}
    write(repo, "jobs.d/a.yaml", 'schedule: "0 3 * * *"\nshell: "true"\nenv:\n  T: ${NOT_SET_A}\n')
    write(repo, "jobs.d/b.yaml", 'schedule: "0 3 * * *"\nshell: "true"\nenv:\n  T: ${NOT_SET_B}\n')
    first = cronfile("apply", cwd=repo, env=env)
    assert "NOT_SET_A" in first.stderr and "NOT_SET_B" in first.stderr
    write(repo, "jobs.d/b.yaml", 'schedule: "0 4 * * *"\nshell: "true"\nenv:\n  T: ${NOT_SET_B}\n')
    diff = cronfile("diff", cwd=repo, env=env)
    assert diff.returncode == 1
    assert "NOT_SET_B" in diff.stderr and "NOT_SET_A" not in diff.stderr
    val = cronfile("validate", cwd=repo, env=env)
    assert "NOT_SET_A" in val.stderr and "NOT_SET_B" in val.stderr


def test_a_symlink_loop_named_like_a_job_file_is_a_clear_problem(repo):
    os.symlink("loop.yaml", repo / "jobs.d/loop.yaml")
    project = load_project(repo)
    assert [str(p) for p in project.errors] == ["jobs.d/loop.yaml: symlink loop; refused"]


def test_problems_of_one_folder_come_in_name_order(repo):
    for n in ("o3", "o1", "o2"):
        os.mkfifo(repo / f"jobs.d/{n}.yaml")
    msgs = [str(p) for p in load_project(repo).errors if "not a regular file" in str(p)]
    assert msgs == sorted(msgs) and len(msgs) == 3


def test_a_daemon_reload_sees_an_edit_that_keeps_size_and_mtime(repo, tmp_path):
    """Same size, mtime put back: the signature still differs by ctime (or the files
    are racy and read again), so the edit is applied, not skipped."""
    from datetime import UTC, datetime

    from cronfile.clock import FakeClock
    from cronfile.engine import Engine
    from cronfile.stores.file import FileStore

    a = repo / "jobs.d/team/job1.yaml"
    cache = ParseCache(now_ns=later)
    project = load_project(repo, cache=cache, warnings=False)
    store = FileStore(tmp_path / "state")
    engine = Engine(repo, store, project=project, mode="daemon", clock=FakeClock(datetime(2026, 3, 2, tzinfo=UTC)), quiet=True)
    engine.apply(project, "daemon")
    rewrite_keeping_size_and_mtime(a, JOB.format(n=7))
    engine.reload()
    assert store.read().jobs["job1"].spec["shell"] == "echo 7"


def test_files_read_within_a_tick_of_a_write_are_checked_by_their_bytes(repo, tmp_path, monkeypatch):
    """A coarse filesystem clock can give two writes in one tick the same mtime, ctime
    and size: for a file read that soon after a write an equal signature proves
    nothing. Simulate the worst case (the signature cannot tell) and check that apply
    still applies what the file holds now."""
    from datetime import UTC, datetime

    import cronfile.engine as engine_mod
    from cronfile.apply import apply_project
    from cronfile.load import racy_changed
    from cronfile.stores.file import FileStore

    fresh = write(repo, "jobs.d/fresh.yaml", JOB.format(n=1), age_s=0)
    project = load_project(repo, cache=ParseCache(now_ns=time.time_ns))
    assert str(fresh) in project.racy and not racy_changed(project)
    fresh.write_text(JOB.format(n=2))  # same size
    assert racy_changed(project)
    monkeypatch.setattr(engine_mod, "files_signature", lambda root, jobs_dir=None: project.signature)
    store = FileStore(tmp_path / "state")
    apply_project(store, project, now=datetime(2026, 3, 2, tzinfo=UTC), revision=None, source="test")
    assert store.read().jobs["fresh"].spec["shell"] == "echo 2"
