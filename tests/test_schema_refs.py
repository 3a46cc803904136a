"""Editor support offline: every job file and config the project ships, `cronfile init`
writes and `cronfile import` writes names its JSON schema by a relative path that
exists, and that schema accepts the file (what an editor's YAML plugin does)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from cli_helpers import ROOT, cronfile

from cronfile.yamlsrc import load_documents

SCHEMA_RE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$", re.M)


def shipped_files() -> list[Path]:
    files = [*ROOT.glob("jobs.d/**/*.yaml"), ROOT / "cronfile.yaml"]
    for repo in (ROOT / "examples").iterdir():
        files += [*repo.glob("jobs.d/**/*.yaml"), *repo.glob("jobs.d/**/*.yml")]
        if (repo / "cronfile.yaml").exists():
            files.append(repo / "cronfile.yaml")
    return sorted(files)


def check_reference(path: Path) -> None:
    text = path.read_text()
    m = SCHEMA_RE.search(text)
    assert m, f"{path}: no `# yaml-language-server: $schema=` comment"
    ref = m.group(1)
    assert "://" not in ref, f"{path}: $schema {ref} is not a relative path"
    schema_path = (path.parent / ref).resolve()
    kind = "config" if path.name == "cronfile.yaml" else "job"
    assert schema_path.name == f"{kind}.schema.json", f"{path}: $schema {ref} names the wrong schema"
    schema = json.loads(schema_path.read_text())
    # Read as YAML 1.2 reads it (as editors do, and cronfile): `on:` is a key, not True.
    docs, problems = load_documents(text, str(path))
    assert not problems
    for doc in docs:
        jsonschema.validate(doc.data, schema)


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files_name_the_repos_schema_by_a_relative_path(path):
    check_reference(path)


def test_init_writes_the_schemas_and_points_at_them(tmp_path):
    assert cronfile("init", "repo", cwd=tmp_path).returncode == 0
    repo = tmp_path / "repo"
    for kind in ("job", "config"):
        assert (repo / "schema" / f"{kind}.schema.json").read_text() == (ROOT / "schema" / f"{kind}.schema.json").read_text()
    check_reference(repo / "cronfile.yaml")
    check_reference(repo / "jobs.d" / "hello.yaml")
    # Jobs imported into it point at the same schema.
    res = cronfile("import", "crontab", "-", "--tz", "UTC", cwd=repo, input="# Nightly\n0 2 * * * backup.sh\n")
    assert res.returncode == 0, res.stderr
    check_reference(repo / "jobs.d" / "backup.sh.yaml")
