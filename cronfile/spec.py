"""Job specs and the project config: typed, frozen, validated.

Pure: documents (data plus positions) in, specs or problems out. The JSON schemas in
``cronfile/schemas/`` decide the shape; the checks here go beyond them (cron fields,
timezones, durations, agent profiles), and every reason is collected, never just the
first.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import marshal
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache, lru_cache
from importlib import resources
from json.encoder import c_make_encoder  # type: ignore[attr-defined]  # None without _json
from json.encoder import encode_basestring as _encode_str  # what ensure_ascii=False writes
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .delivery import kinds as delivery_kinds
from .durations import parse_duration
from .errors import Problem
from .executors import registry as executor_kinds
from .executors.registry import Kind
from .yamlsrc import Document, dotted

if TYPE_CHECKING:
    from .schedule import Schedule

# docs/design.md 2's name rule, anchored with \A and \Z: the schema's `$` (and Python's)
# also matches before a trailing newline, so "backup\n" passed; and the store refuses ".."
# anywhere in a path component, so "a..b" passed validation, then failed every run with
# an internal error and stayed "running" (both found by tests/faults). `is_job_name` is
# the whole rule; NAME_RE is its pattern.
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")


def is_job_name(name: str) -> bool:
    """Lower-case letters, digits, '.', '_', '-', but not '..'; 1-64 characters,
    starting with a letter or digit."""
    return NAME_RE.match(name) is not None and ".." not in name

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Concurrency(StrEnum):
    """What a job does when its previous run is still going at fire time."""

    forbid = "forbid"  # Like Kubernetes CronJob's Forbid / Temporal Skip: record skipped.
    queue = "queue"  # Like Temporal BufferOne: run one more right after the current one.
    allow = "allow"  # Start another run beside it.
    replace = "replace"  # type: ignore[assignment]  # Like Kubernetes Replace: stop the old run, start the new one.


class Catchup(StrEnum):
    """What a job does with occurrences missed while no engine ran."""

    skip = "skip"  # Record them as missed; wait for the next occurrence.
    once = "once"  # Run the most recent missed occurrence once (no burst).


class Status(StrEnum):
    """The outcome of a run, as stored in history."""

    success = "success"  # Exit code 0.
    failed = "failed"  # Non-zero exit, or the program could not start.
    timeout = "timeout"  # Stopped after `timeout`.
    silent = "silent"  # Output began with [SILENT], or a context script said wakeAgent: false.
    refused = "refused"  # The injection guard matched; nothing was spawned.
    skipped = "skipped"  # concurrency: forbid and the previous run was still going.
    missed = "missed"  # Later than starting_deadline; not run.
    interrupted = "interrupted"  # The engine stopped or died while it ran.
    cancelled = "cancelled"  # Stopped on purpose (concurrency: replace, job deleted).

    @property
    def is_failure(self) -> bool:
        return self in FAILURES


# The outcomes that count as a failure: `on: failure` deliveries, healthchecks' /fail, the
# red marks of `status` and of the status page. A history line's status text is in it
# too ("timeout" in FAILURES), as a StrEnum member hashes and compares as its text.
FAILURES: frozenset[Status] = frozenset({Status.failed, Status.timeout, Status.refused, Status.interrupted})


class Trigger(StrEnum):
    """Why a run started."""

    schedule = "schedule"  # Its fire time came.
    catchup = "catchup"  # catchup: once, after downtime.
    manual = "manual"  # `cronfile run NAME`.
    reboot = "reboot"  # @reboot, at engine start.
    queued = "queued"  # concurrency: queue, after the previous run finished.


# Built-in agent profiles (docs/design.md section 6). `model_args` go before the prompt
# when the job sets a model (at the end when the prompt goes on stdin). Every built-in
# reads the prompt on stdin: an argv element cannot begin with a dash (each CLI takes it
# for an option) or exceed 128 KiB (Linux's limit on one argument). `output` names how
# the answer and the token usage are read (cronfile.usage). Tested with codex-cli
# 0.171.0, Claude Code 2.1.332, gemini-cli 0.61.0 and llm 0.36 (README, Agent CLIs).
# `permissions` maps each level of a job's `permissions:` (cronfile.permissions) onto the
# CLI's own sandbox and approval flags; every level also keeps the CLI from waiting for
# an approval nobody is there to give (README, Unattended safety).
_CODEX_NEVER_ASK = ["-c", 'approval_policy="never"']  # `codex exec` takes no -a
# Claude Code in --print: with nobody to answer, anything that would prompt is denied.
_CLAUDE_NO_PROMPTS = ["--permission-prompts", "none"]
BUILTIN_AGENTS: dict[str, dict[str, Any]] = {
    "codex": {
        # Outside a git checkout codex exec refuses to start without the check skipped.
        "command": ["codex", "exec", "--skip-git-repo-check", "--json"],
        "model_args": ["--model", "{model}"],
        "stdin": True,
        "output": "codex-json",
        "permissions": {
            "read-only": ["-s", "read-only", *_CODEX_NEVER_ASK],
            "workspace-write": ["-s", "workspace-write", *_CODEX_NEVER_ASK],
            "full": ["-s", "danger-full-access", *_CODEX_NEVER_ASK],
        },
    },
    "claude": {
        "command": ["claude", "-p", "--output-format", "json"],
        "model_args": ["--model", "{model}"],
        "stdin": True,
        "output": "claude-json",
        "permissions": {
            # dontAsk: only the allowed (read) tools run, every other tool is denied.
            "read-only": [
                "--permission-mode", "dontAsk", *_CLAUDE_NO_PROMPTS,
                "--allowedTools", "Read,Glob,Grep",
                "--disallowedTools", "Bash,Edit,Write,NotebookEdit",
            ],
            # acceptEdits: file edits in the working directory go through; a command
            # (Bash) would ask, and is denied.
            "workspace-write": ["--permission-mode", "acceptEdits", *_CLAUDE_NO_PROMPTS],
            "full": ["--permission-mode", "bypassPermissions", *_CLAUDE_NO_PROMPTS],
        },
    },
    "gemini": {
        # Headless gemini refuses an untrusted folder; the job's workdir is the user's.
        "command": ["gemini", "--skip-trust", "--output-format", "json"],
        "model_args": ["-m", "{model}"],
        "stdin": True,
        "output": "gemini-json",
        "permissions": {
            # Headless gemini never prompts: a tool its approval mode does not approve
            # is not offered to the model (default: only the read tools).
            "read-only": ["--approval-mode", "default"],
            "workspace-write": ["--approval-mode", "auto_edit"],
            "full": ["--approval-mode", "yolo"],
        },
    },
    "llm": {
        "command": ["llm", "-u"],
        "model_args": ["-m", "{model}"],
        "stdin": True,
        "output": "llm-usage",
        # The llm profile gives the model no tools (no -T / --functions): it can read
        # only the prompt and change nothing, whatever the level.
        "permissions": {"read-only": [], "workspace-write": [], "full": []},
    },
}

# Derived from the declarations in cronfile/delivery/kinds.py (each kind declared once).
TARGET_KEYS = delivery_kinds.names()
TARGET_OPTIONS = {k.name: set(k.option_names() - {k.name}) for k in delivery_kinds.KINDS.values()}
DURATION_FIELDS = ("timeout", "retry_backoff", "starting_deadline", "jitter")
DEFAULTS = {
    "timeout": 15 * 60.0,
    "retries": 0,
    "retry_backoff": 30.0,
    "starting_deadline": 60.0,
    "jitter": 0.0,
}


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The shipped JSON schema ``job`` or ``config``."""
    text = resources.files("cronfile").joinpath(f"schemas/{kind}.schema.json").read_text()
    return json.loads(text)


@cache
def _validator(kind: str) -> Any:
    """The shipped schema compiled once per process: the fast path of ``fastschema``,
    with jsonschema explaining what it finds invalid (issue 17: jsonschema was 3.1 s of
    a cold `diff` of 10,000 files)."""
    from .fastschema import Validator

    return Validator(load_schema(kind))


@dataclass(frozen=True)
class AgentProfile:
    name: str
    command: tuple[str, ...]
    model_args: tuple[str, ...] = ()
    stdin: bool = False
    output: str = "text"  # how the answer and usage are read: cronfile.usage.OUTPUT_FORMATS
    # (level, extra argv) for each permissions level the profile supports; empty: the
    # profile declares no mapping and runs only at the default level, adding nothing.
    permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def permission_args(self, level: str) -> tuple[str, ...] | None:
        """The extra argv for a permissions level; None if this profile refuses it."""
        for name, args in self.permissions:
            if name == level:
                return args
        return () if level == "read-only" else None

    def argv(self, prompt: str, model: str | None, permissions: str = "read-only") -> list[str]:
        """The argv for this prompt; the prompt is one element, never shell-parsed.
        With ``stdin: true`` the {prompt} element is dropped (the prompt goes on stdin).
        The permissions level's argv goes before the model arguments (and the prompt)."""
        out: list[str] = []
        model_done = False
        perm = list(self.permission_args(permissions) or ())
        margs = perm + ([a.replace("{model}", model) for a in self.model_args] if model else [])
        want = bool(margs)
        for part in self.command:
            if "{prompt}" in part:
                if want and not model_done:
                    out.extend(margs)
                    model_done = True
                if self.stdin:
                    continue
            if "{model}" in part and not model:
                continue
            out.append(part.replace("{model}", model or "").replace("{prompt}", prompt))
        if want and not model_done:
            out.extend(margs)
        return out


@dataclass(frozen=True)
class Target:
    """One delivery target of a job."""

    kind: str  # a name in cronfile.delivery.kinds.KINDS
    dest: Any  # URL, chat id, address(es), or True for stdout
    on: tuple[str, ...] = ("always",)
    options: Mapping[str, Any] = field(default_factory=dict)

    def wants(self, status: str) -> bool:
        """Whether a run with ``status`` goes to this target (the ``on:`` filter)."""
        if status == Status.silent:
            return "silent" in self.on
        if "always" in self.on:
            return True
        if status == Status.success:
            return "success" in self.on
        return "failure" in self.on and status in FAILURES

    def label(self) -> str:
        decl = delivery_kinds.kind_of(self.kind)
        if decl is not None and not decl.label_dest:
            return self.kind
        return f"{self.kind}:{self.dest}"


@dataclass(frozen=True, slots=True)
class Context:
    files: tuple[str, ...] = ()
    from_job: str | None = None
    script: str | None = None


# A constructor keyword not given: the attribute is what data gives.
_FROM_DATA: Any = object()


class JobSpec:
    """One job as declared, with defaults merged. ``data`` is the normalized mapping that
    is stored in state and hashed; everything else is derived from it.

    A daemon holds one JobSpec per job for its whole life, so a spec keeps only what
    cannot be derived again (issue 17, RSS: 2.7 KB a spec at 30,000 jobs, 80 MB): its
    name, ``data``, where it was read, and the hashes and schedule computed once. Every
    other attribute (``timeout``, ``deliver``, ``env``, ...) is worked out from ``data``
    when asked, as ``spec_from_data`` works it out. The constructor still takes every
    attribute as a keyword; a value that differs from what ``data`` gives is kept
    (``_over``), so what a caller passed is what it reads back."""

    __slots__ = ("name", "data", "source", "line", "positions", "_hash", "_sig", "_over", "_schedule")

    name: str
    data: Mapping[str, Any]
    source: str
    line: int
    # Where each field is in the file, for messages: {("deliver", 0, "on"): (line, col)}
    # packed with marshal (a dict of tuples cost 1.6 KB a job; it is read only to word a
    # problem).
    positions: bytes
    # spec_hash and schedule_sig, computed once: reconcile compares them for every job on
    # every apply (10,000 jobs: 0.15 s of JSON encoding each time), and the parse cache
    # keeps them with the spec.
    _hash: str | None
    _sig: str | None
    _over: dict[str, Any] | None  # constructor values that differ from what data gives
    # The Schedule built last, as (created_at, schedule): checking a job parses its
    # schedule, and reconcile and the warnings asked for it again (a cold `diff` parsed
    # each schedule three times, issue 17). Not pickled (see __getstate__): the parse
    # cache keeps data, and a Schedule is cheap to build again from it. Once built
    # again, one that created_at cannot change is kept bare.
    _schedule: tuple[datetime | None, Schedule] | Schedule | None

    def __init__(
        self,
        name: str,
        data: Mapping[str, Any],
        schedule: str = _FROM_DATA,
        timezone: str = _FROM_DATA,
        kind: Kind = _FROM_DATA,
        anchor: str | None = _FROM_DATA,
        description: str = _FROM_DATA,
        prompt: str | None = _FROM_DATA,
        shell: str | None = _FROM_DATA,
        command: tuple[str, ...] = _FROM_DATA,
        agent: str | None = _FROM_DATA,
        model: str | None = _FROM_DATA,
        permissions: str = _FROM_DATA,  # cronfile.permissions.Level
        context: Context = _FROM_DATA,
        workdir: str = _FROM_DATA,
        env: tuple[tuple[str, str], ...] = _FROM_DATA,
        timeout: float = _FROM_DATA,
        retries: int = _FROM_DATA,
        retry_backoff: float = _FROM_DATA,
        concurrency: Concurrency = _FROM_DATA,
        catchup: Catchup = _FROM_DATA,
        starting_deadline: float = _FROM_DATA,
        jitter: float = _FROM_DATA,
        repeat: int | None = _FROM_DATA,
        enabled: bool = _FROM_DATA,
        labels: tuple[tuple[str, str], ...] = _FROM_DATA,
        deliver: tuple[Target, ...] = _FROM_DATA,
        allow_injection_risk: bool = _FROM_DATA,
        budget: Mapping[str, float] = _FROM_DATA,  # tokens_per_day, cost_per_day
        expect: Mapping[str, Any] = _FROM_DATA,  # contains, regex, non_empty
        source: str = "",
        line: int = 0,
        positions: bytes = b"",
        _memo: Mapping[str, str] | None = None,
    ) -> None:
        given = locals()
        over: dict[str, Any] | None = None
        get = data.get
        for key in _DERIVED_NAMES:
            value = given[key]
            if value is _FROM_DATA:
                continue
            mirror = _MIRRORS.get(key, _FROM_DATA)
            if mirror is not _FROM_DATA and value is get(key, mirror):
                continue  # data's own object (spec_from_data passes those): no need to derive
            if _same(value, _DERIVE[key](data)):
                continue
            if over is None:
                over = {}
            over[key] = value
        sa = object.__setattr__
        sa(self, "name", name)
        sa(self, "data", data)
        sa(self, "source", source)
        sa(self, "line", line)
        sa(self, "positions", _layout(positions))
        sa(self, "_hash", _interned(_memo.get("spec_hash")) if _memo else None)
        sa(self, "_sig", _interned(_memo.get("schedule_sig")) if _memo else None)
        sa(self, "_over", over)
        sa(self, "_schedule", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _fields(self) -> tuple[Any, ...]:
        """Every compared attribute, in the constructor's order (what a dataclass's
        equality compared)."""
        return (self.name, self.data, *(getattr(self, k) for k in _DERIVED_NAMES))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, JobSpec)
        if self is other:
            return True
        if self._over is None and other._over is None:
            # Everything else is derived from data alone.
            return self.name == other.name and self.data == other.data
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # data is a dict: as the dataclass was

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"data={self.data!r}"]
        parts += [f"{k}={getattr(self, k)!r}" for k in _DERIVED_NAMES]
        parts += [f"source={self.source!r}", f"line={self.line!r}"]
        return f"JobSpec({', '.join(parts)})"

    def __getstate__(self) -> list[Any]:
        return [self.name, self.data, self.source, self.line, self.positions, self._hash, self._sig, self._over]

    def __setstate__(self, state: list[Any]) -> None:
        sa = object.__setattr__
        for name, value in zip(_PICKLED, state, strict=True):
            sa(self, name, value)
        sa(self, "positions", _layout(self.positions))
        sa(self, "_hash", _interned(self._hash))  # the state's JobStates share these
        sa(self, "_sig", _interned(self._sig))
        sa(self, "_schedule", None)

    @property
    def _memo(self) -> _Memo:
        """spec_hash and schedule_sig as a mapping (what the builders set them through)."""
        return _Memo(self)

    def where(self, *fpath: str | int) -> tuple[int, int]:
        """Line and column of a field in the job's file (the job's start if unknown)."""
        if not self.positions:
            return (self.line, 1)
        return marshal.loads(self.positions).get(tuple(fpath), (self.line, 1))

    @property
    def spec_hash(self) -> str:
        h = self._hash
        if h is None:
            h = _intern(_hash(self.data))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def schedule_sig(self) -> str:
        h = self._sig
        if h is None:
            h = _intern(schedule_signature(self.data))
            object.__setattr__(self, "_sig", h)
        return h

    def build_schedule(self, created_at: datetime | None = None, *, keep: bool = True) -> Schedule:
        """The job's Schedule (cronfile.schedule); ``created_at`` anchors `in 2h` forms.
        Built once: the same object comes back while ``created_at`` cannot change it.
        ``keep=False``: one built now is not kept (a daemon keeps a bounded few, not one
        for each of 30,000 jobs)."""
        kept = self._schedule
        if kept is not None:
            if type(kept) is not tuple:
                return kept  # (one that created_at cannot change, kept bare)
            if not kept[1].relative:
                object.__setattr__(self, "_schedule", kept[1])
                return kept[1]
            if kept[0] == created_at:
                return kept[1]
        built = _schedule_module().parse(
            self.schedule,
            self.timezone,
            anchor=_parse_anchor(self.anchor) if self.anchor else None,
            created_at=created_at,
            jitter=_seconds(self.jitter),
            jitter_key=self.name,
        )
        # Bare when created_at cannot change it: a daemon keeps one per job (56 bytes
        # of tuple each, 1.7 MB at 30,000 jobs).
        if keep:
            object.__setattr__(self, "_schedule", (created_at, built) if built.relative else built)
        return built

    def forget_schedule(self) -> None:
        """Let the Schedule kept since the spec was checked go (built again when asked)."""
        object.__setattr__(self, "_schedule", None)

    def env_refs(self) -> list[str]:
        """Names of the ``${VAR}`` references cronfile expands: in ``env`` and in delivery
        settings. (``${X}`` in ``shell`` text is the shell's business, not ours.)"""
        return sorted({var for var, _ in self.env_ref_paths()})

    def env_ref_paths(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """Each expanded ``${VAR}`` reference with the field path it appears at."""
        out: list[tuple[str, tuple[str | int, ...]]] = []

        def walk(value: Any, path: tuple[str | int, ...]) -> None:
            if isinstance(value, str):
                out.extend((var, path) for var in VAR_RE.findall(value))
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(v, path + (k,))
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(v, path + (i,))

        walk(self.data.get("env") or {}, ("env",))
        walk(self.data.get("deliver") or [], ("deliver",))
        return out

    # -- what data gives (spec_from_data's rules; a constructor value in _over wins) ----

    def _get(self, key: str) -> Any:
        over = self._over
        if over is not None and key in over:
            return over[key]
        return _DERIVE[key](self.data)

    @property
    def schedule(self) -> str:
        return self._get("schedule")  # type: ignore[no-any-return]

    @property
    def timezone(self) -> str:
        return self._get("timezone")  # type: ignore[no-any-return]

    @property
    def kind(self) -> Kind:
        return self._get("kind")  # type: ignore[no-any-return]

    @property
    def anchor(self) -> str | None:
        return self._get("anchor")  # type: ignore[no-any-return]

    @property
    def description(self) -> str:
        return self._get("description")  # type: ignore[no-any-return]

    @property
    def prompt(self) -> str | None:
        return self._get("prompt")  # type: ignore[no-any-return]

    @property
    def shell(self) -> str | None:
        return self._get("shell")  # type: ignore[no-any-return]

    @property
    def command(self) -> tuple[str, ...]:
        return self._get("command")  # type: ignore[no-any-return]

    @property
    def agent(self) -> str | None:
        return self._get("agent")  # type: ignore[no-any-return]

    @property
    def model(self) -> str | None:
        return self._get("model")  # type: ignore[no-any-return]

    @property
    def permissions(self) -> str:
        return self._get("permissions")  # type: ignore[no-any-return]

    @property
    def context(self) -> Context:
        return self._get("context")  # type: ignore[no-any-return]

    @property
    def workdir(self) -> str:
        return self._get("workdir")  # type: ignore[no-any-return]

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        return self._get("env")  # type: ignore[no-any-return]

    @property
    def timeout(self) -> float:
        return self._get("timeout")  # type: ignore[no-any-return]

    @property
    def retries(self) -> int:
        return self._get("retries")  # type: ignore[no-any-return]

    @property
    def retry_backoff(self) -> float:
        return self._get("retry_backoff")  # type: ignore[no-any-return]

    @property
    def concurrency(self) -> Concurrency:
        return self._get("concurrency")  # type: ignore[no-any-return]

    @property
    def catchup(self) -> Catchup:
        return self._get("catchup")  # type: ignore[no-any-return]

    @property
    def starting_deadline(self) -> float:
        return self._get("starting_deadline")  # type: ignore[no-any-return]

    @property
    def jitter(self) -> float:
        return self._get("jitter")  # type: ignore[no-any-return]

    @property
    def repeat(self) -> int | None:
        return self._get("repeat")  # type: ignore[no-any-return]

    @property
    def enabled(self) -> bool:
        return self._get("enabled")  # type: ignore[no-any-return]

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        return self._get("labels")  # type: ignore[no-any-return]

    @property
    def deliver(self) -> tuple[Target, ...]:
        return self._get("deliver")  # type: ignore[no-any-return]

    @property
    def allow_injection_risk(self) -> bool:
        return self._get("allow_injection_risk")  # type: ignore[no-any-return]

    @property
    def budget(self) -> Mapping[str, float]:
        return self._get("budget")  # type: ignore[no-any-return]

    @property
    def expect(self) -> Mapping[str, Any]:
        return self._get("expect")  # type: ignore[no-any-return]


# One bytes object for each layout of positions: files written from one template put
# their fields at the same lines and columns (30,000 generated jobs have 440 layouts;
# 7 MB as one copy each). Bounded: a daemon that lives through many edits starts over.
_LAYOUTS: dict[bytes, bytes] = {}
_LAYOUTS_MAX = 1 << 16


def _layout(positions: bytes) -> bytes:
    kept = _LAYOUTS.get(positions)
    if kept is None:
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        kept = _LAYOUTS[positions] = positions
    return kept


_PICKLED = ("name", "data", "source", "line", "positions", "_hash", "_sig", "_over")


class _Memo:
    """A spec's spec_hash and schedule_sig, read and set as a mapping (``spec._memo``)."""

    __slots__ = ("_spec",)
    _SLOTS = {"spec_hash": "_hash", "schedule_sig": "_sig"}

    def __init__(self, spec: JobSpec) -> None:
        self._spec = spec

    def get(self, key: str, default: str | None = None) -> str | None:
        value = getattr(self._spec, self._SLOTS[key]) if key in self._SLOTS else None
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __setitem__(self, key: str, value: str) -> None:
        object.__setattr__(self._spec, self._SLOTS[key], _interned(value))


@lru_cache(maxsize=1024)
def _seconds(value: float) -> timedelta:
    """timedelta(seconds=value), one object for each value (a schedule keeps its jitter)."""
    return timedelta(seconds=value)


def _interned(text: str | None) -> str | None:
    """A hash, interned: a daemon's JobStates decode the same text (state.py)."""
    return sys.intern(text) if type(text) is str else text


def _same(a: Any, b: Any) -> bool:
    """Whether a constructor value is what data gives (of the same type too: 60 is
    not 60.0 to a caller that reads it back)."""
    return a is b or (type(a) is type(b) and a == b)


def _dur(data: Mapping[str, Any], key: str) -> float:
    if key in data:
        return parse_duration(data[key]).total_seconds()
    return float(DEFAULTS[key])


def _context(data: Mapping[str, Any]) -> Context:
    ctx = data.get("context")
    return Context(tuple(ctx.get("files") or ()), ctx.get("from_job"), ctx.get("script")) if ctx else _NO_CONTEXT


def _env(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    env = data.get("env")
    return tuple((str(k), str(v) if not isinstance(v, bool) else str(v).lower()) for k, v in env.items()) if env else ()


def _labels(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    labels = data.get("labels")
    return tuple(sorted((str(k), str(v)) for k, v in labels.items())) if labels else ()


def _targets(data: Mapping[str, Any]) -> tuple[Target, ...]:
    targets = []
    for item in data.get("deliver") or ():
        if isinstance(item, str):
            targets.append(Target(item, True))  # a bare kind (validated: stdout)
            continue
        tkind = next(k for k in TARGET_KEYS if k in item)
        opts = {k: v for k, v in item.items() if k not in (tkind, "on")}
        targets.append(Target(tkind, item[tkind], tuple(item.get("on", ("always",))), opts))
    return tuple(targets)


def _kind(data: Mapping[str, Any]) -> Kind:
    for k in executor_kinds.KINDS:  # executor_kinds.job_kind, without its generator
        if k.value in data:
            return k
    raise AssertionError("validated data names its kind")


# Each attribute of a JobSpec that is not kept: how data gives it (spec_from_data's rules).
_DERIVE: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "schedule": lambda d: d["schedule"],
    "timezone": lambda d: d.get("timezone") or "UTC",
    "kind": _kind,
    "anchor": lambda d: d.get("anchor"),
    "description": lambda d: d.get("description", ""),
    "prompt": lambda d: d.get("prompt"),
    "shell": lambda d: d.get("shell"),
    "command": lambda d: tuple(d.get("command") or ()),
    "agent": lambda d: d.get("agent"),
    "model": lambda d: d.get("model"),
    "permissions": lambda d: str(d.get("permissions", "read-only")),
    "context": _context,
    "workdir": lambda d: d.get("workdir", "."),
    "env": _env,
    "timeout": lambda d: _dur(d, "timeout"),
    "retries": lambda d: int(d.get("retries", 0)),
    "retry_backoff": lambda d: _dur(d, "retry_backoff"),
    "concurrency": lambda d: _CONCURRENCY.get(d.get("concurrency")) or Concurrency(d["concurrency"]),
    "catchup": lambda d: _CATCHUP.get(d.get("catchup")) or Catchup(d["catchup"]),
    "starting_deadline": lambda d: _dur(d, "starting_deadline"),
    "jitter": lambda d: _dur(d, "jitter"),
    "repeat": lambda d: d.get("repeat"),
    "enabled": lambda d: bool(d.get("enabled", True)),
    "labels": _labels,
    "deliver": _targets,
    "allow_injection_risk": lambda d: bool(d.get("allow_injection_risk", False)),
    "budget": lambda d: dict(d.get("budget") or {}),
    "expect": lambda d: dict(d.get("expect") or {}),
}
_DERIVED_NAMES = tuple(_DERIVE)
# The attributes that are data's value itself (or this default): checked by identity.
_MIRRORS: dict[str, Any] = {
    "schedule": None, "anchor": None, "description": "", "prompt": None, "shell": None,
    "agent": None, "model": None, "workdir": ".", "repeat": None,
}


@cache
def _schedule_module() -> ModuleType:
    """cronfile.schedule, imported on first use (a function-level import per job cost
    a lookup in sys.modules and the package each time)."""
    from . import schedule

    return schedule


# What json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) makes,
# without a JSONEncoder built per call (json.dumps does that for any non-default option).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_intern = sys.intern


def _hash(data: Any) -> str:
    return _digest(_CANONICAL.encode(data))


# _CANONICAL's C encoder, made once and without sort_keys: for a value whose mappings
# hold their keys in order already (job_from_document's copy), the same text without
# the set-up JSONEncoder.encode does per call or a second sort (issue 17). No markers:
# such a value comes from a YAML document, which cannot hold a cycle (yamlsrc refuses).
_SORTED_ENCODER = (
    c_make_encoder(None, _CANONICAL.default, _encode_str, None, ":", ",", False, False, True)
    if c_make_encoder is not None
    else None
)


def _sorted_text(value: Any) -> str:
    """``_CANONICAL.encode(value)`` for a value whose mappings are key-sorted already."""
    if _SORTED_ENCODER is None:
        return _CANONICAL.encode(value)
    return "".join(_SORTED_ENCODER(value, 0))


def _digest(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def schedule_signature(data: Mapping[str, Any]) -> str:
    """Hash of exactly the fields that decide fire times (docs/design.md section 4)."""

    jitter = data.get("jitter")
    jitter_s: Any
    try:
        jitter_s = parse_duration(jitter).total_seconds() if jitter is not None else 0.0
    except ValueError:
        jitter_s = jitter
    anchor = data.get("anchor")
    if anchor:
        try:
            anchor = _parse_anchor(anchor).isoformat()
        except ValueError:
            pass
    schedule = " ".join(str(data.get("schedule", "")).split())
    timezone = data.get("timezone")
    if type(jitter_s) is float and math.isfinite(jitter_s) and _str_or_none(anchor) and _str_or_none(timezone):
        # The text _hash would encode (sorted keys, no spaces), written out: a JSON
        # encoder per job was a third of reconcile's time on a first apply (issue 17).
        # tests/test_load.py holds the two to the same text.
        return _digest(
            '{"anchor":' + _json_text(anchor) + ',"jitter":' + repr(jitter_s)
            + ',"schedule":' + _encode_str(schedule) + ',"timezone":' + _json_text(timezone) + "}"
        )
    return _hash({"schedule": schedule, "timezone": timezone, "anchor": anchor, "jitter": jitter_s})


def _str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _json_text(value: str | None) -> str:
    return "null" if value is None else _encode_str(value)


def _parse_anchor(text: str) -> datetime:
    from datetime import UTC

    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Config:
    """cronfile.yaml, with defaults filled in."""

    timezone: str = "UTC"
    max_concurrent: int = 4
    history_limit: int = 100
    state_dir: str | None = None
    state_url: str | None = None  # a shared store: postgresql://... (cronfile/stores/url.py)
    default_agent: str | None = None
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)
    webhook_allowlist: tuple[str, ...] = ()
    allow_private_webhooks: bool = False
    injection_patterns: tuple[str, ...] = ()
    shutdown_grace: float = 30.0
    output_limit: int = 1024 * 1024
    context_file_limit: int = 1024 * 1024  # bytes a context file may have
    context_total_limit: int = 4 * 1024 * 1024  # bytes all of a job's context files may have
    smtp: Mapping[str, Any] = field(default_factory=dict)
    telegram_api: str = "https://api.telegram.org"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    path: str = "cronfile.yaml"

    def agent(self, name: str) -> AgentProfile | None:
        return self.agents.get(name)


def _builtin_profiles() -> dict[str, AgentProfile]:
    return {
        n: AgentProfile(
            n,
            tuple(p["command"]),
            tuple(p.get("model_args", ())),
            bool(p.get("stdin")),
            p.get("output", "text"),
            tuple((lvl, tuple(a)) for lvl, a in p.get("permissions", {}).items()),
        )
        for n, p in BUILTIN_AGENTS.items()
    }


# -- schema errors -> problems -------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_EXPECT = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


def _schema_problems(kind: str, data: Any, doc: Document, skip: tuple[str, ...] = ()) -> list[Problem]:
    """Run the JSON schema and turn each error into a one-line problem at its source."""
    schema = load_schema(kind)
    problems: list[Problem] = []
    for err in _validator(kind).iter_errors(data):
        fpath = tuple(err.absolute_path)
        if fpath and fpath[0] in skip:
            continue
        v = err.validator
        inst = err.instance
        if v == "additionalProperties" and isinstance(inst, dict):
            allowed = set(err.schema.get("properties", {}))
            for key in sorted(set(inst) - allowed):
                hint = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
                msg = "unknown field" + (f" (did you mean {hint[0]}?)" if hint else "")
                if not hint and allowed:
                    msg += f"; expected one of: {', '.join(sorted(allowed))}"
                line, col = doc.where(fpath + (key,), key=True)
                problems.append(Problem(doc.path, line, col, dotted(fpath + (key,)), msg))
            continue
        line, col = doc.where(fpath)
        fname = dotted(fpath)
        if v == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            problems.append(Problem(doc.path, line, col, dotted(fpath + (missing,)), "missing (required)"))
            continue
        if v == "oneOf" and not fpath and isinstance(inst, dict):
            present = [k.value for k in executor_kinds.KINDS if k.value in inst]
            if not present:
                msg = f"a job needs one of {executor_kinds.keys_phrase()}"
                problems.append(Problem(doc.path, line, col, "", msg))
            else:
                l2, c2 = doc.where((present[1],), key=True)
                msg = f"only one of {executor_kinds.keys_phrase()} (found {', '.join(present)})"
                problems.append(Problem(doc.path, l2, c2, present[1], msg))
            continue
        if v == "type":
            want = err.validator_value
            wants = [want] if isinstance(want, str) else list(want)
            desc = " or ".join(_EXPECT.get(w, w) for w in wants)
            msg = f"expected {desc}, got {_type_name(inst)}"
        elif v == "enum":
            msg = f"{json.dumps(inst)} is not one of {', '.join(map(str, err.validator_value))}"
        elif v == "pattern" and fpath and fpath[-1] == "name":
            msg = (
                f"{json.dumps(inst)} is not a valid job name (lower-case letters, digits, "
                "'.', '_', '-'; 1-64 characters, starting with a letter or digit)"
            )
        elif v == "minimum":
            msg = f"{inst} is less than the minimum {err.validator_value}"
        elif v == "maximum":
            msg = f"{inst} is more than the maximum {err.validator_value}"
        elif v in ("minItems", "minLength"):
            msg = "must not be empty"
        else:
            msg = err.message
        problems.append(Problem(doc.path, line, col, fname, msg))
    del schema
    return problems


# -- config ----------------------------------------------------------------------------


def config_from_document(doc: Document | None) -> tuple[Config, list[Problem]]:
    """Validate cronfile.yaml (``None``: no file, all defaults)."""
    from . import schedule as sched

    agents = _builtin_profiles()
    if doc is None:
        return Config(agents=agents), []
    data = doc.data
    if not isinstance(data, dict):
        return Config(agents=agents), [
            Problem(doc.path, doc.line, doc.column, "", f"expected a mapping, got {_type_name(data)}")
        ]
    problems = _schema_problems("config", data, doc)
    tz = data.get("timezone", "UTC")
    if isinstance(tz, str):
        try:
            sched.get_zone(tz)
        except sched.ScheduleError as e:
            problems.append(Problem(doc.path, *doc.where(("timezone",)), "timezone", str(e)))
            tz = "UTC"
    grace = 30.0
    if "shutdown_grace" in data:
        try:
            grace = parse_duration(data["shutdown_grace"]).total_seconds()
        except (ValueError, TypeError) as e:
            problems.append(Problem(doc.path, *doc.where(("shutdown_grace",)), "shutdown_grace", str(e)))
    for name, prof in (data.get("agents") or {}).items():
        if isinstance(prof, dict) and isinstance(prof.get("command"), list):
            cmd = tuple(str(c) for c in prof["command"])
            if not prof.get("stdin") and not any("{prompt}" in c for c in cmd):
                problems.append(
                    Problem(
                        doc.path,
                        *doc.where(("agents", name, "command")),
                        f"agents.{name}.command",
                        "needs a {prompt} placeholder (or stdin: true)",
                    )
                )
            agents[name] = AgentProfile(
                name,
                cmd,
                tuple(str(a) for a in prof.get("model_args", ())),
                bool(prof.get("stdin")),
                str(prof.get("output", "text")),
                tuple(
                    (str(lvl), tuple(str(a) for a in args))
                    for lvl, args in (prof.get("permissions") or {}).items()
                    if isinstance(args, list)
                ),
            )
    defaults = data.get("defaults") or {}
    if isinstance(defaults, dict):
        for key in ("name", "schedule", "prompt", "shell", "command"):
            if key in defaults:
                problems.append(
                    Problem(
                        doc.path,
                        *doc.where(("defaults", key), key=True),
                        f"defaults.{key}",
                        "cannot be a default: it is what makes each job itself",
                    )
                )
        sub = Document(doc.path, defaults, doc.line, doc.column)
        sub.positions = {k[1:]: v for k, v in doc.positions.items() if k[:1] == ("defaults",)}
        sub.key_positions = {k[1:]: v for k, v in doc.key_positions.items() if k[:1] == ("defaults",)}
        for p in _schema_problems("job", {"schedule": "@daily", "shell": "true", **defaults}, sub):
            problems.append(
                Problem(p.path, p.line, p.column, "defaults." + p.field if p.field else "defaults", p.message)
            )
        for key in DURATION_FIELDS:
            value = defaults.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                try:
                    parse_duration(value)
                except ValueError as e:
                    problems.append(Problem(doc.path, *doc.where(("defaults", key)), f"defaults.{key}", str(e)))
        tz_default = defaults.get("timezone")
        if isinstance(tz_default, str):
            try:
                sched.get_zone(tz_default)
            except sched.ScheduleError as e:
                problems.append(Problem(doc.path, *doc.where(("defaults", "timezone")), "defaults.timezone", str(e)))
    default_agent = data.get("default_agent")
    if isinstance(default_agent, str) and default_agent not in agents:
        problems.append(
            Problem(
                doc.path,
                *doc.where(("default_agent",)),
                "default_agent",
                f"unknown agent profile {default_agent!r} (known: {', '.join(sorted(agents))})",
            )
        )
    cfg = Config(
        timezone=tz if isinstance(tz, str) else "UTC",
        max_concurrent=int(data.get("max_concurrent", 4)) if isinstance(data.get("max_concurrent", 4), int) else 4,
        history_limit=int(data.get("history_limit", 100)) if isinstance(data.get("history_limit", 100), int) else 100,
        state_dir=data.get("state_dir") if isinstance(data.get("state_dir"), str) else None,
        state_url=data.get("state_url") if isinstance(data.get("state_url"), str) else None,
        default_agent=default_agent if isinstance(default_agent, str) else None,
        agents=agents,
        webhook_allowlist=tuple(str(h) for h in data.get("webhook_allowlist") or ()),
        allow_private_webhooks=bool(data.get("allow_private_webhooks", False)),
        injection_patterns=tuple(str(p) for p in data.get("injection_patterns") or ()),
        shutdown_grace=grace,
        output_limit=int(data.get("output_limit", 1024 * 1024)) if isinstance(data.get("output_limit", 0), int) else 1024 * 1024,
        context_file_limit=_int_or(data.get("context_file_limit"), 1024 * 1024),
        context_total_limit=_int_or(data.get("context_total_limit"), 4 * 1024 * 1024),
        smtp=dict(data.get("smtp") or {}),
        telegram_api=str(data.get("telegram_api", "https://api.telegram.org")).rstrip("/"),
        defaults=dict(defaults) if isinstance(defaults, dict) else {},
        data=data,
        path=doc.path,
    )
    return cfg, problems


# -- jobs ------------------------------------------------------------------------------


def merge_defaults(data: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A job's fields with cronfile.yaml's ``defaults`` under them. ``env`` and ``labels``
    merge key by key (the job wins); every other field is taken whole."""
    out = dict(data)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif key in ("env", "labels") and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = {**value, **out[key]}
    return out


def job_from_document(
    doc: Document,
    config: Config,
    *,
    default_name: str | None,
    now: datetime | None = None,
) -> tuple[JobSpec | None, list[Problem]]:
    """Validate one YAML document as a job. ``default_name`` is the file stem when the
    file holds a single job (else None, and the job must name itself)."""
    sched = _schedule_module()
    P = doc.path
    if not isinstance(doc.data, dict):
        return None, [Problem(P, doc.line, doc.column, "", f"a job must be a mapping, got {_type_name(doc.data)}")]
    own = dict(doc.data)
    for key in ("env", "labels"):
        # Environment values and labels are text: pass `0022` or `1.10` as written.
        if isinstance(own.get(key), dict):
            own[key] = {
                k: doc.raw.get((key, k), v) if isinstance(v, (int, float)) else v  # noqa: UP038 - a tuple: no UnionType built per value
                for k, v in own[key].items()
            }
    data = merge_defaults(own, config.defaults) if config.defaults else own  # own: a copy already
    problems: list[Problem] = []
    if "name" not in data:
        if default_name is None:
            problems.append(Problem(P, doc.line, doc.column, "name", "required when a file holds several jobs"))
            return None, problems
        if not NAME_RE.match(default_name):
            problems.append(
                Problem(
                    P,
                    doc.line,
                    doc.column,
                    "name",
                    f"the file name {default_name!r} is not a valid job name; set name: explicitly",
                )
            )
            # Go on with a stand-in, so the file's other problems are listed too.
            default_name = "invalid-file-name"
        data["name"] = default_name

    if not _validator("job").is_valid(data):  # the compiled check: a valid job costs one call
        problems += _schema_problems("job", data, doc, skip=("deliver",))
    if "deliver" in data:
        problems += _deliver_problems(data["deliver"], doc)

    def where(*fp: str | int) -> tuple[int, int]:
        return doc.where(tuple(fp))

    # Durations.
    seconds: dict[str, float] = {}
    for key in DURATION_FIELDS:
        if key in data and isinstance(data[key], (str, int, float)) and not isinstance(data[key], bool):  # noqa: UP038 - no UnionType per job
            try:
                seconds[key] = parse_duration(data[key]).total_seconds()
            except ValueError as e:
                problems.append(Problem(P, *where(key), key, str(e)))
                continue
            if key in ("timeout", "retry_backoff") and seconds[key] <= 0:
                problems.append(Problem(P, *where(key), key, "must be more than 0"))

    # Timezone and schedule.
    tz = data.get("timezone", config.timezone)
    zone = None
    if isinstance(tz, str):
        try:
            zone = sched.get_zone(tz)  # (handed to the schedule's parse: one look-up)
        except sched.ScheduleError as e:
            problems.append(Problem(P, *where("timezone"), "timezone", str(e)))
            tz = None
    else:
        tz = None
    anchor = data.get("anchor")
    if isinstance(anchor, str):
        try:
            _parse_anchor(anchor)
        except ValueError:
            problems.append(Problem(P, *where("anchor"), "anchor", f"{anchor!r} is not an ISO-8601 instant (e.g. 2026-01-01T00:00:00Z)"))
            anchor = None
    expr = data.get("schedule")
    parsed: Schedule | None = None
    if isinstance(expr, str) and tz is not None:
        try:
            s = parsed = sched.parse(
                expr,
                zone or tz,
                anchor=_parse_anchor(anchor) if isinstance(anchor, str) else None,
                created_at=now,
                jitter=_seconds(seconds.get("jitter", 0.0)),
                jitter_key=str(data.get("name")),
            )
            if anchor and s.kind != "interval":
                problems.append(Problem(P, *where("anchor"), "anchor", "only applies to `every` schedules"))
        except sched.ScheduleError as e:
            problems.append(Problem(P, *where("schedule"), "schedule", str(e)))

    # Agent profile.
    kind = Kind.shell
    for key, k in _KIND_KEYS:  # executor_kinds.job_kind, without its generator
        if key in data:
            kind = k
            break
    agent = data.get("agent")
    if kind is Kind.prompt:
        if agent is None:
            agent = config.default_agent
            if agent is None:
                problems.append(
                    Problem(P, *where("prompt"), "agent", "a prompt job needs agent: (or default_agent in cronfile.yaml)")
                )
        if isinstance(agent, str) and config.agent(agent) is None:
            problems.append(
                Problem(
                    P,
                    *where("agent"),
                    "agent",
                    f"unknown agent profile {agent!r} (known: {', '.join(sorted(config.agents))})",
                )
            )
    foreign = _foreign_fields(kind)
    if not _FOREIGN_KEYS[kind].isdisjoint(doc.data):
        for key, other in foreign:
            if key in doc.data:
                problems.append(Problem(P, *doc.where((key,), key=True), key, f"only applies to {other} jobs"))

    expect = data.get("expect")
    if isinstance(expect, dict) and isinstance(expect.get("regex"), str):
        try:
            re.compile(expect["regex"])
        except re.error as e:
            problems.append(Problem(P, *where("expect", "regex"), "expect.regex", f"{expect['regex']!r} is not a valid regular expression: {e}"))

    inherited = set(config.defaults) - set(doc.data) if config.defaults else None
    if inherited:
        # Reported once by config_from_document at cronfile.yaml's line, not per job.
        problems = [p for p in problems if p.field.split(".")[0].split("[")[0] not in inherited]
        if any(p.severity == "error" for p in config_problems_for_defaults(config)):
            problems.append(Problem(P, doc.line, doc.column, "", f"inherits invalid defaults from {config.path}"))
    if kind is Kind.prompt:  # (no agent, no profile: nothing to check)
        problems += _permission_problems(doc, data, agent, config)
    if problems and any(p.severity == "error" for p in problems):
        return None, problems

    norm = data  # a copy of the document's mapping already (own, or merged with defaults)
    norm["timezone"] = tz
    if kind is Kind.prompt:
        norm["agent"] = agent
    else:
        norm.pop("permissions", None)  # a default for agent jobs; nothing to a shell job
    # The data as json.loads(canonical JSON) gives it (keys sorted at every level),
    # copied without encoding and decoding (issue 17: the round trip was 8% of a cold
    # read). Keys and short values interned: 30,000 jobs repeat the same few dozen of
    # them (field names, kinds, zones), and a pickle of the parse cache then keeps one copy.
    norm = {
        _intern(k): (_intern(v) if len(v) <= 40 else v) if type(v) is str else v if type(v) in _SCALARS else _sorted_copy(v)
        for k, v in sorted(norm.items())
    }
    # Its canonical JSON (what spec_hash digests), written without sorting it again.
    blob = _sorted_text(norm)
    spec = spec_from_data(norm, source=P, line=doc.line, positions=marshal.dumps(doc.positions), _kind=kind)
    try:
        object.__setattr__(spec, "_hash", _intern(_digest(blob)))
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in a double-quoted scalar): YAML reads it, but it is
        # not text, and nothing can write it (the hash, the state, a child's argv).
        path, bad = _surrogate_at(norm)  # (with what the defaults added)
        field = dotted(path)
        return None, [*problems, Problem(P, *where(*path), field, f"{bad!r} holds a lone surrogate (half of a UTF-16 pair), which is not text: write the character itself")]
    if parsed is not None:
        object.__setattr__(spec, "_schedule", (now, parsed))
    return spec, problems


_KIND_KEYS = tuple((k.value, k) for k in executor_kinds.KINDS)  # (key, kind), in declaration order
# JSON's scalar types as a validated job holds them (bool is not int here: type() is exact).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _surrogate_at(value: Any, path: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str]:
    """The path of the first text in ``value`` (a key or a value) that UTF-8 cannot
    encode, and that text; ((), "") if none."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                try:
                    k.encode()
                except UnicodeEncodeError:
                    return (*path, k), k
            found = _surrogate_at(v, (*path, k))
            if found[0] or found[1]:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _surrogate_at(v, (*path, i))
            if found[0] or found[1]:
                return found
    return (), ""


def _sorted_copy(value: Any) -> Any:
    """``json.loads(_CANONICAL.encode(value))`` for the data of a job (mappings with text
    keys, lists, JSON scalars): mappings copied with their keys sorted, lists copied."""
    t = type(value)
    if t is dict:
        return {k: _sorted_copy(value[k]) for k in sorted(value)}
    if t is list:
        return [_sorted_copy(v) for v in value]
    if t in _SCALARS:
        return value
    return json.loads(_CANONICAL.encode(value))  # anything else: as the round trip made it


@cache
def _foreign_fields(kind: Kind) -> tuple[tuple[str, Kind], ...]:
    """(field, its kind) for the fields that apply only to another kind than ``kind``,
    in declaration order."""
    return tuple((key, other.kind) for other in executor_kinds.KINDS.values() if other.kind is not kind for key in other.only)


_FOREIGN_KEYS = {k: frozenset(key for key, _ in _foreign_fields(k)) for k in Kind}


def _permission_problems(doc: Document, data: Mapping[str, Any], agent: Any, config: Config) -> list[Problem]:
    """A level the job's profile has no flags for is refused: cronfile cannot know what a
    custom program needs to stay inside it (README, Unattended safety)."""
    level = data.get("permissions", "read-only")
    profile = config.agent(agent) if isinstance(agent, str) else None
    if profile is None or not isinstance(level, str) or profile.permission_args(level) is not None:
        return []
    if level not in ("read-only", "workspace-write", "full"):
        return []  # the schema said so already
    if "permissions" in doc.data:
        line, col = doc.where(("permissions",))
        origin = ""
    else:
        line, col = doc.where(("agent",)) if "agent" in doc.data else (doc.line, doc.column)
        origin = f" (from defaults in {config.path})"
    known = [lvl for lvl, _ in profile.permissions] or ["read-only"]
    msg = (
        f"{level}{origin} is not declared by agent profile {profile.name!r} "
        f"(it declares: {', '.join(known)}); add agents.{profile.name}.permissions.{level} "
        f"to {config.path} with the flags that give that level"
    )
    return [Problem(doc.path, line, col, "permissions", msg)]


def config_problems_for_defaults(config: Config) -> list[Problem]:
    """Whether the config's defaults themselves are invalid (checked without positions)."""

    out = []
    for key in DURATION_FIELDS:
        value = config.defaults.get(key)
        if value is not None:
            try:
                parse_duration(value)
            except (ValueError, TypeError) as e:
                out.append(Problem(config.path, 0, 0, f"defaults.{key}", str(e)))
    return out


def _deliver_problems(items: Any, doc: Document) -> list[Problem]:
    P = doc.path
    if items is None:
        return []
    if not isinstance(items, list):
        return [Problem(P, *doc.where(("deliver",)), "deliver", f"expected a list, got {_type_name(items)}")]
    out: list[Problem] = []
    for i, item in enumerate(items):
        if type(item) is str and item in delivery_kinds.BARE:
            continue  # `- stdout`: nothing to say, nothing to work out where
        fp: tuple[str | int, ...] = ("deliver", i)
        line, col = doc.where(fp)
        name = dotted(fp)
        bare = " or ".join(delivery_kinds.BARE)
        if isinstance(item, str):
            if item not in delivery_kinds.BARE:
                out.append(
                    Problem(
                        P, line, col, name,
                        f"unknown target {item!r}: expected {bare} or a mapping with one of {', '.join(TARGET_KEYS)}",
                    )
                )
            continue
        if not isinstance(item, dict):
            out.append(Problem(P, line, col, name, f"expected {bare} or a mapping, got {_type_name(item)}"))
            continue
        targets = [k for k in TARGET_KEYS if k in item]
        if len(targets) != 1:
            msg = (
                f"needs one target key: {', '.join(TARGET_KEYS)}"
                if not targets
                else f"one target per item (found {', '.join(targets)})"
            )
            out.append(Problem(P, line, col, name, msg))
            continue
        kind = targets[0]
        decl = delivery_kinds.KINDS[kind]
        allowed = set(decl.option_names())
        for key in item:
            if key not in allowed:
                known = {o for opts in TARGET_OPTIONS.values() for o in opts} | set(TARGET_KEYS)
                if key in known:
                    msg = f"does not apply to a {kind} target"
                else:
                    hint = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
                    msg = "unknown field" + (f" (did you mean {hint[0]}?)" if hint else f"; expected one of: {', '.join(sorted(allowed))}")
                out.append(Problem(P, *doc.where(fp + (key,), key=True), dotted(fp + (key,)), msg))
        sub = Document(P, {"deliver": [item]}, doc.line, doc.column)
        sub.positions = {("deliver", 0) + k[2:]: v for k, v in doc.positions.items() if k[:2] == fp}
        sub.key_positions = {("deliver", 0) + k[2:]: v for k, v in doc.key_positions.items() if k[:2] == fp}
        for p in _item_schema_problems(item, sub):
            out.append(Problem(p.path, p.line, p.column, p.field.replace("deliver[0]", name, 1), p.message))
        for option in decl.options:
            if option.required is not None and option.name not in item:
                why = f"missing (required for {kind}; {option.required})"
                out.append(Problem(P, line, col, f"{name}.{option.name}", why))
        if decl.url and isinstance(item[kind], str):
            url = item[kind]
            if not re.match(r"^https?://[^/\s]+", url) and not VAR_RE.fullmatch(url):
                out.append(Problem(P, *doc.where(fp + (kind,)), f"{name}.{kind}", f"{url!r} is not an http(s) URL"))
    return out


@cache
def _option_validators() -> dict[str, tuple[Any, str | None]]:
    """Each delivery option's schema validator and its message for a oneOf mismatch,
    from the declarations (cronfile.delivery.kinds). Compiled by fastschema, so that a
    valid option costs no jsonschema (which still words the errors of an invalid one)."""
    from .fastschema import Validator

    out: dict[str, tuple[Any, str | None]] = {}
    for decl in delivery_kinds.KINDS.values():
        for option in (decl.dest, *decl.options, delivery_kinds.ON):
            out[option.name] = (Validator(dict(option.schema)), option.mismatch)
    return out


def _item_schema_problems(item: dict[str, Any], sub: Document) -> list[Problem]:
    validators = _option_validators()
    out = []
    for key, value in item.items():
        if key not in validators:
            continue
        v, mismatch = validators[key]
        for err in v.iter_errors(value):
            fp = ("deliver", 0, key) + tuple(err.absolute_path)
            line, col = sub.where(fp)
            if err.validator == "type":
                want = err.validator_value
                wants = [want] if isinstance(want, str) else list(want)
                msg = f"expected {' or '.join(_EXPECT.get(w, w) for w in wants)}, got {_type_name(err.instance)}"
            elif err.validator == "enum":
                msg = f"{json.dumps(err.instance)} is not one of {', '.join(map(str, err.validator_value))}"
            elif err.validator == "oneOf" and mismatch is not None:
                msg = mismatch
            else:
                msg = err.message
            out.append(Problem(sub.path, line, col, dotted(fp), msg))
            break
    return out


def spec_from_data(
    data: Mapping[str, Any],
    *,
    source: str = "",
    line: int = 0,
    positions: bytes = b"",
    _kind: Kind | None = None,
) -> JobSpec:
    """Build a JobSpec from normalized data (validated before, or read back from state)."""
    # Every other attribute is derived from data when read (JobSpec's _DERIVE rules, the
    # ones this function applied eagerly before): passing them would make the
    # constructor derive each one again only to compare (5 µs a job, issue 17).
    assert (_kind if _kind is not None else executor_kinds.job_kind(data)) is not None, "validated data names its kind"
    # What JobSpec(name=, data=, source=, line=, positions=) makes, without the
    # constructor's walk over its 28 other keywords, none of them given here (issue 17).
    spec = _new_spec(JobSpec)
    sa = object.__setattr__
    sa(spec, "name", data["name"])
    sa(spec, "data", data)
    sa(spec, "source", source)
    sa(spec, "line", line)
    sa(spec, "positions", _layout(positions))
    sa(spec, "_hash", None)
    sa(spec, "_sig", None)
    sa(spec, "_over", None)
    sa(spec, "_schedule", None)
    return spec


_new_spec = object.__new__


_NO_CONTEXT = Context()  # immutable: one for every job without `context`

# The enums by their text (None: the default), without EnumType.__call__ per job.
_CONCURRENCY: dict[Any, Concurrency] = {None: Concurrency.forbid, **{c.value: c for c in Concurrency}}
_CATCHUP: dict[Any, Catchup] = {None: Catchup.skip, **{c.value: c for c in Catchup}}


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def cross_problems(specs: Iterable[JobSpec]) -> list[Problem]:
    """Checks across jobs: ``from_job`` must name a job that exists, and not itself."""
    specs = list(specs)
    names = {s.name for s in specs}
    out = []
    for s in specs:
        if s._over is None and "context" not in s.data:
            continue  # no context: no from_job (without deriving a Context per job)
        ref = s.context.from_job
        if ref is not None and (ref not in names or ref == s.name):
            why = "cannot be the job itself" if ref == s.name else f"no job named {ref!r}"
            hint = difflib.get_close_matches(ref, sorted(names), n=1)
            if hint and ref != s.name:
                why += f" (did you mean {hint[0]}?)"
            out.append(Problem(s.source, *s.where("context", "from_job"), "context.from_job", why))
    return out
