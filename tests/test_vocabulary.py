"""One failure set: `on: failure` deliveries, healthchecks' /fail ping, the red ✗ of
`cronfile status` and the red outcome on the status page all follow Status.is_failure
(spec.FAILURES), for every outcome a run can have."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from cronfile.delivery.healthchecks import suffix_for
from cronfile.render import render_status
from cronfile.schedule import get_zone
from cronfile.spec import FAILURES, Status, Target
from cronfile.statuspage import render_page

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_the_failures_are_the_four_outcomes_a_user_is_alerted_about() -> None:
    assert {str(s) for s in Status if s.is_failure} == {"failed", "timeout", "refused", "interrupted"}
    assert set(FAILURES) == {s for s in Status if s.is_failure}
    # A history line holds the text, and the text is found in the set.
    assert "timeout" in FAILURES and "silent" not in FAILURES


@pytest.mark.parametrize("status", list(Status))
def test_every_reader_of_an_outcome_agrees_on_what_failed(status: Status) -> None:
    row = {"name": "j", "schedule": "@daily", "timezone": "UTC", "state": "scheduled", "next_run": None, "recent": [str(status)]}

    on_failure = Target("webhook", "http://127.0.0.1:1/h", on=("failure",))
    assert on_failure.wants(str(status)) is status.is_failure
    assert (suffix_for(str(status)) == "/fail") is status.is_failure
    red_cross = "\x1b[31m✗\x1b[0m"
    assert (red_cross in render_status([row], color=True, now=NOW)) is status.is_failure
    page = render_page([row], {"j": [{"status": str(status), "run_id": "r1"}]}, {"j": []}, NOW, zones={"j": get_zone("UTC")}, title="t")
    cell = re.search(rf'<td class="(\w*)">{status}</td>', page)
    assert cell is not None
    assert (cell.group(1) == "bad") is status.is_failure
