"""`cronfile doctor`: one line per check of what a jobs repo needs to run, with a fix.

Checks: the config and job files, each agent profile's program (and its version),
timezone data, the state dir's permissions, ``state.json``, stale engine locks and runs
left in flight, whether a daemon runs, and the clock. Like ``brew doctor`` and
``flutter doctor``: it looks, it does not repair (the only writes are a probe file in the
state dir, removed at once, and the removal of a dead engine's lock file, which
``Store.engine_alive`` does by design and every engine start would do anyway).

Every outside tool (``<agent> --version``, ``timedatectl``) is reached through one seam,
``run_tool``, so tests pass a fake; a tool that is missing, fails or hangs reads as
"unknown", never as a failure of the host.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .console import Out
    from .load import Project
    from .state import State
    from .stores.base import Store

__all__ = [
    "Check",
    "Mark",
    "ToolResult",
    "check_agent_permissions",
    "check_agents",
    "check_clock",
    "check_files",
    "check_locks",
    "check_state_dir",
    "check_state_json",
    "check_timezones",
    "cmd_doctor",
    "diagnose",
    "exit_code",
    "package_build_time",
    "render",
    "run_tool",
]

VERSION_TIMEOUT_S = 3.0
# The wall clock may lag a file written on another host (a wheel built on CI, an apply
# from a laptop) by ordinary NTP-level skew; beyond this it is wrong, not skewed.
CLOCK_SLACK = timedelta(minutes=10)
# A network file system stamps mtimes with the server's clock; more than this apart from
# ours and "how long ago" questions (status, overdue) go wrong.
FS_SKEW_S = 60.0
MAX_NAMED = 5  # offenders named in one line before "+N more"


class Mark(StrEnum):
    """The outcome of one check."""

    ok = "ok"  # Nothing to do.
    info = "info"  # Worth knowing; not a problem (an unknown, an unused agent).
    warn = "warn"  # Probably a problem, or will be one; the engine still works.
    fail = "fail"  # Jobs will not run (or not run right) until it is fixed: exit 1.


_LABEL = {Mark.ok: "ok", Mark.info: "info", Mark.warn: "warn", Mark.fail: "FAIL"}
_COLOR = {Mark.ok: "32", Mark.info: "2", Mark.warn: "33", Mark.fail: "31;1"}


@dataclass(frozen=True)
class Check:
    """One line of the report; ``fix`` says what to do (empty when nothing)."""

    check: str
    status: Mark
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": str(self.status),
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class ToolResult:
    """What an outside tool said. ``code`` is None when it did not finish in time."""

    code: int | None
    stdout: str
    stderr: str

    def first_line(self) -> str:
        """The first non-empty line of stdout, else of stderr (``java -version`` style
        tools print there), cut to a sane length."""
        for text in (self.stdout, self.stderr):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()[:100]
        return ""


Runner = Callable[[list[str], float], "ToolResult | None"]


def run_tool(argv: list[str], timeout: float) -> ToolResult | None:
    """Run ``argv`` with no stdin and a timeout; None if it cannot be started at all.

    It runs in its own process group, and a timeout kills the whole group: an agent CLI
    is often a wrapper (node, a shell script) whose child would otherwise keep the pipes
    open and make the wait outlast the timeout."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            # Agent CLIs sometimes open a pager or colour their output.
            env={**os.environ, "NO_COLOR": "1", "PAGER": "cat"},
        )
    except OSError:
        return None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, err = proc.communicate()
        return ToolResult(None, out, err)
    return ToolResult(proc.returncode, out, err)


def _names(items: Iterable[str], limit: int = MAX_NAMED) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _shown(path: Path) -> str:
    from .load import display_path

    return display_path(path)


def _local(dt: datetime) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


# -- config and files ----------------------------------------------------------------


def check_files(project: Project) -> list[Check]:
    """The config and every job file, as `cronfile validate` sees them."""
    from .load import CONFIG_NAME

    has_config = (project.root / CONFIG_NAME).exists()
    if not project.jobs_dir.is_dir() and not has_config:
        return [
            Check(
                "files",
                Mark.warn,
                f"no jobs.d/ or {CONFIG_NAME} in {_shown(project.root)}: not a jobs repo",
                "run `cronfile init` here, or point at your jobs repo with -C DIR",
            )
        ]
    errors = sorted(project.errors)
    if errors:
        first = "; ".join(str(p) for p in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return [
            Check(
                "files",
                Mark.fail,
                f"{_plural(len(errors), 'problem')}: {first}{more}",
                "run `cronfile validate` for the full list; nothing can be applied until all are fixed",
            )
        ]
    what = f"{CONFIG_NAME} and " if has_config else ""
    msg = f"{what}{_plural(len(project.files), 'job file')} valid: {_plural(len(project.specs), 'job')}"
    if project.warnings:
        msg += f" ({_plural(len(project.warnings), 'warning')}: `cronfile validate` shows them)"
    return [Check("files", Mark.ok, msg)]


# -- agents --------------------------------------------------------------------------


def check_agents(
    project: Project,
    environ: Mapping[str, str] | None = None,
    run: Runner = run_tool,
) -> list[Check]:
    """Each agent profile's program on PATH, with its ``--version``. Missing and used by
    a job: FAIL (those runs fail at start). Missing and unused: a warning for a profile
    the config defines or names as default_agent, a note for an unused built-in."""
    from .executors.base import resolve_program
    from .spec import BUILTIN_AGENTS, Kind

    environ = os.environ if environ is None else environ
    config = project.config
    users: dict[str, list[str]] = {}
    for s in project.specs:
        if s.kind is Kind.prompt:
            name = s.agent or config.default_agent
            if name:
                users.setdefault(name, []).append(s.name)
    declared = set((config.data.get("agents") or {}) if isinstance(config.data, Mapping) else ())

    found: dict[str, str | None] = {}
    for name, profile in config.agents.items():
        program = profile.command[0] if profile.command else ""
        found[name] = resolve_program(program, project.root, environ) if program else None
    # `--version` of four agent CLIs in a row could take 12 s; in parallel it takes 3.
    paths = sorted({p for p in found.values() if p})
    with ThreadPoolExecutor(max_workers=max(1, len(paths))) as pool:
        versions = dict(
            zip(
                paths,
                pool.map(lambda p: run([p, "--version"], VERSION_TIMEOUT_S), paths),
                strict=True,
            )
        )

    checks = []
    idle: list[str] = []
    for name in sorted(config.agents):
        profile = config.agents[name]
        program = profile.command[0] if profile.command else "(none)"
        jobs = users.get(name, [])
        used = f"used by {_plural(len(jobs), 'job')} ({_names(jobs)})" if jobs else "no job uses it"
        if name == config.default_agent:
            used += "; the default_agent"
        path = found[name]
        label = f"agent {name}"
        if path:
            checks.append(
                Check(label, Mark.ok, f"{path} ({_version_text(versions.get(path))}); {used}")
            )
            continue
        fix = (
            f"install {program}, or put its folder on the PATH the engine runs with "
            "(`cronfile service install` copies the current PATH)"
        )
        if jobs:
            checks.append(
                Check(
                    label,
                    Mark.fail,
                    f"{program} is not on PATH; {used}: their runs will fail",
                    fix + ", or change their agent:",
                )
            )
        elif name in declared or name == config.default_agent or name not in BUILTIN_AGENTS:
            checks.append(Check(label, Mark.warn, f"{program} is not on PATH; {used}", fix))
        else:
            idle.append(name)
    if idle:
        # Built-in profiles nobody uses: one note, not one line each.
        checks.append(
            Check(
                "agents",
                Mark.info,
                f"{_names(idle)}: not installed; no job uses {'it' if len(idle) == 1 else 'them'}",
            )
        )
    return checks


HELP_TIMEOUT_S = 20.0  # `claude --help` and `gemini --help` start a whole runtime


def _flags_refused(args: tuple[str, ...], res: ToolResult | None, listing: ToolResult | None) -> str | None:
    """Why ``<cli> <args> --help`` (``res``) and ``<cli> --help`` (``listing``) say the
    CLI does not take ``args``; None if it does. Some CLIs validate values before
    printing help (codex, claude: a non-zero exit); others print help whatever follows
    (gemini, which also leaves the options given out of it), so each long flag must be in
    the plain listing, and a value among the choices it lists for its flag."""
    for r in (res, listing):
        if r is None:
            return "it did not start"
        if r.code is None:
            return f"`--help` gave no answer in {HELP_TIMEOUT_S:g} s"
        if r.code != 0:
            said = (r.stderr.strip() or r.stdout.strip()).splitlines()
            return said[0][:200] if said else f"exit code {r.code}"
    assert listing is not None
    text = listing.stdout + listing.stderr
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        at = text.find(arg)
        if at < 0:
            return f"its --help does not list {arg}"
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
        window = text[at : at + 400]
        listed = re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", window) if value else None
        if value is not None and "choices" in window and listed is None:
            return f"{arg} {value}: not among the choices its --help lists"
    return None


def check_agent_permissions(
    project: Project,
    environ: Mapping[str, str] | None = None,
    run: Runner = run_tool,
) -> list[Check]:
    """For each installed agent CLI, whether it takes the flags of the permissions
    levels its jobs use (README, Unattended safety): a CLI upgrade that drops or renames
    a sandbox flag would otherwise fail every run of those jobs."""
    from .executors.base import resolve_program
    from .spec import Kind

    environ = os.environ if environ is None else environ
    config = project.config
    needs: dict[tuple[str, str], list[str]] = {}
    for s in project.specs:
        name = s.agent or config.default_agent
        if s.kind is Kind.prompt and name and config.agent(name) is not None:
            needs.setdefault((name, s.permissions), []).append(s.name)
    probes: dict[tuple[str, str], tuple[list[str], tuple[str, ...]]] = {}
    for (name, level), _jobs in sorted(needs.items()):
        profile = config.agents[name]
        args = profile.permission_args(level)
        program = profile.command[0] if profile.command else ""
        path = resolve_program(program, project.root, environ) if program else None
        if not args or path is None:
            continue  # nothing to pass, or not installed (check_agents says so)
        base = [a for a in profile.command[1:] if "{prompt}" not in a and "{model}" not in a]
        probes[(name, level)] = ([path, *base, *args, "--help"], args)
        probes[(name, "")] = ([path, *base, "--help"], ())
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        results = dict(
            zip(
                probes,
                pool.map(lambda k: run(probes[k][0], HELP_TIMEOUT_S), probes),
                strict=True,
            )
        )
    checks = []
    for (name, level), argv_args in probes.items():
        if not level:
            continue
        argv, args = argv_args
        jobs = needs[(name, level)]
        label = f"agent {name} permissions {level}"
        why = _flags_refused(args, results[(name, level)], results[(name, "")])
        if why is None:
            checks.append(Check(label, Mark.ok, f"{' '.join(args)} accepted; {_plural(len(jobs), 'job')} ({_names(jobs)})"))
        else:
            checks.append(
                Check(
                    label,
                    Mark.fail,
                    f"{argv[0]} does not take {' '.join(args)} ({why}); {_plural(len(jobs), 'job')} ({_names(jobs)}) will fail",
                    f"install the tested version (README, Agent CLIs), or set agents.{name}.permissions.{level} in cronfile.yaml to the flags it takes",
                )
            )
    return checks


def _version_text(res: ToolResult | None) -> str:
    if res is None:
        return "version unknown: it did not start"
    if res.code is None:
        return f"version unknown: `--version` gave no answer in {VERSION_TIMEOUT_S:g} s"
    line = res.first_line()
    if res.code != 0 or not line:
        return f"version unknown: `--version` exited {res.code}"
    return line


# -- timezone data -------------------------------------------------------------------

# A zone with real rules: if it loads, the zone database is there (UTC alone can come
# from a minimal tzdata install that lacks everything else).
PROBE_ZONE = "Europe/Berlin"


def tz_source() -> str:
    """Where zoneinfo reads zones from: the system's files (tried first, PEP 615) or the
    ``tzdata`` package."""
    import zoneinfo

    for base in zoneinfo.TZPATH:
        if (Path(base) / PROBE_ZONE).is_file():
            version = ""
            try:
                with open(Path(base) / "tzdata.zi", encoding="utf-8") as f:
                    head = f.readline().strip()
                if head.startswith("# version"):
                    version = ", version " + head.split()[-1]
            except OSError:
                pass
            return f"system zone files in {base}{version}"
    try:
        import tzdata  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "no zone database found"
    return f"the tzdata package, version {getattr(tzdata, 'IANA_VERSION', '?')}"


def check_timezones(project: Project, load_zone: Callable[[str], Any] | None = None) -> list[Check]:
    """zoneinfo can load Europe/Berlin and every zone the config and the jobs use."""
    from .schedule import ScheduleError, get_zone

    load = load_zone or get_zone
    zones = {PROBE_ZONE, project.config.timezone} | {s.timezone for s in project.specs}
    bad = []
    for zone in sorted(zones):
        try:
            load(zone)
        except (ScheduleError, ValueError, OSError, KeyError):
            bad.append(zone)
    source = tz_source()
    if bad:
        return [
            Check(
                "timezone data",
                Mark.fail,
                f"cannot load {_names(bad)} ({source})",
                "install the zone database: `apt install tzdata` / `apk add tzdata` / "
                "`dnf install tzdata`, or `pip install tzdata` into cronfile's environment",
            )
        ]
    others = len(zones - {PROBE_ZONE})
    return [
        Check(
            "timezone data",
            Mark.ok,
            f"{PROBE_ZONE} and {_plural(others, 'other zone')} in use load, from {source}",
        )
    ]


# -- the state dir -------------------------------------------------------------------


def check_state_dir(store: Store) -> list[Check]:
    """The store's own checks (``Store.inspect``); for the state dir, docs/design.md 1.1:
    the dir (and its subdirs) 0700, every file 0600, all ours."""
    return [Check(f.check, Mark(f.level), f.message, f.fix) for f in store.inspect()]


def check_state_json(store: Store) -> tuple[list[Check], State | None]:
    """The state decodes (Store.read); the state is returned for the later checks."""
    from .errors import StateError

    if not store.created():
        return [], None
    try:
        state = store.read()
    except StateError as e:
        return [
            Check(
                "state",
                Mark.fail,
                str(e),
                _broken_fix(store),
            )
        ], None
    if not store.exists():
        return [
            Check(
                "state",
                Mark.info,
                f"{_state_file(store)} does not exist yet: nothing applied",
                "run `cronfile apply`",
            )
        ], state
    when = f" at {_local(state.applied_at)}" if state.applied_at else ""
    rev = f" (revision {state.revision[:12]})" if state.revision else ""
    return [
        Check("state", Mark.ok, f"{_plural(len(state.jobs), 'job')} applied{when}{rev}")
    ], state


def _where(store: Store, name: str | None = None) -> str:
    """A store's location as a person types it: a path relative to here, or a URL;
    ``name``: a file in the state dir."""
    loc = store.location
    if "://" in loc:
        return loc
    return _shown(Path(loc) / name if name else Path(loc))


def _state_file(store: Store) -> str:
    """Where the state is, as a person types it: the store's file, or its URL."""
    f = store.watch_file()
    return _where(store) if f is None else _shown(f)


def _broken_fix(store: Store) -> str:
    f = store.watch_file()
    if "://" in store.location or f is None:
        return "restore the database from a backup"
    shown = _shown(f)
    if f.name == "state.json":
        return f"mv {shown} {shown}.broken && cronfile apply   (run history in runs/ is kept; next runs are recomputed)"
    return f"mkdir {shown}.broken && mv {shown}* {shown}.broken/ && cronfile apply   (next runs are recomputed)"


# -- locks and engines ---------------------------------------------------------------


def check_locks(store: Store, state: State | None, now: datetime) -> list[Check]:
    """Engine locks whose engine is gone, runs left in flight by them, and the daemon.

    ``Store.engines`` tells a live engine from a dead one (the file store: an engine's
    lock, ``engines/<id>.lock``, is an flock the OS drops when its holder dies; probing
    a dead one's removes its file, as the next engine start would)."""
    if not store.created():
        return [
            Check(
                "daemon",
                Mark.info,
                "not running (nothing applied yet)",
                "after `cronfile apply`: `cronfile service install`, or run `cronfile daemon`",
            )
        ]
    checks: list[Check] = []
    alive: dict[str, bool] = {}

    def is_alive(engine_id: str) -> bool:
        if engine_id not in alive:
            try:
                alive[engine_id] = store.engine_alive(engine_id)
            except (OSError, ValueError):
                alive[engine_id] = True  # cannot tell: do not call it dead
        return alive[engine_id]

    stale: list[str] = []
    try:
        known = store.engines()
    except OSError:
        known = []
    for e in known:
        alive[e.engine_id] = e.alive
        if not e.alive:
            stale.append((e.where or f"engine {e.engine_id}") + (f" (pid {e.pid})" if e.pid else ""))
    if stale:
        checks.append(
            Check(
                "locks",
                Mark.info,
                f"stale engine lock{'s' if len(stale) > 1 else ''} from engines that are gone: {_names(stale)}; "
                "harmless (an flock dies with its process), removed by this check and by every engine start",
            )
        )

    orphans: list[str] = []
    if state is not None:
        entries = [(name, r) for name, js in state.jobs.items() for r in js.running]
        entries += [(r.job or "?", r) for r in state.orphans]
        for job, r in entries:
            if r.engine and not is_alive(r.engine):
                shown_pid = f", pid {r.pid}" if r.pid else ""
                orphans.append(f"{job} run {r.run_id}{shown_pid}")
    if orphans:
        checks.append(
            Check(
                "locks",
                Mark.warn,
                f"{_plural(len(orphans), 'run')} left in flight by an engine that is gone: {_names(orphans)}",
                "the next engine start records them as interrupted and stops any process still running; "
                "no engine running? `cronfile tick` does it now (and fires what is due)",
            )
        )
    if not stale and not orphans:
        live = sum(1 for e in known if e.alive)
        engines = f"{_plural(live, 'engine')} running" if live else "no engine running"
        checks.append(Check("locks", Mark.ok, f"no stale locks; {engines}"))
    checks.append(_daemon_check(store, state, now))
    return checks


def _daemon_check(store: Store, state: State | None, now: datetime) -> Check:
    from .durations import parse_duration
    from .state import JobStatus

    pid = store.daemon_pid()
    try:
        running = store.daemon_running()
    except OSError:
        running = False
    if running:
        return Check("daemon", Mark.ok, f"running, pid {pid}" if pid else "running")
    leftover = f" (daemon.pid {pid} is left from a daemon that died; harmless)" if pid else ""
    overdue = []
    for name, js in sorted((state.jobs if state else {}).items()):
        if js.state is not JobStatus.scheduled or js.next_run is None:
            continue
        try:
            deadline = parse_duration(js.spec.get("starting_deadline", 60))
        except (ValueError, TypeError):
            deadline = timedelta(minutes=1)
        if now - js.next_run > deadline:
            overdue.append(name)
    fix = "`cronfile service install` (or run `cronfile daemon`, or `cronfile tick` from cron each minute)"
    if overdue:
        return Check(
            "daemon",
            Mark.warn,
            f"not running, and {_plural(len(overdue), 'job')} overdue: {_names(overdue)}{leftover}",
            fix,
        )
    return Check(
        "daemon", Mark.info, f"not running (fine if `cronfile tick` runs from cron){leftover}", fix
    )


# -- the clock -----------------------------------------------------------------------


def package_build_time() -> datetime | None:
    """When this cronfile was built or installed: the newest mtime of its own modules
    (the wheel's file times, or the install's, or the last edit of a checkout)."""
    here = Path(__file__).parent
    try:
        newest = max(p.stat().st_mtime for p in here.glob("*.py"))
    except (OSError, ValueError):
        return None
    return datetime.fromtimestamp(newest, UTC)


def check_clock(
    now: datetime,
    store: Store | None,
    state: State | None,
    *,
    build_time: datetime | None = None,
    run: Runner = run_tool,
    time_now: Callable[[], float] | None = None,
) -> list[Check]:
    """The wall clock is after this package's build and the last apply, file times in
    the state dir agree with it, and NTP says it is synchronized (when it can say)."""
    import time as _time

    fix = "set the clock right and keep it so: `sudo timedatectl set-ntp true` (or your OS's time settings)"
    problems: list[Check] = []
    if build_time is not None and now < build_time - CLOCK_SLACK:
        problems.append(
            Check(
                "clock",
                Mark.fail,
                f"it is {_local(now)} here, before this cronfile was built or installed ({_local(build_time)}): the clock is wrong",
                fix,
            )
        )
    if state is not None and state.applied_at is not None and now < state.applied_at - CLOCK_SLACK:
        problems.append(
            Check(
                "clock",
                Mark.warn,
                f"the last apply ({_local(state.applied_at)}) is in this clock's future: the clock went back, or another host's clock is ahead",
                fix + "; then check `cronfile status`",
            )
        )
    skew = store.clock_skew(time_now or _time.time) if store is not None else None
    if skew is not None and abs(skew) > FS_SKEW_S:
        problems.append(
            Check(
                "clock",
                Mark.warn,
                f"a file written in {_where(store)} gets a time {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} this clock "
                "(a network file system whose server clock differs?)",
                "sync the clocks of this host and the file server, or put the state dir on a local disk (--state-dir)",
            )
        )
    mtime = store.written_at() if store is not None else None
    if mtime is not None and mtime - now > timedelta(seconds=FS_SKEW_S):
        problems.append(
            Check(
                "clock",
                Mark.warn,
                f"state.json was written at {_local(mtime)}, in this clock's future",
                fix,
            )
        )
    if not problems:
        bits = [_local(now)]
        if build_time is not None:
            bits.append("after this cronfile's build")
        if state is not None and state.applied_at is not None:
            bits.append("after the last apply")
        if skew is not None:
            bits.append("file times agree")
        problems.append(Check("clock", Mark.ok, "; ".join(bits)))
    return problems + [_ntp_check(run)]


def _ntp_check(run: Runner) -> Check:
    res = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], VERSION_TIMEOUT_S)
    if res is None:
        return Check("ntp", Mark.info, "sync status unknown (no timedatectl on this host)")
    answer = res.stdout.strip().lower()
    if res.code == 0 and answer == "yes":
        return Check("ntp", Mark.ok, "synchronized (timedatectl)")
    if res.code == 0 and answer == "no":
        return Check(
            "ntp",
            Mark.warn,
            "the clock is not NTP-synchronized (timedatectl)",
            "sudo timedatectl set-ntp true",
        )
    why = res.first_line() or ("no answer" if res.code is None else f"exit {res.code}")
    return Check("ntp", Mark.info, f"sync status unknown (timedatectl: {why})")


# -- all together --------------------------------------------------------------------


def diagnose(
    root: Path,
    state_dir: Path | None = None,
    *,
    store: Store | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    run: Runner = run_tool,
    build_time: datetime | None = None,
    load_zone: Callable[[str], Any] | None = None,
    store_error: str | None = None,
) -> list[Check]:
    """Every check, in a fixed order. ``store`` (else the file store at ``state_dir``)
    defaults as the CLI's does; ``store_error``: why the CLI could not open its store
    (reported as the "state store" check, the store's own checks skipped)."""
    from . import __version__
    from .load import load_project
    from .stores import open_store

    now = now or datetime.now(UTC)
    project = load_project(root, now=now, environ=environ)
    if store is None and store_error is None:
        if state_dir is None:
            state_dir = root / (project.config.state_dir or ".cronfile")
        store = open_store(state_dir=state_dir)
    checks = [
        Check(
            "cronfile",
            Mark.ok,
            f"{__version__} on Python {sys.version.split()[0]} ({sys.executable})",
        )
    ]
    checks += check_files(project)
    checks += check_agents(project, environ, run)
    checks += check_agent_permissions(project, environ, run)
    checks += check_timezones(project, load_zone)
    unreachable = check_store(store, store_error)
    if unreachable is not None:
        # The rest of the store's checks would only repeat it; the host's are still run.
        store = None
        checks.append(unreachable)
    else:
        assert store is not None
        checks += check_state_dir(store)
    checks += check_containment(environ)
    state = None
    if store is not None:
        more, state = check_state_json(store)
        checks += more
        checks += check_locks(store, state, now)
    checks += check_clock(
        now,
        store,
        state,
        build_time=build_time if build_time is not None else package_build_time(),
        run=run,
    )
    return checks


STORE_FIX = "start the database or fix state_url / CRONFILE_STATE_URL / --state-url (doctor reads the same)"


def check_store(store: Store | None, error: str | None = None) -> Check | None:
    """A failing "state store" check when the store cannot be opened (``error``: a
    missing driver, an unset variable in its URL) or its database cannot be reached;
    None when it answers (a local state dir always does)."""
    from .errors import StoreUnavailable

    if error is not None or store is None:
        return Check("state store", Mark.fail, error or "no state store", STORE_FIX)
    try:
        store.created()
    except StoreUnavailable as e:
        return Check("state store", Mark.fail, str(e), STORE_FIX)
    return None


def check_containment(environ: Mapping[str, str] | None = None) -> list[Check]:
    """Which mechanism keeps a run's processes from outliving it (executors/contain.py)."""
    from .executors.contain import ContainmentError, _detect

    try:
        c = _detect(dict(os.environ if environ is None else environ))
    except ContainmentError as e:
        return [Check("containment", Mark.fail, str(e), "unset CRONFILE_CONTAINMENT to let cronfile detect it")]
    if c.mechanism == "process-group":
        return [Check("containment", Mark.warn, f"{c.mechanism}: {c.detail}", "run as root or in a systemd unit with Delegate=yes for a cgroup per run")]
    return [Check("containment", Mark.ok, f"{c.mechanism}: {c.detail}")]


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed, 1 when something did (warnings do not count)."""
    return 1 if any(c.status is Mark.fail for c in checks) else 0


def render(checks: list[Check], *, color: bool = False) -> str:
    """One line per check: mark, name, message, and the fix when there is one."""
    width = max((len(c.check) for c in checks), default=0)
    lines = []
    for c in checks:
        label = f"{_LABEL[c.status]:<4}"
        if color:
            label = f"\033[{_COLOR[c.status]}m{label}\033[0m"
        line = f"{label}  {c.check:<{width}}  {c.message}"
        if c.fix and c.status is not Mark.ok:
            line += f"  fix: {c.fix}"
        lines.append(line)
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace, out: Out) -> int:
    from .console import root_of, store_of, use_color

    root = root_of(args)
    # --state-dir, CRONFILE_STATE_DIR, cronfile.yaml's state_dir: the CLI's own rule, so
    # doctor looks where apply and the daemon write.
    from .errors import StateError, UsageError

    try:
        store, store_error = store_of(args), None
    except (StateError, UsageError) as e:  # no driver, an unset ${VAR}: reported below
        store, store_error = None, str(e)
    checks = diagnose(root, store=store, store_error=store_error)
    if out.json:
        out.json_data([c.to_json() for c in checks])
        return exit_code(checks)
    out.data(render(checks, color=use_color()))
    fails = sum(c.status is Mark.fail for c in checks)
    warns = sum(c.status is Mark.warn for c in checks)
    if fails or warns:
        out.msg(f"{_plural(fails, 'failure')}, {_plural(warns, 'warning')}: each line says its fix")
    else:
        out.msg("all checks passed")
    return exit_code(checks)
