"""`cronfile mcp`: a Model Context Protocol server on stdio, so an agent can read and
manage its own schedule (hermes' cronjob tool, PRX's cron tools).

Two layers, so that everything but the wire is testable without the SDK:

- ``Tools``: the tools as plain methods over a jobs repo and its state dir, returning
  JSON values; a refusal is a ``ToolRefused`` with a one-line reason.
- ``build_server``: the official ``mcp`` SDK's ``MCPServer`` offering the tools that
  cronfile.yaml's ``mcp: {tools: [...], jobs: [...]}`` allows (default: the read-only
  tools, for every job). The SDK is an optional extra (``pip install 'cronfile[mcp]'``)
  and is imported only here, inside ``build_server`` (STYLE.md: one seam per library).

What an agent may change is bounded on purpose. ``propose_job`` validates a job file and
writes it into ``jobs.d/``, and never applies it: the change goes through review and
``cronfile apply`` like any other. It refuses while a daemon runs on the same state
dir, since the daemon applies edits to jobs.d at once. ``run_job`` refuses a paused job:
a pause is a person saying "stop that job now".
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import CronfileError

__all__ = [
    "ALL_TOOLS",
    "READ_ONLY_TOOLS",
    "McpSettings",
    "ToolRefused",
    "Tools",
    "build_server",
    "cmd_mcp",
    "settings_from",
]

READ_ONLY_TOOLS = ("list_jobs", "job_status", "job_history", "job_logs")
WRITE_TOOLS = ("run_job", "pause_job", "resume_job", "propose_job")
ALL_TOOLS = READ_ONLY_TOOLS + WRITE_TOOLS
INSTALL_HINT = "pip install 'cronfile[mcp]'"
LOG_LIMIT = 64 * 1024  # job_logs returns at most this many bytes (the end of the log)
RUN_START_TIMEOUT = 20.0  # seconds for `cronfile run` to claim its run


class ToolRefused(CronfileError):
    """A tool call that cronfile refuses (unknown job, job not offered, invalid file):
    the agent sees the message as the tool's error result."""


@dataclass(frozen=True)
class McpSettings:
    """cronfile.yaml's ``mcp:``: which tools are offered, and for which jobs."""

    tools: tuple[str, ...] = READ_ONLY_TOOLS
    jobs: tuple[str, ...] = ("*",)  # names or shell-style patterns (fnmatch)

    def allows(self, job: str) -> bool:
        return any(fnmatch.fnmatchcase(job, pattern) for pattern in self.jobs)


def settings_from(config_data: Mapping[str, Any]) -> McpSettings:
    """The MCP settings of a validated cronfile.yaml (its ``Config.data``). The schema
    has checked the types and the tool names; order is kept, duplicates dropped."""
    raw = config_data.get("mcp") or {}
    tools = tuple(dict.fromkeys(raw["tools"])) if "tools" in raw else READ_ONLY_TOOLS
    jobs = tuple(dict.fromkeys(raw["jobs"])) if "jobs" in raw else ("*",)
    return McpSettings(tools=tools, jobs=jobs)


class Tools:
    """The tools over the jobs repo at ``root`` and the state dir of ``store``."""

    def __init__(self, root: Path, store: Any, settings: McpSettings, *, environ: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.store = store
        self.settings = settings
        self.environ = os.environ if environ is None else environ

    # -- helpers -------------------------------------------------------------------

    def _project(self) -> Any:
        from .load import load_project

        return load_project(self.root, warnings=False)

    def _known(self, name: str) -> None:
        """Refuse a job that is not offered, or that cronfile does not know."""
        from .spec import NAME_RE

        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ToolRefused(f"{name!r} is not a job name")
        if not self.settings.allows(name):
            raise ToolRefused(f"job {name!r} is not offered over MCP (cronfile.yaml: mcp.jobs)")
        state = self.store.read()
        if name in state.jobs or name in self.store.history_jobs():
            return
        if self._project().job(name) is None:
            raise ToolRefused(f"no job named {name!r}")

    def _rows(self) -> list[dict[str, Any]]:
        from .history import engine_running, merged_history
        from .render import status_rows

        project = self._project()
        state = self.store.read()
        names = [n for n in sorted(set(state.jobs) | {s.name for s in project.specs}) if self.settings.allows(n)]
        histories = {n: merged_history(self.store, n, 10) for n in names}
        rows = status_rows(
            project.specs if project.ok else None,
            state,
            histories,
            datetime.now(UTC),
            engine_running=engine_running(self.store),
        )
        return [r for r in rows if self.settings.allows(r["name"])]

    # -- read-only -------------------------------------------------------------------

    def list_jobs(self) -> list[dict[str, Any]]:
        """Every job offered: its schedule, state, next run, last outcome, and pause."""
        out = []
        for r in self._rows():
            last = r.get("last_run") or {}
            out.append(
                {
                    "name": r["name"],
                    "schedule": r["schedule"],
                    "timezone": r["timezone"],
                    "state": r["state"],
                    "next_run": r["next_run"],
                    "last_status": last.get("status"),
                    "pause": r.get("pause"),
                    "drift": r.get("drift"),
                }
            )
        return out

    def job_status(self, name: str) -> dict[str, Any]:
        """`cronfile status --json`'s row for one job, and its applied spec."""
        self._known(name)
        row = next((r for r in self._rows() if r["name"] == name), None)
        if row is None:
            raise ToolRefused(f"no job named {name!r}")
        js = self.store.read().jobs.get(name)
        return {**row, "spec": dict(js.spec) if js is not None else None}

    def job_history(self, name: str, n: int = 20) -> list[dict[str, Any]]:
        """`cronfile history NAME --json`: the last ``n`` runs, oldest first."""
        from .history import merged_history

        self._known(name)
        if n < 1:
            raise ToolRefused("n: give at least 1")
        return merged_history(self.store, name, n)

    def job_logs(self, name: str, run_id: str | None = None) -> dict[str, Any]:
        """The output of a run (the latest by default), masked like the stored logs: the
        log is masked when written, and masked again here with the values the job's
        ``${VAR}``s have in this server's environment. At most the last LOG_LIMIT bytes."""
        from .history import merged_history

        self._known(name)
        recorded = {r["run_id"]: r for r in merged_history(self.store, name, None) if r.get("status")}
        from .runlog import in_flight

        # (a run in flight that printed nothing has no log file yet: runlog.py)
        ids = sorted(set(self.store.log_ids(name)) | set(recorded) | in_flight(self.store, name))
        if not ids:
            raise ToolRefused(f"no logs for {name}: it has not run yet")
        if run_id:
            match = [r for r in ids if r == run_id or r.endswith(run_id)]
            if not match:
                raise ToolRefused(f"{name} has no run {run_id!r}")
            ids = match
        else:
            # The latest run, as `cronfile logs`: one that started, not the record of an
            # occurrence skipped or missed since.
            ids = [r for r in ids if r not in recorded or recorded[r].get("started_at")] or ids
        chosen = ids[-1]
        rec = recorded.get(chosen, {})
        data = self.store.read_log(name, chosen) or b""
        truncated = len(data) > LOG_LIMIT
        text = self._masker(name).mask(data[-LOG_LIMIT:].decode("utf-8", "replace"))
        return {
            "run_id": chosen,
            "status": rec.get("status") or "running",
            "output": text,
            "truncated": truncated,
            "message": rec.get("message"),
        }

    def _masker(self, name: str) -> Any:
        from .secrets import Masker, MissingVariable, expand_env

        js = self.store.read().jobs.get(name)
        spec = self._project().job(name)
        values: list[str] = []
        envs = [spec.env] if spec is not None else []
        if js is not None:
            from .spec import spec_from_data

            envs.append(spec_from_data(js.spec).env)
        for env in envs:
            for key, value in env:
                try:
                    _, found = expand_env([(key, value)], self.environ)
                except MissingVariable:
                    continue
                values.extend(found)
        return Masker(values)

    # -- changes ---------------------------------------------------------------------

    def pause_job(self, name: str, reason: str) -> dict[str, Any]:
        """Pause an applied job at runtime (kept until resumed), with the reason."""
        from .control import pause_job
        from .pause import pause_note

        self._known(name)
        js = pause_job(self.store, name, reason=reason, now=datetime.now(UTC), via="mcp")
        assert js.pause is not None
        return {"name": name, "state": str(js.state), "pause": js.pause.encode(), "note": pause_note(js.pause)}

    def resume_job(self, name: str) -> dict[str, Any]:
        """End a runtime pause; the next run is computed from now (no catch-up)."""
        from .clock import iso
        from .control import resume_job

        self._known(name)
        js, note, was = resume_job(self.store, name, now=datetime.now(UTC), via="mcp")
        return {"name": name, "state": str(js.state), "next_run": iso(js.next_run), "resumed": was, "note": note}

    def run_job(self, name: str, wait_seconds: float = 60.0) -> dict[str, Any]:
        """Run a job now (`cronfile run NAME`, trigger: manual) in its own process, which
        outlives this server; wait up to ``wait_seconds`` for it to end."""
        from .history import merged_history
        from .spec import Trigger
        from .state import JobStatus

        self._known(name)
        js = self.store.read().jobs.get(name)
        if js is not None and js.state is JobStatus.paused:
            why = "paused at runtime (resume_job)" if js.pause is not None else "`enabled: false` in the files"
            raise ToolRefused(f"job {name!r} is paused: {why}; not run")
        before = {r["run_id"] for r in merged_history(self.store, name, None)} | {r.run_id for r in (js.running if js else ())}
        cmd = [sys.executable, "-m", "cronfile", "-C", str(self.root), "-q", "run", name]

        def new_run() -> str | None:
            st = self.store.read().jobs.get(name)
            ids = {r.run_id for r in (st.running if st else ()) if r.trigger == Trigger.manual}
            ids |= {r["run_id"] for r in merged_history(self.store, name, 5) if r.get("trigger") == Trigger.manual}
            fresh = sorted(ids - before)
            return fresh[-1] if fresh else None

        # The child's stderr goes to a file, not a pipe: it outlives this server, and
        # a pipe with no reader would fail its last writes.
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the run's output goes to its log; stdout is our wire
                stderr=err,
                start_new_session=True,  # not stopped with this server
                # The same interpreter and import path as this server, and its store.
                env={**self.environ, **self.store.child_env()},
            )
            run_id = _poll(new_run, RUN_START_TIMEOUT, lambda: proc.poll() is not None)
            if run_id is None:
                if proc.poll() is None:
                    _reap(proc)
                err.seek(0)
                said = err.read().decode("utf-8", "replace").strip().splitlines()
                raise ToolRefused(f"{name}: the run did not start: " + (said[-1] if said else f"exit {proc.returncode}"))

        def ended() -> dict[str, Any] | None:
            return next((r for r in merged_history(self.store, name, 10) if r["run_id"] == run_id and r.get("status")), None)

        rec = _poll(ended, max(0.0, min(float(wait_seconds), 3600.0)), lambda: False)
        if rec is not None:
            _reap(proc)
        out: dict[str, Any] = {"name": name, "run_id": run_id, "status": rec["status"] if rec else "running"}
        if rec:
            out.update({k: rec.get(k) for k in ("exit_code", "started_at", "finished_at", "message")})
        return out

    def propose_job(self, name: str, yaml: str, replace: bool = False) -> dict[str, Any]:
        """Validate a job file's YAML and write it to ``jobs.d/NAME.yaml``. Never applies:
        the change still goes through review and ``cronfile apply``."""
        from .history import engine_running
        from .load import JOBS_DIR, parse_file
        from .spec import cross_problems, is_job_name

        if not isinstance(name, str) or not is_job_name(name):
            raise ToolRefused(f"{name!r} is not a job name (lower-case letters, digits, '.', '_', '-')")
        if not self.settings.allows(name):
            raise ToolRefused(f"job {name!r} is not offered over MCP (cronfile.yaml: mcp.jobs)")
        if engine_running(self.store):
            raise ToolRefused(
                "a cronfile daemon runs on this repo and would apply the file at once: "
                "propose jobs in a checkout no daemon runs on, then review, merge and apply"
            )
        jobs_dir = self.root / JOBS_DIR
        target = jobs_dir / f"{name}.yaml"
        shown = f"{JOBS_DIR}/{name}.yaml"
        project = self._project()
        existing = project.job(name)
        if existing is not None and os.path.abspath(existing.source) != os.path.abspath(target) and existing.source != shown:
            raise ToolRefused(f"job {name!r} is defined in {existing.source}: change it there")
        if target.exists() and not replace:
            raise ToolRefused(f"{shown} exists: pass replace: true to propose a change to it")
        with tempfile.TemporaryDirectory() as tmp:
            candidate = Path(tmp) / f"{name}.yaml"
            candidate.write_text(yaml)
            specs, problems, _ = parse_file(str(candidate), shown, project.config, datetime.now(UTC))
        problems = [p for p in problems if p.severity == "error"]
        if not problems and len(specs) != 1:
            from .errors import Problem

            problems.append(Problem(shown, 1, 1, "", f"holds {len(specs)} jobs: propose one job per file"))
        if not problems and specs[0].name != name:
            from .errors import Problem

            line, col = specs[0].where("name")
            problems.append(Problem(shown, line, col, "name", f"is {specs[0].name!r}, but the job proposed is {name!r}"))
        if not problems:
            others = [s for s in project.specs if s.name != name]
            problems = [p for p in cross_problems([*others, *specs]) if p.severity == "error" and p.path == shown]
        if problems:
            raise ToolRefused("not written: " + "; ".join(str(p) for p in problems))
        jobs_dir.mkdir(exist_ok=True)
        tmp_path = target.with_name(f".{target.name}.proposed.tmp")
        tmp_path.write_text(yaml)
        existed = target.exists()
        os.replace(tmp_path, target)
        return {
            "path": shown,
            "written": "replaced" if existed else "created",
            "applied": False,
            "next": "review the file (git diff), then `cronfile diff` and `cronfile apply`",
        }


def _poll(found: Callable[[], Any], timeout: float, give_up: Callable[[], bool]) -> Any:
    """``found()`` once it is truthy, or None after ``timeout`` seconds (or once
    ``give_up()`` and one last look). The tool waits on another process's files."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        value = found()
        if value:
            return value
        if give_up():
            return found() or None
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


TOOL_DOCS = {
    "list_jobs": "List the cronfile jobs offered: schedule, timezone, state (scheduled, paused, completed), next run, last status, runtime pause.",
    "job_status": "One job's status: state, next run, run count, last run, recent outcomes, runtime pause, and its applied spec.",
    "job_history": "A job's past runs, oldest first (the last n): run id, trigger, times, status, exit code, deliveries.",
    "job_logs": "The output of a job's run (the latest, or run_id: an id or its last characters), with secrets masked.",
    "run_job": "Run a job now (trigger: manual), as `cronfile run NAME`; waits up to wait_seconds for it to end. Refused for a paused job.",
    "pause_job": "Pause a job at runtime, with the reason (kept across applies and restarts, recorded in the audit log).",
    "resume_job": "Resume a job paused at runtime; its next run is computed from now (no catch-up).",
    "propose_job": "Validate a job file's YAML and write it to jobs.d/NAME.yaml for review. Never applies it; errors come back as file:line:col.",
}


def build_server(tools: Tools) -> Any:
    """An MCPServer offering the tools ``tools.settings`` allows. Imports the SDK."""
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    from . import __version__

    server = MCPServer(
        name="cronfile",
        version=__version__,
        instructions=(
            "cronfile runs scheduled shell and agent jobs declared as YAML files in jobs.d/. "
            "Changes to the schedule are proposed as files (propose_job) and applied by a person after review."
        ),
        log_level="WARNING",
    )

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        except CronfileError as e:
            raise ToolError(str(e)) from None

    async def list_jobs() -> list[dict[str, Any]]:
        return await call(tools.list_jobs)

    async def job_status(name: str) -> dict[str, Any]:
        return await call(tools.job_status, name)

    async def job_history(name: str, n: int = 20) -> list[dict[str, Any]]:
        return await call(tools.job_history, name, n)

    async def job_logs(name: str, run_id: str | None = None) -> dict[str, Any]:
        return await call(tools.job_logs, name, run_id)

    async def run_job(name: str, wait_seconds: float = 60.0) -> dict[str, Any]:
        return await call(tools.run_job, name, wait_seconds)

    async def pause_job(name: str, reason: str) -> dict[str, Any]:
        return await call(tools.pause_job, name, reason)

    async def resume_job(name: str) -> dict[str, Any]:
        return await call(tools.resume_job, name)

    async def propose_job(name: str, yaml: str, replace: bool = False) -> dict[str, Any]:
        return await call(tools.propose_job, name, yaml, replace)

    fns = {f.__name__: f for f in (list_jobs, job_status, job_history, job_logs, run_job, pause_job, resume_job, propose_job)}
    for name in ALL_TOOLS:
        if name not in tools.settings.tools:
            continue
        read_only = name in READ_ONLY_TOOLS
        server.add_tool(
            fns[name],
            name=name,
            description=TOOL_DOCS[name],
            annotations=ToolAnnotations(read_only_hint=read_only, destructive_hint=False, open_world_hint=False),
        )
    return server


def cmd_mcp(args: Any, out: Any) -> int:
    """`cronfile mcp`: serve the tools on stdin/stdout until the client closes them."""
    from .console import EXIT_INVALID, EXIT_OK, load_repo, store_of
    from .errors import SpecError

    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        out.warn(f"cronfile: error: `cronfile mcp` needs the MCP SDK: {INSTALL_HINT}")
        return EXIT_INVALID
    project = load_repo(args, warnings=False)
    if any(p.path == project.config.path for p in project.errors):
        # Only cronfile.yaml's problems stop the server: an invalid job file is for
        # job_status and propose_job to report, not a reason to offer nothing.
        raise SpecError([p for p in project.errors if p.path == project.config.path])
    tools = Tools(project.root, store_of(args, project), settings_from(project.config.data))
    build_server(tools).run("stdio")
    return EXIT_OK
