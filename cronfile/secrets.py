"""``${VAR}`` expansion and masking of the values it brings in.

Pure: the environment is an argument. A value that came from ``${VAR}`` is treated as a
secret: it is handed to the child process but never stored, so every byte of captured
output passes through a :class:`Masker` (or, while streaming, a :class:`StreamMasker`)
that replaces it with ``***`` (DESIGN.md section 5, Safety).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "Masker",
    "MissingVariable",
    "StreamMasker",
    "expand_env",
    "expand_text",
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


class Masker:
    """Replaces every occurrence of the secret values with ``***``.

    Empty values and values shorter than :data:`MIN_SECRET_LEN` characters are ignored
    (see there). Longer secrets are tried first, so a secret that contains another is
    masked whole."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=lambda s: (-len(s), s)
        )
        self.secrets: tuple[str, ...] = tuple(values)
        self._text_re = re.compile("|".join(map(re.escape, values))) if values else None
        encoded = sorted({s.encode() for s in values}, key=lambda b: (-len(b), b))
        self._bytes_re = re.compile(b"|".join(map(re.escape, encoded))) if encoded else None
        # Output is masked as bytes, so the hold-back of a stream is counted in bytes.
        self.max_len = len(encoded[0]) if encoded else 0

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def mask(self, text: str) -> str:
        return self._text_re.sub(MASK, text) if self._text_re else text

    def mask_bytes(self, data: bytes) -> bytes:
        return self._bytes_re.sub(MASK.encode(), data) if self._bytes_re else data

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


class StreamMasker:
    """Masks output that arrives in chunks, where a secret may straddle two chunks.

    ``feed`` returns what is safe to write now and holds back at most ``max_len - 1``
    bytes (the longest prefix of a secret that could still be completed by the next
    chunk); ``flush`` returns the rest at end of stream."""

    def __init__(self, masker: Masker | Iterable[str]) -> None:
        if not isinstance(masker, Masker):
            masker = Masker(masker)
        self._masker = masker
        self._pattern = masker._bytes_re
        self._hold = max(masker.max_len - 1, 0)
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if self._pattern is None:
            return data
        buf = self._pending + data
        # Everything before `safe` has at least max_len bytes after it in `buf`, so a
        # match that starts there is decided exactly as it would be on the whole stream.
        safe = len(buf) - self._hold
        out: list[bytes] = []
        pos = 0
        for m in self._pattern.finditer(buf):
            if m.start() >= safe:
                break
            out.append(buf[pos : m.start()])
            out.append(MASK.encode())
            pos = m.end()
        if pos < safe:
            out.append(buf[pos:safe])
            pos = safe
        self._pending = buf[pos:]
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return self._masker.mask_bytes(rest)
