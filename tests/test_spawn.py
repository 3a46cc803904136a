"""Starting a gate's shell with os.posix_spawn (executors/process.py, issue 17 round 10)
changes nothing a job can see: the same environment (PWD and OLDPWD included, through a
symlinked workdir too), descriptors, signals, session and exit code as a Popen child;
a workdir gone since the run was prepared never runs the job; and a daemon that
inherited a descriptor does not hand it to its jobs. All real processes."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, wait_for, write_job
from helpers_proc import make_ctx, make_spec
from test_firing import INTROSPECT, ODD_ENV, fds_of

from cronfile.executors import process
from cronfile.executors.base import Prepared
from cronfile.executors.process import CD_EXIT, CD_MARK, spawn
from cronfile.runner import _judge
from cronfile.secrets import Masker
from cronfile.spec import Status

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")


@pytest.fixture
def fast(monkeypatch) -> list[int]:
    """posix_spawn allowed, as in the daemon; returns the pids it started."""
    monkeypatch.setattr(process, "_FAST_SPAWN", False)  # put back after the test
    process.close_inherited_fds()  # (this test process's own, as the daemon's)
    assert process._FAST_SPAWN
    started: list[int] = []
    real = process._spawn_fast

    def counted(*a, **k):
        child = real(*a, **k)
        started.append(child.pid)
        return child

    monkeypatch.setattr(process, "_spawn_fast", counted)
    return started


# glibc's posix_spawn (2.36 at least) leaves its two internal signals, 32 and 33
# (SIGCANCEL, SIGSETXID), ignored in the child, and an ignored signal stays ignored
# across exec. Only /proc's SigIgn shows it: glibc refuses sigaction() on them, and a
# program that uses threads sets its own handlers. The one difference, documented
# (README "Containment", docs/design.md section 5), and compared apart below.
_INTERNAL = (1 << 31) | (1 << 32)


def internal_ignored(out: str) -> tuple[str, bool]:
    """``out`` with signals 32 and 33 cleared from its SigIgn line, and whether they were set."""
    m = re.search(r"^SigIgn:\t([0-9a-f]+)$", out, re.M)
    assert m, out
    mask = int(m.group(1), 16)
    line = f"SigIgn:\t{mask & ~_INTERNAL:016x}"
    return out[: m.start()] + line + out[m.end() :], mask & _INTERNAL == _INTERNAL


def run(prepared: Prepared, *, park: bool) -> tuple[int | None, str]:
    log = io.BytesIO()
    proc = spawn(prepared, log, output_limit=1_000_000, gate=park)
    if park:
        assert proc.release()
    code = proc.wait(10)
    return code, fds_of(log.getvalue().decode())


def plain(prepared: Prepared, monkeypatch) -> tuple[int | None, str]:
    with monkeypatch.context() as m:
        m.setattr(process, "_FAST_SPAWN", False)
        return run(prepared, park=False)


def envs(tmp_path: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return {
        "odd names, a stale PWD, OLDPWD not a directory": (real, dict(ODD_ENV)),
        "no PWD, no OLDPWD": (real, base),
        "PWD names the workdir through a symlink": (real, {**base, "PWD": str(link), "OLDPWD": "/"}),
        "the workdir is the symlink, PWD elsewhere": (link, {**base, "PWD": "/", "OLDPWD": str(real)}),
        "the workdir is the symlink and PWD": (link, {**base, "PWD": str(link)}),
        "empty PWD and OLDPWD": (real, {**base, "PWD": "", "OLDPWD": ""}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "odd names, a stale PWD, OLDPWD not a directory",
        "no PWD, no OLDPWD",
        "PWD names the workdir through a symlink",
        "the workdir is the symlink, PWD elsewhere",
        "the workdir is the symlink and PWD",
        "empty PWD and OLDPWD",
    ],
)
def test_a_job_started_by_posix_spawn_sees_exactly_what_a_popen_child_sees(tmp_path, monkeypatch, fast, case):
    cwd, env = envs(tmp_path)[case]
    prepared = Prepared(["/bin/sh", "-c", INTROSPECT], cwd, env, None, Masker())
    expected = plain(prepared, monkeypatch)
    assert not fast
    got = run(prepared, park=True)
    assert len(fast) == 1  # the gate's shell was posix_spawn'ed
    assert expected[0] == 0, expected[1]
    seen, internal = internal_ignored(got[1])
    assert seen.splitlines() == expected[1].splitlines()
    assert got[0] == expected[0]
    assert not internal_ignored(expected[1])[1]  # (Popen's child: none of them)
    assert "--- fds\nlrwx------ 0 -> /dev/null\nl-wx------ 1 -> pipe\nl-wx------ 2 -> pipe\n--- status" in got[1]


def test_a_relative_workdir_is_the_same_directory_whatever_the_jobs_cdpath(tmp_path, monkeypatch, fast):
    # A repo given as `-C .` makes the workdir relative: Popen's chdir takes it from the
    # engine's own directory, and so must the gate's `cd` (not from $CDPATH).
    (tmp_path / "sub").mkdir()
    decoy = tmp_path / "decoy"
    (decoy / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "CDPATH": str(decoy)}
    prepared = Prepared(["/bin/sh", "-c", INTROSPECT], Path("sub"), env, None, Masker())
    expected = plain(prepared, monkeypatch)
    got = run(prepared, park=True)
    assert fast
    assert internal_ignored(got[1])[0] == expected[1]
    assert f"cwd={tmp_path / 'sub'} " in got[1]


def test_its_exit_code_and_a_signal_that_ends_it_come_back_as_from_popen(tmp_path, monkeypatch, fast):
    env = {"PATH": "/usr/bin:/bin"}
    for script, code in (("exit 7", 7), ("kill -TERM $$", -15), ("echo out; echo err >&2", 0)):
        prepared = Prepared(["/bin/sh", "-c", script], tmp_path, env, None, Masker())
        assert run(prepared, park=True) == plain(prepared, monkeypatch)
        assert run(prepared, park=True)[0] == code
    assert len(fast) == 6


def test_a_workdir_gone_before_the_spawn_never_runs_the_job_and_the_run_says_why(tmp_path, fast):
    gone = tmp_path / "gone"
    gone.mkdir()
    ran = tmp_path / "ran"
    prepared = Prepared(["/bin/sh", "-c", f"touch {ran}"], gone, {"PATH": "/usr/bin:/bin"}, None, Masker())
    gone.rmdir()  # after prepare checked it, before the spawn
    log = io.BytesIO()
    proc = spawn(prepared, log, output_limit=1_000_000, gate=True)
    assert proc.release()
    assert proc.wait(10) == CD_EXIT
    assert not ran.exists()
    assert log.getvalue().startswith(CD_MARK + str(gone).encode() + b"]")
    assert fast
    attempt = _judge(make_ctx(tmp_path, make_spec(shell="true")), proc, CD_EXIT, False, None)
    assert attempt.status is Status.failed and attempt.exit_code is None
    assert attempt.message == "could not start the job: its workdir could not be entered"


def test_a_daemon_never_hands_a_descriptor_it_inherited_to_its_jobs(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    done = tmp_path / "done"
    # A lone `ls` of the shell's own descriptors (not the last command, so the shell
    # forks it and only waits): 0, 1 and 2, whichever way the daemon started it.
    write_job(tmp_path, "fds", f'schedule: "* * * * * *"\nshell: ls /proc/$$/fd; touch "{done}"\n')
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        with Daemon(tmp_path, pass_fds=(w,)) as d:
            wait_for(done.exists, 20, what="a run of the job")
            d.stop()
    finally:
        os.close(r)
        os.close(w)
    res = cronfile("-C", str(tmp_path), "logs", "fds")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "1", "2"]
