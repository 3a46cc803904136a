"""`cronfile service`: the systemd user unit and the launchd plist, and install/uninstall
against a fake `systemctl`/`launchctl` (no real service manager is touched)."""

from __future__ import annotations

import argparse
import configparser
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import cronfile

from cronfile import cli, service
from cronfile.errors import UsageError

SHELL_JOB = 'schedule: "@daily"\nshell: "true"\n'


def make_repo(root: Path, config: str | None = None) -> Path:
    (root / "jobs.d").mkdir(parents=True)
    (root / "jobs.d" / "backup.yaml").write_text(SHELL_JOB)
    if config is not None:
        (root / "cronfile.yaml").write_text(config)
    return root


def parse_unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read_string(text)
    return unit


def fake_tool(bin_dir: Path, name: str, log: Path, *, stdout: str = "", exit_code: int = 0) -> None:
    """A stand-in that appends its argv to ``log`` and answers as told."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(
        f'#!/bin/sh\necho "{name} $*" >> "{log}"\n'
        + (f"printf '%s\\n' '{stdout}'\n" if stdout else "")
        + (
            f"echo 'Failed to connect to bus: No medium found' >&2\nexit {exit_code}\n"
            if exit_code
            else ""
        )
    )
    script.chmod(0o755)


@pytest.fixture
def host(tmp_path):
    """HOME and XDG_CONFIG_HOME in tmp_path, a fake systemctl and loginctl on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    log = tmp_path / "calls.log"
    fake_tool(bin_dir, "systemctl", log)
    fake_tool(bin_dir, "loginctl", log, stdout="no")
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "USER": "alice",
    }
    return argparse.Namespace(home=home, bin=bin_dir, log=log, env=env, xdg=tmp_path / "xdg")


def calls(host) -> list[str]:
    return host.log.read_text().splitlines() if host.log.exists() else []


# -- names and the command -----------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("ops-jobs", "cronfile-ops-jobs"),
        ("My Jobs!", "cronfile-my-jobs"),
        ("ü", "cronfile-jobs"),
        ("a.b_c", "cronfile-a.b_c"),
    ],
    ids=["plain", "spaces-and-marks", "nothing-left", "dots-and-underscores"],
)
def test_the_default_name_is_the_sanitized_folder_name(tmp_path, folder, name):
    root = tmp_path / folder
    root.mkdir()
    assert service.default_name(root) == name


@pytest.mark.parametrize(
    "bad", ["../evil", "a b", "-x", "!"], ids=["path", "space", "dash-first", "mark"]
)
def test_a_unit_name_that_is_not_plain_is_refused(tmp_path, bad):
    with pytest.raises(UsageError):
        service.service_for(tmp_path, name=bad, command=["/bin/cronfile"])


def test_a_name_given_with_its_suffix_is_accepted(tmp_path):
    assert service.service_for(tmp_path, name="ops.service", command=["/x"]).name == "ops"


def test_the_command_is_this_cronfile_when_started_as_cronfile(tmp_path, monkeypatch):
    exe = tmp_path / "venv" / "bin" / "cronfile"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["venv/bin/cronfile", "service", "print"])
    assert service.cronfile_command() == [str(exe)]


def test_the_command_falls_back_to_path_then_to_python_m(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/somewhere/cronfile/__main__.py"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert service.cronfile_command() == [sys.executable, "-m", "cronfile"]
    (bin_dir / "cronfile").write_text("#!/bin/sh\n")
    (bin_dir / "cronfile").chmod(0o755)
    assert service.cronfile_command() == [str(bin_dir / "cronfile")]


# -- the systemd unit ----------------------------------------------------------------


def test_print_shows_a_unit_that_runs_the_daemon_for_this_repo(tmp_path):
    root = make_repo(tmp_path / "ops")
    res = cronfile(
        "service", "print", cwd=root, env={"PATH": f"/opt/agents/bin:{os.environ['PATH']}"}
    )
    assert res.returncode == 0, res.stderr
    unit = parse_unit(res.stdout)
    svc = unit["Service"]
    argv = svc["ExecStart"].split()
    assert argv[-3:] == ["-C", str(root.resolve()), "daemon"]
    assert os.path.isabs(argv[0])
    assert svc["WorkingDirectory"] == str(root.resolve())
    assert svc["Restart"] == "on-failure"
    assert svc["RestartSec"] == "5"
    assert svc["KillSignal"] == "SIGTERM"
    assert svc["KillMode"] == "mixed"
    assert svc["TimeoutStopSec"] == "45"  # shutdown_grace 30 s + 15 s
    assert svc["StandardOutput"] == "journal" and svc["StandardError"] == "journal"
    assert '"PATH=/opt/agents/bin:' in svc["Environment"]
    assert unit["Install"]["WantedBy"] == "default.target"
    assert "cronfile-ops" in svc["SyslogIdentifier"]


def test_the_stop_timeout_follows_shutdown_grace(tmp_path):
    root = make_repo(tmp_path / "ops", config="shutdown_grace: 2m\n")
    res = cronfile("service", "print", cwd=root)
    assert parse_unit(res.stdout)["Service"]["TimeoutStopSec"] == "135"


def test_an_explicit_state_dir_is_passed_to_the_daemon(tmp_path):
    root = make_repo(tmp_path / "ops")
    res = cronfile("--state-dir", str(tmp_path / "state"), "service", "print", cwd=root)
    argv = parse_unit(res.stdout)["Service"]["ExecStart"].split()
    assert argv[argv.index("--state-dir") + 1] == str((tmp_path / "state").resolve())


def test_odd_characters_in_paths_are_quoted_for_systemd(tmp_path):
    root = tmp_path / "my jobs 100%"
    root.mkdir()
    svc = service.service_for(
        root, command=["/opt/cron file/bin/cronfile"], environ={"PATH": "/a$b:/c"}
    )
    text = service.render_systemd(svc)
    assert (
        'ExecStart="/opt/cron file/bin/cronfile" -C "' + str(root).replace("%", "%%") + '" daemon'
        in text
    )
    assert f"WorkingDirectory={str(root).replace('%', '%%')}" in text
    assert '"PATH=/a$b:/c"' in text  # Environment= does not expand $


def _verify(unit_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
@pytest.mark.parametrize("folder", ["ops", "my jobs 100% $HOME"], ids=["plain", "odd-characters"])
def test_systemd_analyze_verifies_the_unit(tmp_path, folder):
    root = make_repo(tmp_path / folder)
    svc = service.service_for(root, command=[sys.executable, "-m", "cronfile"])
    unit_file = tmp_path / f"{svc.name}.service"
    unit_file.write_text(service.render_systemd(svc))
    res = _verify(unit_file)
    if res.returncode != 0 and "Failed to initialize manager" in res.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    # verify exits 0 on unknown keys and bad values, and only says so on stderr.
    complaints = [line for line in res.stderr.splitlines() if unit_file.name in line]
    assert complaints == []


# -- the launchd plist ---------------------------------------------------------------


def test_the_launchd_plist_round_trips_and_says_the_same_as_the_unit(tmp_path):
    root = make_repo(tmp_path / "ops")
    svc = service.service_for(
        root, command=["/usr/local/bin/cronfile"], environ={"PATH": "/opt/homebrew/bin:/usr/bin"}
    )
    data = service.render(svc, platform="darwin", environ={"HOME": str(tmp_path)})
    plist = plistlib.loads(data)
    assert plist["Label"] == "cronfile-ops"
    assert plist["ProgramArguments"] == [
        "/usr/local/bin/cronfile",
        "-C",
        str(root.resolve()),
        "daemon",
    ]
    assert plist["WorkingDirectory"] == str(root.resolve())
    assert plist["EnvironmentVariables"]["PATH"] == "/opt/homebrew/bin:/usr/bin"
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ThrottleInterval"] == 5
    assert plist["ExitTimeOut"] == 45
    assert plist["StandardOutPath"] == str(
        tmp_path / "Library" / "Logs" / "cronfile" / "cronfile-ops.log"
    )
    assert plistlib.loads(plistlib.dumps(plist)) == plist


def test_units_live_where_each_service_manager_looks(tmp_path):
    env = {"HOME": str(tmp_path / "h"), "XDG_CONFIG_HOME": str(tmp_path / "x")}
    assert (
        service.unit_path("n", platform="linux", environ=env)
        == tmp_path / "x" / "systemd" / "user" / "n.service"
    )
    assert (
        service.unit_path("n", platform="linux", environ={"HOME": env["HOME"]})
        == tmp_path / "h" / ".config" / "systemd" / "user" / "n.service"
    )
    assert (
        service.unit_path("n", platform="darwin", environ=env)
        == tmp_path / "h" / "Library" / "LaunchAgents" / "n.plist"
    )


# -- install / uninstall with a fake systemctl ---------------------------------------


def test_install_writes_the_unit_reloads_and_enables_it(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    res = cronfile("service", "install", cwd=root, env=host.env)
    assert res.returncode == 0, res.stderr
    unit_file = host.xdg / "systemd" / "user" / "cronfile-ops.service"
    assert unit_file.is_file()
    assert parse_unit(unit_file.read_text())["Service"]["ExecStart"].endswith(
        f"-C {root.resolve()} daemon"
    )
    assert calls(host) == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now cronfile-ops.service",
        "loginctl show-user alice -p Linger --value",
    ]
    assert "journalctl --user -u cronfile-ops" in res.stderr
    assert "enable-linger alice" in res.stderr


def test_installing_a_changed_unit_restarts_the_service(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    assert cronfile("service", "install", cwd=root, env=host.env).returncode == 0
    host.log.unlink()
    (root / "cronfile.yaml").write_text("shutdown_grace: 1m\n")
    res = cronfile("service", "install", cwd=root, env=host.env)
    assert res.returncode == 0, res.stderr
    assert "updated" in res.stderr
    assert calls(host)[:3] == [
        "systemctl --user daemon-reload",
        "systemctl --user enable cronfile-ops.service",
        "systemctl --user restart cronfile-ops.service",
    ]


def test_install_without_systemctl_writes_the_unit_and_says_how_to_start_it(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    res = cronfile(
        "service", "install", "--name", "nightly", cwd=root, env={**host.env, "PATH": str(empty)}
    )
    assert res.returncode == 0, res.stderr
    assert (host.xdg / "systemd" / "user" / "nightly.service").is_file()
    assert "systemctl --user enable --now nightly.service" in res.stderr
    assert calls(host) == []


def test_install_reports_a_service_manager_that_refuses(tmp_path, host):
    fake_tool(host.bin, "systemctl", host.log, exit_code=1)
    root = make_repo(tmp_path / "ops")
    res = cronfile("service", "install", cwd=root, env=host.env)
    assert res.returncode == 1
    assert "Failed to connect to bus" in res.stderr
    assert (host.xdg / "systemd" / "user" / "cronfile-ops.service").is_file()


def test_install_refuses_an_invalid_repo(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    (root / "jobs.d" / "bad.yaml").write_text("schedule: nope\nshell: 'true'\n")
    res = cronfile("service", "install", cwd=root, env=host.env)
    assert res.returncode == 2
    assert not (host.xdg / "systemd").exists()
    assert calls(host) == []


def test_a_job_cannot_install_a_service(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    res = cronfile("service", "install", cwd=root, env={**host.env, "CRONFILE_RUN_ID": "r1"})
    assert res.returncode == 2 and "inside a cronfile run" in res.stderr


def test_uninstall_disables_stops_and_removes(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    assert cronfile("service", "install", cwd=root, env=host.env).returncode == 0
    host.log.unlink()
    res = cronfile("service", "uninstall", cwd=root, env=host.env)
    assert res.returncode == 0, res.stderr
    assert not (host.xdg / "systemd" / "user" / "cronfile-ops.service").exists()
    assert calls(host) == [
        "systemctl --user disable --now cronfile-ops.service",
        "systemctl --user daemon-reload",
        "systemctl --user reset-failed cronfile-ops.service",
    ]


def test_uninstalling_nothing_is_not_an_error(tmp_path, host):
    root = make_repo(tmp_path / "ops")
    res = cronfile("service", "uninstall", cwd=root, env=host.env)
    assert res.returncode == 0 and "nothing to uninstall" in res.stderr
    assert calls(host) == []


# -- install / uninstall with a fake launchctl ---------------------------------------


def test_install_and_uninstall_on_macos_use_launchctl(tmp_path, host, monkeypatch, capsys):
    fake_tool(host.bin, "launchctl", host.log)
    for key, value in host.env.items():
        monkeypatch.setenv(key, value)
    root = make_repo(tmp_path / "ops")
    svc = service.service_for(root, command=["/usr/local/bin/cronfile"])
    out = cli.Out(argparse.Namespace())
    assert service.install(svc, out, platform="darwin") == 0
    plist_file = host.home / "Library" / "LaunchAgents" / "cronfile-ops.plist"
    assert plistlib.loads(plist_file.read_bytes())["Label"] == "cronfile-ops"
    assert (host.home / "Library" / "Logs" / "cronfile").is_dir()
    domain = f"gui/{os.getuid()}"
    assert calls(host) == [
        f"launchctl bootout {domain}/cronfile-ops",
        f"launchctl enable {domain}/cronfile-ops",
        f"launchctl bootstrap {domain} {plist_file}",
    ]
    host.log.unlink()
    assert service.uninstall("cronfile-ops", out, platform="darwin") == 0
    assert not plist_file.exists()
    assert calls(host) == [f"launchctl bootout {domain}/cronfile-ops"]


def test_the_unit_shown_in_the_operations_doc_matches_the_generated_one(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    shown = parse_unit(doc.split("```ini\n", 1)[1].split("```", 1)[0])
    root = make_repo(tmp_path / "jobs")
    real = parse_unit(
        service.render_systemd(service.service_for(root, command=["/srv/venv/bin/cronfile"]))
    )
    for section in shown.sections():
        assert set(shown[section]) == set(real[section]), section
    for key in (
        "Restart",
        "RestartSec",
        "KillSignal",
        "KillMode",
        "TimeoutStopSec",
        "StandardOutput",
        "StandardError",
    ):
        assert shown["Service"][key] == real["Service"][key], key
    assert shown["Install"]["WantedBy"] == real["Install"]["WantedBy"]


def test_the_public_names_exist():
    assert all(hasattr(service, name) for name in service.__all__)


# -- notify support and the system unit ---------------------------------------------


def test_the_user_unit_is_type_notify_with_a_watchdog(tmp_path):
    root = make_repo(tmp_path / "ops")
    svc = parse_unit(cronfile("service", "print", cwd=root).stdout)["Service"]
    assert svc["Type"] == "notify"
    assert svc["NotifyAccess"] == "main"
    assert svc["WatchdogSec"] == str(service.WATCHDOG_SEC)
    assert "User" not in svc and "ProtectSystem" not in svc


def system_env(tmp_path: Path) -> dict[str, str]:
    """A shell PATH with junk and one agent CLI in it."""
    agents = tmp_path / "agents-bin"
    agents.mkdir()
    (agents / "claude").write_text("#!/bin/sh\n")
    (agents / "claude").chmod(0o755)
    return {"PATH": f"/opt/junk/bin:{agents}:/usr/bin:/bin"}


def test_print_system_writes_a_hardened_notify_unit(tmp_path):
    root = make_repo(tmp_path / "ops")
    state = tmp_path / "elsewhere-state"
    res = cronfile(
        "--state-dir", str(state), "service", "print", "--system", "--run-as", "nobody", "--http", "9100",
        cwd=root, env=system_env(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    unit = parse_unit(res.stdout)
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert svc["WatchdogSec"] == str(service.WATCHDOG_SEC)
    assert svc["User"] == "nobody"
    argv = svc["ExecStart"].split()
    assert argv[-3:] == ["daemon", "--http", "9100"]
    # A minimal PATH: cronfile's own folder, the agents' folder, the system's; no junk.
    path = svc["Environment"].split('"PATH=')[1].split('"')[0].split(":")
    assert path == [os.path.dirname(argv[0]), str(tmp_path / "agents-bin"), "/usr/local/bin", "/usr/bin", "/bin"]
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict"
    writable = svc["ReadWritePaths"].split()
    assert writable[:2] == [str(root.resolve()), str(state.resolve())]
    assert "-/nonexistent/.claude" in writable  # nobody's home, optional
    assert "PrivateTmp" not in svc or not str(root).startswith("/tmp/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert svc["EnvironmentFile"] == "-/etc/cronfile/cronfile-ops.env"


def test_the_system_unit_runs_as_the_repos_owner_and_never_root_by_default(tmp_path):
    import pwd

    root = make_repo(tmp_path / "ops")
    owner = pwd.getpwuid(root.stat().st_uid)
    res = cronfile("service", "print", "--system", cwd=root)
    if owner.pw_uid == 0:
        assert res.returncode == 2
        assert "belongs to root: name the user the daemon runs as with --run-as USER" in res.stderr
    else:
        assert parse_unit(res.stdout)["Service"]["User"] == owner.pw_name
    res = cronfile("service", "print", "--run-as", "nobody", cwd=root)
    assert res.returncode == 2 and "--run-as is for --system units" in res.stderr
    res = cronfile("service", "print", "--system", "--run-as", "no-such-user-xyz", cwd=root)
    assert res.returncode == 2 and "no such user" in res.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("folder", ["ops", "my jobs 100% $HOME"], ids=["plain", "odd-characters"])
def test_systemd_analyze_verifies_the_system_unit(tmp_path, folder):
    root = make_repo(tmp_path / folder)
    svc = service.service_for(
        root, command=[sys.executable, "-m", "cronfile"], system=True, run_as="nobody",
        home=Path("/nonexistent"), writable_state=tmp_path / "state", agents=("claude",), http="127.0.0.1:9100",
    )
    unit_file = tmp_path / f"{svc.name}.service"
    unit_file.write_text(service.render_systemd(svc))
    res = _verify(unit_file)
    if res.returncode != 0 and "Failed to initialize manager" in res.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    complaints = [
        line for line in res.stderr.splitlines()
        if unit_file.name in line and "Special user nobody configured" not in line
    ]
    assert complaints == []


def test_install_system_writes_the_unit_and_uses_the_system_manager(tmp_path, host, monkeypatch, capsys):
    root = make_repo(tmp_path / "ops")
    monkeypatch.setenv("PATH", host.env["PATH"])
    svc = service.service_for(root, command=["/srv/venv/bin/cronfile"], system=True, run_as="nobody")
    out = cli.Out(argparse.Namespace(quiet=False, json=False))
    units = tmp_path / "etc-systemd-system"
    assert service.install(svc, out, environ=host.env, unit_dir=units) == 0
    text = (units / "cronfile-ops.service").read_text()
    assert "Type=notify" in text and "User=nobody" in text
    assert calls(host) == ["systemctl daemon-reload", "systemctl enable --now cronfile-ops.service"]
    assert "journalctl -u cronfile-ops -f" in capsys.readouterr().err
    host.log.unlink()
    assert service.uninstall("cronfile-ops", out, environ=host.env, system=True, unit_dir=units) == 0
    assert not (units / "cronfile-ops.service").exists()
    assert calls(host)[0] == "systemctl disable --now cronfile-ops.service"


def test_the_system_unit_shown_in_the_operations_doc_matches_the_generated_one():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    shown = parse_unit(doc.split("```ini\n", 2)[2].split("```", 1)[0])
    # /srv/jobs as in the doc (a repo under /tmp would drop PrivateTmp=); only rendered.
    svc = service.service_for(Path("/srv/jobs"), command=["/srv/venv/bin/cronfile"], system=True, run_as="cron", home=Path("/home/cron"))
    real = parse_unit(service.render_systemd(svc))
    for section in shown.sections():
        assert set(shown[section]) == set(real[section]), section
    for key in ("Type", "NotifyAccess", "WatchdogSec", "NoNewPrivileges", "ProtectSystem", "KillMode", "PrivateTmp"):
        assert shown["Service"][key] == real["Service"][key], key
    assert shown["Install"]["WantedBy"] == real["Install"]["WantedBy"]
