"""The parts of the job schema that come from declarations, written into the shipped
copies (``schema/job.schema.json`` in the repository, ``cronfile/schemas/`` in the
package). Run after changing a declaration::

    python -m cronfile.schemagen          # rewrite both copies
    python -m cronfile.schemagen --check  # exit 1 if a copy is not what it would write

Generated: ``$defs.target`` from the delivery kinds (``cronfile/delivery/kinds.py``);
the ``prompt``, ``shell`` and ``command`` properties and the job's "exactly one of them"
``oneOf`` from the executor kinds (``cronfile/executors/registry.py``). Every other
field is written by hand in the file and kept as it is; ``tests/test_kinds.py`` fails
when a shipped copy differs from what this would write.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .delivery.kinds import target_schema
from .executors.registry import KINDS as EXECUTOR_KINDS

__all__ = ["PACKAGE_COPY", "REPO_COPY", "job_schema", "main", "render"]

PACKAGE_COPY = Path(__file__).parent / "schemas" / "job.schema.json"
REPO_COPY = Path(__file__).parent.parent / "schema" / "job.schema.json"  # in a checkout


def job_schema(current: dict[str, Any]) -> dict[str, Any]:
    """``current`` (a job schema) with its generated parts made from the declarations;
    key order kept, so that an unchanged declaration rewrites the same bytes."""
    out = dict(current)
    out["oneOf"] = [{"required": [k.value]} for k in EXECUTOR_KINDS]
    properties = dict(current.get("properties", {}))
    for kind, decl in EXECUTOR_KINDS.items():
        properties[kind.value] = dict(decl.schema)
    out["properties"] = properties
    out["$defs"] = {**current.get("$defs", {}), "target": target_schema()}
    return out


def render(schema: dict[str, Any]) -> str:
    """The file's text: two-space JSON, UTF-8 as written, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [Path(a) for a in args if a != "--check"] or [
        p for p in (PACKAGE_COPY, REPO_COPY) if p.exists()
    ]
    stale = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        want = render(job_schema(json.loads(text)))
        if text == want:
            continue
        stale.append(path)
        if not check:
            path.write_text(want, encoding="utf-8")
            print(f"wrote {path}")
    if check and stale:
        for path in stale:
            print(f"{path}: not generated from the declarations; run python -m cronfile.schemagen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
