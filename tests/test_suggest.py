"""What a newcomer trips on: a folder that is not a jobs repo, a timezone typo, a
schedule written for another tool. Each gets an error that says what to do."""

from __future__ import annotations

import pytest
from cli_helpers import cronfile

from cronfile.schedule import ScheduleError, parse
from cronfile.suggest import schedule_hint, systemd_to_cron, timezone_hints


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("Berlin", "Europe/Berlin"),
        ("berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("Europe/Berln", "Europe/Berlin"),
        ("New York", "America/New_York"),
        ("new_york", "America/New_York"),
        ("Kolkata", "Asia/Kolkata"),
    ],
    ids=["city", "city-lower", "case", "typo", "space", "underscore-lower", "asia"],
)
def test_a_timezone_typo_suggests_the_closest_iana_name(typed, meant):
    assert timezone_hints(typed)[0] == meant
    with pytest.raises(ScheduleError, match=f"unknown timezone '{typed}' \\(did you mean {meant}"):
        parse("0 9 * * *", typed)


def test_a_timezone_with_nothing_close_gets_no_guess():
    assert timezone_hints("Mars/Base") == []
    with pytest.raises(ScheduleError, match=r"^unknown timezone 'Mars/Base'$"):
        parse("0 9 * * *", "Mars/Base")


@pytest.mark.parametrize(
    ("calendar", "cron"),
    [
        ("Mon *-*-* 09:00", "0 9 * * mon"),
        ("Mon..Fri *-*-* 09:00:00", "0 9 * * mon-fri"),
        ("Sat,Sun 10:30", "30 10 * * sat,sun"),
        ("*-*-01 00:00", "0 0 1 * *"),
        ("*-01,07-01 03:15", "15 3 1 1,7 *"),
        ("*:0/15", "*/15 * * * *"),
        ("*:5/10", "5-59/10 * * * *"),
        ("*-*-* 08..18:00", "0 8-18 * * *"),
        ("*:*:30", "30 * * * * *"),
        ("minutely", "* * * * *"),
        ("quarterly", "0 0 1 1,4,7,10 *"),
    ],
)
def test_a_systemd_calendar_reads_as_its_cron_form(calendar, cron):
    assert systemd_to_cron(calendar) == cron
    # ... and that form is one cronfile accepts.
    parse(cron, "UTC")


@pytest.mark.parametrize("text", ["Mon 2026-01-01 09:00", "0 9 * * *", "Funday 09:00", "hello"])
def test_what_is_not_a_systemd_calendar_with_a_cron_form_gets_none(text):
    assert systemd_to_cron(text) is None


@pytest.mark.parametrize(
    ("schedule", "hint"),
    [
        ("@every 5m", "did you mean 'every 5m'?"),
        ("@every 1h30m", "did you mean 'every 1h30m'?"),
        ("@dayly", "did you mean @daily?"),
        ("daily", "did you mean @daily?"),
        ("Mon *-*-* 09:00", "its cron form is '0 9 * * mon'"),
    ],
)
def test_a_schedule_for_another_tool_says_the_cronfile_form(schedule, hint):
    assert hint in schedule_hint(schedule)
    with pytest.raises(ScheduleError) as e:
        parse(schedule, "UTC")
    assert hint in str(e.value)


def test_hints_reach_the_user_from_a_job_file_and_from_next(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "tick.yaml").write_text('schedule: "@every 5m"\ntimezone: Berlin\nshell: "true"\n')
    res = cronfile("validate", cwd=tmp_path)
    assert res.returncode == 2
    assert "jobs.d/tick.yaml:2:11: timezone: unknown timezone 'Berlin' (did you mean Europe/Berlin?)" in res.stderr
    res = cronfile("next", "Mon *-*-* 09:00", cwd=tmp_path)
    assert res.returncode == 2 and "its cron form is '0 9 * * mon'" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_right_forms_still_parse():
    assert parse("every 5m", "UTC").kind == "interval"
    assert parse("0 9 * * mon", "Europe/Berlin").tz.key == "Europe/Berlin"


# -- the jobs repo is found, or the error says where it looked ---------------------------


REPO_COMMANDS = [
    ["validate"],
    ["diff"],
    ["apply"],
    ["status"],
    ["history", "backup"],
    ["logs", "backup"],
    ["run", "backup"],
    ["tick"],
    ["daemon"],
    ["doctor"],
    ["render", "kubernetes", "-o", "-"],
]


@pytest.mark.parametrize("command", REPO_COMMANDS, ids=lambda c: c[0])
def test_a_folder_that_is_not_a_jobs_repo_is_an_error_saying_where_it_looked(command, tmp_path):
    empty = tmp_path / "not-a-repo" / "deeper"
    empty.mkdir(parents=True)
    res = cronfile(*command, cwd=empty, timeout=30)
    assert res.returncode == 2, res.stderr
    assert f"neither jobs.d/ nor cronfile.yaml in {empty.resolve()} or any folder above it" in res.stderr
    assert "cronfile init" in res.stderr
    assert not (empty / ".cronfile").exists()


def test_commands_find_the_repo_from_a_folder_below_it(tmp_path):
    (tmp_path / "jobs.d" / "nightly").mkdir(parents=True)
    (tmp_path / "jobs.d" / "nightly" / "backup.yaml").write_text('schedule: "@daily"\nshell: echo ok\n')
    below = tmp_path / "jobs.d" / "nightly"
    assert cronfile("apply", "-q", cwd=below).returncode == 0
    assert (tmp_path / ".cronfile" / "state.db").is_file()
    assert not (below / ".cronfile").exists()
    res = cronfile("status", "--json", cwd=below)
    assert res.returncode == 0 and '"backup"' in res.stdout


def test_a_config_alone_marks_a_repo(tmp_path):
    (tmp_path / "cronfile.yaml").write_text("timezone: UTC\n")
    res = cronfile("validate", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
