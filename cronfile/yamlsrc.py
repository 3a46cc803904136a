"""YAML text -> plain data plus the source position of every value.

Like octodns' ``yaml.py``: each loaded value keeps its file, line and column so every
error can point at its source. Built on PyYAML's composer (nodes carry marks), with
our own construction so that:

- positions are recorded per field path, for values and for keys;
- an alias that expands a billion times is refused after ``MAX_NODES`` nodes, fast and
  with bounded memory (the composer shares aliased nodes; only expansion is costly);
- duplicate keys are an error (PyYAML silently keeps the last one);
- YAML 1.1's surprises are off: ``on``/``off``/``yes``/``no`` stay strings (``on:`` is a
  delivery field), ``1:30`` is not 90, and an unquoted ISO timestamp stays a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import sub as _sub
from typing import Any

import yaml

from .errors import Problem

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (no yes/no/on/off booleans)."""


# Rebuild the implicit resolvers without YAML 1.1's bool, sexagesimal int/float and
# timestamp rules; then add the YAML 1.2 core bool.
_Loader.yaml_implicit_resolvers = {}
for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    kept = [
        (tag, rx)
        for tag, rx in _resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    if kept:
        _Loader.yaml_implicit_resolvers[_first] = kept
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


_STR = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"
# The implicit resolvers by a plain scalar's first character ("" for the empty one), as
# tuples: PyYAML's Resolver.resolve concatenates two lists per scalar.
_IMPLICIT: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    first: tuple(rules) for first, rules in _Loader.yaml_implicit_resolvers.items()
}
assert None not in _IMPLICIT and not _Loader.yaml_path_resolvers


def _resolve(self: Any, kind: type, value: str | None, implicit: tuple[bool, bool]) -> str:
    """Resolver.resolve for our resolvers, without path resolvers (we add none): the
    composers call it for every node."""
    if kind is yaml.ScalarNode:
        if implicit[0]:
            for tag, rx in _IMPLICIT.get(value[:1], ()):  # type: ignore[index]
                if rx.match(value):  # type: ignore[arg-type]
                    return tag
        return _STR
    return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG


def _no_path(self: Any, *args: Any) -> None:
    """descend_resolver/ascend_resolver: they only track path resolvers, and we add none."""


_Loader.resolve = _resolve  # type: ignore[method-assign]
_Loader.descend_resolver = _no_path  # type: ignore[method-assign]
_Loader.ascend_resolver = _no_path  # type: ignore[method-assign]

_CLoader: type | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoaderImpl(yaml.cyaml.CParser):  # type: ignore[name-defined,misc]
        """libyaml's parser and composer with the same YAML 1.2 resolvers: about 10x
        faster to compose. Used only for shallow text (its composer recurses in C, where
        Python's recursion limit does not guard the stack) and only when it parses
        cleanly: any error is re-read by the Python parser, whose messages are better.
        Just the parser: the nodes are built by _Builder, never by a PyYAML constructor
        (setting one up per file was 4% of a cold `diff`)."""

        resolve = _resolve
        descend_resolver = _no_path
        ascend_resolver = _no_path

    _CLoader = _CLoaderImpl

# flatten_mapping (merge keys) is the only constructor method used; one shared instance.
_FLATTEN = _Loader("")


def _shallow(text: str) -> bool:
    """Whether flow collections nest at most MAX_DEPTH deep (block nesting is bounded by
    indentation within the 1 MiB cap). Quotes are ignored: over-counting only sends a
    file to the slower Python parser."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return True  # cannot nest deeper than it has brackets (a job file, nearly always)
    depth = peak = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > peak:
                peak = depth
                if peak > MAX_DEPTH:
                    return False
        elif ch in "]}" and depth:
            depth -= 1
    return True


@dataclass
class Document:
    """One YAML document: its data and where each field path came from."""

    path: str
    data: Any
    line: int
    column: int
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    raw: dict[Path, str] = field(default_factory=dict)  # source text of non-string scalars

    def where(self, fpath: Path, *, key: bool = False) -> tuple[int, int]:
        """The best position for ``fpath``: the value (or key), else its nearest parent."""
        table = self.key_positions if key else self.positions
        p = tuple(fpath)
        while p:
            if p in table:
                return table[p]
            if not key and p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (self.line, self.column))


class _Limits(Exception):
    pass


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[Path, tuple[int, int]] = {}
        self.raw: dict[Path, str] = {}
        self.problems: list[Problem] = []
        self.constructor = _FLATTEN  # stateless for flatten_mapping; one per file was 5% of a cold diff
        self._merge_memo: dict[int, int] = {}

    def build(self, node: yaml.Node, fpath: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Limits(
                f"more than {MAX_NODES} values (an alias expanding too far?); refused"
            )
        if depth > MAX_DEPTH:
            raise _Limits(f"nested deeper than {MAX_DEPTH} levels; refused")
        mark = node.start_mark
        self.positions[fpath] = (mark.line + 1, mark.column + 1)
        cls = node.__class__
        if cls is yaml.ScalarNode and node.tag == _STR:
            return node.value  # most values: no table to consult
        if isinstance(node, yaml.MappingNode):
            pairs = node.value
            if any(k.tag == _MERGE or k.tag == _VALUE for k, _ in pairs):
                # Merge keys (`<<: [*a, *a]`) are copied out by flatten_mapping, before any
                # value is counted: a chain of them doubling at each level took gigabytes
                # (found by tests/faults). Count what the merge would make first.
                if self._merged_size(node) > MAX_NODES:
                    raise _Limits(f"more than {MAX_NODES} values (merge keys expanding too far?); refused")
                self.constructor.flatten_mapping(node)
                pairs = node.value
            elif len(pairs) > MAX_NODES:
                # What _merged_size says of a mapping without merge keys: its size.
                raise _Limits(f"more than {MAX_NODES} values (merge keys expanding too far?); refused")
            out: dict[str, Any] = {}
            key_positions = self.key_positions
            positions = self.positions
            inline = depth < MAX_DEPTH  # a child at depth + 1 passes the depth check
            for knode, vnode in pairs:
                if knode.__class__ is yaml.ScalarNode and knode.tag == _STR:
                    key = knode.value
                else:
                    key = self.build_key(knode, fpath)
                    if key is None:
                        continue
                kmark = knode.start_mark
                kpos = (kmark.line + 1, kmark.column + 1)
                if key in out:
                    first = key_positions.get(fpath + (key,), kpos)
                    self.problems.append(
                        Problem(
                            self.path,
                            *kpos,
                            field=_dotted(fpath + (key,)),
                            message=f"duplicate key (first at line {first[0]})",
                        )
                    )
                    continue
                kpath = fpath + (key,)
                key_positions[kpath] = kpos
                if inline and vnode.__class__ is yaml.ScalarNode and vnode.tag == _STR:
                    # build() of a plain string, without the call (most values are one).
                    self.count += 1
                    if self.count > MAX_NODES:
                        raise _Limits(f"more than {MAX_NODES} values (an alias expanding too far?); refused")
                    vmark = vnode.start_mark
                    positions[kpath] = (vmark.line + 1, vmark.column + 1)
                    out[key] = vnode.value
                else:
                    out[key] = self.build(vnode, kpath, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, fpath + (i,), depth + 1) for i, v in enumerate(node.value)]
        return self.scalar(node, fpath)

    def _merged_size(self, node: yaml.MappingNode) -> int:
        """How many pairs ``node`` has once its merge keys are flattened (memoized by
        node: an alias is one node however often it is used)."""
        memo = self._merge_memo
        if id(node) in memo:
            return memo[id(node)]
        total = 0
        for knode, vnode in node.value:
            if knode.tag != "tag:yaml.org,2002:merge":
                total += 1
                continue
            subs = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            for sub in subs:
                if isinstance(sub, yaml.MappingNode):
                    total += self._merged_size(sub)
            if total > MAX_NODES:
                break
        memo[id(node)] = total
        return total

    def build_key(self, knode: yaml.Node, fpath: Path) -> str | None:
        if isinstance(knode, yaml.ScalarNode):
            value = self.scalar(knode, fpath)
            if isinstance(value, str):
                return value
            if isinstance(value, bool | int | float) or value is None:
                # A bare `1:` or `true:` key: keep its text, the schema names it.
                return knode.value
        self.problems.append(
            Problem(
                self.path,
                knode.start_mark.line + 1,
                knode.start_mark.column + 1,
                field=_dotted(fpath),
                message="keys must be plain strings",
            )
        )
        return None

    def scalar(self, node: yaml.Node, fpath: Path) -> Any:
        tag = node.tag
        if tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
            return node.value
        if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"):
            # Kept so that `env: {UMASK: 0022, VER: 1.10}` can pass the text as written.
            self.raw[fpath] = node.value
        if tag in _TYPED_TAGS:
            return _typed(tag, node.value)
        # Any other tag (!!binary, !!python/..., custom) is not part of a job file.
        self.problems.append(
            Problem(
                self.path,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                field=_dotted(fpath),
                message=f"unsupported YAML tag {tag}",
            )
        )
        return node.value


def _dotted(fpath: Path) -> str:
    out = ""
    for part in fpath:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


dotted = _dotted


def load_documents(text: str | bytes, path: str) -> tuple[list[Document], list[Problem]]:
    """Parse every YAML document in ``text``. Never raises for bad input: problems are
    returned, each with the file, line and column."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            return [], [Problem(path, 1, 1, message=f"file is larger than {MAX_FILE_BYTES // 1024} KiB; refused")]
        if b"\x00" in text:
            return [], [Problem(path, 1, 1, message="binary file (NUL byte); not YAML")]
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            return [], [Problem(path, 1, 1, message=f"not UTF-8 text (byte {e.start})")]
    elif len(text) > MAX_FILE_BYTES:
        return [], [Problem(path, 1, 1, message=f"file is larger than {MAX_FILE_BYTES // 1024} KiB; refused")]
    if text.startswith("\ufeff"):
        text = text[1:]
    docs = _fast(text, path)
    if docs is not None:
        return docs, []
    if _CLoader is not None and _shallow(text):
        try:
            return _compose(_CLoader(text), text, path)
        except yaml.YAMLError:
            pass  # re-read below for the Python parser's clearer message
    return _compose(_Loader(text), text, path)


def _compose(loader: Any, text: str, path: str) -> tuple[list[Document], list[Problem]]:
    fast = not isinstance(loader, _Loader)
    problems: list[Problem] = []
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            b = _Builder(path)
            try:
                data = b.build(node, (), 0)
            except _Limits as e:
                problems.append(
                    Problem(path, node.start_mark.line + 1, node.start_mark.column + 1, message=str(e))
                )
                return docs, problems
            problems.extend(b.problems)
            if data is None:
                continue
            docs.append(
                Document(
                    path=path,
                    data=data,
                    line=node.start_mark.line + 1,
                    column=node.start_mark.column + 1,
                    positions=b.positions,
                    key_positions=b.key_positions,
                    raw=b.raw,
                )
            )
    except yaml.MarkedYAMLError as e:
        if fast:
            raise
        problems.append(_yaml_problem(e, path))
    except yaml.YAMLError as e:
        if fast:
            raise
        problems.append(Problem(path, 1, 1, message=f"invalid YAML: {e}"))
    except RecursionError:
        problems.append(Problem(path, 1, 1, message=f"nested deeper than {MAX_DEPTH} levels; refused"))
    finally:
        loader.dispose()
    return docs, problems


def _yaml_problem(e: yaml.MarkedYAMLError, path: str) -> Problem:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    what = e.problem or e.context or "invalid YAML"
    if "\t" in what or "\\t" in what:
        what += " (YAML does not allow tabs for indentation)"
    return Problem(path, line, col, message=f"invalid YAML: {what}")


# -- the plain-YAML fast path ------------------------------------------------------------
#
# Most job files are a handful of `key: value` lines: block mappings and sequences, plain
# and simply quoted scalars, one-line flow collections, literal `|` text. For those,
# libyaml's parse, its node objects and our walk over them were most of a cold read's
# YAML cost (issue 17). ``_fast`` reads that subset line by line into the very Document
# the builder makes (data, every position, raw text of typed scalars) and gives up
# (None) on anything else, which then takes the libyaml/PyYAML path as before: an
# error of any kind, a tab, a multi-line plain or quoted scalar, anchors, tags,
# directives, several documents, duplicate keys, a null value, `>` text, non-ASCII
# keys, keys over 1024 characters, `?` in a flow scalar, and files over FAST_MAX bytes.
# tests/test_coldread.py holds it to the builder's
# result on generated documents and on the broken-file corpus.

FAST_MAX = 16 * 1024

# What the fast path reads at all: printable text that YAML takes as such, without tabs,
# CR, NEL, the Unicode line separators, NBSP, a BOM, or anything outside the BMP.
# Compiled on the first file that is not ASCII (its compile is 4 ms of every start).
_ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\n"  # the ASCII the fast path reads
_FAST_TEXT = "[\n\x20-\x7e\xa1-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd]*"
# A key of at most 1024 characters: libyaml and PyYAML refuse a longer implicit key.
_FAST_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]{0,1023}):(?: +|\Z)")
_TYPED_KEYS = frozenset(("true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL"))
# A plain scalar's first character: none of YAML's indicators (nor `=`, `<`, `~`).
_PLAIN_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./($")
# Not `?` either: libyaml takes it inside a flow plain scalar, PyYAML's pure parser does
# not; stepping aside gives whichever the install has.
_FLOW_PLAIN = re.compile(r"[A-Za-z0-9_./$][^,\[\]{}#:'\"?]*")
_FLOW_SEP = re.compile(r" *(,|\]|\}) *")
_BLOCK_HEADER = re.compile(r"\|(-?)(?: +#.*)?\Z")
_TAIL = re.compile(r"(?: +#.*)?\Z")


class _Bail(Exception):
    """The text is outside the fast path's subset."""


_TYPED_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:float"})


def _typed(tag: str, text: str) -> Any:
    """A plain scalar's value for the tags the resolver gives (both builders: _Builder and
    the fast path). _Bail for any other tag."""
    if tag == "tag:yaml.org,2002:int":
        # YAML 1.2 core: `0022` is 22 (PyYAML's 1.1 constructor would read octal 18);
        # only `0o` and `0x` change the base.
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true"
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:float":
        low = text.lower()
        if low.endswith(".inf"):
            return float("-inf") if low.startswith("-") else float("inf")
        if low.endswith(".nan"):
            return float("nan")
        return float(low)
    raise _Bail


class _Fast:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.n = n = len(lines)
        self.stripped = stripped = [line.lstrip(" ") for line in lines]
        # Each line's indentation (-1 past the end), and for each line the index of the
        # first line at or after it that is not blank or a comment (n: none).
        self.ind = list(map(_sub, map(len, lines), map(len, stripped)))  # (no bytecode per line)
        self.ind.append(-1)
        nxt = [n] * (n + 1)
        for i in range(n - 1, -1, -1):
            s = stripped[i]
            nxt[i] = i if s and s[0] != "#" else nxt[i + 1]
        self.nxt = nxt
        self.positions: dict[Path, tuple[int, int]] = {}
        self.key_positions: dict[Path, tuple[int, int]] = {}
        self.raw: dict[Path, str] = {}

    def mapping(self, i: int, n: int, fpath: Path, depth: int, first: str | None = None) -> tuple[dict[str, Any], int]:
        """A block mapping whose keys are at column ``n``, from line ``i`` (``first``: the
        text of its first entry, when it sits after a sequence's `- ` on line ``i``)."""
        if depth > 16:
            raise _Bail
        nxt, ind, stripped, end = self.nxt, self.ind, self.stripped, self.n
        out: dict[str, Any] = {}
        key_positions = self.key_positions
        positions = self.positions
        while True:
            if first is not None:
                j, content, first = i, first, None
            else:
                j = nxt[i]
                if j == end:
                    return out, j
                d = ind[j]
                if d < n:
                    return out, j
                if d > n:
                    raise _Bail
                content = stripped[j]
                if content[0] == "-" and (len(content) == 1 or content[1] == " "):
                    return out, j  # a sequence at this column: the caller's, or an error
            m = _FAST_KEY.match(content)
            if m is None:
                raise _Bail
            key = m.group(1)
            if key in _TYPED_KEYS or key in out:
                raise _Bail
            kpath = fpath + (key,)
            key_positions[kpath] = (j + 1, n + 1)
            col = m.end()
            rest = content[col:]
            if rest:
                c0 = rest[0]
                if c0 in _PLAIN_FIRST:
                    # The common entries, `key: plain text` and `key: "quoted"`, without a
                    # call of value() (the same steps, inline).
                    cut = rest.find(" #")
                    text = (rest if cut < 0 else rest[:cut]).rstrip(" ")
                    if ": " in text or text[-1] == ":" or ind[nxt[j + 1]] > n:
                        raise _Bail
                    positions[kpath] = (j + 1, n + col + 1)
                    out[key] = self.plain(text, kpath) if text[0] in _IMPLICIT else text
                    i = j + 1
                    continue
                if c0 == '"' or c0 == "'":
                    close = rest.find(c0, 1)
                    text = rest[1:close]
                    if close < 0 or (c0 == '"' and "\\" in text) or not _TAIL.match(rest, close + 1) or ind[nxt[j + 1]] > n:
                        raise _Bail
                    positions[kpath] = (j + 1, n + col + 1)
                    out[key] = text
                    i = j + 1
                    continue
            out[key], i = self.value(rest, n + col, j, n, kpath, depth)

    def sequence(self, i: int, m: int, fpath: Path, depth: int) -> tuple[list[Any], int]:
        """A block sequence whose `-` are at column ``m``, from line ``i``."""
        if depth > 16:
            raise _Bail
        nxt, indents, contents = self.nxt, self.ind, self.stripped
        out: list[Any] = []
        while True:
            j = nxt[i]
            if j == self.n:
                return out, j
            ind = indents[j]
            if ind < m:
                return out, j
            if ind > m:
                raise _Bail
            content = contents[j]
            if not content.startswith("- "):
                if content == "-":
                    raise _Bail
                return out, j
            rest = content[2:]
            stripped = rest.lstrip(" ")
            col = m + 2 + len(rest) - len(stripped)
            ipath = fpath + (len(out),)
            if not stripped or stripped[0] == "#" or stripped[0] == "-":
                raise _Bail
            if _FAST_KEY.match(stripped):
                self.positions[ipath] = (j + 1, col + 1)
                value, i = self.mapping(j, col, ipath, depth + 1, first=stripped)
            else:
                value, i = self.value(stripped, col, j, m, ipath, depth)
            out.append(value)

    def value(self, rest: str, col: int, j: int, n: int, fpath: Path, depth: int) -> tuple[Any, int]:
        """The value of the entry on line ``j`` whose text from column ``col`` is ``rest``,
        in a collection at column ``n``; and the line after it."""
        if not rest or rest[0] == "#":
            k = self.nxt[j + 1]
            if k == self.n:
                raise _Bail  # a null value
            ind = self.ind[k]
            c = self.stripped[k]
            if c[0] == "-" and (len(c) == 1 or c[1] == " ") and ind >= n:
                self.positions[fpath] = (k + 1, ind + 1)
                return self.sequence(k, ind, fpath, depth + 1)
            if ind > n:
                self.positions[fpath] = (k + 1, ind + 1)
                return self.mapping(k, ind, fpath, depth + 1)
            raise _Bail  # a null value
        self.positions[fpath] = (j + 1, col + 1)
        first = rest[0]
        if first == "|":
            return self.literal(rest, j, n)
        if first == '"' or first == "'":
            end = rest.find(first, 1)
            text = rest[1:end]
            if end < 0 or (first == '"' and "\\" in text) or not _TAIL.match(rest, end + 1):
                raise _Bail
            value: Any = text
        elif first == "[" or first == "{":
            value, end = self.flow(rest, col, j, fpath)
            if not _TAIL.match(rest, end):
                raise _Bail
        elif first in _PLAIN_FIRST:
            cut = rest.find(" #")
            text = (rest if cut < 0 else rest[:cut]).rstrip(" ")
            if ": " in text or text.endswith(":"):
                raise _Bail
            value = self.plain(text, fpath)
        else:
            raise _Bail
        if self.ind[self.nxt[j + 1]] > n:
            raise _Bail  # continued on the next line (or an error)
        return value, j + 1

    def plain(self, text: str, fpath: Path) -> Any:
        for tag, rx in _IMPLICIT.get(text[:1], ()):
            if rx.match(text):
                if tag != "tag:yaml.org,2002:null":
                    self.raw[fpath] = text
                return _typed(tag, text)
        return text

    def flow(self, rest: str, col: int, j: int, fpath: Path) -> tuple[Any, int]:
        """A one-line flow sequence or mapping of scalars: its value and where it ends."""
        closing = "]" if rest[0] == "[" else "}"
        is_map = closing == "}"
        out_l: list[Any] = []
        out_d: dict[str, Any] = {}
        pos = 1
        while rest.startswith(" ", pos):
            pos += 1
        if rest.startswith(closing, pos):
            return (out_d if is_map else out_l), pos + 1
        while True:
            if is_map:
                m = _FAST_KEY.match(rest, pos)
                if m is None or m.end() == len(rest) or rest[m.end() - 1] != " ":
                    raise _Bail
                key = m.group(1)
                if key in _TYPED_KEYS or key in out_d:
                    raise _Bail
                ipath = fpath + (key,)
                self.key_positions[ipath] = (j + 1, col + pos + 1)
                pos = m.end()
            else:
                ipath = fpath + (len(out_l),)
            self.positions[ipath] = (j + 1, col + pos + 1)
            c = rest[pos : pos + 1]
            if c == '"' or c == "'":
                end = rest.find(c, pos + 1)
                if end < 0:
                    raise _Bail
                item: Any = rest[pos + 1 : end]
                if c == '"' and "\\" in item:
                    raise _Bail
                pos = end + 1
            else:
                m = _FLOW_PLAIN.match(rest, pos)
                if m is None:
                    raise _Bail
                text = m.group().rstrip(" ")
                item = self.plain(text, ipath)
                pos += len(text)
            if is_map:
                out_d[key] = item
            else:
                out_l.append(item)
            sep = _FLOW_SEP.match(rest, pos)
            if sep is None:
                raise _Bail
            pos = sep.end()
            if sep.group(1) == closing:
                return (out_d if is_map else out_l), pos
            if sep.group(1) != ",":
                raise _Bail

    def literal(self, rest: str, j: int, n: int) -> tuple[str, int]:
        """A `|` or `|-` block scalar whose header is on line ``j``."""
        head = _BLOCK_HEADER.match(rest)
        if head is None:
            raise _Bail
        lines = self.lines
        k = j + 1
        if k >= self.n or not lines[k]:
            raise _Bail  # empty, or a leading blank line
        m = len(lines[k]) - len(lines[k].lstrip(" "))
        if m <= n or m == len(lines[k]):
            raise _Bail
        body: list[str] = []
        blanks = 0
        while k < self.n:
            line = lines[k]
            if not line:
                blanks += 1
                k += 1
                continue
            ind = len(line) - len(line.lstrip(" "))
            if ind == len(line):
                raise _Bail  # a line of spaces only
            if ind < m:
                break
            if blanks:
                body.extend([""] * blanks)
                blanks = 0
            body.append(line[m:])
            k += 1
        text = "\n".join(body)
        return (text if head.group(1) else text + "\n"), k


def _fast(text: str, path: str) -> list[Document] | None:
    """The documents of ``text`` if it is in the fast path's subset (see above), else None."""
    if len(text) > FAST_MAX or not text.endswith("\n"):
        return None
    if text.isascii():
        # Printable ASCII and newlines only: what is left after deleting those is a
        # control character (tab, CR, ...). (str.isprintable looked each character up
        # in the Unicode tables: 3% of the fast path.)
        if text.encode().translate(None, _ASCII_TEXT):
            return None
    elif not re.fullmatch(_FAST_TEXT, text):
        return None
    if "\n---" in text or "\n..." in text or text.startswith(("---", "...", "%")):
        return None
    lines = text.split("\n")
    f = _Fast(lines)
    start = f.nxt[0]
    if start == f.n or f.ind[start]:
        return None
    try:
        f.positions[()] = (start + 1, 1)
        data, end = f.mapping(start, 0, (), 0)
        if f.nxt[end] != f.n:
            return None
    except _Bail:
        return None
    return [Document(path, data, start + 1, 1, f.positions, f.key_positions, f.raw)]
