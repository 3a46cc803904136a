"""The plan and status text: golden-ish assertions on what a person reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import build_spec as spec

from cronfile.reconcile import reconcile
from cronfile.render import local_time, render_plan, render_status, status_rows
from cronfile.state import JobState, LastRun, Running, State

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PROMPT_1 = "Summarize the alerts in ./alerts.\nList action items.\nBe brief.\n"
PROMPT_2 = "Summarize the alerts in ./alerts.\nList action items, most urgent first.\nBe brief.\n"


def briefing(**kw):
    fields = {
        "name": "briefing",
        "schedule": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "prompt": PROMPT_1,
    }
    return spec(**{**fields, **kw})


def backup(**kw):
    return spec(**{"name": "backup", "schedule": "0 3 * * *", "shell": "backup.sh", **kw})


def applied(*specs) -> State:
    state, _ = reconcile(list(specs), State(), NOW)
    return state


def test_a_create_shows_schedule_what_it_runs_next_run_and_the_summary() -> None:
    _, plan = reconcile([briefing(), backup()], State(), NOW)
    assert render_plan(plan, color=False) == "\n".join(
        [
            "+ create backup",
            "  schedule: 0 3 * * * (UTC)",
            '  shell: "backup.sh"',
            "  next run: 2026-03-03 03:00 UTC",
            "+ create briefing",
            "  schedule: 0 9 * * 1-5 (Europe/Berlin)",
            '  prompt (codex): "Summarize the alerts in ./alerts." (+2 more lines)',
            "  next run: 2026-03-03 09:00 CET",
            "",
            "2 to create, 0 to update, 0 to delete",
        ]
    )


def test_a_prompt_edit_is_a_unified_diff_and_keeps_the_next_run() -> None:
    state = applied(briefing(), backup())
    _, plan = reconcile([briefing(prompt=PROMPT_2), backup()], state, NOW + timedelta(minutes=5))
    text = render_plan(plan, color=False)
    assert text == "\n".join(
        [
            "~ update briefing",
            "  prompt:",
            "    --- briefing.prompt (applied)",
            "    +++ briefing.prompt (jobs.d)",
            "    @@ -1,3 +1,3 @@",
            "     Summarize the alerts in ./alerts.",
            "    -List action items.",
            "    +List action items, most urgent first.",
            "     Be brief.",
            "  next run: 2026-03-03 09:00 CET (kept)",
            "  catch-up: none",
            "",
            "0 to create, 1 to update, 0 to delete, 1 unchanged",
        ]
    )


def test_a_schedule_edit_shows_both_next_runs_in_the_jobs_timezone() -> None:
    state = applied(briefing())
    _, plan = reconcile([briefing(schedule="30 7 * * *")], state, NOW)
    text = render_plan(plan, color=False)
    assert '  schedule: "0 9 * * 1-5" -> "30 7 * * *"' in text
    assert "  next run: 2026-03-03 09:00 CET -> 2026-03-03 07:30 CET" in text
    assert "  schedule changed: next run recomputed from now" in text
    assert "  catch-up: none" in text


def test_times_follow_daylight_saving_in_the_jobs_zone() -> None:
    when = datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert local_time(when, "Europe/Berlin") == "2026-03-29 09:00 CEST"
    assert local_time(when + timedelta(seconds=5), "UTC") == "2026-03-29 07:00:05 UTC"
    assert local_time(None, "UTC") == "none"


def test_env_changes_are_shown_key_by_key_with_references_as_written() -> None:
    state = applied(backup(env={"REPORT_DIR": "/srv/a", "TOKEN": "${API_TOKEN}"}))
    new = backup(env={"REPORT_DIR": "/srv/b", "TOKEN": "${API_TOKEN}", "KEY": "${NEW_KEY}"})
    _, plan = reconcile([new], state, NOW)
    text = render_plan(plan, color=False)
    assert '  env.KEY: (unset) -> "${NEW_KEY}"' in text
    assert '  env.REPORT_DIR: "/srv/a" -> "/srv/b"' in text
    assert "TOKEN" not in text  # unchanged keys are not listed


def test_a_scalar_field_change_is_one_line_old_to_new() -> None:
    state = applied(backup())
    _, plan = reconcile([backup(timeout="20m", retries=2)], state, NOW)
    text = render_plan(plan, color=False)
    assert "  retries: (unset) -> 2" in text
    assert '  timeout: (unset) -> "20m"' in text
    assert text.index("retries") < text.index("timeout")  # fields in sorted order


@pytest.mark.parametrize("create", [True, False], ids=["create", "update"])
def test_turning_the_injection_guard_off_is_called_out(create: bool) -> None:
    state = State() if create else applied(briefing())
    _, plan = reconcile([briefing(allow_injection_risk=True)], state, NOW)
    text = render_plan(plan, color=False)
    assert "! injection guard OFF (allow_injection_risk: true)" in text


def test_a_delete_and_a_pause_read_plainly() -> None:
    state = applied(briefing(), backup())
    _, plan = reconcile([briefing(enabled=False)], state, NOW)
    assert render_plan(plan, color=False) == "\n".join(
        [
            "- delete backup",
            "  next run: 2026-03-03 03:00 UTC -> none",
            "  history kept in runs/backup/",
            "~ update briefing",
            "  enabled: (unset) -> false",
            "  next run: 2026-03-03 09:00 CET -> none",
            "  paused",
            "",
            "0 to create, 1 to update, 1 to delete",
        ]
    )


def test_no_changes_says_how_many_jobs_are_up_to_date() -> None:
    state = applied(briefing(), backup())
    _, plan = reconcile([briefing(), backup()], state, NOW)
    assert render_plan(plan, color=False) == "No changes: 2 jobs up to date."
    _, plan = reconcile([], State(), NOW)
    assert render_plan(plan, color=False) == "No changes: 0 jobs up to date."


def test_colour_codes_appear_only_when_asked_for() -> None:
    state = applied(briefing(), backup())
    _, plan = reconcile([briefing(prompt=PROMPT_2), spec(name="new")], state, NOW)
    plain = render_plan(plan, color=False)
    painted = render_plan(plan, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[1m\x1b[32m+ create new\x1b[0m" in painted
    assert "\x1b[1m\x1b[33m~ update briefing\x1b[0m" in painted
    assert "\x1b[1m\x1b[31m- delete backup\x1b[0m" in painted
    assert "\x1b[32m+List action items, most urgent first.\x1b[0m" in painted


def test_tz_of_overrides_the_zone_times_are_shown_in() -> None:
    _, plan = reconcile([briefing()], State(), NOW)
    text = render_plan(plan, color=False, tz_of=lambda name: "America/New_York")
    assert "next run: 2026-03-03 03:00 EST" in text


# -- status ----------------------------------------------------------------------------


def status_state() -> State:
    b = backup()
    js = JobState(
        spec=dict(b.data),
        spec_hash=b.spec_hash,
        schedule_sig=b.schedule_sig,
        created_at=NOW - timedelta(days=3),
        next_run=NOW - timedelta(hours=5),  # 03:00 today, and nothing ran it
        last_run=LastRun(
            "r9",
            "failed",
            "schedule",
            NOW - timedelta(days=1, hours=5),
            NOW - timedelta(days=1, hours=5),
            NOW - timedelta(days=1, hours=4, minutes=58),
        ),
        run_count=9,
        running=(Running("r10", None, NOW, "manual", "e1"),),
    )
    gone = spec(name="old-job")
    gone_js = JobState(
        spec=dict(gone.data),
        spec_hash=gone.spec_hash,
        schedule_sig=gone.schedule_sig,
        created_at=NOW,
    )
    return State(jobs={"backup": js, "old-job": gone_js})


RECENT = ["success"] * 3 + [
    "missed",
    "success",
    "timeout",
    "skipped",
    "success",
    "success",
    "failed",
]
HISTORY = [
    {"run_id": f"r{i}", "status": s} for i, s in enumerate(["failed", "failed"] + RECENT)
] + [{"run_id": "r9", "deliveries": []}]  # a delivery line carries no status


def test_status_rows_have_the_documented_keys_and_the_extras() -> None:
    rows = status_rows(
        [backup(), briefing()], status_state(), {"backup": HISTORY}, NOW, engine_running=False
    )
    assert [r["name"] for r in rows] == ["backup", "briefing", "old-job"]
    row = rows[0]
    assert list(row) == [
        "name",
        "schedule",
        "timezone",
        "state",
        "next_run",
        "run_count",
        "last_run",
        "recent",
        "overdue",
        "drift",
        "running",
        "pause",
    ]
    assert row["pause"] is None
    assert row["schedule"] == "0 3 * * *"
    assert row["timezone"] == "UTC"
    assert row["state"] == "scheduled"
    assert row["next_run"] == "2026-03-02T03:00:00+00:00"
    assert row["run_count"] == 9
    assert row["last_run"] == {
        "run_id": "r9",
        "status": "failed",
        "started_at": "2026-03-01T03:00:00+00:00",
        "finished_at": "2026-03-01T03:02:00+00:00",
    }
    assert row["recent"] == RECENT  # the last 10, oldest first; the delivery line skipped
    assert row["overdue"] is True
    assert row["drift"] is None
    assert row["running"] == 1
    assert rows[1]["drift"] == "not applied"
    assert rows[1]["state"] is None and rows[1]["last_run"] is None
    assert rows[2]["drift"] == "not in files"


def test_a_job_is_not_overdue_while_an_engine_runs_or_within_its_deadline() -> None:
    state = status_state()
    rows = status_rows([backup()], state, {}, NOW, engine_running=True)
    assert rows[0]["overdue"] is False
    js = state.jobs["backup"].with_(next_run=NOW - timedelta(seconds=30))
    rows = status_rows([backup()], state.with_job("backup", js), {}, NOW, engine_running=False)
    assert rows[0]["overdue"] is False


def test_an_edited_but_unapplied_job_is_drift_changed_and_unreadable_files_are_no_drift() -> None:
    rows = status_rows([backup(shell="new.sh")], status_state(), {}, NOW, engine_running=True)
    assert rows[0]["drift"] == "changed"
    rows = status_rows(None, status_state(), {}, NOW, engine_running=True)
    assert [r["drift"] for r in rows] == [None, None]


def test_the_status_table_is_aligned_and_ends_with_warnings() -> None:
    rows = status_rows(
        [backup(), briefing()], status_state(), {"backup": HISTORY}, NOW, engine_running=False
    )
    text = render_status(rows, color=False, now=NOW)
    assert text == "\n".join(
        [
            "NAME      SCHEDULE     TZ             STATE                 NEXT                       LAST              RECENT",
            "backup    0 3 * * *    UTC            scheduled, 1 running  2026-03-02 03:00 (5h ago)  failed 1d 4h ago  ✓✓✓·✓✗·✓✓✗",
            "briefing  0 9 * * 1-5  Europe/Berlin  not applied           -                          -",
            "old-job   0 9 * * *    UTC            scheduled             -                          -",
            "",
            "! backup is overdue since 03:00 and no engine is running: start `cronfile daemon` or run `cronfile tick`",
            "! briefing is in jobs.d but not applied: run `cronfile apply`",
            "! old-job is applied but no longer in jobs.d: run `cronfile apply` to delete it",
        ]
    )


def test_the_next_column_counts_down_in_the_jobs_zone() -> None:
    state = applied(briefing())
    rows = status_rows([briefing()], state, {}, NOW, engine_running=True)
    text = render_status(rows, color=False, now=NOW - timedelta(hours=3, minutes=12))
    assert "2026-03-03 09:00 (in 1d 3h)" in text
    text = render_status(rows, color=False, now=NOW + timedelta(hours=20, minutes=48))
    assert "2026-03-03 09:00 (in 3h 12m)" in text
    assert "!" not in text


def test_the_status_table_paints_marks_only_with_colour() -> None:
    rows = status_rows(
        [backup()], status_state(), {"backup": HISTORY[-3:]}, NOW, engine_running=True
    )
    assert "\x1b[" not in render_status(rows, color=False, now=NOW)
    painted = render_status(rows, color=True, now=NOW)
    assert "\x1b[32m✓\x1b[0m\x1b[31m✗\x1b[0m" in painted


def test_an_empty_status_says_how_to_start() -> None:
    assert render_status([], color=False, now=NOW).startswith("No jobs")
