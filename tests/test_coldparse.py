"""The cold read's fast paths (issue 17) give what the slow ones give.

- YAML: libyaml's parser (with our resolver and node builder) against PyYAML's pure
  Python parser, on tricky documents and on a corpus of broken job files: the same data,
  positions and problems, message for message.
- A job's schedule is parsed once and kept on its JobSpec: the kept one must be what a
  fresh parse gives, and never outlive what it depends on (``created_at`` for `in 2h`).
- The per-text caches (cron fields, durations) raise the same error every time.
- ``schedule_signature`` writes its JSON text by hand: it must be the text the
  encoder writes, or every applied job would show as changed after an upgrade.
"""

from __future__ import annotations

import gc
import pickle
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cronfile import schedule as sched
from cronfile import spec as specmod
from cronfile import yamlsrc
from cronfile.durations import parse_duration
from cronfile.load import load_project
from cronfile.spec import _hash, schedule_signature

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

TRICKY = [
    "schedule: '@daily'\nshell: x\n",
    "base: &b {timeout: 1h, env: {A: '1'}}\njob:\n  <<: *b\n  shell: x\n",
    "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n",
    "a: &a {x: 1, x2: 2}\nc:\n  <<: *a\n  x: 9\n",
    "= : value key\nshell: x\n",
    "k: {=: 1, b: 2}\n",
    "shell: a\nshell: b\n",
    "? [a, b]\n: c\nd: 1\n",
    "1: one\ntrue: yes\nnull: n\n3.5: f\n",
    "env: {UMASK: 0022, VER: 1.10, HEX: 0x1F, OCT: 0o17, NEG: -5, INF: .inf, NAN: .nan, ON: on, T: True}\n",
    "when: 2026-01-01T00:00:00Z\ntime: 1:30\nempty:\nnothing: ~\n",
    "x: !!binary aGVsbG8=\ny: !custom thing\nz: !!str 5\n",
    "prompt: |\n  line one\n  line two\nshell: >\n  folded\n  text\n",
    "---\nname: a\n---\nname: b\n...\n---\n# empty\n",
    "\ufeffname: bom\n",
    "list: [a, [b, [c, {d: [e]}]]]\nseq:\n  - 1\n  - - 2\n    - 3\n",
    "a: " + "[" * 64 + "]" * 64 + "\n",
    "a: " + "[" * 65 + "]" * 65 + "\n",
    "a: " + "{b: " * 70 + "1" + "}" * 70 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e]\n",
    "a: &a {k1: 1, k2: 2}\nb: &b {<<: [*a, *a], k3: 3}\nc: {<<: [*b, *b]}\n",
    "schedule: '@daily\nshell: x\n",
    "a: b: c\n",
    "- just\n- a list\n",
    "plain string",
    "",
    "# only a comment\n",
    "key: 'quoted'\nother: \"dq \\u00e9 \\t\"\n",
]


@pytest.fixture(autouse=True)
def _no_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Here libyaml is compared with PyYAML's pure parser: the plain-YAML fast path in
    front of both (yamlsrc._fast) has its own tests, against them (test_coldread.py)."""
    monkeypatch.setattr(yamlsrc, "_fast", lambda text, path: None)


def _flat(result: tuple[list[yamlsrc.Document], list[Any]]) -> str:
    docs, problems = result
    return repr(
        (
            [(d.path, d.data, d.line, d.column, d.positions, d.key_positions, d.raw) for d in docs],
            [str(p) for p in problems],
        )
    )


def _pure(text: str | bytes, path: str) -> tuple[list[yamlsrc.Document], list[Any]]:
    kept = yamlsrc._CLoader
    yamlsrc._CLoader = None
    try:
        return yamlsrc.load_documents(text, path)
    finally:
        yamlsrc._CLoader = kept


def test_libyaml_is_there_to_compare_with() -> None:
    # PyYAML's wheels ship libyaml; without it the cold read still works, slower (the
    # pure path below is exactly that case).
    assert yaml.__with_libyaml__ and yamlsrc._CLoader is not None


@pytest.mark.parametrize("text", TRICKY)
def test_both_parsers_give_the_same_documents_and_problems(text: str) -> None:
    assert _flat(yamlsrc.load_documents(text, "t.yaml")) == _flat(_pure(text, "t.yaml"))


def test_merge_keys_and_value_keys_are_still_expanded() -> None:
    docs, problems = yamlsrc.load_documents(TRICKY[2], "m.yaml")
    assert not problems
    assert docs[0].data["c"] == {"x": 1, "y": 2, "z": 3}
    docs, _ = yamlsrc.load_documents(TRICKY[5], "v.yaml")
    assert docs[0].data == {"k": {"=": 1, "b": 2}}


def _mutations(rng: random.Random) -> list[Any]:
    return [
        lambda t: t.replace("schedule: ", "schedule: [", 1),
        lambda t: t.replace(": ", ":\n\t", 1),
        lambda t: t + "timeout: 5 minutes\nretries: -3\n",
        lambda t: t + "shedule: x\nshell: y\n",
        lambda t: t + "env: {A: [1], B: 0022, C: 1.10, D: true, E: null}\n",
        lambda t: t + "deliver: [stdout, {webhook: 3, on: [never]}, {email: a@b.c, bogus: 1}, nope, 4]\n",
        lambda t: t + "timezone: Mars/Base\nanchor: yesterday\njitter: -5s\n",
        lambda t: t + "name: Bad..Name\n",
        lambda t: t + "? [a, b]\n: c\nx: !!binary aGVsbG8=\n",
        lambda t: t + "base: &a {timeout: 1h}\n<<: *a\n",
        lambda t: "---\n" + t + f"---\nname: other-{rng.randint(0, 99)}\nschedule: '@daily'\nshell: x\n",
        lambda t: t[: len(t) // 2],
        lambda t: t.replace("\n", "\n  ", 1),
        lambda t: t + "expect: {regex: '(['}\ncontext: {from_job: nowhere}\n",
        lambda t: t + "{" * 70 + "}" * 70 + "\n",
        lambda t: t + "retries: 0x10\nretry_backoff: .inf\ntimeout: 1:30\n",
        lambda t: t.replace("schedule: '", "schedule: '61 ", 1),
        lambda t: t.replace("schedule: '", "schedule: '0 0 30 2 * #", 1),
        lambda t: t + "prompt: hi\npermissions: full\n",
        lambda t: "",
    ]


BASES = [
    "description: job {i}\nschedule: '{m} {h} * * 1-5'\ntimezone: Europe/Berlin\nshell: echo {i}\ntimeout: 5m\n",
    "schedule: '{s} {m} {h} * * *'\ntimezone: America/New_York\ncommand: [echo, '{i}']\njitter: 30s\n",
    "schedule: 'every {m}m'\nprompt: |\n  Summarize {i}.\nagent: codex\nlabels: {{team: t{i}}}\n",
    "schedule: '2027-0{mo}-1{d} {h:02d}:{m:02d}'\nshell: x\ndeliver:\n  - stdout\n  - {{webhook: 'https://example.com/{i}', on: [failure]}}\n",
    "schedule: 'in {h}h'\nshell: x\nretries: 2\nretry_backoff: 1m\nconcurrency: queue\n",
]


def _bad_repo(root: Path, config: str, n: int = 300) -> Path:
    rng = random.Random(17)
    muts = _mutations(rng)
    (root / "jobs.d").mkdir(parents=True)
    (root / "cronfile.yaml").write_text(config)
    for i in range(n):
        base = BASES[i % len(BASES)].format(i=i, m=i % 60, h=i % 24, s=i % 7, mo=1 + i % 9, d=i % 10)
        text = base
        for _ in range(rng.randint(0, 2)):
            text = rng.choice(muts)(text)
        (root / "jobs.d" / f"j{i:03d}.yaml").write_text(text)
    return root


def _everything(root: Path) -> str:
    project = load_project(root, now=NOW, environ={"HOME": "/"})
    specs = [
        (s.name, s.data, s.spec_hash, s.schedule_sig, s.source, s.line, s.positions, repr(s.build_schedule(created_at=NOW)))
        for s in project.specs
    ]
    problems = [(p.path, p.line, p.column, p.field, p.message, p.severity) for p in project.problems]
    return repr((specs, sorted(problems)))


@pytest.mark.parametrize(
    "config",
    [
        "timezone: UTC\n",
        "timezone: Europe/Berlin\ndefaults:\n  timeout: 2h\n  env: {A: '1', Z: 2}\n  labels: {team: x}\n",
        "defaults:\n  timeout: forever\n  bogus: 1\n",
    ],
)
def test_a_corpus_of_broken_files_reads_the_same_on_both_parsers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> None:
    """Every problem (file:line:col, field, message) and every spec of 300 files, most of
    them broken in one or two ways, is the same with libyaml and without it."""
    root = _bad_repo(tmp_path / "repo", config)
    fast = _everything(root)
    monkeypatch.setattr(yamlsrc, "_CLoader", None)
    slow = _everything(root)
    assert fast == slow
    assert fast.count("invalid YAML") > 5 and "duplicate key" in fast


def test_a_kept_schedule_is_what_a_fresh_parse_gives(tmp_path: Path) -> None:
    root = _bad_repo(tmp_path / "repo", "timezone: UTC\n", n=60)
    project = load_project(root, now=NOW, environ={})
    assert project.specs
    for s in project.specs:
        kept = s.build_schedule(created_at=NOW)
        fresh = sched.parse(
            s.schedule,
            s.timezone,
            anchor=specmod._parse_anchor(s.anchor) if s.anchor else None,
            created_at=NOW,
            jitter=timedelta(seconds=s.jitter),
            jitter_key=s.name,
        )
        assert repr(kept) == repr(fresh)
        for at in (NOW, NOW + timedelta(days=40)):
            assert kept.next_after(at) == fresh.next_after(at)
        assert s.build_schedule(created_at=NOW) is kept


def test_a_relative_schedule_follows_created_at_and_a_cron_one_is_built_once(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "later.yaml").write_text("schedule: in 2h\nshell: x\n")
    (tmp_path / "jobs.d" / "daily.yaml").write_text("schedule: '0 9 * * *'\ntimezone: Europe/Paris\nshell: x\n")
    project = load_project(tmp_path, now=NOW, environ={})
    later, daily = project.job("later"), project.job("daily")
    assert later is not None and daily is not None
    assert later.build_schedule(created_at=NOW).next_after(NOW) == NOW + timedelta(hours=2)
    other = NOW + timedelta(days=1)
    assert later.build_schedule(created_at=other).next_after(NOW) == other + timedelta(hours=2)
    assert later.build_schedule(created_at=None).next_after(NOW) is None
    assert daily.build_schedule(created_at=other) is daily.build_schedule(created_at=NOW)


def test_the_kept_schedule_is_not_pickled_and_comes_back_built(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "daily.yaml").write_text("schedule: '0 9 * * *'\nshell: x\njitter: 1m\n")
    spec = load_project(tmp_path, now=NOW, environ={}).specs[0]
    assert spec._schedule is not None
    back = pickle.loads(pickle.dumps(spec))
    assert back._schedule is None
    assert back == spec and back.spec_hash == spec.spec_hash and back.positions == spec.positions
    assert back.build_schedule(NOW).next_after(NOW) == spec.build_schedule(NOW).next_after(NOW)


def test_a_bad_cron_field_or_duration_says_so_every_time() -> None:
    for _ in range(3):
        with pytest.raises(sched.ScheduleError, match="minute: 61 is out of range 0-59"):
            sched.parse("61 * * * *")
        with pytest.raises(sched.ScheduleError, match="day-of-week: '8' is not|out of range"):
            sched.parse("0 0 * * 8")
        with pytest.raises(ValueError, match='"15 minutes" is not a duration'):
            parse_duration("15 minutes")
    assert sched.parse("0 0 * * 1-5").fields.days is sched.parse("5 5 * * 1-5").fields.days


@pytest.mark.parametrize(
    "data",
    [
        {"schedule": "0 9 * * *"},
        {"schedule": "  0   9 * * * ", "timezone": "Europe/Berlin", "jitter": "90s"},
        {"schedule": "every 2h", "anchor": "2026-01-01T00:00:00Z", "jitter": 30, "timezone": "Asia/Tokyo"},
        {"schedule": "é \"quoted\" \\ \t\u2028", "timezone": "A/ü", "jitter": 0.5},
        {"schedule": "@daily", "jitter": "not a duration"},
        {"schedule": "@daily", "timezone": 5},
        {"schedule": "@daily", "anchor": "garbage"},
        {"schedule": 7, "jitter": [1]},
    ],
)
def test_schedule_signature_is_the_encoders_text(data: dict[str, Any]) -> None:
    jitter = data.get("jitter")
    try:
        jitter_s: Any = parse_duration(jitter).total_seconds() if jitter is not None else 0.0
    except ValueError:
        jitter_s = jitter
    anchor = data.get("anchor")
    if anchor:
        try:
            anchor = specmod._parse_anchor(anchor).isoformat()
        except ValueError:
            pass
    expected = _hash(
        {"schedule": " ".join(str(data.get("schedule", "")).split()), "timezone": data.get("timezone"), "anchor": anchor, "jitter": jitter_s}
    )
    assert schedule_signature(data) == expected


def test_loading_pauses_the_collector_and_gives_it_back(tmp_path: Path) -> None:
    from cronfile.console import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_every_value_and_key_keeps_its_line_and_column() -> None:
    """Plain strings are built inline, everything else by build(): both record where."""
    text = "a: x\nb:\n  c: 'y'\n  d: [1, z]\nlist:\n  - q\n"
    for docs, problems in (yamlsrc.load_documents(text, "p"), _pure(text, "p")):
        assert not problems
        (doc,) = docs
        assert doc.positions == {
            (): (1, 1), ("a",): (1, 4), ("b",): (3, 3), ("b", "c"): (3, 6), ("b", "d"): (4, 6),
            ("b", "d", 0): (4, 7), ("b", "d", 1): (4, 10), ("list",): (6, 3), ("list", 0): (6, 5),
        }  # fmt: skip
        assert doc.key_positions == {("a",): (1, 1), ("b",): (2, 1), ("b", "c"): (3, 3), ("b", "d"): (4, 3), ("list",): (5, 1)}
        assert doc.raw == {("b", "d", 0): "1"}


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        ('schedule: "@daily"\nshell: "echo \\ud800"\n', "2:8", "shell"),
        ('schedule: "@daily"\ncommand: ["a", "b\\udc00"]\n', "2:16", "command[1]"),
        ('schedule: "@daily"\nshell: "true"\nenv:\n  "A\\udc00": x\n', "4:", "env.A"),
    ],
)
def test_a_lone_surrogate_is_a_problem_at_its_line_not_an_internal_error(tmp_path: Path, text: str, where: str, field: str) -> None:
    """YAML's "\\ud800" escape reads as half of a UTF-16 pair, which is not text: validate,
    diff and apply stopped with "internal error: UnicodeEncodeError" (exit 3)."""
    from cli_helpers import cronfile

    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text(text)
    for command in ("validate", "diff", "apply"):
        r = cronfile("-C", str(tmp_path), command)
        out = r.stdout + r.stderr
        assert r.returncode == 2 and "Traceback" not in out and "internal error" not in out, (command, out)
        assert f"jobs.d/a.yaml:{where}" in out and f"{field}" in out and "lone surrogate" in out, (command, out)
