"""``cronfile state migrate --to URL|DIR``: copy a state from one store into an empty one.

From the file store into PostgreSQL to go to several hosts, and back (``--to DIR`` or
``--to file:///path``) to leave. Copied: the applied jobs and their runtime records
(next runs, last runs, pauses), the git revision, every job's history, the run logs and
the audit log. The source is left as it was.

Refused, with nothing written: a target that holds a state or history already, a source
whose daemon runs or that has runs in flight (their engines would go on writing to the
source), a URL that cannot be used. The state is written last, so a copy stopped half-way
leaves a target without a state, which a second attempt refuses as not empty (start again
with an empty database or folder).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StateError, UsageError
from .stores import Store

__all__ = ["Copied", "cmd_state", "migrate"]


@dataclass
class Copied:
    jobs: int = 0
    history: int = 0
    logs: int = 0
    audit: int = 0

    def summary(self) -> str:
        return f"{self.jobs} jobs, {self.history} history records, {self.logs} logs, {self.audit} audit records"


def migrate(src: Store, dst: Store) -> Copied:
    """Copy ``src`` into the empty ``dst``; raises StateError (nothing written) when it
    cannot."""
    if not src.exists():
        raise StateError(f"{src.location} holds no state to copy (nothing was applied)")
    if src.daemon_running():
        raise StateError(f"a cronfile daemon is running on {src.location}: stop it first, then migrate")
    state = src.read()
    busy = [n for n, js in state.jobs.items() if js.running] + [r.job for r in state.orphans]
    if busy:
        raise StateError(
            f"{src.location} has runs in flight ({', '.join(sorted(set(busy)))}): wait for them to end, then migrate"
        )
    dst.ensure()
    if dst.exists() or dst.history_jobs() or dst.read_audit():
        raise StateError(f"{dst.location} is not empty: migrate copies into an empty store only")
    done = Copied()
    for job in src.history_jobs():
        for record in src.read_history(job):
            dst.append_history(job, record)
            done.history += 1
        for run_id in src.log_ids(job):
            data = src.read_log(job, run_id)
            if data is None:
                continue
            path = dst.log_file(job, run_id)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            dst.keep_log(job, run_id)
            done.logs += 1
    for record in src.read_audit():
        dst.append_audit(record)
        done.audit += 1
    with dst.transaction() as txn:
        if txn.state.jobs:
            raise StateError(f"{dst.location} is not empty: migrate copies into an empty store only")
        txn.state = state
    done.jobs = len(state.jobs)
    return done


def cmd_state(args: argparse.Namespace, out: Any) -> int:
    """``cronfile state migrate --to TARGET``."""
    from .console import state_dir_of, store_of
    from .stores import open_store
    from .stores.url import expand, file_url_dir

    if args.action != "migrate":  # pragma: no cover - argparse's choices
        raise UsageError(f"unknown action {args.action!r}")
    target = args.to
    src = store_of(args)
    if "://" in target:
        url = expand(target, os.environ, "--to")
        folder = file_url_dir(url)
        dst = open_store(state_dir=folder, url=None) if folder is not None else open_store(state_dir=state_dir_of(args), url=url)
    else:
        dst = open_store(state_dir=Path(target).expanduser(), url=None)
    if dst.location == src.location:
        raise UsageError(f"--to {dst.location} is the store in use already")
    copied = migrate(src, dst)
    out.msg(f"copied {copied.summary()} from {src.location} to {dst.location}")
    out.msg("point every host at the new store (state_url in cronfile.yaml, CRONFILE_STATE_URL or --state-url), then start the daemons")
    return 0

