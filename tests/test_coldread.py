"""The cold read's round-4 fast paths (issue 17) give exactly what the slow ones give.

- YAML: the line-by-line fast path for plain job files (``yamlsrc._fast``) against the
  libyaml builder and PyYAML's pure parser: the same data, every position of every
  value and key, the raw text of typed scalars; and for anything outside its subset
  (every error among them) it steps aside, so problems are worded as before.
- A job's data is built without decoding its JSON again: it must be what the decode
  gave (keys sorted at every level), and its hash the digest of that text.
- The date part of a cron expression is kept by text: an error is raised again each
  time, and a kept part is what a fresh one is.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cronfile import schedule as sched
from cronfile import yamlsrc
from cronfile.load import load_project
from cronfile.spec import _CANONICAL, _hash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from gen_jobs import generate  # noqa: E402
from test_coldparse import BASES, TRICKY, _bad_repo, _flat  # noqa: E402

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _builder(text: str, path: str = "t.yaml") -> tuple[list[yamlsrc.Document], list[Any]]:
    """What load_documents gives without the fast path: libyaml (or PyYAML's pure parser
    where libyaml refuses) and our node builder."""
    try:
        if yamlsrc._CLoader is not None and yamlsrc._shallow(text):
            return yamlsrc._compose(yamlsrc._CLoader(text), text, path)
    except Exception:  # noqa: BLE001 - load_documents re-reads it the same way
        pass
    return yamlsrc._compose(yamlsrc._Loader(text), text, path)


def _pure(text: str, path: str = "t.yaml") -> tuple[list[yamlsrc.Document], list[Any]]:
    return yamlsrc._compose(yamlsrc._Loader(text), text, path)


# Every construct the fast path reads, and the edges of each.
SUBSET = [
    "# yaml-language-server: $schema=x\ndescription: Job 1 (report)\nschedule: \"25 4 * * *\"\ntimezone: UTC\nshell: echo job 1 && test -d /tmp\n",
    "schedule: '0 9 * * 1-5'\ncommand: [echo, \"job 2\", 'x y', 3, 4.5, true, null, .inf]\nretries: 0022\n",
    "labels: {team: t4, tier: gold}\nenv: {A: 1, B: 0x1F, C: 1.10, D: True, E: x}\nempty: []\nnone: {}\n",
    "prompt: |\n  Summarize.\n\n  Then list:\n    - items\n  # not a comment\nagent: codex\n",
    "prompt: |-\n  no final newline\nshell: x\n",
    "deliver:\n  - stdout\n  - webhook: https://example.com/hook  # a comment\n    on: [failure, silent]\n  - email: a@b.c\n    on:\n    - always\n",
    "deliver:\n- stdout\n- 'quoted'\nnext: x\n",
    "context:\n  files:\n    - a.md\n    - b/c.md\n  from_job: other\n\n\n# trailing comment\n",
    "a:   spaced   # comment\nb: x#y\nc: http://x:80/p?q=1\nd: (paren) $VAR ./rel\ne: 'a: b'\nf: \"a # b\"\n",
    "budget:\n    tokens_per_day: 1000\n    cost_per_day: 2.5\nexpect: {contains: ok}\n",
    "k: [ a , b ]\nm: {a: 1,b: 2}\nn: [\"\"]\no: ''\n",
    "a: 1\n  # indented comment\nb: 2\n",
    "- a list\n",
    "a: b\n---\nc: d\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 5\n",
    "a: b\na: c\n",
    "a:\nb: 1\n",
    "a: b: c\n",
    "a: multi\n  line\n",
    "a: 'it''s'\n",
    "a: \"esc \\t\"\n",
    "a: >\n  folded\n",
    "a: |2\n  x\n",
    "a:\tb\n",
    "a: b\r\n",
    "a: b",
    "true: x\n",
    "a: [1, [2]]\n",
    "a: {b: {c: 1}}\n",
    "a: [a, b,]\n",
    "a: ~\n",
    "a: - x\n",
    "a: é\n",
    "é: a\n",
    "  a: indented root\n",
    # `?` in a flow plain scalar: libyaml takes it, PyYAML's pure parser refuses it.
    "a: [a?b]\n",
    "a: {k: a?b}\n",
]
# An implicit key is at most 1024 characters to libyaml and PyYAML alike: (length, text).
LONG_KEYS = [(n, t) for n in (1024, 1025) for t in ("a" * n + ": 1\n", "x: {" + "a" * n + ": 1}\n", "x:\n- " + "a" * n + ": 1\n")]


def _same(text: str) -> bool:
    """The fast path's documents are the builder's (and the pure parser's); returns
    whether the fast path took the text at all."""
    got = yamlsrc._fast(text, "t.yaml")
    if got is None:
        return False
    assert _flat((got, [])) == _flat(_builder(text)) == _flat(_pure(text)), text
    return True


@pytest.mark.parametrize("text", SUBSET + TRICKY + [t for _, t in LONG_KEYS])
def test_the_fast_path_reads_exactly_what_the_builder_reads_or_steps_aside(text: str) -> None:
    _same(text)
    # And load_documents, whichever way it went, gives the builder's answer.
    assert _flat(yamlsrc.load_documents(text, "t.yaml")) == _flat(_builder(text))


def test_the_fast_path_takes_plain_job_files_and_leaves_the_rest() -> None:
    taken = [t for t in SUBSET if yamlsrc._fast(t, "t.yaml") is not None]
    assert taken == SUBSET[:12]  # the first twelve: plain files of every construct above
    for text in SUBSET[12:]:
        assert yamlsrc._fast(text, "t.yaml") is None, text
    for n, text in LONG_KEYS:
        assert (yamlsrc._fast(text, "t.yaml") is not None) == (n <= 1024), n


def test_generated_job_files_all_take_the_fast_path(tmp_path: Path) -> None:
    files = generate(tmp_path, 300)
    for f in files:
        assert _same(f.read_text()), f


def _structured(rng: random.Random, ind: int = 0, depth: int = 0) -> list[str]:
    keys = ["a", "shell", "on", "env", "A", "x-y", "k_1", "true", "a"]
    values = ["x", "1", "0022", "-5", ".5", "0x1F", "true", "null", "yes", "echo a && b", "http://x:80/y", "a #c", "a#b",
              "'q'", '"d"', "'a: b'", "[a, b]", "[]", "{a: 1, b: x}", "[ a , 'b' ]", "a: b", "a:", "*a", "- x", "|", "|-", "é"]  # fmt: skip
    lines = []
    sp = " " * ind
    for _ in range(rng.randint(1, 4)):
        k, r = rng.choice(keys), rng.random()
        if r < 0.55 or depth > 2:
            v = rng.choice(values)
            lines.append(f"{sp}{k}:{rng.choice([' ', '  '])}{v}{rng.choice(['', ' # c', '  '])}")
            if v.startswith("|"):
                bi = ind + rng.choice([1, 2, 4])
                lines += [rng.choice([" " * bi + "text", " " * bi + "# kept", "", " " * (bi + 2) + "deeper"]) for _ in range(rng.randint(0, 3))]
        elif r < 0.75:
            lines.append(f"{sp}{k}:{rng.choice(['', ' # c'])}")
            lines += _structured(rng, ind + rng.choice([1, 2, 4]), depth + 1)
        else:
            lines.append(f"{sp}{k}:")
            si = ind + rng.choice([0, 2])
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.6:
                    lines.append(" " * si + "- " + rng.choice(values))
                else:
                    lines.append(" " * si + f"- {rng.choice(keys)}: {rng.choice(values)}")
                    lines += [" " * (si + 2) + f"{rng.choice(keys)}: {rng.choice(values)}" for _ in range(rng.randint(0, 2))]
        if rng.random() < 0.1:
            lines.append(" " * rng.choice([0, ind + 2]) + "# comment")
    return lines


def test_random_documents_read_the_same_on_the_fast_path() -> None:
    """Seeded random documents near the subset's edges, some with one character
    inserted: whatever the fast path takes, it reads as the builder does."""
    rng = random.Random(17)
    taken = 0
    for _ in range(4000):
        text = "\n".join(_structured(rng)) + rng.choice(["\n", "\n", "", "\n\n"])
        if rng.random() < 0.2:
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice([" ", "\n", ":", "-", "#", "'", '"', "[", "{", ","]) + text[i:]
        taken += _same(text)
    assert taken > 100  # the generator does reach the fast path


@pytest.mark.parametrize("config", ["timezone: UTC\n", "timezone: Europe/Berlin\ndefaults:\n  timeout: 2h\n  env: {A: '1', Z: 2}\n  labels: {team: x}\n"])
def test_a_corpus_of_broken_files_loads_the_same_with_and_without_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> None:
    """Every spec and every problem (file:line:col, field, message), in order."""
    root = _bad_repo(tmp_path / "repo", config)

    def everything() -> str:
        p = load_project(root, now=NOW, environ={"HOME": "/"})
        specs = [(s.name, json.dumps(s.data), s.spec_hash, s.schedule_sig, s.source, s.line, s.positions) for s in p.specs]
        return repr((specs, [(q.path, q.line, q.column, q.field, q.message, q.severity) for q in p.problems]))

    fast = everything()
    monkeypatch.setattr(yamlsrc, "_fast", lambda text, path: None)
    assert everything() == fast
    assert "invalid YAML" in fast and "duplicate key" in fast


def test_a_jobs_data_is_what_decoding_its_json_gave(tmp_path: Path) -> None:
    """Keys sorted at every level, values equal, the hash the digest of that text."""
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "j.yaml").write_text(
        "shell: x\nschedule: '0 9 * * *'\nenv: {Z: 1, A: 0022, M: 'x'}\nlabels: {z: a, b: c}\n"
        "deliver:\n  - webhook: https://example.com/h\n    on: [failure]\n    headers: {Z: a, A: b}\n  - stdout\n"
        "timeout: 5m\njitter: 30s\nretries: 2\nenabled: false\n"
    )
    (tmp_path / "jobs.d" / "p.yaml").write_text("prompt: hi\nagent: codex\nschedule: '@daily'\nexpect: {regex: a, contains: b}\nbudget: {tokens_per_day: 5}\ncontext: {files: [b.md, a.md], from_job: j}\n")
    for base in BASES:  # and the shapes of the corpus
        (tmp_path / "jobs.d" / f"b{BASES.index(base)}.yaml").write_text(base.format(i=1, m=2, h=3, s=4, mo=5, d=6))
    project = load_project(tmp_path, now=NOW, warnings=False)
    assert project.ok, project.problems
    assert len(project.specs) == 2 + len(BASES)
    for spec in project.specs:
        text = _CANONICAL.encode(spec.data)
        decoded = json.loads(text)
        assert spec.data == decoded
        assert json.dumps(spec.data) == json.dumps(decoded)  # the same key order, everywhere
        assert spec.spec_hash == _hash(decoded)


def test_a_kept_date_part_is_a_fresh_one_and_errors_come_every_time() -> None:
    for _ in range(3):
        with pytest.raises(sched.ScheduleError, match="can never fire"):
            sched.parse("0 0 30 2 *")
        with pytest.raises(sched.ScheduleError, match="day-of-month"):
            sched.parse("0 0 32 * *")
    a, b = sched.parse("5 4 1 */3 *"), sched.parse("7 9 1 */3 *")
    assert a.fields.days is b.fields.days and a.fields.months == b.fields.months
    kept = dict(sched._DAY_FIELDS)
    sched._DAY_FIELDS.clear()
    try:
        fresh = sched.parse("5 4 1 */3 *")
        assert fresh.fields.months == a.fields.months and fresh.fields.month_set == a.fields.month_set
        assert fresh.iter_after(NOW, 8) == a.iter_after(NOW, 8)
    finally:
        sched._DAY_FIELDS.update(kept)


@pytest.mark.parametrize(
    "text",
    [
        "schedule: '* * * * *'\nshell: echo\nenv:\n  " + "A" * 1025 + ": x\n",
        "schedule: '* * * * *'\nshell: echo\nenv: {" + "A" * 1025 + ": x}\n",
        "schedule: '* * * * *'\nshell: echo\ncommand:\n- " + "A" * 1025 + ": x\n",
    ],
)
def test_a_key_longer_than_1024_characters_is_refused_as_yaml_refuses_it(text: str) -> None:
    docs, problems = yamlsrc.load_documents(text, "j.yaml")
    assert docs == []
    assert [str(p) for p in problems] == [str(p) for p in _builder(text, "j.yaml")[1]]
    assert len(problems) == 1 and "invalid YAML" in str(problems[0])


def test_a_question_mark_in_a_flow_scalar_reads_as_the_installed_parser_reads_it() -> None:
    """The fast path steps aside: libyaml (where installed) takes `[a?b]`, the pure
    parser refuses it; either way load_documents answers as the parser would alone."""
    for text in ("a: [a?b]\n", "a: {k: a?b}\n"):
        assert yamlsrc._fast(text, "t.yaml") is None
        assert _flat(yamlsrc.load_documents(text, "t.yaml")) == _flat(_builder(text))


def test_every_ascii_control_character_sends_a_file_off_the_fast_path() -> None:
    """The fast path reads printable ASCII and newlines (checked on the file's bytes):
    any other ASCII character (tab, CR, DEL, NUL, ...) anywhere, in a value, a comment
    or a key, leaves the file to the YAML parser (which words the error); a printable one
    is read as the builder reads it."""
    for code in range(128):
        c = chr(code)
        for text in (f"a: x{c}y\n", f"a: x # {c}\n", f"a{c}: x\n", f"a: 'x{c}'\n"):
            if c == "\n":
                continue
            if c.isprintable():
                _same(text)  # taken or not, never read differently
            else:
                assert yamlsrc._fast(text, "t.yaml") is None, repr(text)
    assert yamlsrc._fast("a: x y\n# ok ~ {}\n", "t.yaml") is not None
