"""The executor interface: turn a job into what to spawn, or into an early outcome.

An executor only *prepares*: it decides argv, working directory, environment and stdin
(``Prepared``), or that the run ends before anything starts (``Early``: refused by the
injection guard, silenced by a context script, or failed because something is missing).
Spawning, waiting, timeouts and retries are the runner's (``cronfile.runner``) and
``process``'s, the same for every kind of job.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from ..delivery.kinds import literal_secrets
from ..paths import run_paths_reason
from ..secrets import Masker, MissingVariable, expand_env, var_names
from ..spec import Config, JobSpec, Status
from ..usage import Usage

__all__ = [
    "Early",
    "Executor",
    "Prepared",
    "RunContext",
    "job_env",
    "prepare_common",
    "resolve_program",
    "secret_values",
]


@dataclass(frozen=True)
class RunContext:
    """Everything a run needs; the engine builds it."""

    spec: JobSpec
    config: Config
    root: Path  # the jobs repo root; workdir and context files are relative to it
    run_id: str
    job: str
    scheduled_for: datetime | None
    trigger: str
    log_path: Path
    environ: Mapping[str, str]  # the engine's environment: the base of the child's
    from_job_output: str | None = None  # latest successful output of context.from_job
    output_limit: int = 1024 * 1024
    stream: IO[bytes] | None = None  # `cronfile run NAME` mirrors output here as it comes
    budget_used: Usage | None = None  # the job's usage over the last 24 hours, if it has a budget
    box: Any = None  # executors.contain.Box: where every process of the run goes
    deadline: float | None = None  # time.monotonic() by which the first attempt must end
    engine: str = ""  # the claiming engine's id: with the run id, names the run's cgroup


@dataclass(frozen=True)
class Prepared:
    """What to spawn."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: bytes | None
    masker: Masker = field(default_factory=Masker)
    # An agent profile's output format (cronfile.usage): the output is read through a
    # decoder that keeps the answer and the usage. None: the output is copied as it is.
    output_format: str | None = None


@dataclass(frozen=True)
class Early:
    """An outcome decided before spawning anything."""

    status: Status
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    def prepare(
        self,
        ctx: RunContext,
        *,
        cancel: threading.Event | None = None,
        on_spawn: Callable[[int], None] | None = None,
    ) -> Prepared | Early:
        """``cancel`` and ``on_spawn`` concern helper processes started while preparing
        (an agent job's context script): they are stopped on cancel like the run, and
        their process group is reported like the run's."""
        ...


def secret_values(spec: JobSpec, config: Config, environ: Mapping[str, str]) -> list[str]:
    """Every value a ``${VAR}`` of this job brings in, wherever it is (the job's env, its
    delivery URLs, secrets, headers and tokens, the smtp settings), and the literal smtp
    password and telegram tokens: what the masker hides in the run's output and in what
    is delivered."""
    names = var_names(spec.data.get("env") or {}) | var_names(spec.data.get("deliver") or [])
    names |= var_names(dict(config.smtp))
    values = [environ[n] for n in names if n in environ]
    if config.smtp.get("password"):
        values.append(str(config.smtp["password"]))
    for t in spec.deliver:
        values += literal_secrets(t.kind, t.options)
    return values


def delivery_only_names(spec: JobSpec, config: Config) -> set[str]:
    """Variables only deliveries or smtp use: the job's processes never get them."""
    used_by_job = var_names(spec.data.get("env") or {})
    # The shared store's URL and its ${VAR}s (a database password) are cronfile's alone.
    store = var_names(getattr(config, "state_url", None) or "") | {"CRONFILE_STATE_URL"}
    return (var_names(spec.data.get("deliver") or []) | var_names(dict(config.smtp)) | store) - used_by_job


def job_env(ctx: RunContext) -> tuple[dict[str, str], Masker]:
    """The child's environment and the masker for its output. Raises MissingVariable.

    The engine's environment less the variables only deliveries and smtp use, then the
    job's ``env`` with ``${VAR}`` expanded from it, then the CRONFILE_* variables, which
    a job cannot override (a process that sees CRONFILE_RUN_ID knows it runs under
    cronfile, docs/design.md section 5). The masker hides every ``${VAR}`` value of the job
    (secret_values), not only those of its env."""
    base, masker = _job_base(ctx.spec, ctx.config, ctx.environ)
    env = dict(base)
    env.update(
        CRONFILE_JOB=ctx.job,
        CRONFILE_RUN_ID=ctx.run_id,
        CRONFILE_SCHEDULED_FOR=ctx.scheduled_for.isoformat() if ctx.scheduled_for else "",
        CRONFILE_TRIGGER=str(ctx.trigger),
    )
    return env, masker


# What only the spec, the config and the engine's environment decide (the environment
# before the CRONFILE_* variables, and the masker) is the same for every run of a job
# until one of them is replaced (a reload makes new ones): worked out once, not at
# every run (issue 17, round 10: 50 us of each run's preparing). Keyed by identity and
# checked against the objects themselves; at most _BASES jobs, the oldest dropped.
_BASES = 1024
_bases: dict[tuple[int, int, int], tuple[JobSpec, Config, Mapping[str, str], dict[str, str], Masker]] = {}
_bases_lock = threading.Lock()


def _job_base(spec: JobSpec, config: Config, environ: Mapping[str, str]) -> tuple[dict[str, str], Masker]:
    key = (id(spec), id(config), id(environ))
    hit = _bases.get(key)
    if hit is not None and hit[0] is spec and hit[1] is config and hit[2] is environ:
        return hit[3], hit[4]
    expanded, secrets = expand_env(spec.env, environ)  # (MissingVariable: never kept)
    secrets += secret_values(spec, config, environ)
    hidden = delivery_only_names(spec, config)
    base = {k: v for k, v in environ.items() if k not in hidden}
    base.update(expanded)
    masker = Masker(secrets)
    with _bases_lock:
        if len(_bases) >= _BASES:
            _bases.pop(next(iter(_bases)), None)
        _bases[key] = (spec, config, environ, base, masker)
    return base, masker


def prepare_common(ctx: RunContext) -> tuple[Path, dict[str, str], Masker] | Early:
    """The working directory, environment and masker every kind of job needs."""
    try:
        env, masker = job_env(ctx)
    except MissingVariable as e:
        return Early(Status.failed, str(e), {"error": str(e), "variable": e.name})
    refused = run_paths_reason(ctx.root, ctx.spec)
    if refused is not None:
        # Validate refuses it too; here the repo changed since (a symlink swapped).
        return Early(Status.refused, refused, {"reason": refused})
    workdir = ctx.spec.workdir
    cwd = ctx.root if workdir == "." else ctx.root / workdir  # (most jobs: no join)
    if not os.path.isdir(cwd):
        msg = f"workdir {ctx.spec.workdir!r} does not exist ({cwd})"
        return Early(Status.failed, msg, {"error": msg})
    return cwd, env, masker


def resolve_program(program: str, cwd: Path, env: Mapping[str, str]) -> str | None:
    """The path of ``program``: relative to ``cwd`` if it contains a slash, else looked
    up on the child's PATH (its env may change PATH). None if not found or not
    executable."""
    if os.sep in program:
        path = cwd / program
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(program, path=env.get("PATH", os.defpath))
