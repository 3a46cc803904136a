"""The daemon's reload, file by file: ``load.reload_project`` reads again only the files the
watcher names, and must give the project a full load gives for the same files; the
reconcile it feeds must equal a full reconcile.

Each case edits a real repo on disk, then compares ``reload_project(prev, changed)``
with ``load_project(root, warnings=False)`` read afterwards from scratch (no cache).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronfile.load import Project, load_project, reload_project
from cronfile.parsecache import ParseCache
from cronfile.reconcile import reconcile
from cronfile.state import State

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JOB = 'schedule: "{m} 3 * * *"\nshell: echo {text}\n'


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def same_project(a: Project, b: Project) -> None:
    """Everything a Project says, down to each job's place in its file."""
    assert [(s, s.source, s.line, s.positions) for s in a.specs] == [(s, s.source, s.line, s.positions) for s in b.specs]
    assert a.problems == b.problems
    assert a.file_names == b.file_names
    assert a.signature == b.signature
    assert list(a.entries) == list(b.entries)
    assert all(a.entries[k].same(b.entries[k]) and a.entries[k].order == b.entries[k].order for k in a.entries)
    assert a.dirs == b.dirs
    assert a.base_problems == b.base_problems
    assert a.index is not None and b.index is not None
    assert list(a.index.by_name.items()) == list(b.index.by_name.items())
    assert all(a.index.by_name[n] is s for n, s in ((s.name, s) for s in a.specs))
    assert (a.index.dupes, a.index.pathy, a.index.head) == (b.index.dupes, b.index.pathy, b.index.head)


def full(root: Path) -> Project:
    return load_project(root, now=NOW, warnings=False)


def reloaded(prev: Project, *paths: Path) -> Project | None:
    out = reload_project(prev, [str(p) for p in paths], now=NOW)
    return None if out is None else out[0]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for i in range(4):
        write(tmp_path, f"jobs.d/team/job{i}.yaml", JOB.format(m=i, text=i))
    write(tmp_path, "jobs.d/top.yaml", JOB.format(m=9, text="top"))
    write(tmp_path, "jobs.d/b/two.yaml", "name: two-a\n" + JOB.format(m=1, text="a") + "---\nname: two-b\n" + JOB.format(m=2, text="b"))
    return tmp_path


def test_an_edited_file_is_read_again_and_nothing_else(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cronfile import load as load_mod

    prev = full(repo)
    p = write(repo, "jobs.d/team/job2.yaml", JOB.format(m=2, text="edited"))
    read: list[str] = []
    real = load_mod.parse_file
    monkeypatch.setattr(load_mod, "parse_file", lambda path, *a, **k: (read.append(path), real(path, *a, **k))[1])
    out = reload_project(prev, [str(p)], now=NOW)
    assert out is not None
    project, differs = out
    assert differs and len(read) == 1 and read[0].endswith("jobs.d/team/job2.yaml")
    assert project.job("job2").shell == "echo edited"
    same_project(project, full(repo))


def test_an_edit_that_leaves_the_checks_across_files_alone_swaps_the_job_in_place(repo: Path) -> None:
    """No pass over every job: the edited job takes its old one's place, and a cache of
    specs can swap the one (Project.swapped); the result is a full load's all the same."""
    prev = full(repo)
    p = write(repo, "jobs.d/b/two.yaml", "name: two-a\n" + JOB.format(m=1, text="a") + "---\nname: two-b\n" + JOB.format(m=2, text="B"))
    project = reloaded(prev, p)
    assert project is not None and project.patched_from is not None and project.patched_from() is prev
    # Every job of the file is swapped (two-a for an equal one, read again).
    assert [(a.name, b.name) for a, b in project.swapped] == [("two-a", "two-a"), ("two-b", "two-b")]
    assert all(a is prev.job(a.name) and b is project.job(b.name) for a, b in project.swapped)
    same_project(project, full(repo))


@pytest.mark.parametrize(
    "text",
    [
        JOB.format(m=1, text="x") + "workdir: sub\n",  # a path to check
        'schedule: "1 3 * * *"\nprompt: p\nagent: claude\ncontext:\n  from_job: nope\n',  # a reference
        "name: job2\n" + JOB.format(m=1, text="x"),  # another file's name
        'schedule: "99 3 * * *"\nshell: x\n',  # a problem in the file
    ],
    ids=["workdir", "from_job", "duplicate", "invalid"],
)
def test_an_edit_that_touches_a_check_across_files_assembles_them_all(repo: Path, text: str) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/team/job1.yaml", text)
    project = reloaded(prev, p)
    assert project is not None and project.swapped == ()
    same_project(project, full(repo))


def test_a_file_written_with_the_same_jobs_changes_nothing(repo: Path) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/team/job1.yaml", JOB.format(m=1, text=1))
    out = reload_project(prev, [str(p)], now=NOW)
    assert out is not None and out[1] is False
    assert out[0].specs is prev.specs
    same_project(out[0], full(repo))


def test_a_new_file_takes_its_place_in_the_walk(repo: Path) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/team/job15.yaml", JOB.format(m=15, text="new"))
    q = write(repo, "jobs.d/a.yaml", JOB.format(m=16, text="first"))
    project = reloaded(prev, p, q)
    assert project is not None and project.job("job15") is not None
    same_project(project, full(repo))


def test_a_deleted_file_drops_its_jobs(repo: Path) -> None:
    prev = full(repo)
    p = repo / "jobs.d/b/two.yaml"
    p.unlink()
    project = reloaded(prev, p)
    assert project is not None and project.job("two-a") is None and project.job("two-b") is None
    same_project(project, full(repo))


def test_a_rename_is_a_delete_and_a_new_file(repo: Path) -> None:
    prev = full(repo)
    old = repo / "jobs.d/team/job3.yaml"
    new = repo / "jobs.d/renamed.yaml"
    os.rename(old, new)
    project = reloaded(prev, old, new)
    assert project is not None
    assert project.job("job3") is None and project.job("renamed").shell == "echo 3"
    same_project(project, full(repo))


def test_a_duplicate_name_across_files_is_found_as_a_full_load_finds_it(repo: Path) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/a.yaml", "name: job1\n" + JOB.format(m=1, text="dup"))
    project = reloaded(prev, p)
    assert project is not None and any("duplicate job name 'job1'" in x.message for x in project.errors)
    # The first in the walk wins: jobs.d/a.yaml sorts before jobs.d/team/.
    assert project.job("job1").shell == "echo dup"
    same_project(project, full(repo))
    # And removing it brings the other back.
    p.unlink()
    again = reloaded(project, p)
    assert again is not None and again.ok and again.job("job1").shell == "echo 1"
    same_project(again, full(repo))


def test_an_invalid_edit_is_reported_as_a_full_load_reports_it(repo: Path) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/team/job0.yaml", 'schedule: "99 3 * * *"\nshell: echo x\n')
    project = reloaded(prev, p)
    assert project is not None and not project.ok
    same_project(project, full(repo))


def test_a_from_job_reference_is_checked_across_files(repo: Path) -> None:
    prev = full(repo)
    p = write(repo, "jobs.d/ref.yaml", 'schedule: "5 3 * * *"\nprompt: summarize\nagent: claude\ncontext:\n  from_job: job0\n')
    project = reloaded(prev, p)
    assert project is not None and project.ok
    gone = repo / "jobs.d/team/job0.yaml"
    gone.unlink()
    again = reloaded(project, gone)
    assert again is not None and any("no job named 'job0'" in x.message for x in again.errors)
    same_project(again, full(repo))


@pytest.mark.parametrize(
    "what",
    ["config", "new folder", "folder gone", "symlink", "fifo", "hidden folder"],
)
def test_what_cannot_be_done_file_by_file_asks_for_a_full_load(repo: Path, what: str) -> None:
    prev = full(repo)
    if what == "config":
        p = write(repo, "cronfile.yaml", "defaults:\n  timeout: 5m\n")
    elif what == "new folder":
        p = write(repo, "jobs.d/newdir/x.yaml", JOB.format(m=1, text="x"))
    elif what == "folder gone":
        for f in (repo / "jobs.d/b").iterdir():
            f.unlink()
        (repo / "jobs.d/b").rmdir()
        p = repo / "jobs.d/b"
    elif what == "symlink":
        p = repo / "jobs.d/link.yaml"
        p.symlink_to(repo / "jobs.d/top.yaml")
    elif what == "fifo":
        p = repo / "jobs.d/pipe.yaml"
        os.mkfifo(p)
    else:
        p = write(repo, "jobs.d/.hidden/x.yaml", JOB.format(m=1, text="x"))
    assert reload_project(prev, [str(p)], now=NOW) is None


def test_a_config_change_reaches_every_job_through_the_full_load(repo: Path) -> None:
    """cronfile.yaml's defaults are part of each job's spec: the reload is refused, and
    the full load (with the daemon's cache) gives every job its new spec."""
    cache = ParseCache()
    prev = load_project(repo, now=NOW, warnings=False, cache=cache)
    p = write(repo, "cronfile.yaml", "defaults:\n  timeout: 7m\n")
    assert reload_project(prev, [str(p)], now=NOW) is None
    after = load_project(repo, now=NOW, warnings=False, cache=cache)
    assert all(s.timeout == 420 for s in after.specs)
    assert {s.name for s in after.specs if s.spec_hash != prev.job(s.name).spec_hash} == {s.name for s in prev.specs}


def test_a_project_loaded_with_warnings_or_some_files_is_not_reloaded_file_by_file(repo: Path) -> None:
    p = repo / "jobs.d/top.yaml"
    assert reload_project(load_project(repo, now=NOW), [str(p)]) is None
    assert reload_project(load_project(repo, now=NOW, warnings=False, files=[p]), [str(p)]) is None


def test_a_file_changed_twice_in_the_racy_window_is_read_each_time(repo: Path) -> None:
    """Same size, same mtime, within one clock tick: the watcher names it each time, and
    it is read each time whatever its timestamps say (the cache holds nothing racy)."""
    cache = ParseCache()
    prev = load_project(repo, now=NOW, warnings=False, cache=cache)
    p = repo / "jobs.d/team/job1.yaml"
    write(repo, "jobs.d/team/job1.yaml", JOB.format(m=1, text="AAAA"))
    st = p.stat()
    first = reloaded(prev, p)
    assert first is not None and first.job("job1").shell == "echo AAAA"
    write(repo, "jobs.d/team/job1.yaml", JOB.format(m=1, text="BBBB"))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    second = reloaded(first, p)
    assert second is not None and second.job("job1").shell == "echo BBBB"
    same_project(second, full(repo))


def _state_of(project: Project, now: datetime) -> State:
    return reconcile(project.specs, State(), now)[0]


def test_a_reload_then_reconcile_equals_a_full_load_then_reconcile(repo: Path) -> None:
    prev = full(repo)
    state = _state_of(prev, NOW)
    p = write(repo, "jobs.d/team/job2.yaml", JOB.format(m=30, text="moved"))
    q = repo / "jobs.d/top.yaml"
    q.unlink()
    project = reloaded(prev, p, q)
    assert project is not None
    later = NOW + timedelta(minutes=3)
    a_state, a_plan = reconcile(project.specs, state, later)
    b_state, b_plan = reconcile(full(repo).specs, state, later)
    assert a_plan == b_plan and a_state == b_state
    assert a_plan.counts == {"create": 0, "update": 1, "delete": 1, "unchanged": 5}


NAMES = [f"jobs.d/{d}{n}.yaml" for d in ("", "x/", "x/y/") for n in ("a", "b", "c")]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["write", "write", "write-same", "delete", "rename", "invalid", "dup", "ref", "workdir", "subdir"]),
        st.sampled_from(NAMES),
        st.sampled_from(NAMES),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(OPS, min_size=1, max_size=4))
def test_any_sequence_of_edits_reloads_to_what_a_full_load_reads(tmp_path_factory: pytest.TempPathFactory, steps: list[list[tuple[str, str, str, int]]]) -> None:
    """Random edits (writes, same-content writes, deletes, renames, invalid files,
    names declared twice), in batches as the watcher hands them on: after each batch,
    the reloaded project equals a full load, and so does the reconcile it feeds."""
    root = tmp_path_factory.mktemp("repo")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for d in ("jobs.d/x/y",):
            (root / d).mkdir(parents=True)
        for n in NAMES[::2]:
            write(root, n, JOB.format(m=1, text=n.replace("/", "_")))
        project = full(root)
        state = _state_of(project, NOW)
        now = NOW
        for batch in steps:
            changed: list[Path] = []
            for op, a, b, k in batch:
                pa, pb = root / a, root / b
                if op == "write":
                    write(root, a, JOB.format(m=k, text=f"v{k}"))
                elif op == "write-same" and pa.exists():
                    pa.write_bytes(pa.read_bytes())
                elif op == "delete" and pa.exists():
                    pa.unlink()
                elif op == "rename" and pa.exists() and a != b:
                    os.replace(pa, pb)
                elif op == "invalid":
                    write(root, a, "schedule: [\n")
                elif op == "dup":
                    write(root, a, f"name: dup{k}\n" + JOB.format(m=k, text="d"))
                elif op == "ref":  # a from_job to a job that may or may not exist
                    write(root, a, f'schedule: "{k} 3 * * *"\nprompt: p\nagent: claude\ncontext:\n  from_job: {Path(b).stem}\n')
                elif op == "workdir":  # a path checked against the repo (path_problems)
                    write(root, a, JOB.format(m=k, text="w") + "workdir: sub\n")
                elif op == "subdir":  # outside jobs.d: a full load sees it, so must a reload
                    if (root / "sub").exists():
                        (root / "sub").rmdir()
                    else:
                        (root / "sub").mkdir()
                    continue
                changed += [pa, pb] if op == "rename" else [pa]
            out = reload_project(project, [str(p) for p in changed], now=now)
            assert out is not None
            project = out[0]
            expected = full(root)
            same_project(project, expected)
            now += timedelta(minutes=1)
            if project.ok:
                a_state, a_plan = reconcile(project.specs, state, now)
                b_state, b_plan = reconcile(expected.specs, state, now)
                assert (a_state, a_plan) == (b_state, b_plan)
                # The names a store writes are those whose JobState is not the same object.
                compared = {n for n, js in a_state.jobs.items() if state.jobs.get(n) is not js} | (state.jobs.keys() - a_state.jobs.keys())
                assert a_state.changed_since(state) == compared
                state = a_state.settled()
    finally:
        os.chdir(cwd)
