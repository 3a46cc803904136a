"""A daemon keeps each spec once (issue 17, RSS): a JobState decoded from the store keeps
the project's own spec mapping when it is the same spec (``state.share_specs``), and only
then; an edit shares the new spec and lets the old one go."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine_helpers import LocalEngine, write_job

from cronfile.load import load_project
from cronfile.state import JobState, share_specs
from cronfile.stores.sqlite import SqliteStore

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def _encoded(spec: dict, spec_hash: str) -> dict:
    return JobState(spec=spec, spec_hash=spec_hash, schedule_sig="s", created_at=T0).encode()


def test_a_decoded_job_state_keeps_the_shared_spec_only_when_it_is_the_same() -> None:
    data = {"name": "a", "schedule": "@daily", "shell": "echo a"}
    try:
        share_specs({"h1": data})
        same = JobState.decode(_encoded(dict(data), "h1"))
        assert same.spec is data
        other = {"name": "a", "schedule": "@hourly", "shell": "echo a"}  # same hash, other spec
        kept = JobState.decode(_encoded(dict(other), "h1"))
        assert kept.spec == other and kept.spec is not data
        assert JobState.decode(_encoded(dict(data), "h2")).spec is not data  # another hash
        share_specs({})
        assert JobState.decode(_encoded(dict(data), "h1")).spec is not data  # let go
    finally:
        share_specs({})


def test_a_daemon_reading_the_state_shares_the_files_specs_and_follows_an_edit(tmp_path: Path) -> None:
    write_job(tmp_path, "a", "schedule: '@daily'\nshell: echo a\n")
    write_job(tmp_path, "b", "schedule: '@daily'\nshell: echo b\n")
    with LocalEngine(tmp_path, T0):
        pass  # applied: the state holds both
    try:
        with LocalEngine(tmp_path, T0) as eng:  # a fresh process's engine: the state decoded anew
            specs = {s.name: s for s in eng.engine.project.specs}
            state = SqliteStore(tmp_path / ".cronfile").read()
            assert state.jobs["a"].spec is specs["a"].data
            assert state.jobs["b"].spec is specs["b"].data
            old_b = specs["b"]
            write_job(tmp_path, "b", "schedule: '@daily'\nshell: echo b2\n")
            eng.engine.reload()
            new_b = next(s for s in eng.engine.project.specs if s.name == "b")
            assert new_b.spec_hash != old_b.spec_hash
            fresh = SqliteStore(tmp_path / ".cronfile").read()
            assert fresh.jobs["b"].spec is new_b.data and fresh.jobs["b"].spec["shell"] == "echo b2"
            # The old spec is no longer shared: a state row holding it decodes to its own copy.
            stale = JobState.decode(_encoded(dict(old_b.data), old_b.spec_hash))
            assert stale.spec == old_b.data and stale.spec is not old_b.data
            assert fresh == SqliteStore(tmp_path / ".cronfile").read()  # equal however decoded
        assert load_project(tmp_path).ok
    finally:
        share_specs({})


def test_jobs_share_their_field_names_and_short_values_through_the_parse_cache(tmp_path: Path) -> None:
    """30,000 specs repeat a few dozen keys and values (field names, kinds, zones): one
    copy of each, also after the parse cache's pickle comes back."""
    from cronfile.parsecache import ParseCache

    for name in ("a", "b"):
        write_job(tmp_path, name, f"schedule: '0 9 * * *'\ntimezone: Europe/Berlin\nconcurrency: queue\nshell: echo {name} and a longer command line than forty characters\n")
    cache = ParseCache(tmp_path / "cache.pickle", now_ns=lambda: 1 << 62)  # every file old enough
    specs = load_project(tmp_path, now=T0, cache=cache).specs
    cache.save()
    again = [e.specs[0] for e in ParseCache(tmp_path / "cache.pickle").entries.values()]
    for a, b in (specs, again):
        ka = {k: k for k in a.data}
        assert all(ka[k] is k for k in b.data), "field names are one object"
        assert a.data["timezone"] is b.data["timezone"] and a.data["concurrency"] is b.data["concurrency"]
        assert a.data["shell"] != b.data["shell"]
