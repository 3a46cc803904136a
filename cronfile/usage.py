"""What an agent CLI answered and what it cost: output decoders, usage sums, budgets.

Pure: bytes in, bytes and values out; no processes, no files, no clock.

An agent profile names how its program's output is read (``output:``):

- ``text``: stdout and stderr, merged, are the answer (any program; the default).
- ``codex-json``: ``codex exec --json``: JSON lines; the ``agent_message`` items are the
  answer, ``turn.completed`` carries the usage.
- ``claude-json``: ``claude -p --output-format json``: one JSON object; ``result`` is the
  answer, ``usage`` and ``total_cost_usd`` the cost.
- ``gemini-json``: ``gemini --output-format json``: one JSON object; ``response`` is the
  answer, ``stats.models.*.tokens`` the usage.
- ``llm-usage``: ``llm -u``: stdout is the answer; the ``Token usage: N input, M output``
  line on stderr is the usage.

For every format but ``text`` the program's stdout and stderr are read apart: what is
stored in the run's log (and delivered) is the answer, never the envelope. Their stderr
(warnings, progress) is held back and shown in the log only when the attempt fails. A
usage report that cannot be read leaves usage ``None`` with ``problem`` saying why; it
never fails the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "OUTPUT_FORMATS",
    "Decoder",
    "Usage",
    "budget_refusal",
    "budget_left",
    "decoder_for",
    "usage_since",
]

_ANSWER_CAP = 1024 * 1024  # characters of answer kept for `expect:` checks
_ENVELOPE_CAP = 16 * 1024 * 1024  # bytes of a JSON envelope buffered before giving up
_STDERR_CAP = 16 * 1024  # bytes of held-back stderr kept (the tail)


@dataclass(frozen=True)
class Usage:
    """Tokens and, where the CLI knows it, cost in US dollars."""

    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None and other.cost_usd is None
            else round((self.cost_usd or 0.0) + (other.cost_usd or 0.0), 6)
        )
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost)

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Usage | None:
        """A history record's ``usage``; None when absent or not a usage object."""
        if not isinstance(obj, dict):
            return None
        try:
            cost = obj.get("cost_usd")
            return cls(
                int(obj.get("input_tokens") or 0),
                int(obj.get("output_tokens") or 0),
                None if cost is None else float(cost),
            )
        except (TypeError, ValueError):
            return None


# -- decoders --------------------------------------------------------------------------


class Decoder:
    """Reads one attempt's output. ``out``/``err`` take chunks of stdout/stderr (for
    ``text``, the merged output arrives through ``out``) and return the bytes for the
    log; ``end`` is called once both are closed and returns what is left."""

    fmt = "text"
    split = False  # stdout and stderr on separate pipes

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.problem: str | None = None  # why usage is None although the format reports it
        self._answer: list[str] = []
        self._answer_len = 0
        self.stderr = b""

    @property
    def answer(self) -> str:
        """The answer text (the first MiB of it)."""
        return "".join(self._answer)

    def _keep(self, text: str) -> None:
        room = _ANSWER_CAP - self._answer_len
        if room > 0 and text:
            piece = text[:room]
            self._answer.append(piece)
            self._answer_len += len(piece)

    def out(self, data: bytes) -> bytes:
        self._keep(data.decode("utf-8", "replace"))
        return data

    def err(self, data: bytes) -> bytes:
        return data

    def end(self) -> bytes:
        return b""

    def _hold(self, data: bytes) -> bytes:
        self.stderr = (self.stderr + data)[-_STDERR_CAP:]
        return b""

    def _emit(self, text: str) -> bytes:
        self._keep(text)
        return text.encode("utf-8")


class _Envelope(Decoder):
    """One JSON object on stdout at the end (claude, gemini)."""

    split = True

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._overflow = False

    def out(self, data: bytes) -> bytes:
        if self._overflow:
            return data
        self._buf += data
        if len(self._buf) > _ENVELOPE_CAP:
            # Not an envelope we can hold: show it as it came.
            self._overflow = True
            self.problem = f"{self.fmt}: output too large to read as JSON"
            raw, self._buf = bytes(self._buf), bytearray()
            return raw
        return b""

    def err(self, data: bytes) -> bytes:
        return self._hold(data)

    def end(self) -> bytes:
        if self._overflow:
            return b""
        raw = bytes(self._buf)
        text = raw.decode("utf-8", "replace")
        obj = _last_json_object(text)
        if obj is None:
            if text.strip():
                self.problem = f"{self.fmt}: output was not a JSON object; usage unknown"
            else:
                self.problem = f"{self.fmt}: no output; usage unknown"
            self._keep(text)
            return raw
        answer, usage, problem = self._read(obj)
        self.usage, self.problem = usage, problem
        if answer and not answer.endswith("\n"):
            answer += "\n"
        return self._emit(answer)

    def _read(self, obj: dict[str, Any]) -> tuple[str, Usage | None, str | None]:
        raise NotImplementedError


def _last_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object that is the whole text, or failing that its last line that is one
    (a CLI may print a notice before it)."""
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def _int(obj: Mapping[str, Any], *keys: str) -> int:
    total = 0
    for k in keys:
        v = obj.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        total += int(v)
    return total


class _Claude(_Envelope):
    fmt = "claude-json"

    def _read(self, obj: dict[str, Any]) -> tuple[str, Usage | None, str | None]:
        answer = obj.get("result")
        answer = answer if isinstance(answer, str) else ""
        if obj.get("is_error") and not answer:
            answer = f"[claude error] {obj.get('subtype') or 'error'}"
        u = obj.get("usage")
        if not isinstance(u, dict) or not isinstance(u.get("input_tokens"), int):
            return answer, None, "claude-json: no usage in the result"
        cost = obj.get("total_cost_usd")
        usage = Usage(
            _int(u, "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
            _int(u, "output_tokens"),
            float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        )
        return answer, usage, None


class _Gemini(_Envelope):
    fmt = "gemini-json"

    def _read(self, obj: dict[str, Any]) -> tuple[str, Usage | None, str | None]:
        answer = obj.get("response")
        answer = answer if isinstance(answer, str) else ""
        error = obj.get("error")
        if isinstance(error, dict) and not answer:
            answer = f"[gemini error] {error.get('message') or error.get('type') or 'error'}"
        models = (obj.get("stats") or {}).get("models") if isinstance(obj.get("stats"), dict) else None
        if not isinstance(models, dict) or not models:
            return answer, None, "gemini-json: no stats.models in the output"
        inp = out = 0
        for m in models.values():
            tokens = m.get("tokens") if isinstance(m, dict) else None
            if not isinstance(tokens, dict):
                return answer, None, "gemini-json: stats.models without tokens"
            inp += _int(tokens, "prompt")
            out += _int(tokens, "candidates", "thoughts")
        return answer, Usage(inp, out, None), None


class _Codex(Decoder):
    """``codex exec --json``: one event per line, streamed."""

    fmt = "codex-json"
    split = True

    def __init__(self) -> None:
        super().__init__()
        self._line = bytearray()
        self._turns = 0
        self._bad = 0

    def out(self, data: bytes) -> bytes:
        self._line += data
        emitted = bytearray()
        while True:
            nl = self._line.find(b"\n")
            if nl < 0:
                break
            line, self._line = bytes(self._line[:nl]), self._line[nl + 1 :]
            emitted += self._event(line)
        return bytes(emitted)

    def err(self, data: bytes) -> bytes:
        return self._hold(data)

    def end(self) -> bytes:
        tail = self._event(bytes(self._line)) if self._line.strip() else b""
        self._line = bytearray()
        if self.usage is None and self.problem is None:
            self.problem = "codex-json: no turn.completed event with usage"
        return tail

    def _event(self, line: bytes) -> bytes:
        text = line.decode("utf-8", "replace")
        if not text.strip():
            return b""
        try:
            ev = json.loads(text)
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            # Not an event: shown as it came.
            return self._emit(text + "\n")
        kind = ev.get("type")
        if kind == "item.completed":
            item = ev.get("item") or {}
            if isinstance(item, dict) and item.get("type") == "agent_message":
                msg = item.get("text")
                if isinstance(msg, str):
                    return self._emit(msg if msg.endswith("\n") else msg + "\n")
        elif kind == "turn.completed":
            u = ev.get("usage")
            if isinstance(u, dict) and isinstance(u.get("input_tokens"), int):
                turn = Usage(_int(u, "input_tokens"), _int(u, "output_tokens"), None)
                self.usage = turn if self.usage is None else self.usage + turn
                self.problem = None
            else:
                self.problem = "codex-json: turn.completed without usage"
        elif kind in ("turn.failed", "error"):
            err = ev.get("error") if kind == "turn.failed" else ev
            msg = err.get("message") if isinstance(err, dict) else None
            return f"[codex error] {msg or text}\n".encode()
        return b""


_USAGE_LINE = re.compile(rb"^Token usage: ([\d,]+) input, ([\d,]+) output.*$", re.M)


class _Llm(Decoder):
    """``llm -u``: the answer streams on stdout; the usage line comes on stderr."""

    fmt = "llm-usage"
    split = True

    def err(self, data: bytes) -> bytes:
        return self._hold(data)

    def end(self) -> bytes:
        found = list(_USAGE_LINE.finditer(self.stderr))
        if not found:
            self.problem = "llm-usage: no 'Token usage:' line on stderr"
            return b""
        m = found[-1]
        self.usage = Usage(int(m.group(1).replace(b",", b"")), int(m.group(2).replace(b",", b"")), None)
        self.stderr = _USAGE_LINE.sub(b"", self.stderr).strip()
        return b""


_DECODERS: dict[str, type[Decoder]] = {
    "text": Decoder,
    "codex-json": _Codex,
    "claude-json": _Claude,
    "gemini-json": _Gemini,
    "llm-usage": _Llm,
}
OUTPUT_FORMATS = tuple(_DECODERS)


def decoder_for(fmt: str) -> Decoder:
    """A fresh decoder for one attempt. KeyError for an unknown format (validated
    before)."""
    return _DECODERS[fmt]()


# -- budgets ---------------------------------------------------------------------------


def usage_since(records: Iterable[Mapping[str, Any]], since: datetime) -> Usage:
    """The usage of the runs in ``records`` (history lines) that started at or after
    ``since``. Runs without a usage report count as nothing."""
    total = Usage(0, 0, None)
    for rec in records:
        started = rec.get("started_at")
        try:
            at = datetime.fromisoformat(started) if isinstance(started, str) else None
        except ValueError:
            at = None
        if at is None or at < since:
            continue
        u = Usage.from_json(rec.get("usage"))
        if u is not None:
            total = total + u
    return total


def budget_left(budget: Mapping[str, Any], used: Usage) -> dict[str, Any]:
    """What is left of each limit in ``budget`` (may be negative)."""
    left: dict[str, Any] = {}
    if "tokens_per_day" in budget:
        left["tokens"] = int(budget["tokens_per_day"]) - used.tokens
    if "cost_per_day" in budget:
        left["cost_usd"] = round(float(budget["cost_per_day"]) - (used.cost_usd or 0.0), 6)
    return left


def budget_refusal(budget: Mapping[str, Any], used: Usage) -> str | None:
    """Why a run may not start under ``budget`` after ``used`` in the last 24 hours, or
    None if it may."""
    tokens = budget.get("tokens_per_day")
    if tokens is not None and used.tokens >= int(tokens):
        return (
            f"budget: tokens_per_day {int(tokens)} is used up "
            f"({used.tokens} tokens in the last 24 hours)"
        )
    cost = budget.get("cost_per_day")
    if cost is not None and (used.cost_usd or 0.0) >= float(cost):
        return (
            f"budget: cost_per_day {float(cost):g} USD is used up "
            f"({used.cost_usd or 0.0:g} USD in the last 24 hours)"
        )
    return None
