"""The compiled schema check (cronfile/fastschema.py) answers as jsonschema does.

Documents are drawn from the shipped schemas themselves (each field valid, or replaced
by any JSON value, or an unknown field added), so most are one mistake away from valid,
where a wrong answer would hide. Every answer is compared with jsonschema's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronfile import fastschema, spec
from cronfile.load import load_project
from cronfile.spec import load_schema
from cronfile.yamlsrc import load_documents

REPO = Path(__file__).resolve().parent.parent

# Any JSON-like value YAML can produce, with the awkward ones often: true vs 1, 1.0 vs 1,
# empty strings and lists, NaN.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 200),
    st.sampled_from([0.0, 1.0, 2.5, -1.0, 1e300, float("nan")]),
    st.sampled_from(["", "x", "stdout", "30s", "@daily", "* * * * *", "Backup", "backup-1", "a" * 70, "read-only", "UTC"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "on", "stdout", "x-y", "team"]), inner, max_size=3)),
    max_leaves=10,
)


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    if isinstance(schema, dict) and "$ref" in schema:
        return root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(schema: Any, root: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped by ``schema``: mostly valid, sometimes not."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 4:
        return json_values
    options: list[st.SearchStrategy[Any]] = []
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    if "const" in schema:
        options.append(st.just(schema["const"]))
    if "examples" in schema:
        options.append(st.sampled_from(schema["examples"]))
    for sub in schema.get("oneOf", []):
        options.append(from_schema(sub, root, depth + 1))
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "object" in types or "properties" in schema:
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        keys = sorted(props)

        @st.composite
        def objects(draw: st.DrawFn) -> dict[str, Any]:
            chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=min(len(keys), 6))) if keys else []
            out = {k: draw(from_schema(props[k], root, depth + 1)) for k in chosen}
            for k in schema.get("required", []):
                if draw(st.integers(0, 9)) > 0:
                    out.setdefault(k, draw(from_schema(props.get(k, {}), root, depth + 1)))
            if extra is not False and draw(st.booleans()):
                out[draw(st.sampled_from(["team", "X_Y", "kubernetes.io/arch", "a b"]))] = draw(from_schema(extra if isinstance(extra, dict) else {}, root, depth + 1))
            if draw(st.integers(0, 9)) == 0:
                out[draw(st.sampled_from(["shedule", "bogus", "on"]))] = draw(json_values)
            return out

        options.append(objects())
    if "array" in types or "items" in schema:
        options.append(st.lists(from_schema(schema.get("items", {}), root, depth + 1), max_size=3))
    if "string" in types:
        options.append(st.sampled_from(["", "x", "30s", "* * * * *", "a" * 70, "backup-1", "Bad Name", "1h30m", "1.5"]))
    if "integer" in types or "number" in types:
        options.append(st.one_of(st.integers(-2, 120), st.sampled_from([0.0, 0.5, 1.0, 3.0, True, False])))
    if "boolean" in types:
        options.append(st.booleans())
    options.append(json_values)  # anything at all, now and then
    return st.one_of(options)


def _jsonschema(kind: str) -> Any:
    return jsonschema.Draft202012Validator(load_schema(kind))


@pytest.mark.parametrize("kind", ["job", "config"])
def test_the_shipped_schemas_compile(kind: str) -> None:
    assert spec._validator(kind).check is not None


def _agree(kind: str, doc: Any) -> None:
    fast = spec._validator(kind)
    slow = _jsonschema(kind)
    assert fast.is_valid(doc) == slow.is_valid(doc), doc
    got = [(e.message, list(e.absolute_path)) for e in fast.iter_errors(doc)]
    want = [(e.message, list(e.absolute_path)) for e in slow.iter_errors(doc)]
    assert got == want


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_job_documents_get_the_same_answer_from_both_validators(data: st.DataObject) -> None:
    root = load_schema("job")
    _agree("job", data.draw(from_schema(root, root)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_config_documents_get_the_same_answer_from_both_validators(data: st.DataObject) -> None:
    root = load_schema("config")
    _agree("config", data.draw(from_schema(root, root)))


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_value_gets_the_same_answer(doc: Any) -> None:
    _agree("job", doc)
    _agree("config", doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"schedule": "@daily", "shell": "x", "retries": True},  # true is not an integer
        {"schedule": "@daily", "shell": "x", "retries": 1.0},  # 1.0 is
        {"schedule": "@daily", "shell": "x", "retries": 101},
        {"schedule": "@daily", "shell": "x", "command": []},
        {"schedule": "@daily", "shell": "x", "prompt": "y"},  # two of the three
        {"schedule": "@daily"},
        {"schedule": "", "shell": "x"},
        {"schedule": "@daily", "shell": "x", "name": "backup\n"},  # the schema's $ matches before \n
        {"schedule": "@daily", "shell": "x", "budget": {}},
        {"schedule": "@daily", "shell": "x", "budget": {"cost_per_day": 0}},
        {"schedule": "@daily", "shell": "x", "env": {"A": None}},
        {"schedule": "@daily", "shell": "x", "deliver": ["stdout", {"stdout": 1}]},
        {"schedule": "@daily", "shell": "x", "deliver": [{"webhook": "http://h", "on": ["failure", "failure"]}]},
        {"schedule": "@daily", "shell": "x", "deliver": [{"email": []}]},
        {"schedule": "@daily", "shell": "x", "deliver": [{"stdout": True, "on": ["always"]}]},
    ],
)
def test_the_edges_of_the_type_rules_agree(doc: dict[str, Any]) -> None:
    _agree("job", doc)


def test_every_shipped_example_and_job_agrees() -> None:
    files = [*REPO.glob("examples/**/*.yaml"), *REPO.glob("jobs.d/**/*.yaml"), *REPO.glob("tests/golden/**/*.yaml")]
    assert files
    seen = 0
    for path in files:
        docs, _ = load_documents(path.read_bytes(), str(path))
        for doc in docs:
            kind = "config" if path.name == "cronfile.yaml" else "job"
            _agree(kind, doc.data)
            seen += 1
    assert seen > 5


def test_a_schema_outside_the_subset_is_jsonschema_alone() -> None:
    schema = {"type": "object", "patternProperties": {"^x": {"type": "integer"}}}
    v = fastschema.Validator(schema)
    assert v.check is None
    assert not v.is_valid({"xa": "no"})
    assert [e.message for e in v.iter_errors({"xa": "no"})] == ["'no' is not of type 'integer'"]


BAD_FILES = {
    "types.yaml": "schedule: '@daily'\nshell: true\nretries: -1\nshedule: x\n",
    "two.yaml": "schedule: '@daily'\nshell: a\nprompt: b\nbudget: {}\n",
    "none.yaml": "schedule: 5\ndeliver: [stdout, {webhook: 3, on: [never]}]\n",
    "name.yaml": "name: Bad Name\nschedule: '@daily'\ncommand: []\nenv: {A: [1]}\n",
    "good.yaml": "schedule: '*/5 * * * *'\nshell: echo ok\nlabels: {team: a}\n",
}


def test_problems_are_the_same_with_and_without_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every problem (file, line, column, field, message) of a set of bad files, as
    jsonschema alone reports them (docs/design.md: file:line:col, field, message)."""
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "cronfile.yaml").write_text("timezone: Nowhere/Else\nmax_concurrent: -1\nbogus: 1\n")
    for name, text in BAD_FILES.items():
        (tmp_path / "jobs.d" / name).write_text(text)

    def problems() -> list[tuple[object, ...]]:
        project = load_project(tmp_path, warnings=False)
        return [(p.path, p.line, p.column, p.field, p.message, p.severity) for p in project.problems]

    fast = problems()
    monkeypatch.setattr(spec, "_validator", _jsonschema)
    slow = problems()
    assert fast == slow
    assert len(fast) >= 8
    assert any(p[3] == "shell" and p[4] == "expected a string, got a boolean" for p in fast)
