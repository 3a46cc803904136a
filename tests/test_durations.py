"""Tests for cronfile.durations: what reads as a duration, what prints, what round-trips."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronfile.durations import format_duration, humanize_delta, parse_duration

ACCEPTED = [
    ("minutes", "15m", timedelta(minutes=15)),
    ("sum", "1h30m", timedelta(hours=1, minutes=30)),
    ("sum-with-a-space", "1h 30m", timedelta(hours=1, minutes=30)),
    ("sum-of-everything", "1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    ("seconds", "45s", timedelta(seconds=45)),
    ("sec", "10sec", timedelta(seconds=10)),
    ("secs", "10 secs", timedelta(seconds=10)),
    ("min", "5min", timedelta(minutes=5)),
    ("mins", "5 mins", timedelta(minutes=5)),
    ("hour", "1hour", timedelta(hours=1)),
    ("hours", "2 hours", timedelta(hours=2)),
    ("day", "1 day", timedelta(days=1)),
    ("days", "3days", timedelta(days=3)),
    ("week", "1week", timedelta(weeks=1)),
    ("weeks", "2 weeks", timedelta(weeks=2)),
    ("d", "2d", timedelta(days=2)),
    ("w", "1w", timedelta(weeks=1)),
    ("decimal", "1.5h", timedelta(minutes=90)),
    ("milliseconds", "250ms", timedelta(milliseconds=250)),
    ("surrounding-spaces", "  15m ", timedelta(minutes=15)),
    ("zero", "0s", timedelta(0)),
    ("bare-number-string-is-seconds", "30", timedelta(seconds=30)),
    ("int-is-seconds", 30, timedelta(seconds=30)),
    ("float-is-seconds", 2.5, timedelta(seconds=2.5)),
    ("int-zero", 0, timedelta(0)),
]


@pytest.mark.parametrize(
    ("value", "expected"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_it_reads_a_duration(value: str | int | float, expected: timedelta) -> None:
    assert parse_duration(value) == expected


REJECTED = [
    ("english-word", "15 minutes"),
    ("english-word-seconds", "30 seconds"),
    ("negative", "-5m"),
    ("negative-int", -1),
    ("negative-float", -0.5),
    ("empty", ""),
    ("blank", "   "),
    ("unit-alone", "h"),
    ("unknown-unit", "5x"),
    ("months-are-not-a-unit", "1M"),
    ("upper-case", "5M"),
    ("minus-in-a-sum", "1h-30m"),
    ("trailing-number", "1h 30"),
    ("two-dots", "1.2.3s"),
    ("comma", "1h,30m"),
    ("boolean", True),
    ("infinity", float("inf")),
    ("not-a-number", float("nan")),
]


@pytest.mark.parametrize("value", [r[1] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_it_rejects_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(ValueError, match=r"is not a duration \(e\.g\. 15m\)"):
        parse_duration(value)  # type: ignore[arg-type]


def test_the_message_quotes_the_value_as_the_design_shows() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("15 minutes")
    assert str(info.value) == '"15 minutes" is not a duration (e.g. 15m)'


FORMATS = [
    ("hours-and-minutes", timedelta(hours=1, minutes=30), "1h30m"),
    ("seconds", timedelta(seconds=45), "45s"),
    ("days", timedelta(days=2), "2d"),
    ("weeks-print-as-days", timedelta(weeks=2), "14d"),
    ("milliseconds", timedelta(milliseconds=250), "250ms"),
    ("microseconds", timedelta(microseconds=1500), "1.5ms"),
    ("fractional-seconds", timedelta(seconds=12, milliseconds=500), "12.5s"),
    ("fraction-with-no-whole-seconds", timedelta(minutes=1, milliseconds=250), "1m0.25s"),
    (
        "everything",
        timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5),
        "1d2h3m4.005s",
    ),
    ("zero", timedelta(0), "0s"),
    ("negative", timedelta(minutes=-5), "-5m"),
]


@pytest.mark.parametrize(("td", "expected"), [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS])
def test_it_formats_compactly(td: timedelta, expected: str) -> None:
    assert format_duration(td) == expected


def test_a_number_is_seconds() -> None:
    assert format_duration(90.25) == format_duration(timedelta(seconds=90.25)) == "1m30.25s"


ROUNDED = [
    ("under-a-minute", 3.04, "3.0s"),
    ("just-under-a-minute", 59.9, "59.9s"),
    ("a-minute", 60, "1m00s"),
    ("under-an-hour", 3599, "59m59s"),
    ("an-hour", timedelta(hours=1), "1h00m"),
    ("hours-and-minutes", 7325, "2h02m"),
]


@pytest.mark.parametrize(("value", "expected"), [r[1:] for r in ROUNDED], ids=[r[0] for r in ROUNDED])
def test_rounded_is_for_a_sentence_a_person_reads(value: float | timedelta, expected: str) -> None:
    # The deliveries' "backup succeeded in 41.2s" (delivery/base.py status_line).
    assert format_duration(value, rounded=True) == expected


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_what_it_prints_reads_back(td: timedelta) -> None:
    assert parse_duration(format_duration(td)) == td


@pytest.mark.parametrize(
    "text", ["1h30m", "45s", "2d", "250ms", "1d2h3m4s", "0s", "12.5s", "1.5ms"]
)
def test_a_canonical_duration_round_trips_as_text(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


HUMANIZED = [
    ("future-hours-and-minutes", timedelta(hours=3, minutes=12, seconds=40), "in 3h 12m"),
    ("past-minutes", timedelta(minutes=-5), "5m ago"),
    ("whole-hours", timedelta(hours=2), "in 2h"),
    ("days-and-hours", timedelta(days=2, hours=3, minutes=9), "in 2d 3h"),
    ("seconds", timedelta(seconds=45), "in 45s"),
    ("minute-and-seconds", timedelta(seconds=90), "in 1m 30s"),
    ("never-rounds-up", timedelta(minutes=59, seconds=59), "in 59m 59s"),
    ("past-day", timedelta(days=-1), "1d ago"),
    ("zero", timedelta(0), "now"),
    ("under-a-second", timedelta(milliseconds=500), "now"),
]


@pytest.mark.parametrize(
    ("td", "expected"), [h[1:] for h in HUMANIZED], ids=[h[0] for h in HUMANIZED]
)
def test_it_humanizes_a_delta_for_the_cli(td: timedelta, expected: str) -> None:
    assert humanize_delta(td) == expected


@pytest.mark.parametrize("value", ["99999999999d", "1e300", 10**30, 1e300])
def test_a_duration_too_long_for_a_timedelta_is_a_clear_error_not_an_overflow(value: object) -> None:
    with pytest.raises(ValueError, match="too long a duration|is not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["99999999999d", "1e300", "1.0e+300"])
def test_a_job_or_default_with_a_huge_timeout_is_a_problem_at_its_line(tmp_path, text: str) -> None:
    """Was: `cronfile validate` stopped with "internal error: OverflowError" (exit 3), or
    took `timeout: 1e300` (a YAML 1.2 float the schema counts as an integer) as valid
    and failed later, when the job ran."""
    from cli_helpers import cronfile

    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text(f'schedule: "@daily"\ntimeout: {text}\nshell: "true"\n')
    r = cronfile("-C", str(tmp_path), "validate")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "jobs.d/a.yaml:2:10: timeout:" in r.stdout + r.stderr and "Traceback" not in r.stderr
    (tmp_path / "jobs.d" / "a.yaml").write_text('schedule: "@daily"\nshell: "true"\n')
    (tmp_path / "cronfile.yaml").write_text(f"defaults:\n  timeout: {text}\n")
    r = cronfile("-C", str(tmp_path), "validate")
    assert r.returncode == 2 and "cronfile.yaml:2:12: defaults.timeout:" in r.stdout + r.stderr, r.stdout + r.stderr
