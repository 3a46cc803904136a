"""Our own JSON schemas compiled into plain Python checks: the fast yes/no of validation.

jsonschema re-walks the schema for every document (a validator object, a reference
lookup and an error generator per keyword per value): at 10,000 job files it was 3.1 s
of a cold `diff` (issue 17). The schemas cronfile ships use a small subset of JSON
Schema 2020-12, so this module compiles that subset once per process into closures
that only answer "valid or not".

The contract, kept by ``Validator`` below:

- A valid document costs one call of the compiled check and no jsonschema at all.
- When the check says invalid, jsonschema validates the document again and its errors
  are what the caller sees: every message, path and order is jsonschema's, as before.
- A schema that uses anything this module does not compile (a keyword outside the
  subset, a reference that is not ``#/$defs/...``) is not compiled: ``Validator``
  then is jsonschema alone.

The type rules are jsonschema's (Draft 2020-12's default type checker): ``true`` is not
an integer, ``1.0`` is; ``enum``/``const``/``uniqueItems`` compare as jsonschema does
(``1 == 1.0``, but ``true`` is not ``1``). ``format`` is an annotation, as jsonschema
treats it without a format checker. tests/test_fastschema.py holds both validators to
the same answer on random documents (hypothesis) and on every example job.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that assert nothing (annotations): skipped by the compiler.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated", "readOnly", "writeOnly", "format", "$defs"}
)


class NotCompiled(Exception):
    """The schema uses something outside the compiled subset."""


# -- jsonschema's type checker and equality ---------------------------------------------


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return isinstance(x, float) and x.is_integer()


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "integer": _is_integer,
    "number": _is_number,
}


def equal(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema's ``_utils.equal``: booleans differ from numbers."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _unique(items: list[Any]) -> bool:
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if equal(a, b):
                return False
    return True


# -- the compiler -------------------------------------------------------------------------


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        if not target.startswith("#/$defs/") or "/" in target[len("#/$defs/") :]:
            raise NotCompiled(f"$ref {target!r}")
        if target not in self.refs:
            name = target[len("#/$defs/") :]
            defs = self.root.get("$defs", {})
            if name not in defs:
                raise NotCompiled(f"$ref {target!r} points nowhere")
            slot: list[Check] = []
            self.refs[target] = lambda x: slot[0](x)  # recursion-safe: filled below
            slot.append(self.compile(defs[name]))
        return self.refs[target]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise NotCompiled(f"schema {schema!r}")
        checks: list[Check] = []
        for key, value in schema.items():
            if key in _ANNOTATIONS or key in ("properties", "additionalProperties"):
                continue
            make = getattr(self, "k_" + key.lstrip("$"), None)
            if make is None:
                raise NotCompiled(f"keyword {key!r}")
            checks.append(make(value, schema))
        if "properties" in schema or "additionalProperties" in schema:
            checks.append(self.object_members(schema))
        return _every(checks)

    # Each k_<keyword>(value, schema) returns the check of that keyword alone.

    def k_type(self, value: Any, schema: Any) -> Check:
        names = [value] if isinstance(value, str) else list(value)
        if any(n not in _TYPES for n in names):
            raise NotCompiled(f"type {value!r}")
        if names == ["string"]:
            return lambda x: isinstance(x, str)
        if names == ["object"]:
            return lambda x: isinstance(x, dict)
        if names == ["array"]:
            return lambda x: isinstance(x, list)
        if names == ["boolean"]:
            return lambda x: isinstance(x, bool)
        if names == ["string", "integer"]:
            return lambda x: isinstance(x, str) or _is_integer(x)
        tests = tuple(_TYPES[n] for n in names)
        return lambda x: any(t(x) for t in tests)

    def k_ref(self, value: Any, schema: Any) -> Check:
        return self.ref(value)

    def k_enum(self, value: Any, schema: Any) -> Check:
        options = list(value)
        if all(isinstance(o, str) for o in options):
            strings = frozenset(options)
            return lambda x: isinstance(x, str) and x in strings
        return lambda x: any(equal(x, o) for o in options)

    def k_const(self, value: Any, schema: Any) -> Check:
        return lambda x: equal(x, value)

    def k_required(self, value: Any, schema: Any) -> Check:
        names = tuple(value)
        if len(names) == 1:
            (name,) = names
            return lambda x: not isinstance(x, dict) or name in x
        return lambda x: not isinstance(x, dict) or all(n in x for n in names)

    def k_minProperties(self, value: Any, schema: Any) -> Check:  # noqa: N802 - the keyword's name
        return lambda x: not isinstance(x, dict) or len(x) >= value

    def k_propertyNames(self, value: Any, schema: Any) -> Check:  # noqa: N802
        check = self.compile(value)
        return lambda x: not isinstance(x, dict) or all(check(k) for k in x)

    def k_oneOf(self, value: Any, schema: Any) -> Check:  # noqa: N802
        if all(isinstance(s, dict) and s.keys() == {"required"} and len(s["required"]) == 1 for s in value):
            # `oneOf: [{required: [a]}, {required: [b]}, ...]`: exactly one of the keys.
            # (Not a mapping: every `required` holds, so one only if there is one.)
            keys = tuple(s["required"][0] for s in value)
            alone = len(keys) == 1
            return lambda x: sum(map(x.__contains__, keys)) == 1 if isinstance(x, dict) else alone
        subs = tuple(self.compile(s) for s in value)

        def one_of(x: Any) -> bool:
            found = 0
            for s in subs:
                if s(x):
                    found += 1
                    if found > 1:
                        return False
            return found == 1

        return one_of

    def k_anyOf(self, value: Any, schema: Any) -> Check:  # noqa: N802
        subs = tuple(self.compile(s) for s in value)
        return lambda x: any(s(x) for s in subs)

    def k_allOf(self, value: Any, schema: Any) -> Check:  # noqa: N802
        subs = tuple(self.compile(s) for s in value)
        return lambda x: all(s(x) for s in subs)

    def k_not(self, value: Any, schema: Any) -> Check:
        sub = self.compile(value)
        return lambda x: not sub(x)

    def k_pattern(self, value: Any, schema: Any) -> Check:
        rx = re.compile(value)
        return lambda x: not isinstance(x, str) or rx.search(x) is not None

    def k_minLength(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return lambda x: not isinstance(x, str) or len(x) >= value

    def k_maxLength(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return lambda x: not isinstance(x, str) or len(x) <= value

    def k_minItems(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return lambda x: not isinstance(x, list) or len(x) >= value

    def k_maxItems(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return lambda x: not isinstance(x, list) or len(x) <= value

    def k_uniqueItems(self, value: Any, schema: Any) -> Check:  # noqa: N802
        if not value:
            return lambda x: True
        return lambda x: not isinstance(x, list) or _unique(x)

    def k_items(self, value: Any, schema: Any) -> Check:
        if "prefixItems" in schema:
            raise NotCompiled("items with prefixItems")
        sub = self.compile(value)

        def items(x: Any) -> bool:
            if isinstance(x, list):
                for v in x:
                    if not sub(v):
                        return False
            return True

        return items

    def k_contains(self, value: Any, schema: Any) -> Check:
        if "minContains" in schema or "maxContains" in schema:
            raise NotCompiled("minContains/maxContains")
        sub = self.compile(value)
        return lambda x: not isinstance(x, list) or any(sub(v) for v in x)

    def _bound(self, value: Any, ok: Callable[[Any, Any], bool]) -> Check:
        if not _is_number(value):
            raise NotCompiled(f"bound {value!r}")
        return lambda x: not _is_number(x) or ok(x, value)

    def k_minimum(self, value: Any, schema: Any) -> Check:
        return self._bound(value, lambda x, v: x >= v)

    def k_maximum(self, value: Any, schema: Any) -> Check:
        return self._bound(value, lambda x, v: x <= v)

    def k_exclusiveMinimum(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return self._bound(value, lambda x, v: x > v)

    def k_exclusiveMaximum(self, value: Any, schema: Any) -> Check:  # noqa: N802
        return self._bound(value, lambda x, v: x < v)

    def object_members(self, schema: Mapping[str, Any]) -> Check:
        """``properties`` and ``additionalProperties`` together (the latter applies to
        the keys the former does not name)."""
        if "patternProperties" in schema:
            raise NotCompiled("patternProperties")
        props = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        extra = None if extra_schema is True else self.compile(extra_schema)
        if extra_schema is False:

            def closed(x: Any) -> bool:
                if not isinstance(x, dict):
                    return True
                for k, v in x.items():
                    check = props.get(k)
                    if check is None or not check(v):
                        return False
                return True

            return closed

        def members(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for k, v in x.items():
                check = props.get(k, extra)
                if check is not None and not check(v):
                    return False
            return True

        return members


def _every(checks: list[Check]) -> Check:
    """One check for all of ``checks`` (a loop: ``all()`` over a generator cost a frame
    per value)."""
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda x: a(x) and b(x)
    if len(checks) == 3:
        a, b, c = checks
        return lambda x: a(x) and b(x) and c(x)
    checks_t = tuple(checks)

    def every(x: Any) -> bool:
        for check in checks_t:  # noqa: SIM110 - all() over a generator is the cost avoided
            if not check(x):
                return False
        return True

    return every


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """The schema as one ``check(document) -> bool``. Raises NotCompiled for anything
    outside the subset."""
    if schema.get("$schema", "https://json-schema.org/draft/2020-12/schema") != "https://json-schema.org/draft/2020-12/schema":
        raise NotCompiled(f"$schema {schema['$schema']!r}")
    return _Compiler(schema).compile(dict(schema))


class Validator:
    """jsonschema's ``Draft202012Validator`` with the compiled check in front: the same
    ``iter_errors``/``is_valid``, built lazily (jsonschema is imported only for an
    invalid document, or a schema that did not compile)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._slow: Any = None
        try:
            self.check: Check | None = compile_schema(schema)
        except NotCompiled:
            self.check = None

    @property
    def slow(self) -> Any:
        if self._slow is None:
            import jsonschema

            self._slow = jsonschema.Draft202012Validator(self.schema)
        return self._slow

    def is_valid(self, instance: Any) -> bool:
        if self.check is not None:
            return self.check(instance)
        return bool(self.slow.is_valid(instance))

    def iter_errors(self, instance: Any) -> Iterator[Any]:
        if self.check is not None and self.check(instance):
            return iter(())
        return self.slow.iter_errors(instance)
