"""`cronfile doctor`: each check on a healthy repo and on the breakage it exists to find."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_helpers import cronfile

from cronfile import cli, doctor
from cronfile.doctor import Check, Mark, ToolResult, diagnose
from cronfile.schedule import ScheduleError, get_zone
from cronfile.state import Running
from cronfile.stores.sqlite import SqliteStore

SHELL_JOB = 'schedule: "@daily"\nshell: "true"\n'


def make_repo(root: Path, jobs: dict[str, str] | None = None, config: str | None = None) -> Path:
    (root / "jobs.d").mkdir(parents=True, exist_ok=True)
    for name, text in (jobs if jobs is not None else {"backup": SHELL_JOB}).items():
        (root / "jobs.d" / f"{name}.yaml").write_text(text)
    if config is not None:
        (root / "cronfile.yaml").write_text(config)
    return root


def apply(root: Path) -> None:
    assert cli.main(["-C", str(root), "-q", "apply"]) == 0


def no_tools(argv: list[str], timeout: float) -> ToolResult | None:
    """A host where no outside tool exists (timedatectl, agents' --version)."""
    return None


def run_doctor(root: Path, **kw) -> list[Check]:
    kw.setdefault("run", no_tools)
    kw.setdefault("environ", {"PATH": str(root / "no-bin")})
    return diagnose(root, **kw)


def by_name(checks: list[Check], name: str) -> list[Check]:
    found = [c for c in checks if c.check == name]
    assert found, f"no {name!r} check in {[c.check for c in checks]}"
    return found


def one(checks: list[Check], name: str) -> Check:
    (c,) = by_name(checks, name)
    return c


# -- the whole report ----------------------------------------------------------------


def test_an_applied_healthy_repo_has_no_failure_and_exits_0(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    checks = run_doctor(root)
    assert doctor.exit_code(checks) == 0
    assert [c for c in checks if c.status in (Mark.fail, Mark.warn)] == []
    names = [c.check for c in checks]
    for expected in (
        "files",
        "timezone data",
        "state dir",
        "state",
        "locks",
        "daemon",
        "clock",
        "ntp",
    ):
        assert expected in names


def test_a_fresh_repo_says_to_apply_without_failing(tmp_path):
    root = make_repo(tmp_path)
    checks = run_doctor(root)
    assert doctor.exit_code(checks) == 0
    assert "cronfile apply" in one(checks, "state dir").fix


def test_a_folder_that_is_not_a_jobs_repo_is_told_to_init(tmp_path):
    checks = run_doctor(tmp_path)
    files = one(checks, "files")
    assert files.status is Mark.warn and "cronfile init" in files.fix


def test_the_report_prints_one_line_per_check_with_its_fix():
    checks = [
        Check("files", Mark.ok, "1 job file valid"),
        Check("agent codex", Mark.fail, "codex is not on PATH", "install codex"),
        Check("ntp", Mark.info, "unknown"),
    ]
    lines = doctor.render(checks).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("ok ")
    assert lines[1].startswith("FAIL") and lines[1].endswith("fix: install codex")
    assert lines[2].startswith("info")


def test_the_command_line_prints_json_and_exits_1_on_a_failure(tmp_path):
    root = make_repo(tmp_path, {"broken": "schedule: 'not a schedule'\nshell: 'true'\n"})
    res = cronfile("doctor", "--json", cwd=root)
    assert res.returncode == 1, res.stderr
    rows = json.loads(res.stdout)
    assert all(set(r) == {"check", "status", "message", "fix"} for r in rows)
    files = next(r for r in rows if r["check"] == "files")
    assert files["status"] == "fail" and "cronfile validate" in files["fix"]


def test_the_command_line_exits_0_on_a_healthy_repo(tmp_path):
    root = make_repo(tmp_path)
    res = cronfile("doctor", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert any(line.startswith("ok") and "files" in line for line in res.stdout.splitlines())


# -- config and files ----------------------------------------------------------------


def test_invalid_files_fail_with_the_first_problems_and_point_at_validate(tmp_path):
    root = make_repo(tmp_path, {"a": "schedule: '@daily'\nshell: 'true'\ntimout: 5m\n"})
    files = one(run_doctor(root), "files")
    assert files.status is Mark.fail
    assert "timout" in files.message and "a.yaml" in files.message
    assert "cronfile validate" in files.fix


def test_valid_files_are_counted(tmp_path):
    root = make_repo(tmp_path, {"a": SHELL_JOB, "b": SHELL_JOB}, config="timezone: UTC\n")
    files = one(run_doctor(root), "files")
    assert files.status is Mark.ok
    assert "2 job files" in files.message and "2 jobs" in files.message


# -- agents --------------------------------------------------------------------------

PROMPT_JOB = 'schedule: "@daily"\nprompt: "Summarize."\nagent: {agent}\n'


def fake_program(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_a_missing_agent_program_that_a_job_uses_fails(tmp_path):
    root = make_repo(tmp_path, {"briefing": PROMPT_JOB.format(agent="codex")})
    codex = one(run_doctor(root), "agent codex")
    assert codex.status is Mark.fail
    assert "briefing" in codex.message and "install codex" in codex.fix


def test_unused_builtin_agents_that_are_missing_are_one_note(tmp_path):
    root = make_repo(tmp_path)
    checks = run_doctor(root)
    note = one(checks, "agents")
    assert note.status is Mark.info
    for name in ("claude", "codex", "gemini", "llm"):
        assert name in note.message
    assert doctor.exit_code(checks) == 0


def test_a_missing_program_of_a_profile_the_config_defines_is_a_warning(tmp_path):
    config = "agents:\n  mine:\n    command: [my-agent, '{prompt}']\n"
    root = make_repo(tmp_path, config=config)
    assert one(run_doctor(root), "agent mine").status is Mark.warn


def test_a_found_agent_shows_its_path_and_the_first_line_of_its_version(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "fakeagent", 'echo "fakeagent 1.2.3"; echo "build abc"')
    config = "agents:\n  fake:\n    command: [fakeagent, '{prompt}']\n"
    root = make_repo(tmp_path, {"briefing": PROMPT_JOB.format(agent="fake")}, config=config)
    check = one(run_doctor(root, run=doctor.run_tool, environ={"PATH": str(bin_dir)}), "agent fake")
    assert check.status is Mark.ok
    assert str(bin_dir / "fakeagent") in check.message
    assert "fakeagent 1.2.3" in check.message and "build abc" not in check.message
    assert "briefing" in check.message


def test_an_agent_whose_version_hangs_is_found_but_its_version_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "VERSION_TIMEOUT_S", 0.3)
    bin_dir = tmp_path / "bin"
    # Not `exec`: the child sleep holds the pipes, so only killing the group ends the wait.
    fake_program(bin_dir, "slowagent", "sleep 30")
    config = "agents:\n  slow:\n    command: [slowagent, '{prompt}']\n"
    root = make_repo(tmp_path, {"briefing": PROMPT_JOB.format(agent="slow")}, config=config)
    check = one(run_doctor(root, run=doctor.run_tool, environ={"PATH": str(bin_dir)}), "agent slow")
    assert check.status is Mark.ok
    assert "no answer" in check.message


def test_run_tool_says_none_for_a_program_that_does_not_exist(tmp_path):
    assert doctor.run_tool([str(tmp_path / "nothing")], 1) is None


# -- timezone data -------------------------------------------------------------------


def test_timezone_data_names_its_source(tmp_path):
    check = one(run_doctor(make_repo(tmp_path)), "timezone data")
    assert check.status is Mark.ok
    assert "Europe/Berlin" in check.message
    assert "zone files in" in check.message or "tzdata package" in check.message


def test_a_zone_a_job_uses_that_cannot_load_fails(tmp_path):
    job = 'schedule: "@daily"\ntimezone: Asia/Tokyo\nshell: "true"\n'
    root = make_repo(tmp_path, {"tokyo": job})

    def no_tokyo(name: str):
        if name == "Asia/Tokyo":
            raise ScheduleError("unknown timezone 'Asia/Tokyo'")
        return get_zone(name)

    check = one(run_doctor(root, load_zone=no_tokyo), "timezone data")
    assert check.status is Mark.fail
    assert "Asia/Tokyo" in check.message and "tzdata" in check.fix


# -- the state dir -------------------------------------------------------------------


def test_a_file_readable_by_others_is_named_with_a_chmod_fix(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    (root / ".cronfile" / "state.db").chmod(0o644)
    check = one(run_doctor(root), "state dir")
    assert check.status is Mark.warn
    assert "state.db 0644" in check.message
    assert check.fix.startswith("chmod -R u=rwX,go= ")


def test_a_state_dir_writable_by_others_fails(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    (root / ".cronfile").chmod(0o777)
    check = one(run_doctor(root), "state dir")
    assert check.status is Mark.fail and ". 0777" in check.message


def test_the_chmod_fix_really_fixes_the_modes(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    state_dir = root / ".cronfile"
    state_dir.chmod(0o755)
    (state_dir / "state.db").chmod(0o664)
    fix = one(run_doctor(root), "state dir").fix
    assert os.system(f"cd {root} && {fix.split('   ')[0]}") == 0
    assert one(run_doctor(root), "state dir").status is Mark.ok
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_a_corrupt_state_db_fails_with_the_store_message(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    (root / ".cronfile" / "state.db").write_bytes(b"{not a database" * 100)
    checks = run_doctor(root)
    check = one(checks, "state")
    assert check.status is Mark.fail
    assert "not a readable cronfile state database" in check.message and ".broken" in check.fix
    assert doctor.exit_code(checks) == 1


def test_the_state_dir_of_the_config_is_the_one_checked(tmp_path):
    root = make_repo(tmp_path, config="state_dir: var/state\n")
    apply(root)
    assert (root / "var" / "state" / "state.db").exists()
    assert one(run_doctor(root), "state").status is Mark.ok


# -- locks and the daemon ------------------------------------------------------------


def _with_run_in_flight(root: Path, engine_id: str, pid: int) -> None:
    """The state records a run of `backup` claimed by ``engine_id``."""
    run = Running.decode(
        {
            "run_id": "20260302T080000-abcd",
            "scheduled_for": "2026-03-02T08:00:00+00:00",
            "started_at": "2026-03-02T08:00:01+00:00",
            "trigger": "schedule",
            "engine": engine_id,
            "pid": pid,
        }
    )
    with SqliteStore(root / ".cronfile").transaction() as txn:
        js = txn.state.jobs["backup"]
        txn.state = txn.state.with_job("backup", js.with_(running=(run,)))


def test_a_dead_engines_lock_and_its_run_in_flight_are_reported_with_the_pid(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    (root / ".cronfile" / "engines" / "deadbeef.lock").write_text("")
    _with_run_in_flight(root, "deadbeef", 4242)
    checks = by_name(run_doctor(root), "locks")
    stale = next(c for c in checks if "stale" in c.message)
    assert "engines/deadbeef.lock" in stale.message and stale.status is Mark.info
    flight = next(c for c in checks if "in flight" in c.message)
    assert flight.status is Mark.warn
    assert "backup run 20260302T080000-abcd, pid 4242" in flight.message
    assert "interrupted" in flight.fix


def test_a_live_engine_is_not_called_stale(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    with SqliteStore(root / ".cronfile").engine_lock("live01"):
        _with_run_in_flight(root, "live01", os.getpid())
        checks = by_name(run_doctor(root), "locks")
    assert [c.status for c in checks] == [Mark.ok]
    assert "1 engine running" in checks[0].message


def test_a_running_daemon_is_reported_with_its_pid(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    with SqliteStore(root / ".cronfile").daemon_lock():
        check = one(run_doctor(root), "daemon")
    assert check.status is Mark.ok and f"pid {os.getpid()}" in check.message


def test_no_daemon_and_overdue_jobs_is_a_warning(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    later = datetime.now(UTC) + timedelta(days=2)
    check = one(run_doctor(root, now=later), "daemon")
    assert check.status is Mark.warn
    assert "backup" in check.message and "service install" in check.fix


def test_a_leftover_daemon_pid_file_is_called_harmless(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    (root / ".cronfile" / "daemon.pid").write_text("999999\n")
    check = one(run_doctor(root), "daemon")
    assert check.status is Mark.info and "999999" in check.message and "harmless" in check.message


# -- the clock -----------------------------------------------------------------------


def test_a_clock_before_the_package_build_fails(tmp_path):
    root = make_repo(tmp_path)
    build = datetime.now(UTC)
    checks = run_doctor(root, now=build - timedelta(days=400), build_time=build)
    clock = by_name(checks, "clock")
    assert any(c.status is Mark.fail and "clock is wrong" in c.message for c in clock)


def test_a_clock_behind_the_last_apply_is_a_warning(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    past = datetime.now(UTC) - timedelta(hours=3)
    clock = by_name(run_doctor(root, now=past, build_time=past - timedelta(days=1)), "clock")
    assert any(c.status is Mark.warn and "last apply" in c.message for c in clock)


def test_file_times_far_from_the_clock_are_a_warning(tmp_path):
    import time

    root = make_repo(tmp_path)
    apply(root)
    store = SqliteStore(root / ".cronfile")
    checks = doctor.check_clock(
        datetime.now(UTC), store, store.read(), run=no_tools, time_now=lambda: time.time() - 3600
    )
    assert any(c.status is Mark.warn and "file written" in c.message for c in checks)


def test_a_sane_clock_is_ok(tmp_path):
    root = make_repo(tmp_path)
    apply(root)
    clock = one(run_doctor(root), "clock")
    assert clock.status is Mark.ok and "file times agree" in clock.message


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (ToolResult(0, "yes\n", ""), Mark.ok),
        (ToolResult(0, "no\n", ""), Mark.warn),
        (ToolResult(1, "", "System has not been booted with systemd"), Mark.info),
        (ToolResult(None, "", ""), Mark.info),
        (None, Mark.info),
    ],
    ids=["synchronized", "not-synchronized", "no-systemd", "hangs", "no-timedatectl"],
)
def test_ntp_status_is_read_from_timedatectl_and_unknown_never_fails(tmp_path, answer, status):
    calls = []

    def fake(argv, timeout):
        calls.append(argv)
        return answer if argv[0] == "timedatectl" else None

    check = one(run_doctor(make_repo(tmp_path), run=fake), "ntp")
    assert check.status is status
    assert ["timedatectl", "show", "-p", "NTPSynchronized", "--value"] in calls


def test_a_builtin_profile_the_config_redefines_is_a_warning_when_missing(tmp_path):
    config = "agents:\n  codex:\n    command: [my-codex, exec, '{prompt}']\n"
    check = one(run_doctor(make_repo(tmp_path, config=config)), "agent codex")
    assert check.status is Mark.warn and "my-codex" in check.message


def test_the_public_names_exist():
    assert all(hasattr(doctor, name) for name in doctor.__all__)
