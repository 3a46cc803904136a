"""The running daemon applies each edit by reading only the files the watcher names
(load.reload_project), and what it applies is what a full read gives: after every
change below, `cronfile diff` (which reads every file) finds nothing to do.

The first tests drive a real `cronfile daemon`; the last ones run the engine in this
process with a real watcher on real files, to see which path a reload took.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, read_state, wait_for, write_job

from cronfile import engine as engine_mod
from cronfile import load as load_mod
from cronfile.engine import Engine
from cronfile.load import load_project
from cronfile.stores import open_store
from cronfile.watch import Watcher

pytestmark = pytest.mark.slow

JOB = 'description: {d}\nschedule: "0 3 * * *"\nshell: "true"\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for i in range(3):
        write_job(tmp_path, f"job{i}", JOB.format(d=f"d{i}"))
    write_job(tmp_path, "team/lead", JOB.format(d="lead"))
    return tmp_path


def in_sync(root: Path) -> None:
    """`cronfile diff` reads every file and finds the state the daemon wrote up to date."""
    res = cronfile("-C", str(root), "diff", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["changes"] == []


def test_edits_renames_deletes_and_new_files_are_applied_as_a_full_read_would(repo: Path) -> None:
    with Daemon(repo) as d:
        write_job(repo, "job1", JOB.format(d="edited"))
        d.wait_log(r"job1 update \(description\)")
        in_sync(repo)

        os.rename(repo / "jobs.d/job2.yaml", repo / "jobs.d/team/moved.yaml")
        d.wait_log(r"job2 delete")
        d.wait_log(r"moved create")
        in_sync(repo)

        (repo / "jobs.d/job0.yaml").unlink()
        d.wait_log(r"job0 delete")
        in_sync(repo)

        write_job(repo, "fresh", JOB.format(d="new"))
        d.wait_log(r"fresh create")
        in_sync(repo)

        # A new folder is read by a full walk; its file is applied all the same.
        write_job(repo, "newdir/deep", JOB.format(d="deep"))
        d.wait_log(r"deep create")
        in_sync(repo)

        # Written in place (not renamed over): the close of the write is the event.
        (repo / "jobs.d/team/lead.yaml").write_text(JOB.format(d="in place"))
        d.wait_log(r"lead update \(description\)")
        in_sync(repo)
        assert d.stop() == 0


def test_a_cronfile_yaml_change_reaches_every_job(repo: Path) -> None:
    with Daemon(repo) as d:
        (repo / "cronfile.yaml").write_text("defaults:\n  timeout: 7m\n")
        d.wait_log(r"applied: 0 to create, 4 to update, 0 to delete")
        in_sync(repo)
        assert {js["spec"]["timeout"] for js in read_state(repo)["jobs"].values()} == {"7m"}
        assert d.stop() == 0


def test_an_invalid_file_keeps_the_set_until_it_is_fixed_whatever_else_changes(repo: Path) -> None:
    """The reload builds on the files as last read, not on the last set applied: an
    invalid file stays invalid while another file is edited, and nothing is applied."""
    with Daemon(repo) as d:
        write_job(repo, "job0", 'schedule: "61 3 * * *"\nshell: "true"\n')
        d.wait_log(r"keeping the last good set")
        write_job(repo, "job1", JOB.format(d="meanwhile"))
        d.wait_log(r"keeping the last good set", count=2)
        assert "job1 update" not in d.text()
        write_job(repo, "job0", JOB.format(d="fixed"))
        d.wait_log(r"job0 update \(description\)")
        d.wait_log(r"job1 update \(description\)")
        in_sync(repo)
        assert d.stop() == 0


def test_a_file_written_twice_with_the_same_size_and_mtime_is_applied_as_last_written(repo: Path) -> None:
    """Within one clock tick, to a coarse filesystem clock: the second write looks like
    the first by its timestamps and size. The watcher names the file each time."""
    with Daemon(repo) as d:
        p = repo / "jobs.d/job1.yaml"
        st = p.stat()
        p.write_text(JOB.format(d="AAAA"))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        d.wait_log(r"job1 update \(description\)")
        p.write_text(JOB.format(d="BBBB"))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        d.wait_log(r"job1 update \(description\)", count=2)
        in_sync(repo)
        assert read_state(repo)["jobs"]["job1"]["spec"]["description"] == "BBBB"
        assert d.stop() == 0


# -- in this process: which path the reload took ----------------------------------------------


class Counted:
    """The full loads and the file-by-file reloads an engine makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = 0
        self.partial = 0
        self.walks = 0
        real_load, real_reload, real_scan = engine_mod.load_project, engine_mod.reload_project, load_mod._scan

        def load(*a: object, **k: object) -> object:
            self.full += 1
            return real_load(*a, **k)

        def reload(*a: object, **k: object) -> object:
            out = real_reload(*a, **k)
            self.partial += out is not None
            return out

        def scan(*a: object, **k: object) -> object:
            self.walks += 1
            return real_scan(*a, **k)

        monkeypatch.setattr(engine_mod, "load_project", load)
        monkeypatch.setattr(engine_mod, "reload_project", reload)
        monkeypatch.setattr(load_mod, "_scan", scan)


@pytest.fixture
def live(repo: Path, monkeypatch: pytest.MonkeyPatch):
    """An engine in daemon mode with a real inotify watcher on ``repo``; yields
    (engine, wait) where wait() blocks until the watcher reports a files change."""
    monkeypatch.chdir(repo)
    project = load_project(repo, warnings=False)
    store = open_store(state_dir=repo / ".cronfile")
    eng = Engine(repo, store, project=project, mode="daemon", quiet=True, log_stream=io.StringIO())
    eng.apply(project, "test")
    seen = threading.Event()
    watcher = Watcher(repo, store.watch_file(), on_change=lambda kinds: seen.set() if "files" in kinds else None)
    watcher.start()
    if watcher.backend != "inotify":
        watcher.stop()
        pytest.fail("this test needs inotify (Linux)")
    eng._watcher = watcher

    def wait() -> None:
        wait_for(seen.is_set, timeout=10, what="the watcher to report the change")
        seen.clear()

    try:
        yield eng, wait
    finally:
        watcher.stop()


def test_one_edited_file_is_read_alone_with_no_walk_of_the_repo(live, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, wait = live
    n = Counted(monkeypatch)
    before = eng.store.read().jobs["job1"].spec_hash
    for k in range(2):
        write_job(repo, "job1", JOB.format(d=f"edited {k}"))
        wait()
        eng.reload()
        assert (n.partial, n.full, n.walks) == (k + 1, 0, 0)
        assert eng.project.job("job1").description == f"edited {k}"
        js = eng.store.read().jobs["job1"]
        assert js.spec["description"] == f"edited {k}"
        # Runs use the spec just read; the old one is forgotten.
        assert eng.spec_for(js) is eng.project.job("job1")
        assert before not in eng._spec_cache and len(eng._spec_cache) == len(eng.project.specs)
        before = js.spec_hash
    in_sync(repo)


def test_a_new_folder_or_a_config_change_is_read_by_a_full_walk(live, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng, wait = live
    n = Counted(monkeypatch)
    write_job(repo, "brand/new", JOB.format(d="x"))
    wait()
    eng.reload()
    assert n.full == 1 and eng.project.job("new") is not None
    (repo / "cronfile.yaml").write_text("defaults:\n  timeout: 9m\n")
    wait()
    eng.reload()
    assert n.full == 2 and all(s.timeout == 540 for s in eng.project.specs)
    # Back to file by file once the walk is done.
    write_job(repo, "job0", JOB.format(d="after"))
    wait()
    eng.reload()
    assert (n.full, n.partial) == (2, 1)
    in_sync(repo)


@pytest.mark.parametrize("what", ["saved", "still-open", "config-still-open"])
def test_a_file_changed_while_the_reload_waits_for_the_state_lock_is_not_reverted(live, repo: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    """The stale-files guard without a walk: the watcher is asked, under the lock,
    whether anything changed since the files were read (apply.apply_project). A write
    not closed yet counts too (IN_MODIFY); cronfile.yaml is stat'ed."""
    eng, wait = live
    held: list[object] = []
    if what.startswith("config"):
        # An existing cronfile.yaml, read long enough after its write to be trusted by
        # its stat (no racy window here): truncating and writing it in place is then
        # only IN_MODIFY, which the root's watch does not count.
        monkeypatch.setattr(load_mod, "RACY_NS", 0)
        (repo / "cronfile.yaml").write_text("defaults:\n  timeout: 5m\n")
        wait()
        eng.reload()
        assert {js.spec["timeout"] for js in eng.store.read().jobs.values()} == {"5m"}
    write_job(repo, "job1", JOB.format(d="first"))
    wait()
    real = load_mod.parse_file
    once: list[bool] = []

    def parse(path: str, *a: object, **k: object) -> object:
        out = real(path, *a, **k)
        if path.endswith("job1.yaml") and not once:
            once.append(True)
            # Another save lands after this read, before the apply takes the lock.
            if what == "saved":
                (repo / "jobs.d/job1.yaml").write_text(JOB.format(d="second"))
            else:
                config = what.startswith("config")
                f = (repo / ("cronfile.yaml" if config else "jobs.d/job1.yaml")).open("w")
                f.write("defaults:\n  timeout: 9m\n" if config else JOB.format(d="second"))
                f.flush()
                held.append(f)
        return out

    monkeypatch.setattr(load_mod, "parse_file", parse)
    try:
        eng.reload()
    finally:
        for f in held:
            f.close()  # type: ignore[attr-defined]
    jobs = eng.store.read().jobs
    if what.startswith("config"):
        assert {js.spec["timeout"] for js in jobs.values()} == {"9m"}
        assert jobs["job1"].spec["description"] == "first"
    else:
        assert jobs["job1"].spec["description"] == "second"
    in_sync(repo)


def test_the_watcher_names_each_job_file_changed_and_says_when_it_cannot(repo: Path) -> None:
    seen = threading.Event()
    watcher = Watcher(repo, None, on_change=lambda kinds: seen.set() if "files" in kinds else None)
    watcher.start()
    try:
        assert watcher.backend == "inotify", "this test needs inotify (Linux)"
        jobs = watcher.jobs_dir

        def changed(expected: set[str] | None) -> set[str] | None:
            """What the watcher names, taken as each batch is reported, until it names
            ``expected`` (batches may split under load)."""
            got: set[str] | None = set()

            def done() -> bool:
                nonlocal got
                if seen.is_set():
                    seen.clear()
                    paths = watcher.take_paths()[0]
                    got = None if paths is None or got is None else got | paths
                return got == expected or got is None

            wait_for(done, timeout=10, what=f"the watcher to name {expected}")
            return got

        assert watcher.take_paths()[0] == set()
        write_job(repo, "job1", JOB.format(d="x"))
        (repo / "jobs.d/team/lead.yaml").unlink()
        assert changed({str(jobs / "job1.yaml"), str(jobs / "team/lead.yaml")}) == {str(jobs / "job1.yaml"), str(jobs / "team/lead.yaml")}
        (repo / "jobs.d/.job1.yaml.swp").write_text("x")  # hidden: never read, never named
        write_job(repo, "job2", JOB.format(d="y"))
        assert changed({str(jobs / "job2.yaml")}) == {str(jobs / "job2.yaml")}
        (repo / "jobs.d/newdir").mkdir()
        assert changed(None) is None  # a folder came: read them all
        assert watcher.take_paths()[0] == set()
        # settle() reads what is queued at once: a write not yet closed counts.
        gen = watcher.take_paths()[1]
        with (repo / "jobs.d/job0.yaml").open("a") as f:
            f.write("# more\n")
            f.flush()
            assert watcher.settle() != gen
    finally:
        watcher.stop()
    assert watcher.take_paths()[0] is None and watcher.settle() is None  # stopped: unknown
