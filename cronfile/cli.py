"""The command line's dispatcher: one function per command, and ``main``.

The parser is commands.py's; what the commands share (``Out``, the repo and state dir,
problem printing) is console.py's. Only ``__main__`` imports this module.
Heavy modules are imported inside the commands, so `cronfile --version` stays fast.
Exit codes (docs/design.md section 7): 0 ok, 1 a job failed or `diff` found changes,
2 invalid input or usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .commands import JSON_COMMANDS, STATELESS_COMMANDS, build_parser
from .console import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    Out,
    find_root,
    load_checked,
    load_repo,
    print_problems,
    problem_place,
    refuse_inside_run,
    root_of,
    store_of,
    use_color,
)
from .errors import CronfileError, SpecError, UsageError

if TYPE_CHECKING:
    from .load import Project
    from .stores import Store


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
                "errors": [p.to_json() for p in sorted(errors, key=problem_place)],
                "warnings": [p.to_json() for p in sorted((p for p in problems if p.severity == "warning"), key=problem_place)],
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
    if schedule.at_boot:
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
    from .reconcile import Action, plan_for
    from .render import render_plan

    # Warnings are for the jobs this change creates or updates (`validate` lists them
    # all): at 10,000 jobs, checking every unchanged job's DST hours and variables on
    # every diff cost 0.7 s, to repeat what the last apply already said.
    sig = None
    if write:  # (the repo's, before it is read: for the table apply leaves ready, statusview)
        from .statusview import signature

        sig = signature(root_of(args))
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
        from .apply import apply_project
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
        plan = plan_for(project.specs, state, now)  # diff: the plan, not the state
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
            out.msg(f"applied to {store.location}")
    if write:  # what the next `status` reads, from what apply has in hand (issue 17)
        _prime_status(args, project, store, sig)
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
    from .statusview import (
        keepable,
        marks_before_reads,
        prepare,
        print_json,
        print_ready,
        render,
        save,
        signature,
    )

    root = root_of(args)
    color = not out.json and use_color()
    text, sig, by_hand = print_ready(args, root, as_json=out.json, color=color)  # the table kept ready to print, if nothing changed
    if text is not None:
        out.data(text)
        return EXIT_OK
    if sig is None:
        sig = signature(root)  # (before anything is read: see statusview)
    from datetime import UTC, datetime

    from .statusread import read_status_repo

    project = read_status_repo(args, sig)  # the repo's jobs, from the status index when unchanged
    store = store_of(args, project)  # type: ignore[arg-type]
    db = getattr(store, "db_path", None)
    mark = marks_before_reads(db) if db is not None and project.signature is not None else None  # (before the reads)
    now = datetime.now(UTC)
    jobs, recent, rows, running = _status_rows(project, store, now, full=by_hand)
    ready = None
    if keepable(project, store, mark):  # printed from what is kept, and kept
        ready = prepare(rows, jobs, recent._usage, as_json=out.json, color=color)
        save(args, project, store, sig, mark, ready, as_json=out.json, color=color)
    if out.json:
        if ready is None:
            out.json_data(rows)
        else:
            out.data(print_json(*ready, now, engine_running=running))  # (json.dumps(rows, indent=2)'s bytes)
    else:
        if project.error_count:
            out.warn(f"warning: jobs.d has {project.error_count} problem(s); run `cronfile validate`")
        if ready is None:
            from .render import render_status

            out.data(render_status(rows, color=color, now=now))
        else:
            out.data(render(*ready, now, engine_running=running))  # (render_status's text)
        if getattr(store, "shared", False):  # several hosts: whose daemons hold a lease
            from .shared import render_daemons

            out.data(render_daemons(store.daemons(), now))  # type: ignore[attr-defined]
    return EXIT_OK


def _status_rows(project: Any, store: Store, now: Any, *, full: bool = False, keep: bool = True) -> tuple[Any, Any, list[dict[str, Any]], bool]:
    """What `status` shows of ``project`` (a StatusRepo or Project) and ``store`` at
    ``now``: the applied jobs, the recent runs, the rows, and whether an engine runs
    (``full``, ``keep``: statusmemo.applied_jobs's)."""
    from .history import engine_running
    from .render import status_rows
    from .statusmemo import applied_jobs, recent_runs

    jobs, _ = applied_jobs(store, full=full, keep=keep)  # the applied jobs, kept between commands (issue 17)
    names = set(jobs) | {s.name for s in project.specs}
    agents = _agent_jobs(project, jobs, names)
    recent = recent_runs(store, agents)  # every job's last runs, kept too
    usage = agent_usage(store, project, jobs, names, now, runs_of=recent.usage_runs)
    running = engine_running(store)
    rows = status_rows(project.specs if project.ok else None, None, {}, now, engine_running=running, usage=usage, summaries=recent.summaries, jobs=jobs)
    return jobs, recent, rows, running


def _prime_status(args: argparse.Namespace, project: Project, store: Store, sig: Any) -> None:
    """What the next `status` reads, left by `apply` from what it has in hand (issue 17):
    the status index of the project it applied, and the table kept ready to print
    (statusview), keyed by the repo's signature taken before apply read it and by the
    database's marks taken after its write. The
    first `status` after an apply of 10,000 jobs read the repo in full and decoded every
    JobState (0.5 CPU s). No applied-jobs memo is left: a state damaged by hand after
    this apply must be read in full by the next status, which then says what is wrong
    (tests/faults/test_damaged_state.py). Best effort: all is checked as ever when read."""
    from datetime import UTC, datetime

    from .statusread import index_of
    from .statusview import db_marks, prepare, save

    db = getattr(store, "db_path", None)
    if db is None or os.environ.get("CRONFILE_NO_CACHE") == "1":
        return  # (the table is the SQLite store's, and a cache)
    try:
        repo = index_of(project, sig)
        if repo is None or sig is None:
            return
        mark = db_marks(db)  # (before the reads)
        jobs, recent, rows, _ = _status_rows(repo, store, datetime.now(UTC), keep=False)
        color = use_color()  # (the table for the terminal apply printed to)
        save(args, repo, store, sig, mark, prepare(rows, jobs, recent._usage, color=color), color=color)
    except Exception:  # noqa: BLE001 - the apply is done; a cache is best effort (status reads all then)
        if getattr(args, "debug", False):
            raise


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


def _agent_jobs(project: Any, state: Any, names: set[str]) -> set[str]:
    """The agent jobs among ``names`` (a prompt in the applied spec, else in the files)."""
    declared = {s.name: s.data for s in project.specs}
    jobs = getattr(state, "jobs", state)  # a State, or name -> render.Applied
    return {n for n in names if "prompt" in (jobs[n].spec if n in jobs else declared.get(n, {}))}


def agent_usage(
    store: Store,
    project: Any,
    state: Any,
    names: set[str],
    now: Any,
    *,
    with_history: set[str] | None = None,
    runs_of: Callable[[str], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Each agent job's usage over the last 24 hours (what its budget counts).
    ``with_history``: the jobs known to have runs (the others read as none, unread);
    ``runs_of``: a job's runs as usage_since reads them, instead of its history."""
    from datetime import timedelta

    from .history import merged_history
    from .usage import usage_since

    out = {}
    since = now - timedelta(hours=24)
    for n in _agent_jobs(project, state, names):
        if runs_of is not None:
            runs = runs_of(n)
        else:
            runs = merged_history(store, n, None) if with_history is None or n in with_history else []
        out[n] = usage_since(runs, since)
    return out


def check_job_name(args: argparse.Namespace, store: Store) -> None:
    """NAME must be a job name (it becomes a path), and a job cronfile knows of."""
    from .spec import NAME_RE

    if not NAME_RE.match(args.name):
        raise UsageError(f"{args.name!r} is not a job name")
    if args.name in store.history_jobs():
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
    from .history import merged_history

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

    from .spec import Status

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
    messages = [f"  {r['run_id']}: {r['message']}" for r in runs if r.get("message") and r.get("status") != Status.success]
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
    from .history import merged_history

    store = store_of(args)
    check_job_name(args, store)
    recorded = {r["run_id"]: r for r in merged_history(store, args.name, None) if r.get("status")}
    # A run in flight has a log but no history record yet (applied or not); run ids sort
    # by time, so the newest log is the latest run.
    # A run's log is made at its first byte (runlog.py): a run in flight that printed
    # nothing yet has no file, and is found by the state's running entries instead.
    from .runlog import in_flight

    running = in_flight(store, args.name)
    ids = sorted(set(store.log_ids(args.name)) | {r for r, v in recorded.items() if v.get("started_at")} | running)
    if not ids:
        raise UsageError(f"no logs for {args.name}: it has not run yet (see `cronfile history {args.name}`)")
    if args.run_id:
        match = [r for r in ids if r == args.run_id or r.endswith(args.run_id)]
        if not match:
            raise UsageError(f"{args.name} has no run {args.run_id!r} (see `cronfile history {args.name}`)")
        run_id = match[-1]
    else:
        run_id = ids[-1]
    if args.follow:
        return _follow(store, args.name, run_id)
    data = store.read_log(args.name, run_id)
    rec = recorded.get(run_id)
    if data is None and (run_id in running or (rec is not None and rec.get("log_path"))):
        data = b""  # a log that stayed empty was never made: the run printed nothing
    if data is not None:
        sys.stdout.buffer.write(data)
    else:
        if rec is not None and not rec.get("attempts"):
            # Ended before anything was spawned (refused, a failing context script, a
            # missing ${VAR}): there is no output, only the reason.
            out.msg(f"run {run_id} produced no output: {rec.get('status')}: {rec.get('message') or 'nothing was started'}")
            return EXIT_OK
        if rec is not None and rec.get("log_path") is None:
            # Its log could not be made or written (runlog.py): the record says why.
            out.msg(f"run {run_id} has no log: {rec.get('status')}: {rec.get('message') or 'its output was not kept'}")
            return EXIT_OK
        raise UsageError(f"run {run_id} of {args.name}: its log was pruned (history_limit)")
    sys.stdout.flush()
    return EXIT_OK


def _follow(store: Store, job: str, run_id: str) -> int:
    """`logs -f`: print the log as it grows until the run's record appears in history.
    (Polls the log every 0.2 s: a terminal nicety, not the engine.)"""
    import time

    from .history import merged_history

    pos = 0
    while True:
        done = any(r.get("run_id") == run_id and r.get("status") for r in merged_history(store, job, 5))
        chunk = store.read_log(job, run_id, offset=pos) or b""
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
    from .spec import Status

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
    return EXIT_OK if status in (Status.success, Status.silent) else EXIT_FAILED


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


# -- commands of their own modules (imported on use, so `--version` stays fast) --------


def cmd_daemon(args: argparse.Namespace, out: Out) -> int:
    from .daemon_cmd import cmd_daemon as run

    return run(args, out)


def cmd_doctor(args: argparse.Namespace, out: Out) -> int:
    from .doctor import cmd_doctor as run

    return run(args, out)


def cmd_service(args: argparse.Namespace, out: Out) -> int:
    from .service import cmd_service as run

    return run(args, out)


def cmd_completion(args: argparse.Namespace, out: Out) -> int:
    from .completion import cmd_completion as run

    return run(args, out)


def cmd_mcp(args: argparse.Namespace, out: Out) -> int:
    from .mcp_server import cmd_mcp as run

    return run(args, out)


def cmd_import(args: argparse.Namespace, out: Out) -> int:
    from .crontab import cmd_import as run

    return run(args, out)


def cmd_render(args: argparse.Namespace, out: Out) -> int:
    from .kubernetes import cmd_render as run

    return run(args, out)


def cmd_state(args: argparse.Namespace, out: Out) -> int:
    from .migrate import cmd_state as run

    return run(args, out)


# -- dispatch ------------------------------------------------------------------------

# The function that runs each command of commands.COMMANDS.
HANDLERS: dict[str, Callable[[argparse.Namespace, Out], int]] = {
    "validate": cmd_validate,
    "next": cmd_next,
    "schema": cmd_schema,
    "init": cmd_init,
    "diff": cmd_diff,
    "apply": cmd_apply,
    "status": cmd_status,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "history": cmd_history,
    "logs": cmd_logs,
    "run": cmd_run,
    "tick": cmd_tick,
    "daemon": cmd_daemon,
    "doctor": cmd_doctor,
    "service": cmd_service,
    "completion": cmd_completion,
    "mcp": cmd_mcp,
    "import": cmd_import,
    "render": cmd_render,
    "state": cmd_state,
}


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
        func = HANDLERS[args.command]
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
