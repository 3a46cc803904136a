"""Each delivery kind and each kind of job is declared once (cronfile/delivery/kinds.py,
cronfile/executors/registry.py); the shipped schemas, the checks of a job file and the
dispatch to a deliverer or an executor come from those declarations."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ROOT

from cronfile import schemagen
from cronfile.delivery import kinds
from cronfile.delivery.base import BaseDeliverer
from cronfile.delivery.dispatch import (
    deliverer_class,
    deliverer_for,
    pings_start,
    streams,
    target_wants,
)
from cronfile.executors import dispatch as executor_dispatch
from cronfile.executors import registry
from cronfile.load import load_project
from cronfile.spec import Config, Kind, Status, Target, job_from_document

# -- the shipped schemas ---------------------------------------------------------------


@pytest.mark.parametrize("path", [schemagen.PACKAGE_COPY, ROOT / "schema" / "job.schema.json"], ids=["package", "repo"])
def test_the_shipped_job_schemas_are_generated_from_the_declarations(path):
    text = path.read_text(encoding="utf-8")
    assert text == schemagen.render(schemagen.job_schema(json.loads(text))), (
        f"{path} is stale: run python -m cronfile.schemagen"
    )


def test_the_generator_rewrites_a_stale_copy_and_check_reports_it(tmp_path):
    stale = json.loads(schemagen.PACKAGE_COPY.read_text())
    stale["$defs"]["target"]["oneOf"][1]["properties"].pop("telegram")
    stale["oneOf"] = stale["oneOf"][:2]
    path = tmp_path / "job.schema.json"
    path.write_text(schemagen.render(stale))
    run = [sys.executable, "-m", "cronfile.schemagen"]
    check = subprocess.run([*run, "--check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert check.returncode == 1 and "run python -m cronfile.schemagen" in check.stderr
    write = subprocess.run([*run, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert write.returncode == 0, write.stderr
    assert path.read_text() == schemagen.PACKAGE_COPY.read_text()
    again = subprocess.run([*run, "--check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 0 and again.stderr == ""


def test_each_kind_only_field_is_a_field_of_the_job_schema():
    properties = json.loads(schemagen.PACKAGE_COPY.read_text())["properties"]
    for decl in registry.KINDS.values():
        assert decl.kind.value in properties
        for field in decl.only:
            assert field in properties, f"{decl.kind}: {field} is not in the job schema"


# -- dispatch --------------------------------------------------------------------------


EXAMPLES = {
    "webhook": "https://hooks.example.com/x",
    "healthchecks": "https://hc-ping.com/x",
    "telegram": "-100",
    "email": "ops@example.com",
    "stdout": True,
}


@pytest.mark.parametrize("name", kinds.names())
def test_every_declared_kind_is_dispatched_to_the_deliverer_it_names(name):
    decl = kinds.KINDS[name]
    cls = deliverer_class(decl)
    assert issubclass(cls, BaseDeliverer)
    module = decl.deliverer.rpartition(".")[0]
    assert cls.__module__ == f"cronfile.delivery.{module}"
    deliverer = deliverer_for(Target(name, EXAMPLES[name], options={"token": "t"} if name == "telegram" else {}), Config(), {})
    assert type(deliverer) is cls
    for need in decl.wiring:
        assert hasattr(deliverer, need), f"{name}: built without its {need}"


def test_an_undeclared_kind_is_refused_naming_the_declared_ones():
    with pytest.raises(ValueError, match=r"unknown delivery target 'pager' \(known: webhook, healthchecks, telegram, email, stdout\)"):
        deliverer_for(Target("pager", "x"), Config(), {})


def test_the_engines_special_cases_are_properties_of_the_declarations():
    # healthchecks is a liveness monitor: told when a run starts, and a silent run counts
    # as a success for its on: filter; stdout is what `cronfile run NAME` shows already.
    assert [n for n in kinds.names() if pings_start(n)] == ["healthchecks"]
    assert [n for n in kinds.names() if streams(n)] == ["stdout"]
    on_success = ("success",)
    assert target_wants(Target("healthchecks", "https://h/x", on_success), Status.silent)
    assert not target_wants(Target("webhook", "https://h/x", on_success), Status.silent)
    assert Target("stdout", True).label() == "stdout"
    assert Target("email", "a@b").label() == "email:a@b"


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_of_job_has_the_executor_it_names(kind):
    decl = registry.KINDS[kind]
    executor = executor_dispatch.executor_for(type("S", (), {"kind": kind})())
    module, _, cls = decl.executor.rpartition(".")
    assert type(executor).__name__ == cls and type(executor).__module__ == f"cronfile.executors.{module}"
    assert callable(executor.prepare)


def test_validating_a_repo_imports_no_deliverer_and_no_executor(tmp_path):
    # Validation reads the declarations only: a `cronfile validate` must not pay for
    # httpx, smtplib or the process machinery.
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "a.yaml").write_text(
        "schedule: '@daily'\nshell: a\ndeliver:\n  - webhook: https://h/x\n  - email: a@b\n  - stdout\n"
    )
    code = (
        "import sys; from cronfile.load import load_project; "
        f"p = load_project({str(tmp_path)!r}); assert p.ok, p.errors; "
        "print(sorted(m for m in sys.modules if m in ('httpx', 'smtplib') "
        "or m.startswith(('cronfile.delivery.', 'cronfile.executors.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['cronfile.delivery.kinds', 'cronfile.executors.registry']"


def _imports(path: Path, package: str) -> set[str]:
    """The cronfile modules a file imports, at any depth (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            mod = f"{base}.{node.module}" if node.module else base
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("package", ["cronfile.delivery", "cronfile.executors"])
def test_the_interface_modules_import_none_of_their_children(package):
    folder = ROOT / package.replace(".", "/")
    children = {f"{package}.{p.stem}" for p in folder.glob("*.py")} - {f"{package}.__init__"}
    for name in ("__init__", "base", "kinds", "registry"):
        path = folder / f"{name}.py"
        if path.exists():
            imported = _imports(path, package) & children
            # leaves (no cronfile imports): the netguard, and the declarations base reads
            allowed = {f"{package}.netguard", f"{package}.kinds"} if name == "base" else set()
            assert imported <= allowed, f"{path.name} imports {sorted(imported - allowed)}"


# -- the checks of a job file: messages pinned (the same as before the declarations) ----


@pytest.mark.parametrize(
    "deliver, expected",
    [
        ("\n  - telegram: '-100'\n", "4:5: deliver[0].token: missing (required for telegram; use ${VAR})"),
        ("\n  - email: {to: x}\n", "4:12: deliver[0].email: expected an address or a list of addresses"),
        ("\n  - email: []\n", "4:12: deliver[0].email: expected an address or a list of addresses"),
        ("\n  - on: [failure]\n", "4:5: deliver[0]: needs one target key: webhook, healthchecks, telegram, email, stdout"),
        ("\n  - webhook: http://h\n    email: a@b\n", "4:5: deliver[0]: one target per item (found webhook, email)"),
        (" [3]\n", "3:11: deliver[0]: expected stdout or a mapping, got a number"),
        (" [email]\n", "3:11: deliver[0]: unknown target 'email': expected stdout or a mapping with one of webhook, healthchecks, telegram, email, stdout"),
        ("\n  - webhook: http://h\n    secrte: x\n", "5:5: deliver[0].secrte: unknown field (did you mean secret?)"),
        ("\n  - email: a@b\n    zzz: 1\n", "5:5: deliver[0].zzz: unknown field; expected one of: email, on, subject"),
        ("\n  - email: a@b\n    token: t\n", "5:5: deliver[0].token: does not apply to a email target"),
        ("\n  - telegram: [1]\n    token: t\n", "4:15: deliver[0].telegram: expected a string or an integer, got a list"),
        ("\n  - stdout: false\n", "4:13: deliver[0].stdout: True was expected"),
        ("\n  - stdout: true\n    on: [sometimes]\n", '5:10: deliver[0].on[0]: "sometimes" is not one of success, failure, silent, always'),
        ("\n  - webhook: http://h\n    headers: {A: [1]}\n", "5:18: deliver[0].headers.A: expected a string, got a list"),
        ("\n  - healthchecks: hc-ping.com/x\n", "4:19: deliver[0].healthchecks: 'hc-ping.com/x' is not an http(s) URL"),
        (" stdout\n", "3:10: deliver: expected a list, got a string"),
    ],
)
def test_a_bad_delivery_item_is_reported_as_before(tmp_path, monkeypatch, deliver, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "x.yaml").write_text(f"schedule: '@daily'\nshell: a\ndeliver:{deliver}")
    got = [str(p) for p in load_project(tmp_path).errors]
    assert got == [f"jobs.d/x.yaml:{expected}"]


def test_every_declared_kind_validates_and_round_trips_to_its_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.d").mkdir()
    items = "".join(
        f"  - {name}: {json.dumps(EXAMPLES[name])}\n" + ("    token: t\n" if name == "telegram" else "")
        for name in kinds.names()
    )
    (tmp_path / "jobs.d" / "x.yaml").write_text(f"schedule: '@daily'\nshell: a\ndeliver:\n{items}  - stdout\n")
    project = load_project(tmp_path)
    assert project.ok, [str(p) for p in project.errors]
    (spec,) = project.specs
    assert [t.kind for t in spec.deliver] == [*kinds.names(), "stdout"]


@pytest.mark.parametrize("kind", list(Kind))
def test_fields_of_another_kind_of_job_are_refused(tmp_path, kind):
    from cronfile.yamlsrc import load_documents

    body = {Kind.prompt: "prompt: hi\nagent: llm\n", Kind.shell: "shell: a\n", Kind.command: "command: [a]\n"}[kind]
    foreign = [f for other in registry.KINDS.values() if other.kind is not kind for f in other.only]
    extra = "".join(f"{f}: x\n" for f in foreign)
    (doc,), _ = load_documents(f"schedule: '@daily'\n{body}{extra}", "x.yaml")
    _, problems = job_from_document(doc, Config(agents={}), default_name="x")
    only = [str(p) for p in problems if "only applies to" in p.message]
    assert only == [f"x.yaml:{3 + i + (kind is Kind.prompt)}:1: {f}: only applies to prompt jobs" for i, f in enumerate(foreign)]



def test_an_option_declared_secret_is_masked_in_the_runs_output_even_written_literally(tmp_path):
    from datetime import UTC, datetime

    from helpers_proc import make_ctx, make_spec

    from cronfile.executors.base import Prepared
    from cronfile.runner import execute

    spec = make_spec(
        shell="echo sent with literal-tok-5521 and literal-hook-77",
        deliver=[{"telegram": "-100", "token": "literal-tok-5521"}, {"webhook": "https://h/x", "secret": "literal-hook-77"}],
    )
    assert [o.name for d in kinds.KINDS.values() for o in d.options if o.secret] == ["token"]
    ctx = make_ctx(tmp_path, spec)
    prepared = executor_dispatch.executor_for(spec).prepare(ctx)
    assert isinstance(prepared, Prepared)
    outcome = execute(ctx, now=lambda: datetime.now(UTC))
    assert outcome.status == Status.success
    # The token is declared secret; a webhook's HMAC key is not (it never reaches a
    # job's output by cronfile's doing), so it is left as written.
    assert ctx.log_path.read_text() == "sent with *** and literal-hook-77\n"
