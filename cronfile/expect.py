"""``expect:`` on an agent job: checks on the answer of a run that exited 0.

Pure. A model that was retired, rate-limited into an empty reply or told to refuse still
exits 0 through most CLIs; without a check that run looks like success.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["check_expect"]


def check_expect(expect: Mapping[str, Any], answer: str) -> str | None:
    """Why ``answer`` fails ``expect`` (a message beginning ``expect:``), or None."""
    if expect.get("non_empty") and not answer.strip():
        return "expect: non_empty, but the answer was empty"
    contains = expect.get("contains")
    if isinstance(contains, str) and contains not in answer:
        return f"expect: contains {contains!r}, but the answer does not"
    regex = expect.get("regex")
    if isinstance(regex, str) and re.search(regex, answer, re.M) is None:
        return f"expect: regex '{regex}' did not match the answer"
    return None
