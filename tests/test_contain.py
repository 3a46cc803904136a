"""Containment: no process a run starts outlives the run (executors/contain.py).

Each case runs under every mechanism this host has: ``subreaper`` always (Linux), and
``cgroup2`` where the engine can make a cgroup v2 (as root here; detected, and the test
says why when it cannot). The jobs try what an unlucky or a clever job does: a
grandchild that calls setsid, a double fork with the environment cleared, a background
process left after the job ended, a process that ignores SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, history, write_job
from helpers_proc import T0, alive, make_ctx, make_spec, wait_for, write_fake_agent

from cronfile.executors import contain, procfs
from cronfile.runner import execute
from cronfile.spec import Status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux containment")


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


@pytest.fixture(params=["subreaper", "cgroup2"])
def mechanism(request, monkeypatch):
    try:
        c = contain._detect({contain.ENV: request.param})
    except contain.ContainmentError as e:
        if os.environ.get("CRONFILE_TEST_REQUIRE_CGROUP") == "1":
            raise
        pytest.skip(str(e))
    monkeypatch.setattr(contain, "_current", c)
    return c


def pid_file_appears(path: Path, n: int = 1) -> list[int]:
    def read():
        try:
            pids = [int(x) for x in path.read_text().split()]
        except (OSError, ValueError):
            return None
        return pids if len(pids) >= n else None

    return wait_for(read, what=f"{n} pid(s) in {path}")


def test_a_grandchild_that_calls_setsid_is_stopped_at_the_timeout(tmp_path, mechanism):
    pids = tmp_path / "pids"
    # The case: setsid leaves the process group; the run times out.
    spec = make_spec(
        shell=f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' </dev/null >/dev/null 2>&1 & sleep 100",
        timeout=1.5,
    )
    outcome = execute(make_ctx(tmp_path, spec), now=_now)
    assert outcome.status is Status.timeout
    (escaped,) = pid_file_appears(pids)
    assert not alive(escaped), f"{mechanism.mechanism}: the setsid grandchild outlived its run"


def _daemonizing(pids: Path) -> str:
    """A job that daemonizes a `sleep 300` (fork, setsid, fork again, the parent exits at
    once, CRONFILE_RUN_ID gone), writing its pid to ``pids``, then says "started"."""
    return (
        f"env -i /bin/sh -c '(setsid /bin/sh -c \"echo \\$\\$ >> {pids}; exec sleep 300\" "
        "</dev/null >/dev/null 2>&1 &) ; exit 0'; "
        f"while [ ! -s {pids} ]; do sleep 0.01; done; echo started"
    )


def test_a_double_fork_with_the_environment_cleared_is_stopped_when_the_run_ends(tmp_path, mechanism):
    pids = tmp_path / "pids"
    # Daemonize: fork, setsid, fork again, the parent exits at once, CRONFILE_RUN_ID gone.
    spec = make_spec(shell=_daemonizing(pids))
    ctx = make_ctx(tmp_path, spec)
    outcome = execute(ctx, now=_now)
    assert outcome.status is Status.success
    (daemon,) = pid_file_appears(pids)
    assert not alive(daemon)
    log = ctx.log_path.read_text()
    assert "processes the run left running were stopped" in log


def test_a_background_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path, mechanism, monkeypatch):
    from cronfile import runner

    monkeypatch.setattr(runner, "STOP_GRACE", 0.5)
    pids = tmp_path / "pids"
    spec = make_spec(
        shell=f"sh -c 'trap \"\" TERM; echo $$ >> {pids}; while :; do sleep 0.05; done' >/dev/null 2>&1 & "
        f"while [ ! -s {pids} ]; do sleep 0.01; done",
    )
    ctx = make_ctx(tmp_path, spec)
    outcome = execute(ctx, now=_now)
    assert outcome.status is Status.success
    (stubborn,) = pid_file_appears(pids)
    assert not alive(stubborn)
    log = ctx.log_path.read_text()
    assert "were stopped (SIGKILL)" in log


def test_what_a_context_script_leaves_behind_does_not_outlive_it(tmp_path, mechanism):
    write_fake_agent(tmp_path)
    pids = tmp_path / "pids"
    spec = make_spec(
        prompt="Summarize.",
        env={"FAKE_RECORD": str(tmp_path / "record.json")},
        context={"script": f"setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! >> {pids}; echo context"},
    )
    outcome = execute(make_ctx(tmp_path, spec), now=_now)
    assert outcome.status is Status.success, outcome.message
    (bg,) = pid_file_appears(pids)
    assert not alive(bg)


def test_a_cancelled_run_leaves_nothing_behind(tmp_path, mechanism):
    pids = tmp_path / "pids"
    spec = make_spec(shell=f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' </dev/null >/dev/null 2>&1 & sleep 300")
    cancel = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.update(o=execute(make_ctx(tmp_path, spec), now=_now, cancel=cancel)))
    t.start()
    (escaped,) = pid_file_appears(pids)
    cancel.set()
    t.join(30)
    assert result["o"].status is Status.cancelled
    assert not alive(escaped)


def test_one_deadline_covers_the_context_script_and_the_agent(tmp_path, mechanism):
    # The case: timeout 3 s, a 2.5 s script and a 2.5 s agent was `success in 5.0s`.
    agent = write_fake_agent(tmp_path)
    agent.write_text(agent.read_text().replace("import json, os, sys", "import json, os, sys, time\ntime.sleep(2.5)"))
    spec = make_spec(
        prompt="Summarize.",
        env={"FAKE_RECORD": str(tmp_path / "record.json")},
        context={"script": "sleep 2.5; echo context"},
        timeout=3.0,
    )
    t0 = time.monotonic()
    outcome = execute(make_ctx(tmp_path, spec), now=_now)
    took = time.monotonic() - t0
    assert outcome.status is Status.timeout
    assert took < 4.9  # ended at the one deadline, not after both parts ran in full


def test_a_slow_context_script_alone_times_the_run_out(tmp_path, mechanism):
    write_fake_agent(tmp_path)
    spec = make_spec(
        prompt="Summarize.",
        env={"FAKE_RECORD": str(tmp_path / "record.json")},
        context={"script": "sleep 30"},
        timeout=1.0,
    )
    outcome = execute(make_ctx(tmp_path, spec), now=_now)
    assert outcome.status is Status.timeout and "context script" in outcome.message
    assert not (tmp_path / "record.json").exists()


def test_the_mechanism_is_detected_and_never_pretended(tmp_path):
    c = contain._detect({})
    assert c.mechanism in contain.MECHANISMS
    if c.mechanism == "cgroup2":
        # A tmpfs at /sys/fs/cgroup (cgroup v1, hybrid) is not taken for cgroup v2.
        assert c.cgroup_base is not None
        assert os.statvfs(c.cgroup_base) and (c.cgroup_base / "cgroup.procs").exists()
    with pytest.raises(contain.ContainmentError):
        contain._detect({contain.ENV: "jail"})


def test_doctor_says_which_mechanism_is_in_force(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    write_job(tmp_path, "j", 'schedule: "@daily"\nshell: "true"\n')
    env = {"CRONFILE_CONTAINMENT": "subreaper"}
    r = cronfile("-C", str(tmp_path), "doctor", env=env)
    assert "containment" in r.stdout and "subreaper" in r.stdout, r.stdout + r.stderr


# -- the daemon: shutdown, crash recovery, replace ---------------------------------------


@pytest.fixture(params=["subreaper", "cgroup2"])
def daemon_env(request):
    try:
        contain._detect({contain.ENV: request.param})
    except contain.ContainmentError as e:
        pytest.skip(str(e))
    return {contain.ENV: request.param}


def test_a_daemons_shutdown_stops_what_its_runs_started(tmp_path, daemon_env):
    pids = tmp_path / "pids"
    write_job(tmp_path, "bg", f'schedule: "@reboot"\nshell: "setsid sh -c \'echo $$ >> {pids}; exec sleep 300\' </dev/null >/dev/null 2>&1 & sleep 300"\n')
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    with Daemon(tmp_path, env=daemon_env) as d:
        (escaped,) = pid_file_appears(pids)
        assert d.stop() == 0
    assert not alive(escaped)
    (run,) = history(tmp_path, "bg")
    assert run["status"] == "interrupted"


def test_a_crashed_daemons_runs_are_stopped_by_the_next_one(tmp_path, daemon_env):
    pids = tmp_path / "pids"
    # The escaped process has no CRONFILE_RUN_ID and no process group of the run's.
    write_job(tmp_path, "bg", f'schedule: "@reboot"\nshell: "env -i setsid sh -c \'echo $$ >> {pids}; exec sleep 300\' </dev/null >/dev/null 2>&1 & sleep 300"\n')
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    with Daemon(tmp_path, env=daemon_env) as d:
        (escaped,) = pid_file_appears(pids)
        d.kill9()
    if daemon_env[contain.ENV] == "subreaper":
        # Re-parented to init when its subreaper died: nothing can tie it to the run any
        # more (README: the limits of the subreaper fallback). Clean up ourselves.
        os.kill(escaped, signal.SIGKILL)
        return
    assert alive(escaped)
    with Daemon(tmp_path, env=daemon_env) as d:
        d.wait_log(r"interrupted \(its engine \w+ is gone")
        wait_for(lambda: not alive(escaped), timeout=15, what="the crashed run's process to stop")
        assert d.stop() == 0
    # And its cgroup is gone with it.
    base = contain._detect(daemon_env).cgroup_base
    crashed = [r for r in history(tmp_path, "bg") if r["status"] == "interrupted"]
    # (Named cronfile-run.<engine id>.<run id>: any engine's.)
    assert crashed and not [p for r in crashed for p in base.glob(f"cronfile-run.*{r['run_id']}")]


def test_replace_starts_the_new_run_only_after_the_old_runs_processes_are_gone(tmp_path):
    marks = tmp_path / "marks"
    # Traps TERM and takes 1 s to stop: four instances ran at once before.
    write_job(
        tmp_path,
        "rep",
        'schedule: "* * * * * *"\nconcurrency: replace\n'
        f"shell: \"trap 'sleep 1; echo end $$ >> {marks}; exit 0' TERM; echo start $$ >> {marks}; "
        "while :; do sleep 0.05; done\"\n",
    )
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\n")
    with Daemon(tmp_path) as d:
        d.wait_log(r"rep run \w+ waited [\d.]+s for run \w+ it replaces to stop", count=3, timeout=30)
        assert d.stop() == 0
    events = [ln.split() for ln in marks.read_text().splitlines()]
    running: set[str] = set()
    most = 0
    for what, pid in events:
        if what == "start":
            running.add(pid)
        else:
            running.discard(pid)
        most = max(most, len(running))
    assert most == 1, events
    runs = history(tmp_path, "rep")
    replaced = [r for r in runs if r.get("replaced_by")]
    assert replaced and all("replaced by run" in r["message"] for r in replaced)
    assert any(r.get("replaced") for r in runs)


# -- the recursion guard -------------------------------------------------------------------


def test_a_job_that_clears_its_marker_still_cannot_apply(tmp_path, daemon_env):
    from engine_helpers import ROOT

    out = tmp_path / "out"
    py = f"PYTHONPATH={ROOT} {sys.executable} -m cronfile -C {tmp_path}"
    # The case, then the same from a daemonized, environment-cleared orphan.
    write_job(
        tmp_path,
        "rec",
        'schedule: "@reboot"\n'
        f"shell: \"CRONFILE_RUN_ID= {py} apply > {out}.1 2>&1; echo $? >> {out}.1; "
        f"(setsid env -i {py} apply > {out}.2 2>&1; echo $? >> {out}.2) & wait\"\n",
    )
    with Daemon(tmp_path, env=daemon_env) as d:
        d.wait_log(r"rec run \w+ ")
        assert d.stop() == 0
    for n in (1, 2):
        text = Path(f"{out}.{n}").read_text()
        assert "refusing to apply from inside a cronfile run" in text and text.split()[-1] == "2", text


def test_cronfile_outside_any_run_is_not_refused(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    write_job(tmp_path, "j", 'schedule: "@daily"\nshell: "true"\n')
    r = cronfile("-C", str(tmp_path), "apply")
    assert r.returncode == 0, r.stderr
    assert contain.inside_run() is None


def test_a_run_replaced_while_it_waits_for_a_slot_never_starts(tmp_path):
    marks = tmp_path / "marks"
    (tmp_path / "cronfile.yaml").write_text("max_concurrent: 1\nshutdown_grace: 1s\n")
    write_job(tmp_path, "hog", 'schedule: "@reboot"\nshell: "sleep 3"\n')
    write_job(tmp_path, "rep", f'schedule: "* * * * * *"\nconcurrency: replace\nshell: "echo $CRONFILE_RUN_ID >> {marks}"\n')
    with Daemon(tmp_path) as d:
        d.wait_log(r"rep run \w+ success", timeout=20)
        assert d.stop() == 0
    runs = history(tmp_path, "rep")
    replaced = [r for r in runs if r.get("replaced_by")]
    assert replaced, runs
    for r in replaced:
        assert r["status"] == "cancelled" and r["attempts"] == 0 and "before it started" in r["message"], r
    ran = set(marks.read_text().split())
    assert not ran & {r["run_id"] for r in replaced}


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_empty_run_cgroups_left_behind_are_swept_and_a_swept_box_is_made_again(tmp_path, mechanism):
    assert mechanism.mechanism == "cgroup2"
    base = mechanism.cgroup_base
    left = base / "cronfile-run.left-by-a-dead-engine"
    left.mkdir()
    box = mechanism.box("swept-then-used")
    # Both gone after the sweep. Not "it swept 2": another engine on this machine (a
    # daemon of the other pytest-xdist worker) runs the same sweep at its start and may
    # take them first.
    contain.sweep_empty()
    assert not left.exists() and not box.path.exists()
    pids = tmp_path / "pids"
    spec = make_spec(shell=f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' </dev/null >/dev/null 2>&1 & sleep 100", timeout=1.0)
    from cronfile.executors.process import spawn

    with open(tmp_path / "log", "wb") as log:
        from cronfile.executors.base import Prepared

        proc = spawn(Prepared(["/bin/sh", "-c", spec.shell], tmp_path, dict(os.environ), None), log, output_limit=1000, box=box)
        (escaped,) = pid_file_appears(pids)
        assert escaped in box.pids()  # in the cgroup made again at the spawn
        proc.stop(1.0)
    box.close()
    assert not alive(escaped) and not box.path.exists()


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_a_box_swept_between_its_mover_and_the_spawn_still_holds_the_run(tmp_path, mechanism):
    """Another engine's start sweeps empty run cgroups; one can go between the parent
    making it (``mover``) and the child writing itself into it. Seen under load as
    "could not start it in the run's cgroup (Exception occurred in preexec_fn)"."""
    import subprocess

    box = mechanism.box("swept-at-the-fork")
    move = box.mover()
    assert move is not None
    with suppress(FileNotFoundError):  # (another worker's daemon may sweep it first)
        box.path.rmdir()  # the sweep, at the worst moment
    child = subprocess.Popen(["sleep", "300"], preexec_fn=move)
    try:
        assert child.pid in box.pids()
    finally:
        child.kill()
        child.wait()
    box.close()
    assert not box.path.exists()


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_two_engines_runs_of_one_id_have_cgroups_of_their_own(tmp_path, mechanism):
    """Run ids are unique within one state, not across the daemons of one host: two
    daemons' runs of the same second can draw the same 4 hex digits. Named by the run id
    alone, both runs shared one cgroup, and the first to end stopped the other's
    processes (seen as a context script "failed (exit code -15)" when two pytest workers
    ran runs with the same id). The claiming engine's id is in the name."""
    import subprocess

    rid = "20260302T100000-0a7e"
    a, b = mechanism.box(rid, "engine-a"), mechanism.box(rid, "engine-b")
    assert a.path != b.path and a.path.name == f"cronfile-run.engine-a.{rid}"
    children = []
    try:
        for box in (a, b):
            child = subprocess.Popen(["sleep", "300"], preexec_fn=box.mover())
            box.started(child.pid)
            children.append(child)
        assert a.pids() == [children[0].pid] and b.pids() == [children[1].pid]
        b.stop(1.0)  # engine b's run ends: its own process only
        b.close()
        children[1].wait(10)
        assert children[0].poll() is None and a.pids() == [children[0].pid]
        # A recovering engine finds the dead engine's run by the engine id in its claim,
        # and stops nothing of another engine's run of the same id.
        assert contain.recover_run(rid, 1.0, engine="engine-b") is False
        assert children[0].poll() is None
        assert contain.recover_run(rid, 1.0, engine="engine-a") is True
        children[0].wait(10)
        assert not a.path.exists()
    finally:
        for child in children:
            child.kill()
            child.wait()
        a.close()


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_a_run_cgroup_from_before_engine_ids_in_the_name_is_still_recovered(tmp_path, mechanism):
    import subprocess

    rid = "20260302T100000-0b0e"
    old = mechanism.box(rid)  # cronfile-run.<run id>, as an older cronfile named it
    assert old.path.name == f"cronfile-run.{rid}"
    child = subprocess.Popen(["sleep", "300"], preexec_fn=old.mover())
    try:
        old.started(child.pid)
        assert contain.terminate_run_box(rid, "engine-old") is True  # SIGTERM to it
        child.wait(10)
        assert contain.recover_run(rid, 1.0, engine="engine-old") is False  # nothing left
        assert not old.path.exists()
    finally:
        child.kill()
        child.wait()
        old.close()


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_the_sweep_leaves_the_probe_cgroup_of_a_live_process(tmp_path, mechanism):
    """Every engine's start sweeps; the cgroup another process is testing cgroup2 with
    (_cgroup_base: mkdir, then move a child in) must not go between the two, or that
    process falls back to subreaper (or fails, when cgroup2 is required)."""
    import subprocess

    base = mechanism.cgroup_base
    gone = subprocess.Popen(["true"])
    gone.wait()
    live_probe = base / f"cronfile-probe.{os.getpid()}-abc123"
    dead_probe = base / f"cronfile-probe.{gone.pid}-abc123"
    for p in (live_probe, dead_probe):
        p.mkdir(exist_ok=True)
    try:
        contain.sweep_empty()
        assert live_probe.exists()
        assert not dead_probe.exists() or contain._probe_in_use(dead_probe.name)  # (its pid reused)
    finally:
        for p in (live_probe, dead_probe):
            with suppress(FileNotFoundError):
                p.rmdir()


def test_a_cgroup_made_ahead_is_empty_holds_the_run_and_is_gone_after_it(tmp_path, monkeypatch):
    # A daemon makes the cgroups of an instant's runs ahead of their threads, one after
    # another (contain.make_ahead, from Engine.dispatch). Such a cgroup is the run's own:
    # empty when its run starts, it still holds what the run leaves behind (stopped at
    # the run's end, a double fork with its environment cleared included), then removed.
    try:
        c = contain._detect({contain.ENV: "cgroup2"})
    except contain.ContainmentError as e:
        if os.environ.get("CRONFILE_TEST_REQUIRE_CGROUP") == "1":
            raise
        pytest.skip(str(e))
    monkeypatch.setattr(contain, "_current", c)
    pids = tmp_path / "pids"
    spec = make_spec(shell=_daemonizing(pids))
    ctx = make_ctx(tmp_path, spec, run_id="20260302T100100-a1a1", engine="e-ahead")
    cg = c.cgroup_base / contain._box_name(ctx.run_id, ctx.engine)
    contain.make_ahead([(ctx.run_id, ctx.engine)])
    try:
        assert cg.is_dir()
        assert (cg / "cgroup.procs").read_text() == ""
        outcome = execute(ctx, now=_now)
        assert outcome.status is Status.success
        (daemon,) = pid_file_appears(pids)
        assert not alive(daemon)
        assert "processes the run left running were stopped" in ctx.log_path.read_text()
        assert not cg.exists()
        # Used once: a box made again for the same run makes its cgroup again.
        box = c.box(ctx.run_id, ctx.engine)
        assert cg.is_dir()
        box.close()
        assert not cg.exists()
    finally:
        with suppress(OSError):
            cg.rmdir()


@pytest.mark.parametrize("mechanism", ["cgroup2"], indirect=True)  # run cgroups only
def test_an_attempt_that_leaves_nothing_removes_its_cgroup_and_the_next_attempt_has_one_again(tmp_path, mechanism):
    # The end of an attempt with nothing left: the empty cgroup is removed at once,
    # instead of read first (issue 17). A retry's process is made a cgroup again, and
    # what that attempt leaves running is still stopped at its end.
    pids, seen = tmp_path / "pids", tmp_path / "cgroups"
    spec = make_spec(
        shell=(
            f"grep '^0::' /proc/self/cgroup >> {seen}; "
            f"if [ ! -e {tmp_path}/second ]; then touch {tmp_path}/second; exit 3; fi; "
            + _daemonizing(pids)
        ),
        retries=1,
        retry_backoff=0.2,
    )
    ctx = make_ctx(tmp_path, spec)
    box_path = mechanism.cgroup_base / contain._box_name(ctx.run_id, ctx.engine)
    removed_at: list[bool] = []
    real_stop = contain._CgroupBox.stop

    def stop(self, grace):
        left = real_stop(self, grace)
        removed_at.append(not box_path.exists())
        return left

    real_at_once = contain._CgroupBox.stop_at_once

    def stop_at_once(self):
        # (What the runner tries first: stop() only if something was left.)
        done = real_at_once(self)
        if done:
            removed_at.append(not box_path.exists())
        return done

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(contain._CgroupBox, "stop", stop)
        mp.setattr(contain._CgroupBox, "stop_at_once", stop_at_once)
        outcome = execute(ctx, now=_now)
    assert outcome.status is Status.success and outcome.attempts == 2
    # Attempt 1 left nothing: its cgroup went at its end. Attempt 2 left a daemon: the
    # cgroup stayed until it was stopped, then the run's close removed it.
    assert removed_at == [True, False]
    lines = seen.read_text().split()
    assert len(lines) == 2 and all(line.endswith("/" + box_path.name) for line in lines)
    (daemon,) = pid_file_appears(pids)
    assert not alive(daemon)
    assert "processes the run left running were stopped" in ctx.log_path.read_text()
    assert not box_path.exists()


def test_make_ahead_makes_nothing_where_runs_get_no_cgroup(tmp_path, monkeypatch):
    c = contain._detect({contain.ENV: "subreaper"})
    monkeypatch.setattr(contain, "_current", c)
    base = contain._detect({}).cgroup_base
    contain.make_ahead([("20260302T100100-b2b2", "e-none")])
    if base is not None:
        assert not (base / contain._box_name("20260302T100100-b2b2", "e-none")).exists()


def test_a_cgroup_made_ahead_for_a_run_that_never_starts_is_removed(tmp_path):
    # max_concurrent: 1 and three runs an instant (concurrency: allow): all but the first
    # wait for a slot, their cgroups made ahead (Engine.dispatch, for an instant claimed
    # ahead); the daemon stops before a slot frees. Their cgroups go with them
    # (contain.drop_ahead), not left for the next start's sweep. (An instant claimed at
    # or after its time -- a loop late under load -- makes none ahead: then the daemon is
    # started again, at most three times, until one did.)
    try:
        base = contain._detect({contain.ENV: "cgroup2"}).cgroup_base
    except contain.ContainmentError as e:
        if os.environ.get("CRONFILE_TEST_REQUIRE_CGROUP") == "1":
            raise
        pytest.skip(str(e))
    (tmp_path / "cronfile.yaml").write_text("shutdown_grace: 1s\nmax_concurrent: 1\n")
    for name in ("a", "b", "c"):
        write_job(tmp_path, name, 'schedule: "* * * * * *"\nshell: "sleep 300"\nconcurrency: allow\n')
    made_ahead = False
    for _ in range(3):
        with Daemon(tmp_path, env={contain.ENV: "cgroup2"}) as d:
            engine = re.search(r"engine (\w+);", d.text()).group(1)
            d.wait_log(r"run \w+ started")
            with suppress(AssertionError):
                made_ahead = bool(wait_for(lambda e=engine: len(list(base.glob(f"cronfile-run.{e}*"))) >= 3, timeout=5, what="three cgroups: one run's, two made ahead"))
            assert d.stop() == 0
        assert not list(base.glob(f"cronfile-run.{engine}*"))
        if made_ahead:
            break
    assert made_ahead, "no instant was claimed ahead in three daemons' starts"
    statuses = {r["status"] for n in ("a", "b", "c") for r in history(tmp_path, n)}
    assert statuses == {"interrupted"}


def test_a_runs_own_process_that_exits_before_its_spawn_returns_is_no_orphan_of_another_run():
    # The subreaper's walk takes a child of the engine that no run spawned for an adopted
    # orphan. A run's own process that exited before its Popen returned (so before the
    # box knew it) was such a child: reaped by the walk (its exit status lost: the run
    # recorded `success`, no exit code), and, its environment unreadable once exited,
    # given to every run in flight, the first of which to end would stop it. Here the
    # spawn is held open on purpose, with another run in flight.
    other = contain._TrackedBox("20260302T100100-c3c3")
    mine = contain._TrackedBox("20260302T100100-c4c4")
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        other.started(sleeper.pid)
        mine.spawning()
        quick = subprocess.Popen(["/bin/sh", "-c", "exit 7"], start_new_session=True, env={})
        wait_for(lambda: (st := procfs.stat(quick.pid)) is not None and st.state == b"Z", timeout=10, what="the quick process to exit")
        contain._tracker.walk()
        contain._tracker.reap_all()
        assert quick.pid not in other.members
        mine.started(quick.pid)
        assert quick.wait(10) == 7  # its exit status is still its Popen's
    finally:
        sleeper.kill()
        sleeper.wait()
        for box in (other, mine):
            box.close()


class _UnwritableCgroupBox(contain.Box):
    """A box whose cgroup a shell cannot write itself into (nor make): the job must
    never run."""

    holds = True

    def moved_by_child(self):
        return "/proc/cronfile-no-such-cgroup"


def test_a_shell_that_cannot_put_itself_in_its_cgroup_never_runs_the_job(tmp_path, monkeypatch):
    # Under cgroup2 a /bin/sh job moves itself into its run's cgroup before the job
    # (executors/process.py, _MOVE); when it cannot, it says so and exits, and the run
    # fails with why.
    from cronfile import runner

    class _Containment:
        mechanism = "cgroup2"

        def box(self, run_id, engine=""):
            return _UnwritableCgroupBox(run_id)

    monkeypatch.setattr(runner, "containment", lambda: _Containment())
    ran = tmp_path / "ran"
    spec = make_spec(shell=f"touch {ran}")
    ctx = make_ctx(tmp_path, spec)
    outcome = execute(ctx, now=lambda: T0)
    assert outcome.status is Status.failed and outcome.exit_code is None
    assert outcome.message == "could not start the job: its shell could not put itself in the run's cgroup"
    assert not ran.exists()
    assert ctx.log_path.read_bytes().startswith(b"[cronfile: could not put the run in its cgroup /proc/cronfile-no-such-cgroup]")
