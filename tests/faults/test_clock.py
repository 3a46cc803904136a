"""Clock: the wall clock of a running daemon jumps forward an hour, back an hour, and
forward again (CRONFILE_CLOCK_OFFSET_FILE, read by SystemClock, moves the clock the
engine uses without touching the host's). No burst of runs, no run executed twice, a
note in the log for each jump.

The decision this pins down: after a jump back, nothing fires until the clock is past
the runs already planned (like Kubernetes CronJob, which schedules from its last
schedule time; unlike Vixie cron's wall-clock matching, which repeats wildcard jobs).
A scheduled instant runs at most once, even when the clock says it comes again."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from .harness import (
    MARK,
    DaemonProc,
    child_env,
    duplicates,
    figure,
    make_repo,
    read_marks,
    read_records,
    read_state,
    running_ids,
    wait_for,
    write_file,
)

pytestmark = pytest.mark.slow
HOUR = 3600


def jobs(marks: Path) -> dict[str, str]:
    return {
        "beat": f'schedule: "* * * * * *"\nshell: {MARK.format(marks=marks / "beat")}\n',
        "catch": f'schedule: "*/5 * * * * *"\ncatchup: once\nshell: {MARK.format(marks=marks / "catch")}\n',
    }


def _phase(root: Path, offset_file: Path, offset: float, d: DaemonProc, note: str, seconds: float, *, settle: bool = False) -> list:
    """Move the clock, wait for the daemon's note, and return the runs of the next
    ``seconds``. ``settle``: count only from just after the note (a run claimed at the
    old time may still write its mark after the jump)."""
    before = set(read_marks(root))
    offset_at = len(d.text())
    write_file(offset_file, f"{offset}\n")
    wait_for(lambda: note in d.text()[offset_at:], timeout=15, what=f"the log to note {note!r}")
    if settle:
        time.sleep(0.3)
        before = set(read_marks(root))
    time.sleep(seconds)
    return [m for m in read_marks(root) if m not in before]


def test_the_clock_jumping_forward_and_back_an_hour_never_bursts_nor_repeats(tmp_path):
    root = make_repo(tmp_path / "repo", jobs(tmp_path / "repo" / "marks"))
    offset_file = tmp_path / "offset"
    write_file(offset_file, "0\n")
    env = child_env(CRONFILE_CLOCK_OFFSET_FILE=str(offset_file))
    with DaemonProc(root, env=env, tag="clock") as d:
        d.wait_log("cronfile daemon")
        wait_for(lambda: len([m for m in read_marks(root) if m.job == "beat"]) >= 2, what="runs before the jumps")
        forward = _phase(root, offset_file, HOUR, d, "jumped +3600s (forward)", 3.0)
        back = _phase(root, offset_file, 0, d, "jumped -3600s (back)", 3.0, settle=True)
        # Forward again, a little past where the clock was before the jump back: runs
        # resume with the next planned instant, and none that already ran comes again.
        again = _phase(root, offset_file, HOUR + 4, d, "(forward)", 3.0)
        text = d.text()
        assert d.stop() == 0, text[-3000:]
    marks, records = read_marks(root), read_records(root / ".cronfile")
    dups = duplicates(marks, records)
    per_job = lambda ms: Counter(m.job for m in ms)  # noqa: E731
    missed = [r for r in records.runs["beat"].values() if r.get("status") == "missed"]
    figure(
        f"clock: forward 1h -> {dict(per_job(forward))} runs in the next 3s ({sum(r.get('missed_count', 0) for r in missed)} recorded missed), "
        f"back 1h -> {dict(per_job(back))} runs, forward again -> {dict(per_job(again))} runs; duplicates {len(dups)}"
    )
    assert dups == []
    assert per_job(forward)["beat"] <= 5, "a burst after the jump forward"
    assert per_job(forward)["catch"] <= 2, "a burst of the catchup: once job after the jump forward"
    assert sum(r.get("missed_count", 0) for r in missed) >= HOUR - 60
    assert back == [], "runs fired again at instants the clock already passed"
    assert 1 <= per_job(again)["beat"] <= 5
    assert "Traceback" not in text
    assert running_ids(read_state(root / ".cronfile")) == {}
    json.dumps(missed)  # the records are plain data
