"""A JobSpec keeps little (issue 17, daemon RSS): its name, data, where it was read and
its hashes; every other attribute is derived from data when asked, as spec_from_data
derives it, and a constructor value that differs from data is kept and read back."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_helpers import LocalEngine, write_job

from cronfile.executors.registry import Kind
from cronfile.load import load_project
from cronfile.schedule import jitter_offset
from cronfile.spec import Concurrency, JobSpec, Target, spec_from_data

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)

FULL = """\
description: everything set
schedule: "*/5 * * * *"
timezone: Europe/Berlin
prompt: say hi
agent: llm
model: m1
workdir: sub
env: {A: "1", FLAG: true}
timeout: 2m
retries: 2
retry_backoff: 10s
concurrency: queue
catchup: once
starting_deadline: 30s
jitter: 20s
repeat: 3
enabled: false
labels: {team: ops, tier: gold}
deliver:
  - stdout
  - webhook: https://example.com/hook
    on: [failure]
allow_injection_risk: true
expect: {contains: ok}
"""


def _spec(tmp_path: Path, text: str = FULL) -> JobSpec:
    (tmp_path / "sub").mkdir(exist_ok=True)
    write_job(tmp_path, "full", text)
    project = load_project(tmp_path, now=T0, warnings=False)
    assert project.ok, [str(p) for p in project.errors]
    return project.specs[0]


def test_every_attribute_is_what_data_gives(tmp_path: Path) -> None:
    s = _spec(tmp_path)
    assert (s.name, s.schedule, s.timezone, s.kind, s.description) == ("full", "*/5 * * * *", "Europe/Berlin", Kind.prompt, "everything set")
    assert (s.shell, s.prompt, s.command, s.workdir, s.agent, s.model, s.permissions) == (None, "say hi", (), "sub", "llm", "m1", "read-only")
    assert s.env == (("A", "1"), ("FLAG", "true"))
    assert (s.timeout, s.retries, s.retry_backoff, s.starting_deadline, s.jitter) == (120.0, 2, 10.0, 30.0, 20.0)
    assert (s.concurrency, str(s.catchup), s.repeat, s.enabled, s.allow_injection_risk) == (Concurrency.queue, "once", 3, False, True)
    assert s.labels == (("team", "ops"), ("tier", "gold"))
    assert s.deliver == (Target("stdout", True), Target("webhook", "https://example.com/hook", ("failure",), {}))
    assert s.expect == {"contains": "ok"} and s.budget == {}
    # What the builder from stored data (a state's JobState) gives is the same spec.
    again = spec_from_data(s.data)
    assert again == s and all(getattr(again, k) == getattr(s, k) for k in ("timeout", "deliver", "env", "labels", "context"))
    assert s.where("labels", "team")[0] == 18  # positions kept: problems name file:line:col


def test_a_constructor_value_that_differs_from_data_is_kept(tmp_path: Path) -> None:
    data = {"name": "a", "schedule": "@daily", "shell": "echo a"}
    plain = JobSpec(name="a", data=data, schedule="@daily", timezone="UTC", kind=Kind.shell, shell="echo a", timeout=900.0)
    assert plain._over is None and plain.timeout == 900.0 and plain == spec_from_data(data)
    odd = JobSpec(name="a", data=data, schedule="@hourly", timezone="UTC", kind=Kind.shell, timeout=5, labels=(("x", "y"),))
    assert (odd.schedule, odd.timeout, odd.labels, odd.shell) == ("@hourly", 5, (("x", "y"),), "echo a")
    assert type(odd.timeout) is int  # read back as given, not as data's float
    assert odd != plain and odd == JobSpec(name="a", data=dict(data), schedule="@hourly", timeout=5, labels=(("x", "y"),))
    with pytest.raises(AttributeError):
        odd.timeout = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(odd)
    back = pickle.loads(pickle.dumps(odd))
    assert back == odd and back.schedule == "@hourly" and back._schedule is None


def test_hashes_are_kept_once_and_pickled(tmp_path: Path) -> None:
    s = _spec(tmp_path)
    h, sig = s.spec_hash, s.schedule_sig
    assert s._memo["spec_hash"] == h and s._memo.get("schedule_sig") == sig and "spec_hash" in s._memo
    back = pickle.loads(pickle.dumps(s))
    assert back.spec_hash is h and back.schedule_sig is sig  # interned: the state's JobStates share them
    assert back == s and back.positions == s.positions and back.where("labels", "team") == s.where("labels", "team")


def test_jobs_written_alike_share_one_positions_object(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_job(tmp_path, name, f"schedule: '@daily'\nshell: echo {name}\n")
    write_job(tmp_path, "d", "# another layout\nschedule: '@daily'\nshell: echo d\n")
    specs = {s.name: s for s in load_project(tmp_path, now=T0, warnings=False).specs}
    assert specs["a"].positions is specs["b"].positions is specs["c"].positions
    assert specs["d"].positions != specs["a"].positions
    assert specs["d"].where("shell") == (3, 8) and specs["a"].where("shell") == (2, 8)


def test_two_jobs_alike_but_for_their_name_keep_their_own_jitter(tmp_path: Path) -> None:
    """The engine kept one Schedule per schedule signature, which leaves out the name:
    of two jobs with the same schedule and jitter applied together, the second fired
    at the first one's offset (its name decides it: the same on every host)."""
    text = "schedule: '0 * * * *'\njitter: 50m\nshell: 'true'\n"
    write_job(tmp_path, "alpha", text)
    write_job(tmp_path, "gamma", text)
    fifty = timedelta(minutes=50)
    hour = T0.replace(minute=0, second=0) + timedelta(hours=1)
    first = min(("alpha", "gamma"), key=lambda n: jitter_offset(n, fifty))
    other = "gamma" if first == "alpha" else "alpha"
    assert jitter_offset(first, fifty) < jitter_offset(other, fifty)
    with LocalEngine(tmp_path, T0) as eng:
        claims = eng.step(hour + jitter_offset(first, fifty) + timedelta(seconds=1))
        assert sorted(c.job for c in claims) == [first]
        claims = eng.step(hour + jitter_offset(other, fifty) + timedelta(seconds=1))
        assert sorted(c.job for c in claims) == [other]


def _same_project(a, b) -> None:  # type: ignore[no-untyped-def]
    assert [(s.name, s.spec_hash, s.source, s.line, s.positions) for s in a.specs] == [(s.name, s.spec_hash, s.source, s.line, s.positions) for s in b.specs]
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]
    assert a.signature == b.signature


def test_a_daemon_reads_the_repo_again_through_its_own_file_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load.ProjectCache: what the daemon reads the whole repo through (a new folder, a
    lost event, cronfile.yaml edited) instead of a second copy of every file's entry.
    It serves only files as they were read; an edit, a new file, a deletion, a broken
    file and a config change are read again, and the result is a full load's."""
    from cronfile import load
    from cronfile.load import ProjectCache, cache_for

    monkeypatch.setattr(load, "RACY_NS", 0)  # files just written count as settled (see below)
    for name in ("a", "b", "c", "d"):
        write_job(tmp_path, name, f"schedule: '@daily'\nshell: echo {name}\n")
    old = load_project(tmp_path, now=T0, warnings=False)
    assert old.incremental and old.cache is None
    assert isinstance(cache_for(old), ProjectCache)
    write_job(tmp_path, "a", "schedule: '@hourly'\nshell: echo a2\n")  # edited
    (tmp_path / "jobs.d" / "b.yaml").unlink()  # deleted
    write_job(tmp_path, "e", "schedule: '@daily'\nshell: echo e\n")  # new
    write_job(tmp_path, "d", "schedule: 'nope'\nshell: echo d\n")  # broken now
    cache = ProjectCache(old, now_ns=lambda: 1 << 62)  # every file old enough to trust
    again = load_project(tmp_path, now=T0, cache=cache, warnings=False)
    assert (cache.hits, cache.misses) == (1, 3)  # only c served; a, d, e read
    _same_project(again, load_project(tmp_path, now=T0, warnings=False))
    assert next(s for s in again.specs if s.name == "a").data["shell"] == "echo a2"
    assert any("d.yaml:1:" in str(p) and "schedule" in str(p) for p in again.errors)
    # A broken file is never served: it is read again, as the parse cache reads it.
    cache = ProjectCache(again, now_ns=lambda: 1 << 62)
    load_project(tmp_path, now=T0, cache=cache, warnings=False)
    assert (cache.hits, cache.misses) == (3, 1)
    # A file changed within RACY_NS of now is not served either.
    monkeypatch.setattr(load, "RACY_NS", 2_000_000_000)
    cache = ProjectCache(again)
    load_project(tmp_path, now=T0, cache=cache, warnings=False)
    assert cache.hits == 0
    # cronfile.yaml decides every spec: changed, nothing is served.
    monkeypatch.setattr(load, "RACY_NS", 0)
    (tmp_path / "cronfile.yaml").write_text("timezone: Europe/Berlin\n")
    cache = ProjectCache(again, now_ns=lambda: 1 << 62)
    moved = load_project(tmp_path, now=T0, cache=cache, warnings=False)
    assert cache.hits == 0 and all(s.timezone == "Europe/Berlin" for s in moved.specs)
    _same_project(moved, load_project(tmp_path, now=T0, warnings=False))


def test_an_engine_lets_the_commands_parse_cache_go_and_keeps_few_schedules(tmp_path: Path) -> None:
    from cronfile.engine import Engine
    from cronfile.parsecache import ParseCache
    from cronfile.stores.sqlite import SqliteStore

    for name in ("a", "b"):
        write_job(tmp_path, name, f"schedule: '@daily'\nshell: echo {name}\n")
    project = load_project(tmp_path, now=T0, cache=ParseCache(tmp_path / "c.pickle"), warnings=False)
    assert all(s._schedule is not None for s in project.specs)  # kept by the check
    Engine(tmp_path, SqliteStore(tmp_path / ".cronfile"), project=project, mode="daemon")
    assert project.cache is None  # its file results are the cache from here on
    assert all(s._schedule is None for s in project.specs)  # built when due, a few kept


def test_the_delivery_dispatch_imports_httpx_only_for_a_target_that_needs_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cronfile.delivery import dispatch, kinds\n"
        "dispatch.deliverer_class(kinds.kind_of('stdout'))\n"
        "assert 'httpx' not in sys.modules, 'stdout imported httpx'\n"
        "dispatch.deliverer_class(kinds.kind_of('webhook'))\n"
        "assert 'httpx' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_daemon_reading_the_repo_again_serves_its_newest_project_and_lets_the_old_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cache_for(P1) reads through P1's file results, not those of the first project the
    daemon read (which a ProjectCache stored in P1 kept alive for the daemon's life, and
    whose results missed on every file edited since)."""
    import gc
    import weakref

    from cronfile import load
    from cronfile.load import ProjectCache, cache_for

    monkeypatch.setattr(load, "RACY_NS", 0)  # files just written count as settled
    for name in ("a", "b", "c", "d", "e"):
        write_job(tmp_path, name, f"schedule: '@daily'\nshell: echo {name}\n")
    p0 = load_project(tmp_path, now=T0, warnings=False)
    gone = weakref.ref(p0)
    write_job(tmp_path, "a", "schedule: '@hourly'\nshell: echo a2\n")
    c1 = cache_for(p0)
    p1 = load_project(tmp_path, now=T0, cache=c1, warnings=False)
    assert c1 is not None and (c1.hits, c1.misses) == (4, 1)
    assert p1.cache is None
    c2 = cache_for(p1)
    assert isinstance(c2, ProjectCache) and c2.project is p1
    p2 = load_project(tmp_path, now=T0, cache=c2, warnings=False)
    assert (c2.hits, c2.misses) == (5, 0)  # a as edited is served too
    assert next(s for s in p2.specs if s.name == "a").data["shell"] == "echo a2"
    del p0, c1, c2
    gc.collect()
    assert gone() is None


def test_the_builder_makes_the_spec_the_constructor_makes(tmp_path: Path) -> None:
    """spec_from_data sets a JobSpec's slots without the constructor's keyword walk: the
    spec is the one JobSpec(name=, data=, source=, line=, positions=) makes, slot for
    slot, through equality, repr, pickle and positions."""
    s = _spec(tmp_path)
    built = JobSpec(name=s.name, data=s.data, source=s.source, line=s.line, positions=s.positions)
    fast = spec_from_data(s.data, source=s.source, line=s.line, positions=s.positions)
    for slot in JobSpec.__slots__:
        assert getattr(fast, slot) == getattr(built, slot), slot
    assert fast._over is None and fast.positions is built.positions  # one object per layout
    assert fast == built and repr(fast) == repr(built)
    back = pickle.loads(pickle.dumps(fast))
    assert back == built and back.where("labels", "team") == built.where("labels", "team") == (18, 16)
    assert fast.spec_hash == built.spec_hash == s.spec_hash and fast.schedule_sig == s.schedule_sig


def test_a_context_or_workdir_given_to_the_constructor_is_checked_like_one_in_data(tmp_path: Path) -> None:
    """The load's checks read a spec's data when nothing overrides it; a value given to
    the constructor (an API caller's) is still what they check."""
    from cronfile.load import _pathy
    from cronfile.spec import Context, cross_problems

    data = {"name": "a", "schedule": "@daily", "shell": "echo a"}
    plain = spec_from_data(data)
    assert not _pathy(plain) and cross_problems([plain]) == []
    given = JobSpec(name="a", data=data, context=Context(from_job="nowhere"))
    assert [p.message for p in cross_problems([given])] == ["no job named 'nowhere'"]
    assert _pathy(given) is False and _pathy(JobSpec(name="a", data=data, workdir="sub")) is True
    assert _pathy(JobSpec(name="a", data=data, context=Context(files=("x.md",)))) is True
    in_data = spec_from_data({**data, "context": {"from_job": "nowhere", "files": ["x.md"]}})
    assert [p.message for p in cross_problems([in_data])] == ["no job named 'nowhere'"] and _pathy(in_data)
    assert _pathy(spec_from_data({**data, "workdir": "sub"})) and not _pathy(spec_from_data({**data, "workdir": "."}))
