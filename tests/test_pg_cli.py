"""The command line against a PostgreSQL state (a real server, tests/pg.py): choosing the
store, every command from two "hosts" (two checkouts of one repo), the revision check of
apply, migrating to the database and back."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from cli_helpers import cronfile
from engine_helpers import Daemon

from cronfile.stores.postgres import PostgresStore

EVERY_SECOND = "name: tick\nschedule: every 1s\nshell: echo ran on $CRONFILE_JOB\n"


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(root: Path, jobs: dict[str, str]) -> Path:
    (root / "jobs.d").mkdir(parents=True)
    for name, text in jobs.items():
        (root / "jobs.d" / f"{name}.yaml").write_text(text)
    git(root, "init", "-q")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "jobs")
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", message)


def test_flag_beats_environment_beats_file_and_var_references_expand(pg_url: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a": "name: a\nschedule: 0 9 * * *\nshell: 'true'\n"})
    host, rest = pg_url.split("@", 1)
    (repo / "cronfile.yaml").write_text("state_url: postgresql://nobody@127.0.0.1:1/none\n")
    # The file's URL is unreachable: the environment's wins over it, with ${VAR} expanded.
    env = {"CRONFILE_STATE_URL": "postgresql://${PG_USER}@" + rest, "PG_USER": "postgres"}
    r = cronfile("apply", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert "applied to postgresql://postgres@" in r.stderr + r.stdout
    assert not (repo / ".cronfile" / "state.json").exists()
    # The flag wins over both.
    r = cronfile("--state-url", "postgresql://nobody@127.0.0.1:1/none", "status", cwd=repo, env=env)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "cannot reach the state database postgresql://nobody@127.0.0.1:1/none" in r.stderr
    # The file alone: unreachable, exit 2, and no silent fall-back to a state dir.
    r = cronfile("status", cwd=repo)
    assert r.returncode == 2 and "cannot reach the state database" in r.stderr
    assert not (repo / ".cronfile" / "state.json").exists()


def test_a_bad_state_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a": "name: a\nschedule: 0 9 * * *\nshell: 'true'\n"})
    r = cronfile("status", cwd=repo, env={"CRONFILE_STATE_URL": "postgresql://u:${NOPE_PASSWORD}@h/db"})
    assert r.returncode == 2
    assert r.stderr.strip() == "cronfile: error: CRONFILE_STATE_URL: state_url: ${NOPE_PASSWORD} is not set in the environment"
    r = cronfile("apply", cwd=repo, env={"CRONFILE_STATE_URL": "mysql://h/db"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "mysql:// is not a store cronfile knows" in r.stderr
    assert not (repo / ".cronfile").exists()
    (repo / "cronfile.yaml").write_text("state_url: redis://h\n")
    r = cronfile("validate", cwd=repo)
    assert r.returncode == 2 and "state_url" in r.stdout + r.stderr


def test_every_command_from_two_hosts_sees_one_state(pg_url: str, tmp_path: Path) -> None:
    a = make_repo(tmp_path / "host-a", {"tick": EVERY_SECOND, "manual": "name: manual\nschedule: 0 0 1 1 *\nshell: echo by hand\n"})
    b = tmp_path / "host-b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    env = {"CRONFILE_STATE_URL": pg_url}
    r = cronfile("diff", cwd=a, env=env)
    assert r.returncode == 1 and "create tick" in r.stdout
    assert cronfile("apply", cwd=a, env=env).returncode == 0
    r = cronfile("diff", cwd=b, env=env)  # host b's copy is what was applied
    assert r.returncode == 0, r.stdout + r.stderr
    r = cronfile("run", "manual", cwd=b, env=env)
    assert r.returncode == 0, r.stderr
    with Daemon(a, env=env) as d:
        d.wait_log(r"tick run \w+ success", count=2, timeout=30)
        r = cronfile("status", cwd=b, env=env)
        assert "daemons:" in r.stdout and "held" in r.stdout
        rows = json.loads(cronfile("status", "--json", cwd=b, env=env).stdout)
        assert {row["name"] for row in rows} == {"tick", "manual"}
    hist = json.loads(cronfile("history", "tick", "--json", cwd=b, env=env).stdout)
    ran = [h for h in hist if h.get("status") == "success"]
    assert len(ran) >= 2 and all(h.get("host") for h in ran)
    manual = json.loads(cronfile("history", "manual", "--json", cwd=a, env=env).stdout)
    assert [h["status"] for h in manual] == ["success"]
    r = cronfile("logs", "manual", cwd=a, env=env)  # a run of host b, read on host a
    assert r.returncode == 0 and r.stdout.strip() == "by hand"
    r = cronfile("tick", cwd=b, env=env)
    assert r.returncode == 0, r.stderr
    assert not (a / ".cronfile" / "state.json").exists() and not (b / ".cronfile" / "state.json").exists()


def test_of_two_concurrent_applies_from_diverged_checkouts_one_wins_and_the_other_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    a = make_repo(tmp_path / "host-a", {"one": "name: one\nschedule: 0 9 * * *\nshell: 'true'\n"})
    b = tmp_path / "host-b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    (a / "jobs.d" / "two.yaml").write_text("name: two\nschedule: 0 10 * * *\nshell: 'true'\n")
    commit_all(a, "two")
    (b / "jobs.d" / "three.yaml").write_text("name: three\nschedule: 0 11 * * *\nshell: 'true'\n")
    commit_all(b, "three")
    env = {"CRONFILE_STATE_URL": pg_url}
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    threads = [threading.Thread(target=lambda n=n, root=root: results.__setitem__(n, cronfile("apply", cwd=root, env=env))) for n, root in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted((results[n].returncode, n) for n in "ab")
    assert [c for c, _ in codes] == [0, 2], {n: r.stderr for n, r in results.items()}
    winner, loser = codes[0][1], codes[1][1]
    assert "does not contain" in results[loser].stderr and results[loser].stderr.count("\n") == 1
    state = PostgresStore(pg_url, tmp_path / "x").read()
    root = a if winner == "a" else b
    assert sorted(state.jobs) == sorted(["one", "two"] if winner == "a" else ["one", "three"])
    assert state.revision == git(root, "rev-parse", "HEAD")
    audit = PostgresStore(pg_url, tmp_path / "z").read_audit()
    assert [x["revision"] for x in audit] == [state.revision]  # the loser wrote no audit line


def test_an_apply_from_a_checkout_behind_the_applied_revision_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    a = make_repo(tmp_path / "host-a", {"one": "name: one\nschedule: 0 9 * * *\nshell: 'true'\n"})
    b = tmp_path / "host-b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    (a / "jobs.d" / "two.yaml").write_text("name: two\nschedule: 0 10 * * *\nshell: 'true'\n")
    commit_all(a, "two")
    env = {"CRONFILE_STATE_URL": pg_url}
    assert cronfile("apply", cwd=a, env=env).returncode == 0
    before = PostgresStore(pg_url, tmp_path / "x").read()
    r = cronfile("apply", cwd=b, env=env)  # b is behind: it would remove `two`
    assert r.returncode == 2
    assert "does not contain" in r.stderr and r.stderr.count("\n") == 1
    after = PostgresStore(pg_url, tmp_path / "y").read()
    assert after == before
    # A daemon on b says so and keeps the applied set; after a pull, b applies.
    with Daemon(b, env=env) as d:
        d.wait_log("does not contain", timeout=30)
    assert sorted(PostgresStore(pg_url, tmp_path / "z").read().jobs) == ["one", "two"]
    git(b, "pull", "-q")
    assert cronfile("apply", cwd=b, env=env).returncode == 0


def test_migrate_to_the_database_and_back(pg_url: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"m": "name: m\nschedule: 0 0 1 1 *\nshell: echo migrated output\n"})
    assert cronfile("apply", cwd=repo).returncode == 0
    assert cronfile("run", "m", cwd=repo).returncode == 0
    before = json.loads(cronfile("history", "m", "--json", cwd=repo).stdout)
    r = cronfile("state", "migrate", "--to", pg_url, cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "copied 1 jobs, 1 history records, 1 logs, 1 audit records" in r.stderr + r.stdout
    env = {"CRONFILE_STATE_URL": pg_url}
    assert json.loads(cronfile("history", "m", "--json", cwd=repo, env=env).stdout) == before
    assert cronfile("logs", "m", cwd=repo, env=env).stdout.strip() == "migrated output"
    assert cronfile("diff", cwd=repo, env=env).returncode == 0  # the applied set came along
    # Into a database that is not empty: refused.
    r = cronfile("state", "migrate", "--to", pg_url, cwd=repo)
    assert r.returncode == 2 and "is not empty" in r.stderr
    # And back, into a new folder.
    back = tmp_path / "back"
    r = cronfile("state", "migrate", "--to", f"file://{back}", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(cronfile("--state-dir", str(back), "history", "m", "--json", cwd=repo).stdout)
    assert got == before
    assert cronfile("--state-dir", str(back), "logs", "m", cwd=repo).stdout.strip() == "migrated output"



def test_a_job_never_sees_the_state_url_or_its_password(pg_url: str, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"peek": 'name: peek\nschedule: 0 0 1 1 *\nshell: echo "url=${CRONFILE_STATE_URL:-unset} pw=${PG_PW:-unset}"\n'})
    rest = pg_url.split("@", 1)[1]
    (repo / "cronfile.yaml").write_text(f"state_url: postgresql://postgres:${{PG_PW}}@{rest}\n")
    env = {"PG_PW": "not-checked-by-trust-auth"}
    assert cronfile("apply", cwd=repo, env=env).returncode == 0
    r = cronfile("run", "peek", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    assert cronfile("logs", "peek", cwd=repo, env=env).stdout.strip() == "url=unset pw=unset"
    r = cronfile("--state-url", pg_url, "run", "peek", cwd=repo, env={**env, "CRONFILE_STATE_URL": pg_url})
    assert r.returncode == 0
    out = cronfile("logs", "peek", cwd=repo, env=env).stdout
    assert "not-checked" not in out and "postgresql" not in out


def test_every_command_against_an_unreachable_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    import socket

    repo = make_repo(tmp_path / "repo", {"a": "name: a\nschedule: 0 9 * * *\nshell: 'true'\n"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"CRONFILE_STATE_URL": f"postgresql://u:hunter2@127.0.0.1:{port}/db"}
    for argv in (["apply"], ["diff"], ["status"], ["history", "a"], ["logs", "a"], ["run", "a"], ["tick"], ["daemon"]):
        r = cronfile(*argv, cwd=repo, env=env, timeout=60)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert r.stderr.startswith("cronfile: error: cannot reach the state database"), (argv, r.stderr)
        assert r.stderr.count("\n") == 1 and "hunter2" not in r.stderr + r.stdout, (argv, r.stderr)
    assert not (repo / ".cronfile" / "state.json").exists()


def test_doctor_reports_an_unreachable_database_as_a_failed_check_and_runs_the_rest(tmp_path: Path) -> None:
    import socket

    repo = make_repo(tmp_path / "repo", {"a": "name: a\nschedule: 0 9 * * *\nshell: 'true'\n"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = cronfile("doctor", cwd=repo, env={"CRONFILE_STATE_URL": f"postgresql://u:hunter2@127.0.0.1:{port}/db"}, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    store = [line for line in r.stdout.splitlines() if " state store " in line]
    assert len(store) == 1 and store[0].startswith("FAIL"), r.stdout
    assert f"cannot reach the state database postgresql://u:***@127.0.0.1:{port}/db" in store[0]
    assert "fix: start the database" in store[0]
    assert "hunter2" not in r.stdout + r.stderr
    # The host's own checks still ran; the store's would only repeat the failure.
    for check in ("files", "timezone data", "containment", "clock"):
        assert any(line.split()[1:2] == check.split()[:1] for line in r.stdout.splitlines()), (check, r.stdout)
    assert " state  " not in r.stdout and " locks " not in r.stdout
    assert "Traceback" not in r.stderr

    r = cronfile("--json", "doctor", cwd=repo, env={"CRONFILE_STATE_URL": "postgresql://u@127.0.0.1/${CRONFILE_NOT_SET}"}, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    checks = {c["check"]: c for c in json.loads(r.stdout)}
    assert checks["state store"]["status"] == "fail"
    assert "CRONFILE_NOT_SET" in checks["state store"]["message"], checks["state store"]


def test_a_daemon_runs_a_job_applied_from_another_host_within_seconds(pg_url: str, tmp_path: Path) -> None:
    a = make_repo(tmp_path / "host-a", {"yearly": "name: yearly\nschedule: 0 0 1 1 *\nshell: 'true'\n"})
    b = tmp_path / "host-b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    env = {"CRONFILE_STATE_URL": pg_url}
    with Daemon(b, env=env) as d:  # applies b's copy, then sleeps towards next New Year
        d.wait_log(r"cronfile daemon \d+", timeout=30)
        (a / "jobs.d" / "tick.yaml").write_text(EVERY_SECOND)
        commit_all(a, "tick")
        assert cronfile("apply", cwd=a, env=env).returncode == 0
        d.wait_log(r"tick run \w+ success", timeout=20)  # within its 5 s poll, not a year
