"""history and logs on the command line: -n, run-id suffixes, following a run in flight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from cli_helpers import ROOT, cronfile
from engine_helpers import wait_for


def test_history_n_and_logs_by_run_id_suffix(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "j.yaml").write_text('schedule: "@daily"\nshell: echo "run $CRONFILE_RUN_ID"\n')
    for _ in range(3):
        assert cronfile("run", "j", "-q", cwd=tmp_path).returncode == 0
    runs = json.loads(cronfile("history", "j", "--json", cwd=tmp_path).stdout)
    assert len(runs) == 3 and all(r["trigger"] == "manual" for r in runs)
    last2 = json.loads(cronfile("history", "j", "-n", "2", "--json", cwd=tmp_path).stdout)
    assert [r["run_id"] for r in last2] == [r["run_id"] for r in runs[1:]]
    first = runs[0]["run_id"]
    res = cronfile("logs", "j", first[-4:], cwd=tmp_path)
    assert res.returncode == 0 and res.stdout == f"run {first}\n"
    res = cronfile("logs", "j", "nope", cwd=tmp_path)
    assert res.returncode == 2 and "has no run 'nope'" in res.stderr
    res = cronfile("logs", "ghost", cwd=tmp_path)
    assert res.returncode == 2 and "no job named 'ghost'" in res.stderr
    res = cronfile("history", "../../etc", cwd=tmp_path)
    assert res.returncode == 2 and "is not a job name" in res.stderr
    res = cronfile("history", "j", "-n", "0", cwd=tmp_path)
    assert res.returncode == 2 and "at least 1" in res.stderr
    (tmp_path / "jobs.d" / "new.yaml").write_text('schedule: "@daily"\nshell: "true"\n')
    res = cronfile("logs", "new", cwd=tmp_path)
    assert res.returncode == 2 and "has not run yet" in res.stderr


def test_logs_of_a_run_that_never_started_say_why(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "v.yaml").write_text('schedule: "@daily"\nshell: "true"\nenv: {X: "${CRONFILE_TEST_UNSET_VAR}"}\n')
    assert cronfile("run", "v", cwd=tmp_path).returncode == 1
    res = cronfile("logs", "v", cwd=tmp_path)
    assert res.returncode == 0
    assert "produced no output: failed:" in res.stderr and "CRONFILE_TEST_UNSET_VAR" in res.stderr


def test_logs_follow_prints_a_run_in_flight_until_it_ends(tmp_path):
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "slow.yaml").write_text(
        'schedule: "@daily"\nshell: |\n  echo first\n  while [ ! -f go ]; do sleep 0.02; done\n  echo second\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    runner = subprocess.Popen([sys.executable, "-m", "cronfile", "run", "slow", "-q"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list((tmp_path / ".cronfile" / "runs" / "slow").glob("*.log")), what="the run's log")
        wait_for(lambda: b"first" in next((tmp_path / ".cronfile" / "runs" / "slow").glob("*.log")).read_bytes(),
                 what="first line")
        follower = subprocess.Popen([sys.executable, "-m", "cronfile", "logs", "slow", "-f"], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        wait_for(lambda: lines == ["first\n"], what="logs -f to print the first line of the run in flight")
        assert follower.poll() is None  # still following: the run has not ended
        (tmp_path / "go").touch()
        assert follower.wait(30) == 0, follower.stderr.read()
        reader.join(5)
        assert lines == ["first\n", "second\n"]
    finally:
        runner.wait(30)


def test_sigterm_stops_a_manual_run_and_records_it_interrupted(tmp_path):
    import signal

    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "long.yaml").write_text('schedule: "@daily"\nshell: "echo started; sleep 60"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFILE_") or k == "CRONFILE_CACHE_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "cronfile", "run", "long"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 1
    (run,) = json.loads(cronfile("history", "long", "--json", cwd=tmp_path).stdout)
    assert run["status"] == "interrupted"
