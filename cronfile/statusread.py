"""What ``cronfile status`` reads of the jobs repo: a ``StatusRepo``, from the status
index (parsecache.StatusIndex) when the repo's files are as it saw them, else from a
full load (which then writes the index for the next status).

At 10,000 jobs a full load, even from the parse cache, unpickled 10,000 JobSpecs (0.35 s)
only for status to show drift; the index holds a name, a spec hash and four fields per
job. It is checked against ``load.files_signature`` (one stat per file, as the daemon
checks the repo), so status sees every edit a full load would.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

#: The fields of a job's spec that status shows or reads (render.status_rows: schedule,
#: timezone, budget; cli.agent_usage: whether it has a prompt).
STATUS_FIELDS = ("schedule", "timezone", "budget")


class DeclaredJob(NamedTuple):
    """A job in the files, as status needs it: what a JobSpec gives of ``name``,
    ``spec_hash`` and ``data`` (only the keys status reads)."""

    name: str
    spec_hash: str
    data: Mapping[str, Any]


def status_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: data[k] for k in STATUS_FIELDS if k in data}
    if "prompt" in data:
        out["prompt"] = True  # (agent_usage asks only whether there is one)
    return out


@dataclass
class StatusRepo:
    """The jobs repo as status shows it (a Project's ``config``, ``specs``, ``ok``)."""

    root: Path
    config: Any
    specs: list[Any] = field(default_factory=list)  # DeclaredJob or JobSpec, by name
    error_count: int = 0
    from_index: bool = False
    signature: Any = None  # files_signature, when read from the index
    pathy: bool = False  # some job's paths are checked at each status
    indexed: bool = False  # read in full, and the index written of it

    @property
    def ok(self) -> bool:
        return self.error_count == 0


def read_status_repo(args: argparse.Namespace, view_sig: Any = None) -> StatusRepo:
    """The repo ``args`` names (as ``console.load_repo(args, warnings=False)`` reads it).
    ``view_sig``: its ``statusview.signature``, taken before anything was read."""
    from .console import load_repo, root_of
    from .load import files_signature
    from .parsecache import load_status_index, status_index_path

    root = root_of(args)
    where = status_index_path(root)
    if where is not None:
        index = load_status_index(where, root)
        if index is not None and view_sig is not None and index.view_sig == view_sig:
            signature = index.signature  # (the files as the load that wrote it saw them)
        else:
            signature = files_signature(root)
            if index is not None and index.signature != signature:
                index = None
        if index is not None:
            errors = index.errors
            if index.pathy:
                from .paths import path_problems

                errors += sum(p.severity == "error" for s in index.pathy for p in path_problems(s, root, index.config))
            specs = [DeclaredJob(*j) for j in index.jobs]
            return StatusRepo(root, index.config, specs, errors, from_index=True, signature=signature, pathy=bool(index.pathy))
    project = load_repo(args, warnings=False)
    written = _save_index(where, project, signature, view_sig) if where is not None else None
    if written is None:
        return StatusRepo(project.root, project.config, project.specs, len(project.errors))
    # (the jobs as the index has them: what status reads of a JobSpec, in plain values)
    specs = [DeclaredJob(*j) for j in written.jobs]
    return StatusRepo(project.root, project.config, specs, len(project.errors), signature=signature, pathy=bool(written.pathy), indexed=True)


def index_of(project: Any, view_sig: Any = None) -> StatusRepo | None:
    """The status index of a ``project`` loaded in full (by ``apply``), written for the
    next ``status``; the StatusRepo it stands for, or None when it is not written (see
    ``_save_index``). Best effort, checked as ever when read."""
    from .parsecache import status_index_path

    where = status_index_path(project.root)
    written = _save_index(where, project, project.signature, view_sig) if where is not None else None
    if written is None:
        return None
    specs = [DeclaredJob(*j) for j in written.jobs]
    return StatusRepo(project.root, project.config, specs, 0, signature=project.signature, pathy=bool(written.pathy), indexed=True)


def _save_index(where: Path, project: Any, signature: Mapping[str, Any], view_sig: Any = None) -> Any:
    """Write the index of ``project``, loaded after ``signature`` was taken: unless a
    file changed since (the load's own signature differs), was read within a clock tick
    of its last write (``project.racy``), the load was not a full one, or it found an
    error in the files: as the parse cache never keeps a broken file, since what decides
    its problems can change under unchanged files (a timezone database upgrade, a read
    that failed once). The paths' problems are checked at each status, so do not count.
    The index written (so that the status that read the repo may keep its table), or None."""
    from .parsecache import StatusIndex, code_fingerprint, write_status_index

    if project.racy or project.signature != signature or project.index is None:
        return None
    head = project.index.head  # the problems before those of the paths (load._assemble)
    errors = sum(p.severity == "error" for p in project.problems[:head])
    if errors:
        return None
    jobs = tuple((s.name, s.spec_hash, status_fields(s.data)) for s in project.specs)
    index = StatusIndex(code_fingerprint(), str(project.root.resolve()), dict(signature), project.config, errors, tuple(project.index.pathy), jobs, view_sig)
    write_status_index(where, index)
    return index
