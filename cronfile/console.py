"""What every command shares: where output goes (``Out``), which jobs repo and state
dir a command works on, how problems are printed, and the guard that keeps a job from
reconfiguring the cronfile it runs under.

The command modules (cli.py and doctor, service, kubernetes, daemon_cmd, crontab,
completion, mcp_server) import it; it imports none of them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError, UsageError

if TYPE_CHECKING:
    from .load import Project
    from .stores import Store

# docs/design.md section 7: 0 ok, 1 a job failed or `diff` found changes, 2 invalid input.
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_OK",
    "Out",
    "find_root",
    "load_checked",
    "load_repo",
    "print_problems",
    "problem_place",
    "refuse_inside_run",
    "root_of",
    "state_dir_of",
    "store_of",
    "use_color",
]


class Out:
    """Where a command writes: data to stdout, messages to stderr; quiet mutes messages."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet = getattr(args, "quiet", False)
        self.json = getattr(args, "json", False)

    def data(self, text: str) -> None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        sys.stdout.flush()

    def json_data(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def msg(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def use_color(stream: Any = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"


def root_of(args: argparse.Namespace, *, required: bool = True) -> Path:
    """The jobs repo: -C DIR (default .) or the nearest folder above it that holds
    jobs.d/ or cronfile.yaml, as git finds .git. None found is an error (exit 2) that
    says where it looked, unless ``required`` is false (then DIR itself)."""
    start = Path(args.C).expanduser()
    if not start.is_dir():
        raise UsageError(f"-C {args.C}: no such folder")
    found = find_root(start)
    if found is not None:
        return found
    if not required:
        return start
    where = start.resolve()
    raise UsageError(
        f"no jobs repo: neither jobs.d/ nor cronfile.yaml in {where} or any folder above it "
        "(create one with `cronfile init`, or point at one with -C DIR)"
    )


def find_root(start: Path) -> Path | None:
    """``start`` (as given) or its nearest ancestor holding jobs.d/ or cronfile.yaml."""
    # (load.JOBS_DIR and load.CONFIG_NAME, not imported: `status` prints its kept table
    # without importing the loader, cronfile/statusview.py)
    JOBS_DIR, CONFIG_NAME = "jobs.d", "cronfile.yaml"  # noqa: N806
    for d in (start, *start.resolve().parents):
        if (d / JOBS_DIR).is_dir() or (d / CONFIG_NAME).is_file():
            return d
    return None


def state_dir_of(args: argparse.Namespace, project: Project | None = None) -> Path:
    """--state-dir, else CRONFILE_STATE_DIR, else cronfile.yaml's state_dir, else .cronfile/."""
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser()
    env = os.environ.get("CRONFILE_STATE_DIR")
    if env:
        return Path(env).expanduser()
    root = root_of(args)
    if project is not None and project.config.state_dir:
        return root / project.config.state_dir
    if project is None:
        from .load import load_config

        cfg, _ = load_config(root)
        if cfg.state_dir:
            return root / cfg.state_dir
    return root / ".cronfile"


def store_of(args: argparse.Namespace, project: Project | None = None) -> Store:
    from .stores import open_store
    from .stores.url import resolve

    # --state-url > CRONFILE_STATE_URL > cronfile.yaml's state_url > the state dir.
    flag, cfg = getattr(args, "state_url", None), project.config if project is not None else None
    if cfg is None and not (flag or os.environ.get("CRONFILE_STATE_URL")):
        from .load import load_config

        root = root_of(args, required=False)
        cfg = load_config(root)[0] if root is not None else None
    url = resolve(flag, os.environ, cfg.state_url if cfg else None, cfg.path if cfg else "cronfile.yaml")
    return open_store(state_dir=state_dir_of(args, project), url=url)


def refuse_inside_run(what: str) -> None:
    """A process started by cronfile must not reconfigure or start cronfile (docs/design.md 5).

    Judged by what a job cannot clear (executors/contain.py, ``inside_run``): its cgroup
    is a run's, or an ancestor process holds a cronfile engine's lock. CRONFILE_RUN_ID
    is only the fallback for systems without /proc; `CRONFILE_RUN_ID= cronfile apply`
    no longer gets past."""
    from .executors.contain import inside_run

    evidence = inside_run()
    if evidence is None and os.environ.get("CRONFILE_RUN_ID"):
        evidence = f"CRONFILE_RUN_ID={os.environ['CRONFILE_RUN_ID']}"
    if evidence is not None:
        raise UsageError(
            f"refusing to {what} from inside a cronfile run ({evidence}): "
            "a job cannot change the schedule it runs under"
        )


def problem_place(p: Any) -> tuple[str, int, int]:
    """The order problems are printed in: by file, line, column."""
    return (p.path, p.line, p.column)


def print_problems(out: Out, problems: list[Any], *, warnings: bool = True) -> None:
    for p in sorted(problems, key=problem_place):
        if p.severity == "error" or warnings:
            out.warn(str(p))


def load_repo(args: argparse.Namespace, **kw: Any) -> Project:
    """load_project with the repo's parse cache: files unchanged since the last command
    are not read again (cronfile/parsecache.py)."""
    from .load import load_project
    from .parsecache import ParseCache

    root = root_of(args, required=kw.pop("required", True))
    cache = None if "files" in kw or "jobs_dir" in kw else ParseCache.for_repo(root)
    with gc_paused():
        project = load_project(root, cache=cache, **kw)
    if cache is not None:
        cache.save()
    return project


#: Set by the `cronfile` command (cronfile/__main__.py), not by a test calling
#: ``cli.main()``: what a repo's load leaves is kept for the process's life (gc_paused).
FREEZE_AFTER_LOAD = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a repo is read: it makes millions of objects
    that live on (specs, their data) or die by reference count (YAML nodes), and the
    collector's passes over them were 5% of a cold `diff` of 10,000 files (issue 17).
    In the command's own process what is left is then frozen (gc.freeze, as the daemon
    does after its first load): a collection after the load would walk all of it again,
    and so would the one at exit."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if FREEZE_AFTER_LOAD:
                gc.freeze()
            gc.enable()


def load_checked(args: argparse.Namespace, out: Out, **kw: Any) -> Project:
    """Load the jobs repo; print warnings; raise SpecError (exit 2) if anything is invalid."""
    project = load_repo(args, **kw)
    if project.errors:
        raise SpecError(project.errors)
    if not out.quiet and not getattr(args, "json", False):
        print_problems(out, project.warnings)
    return project
