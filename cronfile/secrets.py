"""``${VAR}`` expansion and masking of the values it brings in.

Pure: the environment is an argument. A value that came from ``${VAR}`` is treated as a
secret: it is handed to the child process but never stored, so every byte of captured
output passes through a :class:`Masker` (or, while streaming, a :class:`StreamMasker`)
that replaces it with ``***`` (docs/design.md section 5, Safety).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "Masker",
    "MissingVariable",
    "StreamMasker",
    "expand_env",
    "expand_text",
    "var_names",
]

MASK = "***"

# Values shorter than this are not masked: replacing "a" or "on" everywhere would wreck
# the output while protecting nothing (a 3-character secret is not a secret). The value
# is still expanded and handed to the child.
MIN_SECRET_LEN = 4

# Same syntax as spec.VAR_RE; only the braced form, so a literal `$HOME` or a shell's
# `$1` in a value passes through untouched.
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(ValueError):
    """A ``${VAR}`` names a variable the engine's environment does not have."""

    def __init__(self, name: str, where: str = "") -> None:
        self.name = name
        self.where = where
        msg = f"environment variable {name} is not set (used as ${{{name}}}"
        msg += f" in {where})" if where else ")"
        super().__init__(msg)


def expand_text(text: str, environ: Mapping[str, str], *, where: str = "") -> tuple[str, list[str]]:
    """Replace every ``${VAR}`` in ``text`` from ``environ``.

    Returns the expanded text and the values substituted (the secrets to mask). Raises
    :class:`MissingVariable` for the first variable that is not set; ``where`` names the
    field in its message (``env.API_TOKEN``)."""
    secrets: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise MissingVariable(name, where)
        value = environ[name]
        secrets.append(value)
        return value

    return _VAR_RE.sub(sub, text), secrets


def var_names(value: object) -> set[str]:
    """The names of every ``${VAR}`` in ``value`` (strings in nested mappings and lists)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            found.update(_VAR_RE.findall(v))
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return found


def expand_env(
    env: Iterable[tuple[str, str]], environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Expand a job's ``env`` pairs; returns (the expanded mapping, the secret values)."""
    out: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in env:
        out[key], found = expand_text(value, environ, where=f"env.{key}")
        secrets.extend(found)
    return out, secrets


class _Automaton:
    """Aho-Corasick over the secrets' UTF-8 bytes: one pass over the output finds every
    occurrence of every secret, in time linear in the output whatever the secrets are
    (a regex alternation retries each secret at each position: a 4,001-byte secret over
    20 MB of output took minutes).

    ``longest[s]``: the longest secret that ends at state ``s`` (through its suffix
    links), 0 if none; ``depth[s]``: how many bytes of a secret state ``s`` has matched
    so far, which is what a stream must hold back. At the root, a C regex of each
    secret's first bytes skips the output that cannot start a secret."""

    def __init__(self, patterns: Iterable[bytes]) -> None:
        goto: list[dict[int, int]] = [{}]
        longest = [0]
        depth = [0]
        pats = [p for p in patterns if p]
        for pat in pats:
            s = 0
            for b in pat:
                nxt = goto[s].get(b)
                if nxt is None:
                    nxt = len(goto)
                    goto.append({})
                    longest.append(0)
                    depth.append(depth[s] + 1)
                    goto[s][b] = nxt
                s = nxt
            longest[s] = max(longest[s], len(pat))
        fail = [0] * len(goto)
        queue = deque(goto[0].values())
        while queue:
            s = queue.popleft()
            for b, t in goto[s].items():
                queue.append(t)
                f = fail[s]
                while f and b not in goto[f]:
                    f = fail[f]
                g = goto[f].get(b, 0)
                fail[t] = g if g != t else 0
                longest[t] = max(longest[t], longest[fail[t]])
        self.goto, self.fail, self.longest, self.depth = goto, fail, longest, depth
        prefixes = sorted({p[:4] for p in pats}, key=lambda x: (-len(x), x))
        self._start = re.compile(b"|".join(map(re.escape, prefixes))) if prefixes else None

    def scan(self, data: bytes, state: int) -> tuple[list[tuple[int, int]], int]:
        """Matches in ``data`` starting from ``state``: (end offset, length) pairs, the
        longest ending at each offset; and the state after the last byte."""
        goto, fail, longest = self.goto, self.fail, self.longest
        found: list[tuple[int, int]] = []
        i, n = 0, len(data)
        start = self._start
        tail = max(n - 3, 0)  # a secret's first bytes cut off by the end of `data`
        while i < n:
            if state == 0 and start is not None and i < tail:
                m = start.search(data, i)
                # No secret starts before `tail`; the last bytes go through the automaton.
                i = m.start() if m is not None else tail
            b = data[i]
            nxt = goto[state].get(b)
            while nxt is None and state:
                state = fail[state]
                nxt = goto[state].get(b)
            state = nxt or 0
            i += 1
            if longest[state]:
                found.append((i, longest[state]))
        return found, state


class Masker:
    """Replaces every occurrence of the secret values with ``***``.

    Empty values and values shorter than :data:`MIN_SECRET_LEN` characters are ignored
    (see there). Every byte that belongs to an occurrence of any secret is masked:
    overlapping or adjacent occurrences become one ``***`` (a secret that contains
    another is masked whole, and two secrets that overlap leave no part of either)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=lambda s: (-len(s), s)
        )
        self.secrets: tuple[str, ...] = tuple(values)
        encoded = sorted({s.encode() for s in values}, key=lambda b: (-len(b), b))
        self._automaton = _Automaton(encoded) if encoded else None
        # Output is masked as bytes, so the hold-back of a stream is counted in bytes.
        self.max_len = len(encoded[0]) if encoded else 0

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def mask(self, text: str) -> str:
        if self._automaton is None:
            return text
        return self.mask_bytes(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")

    def mask_bytes(self, data: bytes) -> bytes:
        if self._automaton is None:
            return data
        s = StreamMasker(self)
        return s.feed(data) + s.flush()

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


class StreamMasker:
    """Masks output that arrives in chunks, where a secret may straddle two chunks.

    ``feed`` returns what is safe to write now: it holds back the bytes a secret may
    still be completing (the automaton's depth, less than the longest secret) and a
    masked stretch that a next occurrence could still extend; ``flush`` returns the rest
    at end of stream. Linear in the output."""

    def __init__(self, masker: Masker | Iterable[str]) -> None:
        if not isinstance(masker, Masker):
            masker = Masker(masker)
        self._auto = masker._automaton
        self._state = 0
        self._pending = b""
        self._base = 0  # stream offset of _pending[0]
        self._spans: list[list[int]] = []  # merged [start, end) stream offsets to mask

    def feed(self, data: bytes) -> bytes:
        if self._auto is None:
            return data
        at = self._base + len(self._pending)
        found, self._state = self._auto.scan(data, self._state)
        spans = self._spans
        for end, length in found:
            a, b = at + end - length, at + end
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
                spans[-1][0] = min(spans[-1][0], a)
                # An earlier span this one reaches back into: merge them.
                while len(spans) > 1 and spans[-1][0] <= spans[-2][1]:
                    last = spans.pop()
                    spans[-1][0] = min(spans[-1][0], last[0])
                    spans[-1][1] = max(spans[-1][1], last[1])
            else:
                spans.append([a, b])
        self._pending += data
        # Nothing before `safe` can start an occurrence still to come.
        safe = at + len(data) - self._auto.depth[self._state]
        if spans and spans[-1][1] >= safe:
            safe = min(safe, spans[-1][0])  # that span may still grow: hold it whole
        return self._emit(safe)

    def _emit(self, upto: int) -> bytes:
        out: list[bytes] = []
        pos = self._base
        keep: list[list[int]] = []
        for a, b in self._spans:
            if b > upto:
                keep.append([a, b])
                continue
            out.append(self._pending[pos - self._base : a - self._base])
            out.append(MASK.encode())
            pos = b
        if pos < upto:
            out.append(self._pending[pos - self._base : upto - self._base])
            pos = upto
        self._pending = self._pending[pos - self._base :]
        self._base = pos
        self._spans = keep
        return b"".join(out)

    def flush(self) -> bytes:
        if self._auto is None:
            rest, self._pending = self._pending, b""
            return rest
        out = self._emit(self._base + len(self._pending))
        self._state = 0
        return out
