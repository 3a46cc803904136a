"""``prompt:`` jobs: assemble the prompt, guard it, and hand it to an agent profile.

The prompt is built in a fixed order (docs/design.md section 2): each ``context.files`` entry
under a header naming its path, then the latest successful output of
``context.from_job``, then the stdout of ``context.script``, then the job's prompt.
Before any agent starts, every context section is scanned by the injection guard (the
job's own prompt was reviewed with its file and is not). The prompt reaches the agent on
stdin (every built-in profile) or as one argv element, never through a shell.

The context script is the hermes-agent style gate: if the first line of its stdout is
``{"wakeAgent": false}`` there is nothing to do, the agent is not started and the run
is ``silent``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import guard
from ..durations import format_duration
from ..paths import PathRefused, read_context_files
from ..secrets import Masker
from ..spec import Status
from ..usage import budget_refusal
from .base import Early, Prepared, RunContext, prepare_common, resolve_program
from .process import run_capture

__all__ = ["AgentExecutor", "assemble_prompt"]

_STDERR_TAIL = 2000  # characters of a failed script's stderr kept in the message


def _header(title: str) -> str:
    return f"--- {title} ---"


def assemble_prompt(sections: list[tuple[str, str, str]], prompt: str) -> str:
    """``sections`` are (guard source, header title, text). Without context the prompt
    is passed as written; with context each part gets a header, the prompt too, so the
    agent can tell the task from the material."""
    if not sections:
        return prompt
    parts = [f"{_header(title)}\n{text.rstrip(chr(10))}\n" for _, title, text in sections]
    parts.append(f"{_header('prompt')}\n{prompt}")
    return "\n".join(parts)


def _gate(stdout: str) -> tuple[dict[str, Any] | None, str]:
    """Split a control line off the script's stdout: the first line, if it is a JSON
    object with a ``wakeAgent`` key. Returns (that object or None, the rest)."""
    first, sep, rest = stdout.partition("\n")
    try:
        obj = json.loads(first)
    except ValueError:
        return None, stdout
    if isinstance(obj, dict) and "wakeAgent" in obj:
        return obj, rest
    return None, stdout


class AgentExecutor:
    def prepare(
        self,
        ctx: RunContext,
        *,
        cancel: threading.Event | None = None,
        on_spawn: Callable[[int], None] | None = None,
    ) -> Prepared | Early:
        spec = ctx.spec
        common = prepare_common(ctx)
        if isinstance(common, Early):
            return common
        cwd, env, masker = common

        # A budget used up refuses the run before anything else happens.
        if spec.budget and ctx.budget_used is not None:
            why = budget_refusal(spec.budget, ctx.budget_used)
            if why is not None:
                return Early(
                    Status.refused,
                    why,
                    {"budget": dict(spec.budget), "used": ctx.budget_used.to_json()},
                )

        # The profile and its program come first: a run that cannot reach its agent
        # must not run the context script (and its side effects) for nothing.
        name = spec.agent or ctx.config.default_agent
        profile = ctx.config.agent(name) if name else None
        if profile is None:
            msg = (
                f"unknown agent profile {name!r}"
                if name
                else "no agent profile (set agent: or default_agent)"
            )
            return Early(Status.failed, msg, {"error": msg})
        # The permission floor (cronfile.permissions): validation refuses a level the
        # profile has no flags for; a profile changed since must not run it either.
        if profile.permission_args(spec.permissions) is None:
            msg = (
                f"agent profile {profile.name!r} declares no flags for permissions "
                f"{spec.permissions}: the run was not started"
            )
            return Early(Status.refused, msg, {"error": msg, "permissions": spec.permissions})
        probe = profile.argv("", spec.model, spec.permissions)
        if not probe or resolve_program(probe[0], cwd, env) is None:
            program = probe[0] if probe else ""
            msg = (
                f"agent program {program!r} not found on PATH (profile {profile.name}): "
                "install it or set agent:"
            )
            return Early(
                Status.failed, msg, {"error": msg, "program": program, "profile": profile.name}
            )

        sections: list[tuple[str, str, str]] = []
        try:
            # Inside the repo, regular files, capped (paths.py): a FIFO or /dev/zero put
            # there since validate is refused, never waited on or read for ever.
            texts = read_context_files(
                ctx.root,
                spec.context.files,
                ctx.config.context_file_limit,
                ctx.config.context_total_limit,
            )
        except PathRefused as e:
            return Early(Status.refused, str(e), {"reason": str(e)})
        except OSError as e:
            msg = f"context file cannot be read: {e.strerror or e} ({e.filename})"
            return Early(Status.failed, msg, {"error": msg})
        for i, (rel, text) in enumerate(texts):
            sections.append((f"context.files[{i}]: {rel}", rel, text))
        if spec.context.from_job and ctx.from_job_output:
            job = spec.context.from_job
            sections.append(
                (f"from_job: {job}", f"latest output of job {job}", ctx.from_job_output)
            )

        # Guard what is known before running the script, so a poisoned file refuses the
        # run before anything is spawned; the script's output is guarded once it exists.
        # The job's own prompt was reviewed with its file and is not scanned; what came
        # from elsewhere (files other programs may write, another job's output, a
        # script's stdout) is.
        refused = self._guard(ctx, masker, sections)
        if refused is not None:
            return refused
        if spec.context.script:
            script = self._run_script(ctx, cwd, env, masker, cancel, on_spawn)
            if isinstance(script, Early):
                return script
            if script:
                section = ("context.script", f"output of {spec.context.script}", script)
                refused = self._guard(ctx, masker, [section])
                if refused is not None:
                    return refused
                sections.append(section)

        prompt = assemble_prompt(sections, spec.prompt or "")
        argv = profile.argv(prompt, spec.model, spec.permissions)
        program = resolve_program(argv[0], cwd, env) or argv[0]
        stdin = prompt.encode() if profile.stdin else None
        return Prepared(
            [program, *argv[1:]], cwd, env, stdin, masker, output_format=profile.output
        )

    def _guard(
        self, ctx: RunContext, masker: Masker, sections: list[tuple[str, str, str]]
    ) -> Early | None:
        if ctx.spec.allow_injection_risk:
            return None
        # Scan the masked text: the excerpt is cut from it and stored with the run, and
        # cutting before masking could keep part of a secret.
        hit = guard.scan(
            [(source, masker.mask(text)) for source, _, text in sections],
            ctx.config.injection_patterns,
        )
        if hit is None:
            return None
        return Early(
            Status.refused,
            f"prompt-injection phrase {hit.phrase!r} in {hit.source}",
            {"phrase": hit.phrase, "source": hit.source, "excerpt": hit.excerpt},
        )

    def _run_script(
        self,
        ctx: RunContext,
        cwd: Path,
        env: dict[str, str],
        masker: Masker,
        cancel: threading.Event | None,
        on_spawn: Callable[[int], None] | None,
    ) -> str | Early:
        """Run context.script; its stdout (control line removed), or an Early."""
        script = ctx.spec.context.script or ""
        prepared = Prepared(["/bin/sh", "-c", script], cwd, env, None, masker)
        try:
            done = run_capture(
                prepared,
                # The run's one deadline covers the script and the agent together.
                timeout=(
                    max(ctx.deadline - time.monotonic(), 0.0)
                    if ctx.deadline is not None
                    else ctx.spec.timeout
                ),
                limit=ctx.output_limit,
                cancel=cancel,
                on_spawn=on_spawn,
                box=ctx.box,
            )
        except OSError as e:
            msg = f"context script {script} could not start: {e}"
            return Early(Status.failed, msg, {"error": msg})
        if done.cancelled:
            return Early(Status.cancelled, f"cancelled while context script {script} ran", {})
        # Stored messages are masked like the log: the stderr may echo a secret.
        # Mask first, then cut: a cut through a secret would keep part of it unmasked.
        tail = masker.mask(done.stderr.decode("utf-8", "replace"))[-_STDERR_TAIL:].strip()
        if done.timed_out:
            msg = f"context script {script} timed out after {format_duration(ctx.spec.timeout)}"
            return Early(Status.timeout, msg, {"error": msg, "stderr": tail})
        if done.exit_code != 0:
            msg = f"context script {script} failed (exit code {done.exit_code})"
            if tail:
                msg += f": {tail}"
            return Early(
                Status.failed, msg, {"error": msg, "exit_code": done.exit_code, "stderr": tail}
            )
        control, rest = _gate(done.stdout.decode("utf-8", "replace"))
        if control is not None and control.get("wakeAgent") is False:
            return Early(
                Status.silent,
                f"context script {script} said wakeAgent: false; the agent was not started",
                {"reason": "wakeAgent false"},
            )
        return rest
