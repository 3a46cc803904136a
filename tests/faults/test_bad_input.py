"""Bad input: a corpus of broken job files and configs (corpus.py) fed to the real
`validate`, `diff` and `apply`, and to a running daemon; and random mutations of a good
job file fed to the loader. Every one gives exit 2 and a clear first line that names the
file, never a traceback, never a hang; a YAML bomb is refused fast with bounded memory
(the child's own peak RSS, from wait4); `apply` leaves the state as it was; a running
daemon says what is wrong, keeps its last good set and keeps firing."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronfile.load import load_project

from .corpus import CASES, GOOD, Case
from .harness import MARK, DaemonProc, cli, figure, make_repo, read_marks, wait_for, write_file

TIMEOUT = 20.0  # seconds a command may take before it counts as a hang
MAX_RSS_MB = 200  # a bare `cronfile validate` peaks near 25 MB


def _repo(base: Path, case: Case) -> Path:
    root = base / case.id
    (root / "jobs.d").mkdir(parents=True)
    write_file(root / "jobs.d" / "good.yaml", GOOD)
    case.make(root)
    return root


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _check(base: Path, case: Case, command: str) -> tuple[list[str], float, int]:
    root = _repo(base / command, case)
    state = root / ".cronfile" / "state.json"
    before = _digest(state)
    res = cli(root, command, timeout=TIMEOUT)
    problems = []
    first = res.err.strip().splitlines()[0] if res.err.strip() else ""
    if res.hung:
        problems.append(f"hung for {TIMEOUT:g}s")
    elif res.code != 2:
        problems.append(f"exit {res.code}")
    if "Traceback" in res.err or "internal error" in res.err:
        problems.append(f"traceback: {res.err[-400:]}")
    if not res.hung and case.culprit not in first:
        problems.append(f"first line does not name {case.culprit}: {first!r}")
    if res.max_rss_kb > MAX_RSS_MB * 1024:
        problems.append(f"peak RSS {res.max_rss_kb // 1024} MB")
    if _digest(state) != before:
        problems.append("the state changed")
    return [f"{case.id} / {command}: {p}" for p in problems], res.seconds, res.max_rss_kb


@pytest.mark.parametrize("command", ["validate", "diff", "apply"])
def test_every_broken_file_gets_exit_2_and_one_clear_line_naming_it(tmp_path, long, command):
    cases = CASES if long or command == "validate" else [c for c in CASES if c.fast]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: _check(tmp_path, c, command), cases))
    failures = [p for problems, _, _ in results for p in problems]
    slowest = max(s for _, s, _ in results)
    peak = max(r for _, _, r in results)
    figure(f"bad input, {command}: {len(cases)} broken repos, {len(failures)} failures, slowest {slowest:.2f}s, peak RSS {peak // 1024} MB")
    assert failures == []


def test_an_empty_or_commented_out_job_file_is_a_warning_not_an_error(tmp_path):
    # A whole file commented out is a way to switch its jobs off; a file truncated by a
    # bad save looks the same: a warning names it, and the rest applies.
    root = make_repo(tmp_path, {"good": GOOD})
    write_file(root / "jobs.d" / "empty.yaml", "")
    write_file(root / "jobs.d" / "off.yaml", "# schedule: '@daily'\n# shell: x\n")
    res = cli(root, "validate")
    assert res.code == 0, res.err
    assert "jobs.d/empty.yaml:1:1: warning: holds no job" in res.err
    assert "jobs.d/off.yaml:1:1: warning: holds no job" in res.err


def test_a_running_daemon_keeps_its_last_good_set_through_every_broken_file(tmp_path, long):
    cases = CASES if long else [c for c in CASES if c.daemon]
    marks = tmp_path / "repo" / "marks"
    root = make_repo(tmp_path / "repo", {"beat": f'schedule: "* * * * * *"\nshell: {MARK.format(marks=marks / "beat")}\n'})
    with DaemonProc(root, tag="bad") as d:
        d.wait_log("cronfile daemon")
        for case in cases:
            before = _entries(root)
            offset = len(d.text())
            case.make(root)

            def named(offset: int = offset, case: Case = case) -> bool:
                tail = d.text()[offset:]
                return "keeping the last good set" in tail and case.culprit in tail

            try:
                wait_for(named, timeout=15, what=f"{case.id}: the daemon to name {case.culprit}")
            except AssertionError:
                raise AssertionError(f"{case.id}:\n{d.text()[offset:][-2000:]}") from None
            seen = len(read_marks(root))
            wait_for(lambda seen=seen: len(read_marks(root)) >= seen + 2, timeout=10, what=f"{case.id}: runs to go on")
            for path in _entries(root) - before:  # back to the good set for the next case
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        rss = _peak_rss_mb(d.pid)
        text = d.text()
        assert d.stop() == 0
    figure(f"bad input, daemon: {len(cases)} broken changes, kept firing through all, peak RSS {rss} MB")
    assert "Traceback" not in text
    assert rss < MAX_RSS_MB


def _entries(root: Path) -> set[Path]:
    return set((root / "jobs.d").iterdir()) | ({root / "cronfile.yaml"} if (root / "cronfile.yaml").exists() or (root / "cronfile.yaml").is_symlink() else set())


def _peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


# -- random mutations of a good file, in process -----------------------------------------

BASE = """\
name: fuzzed
description: A job to mutate
schedule: "*/5 * * * *"
timezone: Europe/Berlin
shell: echo hi
timeout: 5m
retries: 1
env: {A: "1", B: "${HOME}"}
deliver:
  - webhook: https://hooks.example.com/x
    on: [failure]
labels: {team: ops}
"""
ALPHABET = st.sampled_from(list(":{}[]&*!|>'\"%@\t\n -#,?<=~\\0") + ["\u202e", "\u200b", "\ufeff", "é", "\x85", "\u2028", "&a ", "*a", "<<: ", "!!str ", "---\n", "..."])


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = BASE
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if kind == "insert":
            text = text[:at] + "".join(draw(st.lists(ALPHABET, min_size=1, max_size=6))) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, max(len(lines) - 1, 0)))
            text = "".join(lines[: i + 1] + lines[i:])
    return text


def test_mutated_job_files_never_make_the_loader_raise_or_stall(long):
    examples = 3000 if long else 150
    tmp = Path(tempfile.mkdtemp())
    (tmp / "jobs.d").mkdir()
    slowest = [0.0]

    @settings(max_examples=examples, deadline=None, derandomize=not long, suppress_health_check=list(HealthCheck), database=None)
    @given(mutated())
    def check(text: str) -> None:
        path = tmp / "jobs.d" / "fuzzed.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        start = time.monotonic()
        project = load_project(tmp)  # must not raise
        slowest[0] = max(slowest[0], time.monotonic() - start)
        for p in project.problems:
            assert p.path.endswith("fuzzed.yaml"), p
            assert p.message
        assert len(project.specs) <= text.count("---") + 1

    try:
        check()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figure(f"bad input, mutations: {examples} mutated job files loaded, slowest {slowest[0] * 1000:.0f} ms")
    assert slowest[0] < 2.0
