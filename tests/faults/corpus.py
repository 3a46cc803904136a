"""A corpus of broken job files and configs. Each case writes itself into a jobs repo
that also holds one good job, and names the file the error must point at."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GOOD = 'schedule: "@daily"\nshell: "true"\n'


@dataclass(frozen=True)
class Case:
    id: str
    culprit: str  # the file (relative to the repo root) the error must name
    make: Callable[[Path], None]
    fast: bool = False  # also in the fast subset (the rest run with --long)
    daemon: bool = False  # also fed to a running daemon


def _job(name: str, data: str | bytes) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        path = root / "jobs.d" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return make


def _config(data: str | bytes) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / "cronfile.yaml").write_bytes(data.encode() if isinstance(data, str) else data)

    return make


def _laughs(levels: int = 9, width: int = 10) -> str:
    # The "billion laughs": each level a list of `width` aliases of the level before.
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"schedule: *a{levels}\nshell: x")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 40) -> str:
    # The same bomb through merge keys: each level merges the one before twice, which
    # PyYAML's flatten_mapping copies, doubling the pairs at each level.
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}")
    lines.append('schedule: "@daily"\nshell: x')
    return "\n".join(lines) + "\n"


def _sparse(size: int) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        path = root / "jobs.d" / "sparse.yaml"
        with path.open("wb") as f:
            f.write(b"schedule: '@daily'\n# ")
            f.truncate(size)

    return make


def _fifo(rel: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        os.mkfifo(root / rel)

    return make


def _symlink(rel: str, target: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)

    return make


def _loops(root: Path) -> None:
    # Two links back to jobs.d itself: a walk that follows them without remembering
    # where it has been branches 2^40 ways before the kernel says ELOOP.
    os.symlink(".", root / "jobs.d" / "loop1")
    os.symlink(".", root / "jobs.d" / "loop2")
    (root / "jobs.d" / "broken.yaml").write_text("schedule: [\n")


def _both(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        for m in makers:
            m(root)

    return make


CASES = [
    Case("bad-yaml", "jobs.d/bad.yaml", _job("bad.yaml", 'schedule: "0 9 * * *\nshell: x\n'), fast=True, daemon=True),
    Case("wrong-types", "jobs.d/types.yaml", _job("types.yaml", "schedule: 5\nshell: [1, 2]\ntimeout: true\nretries: -1\n"), fast=True),
    Case("unknown-key", "jobs.d/typo.yaml", _job("typo.yaml", 'schedule: "@daily"\nshell: x\ntimout: 5m\n')),
    Case("not-a-mapping", "jobs.d/list.yaml", _job("list.yaml", "- a\n- b\n")),
    Case("a-scalar", "jobs.d/scalar.yaml", _job("scalar.yaml", "just some words\n")),
    Case("duplicate-keys", "jobs.d/dup.yaml", _job("dup.yaml", 'schedule: "@daily"\nschedule: "@hourly"\nshell: x\n')),
    Case("duplicate-names", "jobs.d/two.yaml", _both(_job("one.yaml", 'name: same\n' + GOOD), _job("two.yaml", 'name: same\n' + GOOD))),
    Case("python-tag", "jobs.d/tag.yaml", _job("tag.yaml", 'schedule: "@daily"\nshell: !!python/object/apply:os.system ["echo pwned"]\n'), fast=True),
    Case("tabs", "jobs.d/tabs.yaml", _job("tabs.yaml", "schedule: '@daily'\n\tshell: x\n"), fast=True),
    Case("binary", "jobs.d/bin.yaml", _job("bin.yaml", bytes(range(256)) * 16), fast=True, daemon=True),
    Case("png", "jobs.d/img.yaml", _job("img.yaml", b"\x89PNG\r\n\x1a\n" + os.urandom(512))),
    Case("latin-1", "jobs.d/latin.yaml", _job("latin.yaml", "description: caf\xe9\nschedule: '@daily'\nshell: x\n".encode("latin-1"))),
    Case("huge", "jobs.d/huge.yaml", _job("huge.yaml", 'schedule: "@daily"\nshell: x\n' + "# " + "x" * (5 * 1024 * 1024) + "\n"), fast=True),
    Case("huge-sparse", "jobs.d/sparse.yaml", _sparse(4 * 1024**3), fast=True, daemon=True),
    Case("deep-nesting", "jobs.d/deep.yaml", _job("deep.yaml", "schedule: " + "[" * 50_000 + "]" * 50_000 + "\nshell: x\n"), fast=True, daemon=True),
    Case("nesting-over-limit", "jobs.d/deep2.yaml", _job("deep2.yaml", "labels: " + "{a: " * 100 + "b" + "}" * 100 + "\nschedule: '@daily'\nshell: x\n")),
    Case("billion-laughs", "jobs.d/lol.yaml", _job("lol.yaml", _laughs()), fast=True, daemon=True),
    Case("merge-bomb", "jobs.d/merge.yaml", _job("merge.yaml", _merge_bomb()), fast=True, daemon=True),
    Case("name-dotdot-slash", "jobs.d/esc.yaml", _job("esc.yaml", 'name: "../x"\n' + GOOD), fast=True),
    Case("name-slash", "jobs.d/slash.yaml", _job("slash.yaml", 'name: "a/b"\n' + GOOD)),
    Case("name-dotdot", "jobs.d/dd.yaml", _job("dd.yaml", 'name: ".."\n' + GOOD)),
    Case("name-inner-dotdot", "jobs.d/inner.yaml", _job("inner.yaml", 'name: "a..b"\n' + GOOD), fast=True),
    Case("name-trailing-newline", "jobs.d/nl.yaml", _job("nl.yaml", 'name: "backup\\n"\n' + GOOD), fast=True),
    Case("name-cyrillic", "jobs.d/homoglyph.yaml", _job("homoglyph.yaml", 'name: "b\u0430ckup"\n' + GOOD)),
    Case("name-bidi", "jobs.d/bidi.yaml", _job("bidi.yaml", 'name: "a\u202eb"\n' + GOOD)),
    Case("name-zero-width", "jobs.d/zw.yaml", _job("zw.yaml", 'name: "back\u200bup"\n' + GOOD)),
    Case("name-fullwidth", "jobs.d/fw.yaml", _job("fw.yaml", 'name: "\uff42ackup"\n' + GOOD)),
    Case("name-too-long", "jobs.d/long.yaml", _job("long.yaml", f'name: "{"a" * 65}"\n' + GOOD)),
    Case("name-from-bad-stem", "jobs.d/Bad Name.yaml", _job("Bad Name.yaml", GOOD)),
    Case("unicode-stem", "jobs.d/\u00fcn\u00ef.yaml", _job("\u00fcn\u00ef.yaml", GOOD)),
    Case("symlink-outside", "jobs.d/passwd.yaml", _symlink("jobs.d/passwd.yaml", "/etc/passwd"), fast=True),
    Case("symlink-dangling", "jobs.d/dangling.yaml", _symlink("jobs.d/dangling.yaml", "no-such-file.yaml")),
    Case("symlink-loops", "jobs.d/broken.yaml", _loops, fast=True, daemon=True),
    Case("fifo-job", "jobs.d/fifo.yaml", _fifo("jobs.d/fifo.yaml"), fast=True),
    Case("bad-schedule", "jobs.d/sched.yaml", _job("sched.yaml", 'schedule: "*/0 99 * * * * * *"\nshell: x\n')),
    Case("never-fires", "jobs.d/feb30.yaml", _job("feb30.yaml", 'schedule: "0 0 30 2 *"\nshell: x\n')),
    Case("from-job-escape", "jobs.d/fj.yaml", _job("fj.yaml", 'schedule: "@daily"\nprompt: hi\nagent: codex\ncontext: {from_job: ../x}\n')),
    # The config.
    Case("config-bad-yaml", "cronfile.yaml", _config("timezone: [UTC\n"), fast=True),
    Case("config-wrong-types", "cronfile.yaml", _config("max_concurrent: many\nhistory_limit: -3\ntimezone: 7\n")),
    Case("config-unknown-key", "cronfile.yaml", _config("max_concurent: 4\n")),
    Case("config-bomb", "cronfile.yaml", _config(_laughs().replace("schedule:", "timezone:").replace("shell: x", "")), fast=True),
    Case("config-binary", "cronfile.yaml", _config(os.urandom(300) + b"\x00")),
    Case("config-fifo", "cronfile.yaml", _fifo("cronfile.yaml"), fast=True),
    Case("config-directory", "cronfile.yaml", lambda root: (root / "cronfile.yaml").mkdir()),
]
