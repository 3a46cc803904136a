"""The command line: argument parsing and output only; one function per command.

Heavy modules are imported inside the commands, so `cronfile --version` stays fast.
Exit codes (docs/design.md section 7): 0 ok, 1 a job failed or `diff` found changes,
2 invalid input or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import CronfileError, SpecError, UsageError

if TYPE_CHECKING:
    from .load import Project
    from .store import Store

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

EPILOG = """\
examples:
  cronfile init                 scaffold cronfile.yaml and jobs.d/ here
  cronfile validate             check every file in jobs.d/
  cronfile next "0 9 * * 1-5" --tz Europe/Berlin -n 3
  cronfile diff                 what `apply` would change (exit 1 if anything)
  cronfile apply                record the files into the state
  cronfile diff --out plan.json  save the plan; `apply --plan plan.json` applies exactly it
  cronfile import crontab -     turn `crontab -l` output into job files
  cronfile daemon               run the engine until stopped
  cronfile run backup           run one job now, in the foreground
  cronfile status               every job, its next run and recent outcomes

exit codes: 0 ok, 1 a job failed or diff found changes, 2 invalid input or usage.
docs: README.md; the job format: `cronfile schema job`.
"""


# -- helpers -------------------------------------------------------------------------


class Out:
    """Where a command writes: data to stdout, messages to stderr; quiet mutes messages."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet = getattr(args, "quiet", False)
        self.json = getattr(args, "json", False)

    def data(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        sys.stdout.flush()

    def json_data(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def msg(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def use_color(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"


def root_of(args: argparse.Namespace, *, required: bool = True) -> Path:
    """The jobs repo: -C DIR (default .) or the nearest folder above it that holds
    jobs.d/ or cronfile.yaml, as git finds .git. None found is an error (exit 2) that
    says where it looked, unless ``required`` is false (then DIR itself)."""
    start = Path(args.C).expanduser()
    if not start.is_dir():
        raise UsageError(f"-C {args.C}: no such folder")
    found = find_root(start)
    if found is not None:
        return found
    if not required:
        return start
    where = start.resolve()
    raise UsageError(
        f"no jobs repo: neither jobs.d/ nor cronfile.yaml in {where} or any folder above it "
        "(create one with `cronfile init`, or point at one with -C DIR)"
    )


def find_root(start: Path) -> Path | None:
    """``start`` (as given) or its nearest ancestor holding jobs.d/ or cronfile.yaml."""
    from .load import CONFIG_NAME, JOBS_DIR

    for d in (start, *start.resolve().parents):
        if (d / JOBS_DIR).is_dir() or (d / CONFIG_NAME).is_file():
            return d
    return None


def state_dir_of(args: argparse.Namespace, project: Project | None = None) -> Path:
    """--state-dir, else CRONFILE_STATE_DIR, else cronfile.yaml's state_dir, else .cronfile/."""
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser()
    env = os.environ.get("CRONFILE_STATE_DIR")
    if env:
        return Path(env).expanduser()
    root = root_of(args)
    if project is not None and project.config.state_dir:
        return root / project.config.state_dir
    if project is None:
        from .load import load_config

        cfg, _ = load_config(root)
        if cfg.state_dir:
            return root / cfg.state_dir
    return root / ".cronfile"


def store_of(args: argparse.Namespace, project: Project | None = None) -> Store:
    from .stores.sqlite import SqliteStore

    return SqliteStore(state_dir_of(args, project))


def refuse_inside_run(what: str) -> None:
    """A process started by cronfile must not reconfigure or start cronfile (docs/design.md 5).

    Judged by what a job cannot clear (executors/contain.py, ``inside_run``): its cgroup
    is a run's, or an ancestor process holds a cronfile engine's lock. CRONFILE_RUN_ID
    is only the fallback for systems without /proc; `CRONFILE_RUN_ID= cronfile apply`
    no longer gets past."""
    from .executors.contain import inside_run

    evidence = inside_run()
    if evidence is None and os.environ.get("CRONFILE_RUN_ID"):
        evidence = f"CRONFILE_RUN_ID={os.environ['CRONFILE_RUN_ID']}"
    if evidence is not None:
        raise UsageError(
            f"refusing to {what} from inside a cronfile run ({evidence}): "
            "a job cannot change the schedule it runs under"
        )


def _where(p: Any) -> tuple[str, int, int]:
    return (p.path, p.line, p.column)


def print_problems(out: Out, problems: list[Any], *, warnings: bool = True) -> None:
    for p in sorted(problems, key=_where):
        if p.severity == "error" or warnings:
            out.warn(str(p))


def load_repo(args: argparse.Namespace, **kw: Any) -> Project:
    """load_project with the repo's parse cache: files unchanged since the last command
    are not read again (cronfile/parsecache.py)."""
    from .load import load_project
    from .parsecache import ParseCache

    root = root_of(args, required=kw.pop("required", True))
    cache = None if "files" in kw or "jobs_dir" in kw else ParseCache.for_repo(root)
    project = load_project(root, cache=cache, **kw)
    if cache is not None:
        cache.save()
    return project


def load_checked(args: argparse.Namespace, out: Out, **kw: Any) -> Project:
    """Load the jobs repo; print warnings; raise SpecError (exit 2) if anything is invalid."""
    project = load_repo(args, **kw)
    if project.errors:
        raise SpecError(project.errors)
    if not out.quiet and not getattr(args, "json", False):
        print_problems(out, project.warnings)
    return project


# -- commands ------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, out: Out) -> int:
    from .load import CONFIG_NAME, JOBS_DIR, load_project

    root = root_of(args, required=not args.paths)
    projects = []
    files: list[Path] = []
    # A changed cronfile.yaml (as pre-commit passes it) can affect every job: validate
    # its whole repo, and skip job files of that repo named beside it.
    configs = [Path(r) for r in args.paths if Path(r).name == CONFIG_NAME and Path(r).is_file()]
    whole = [c.parent.resolve() for c in configs]
    for c in configs:
        projects.append(load_project(c.parent))
    for raw in args.paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{raw}: no such file or folder")
        if p in configs or (p.is_file() and any(p.resolve().is_relative_to(w) for w in whole)):
            continue
        if p.is_dir() and ((p / JOBS_DIR).is_dir() or (p / CONFIG_NAME).exists()):
            projects.append(load_project(p))
        elif p.is_dir():
            projects.append(load_project(root, jobs_dir=p))
        else:
            files.append(p)
    if files:
        # Load the whole repo so `from_job` can name a job in another file, then report
        # only the named files (pre-commit passes just the changed ones).
        full = load_repo(args, required=False)
        wanted = {os.path.relpath(f) for f in files}
        inside = {os.path.relpath(f) for f in full.files}
        outside = [f for f in files if os.path.relpath(f) not in inside]
        full.problems = [p for p in full.problems if os.path.relpath(p.path) in wanted or p.path == full.config.path]
        full.specs = [s for s in full.specs if os.path.relpath(s.source) in wanted]
        projects.append(full)
        if outside:
            projects.append(load_project(root, files=outside))
    if not args.paths:
        projects.append(load_repo(args))
    problems = [p for proj in projects for p in proj.problems]
    n_jobs = sum(len(proj.specs) for proj in projects)
    n_files = sum(len(proj.files) for proj in projects)
    errors = [p for p in problems if p.severity == "error"]
    if out.json:
        out.json_data(
            {
                "ok": not errors,
                "jobs": sorted(s.name for proj in projects for s in proj.specs),
                "errors": [p.to_json() for p in sorted(errors, key=_where)],
                "warnings": [p.to_json() for p in sorted((p for p in problems if p.severity == "warning"), key=_where)],
            }
        )
        return EXIT_INVALID if errors else EXIT_OK
    print_problems(out, problems)
    if errors:
        out.warn(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} found; nothing is valid until all are fixed")
        return EXIT_INVALID
    out.msg(f"ok: {n_jobs} job{'s' if n_jobs != 1 else ''} in {n_files} file{'s' if n_files != 1 else ''}")
    return EXIT_OK


def cmd_next(args: argparse.Namespace, out: Out) -> int:
    from datetime import UTC, datetime, timedelta

    from . import schedule as sched
    from .durations import humanize_delta

    now = datetime.now(UTC)
    after = now
    if args.after:
        try:
            after = datetime.fromisoformat(args.after.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--after {args.after!r} is not an ISO-8601 time (e.g. 2026-03-29T00:00:00Z)") from None
    target = args.expr
    schedule = None
    tz = args.tz
    if " " not in target.strip() and not target.startswith("@"):
        root = root_of(args, required=False)
        if (root / "jobs.d").is_dir():
            project = load_repo(args, now=now, warnings=False)
            spec = project.job(target)
            if spec is not None:
                if tz and tz != spec.timezone:
                    raise UsageError(f"--tz {tz}: job {spec.name} runs in {spec.timezone}; drop --tz")
                tz = spec.timezone
                created = None
                if project.config and (state := _applied_state(args, project)) is not None:
                    js = state.jobs.get(spec.name)
                    created = js.created_at if js else None
                schedule = spec.build_schedule(created_at=created or now)
                target = spec.schedule
    tz = tz or "UTC"
    if schedule is None and " " not in target.strip() and not target.startswith("@"):
        root = root_of(args, required=False)
        stems = {p.stem for p in (root / "jobs.d").rglob("*.y*ml")} if (root / "jobs.d").is_dir() else set()
        if target in stems:
            raise UsageError(f"job {target} is invalid: run `cronfile validate` to see why")
    if schedule is None:
        if after.tzinfo is None:
            after = after.replace(tzinfo=sched.get_zone(tz))
        try:
            schedule = sched.parse(target, tz, created_at=now)
        except sched.ScheduleError as e:
            raise UsageError(f"{target!r}: {e}") from None
    if after.tzinfo is None:
        after = after.replace(tzinfo=schedule.tz)
    times = []
    t = after
    for _ in range(max(0, args.n)):
        nxt = schedule.next_after(t)
        if nxt is None:
            break
        times.append(nxt)
        t = nxt
    local = [x.astimezone(schedule.tz) for x in times]
    if out.json:
        out.json_data({"expr": target, "timezone": tz, "next": [x.isoformat() for x in local]})
        return EXIT_OK
    if schedule.kind == "reboot":
        out.data(f"{target}: fires once each time an engine starts")
        return EXIT_OK
    if not local:
        out.data(f"{target}: never fires after {after.isoformat()}")
        return EXIT_OK
    for x in local:
        delta = x - now
        when = humanize_delta(delta) if delta >= timedelta(0) else humanize_delta(delta)
        out.data(
            f"{x.strftime('%a %Y-%m-%d %H:%M:%S')} {x.tzname() or tz}  "
            f"({x.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC)  {when}"
        )
    return EXIT_OK


def _applied_state(args: argparse.Namespace, project: Project) -> Any:
    from .errors import StateError

    try:
        store = store_of(args, project)
        return store.read() if store.exists() else None
    except StateError:
        return None


def cmd_schema(args: argparse.Namespace, out: Out) -> int:
    from .spec import load_schema

    out.data(json.dumps(load_schema(args.which), indent=2))
    return EXIT_OK


INIT_CONFIG = """\
# cronfile project config. Every key: `cronfile schema config`.
# yaml-language-server: $schema=./schema/config.schema.json
timezone: UTC
max_concurrent: 4
# default_agent: claude
defaults:
  timeout: 15m
  deliver: [stdout]
"""

INIT_JOB = """\
# yaml-language-server: $schema=../schema/job.schema.json
description: Say hello every minute, to see cronfile fire.
schedule: "* * * * *"
shell: echo "hello from cronfile at $(date)"
"""


def cmd_init(args: argparse.Namespace, out: Out) -> int:
    target = Path(args.dir)
    target.mkdir(parents=True, exist_ok=True)
    from importlib import resources

    made = []
    # The schemas go into the repo, so editors validate offline: the `$schema` comments
    # point at them by relative paths (refresh with `cronfile schema job > schema/job.schema.json`).
    shipped = resources.files("cronfile").joinpath("schemas")
    schemas = [(f"schema/{k}.schema.json", shipped.joinpath(f"{k}.schema.json").read_text()) for k in ("job", "config")]
    for rel, text in (("cronfile.yaml", INIT_CONFIG), ("jobs.d/hello.yaml", INIT_JOB), *schemas):
        path = target / rel
        if path.exists():
            out.msg(f"kept {path} (exists)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        made.append(str(path))
    gi = target / ".gitignore"
    lines = gi.read_text().splitlines() if gi.exists() else []
    if ".cronfile/" not in lines:
        with gi.open("a") as f:
            f.write(".cronfile/\n")
        made.append(str(gi))
    for m in made:
        out.msg(f"created {m}")
    where = "" if str(target) == "." else f" -C {target}"
    out.msg(f"next: cronfile{where} validate && cronfile{where} diff && cronfile{where} apply")
    return EXIT_OK


def _plan(args: argparse.Namespace, out: Out, *, write: bool, is_diff: bool = False) -> int:
    from datetime import UTC, datetime

    from .load import warnings_for
    from .reconcile import Action, reconcile
    from .render import render_plan

    # Warnings are for the jobs this change creates or updates (`validate` lists them
    # all): at 10,000 jobs, checking every unchanged job's DST hours and variables on
    # every diff cost 0.7 s, to repeat what the last apply already said.
    project = load_repo(args, warnings=False)
    if project.errors:
        if out.json:
            out.json_data({"changes": [], "errors": [p.to_json() for p in project.errors]})
            return EXIT_INVALID
        raise SpecError(project.errors)
    store = store_of(args, project)
    now = datetime.now(UTC)
    saved = _saved_plan(args)
    if write:
        refuse_inside_run("apply")
        from .engine import apply_project
        from .load import git_revision

        def reloaded(fresh: Project) -> None:
            nonlocal project
            project = fresh  # the files changed meanwhile: warn about what was applied

        def check(proj: Project, state: Any, plan: Any) -> None:
            from .planfile import verify

            verify(saved, proj, state, plan, shown=args.plan)

        plan = apply_project(
            store,
            project,
            now=now,
            revision=git_revision(project.root),
            source="apply --plan" if saved is not None else "apply",
            on_reload=reloaded,
            check=check if saved is not None else None,
        )
    else:
        state = store.read()
        _, plan = reconcile(project.specs, state, now, revision=None)
        if saved is not None:  # apply --plan --dry-run: would it apply?
            from .planfile import verify

            verify(saved, project, state, plan, shown=args.plan)
        if getattr(args, "out", None):
            _write_plan_file(Path(args.out), project, state, plan, now)
            out.msg(f"plan saved to {args.out}; apply exactly it with `cronfile apply --plan {args.out}`")
    if not out.json and not out.quiet:
        touched = {c.name for c in plan.changes if c.action in (Action.create, Action.update)}
        specs = [s for s in project.specs if s.name in touched]
        print_problems(out, project.warnings + warnings_for(specs, project.root, now, os.environ))
    # Runtime pauses are drift from the repo that apply keeps (cronfile/pause.py): shown,
    # not counted as changes (diff's exit status says whether apply would change anything).
    from .pause import drift

    overrides = drift(store.read())
    if out.json:
        data = plan.to_json()
        data.setdefault("errors", [])
        data["drift"] = overrides
        out.json_data(data)
    else:
        out.data(render_plan(plan, color=use_color()))
        if overrides:
            out.data("\nNot in the repo (runtime overrides; apply keeps them):")
            for d in overrides:
                out.data(f"  ~ {d['name']}: {d['note']} (`cronfile resume {d['name']}`)")
        if write and plan.has_changes:
            out.msg(f"applied to {getattr(store, 'db_path', store.state_path)}")
    if is_diff:
        return EXIT_FAILED if plan.has_changes else EXIT_OK
    return EXIT_OK


def _saved_plan(args: argparse.Namespace) -> Any:
    if not getattr(args, "plan", None):
        return None
    from .planfile import read_plan_file

    return read_plan_file(Path(args.plan))


def _write_plan_file(path: Path, project: Project, state: Any, plan: Any, now: Any) -> None:
    from .load import git_revision
    from .planfile import make_plan_file

    data = make_plan_file(project, state, plan, now=now, revision=git_revision(project.root))
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--out {path}: {e.strerror or e}") from None


def cmd_diff(args: argparse.Namespace, out: Out) -> int:
    return _plan(args, out, write=False, is_diff=True)


def cmd_apply(args: argparse.Namespace, out: Out) -> int:
    return _plan(args, out, write=not args.dry_run)


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    from datetime import UTC, datetime

    from .engine import engine_running, merged_history
    from .render import render_status, status_rows

    project = load_repo(args, warnings=False)
    store = store_of(args, project)
    state = store.read()
    now = datetime.now(UTC)
    names = set(state.jobs) | {s.name for s in project.specs}
    histories = {n: merged_history(store, n, 10) for n in names}
    rows = status_rows(project.specs if project.ok else None, state, histories, now, engine_running=engine_running(store), usage=agent_usage(store, project, state, names, now))
    if out.json:
        out.json_data(rows)
    else:
        if project.errors:
            out.warn(f"warning: jobs.d has {len(project.errors)} problem(s); run `cronfile validate`")
        out.data(render_status(rows, color=use_color(), now=now))
    return EXIT_OK


def cmd_pause(args: argparse.Namespace, out: Out) -> int:
    from datetime import UTC, datetime

    from .control import pause_job
    from .pause import pause_note

    js = pause_job(store_of(args), args.name, reason=args.reason or "", now=datetime.now(UTC))
    assert js.pause is not None
    if out.json:
        out.json_data({"name": args.name, "state": str(js.state), "pause": js.pause.encode()})
    else:
        out.msg(f"{args.name}: {pause_note(js.pause)}; it will not fire until `cronfile resume {args.name}`")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace, out: Out) -> int:
    from datetime import UTC, datetime

    from .clock import iso
    from .control import resume_job

    js, note, was = resume_job(store_of(args), args.name, now=datetime.now(UTC))
    if out.json:
        out.json_data({"name": args.name, "state": str(js.state), "next_run": iso(js.next_run), "resumed": was, "note": note})
    else:
        out.msg(f"{args.name}: {'resumed; ' if was else ''}{note}")
    return EXIT_OK


def agent_usage(store: Store, project: Any, state: Any, names: set[str], now: Any) -> dict[str, Any]:
    """Each agent job's usage over the last 24 hours (what its budget counts)."""
    from datetime import timedelta

    from .engine import merged_history
    from .usage import usage_since

    declared = {s.name: s.data for s in project.specs}
    out = {}
    for n in names:
        data = state.jobs[n].spec if n in state.jobs else declared.get(n, {})
        if "prompt" in data:
            out[n] = usage_since(merged_history(store, n, None), now - timedelta(hours=24))
    return out


def check_job_name(args: argparse.Namespace, store: Store) -> None:
    """NAME must be a job name (it becomes a path), and a job cronfile knows of."""
    from .spec import NAME_RE

    if not NAME_RE.match(args.name):
        raise UsageError(f"{args.name!r} is not a job name")
    if (store.runs_dir / args.name).is_dir():
        return

    known = set()
    try:
        known |= set(store.read().jobs) if store.exists() else set()
    except CronfileError:
        pass
    if not (getattr(args, "state_dir", None) or os.environ.get("CRONFILE_STATE_DIR")) or find_root(Path(args.C)):
        known |= {s.name for s in load_repo(args, warnings=False).specs}
    if args.name not in known:
        import difflib

        hint = difflib.get_close_matches(args.name, sorted(known), n=1)
        raise UsageError(f"no job named {args.name!r}" + (f" (did you mean {hint[0]}?)" if hint else ""))


def cmd_history(args: argparse.Namespace, out: Out) -> int:
    from .engine import merged_history

    if args.n < 1:
        raise UsageError(f"-n {args.n}: give at least 1")
    store = store_of(args)
    check_job_name(args, store)
    runs = merged_history(store, args.name, args.n)
    if out.json:
        out.json_data(runs)
        return EXIT_OK
    if not runs:
        out.msg(f"no runs recorded for {args.name}")
        return EXIT_OK
    out.data(render_history(runs))
    return EXIT_OK


def render_history(runs: list[dict[str, Any]]) -> str:
    """One line per run, newest last: id, trigger, times, status, exit, deliveries."""
    from datetime import datetime

    tokens = any(r.get("usage") or r.get("usage_error") for r in runs)
    rows = [("RUN", "TRIGGER", "SCHEDULED", "STARTED", "DURATION", "STATUS", "EXIT", "TRIES", *(("TOKENS", "COST") if tokens else ()), "DELIVERIES")]
    for r in runs:
        start = r.get("started_at")
        dur = r.get("duration_s")
        deliveries = r.get("deliveries") or []
        dl = " ".join(f"{d.get('target', '?')}:{'ok' if d.get('ok') else 'skipped' if d.get('skipped') else 'FAILED'}" for d in deliveries)
        status = r.get("status", "?")
        if r.get("missed_count", 0) > 1:
            status += f" x{r['missed_count']}"
        rows.append(
            (
                r["run_id"],
                r.get("trigger") or "",
                _short_time(r.get("scheduled_for")),
                _short_time(start),
                f"{dur:.1f}s" if isinstance(dur, int | float) else "",
                status,
                "" if r.get("exit_code") is None else str(r["exit_code"]),
                str(r.get("attempts") or ""),
                *(_usage_cells(r) if tokens else ()),
                dl,
            )
        )
    del datetime
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    messages = [f"  {r['run_id']}: {r['message']}" for r in runs if r.get("message") and r.get("status") not in ("success",)]
    messages += [f"  {r['run_id']}: usage unknown: {r['usage_error']}" for r in runs if r.get("usage_error")]
    return "\n".join(lines + (["", "notes:"] + messages[-5:] if messages else []))


def _usage_cells(run: dict[str, Any]) -> tuple[str, str]:
    """TOKENS (``1234+56``: input + output) and COST of an agent run; ``?`` when the
    CLI's usage report could not be read."""
    u = run.get("usage")
    if not isinstance(u, dict):
        return ("?" if run.get("usage_error") else "-", "-")
    cost = u.get("cost_usd")
    return (f"{u.get('input_tokens', 0)}+{u.get('output_tokens', 0)}", "-" if cost is None else f"${cost:.4f}")


def _short_time(text: str | None) -> str:
    if not text:
        return "-"
    from datetime import datetime

    dt = datetime.fromisoformat(text).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def cmd_logs(args: argparse.Namespace, out: Out) -> int:
    from .engine import merged_history

    store = store_of(args)
    check_job_name(args, store)
    recorded = {r["run_id"]: r for r in merged_history(store, args.name, None) if r.get("status")}
    # A run in flight has a log but no history record yet (applied or not); run ids sort
    # by time, so the newest log is the latest run.
    job_dir = store.runs_dir / args.name
    ids = sorted({p.stem for p in job_dir.glob("*.log")} | {r for r, v in recorded.items() if v.get("started_at")}) if job_dir.is_dir() else []
    if not ids:
        raise UsageError(f"no logs for {args.name}: it has not run yet (see `cronfile history {args.name}`)")
    if args.run_id:
        match = [r for r in ids if r == args.run_id or r.endswith(args.run_id)]
        if not match:
            raise UsageError(f"{args.name} has no run {args.run_id!r} (see `cronfile history {args.name}`)")
        run_id = match[-1]
    else:
        run_id = ids[-1]
    path = store.log_path(args.name, run_id)
    if args.follow:
        return _follow(store, args.name, run_id, path)
    try:
        sys.stdout.buffer.write(path.read_bytes())
    except FileNotFoundError:
        rec = recorded.get(run_id)
        if rec is not None and not rec.get("attempts"):
            # Ended before anything was spawned (refused, a failing context script, a
            # missing ${VAR}): there is no output, only the reason.
            out.msg(f"run {run_id} produced no output: {rec.get('status')}: {rec.get('message') or 'nothing was started'}")
            return EXIT_OK
        raise UsageError(f"{path}: log was pruned (history_limit)") from None
    sys.stdout.flush()
    return EXIT_OK


def _follow(store: Store, job: str, run_id: str, path: Path) -> int:
    """`logs -f`: print the log as it grows until the run's record appears in history.
    (Polls the file every 0.2 s: a terminal nicety, not the engine.)"""
    import time

    from .engine import merged_history

    pos = 0
    while True:
        done = any(r.get("run_id") == run_id and r.get("status") for r in merged_history(store, job, 5))
        try:
            with path.open("rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            pos += len(chunk)
        if done and not chunk:
            return EXIT_OK
        if not chunk:
            time.sleep(0.2)


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    from .engine import Engine

    project = load_checked(args, out)
    spec = project.job(args.name)
    if spec is None:
        import difflib

        hint = difflib.get_close_matches(args.name, [s.name for s in project.specs], n=1)
        raise UsageError(
            f"no job named {args.name!r} in {project.jobs_dir}" + (f" (did you mean {hint[0]}?)" if hint else "")
        )
    engine = Engine(project.root, store_of(args, project), project=project, mode="run", quiet=out.quiet)
    with engine:
        # -q mutes cronfile's own lines, not the job's output (that is the data).
        status = engine.run_now(spec, stream=sys.stdout.buffer)
    return EXIT_OK if status in ("success", "silent") else EXIT_FAILED


def cmd_tick(args: argparse.Namespace, out: Out) -> int:
    from .engine import Engine

    refuse_inside_run("tick")
    project = load_repo(args, warnings=False)
    if project.errors:
        print_problems(out, project.errors)
        out.warn("jobs.d is invalid: firing from the last applied set")
    engine = Engine(project.root, store_of(args, project), project=project, mode="tick", quiet=out.quiet)
    with engine:
        failed = engine.tick()
    if project.errors:
        return EXIT_INVALID
    return EXIT_FAILED if failed else EXIT_OK


# -- parser --------------------------------------------------------------------------

# The commands whose output is data and that have a --json form; any other refuses it.
JSON_COMMANDS = frozenset({"validate", "next", "schema", "diff", "apply", "status", "pause", "resume", "history", "doctor", "import", "render"})
# The commands that never read the state: --state-dir given to them is refused.
STATELESS_COMMANDS = frozenset({"validate", "schema", "init", "completion", "render"})

COMMANDS = {
    "validate": (cmd_validate, "check job files and cronfile.yaml", "cronfile validate\n  cronfile validate jobs.d/backup.yaml examples/ops"),
    "next": (cmd_next, "upcoming fire times of an expression or a job", 'cronfile next "0 2 * * *" --tz Europe/Berlin -n 5\n  cronfile next daily-briefing --json'),
    "schema": (cmd_schema, "print the JSON schema of a job or of cronfile.yaml", "cronfile schema job > job.schema.json"),
    "init": (cmd_init, "scaffold cronfile.yaml and jobs.d/ in a folder", "cronfile init my-jobs"),
    "diff": (cmd_diff, "show what apply would change (exit 1 if anything)", "cronfile diff\n  cronfile diff --out plan.json   # review it, then: cronfile apply --plan plan.json"),
    "apply": (cmd_apply, "record the job files into the state", "cronfile apply\n  cronfile apply --dry-run\n  cronfile apply --plan plan.json"),
    "status": (cmd_status, "every job: state, next run, recent outcomes", "cronfile status\n  cronfile status --json"),
    "pause": (cmd_pause, "pause an applied job at runtime (kept until resume)", 'cronfile pause backup --reason "disk full, investigating"'),
    "resume": (cmd_resume, "end a runtime pause; the next run is computed from now", "cronfile resume backup"),
    "history": (cmd_history, "past runs of a job", "cronfile history backup -n 20"),
    "logs": (cmd_logs, "the output of a run (latest by default)", "cronfile logs backup\n  cronfile logs backup 7f3a\n  cronfile logs backup -f"),
    "run": (cmd_run, "run one job now in the foreground (trigger: manual)", "cronfile run backup"),
    "tick": (cmd_tick, "one pass: recover, apply, fire what is due, wait, exit", "* * * * * cd /srv/jobs && cronfile tick   # from crontab"),
    "daemon": ("cronfile.daemon_cmd:cmd_daemon", "the engine: apply, watch, fire, execute, deliver", "cronfile daemon\n  cronfile -C /srv/jobs daemon --http 9100 --log-format json"),
    "doctor": ("cronfile.doctor:cmd_doctor", "check config, files, agents, timezone data, state dir, locks, clock", "cronfile doctor\n  cronfile doctor --json"),
    "service": ("cronfile.service:cmd_service", "install a systemd user unit / launchd agent that runs the daemon", "cronfile service print\n  cronfile service install\n  sudo cronfile service install --system --run-as cron\n  cronfile service uninstall"),
    "completion": ("cronfile.completion:cmd_completion", "print a shell completion script (bash, zsh, fish)", 'eval "$(cronfile completion bash)"\n  cronfile completion fish > ~/.config/fish/completions/cronfile.fish'),
    "mcp": ("cronfile.mcp_server:cmd_mcp", "serve the jobs to an agent over the Model Context Protocol (stdio; extra cronfile[mcp])", "cronfile -C /srv/jobs mcp   # started by the agent CLI, see README"),
    "import": ("cronfile.crontab:cmd_import", "turn a crontab (user or system format) into job files", "crontab -l | cronfile import crontab -\n  cronfile import crontab /etc/cron.d/certbot --out jobs.d"),
    "render": ("cronfile.kubernetes:cmd_render", "render the jobs onto another scheduler (kubernetes)", "cronfile render kubernetes -o deploy/k8s --namespace jobs --image ghcr.io/acme/cronfile:1.0\n  cronfile render kubernetes -o - | kubectl apply -f -"),
}


def _resolve(func: Any) -> Any:
    """Commands of other modules are named "module:function" and imported on use."""
    if isinstance(func, str):
        import importlib

        module, name = func.split(":")
        return getattr(importlib.import_module(module), name)
    return func


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-C", metavar="DIR", default=argparse.SUPPRESS, help="jobs repo root (default: . or the nearest folder above it with jobs.d/ or cronfile.yaml)")
    common.add_argument("--state-dir", metavar="DIR", default=argparse.SUPPRESS, help="state directory (default .cronfile; env CRONFILE_STATE_DIR)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output where output is data")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only data and errors")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of internal errors")

    parser = argparse.ArgumentParser(
        prog="cronfile",
        description="A declarative cron runner for AI-agent jobs and shell jobs: jobs are YAML files in jobs.d/.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cronfile {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_, example) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        if name == "validate":
            p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: jobs.d)")
        elif name == "next":
            p.add_argument("expr", metavar="EXPR_OR_NAME", help="a schedule expression or a job name")
            p.add_argument("-n", type=int, default=5, help="how many (default 5)")
            p.add_argument("--tz", help="timezone for an expression (default UTC)")
            p.add_argument("--after", metavar="ISO", help="start from this time instead of now")
        elif name == "schema":
            p.add_argument("which", nargs="?", choices=["job", "config"], default="job")
        elif name == "init":
            p.add_argument("dir", nargs="?", default=".", metavar="DIR")
        elif name == "apply":
            p.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
            p.add_argument("--plan", metavar="PLAN", help="apply exactly this saved plan (from diff --out), or exit 2 if the files or the state moved")
        elif name == "diff":
            p.add_argument("--out", metavar="PLAN", help="also save the plan, with digests of the files and state it was computed from")
        elif name == "history":
            p.add_argument("name", metavar="NAME")
            p.add_argument("-n", type=int, default=20, help="how many runs (default 20)")
        elif name == "logs":
            p.add_argument("name", metavar="NAME")
            p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="a run id or its last characters")
            p.add_argument("-f", "--follow", action="store_true", help="follow a run in flight")
        elif name == "run":
            p.add_argument("name", metavar="NAME")
        elif name == "pause":
            p.add_argument("name", metavar="NAME")
            p.add_argument("--reason", metavar="TEXT", help="why (kept in the state and the audit log)")
        elif name == "resume":
            p.add_argument("name", metavar="NAME")
        elif name == "daemon":
            p.add_argument("--http", metavar="HOST:PORT", help="serve /metrics, /healthz and a status page at / (a bare PORT: 127.0.0.1; config: http)")
            p.add_argument("--log-format", choices=["text", "json"], help="log lines as dated text (default) or one JSON object each (config: log_format)")
        elif name == "service":
            p.add_argument("action", choices=["install", "uninstall", "print"])
            p.add_argument("--name", help="unit name (default: cronfile-<folder>)")
            p.add_argument("--system", action="store_true", help="a system unit in /etc/systemd/system (Type=notify, hardened; needs root to install)")
            p.add_argument("--run-as", metavar="USER", help="--system: the user the daemon runs as (default: the repo's owner)")
            p.add_argument("--http", metavar="HOST:PORT", help="the daemon serves /metrics, /healthz and the status page there")
        elif name == "completion":
            p.add_argument("shell", nargs="?", choices=["bash", "zsh", "fish"])
            p.add_argument("--jobs", action="store_true", help="print the job names (used by the scripts)")
        elif name == "import":
            p.add_argument("kind", choices=["crontab"])
            p.add_argument("file", nargs="?", metavar="FILE|-", help="a crontab file, or - for stdin (default: `crontab -l`)")
            p.add_argument("--out", metavar="DIR", help="where the job files go (default: jobs.d)")
            p.add_argument("--tz", metavar="TZ", help="timezone of entries with no CRON_TZ line above them (default: this host's)")
            fmt = p.add_mutually_exclusive_group()
            fmt.add_argument("--system", action="store_true", default=None, help="system format, with a user field (default for /etc/crontab and cron.d files)")
            fmt.add_argument("--user", dest="system", action="store_false", help="user format, no user field")
        elif name == "render":
            p.add_argument("target", choices=["kubernetes"])
            p.add_argument("-o", "--output", metavar="DIR", help="output folder (default: deploy/kubernetes), or - to print the manifests as one YAML stream")
            p.add_argument("--namespace", metavar="NS")
            p.add_argument("--image", metavar="IMAGE")
            p.add_argument("--skip-unsupported", action="store_true", help="render the other jobs and list the ones skipped (default: refuse, exit 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for key, default in (("C", "."), ("state_dir", None), ("json", False), ("quiet", False), ("debug", False)):
        if not hasattr(args, key):
            setattr(args, key, default)
    if not args.command:
        parser.print_help()
        return EXIT_INVALID
    out = Out(args)
    if args.json and args.command not in JSON_COMMANDS:
        # Accepted and ignored, --json once left a daemon's operator waiting for JSON logs.
        hint = " (for JSON log lines: --log-format json)" if args.command == "daemon" else ""
        out.warn(f"cronfile {args.command}: error: --json is not supported by this command{hint}")
        return EXIT_INVALID
    if args.state_dir and args.command in STATELESS_COMMANDS:
        out.warn(f"cronfile {args.command}: error: --state-dir is not used by this command (it reads no state)")
        return EXIT_INVALID
    try:
        func = _resolve(COMMANDS[args.command][0])
        return func(args, out)
    except SpecError as e:
        if args.json and args.command in ("validate", "diff", "apply"):
            out.json_data({"changes": [], "errors": [p.to_json() for p in e.problems]})
        else:
            print_problems(out, e.problems, warnings=False)
            n = len([p for p in e.problems if p.severity == "error"])
            out.warn(f"{n} problem{'s' if n != 1 else ''} found; nothing was changed")
        return EXIT_INVALID
    except CronfileError as e:
        if args.debug:
            raise
        out.warn(f"cronfile: error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 - the user sees one line unless --debug
        if args.debug:
            raise
        out.warn(f"cronfile: internal error: {type(e).__name__}: {e} (run again with --debug for the traceback)")
        return 3


if __name__ == "__main__":
    sys.exit(main())
