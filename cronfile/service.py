"""`cronfile service install|uninstall|print`: run the daemon under the OS's service
manager, a systemd user unit on Linux and a launchd agent on macOS; with ``--system`` a
hardened systemd system unit (``/etc/systemd/system``) that runs as ``--run-as USER``.

Both systemd units are ``Type=notify`` with ``WatchdogSec=``: the daemon says READY=1
once it applied the files, pings the watchdog while its loop is alive, and STOPPING=1
on SIGTERM (cronfile/sdnotify.py).

The unit runs ``<cronfile> -C <repo> daemon`` with the PATH of the shell that installed
it (agent CLIs live in ~/.local/bin, /opt/homebrew/bin, nvm folders: a service manager's
default PATH has none of them), restarts it five seconds after a crash, and gives it
``shutdown_grace`` + 15 s to stop, since the daemon itself waits ``shutdown_grace`` for
runs in flight before it stops them.
"""

from __future__ import annotations

import argparse
import math
import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .console import Out

__all__ = [
    "AGENT_HOME_PATHS",
    "SYSTEM_UNIT_DIR",
    "WATCHDOG_SEC",
    "Service",
    "cmd_service",
    "cronfile_command",
    "default_name",
    "install",
    "render",
    "render_launchd",
    "render_systemd",
    "service_for",
    "uninstall",
    "unit_path",
]

# Time beyond shutdown_grace for the daemon to record the interrupted runs and exit
# before the service manager sends SIGKILL.
STOP_MARGIN_S = 15
RESTART_SEC = 5
# The daemon pings every WATCHDOG_SEC / 2 while its loop is alive (health.py allows a
# loop 60 s past its planned wake before it counts as stuck): a stuck daemon is
# restarted within about two minutes.
WATCHDOG_SEC = 60
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
# What agent CLIs write in their user's home (sessions, tokens, caches): writable in the
# system unit, whose ProtectSystem=strict makes everything else read-only. A leading
# "-" in ReadWritePaths= lets a missing one pass.
AGENT_HOME_PATHS = (".claude", ".claude.json", ".codex", ".gemini", ".config", ".cache", ".local/share", ".local/state")
# The system unit's PATH ends with these, after the venv's folder and the agents' folders.
BASE_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TOOL_TIMEOUT_S = 60


@dataclass(frozen=True)
class Service:
    """Everything a unit file says, independent of the service manager."""

    name: str
    argv: tuple[str, ...]
    root: Path
    path_env: str
    stop_timeout_s: int
    env_file: Path | None = None  # systemd only: optional, for the ${VAR}s of jobs
    system: bool = False  # a system unit (root's manager), not a user unit
    user: str | None = None  # system unit: User=
    writable: tuple[str, ...] = ()  # system unit: ReadWritePaths= (repo, state dir, agents' home dirs)

    @property
    def description(self) -> str:
        return f"cronfile daemon for {self.root}"


def default_name(root: Path) -> str:
    """``cronfile-<folder>``, the folder name lower-cased with anything but letters,
    digits, ``.``, ``_``, ``-`` turned into ``-`` (unit and plist names must be plain)."""
    folder = re.sub(r"[^a-z0-9_.-]+", "-", Path(root).resolve().name.lower()).strip("-.")
    return f"cronfile-{folder[:64] or 'jobs'}"


def _checked_name(name: str) -> str:
    for suffix in (".service", ".plist"):
        name = name.removesuffix(suffix)
    if not NAME_RE.match(name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_', '-' (e.g. cronfile-ops)")
    return name


def cronfile_command() -> list[str]:
    """How the service starts cronfile: this very executable when it was started as
    ``cronfile`` (a venv's copy may not be the one on PATH), else the one on PATH, else
    this interpreter with ``-m cronfile``.

    Made absolute but not symlink-resolved: Homebrew and pipx link a stable path to a
    versioned one that changes on upgrade."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "cronfile" and os.path.isfile(argv0) and os.access(argv0, os.X_OK):
        return [os.path.abspath(argv0)]
    found = shutil.which("cronfile")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "cronfile"]


def service_for(
    root: Path,
    *,
    name: str | None = None,
    state_dir: Path | None = None,
    shutdown_grace: float = 30.0,
    environ: Mapping[str, str] | None = None,
    command: list[str] | None = None,
    system: bool = False,
    run_as: str | None = None,
    home: Path | None = None,
    writable_state: Path | None = None,
    agents: tuple[str, ...] = (),
    http: str | None = None,
) -> Service:
    """The service for the jobs repo at ``root``. ``state_dir`` is passed on only when
    the user chose one on the command line or in the environment (cronfile.yaml's is read
    by the daemon itself).

    ``system``: a system unit running as ``run_as`` (whose ``home`` holds the agents'
    files), with a minimal PATH (the folder of cronfile's command, the folders of the
    ``agents`` programs found on PATH, then /usr/local/bin:/usr/bin:/bin) instead of the
    installing shell's, and ``writable_state`` (the state dir, wherever cronfile.yaml
    puts it) writable beside the repo."""
    environ = os.environ if environ is None else environ
    root = Path(root).resolve()
    name = _checked_name(name) if name else default_name(root)
    command = command or cronfile_command()
    argv = [*command, "-C", str(root)]
    if state_dir is not None:
        argv += ["--state-dir", str(Path(state_dir).resolve())]
    argv.append("daemon")
    if http:
        argv += ["--http", http]
    for arg in argv:
        if "\n" in arg or "\r" in arg or "\x00" in arg:
            raise UsageError(f"{arg!r}: a path with a line break cannot go into a unit file")
    if not system:
        return Service(
            name=name,
            argv=tuple(argv),
            root=root,
            path_env=environ.get("PATH") or os.defpath,
            stop_timeout_s=math.ceil(shutdown_grace) + STOP_MARGIN_S,
            env_file=_config_home(environ) / "cronfile" / f"{name}.env",
        )
    writable = [str(root)]
    state = Path(writable_state or state_dir or root / ".cronfile").resolve()
    if not state.is_relative_to(root):
        writable.append(str(state))
    if home is not None:
        writable += [f"-{home / p}" for p in AGENT_HOME_PATHS]
    return Service(
        name=name,
        argv=tuple(argv),
        root=root,
        path_env=minimal_path(command, agents, environ),
        stop_timeout_s=math.ceil(shutdown_grace) + STOP_MARGIN_S,
        env_file=Path("/etc/cronfile") / f"{name}.env",
        system=True,
        user=run_as,
        writable=tuple(writable),
    )


def minimal_path(command: list[str], agents: tuple[str, ...], environ: Mapping[str, str]) -> str:
    """The folder of cronfile's command (a venv's bin), the folders of the agent CLIs
    found on the installing shell's PATH, then the system's own: nothing else of the
    installing shell's PATH."""
    dirs: list[str] = []

    def add(d: str) -> None:
        if d and d not in dirs:
            dirs.append(d)

    add(os.path.dirname(command[0]) if os.path.isabs(command[0]) else "")
    for program in agents:
        found = shutil.which(program, path=environ.get("PATH") or os.defpath)
        if found:
            add(os.path.dirname(os.path.abspath(found)))
    for d in BASE_PATH:
        add(d)
    return ":".join(dirs)


# -- systemd -------------------------------------------------------------------------

_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _sd_escape(text: str) -> str:
    # systemd expands %-specifiers in nearly every setting: a literal % is %%.
    return text.replace("%", "%%")


def _sd_quote(arg: str) -> str:
    """One ExecStart= word. systemd also expands $VAR in ExecStart, quoted or not, so a
    literal $ is $$; quotes and backslashes are C-escaped inside double quotes."""
    arg = _sd_escape(arg)
    if _SAFE_ARG.match(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def _sd_env(pairs: dict[str, str]) -> str:
    """One Environment= line holding every pair, each a double-quoted word."""
    words = []
    for key, value in pairs.items():
        text = _sd_escape(f"{key}={value}").replace("\\", "\\\\").replace('"', '\\"')
        words.append(f'"{text}"')
    return "Environment=" + " ".join(words)


def render_systemd(svc: Service) -> str:
    """The systemd unit: a user unit, or with ``svc.system`` a hardened system unit."""
    scope = "" if svc.system else "--user "
    lines = [
        f"# Generated by `cronfile service install{' --system' if svc.system else ''}`; regenerate rather than edit",
        f"# (local additions: `systemctl {scope}edit {svc.name}`).",
        "[Unit]",
        f"Description={_sd_escape(svc.description)}",
    ]
    if svc.system:
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "",
        "[Service]",
        # The daemon speaks the notify protocol itself (cronfile/sdnotify.py): started
        # means applied and watching; a loop that stops pinging is restarted.
        "Type=notify",
        "NotifyAccess=main",
        f"WatchdogSec={WATCHDOG_SEC}",
        "ExecStart=" + " ".join(_sd_quote(a) for a in svc.argv),
        f"WorkingDirectory={_sd_escape(str(svc.root))}",
        # User unit: agent CLIs are found on the installing shell's PATH, not systemd's
        # default. System unit: only the venv's and the agents' folders (minimal_path).
        _sd_env({"PATH": svc.path_env, "PYTHONUNBUFFERED": "1"}),
    ]
    if svc.system and svc.user:
        lines.append(f"User={_sd_escape(svc.user)}")
    if svc.env_file is not None:
        # Optional (the leading -): where the ${VAR}s the jobs reference can live,
        # outside the jobs repo and out of git.
        lines.append(f"EnvironmentFile=-{_sd_escape(str(svc.env_file))}")
    lines += [
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "KillSignal=SIGTERM",
        # SIGTERM to the daemon only: it stops firing, waits shutdown_grace for runs in
        # flight and stops the rest itself. The default (control-group) would signal
        # every job's process at once and leave nothing to wait for. What is left at
        # TimeoutStopSec gets SIGKILL, the whole group.
        "KillMode=mixed",
        # The unit's cgroup is cronfile's to subdivide: each run gets a cgroup of its
        # own, so nothing a job starts outlives its run (executors/contain.py).
        "Delegate=yes",
        f"TimeoutStopSec={svc.stop_timeout_s}",
        "StandardOutput=journal",
        "StandardError=journal",
        f"SyslogIdentifier={svc.name}",
    ]
    if svc.system:
        lines += [
            # Hardening (systemd.exec(5)): the whole file system read-only but the repo,
            # the state dir and the agents' files; no privilege gain through setuid.
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=" + " ".join(_sd_quote(p) for p in svc.writable),
        ]
        # A private /tmp would hide a repo or state dir that lives in /tmp.
        if not any(p.lstrip("-").startswith(("/tmp/", "/var/tmp/")) for p in svc.writable):
            lines.append("PrivateTmp=yes")
        lines += [
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            # No ProtectControlGroups=: it makes /sys/fs/cgroup read-only, and with it the
            # delegated subtree where each run gets its cgroup (docs/design.md section 12).
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
        ]
    lines += [
        "",
        "[Install]",
        f"WantedBy={'multi-user.target' if svc.system else 'default.target'}",
        "",
    ]
    return "\n".join(lines)


# -- launchd -------------------------------------------------------------------------


def _launchd_log(name: str, environ: Mapping[str, str]) -> Path:
    return _home(environ) / "Library" / "Logs" / "cronfile" / f"{name}.log"


def render_launchd(svc: Service, log_path: Path) -> bytes:
    """The launchd agent plist: the same service in launchd's words."""
    plist = {
        "Label": svc.name,
        "ProgramArguments": list(svc.argv),
        "WorkingDirectory": str(svc.root),
        "EnvironmentVariables": {"PATH": svc.path_env, "PYTHONUNBUFFERED": "1"},
        "RunAtLoad": True,
        # Restart=on-failure: relaunch after a non-zero exit or a crash, not after a
        # clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_SEC,
        # Seconds between SIGTERM and SIGKILL (TimeoutStopSec).
        "ExitTimeOut": svc.stop_timeout_s,
        # launchd has no journal: output goes to a file (Console.app shows ~/Library/Logs).
        "StandardOutPath": str(log_path),
        "StandardErrorPath": str(log_path),
        "ProcessType": "Background",
    }
    return plistlib.dumps(plist, sort_keys=False)


# -- where units live ----------------------------------------------------------------


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def _config_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CONFIG_HOME")
    # XDG Base Directory spec: a relative value is invalid and is ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else _home(environ) / ".config"


def _is_macos(platform: str | None) -> bool:
    return (platform or sys.platform) == "darwin"


def unit_path(
    name: str,
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    system: bool = False,
    unit_dir: Path | None = None,
) -> Path:
    """~/.config/systemd/user/<name>.service (XDG_CONFIG_HOME respected), or
    ~/Library/LaunchAgents/<name>.plist on macOS; ``system``: /etc/systemd/system
    (``unit_dir`` instead, for a chroot or an image being built)."""
    environ = os.environ if environ is None else environ
    if system:
        return (unit_dir or SYSTEM_UNIT_DIR) / f"{name}.service"
    if _is_macos(platform):
        return _home(environ) / "Library" / "LaunchAgents" / f"{name}.plist"
    return _config_home(environ) / "systemd" / "user" / f"{name}.service"


def render(
    svc: Service, *, platform: str | None = None, environ: Mapping[str, str] | None = None
) -> bytes:
    """The unit file's bytes for this platform."""
    environ = os.environ if environ is None else environ
    if _is_macos(platform):
        return render_launchd(svc, _launchd_log(svc.name, environ))
    return render_systemd(svc).encode()


# -- install / uninstall -------------------------------------------------------------


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer in {TOOL_TIMEOUT_S} s")
    except OSError as e:
        return subprocess.CompletedProcess(argv, 127, "", str(e))


def _steps(steps: list[list[str]]) -> tuple[bool, str]:
    """Run the commands in order until one fails; (ok, the failure's first line)."""
    for argv in steps:
        res = _run(argv)
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            return (
                False,
                f"`{' '.join(argv)}` failed: {why[0] if why else f'exit {res.returncode}'}",
            )
    return True, ""


def _write(path: Path, data: bytes) -> str:
    """Write the unit; 'created', 'updated' or 'unchanged'."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = None
    if old == data:
        return "unchanged"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return "created" if old is None else "updated"


def install(
    svc: Service,
    out: Out,
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    unit_dir: Path | None = None,
) -> int:
    """Write the unit and start it (enable it for every login/boot). 0 when running,
    1 when the unit is written but the service manager refused to start it."""
    environ = os.environ if environ is None else environ
    path = unit_path(svc.name, platform=platform, environ=environ, system=svc.system, unit_dir=unit_dir)
    data = render_systemd(svc).encode() if svc.system else render(svc, platform=platform, environ=environ)
    change = _write(path, data)
    out.msg(f"{change} {path}")
    if svc.system:
        return _install_systemd(svc, change, out, environ)
    if _is_macos(platform):
        return _install_launchd(svc, path, out, environ)
    return _install_systemd(svc, change, out, environ)


def _install_systemd(svc: Service, change: str, out: Out, environ: Mapping[str, str]) -> int:
    unit = f"{svc.name}.service"
    scope = [] if svc.system else ["--user"]
    ctl = " ".join(["systemctl", *scope])
    start = f"{ctl} daemon-reload && {ctl} enable --now {unit}"
    if shutil.which("systemctl") is None:
        out.msg(
            f"systemctl not found: the unit is written, not started. On a systemd host: `{start}`; "
            f"elsewhere run `{' '.join(svc.argv)}` under your process supervisor"
        )
        return 0
    steps = [["systemctl", *scope, "daemon-reload"]]
    if change == "updated":
        # enable --now leaves a running daemon on its old command line; restart it.
        steps += [["systemctl", *scope, "enable", unit], ["systemctl", *scope, "restart", unit]]
    else:
        steps += [["systemctl", *scope, "enable", "--now", unit]]
    ok, why = _steps(steps)
    if not ok:
        where = "" if svc.system else " once a user manager runs (log in, or see `loginctl enable-linger`)"
        out.warn(f"{why}\nthe unit is written; start it with `{start}`{where}")
        return 1
    jctl = "journalctl" if svc.system else "journalctl --user"
    out.msg(
        f"{'restarted' if change == 'updated' else 'started'} {unit}; log: `{jctl} -u {svc.name} -f`, state: `{ctl} status {svc.name}`"
    )
    if not svc.system:
        _linger_note(out, environ)
    return 0


def _linger_note(out: Out, environ: Mapping[str, str]) -> None:
    # A user manager, and the daemon with it, stops at logout unless lingering is on:
    # the classic "my cron stopped when I closed ssh".
    if shutil.which("loginctl") is None:
        return
    user = environ.get("USER") or environ.get("LOGNAME")
    if not user:
        return
    res = _run(["loginctl", "show-user", user, "-p", "Linger", "--value"])
    if res.returncode == 0 and res.stdout.strip() == "no":
        out.msg(
            f"note: user services stop when {user} logs out; to keep it running: `sudo loginctl enable-linger {user}`"
        )


def _install_launchd(svc: Service, path: Path, out: Out, environ: Mapping[str, str]) -> int:
    _launchd_log(svc.name, environ).parent.mkdir(parents=True, exist_ok=True)
    domain = f"gui/{os.getuid()}"
    if shutil.which("launchctl") is None:
        out.msg(
            f"launchctl not found: the plist is written; load it with `launchctl bootstrap {domain} {path}`"
        )
        return 0
    # bootout first: bootstrap refuses a label that is already loaded, and a reloaded
    # plist is how launchd picks up a changed one.
    _run(["launchctl", "bootout", f"{domain}/{svc.name}"])
    ok, why = _steps(
        [
            ["launchctl", "enable", f"{domain}/{svc.name}"],
            ["launchctl", "bootstrap", domain, str(path)],
        ]
    )
    if not ok:
        out.warn(f"{why}\nthe plist is written; load it with `launchctl bootstrap {domain} {path}`")
        return 1
    out.msg(
        f"started {svc.name}; log: {_launchd_log(svc.name, environ)}, state: `launchctl print {domain}/{svc.name}`"
    )
    return 0


def uninstall(
    name: str,
    out: Out,
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
    system: bool = False,
    unit_dir: Path | None = None,
) -> int:
    """Stop, disable and remove the unit. Nothing installed is not an error (0)."""
    environ = os.environ if environ is None else environ
    path = unit_path(name, platform=platform, environ=environ, system=system, unit_dir=unit_dir)
    scope = [] if system else ["--user"]
    if not path.exists():
        out.msg(
            f"nothing to uninstall: no {path} (a unit installed under another name? pass --name)"
        )
        return 0
    if _is_macos(platform):
        if shutil.which("launchctl"):
            # Fails when it is not loaded, which is fine: the goal is "not loaded".
            _run(["launchctl", "bootout", f"gui/{os.getuid()}/{name}"])
        path.unlink()
        out.msg(
            f"stopped and removed {path} (its log stays in {_launchd_log(name, environ).parent})"
        )
        return 0
    unit = f"{name}.service"
    failed = ""
    if shutil.which("systemctl"):
        ok, failed = _steps([["systemctl", *scope, "disable", "--now", unit]])
    path.unlink()
    if shutil.which("systemctl"):
        _steps([["systemctl", *scope, "daemon-reload"]])
        _run(["systemctl", *scope, "reset-failed", unit])  # forget a failed state, if any
    if failed:
        out.warn(
            f"{failed}\nremoved {path}; if the daemon still runs, stop it with `{' '.join(['systemctl', *scope])} stop {unit}`"
        )
        return 1
    out.msg(f"stopped, disabled and removed {path}")
    return 0


# -- the command ---------------------------------------------------------------------


def cmd_service(args: argparse.Namespace, out: Out) -> int:
    from .console import print_problems, refuse_inside_run, root_of
    from .errors import SpecError
    from .load import load_project

    root = root_of(args).resolve()
    system = bool(getattr(args, "system", False))
    run_as = getattr(args, "run_as", None)
    if run_as and not system:
        raise UsageError("--run-as is for --system units (a user unit runs as its user)")
    if system and args.action != "print" and os.geteuid() != 0:
        raise UsageError(f"--system writes to {SYSTEM_UNIT_DIR}: run it as root (sudo cronfile service {args.action} --system)")
    if args.action == "uninstall":
        return uninstall(_checked_name(args.name) if args.name else default_name(root), out, system=system)
    project = load_project(root)
    if args.action == "install":
        refuse_inside_run("install a service")
        if project.errors:
            # The daemon would exit at once and be restarted every few seconds.
            raise SpecError(project.errors)
    elif project.errors:
        print_problems(out, project.errors, warnings=False)
        out.warn(
            "warning: the jobs repo is invalid; a daemon started from this unit would exit until it is fixed"
        )
    # Passed on only when chosen explicitly; cronfile.yaml's state_dir the daemon reads itself.
    explicit = getattr(args, "state_dir", None) or os.environ.get("CRONFILE_STATE_DIR")
    http = getattr(args, "http", None)
    if http:
        from .httpserve import parse_listen

        parse_listen(http)  # refused now, not by a daemon restarting every 5 s
    extra: dict[str, object] = {}
    if system:
        from .console import state_dir_of

        user, home = _run_as(run_as, root, out)
        agents = tuple(sorted({p.command[0] for p in project.config.agents.values() if p.command}))
        extra = dict(system=True, run_as=user, home=home, writable_state=state_dir_of(args, project), agents=agents)
    svc = service_for(
        root,
        name=args.name,
        state_dir=Path(explicit).expanduser() if explicit else None,
        shutdown_grace=project.config.shutdown_grace,
        http=http,
        **extra,  # type: ignore[arg-type]
    )
    if args.action == "print":
        sys.stdout.buffer.write(render_systemd(svc).encode() if system else render(svc))
        sys.stdout.flush()
        return 0
    path = unit_path(svc.name, system=system)
    if not path.exists():
        from .console import store_of

        store = store_of(args, project)
        if store.daemon_running():
            pid = store.daemon_pid()
            out.warn(
                f"warning: a daemon (pid {pid or '?'}) already runs for {store.location}; the service "
                "cannot start until it stops (one daemon per state dir)"
            )
    return install(svc, out)


def _run_as(user: str | None, root: Path, out: Out) -> tuple[str, Path | None]:
    """The system unit's User= and that user's home: ``--run-as``, else the owner of
    the repo (who can write it), never root by default."""
    import pwd

    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(root.stat().st_uid)
    except KeyError:
        raise UsageError(f"--run-as {user}: no such user on this host") from None
    if entry.pw_uid == 0:
        if not user:
            raise UsageError(f"{root} belongs to root: name the user the daemon runs as with --run-as USER (running agents as root is refused by default)")
        out.warn("warning: the daemon will run as root; jobs and agents get root's rights")
    return entry.pw_name, Path(entry.pw_dir) if entry.pw_dir else None
