"""Helpers for tests that start real processes: build specs and run contexts, wait on
conditions (never fixed sleeps), tell whether a pid still runs, write a fake agent."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import build_spec

from cronfile.executors.base import RunContext
from cronfile.spec import AgentProfile, Config, JobSpec

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

from engine_helpers import alive, wait_for  # noqa: E402,F401  (re-exported for the executor tests)


def make_spec(**fields: Any) -> JobSpec:
    """A JobSpec normalized the way ``load`` does it (conftest.build_spec), with a 10 s
    timeout unless given: a broken test fails fast instead of hanging."""
    fields.setdefault("timeout", 10.0)
    return build_spec(**fields)


PROFILES = {
    "codex": AgentProfile("codex", ("codex", "exec", "{prompt}"), ("--model", "{model}")),
    "piped": AgentProfile("piped", ("codex", "--from-stdin"), ("--model", "{model}"), stdin=True),
    "missing": AgentProfile("missing", ("no-such-agent-xyz", "{prompt}")),
}


def make_ctx(tmp_path: Path, spec: JobSpec, **fields: Any) -> RunContext:
    """A RunContext rooted at ``tmp_path``; ``environ`` defaults to a minimal PATH with
    ``tmp_path/bin`` (where fake agents live) first."""
    environ = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    environ.update(fields.pop("environ", {}))
    fields.setdefault("config", Config(agents=PROFILES, default_agent="codex"))
    # A run id of its own: with cgroup v2 a run's cgroup is named after it, and tests
    # running at the same time (pytest -n 2) must not share one (one's stop would
    # SIGTERM the other's processes).
    fields.setdefault("run_id", f"r-{uuid.uuid4().hex[:12]}")
    fields.setdefault("scheduled_for", T0)
    fields.setdefault("trigger", "schedule")
    fields.setdefault("log_path", tmp_path / "runs" / spec.name / f"{fields['run_id']}.log")
    return RunContext(spec=spec, root=tmp_path, job=spec.name, environ=environ, **fields)


# The fake agent: records its argv and stdin as JSON to $FAKE_RECORD, prints $OUT and
# the CRONFILE_* variables, exits with $CODE. Shell and command jobs in the contract
# tests do the same, so one test body covers every executor.
FAKE_AGENT = """\
import json, os, sys
stdin = "" if sys.stdin is None else sys.stdin.read()
with open(os.environ["FAKE_RECORD"], "w") as f:
    json.dump({"argv": sys.argv[1:], "stdin": stdin}, f)
print(os.environ.get("OUT", ""))
print("job=%(CRONFILE_JOB)s run=%(CRONFILE_RUN_ID)s sched=%(CRONFILE_SCHEDULED_FOR)s trigger=%(CRONFILE_TRIGGER)s" % os.environ)
sys.exit(int(os.environ.get("CODE", "0")))
"""


def write_fake_agent(tmp_path: Path, name: str = "codex") -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{FAKE_AGENT}")
    path.chmod(0o755)
    return path


def read_record(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "record.json").read_text())
