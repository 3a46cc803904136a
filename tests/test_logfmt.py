"""The daemon's log lines: dated text by default, one JSON object per line on request;
flags a command does not take are refused."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from cli_helpers import cronfile
from engine_helpers import Daemon, history, write_job

from cronfile.logfmt import format_json, format_text

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "jobs.d").mkdir(parents=True)
    return root


def test_text_lines_carry_the_date_the_time_and_the_offset(repo):
    write_job(repo, "hello", 'schedule: "every 1s"\nrepeat: 1\nshell: echo hi\n')
    with Daemon(repo, env={"TZ": "Asia/Kolkata"}) as d:
        d.wait_log(r"hello run \w+ success")
    lines = [ln for ln in d.text().splitlines() if ln.strip()]
    assert lines and all(ISO_WITH_OFFSET.match(ln) for ln in lines), lines
    assert all("+05:30 " in ln for ln in lines)  # the host's zone, said in every line
    started = next(ln for ln in lines if " started " in ln)
    assert re.search(r"\+05:30 hello run \w{4} started \(schedule, \d+ ms late\)$", started)


def test_json_lines_carry_the_documented_keys(repo):
    write_job(repo, "hello", 'schedule: "every 1s"\nrepeat: 2\nshell: "exit 4"\n')
    with Daemon(repo, args=("--log-format", "json")) as d:
        d.wait_log(r'"event": "run.finished"', count=2)
    events = [json.loads(ln) for ln in d.text().splitlines() if ln.strip()]  # every line is JSON
    for e in events:
        assert {"ts", "level", "event", "msg"} <= set(e)
        assert datetime.fromisoformat(e["ts"]).utcoffset() is not None
        assert e["level"] in ("info", "warning", "error")
    runs = {r["run_id"]: r for r in history(repo, "hello")}
    started = [e for e in events if e["event"] == "run.started"]
    finished = [e for e in events if e["event"] == "run.finished"]
    assert len(started) == len(finished) == 2
    for e in started + finished:
        rec = runs[e["run_id"]]
        assert e["job"] == "hello"
        assert e["scheduled_for"] == rec["scheduled_for"]
        assert e["lateness_ms"] == rec["lateness_ms"]
    assert [e["status"] for e in finished] == ["failed", "failed"]
    assert all(e["level"] == "warning" and e["exit_code"] == 4 for e in finished)
    # Lines about no job carry no job key (keys appear only where they apply).
    start = next(e for e in events if e["event"] == "daemon.started")
    assert "job" not in start and "run_id" not in start


def test_log_format_comes_from_cronfile_yaml_and_the_flag_wins(repo):
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    (repo / "cronfile.yaml").write_text("log_format: json\n")
    with Daemon(repo) as d:
        pass
    assert json.loads(d.text().splitlines()[0])["event"]
    with Daemon(repo, args=("--log-format", "text")) as d:
        pass
    assert ISO_WITH_OFFSET.match(d.text().splitlines()[0])


def test_a_bad_log_format_in_cronfile_yaml_is_an_error_with_its_place(repo):
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    (repo / "cronfile.yaml").write_text("timezone: UTC\nlog_format: xml\nhttp: nowhere\n")
    res = cronfile("-C", str(repo), "daemon")
    assert res.returncode == 2
    assert re.search(r"cronfile.yaml:2:\d+: log_format: ", res.stderr), res.stderr
    assert re.search(r"cronfile.yaml:3:\d+: http: ", res.stderr), res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["daemon", "--json"], "--json is not supported by this command (for JSON log lines: --log-format json)"),
        (["--json", "daemon"], "--json is not supported"),
        (["tick", "--json"], "--json is not supported"),
        (["run", "idle", "--json"], "--json is not supported"),
        (["daemon", "--log-format", "xml"], "invalid choice: 'xml'"),
        (["daemon", "--http", "not a port"], "--http 'not a port': expected HOST:PORT or PORT"),
        (["daemon", "--http", "127.0.0.1:70000"], "port 70000 is out of range"),
        (["validate", "--state-dir", "elsewhere"], "--state-dir is not used by this command"),
        (["--state-dir", "elsewhere", "schema"], "--state-dir is not used by this command"),
    ],
    ids=["daemon-json", "global-json", "tick-json", "run-json", "bad-format", "bad-http", "bad-port", "validate-state-dir", "schema-state-dir"],
)
def test_a_flag_the_command_does_not_take_is_refused(repo, argv, said):
    write_job(repo, "idle", 'schedule: "0 0 1 1 *"\nshell: "true"\n')
    res = cronfile("-C", str(repo), *argv, timeout=30)
    assert res.returncode == 2, res.stderr
    assert said in res.stderr
    assert not (repo / ".cronfile").exists()  # nothing was started or applied


def test_format_functions_are_pure():
    from datetime import UTC

    t = datetime(2026, 12, 6, 5, 7, 0, 650000, tzinfo=UTC)
    assert format_text(t, "info", "backup", "run 7f3a started").endswith(" backup run 7f3a started")
    assert " WARNING " in format_text(t, "warning", "", "clock jumped")
    obj = json.loads(format_json(t, "info", "run.started", "m", {"job": "backup", "run_id": None, "lateness_ms": 2.5}))
    assert obj["event"] == "run.started" and obj["lateness_ms"] == 2.5 and "run_id" not in obj


def test_a_quiet_daemon_keeps_its_warnings_and_errors(repo):
    write_job(repo, "broken", 'schedule: "every 1s"\nrepeat: 1\nshell: "exit 1"\n')
    d = Daemon(repo, "-q")
    try:
        d.wait_log(r"WARNING broken run \w+ failed in")
    finally:
        assert d.stop() == 0
    lines = d.text().splitlines()
    assert lines and all(" WARNING " in ln or " ERROR " in ln for ln in lines), lines


class _Stream:
    """A text stream that records each write."""

    def __init__(self):
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_line_is_one_write_with_its_newline():
    from datetime import UTC

    from cronfile.logfmt import LogWriter

    s = _Stream()
    w = LogWriter(s)
    t = datetime(2026, 12, 6, 5, 7, 0, 650000, tzinfo=UTC)
    w.write(t, level="info", event="log", msg="one", job="a")
    w.write(t, level="info", event="log", msg="two", job="a")
    # print() wrote the newline apart: two syscalls a line on an unbuffered stream
    assert len(s.writes) == 2 and all(x.endswith(" a one\n") or x.endswith(" a two\n") for x in s.writes)


def test_many_threads_logging_at_once_lose_no_line_and_tear_none():
    import threading
    from datetime import UTC

    from cronfile.logfmt import LogWriter

    s = _Stream()
    w = LogWriter(s, "json")
    t = datetime(2026, 12, 6, 5, 7, 0, 650000, tzinfo=UTC)

    def burst(n: int) -> None:
        for i in range(200):
            w.write(t, level="info", event="log", msg=f"{n}-{i}", job=f"j{n}")

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    msgs = [json.loads(ln)["msg"] for ln in "".join(s.writes).splitlines()]
    assert sorted(msgs) == sorted(f"{n}-{i}" for n in range(16) for i in range(200))
    for n in range(16):  # each thread's lines in the order it logged them
        assert [m for m in msgs if m.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(200)]


def test_held_lines_go_out_in_one_write_in_order_with_other_threads_lines():
    # The daemon's stepper holds its lines while it has work (LogWriter.hold).
    import threading
    from datetime import UTC

    from cronfile import logfmt
    from cronfile.logfmt import LogWriter

    s = _Stream()
    w = LogWriter(s)
    t = datetime(2026, 12, 6, 5, 7, 0, 650000, tzinfo=UTC)
    w.hold()
    for i in range(3):
        w.write(t, level="info", event="log", msg=f"held {i}", job="a")
    assert s.writes == []
    # Another thread's line: out at once, after the held ones.
    th = threading.Thread(target=lambda: w.write(t, level="info", event="log", msg="other", job="b"))
    th.start()
    th.join(10)
    assert len(s.writes) == 1 and [ln.split()[-2:] for ln in s.writes[0].splitlines()] == [["held", "0"], ["held", "1"], ["held", "2"], ["b", "other"]]
    for i in range(logfmt.HELD_LINES):
        w.write(t, level="info", event="log", msg=f"many {i}", job="a")
    assert len(s.writes) == 2 and s.writes[1].count("\n") == logfmt.HELD_LINES  # the cap
    w.write(t, level="info", event="log", msg="last", job="a")
    assert len(s.writes) == 2
    w.release()
    assert s.writes[2].endswith(" a last\n")
    w.write(t, level="info", event="log", msg="after", job="a")
    assert len(s.writes) == 4  # released: at once again
