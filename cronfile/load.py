"""The jobs repo on disk -> a Project: config, job specs, and every problem found.

This is the edge that reads files; the parsing and checking it calls (``yamlsrc``,
``spec``) are pure. Loading never raises for bad input: problems are collected, each
with its file, line and column, and the caller decides (validate lists them, apply
refuses to touch state, the daemon keeps its last good set).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import Problem
from .spec import Config, JobSpec, config_from_document, cross_problems, job_from_document
from .yamlsrc import Document, load_documents

CONFIG_NAME = "cronfile.yaml"
JOBS_DIR = "jobs.d"
SUFFIXES = (".yaml", ".yml")


@dataclass
class Project:
    root: Path
    config: Config
    specs: list[JobSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    signature: tuple[tuple[str, int, int], ...] = ()  # (path, mtime_ns, size) of what was read

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def job(self, name: str) -> JobSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    @property
    def jobs_dir(self) -> Path:
        return self.root / JOBS_DIR


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the cwd when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def find_job_files(jobs_dir: Path, root: Path) -> tuple[list[Path], list[Problem]]:
    """Every ``*.yaml``/``*.yml`` below ``jobs_dir``, sorted; symlinks that lead outside
    the repo are refused, hidden files and folders skipped."""
    files: list[Path] = []
    problems: list[Problem] = []
    if not jobs_dir.is_dir():
        return files, problems
    real_root = root.resolve()
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(jobs_dir, followlinks=True):
        d = Path(dirpath)
        real = d.resolve()
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        if not _inside(real, real_root):
            problems.append(
                Problem(display_path(d), message="symlinked folder leads outside the repo; refused")
            )
            dirnames[:] = []
            continue
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            p = d / name
            if p.is_symlink() and not _inside(p.resolve(), real_root):
                problems.append(Problem(display_path(p), message="symlink leads outside the repo; refused"))
                continue
            if not p.is_file():
                problems.append(Problem(display_path(p), message="not a regular file"))
                continue
            files.append(p)
    return sorted(files), problems


def read_documents(path: Path) -> tuple[list[Document], list[Problem]]:
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        return [], [Problem(shown, message=f"cannot read: {e.strerror or e}")]
    return load_documents(raw, shown)


def load_config(root: Path) -> tuple[Config, list[Problem]]:
    path = root / CONFIG_NAME
    if not path.exists():
        return config_from_document(None)
    docs, problems = read_documents(path)
    if len(docs) > 1:
        problems.append(Problem(display_path(path), docs[1].line, 1, message="holds more than one YAML document"))
    cfg, more = config_from_document(docs[0] if docs else None)
    if docs:
        cfg = Config(**{**cfg.__dict__, "path": display_path(path)})
    return cfg, problems + more


def load_project(
    root: Path | str,
    *,
    files: list[Path] | None = None,
    jobs_dir: Path | None = None,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Load and check the jobs repo at ``root``. ``files`` limits the jobs read to those
    files; ``jobs_dir`` reads another folder than ``root/jobs.d``."""
    root = Path(root)
    now = now or datetime.now(UTC)
    sig = files_signature(root, jobs_dir)
    config, problems = load_config(root)
    if files is None:
        found, more = find_job_files(jobs_dir or root / JOBS_DIR, root)
        problems += more
    else:
        found = list(files)
    specs: list[JobSpec] = []
    where: dict[str, tuple[str, int]] = {}
    for path in found:
        docs, more = read_documents(path)
        problems += more
        single = len(docs) == 1
        for doc in docs:
            spec, more = job_from_document(doc, config, default_name=path.stem if single else None, now=now)
            problems += more
            if spec is None:
                continue
            if spec.name in where:
                fpath, fline = where[spec.name]
                problems.append(
                    Problem(
                        spec.source,
                        spec.line,
                        1,
                        "name",
                        f"duplicate job name {spec.name!r} (also in {fpath}:{fline})",
                    )
                )
                continue
            where[spec.name] = (spec.source, spec.line)
            specs.append(spec)
    problems += cross_problems(specs)
    problems += warnings_for(specs, root, now, os.environ if environ is None else environ)
    specs.sort(key=lambda s: s.name)
    return Project(root=root, config=config, specs=specs, problems=problems, files=found, signature=sig)


def files_signature(root: Path, jobs_dir: Path | None = None) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of cronfile.yaml and every job file: equal signatures mean
    nothing to re-read. Taken before reading, so a change made meanwhile shows as a
    difference the next time."""
    out = []
    paths = [root / CONFIG_NAME]
    for dirpath, dirnames, filenames in os.walk(jobs_dir or root / JOBS_DIR, followlinks=True):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        paths.extend(Path(dirpath) / n for n in sorted(filenames) if n.endswith(SUFFIXES) and not n.startswith("."))
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def warnings_for(specs: list[JobSpec], root: Path, now: datetime, environ: Mapping[str, str]) -> list[Problem]:
    """What is legal but probably not what the user meant."""
    from . import schedule as sched

    out: list[Problem] = []
    for s in specs:
        try:
            schedule = s.build_schedule(created_at=now)
        except sched.ScheduleError:
            continue
        for msg in sched.dst_warnings(schedule, now):
            out.append(Problem(s.source, *s.where("schedule"), "schedule", msg, severity="warning"))
        if schedule.kind == "once" and schedule.next_after(now) is None:
            out.append(Problem(s.source, s.line, 1, "schedule", f"{s.schedule} is in the past: this job will never fire", severity="warning"))
        for var in s.env_refs():
            if var not in environ:
                out.append(
                    Problem(s.source, s.line, 1, "env", f"${{{var}}} is not set in this environment (the run will fail if it is not set for the engine)", severity="warning")
                )
        for f in s.context.files:
            if not (root / f).exists():
                out.append(Problem(s.source, s.line, 1, "context.files", f"{f} does not exist (yet)", severity="warning"))
        if s.context.script and not (root / s.workdir / s.context.script).exists() and "/" in s.context.script:
            out.append(Problem(s.source, s.line, 1, "context.script", f"{s.context.script} does not exist (yet)", severity="warning"))
    return out
