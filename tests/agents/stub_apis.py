"""Local stand-ins for the model APIs the agent CLIs call, on 127.0.0.1.

One threaded HTTP server answers all four providers, each on its own paths, the way the
real APIs answer (streaming where the CLI streams), with an answer text and token
counts the test sets. Every request is recorded, so a test can check that the prompt
reached the model verbatim.

- OpenAI Responses API (codex): ``POST .../responses``, server-sent events.
- OpenAI Chat Completions (llm): ``POST .../chat/completions``, streaming or not.
- Anthropic Messages (claude): ``HEAD /``, ``POST /v1/messages`` streaming or not.
- Gemini (gemini): ``POST .../models/M:streamGenerateContent?alt=sse`` and
  ``:generateContent``.

With ``tool_call=(name, arguments)`` the stub first answers a request that offers a tool
of that name with a call to it (the way each API asks for a tool), and answers with the
text once the request carries the tool's result, which :meth:`ModelStub.tool_results`
then lists. A request that does not offer the tool gets the text straight away, unless
``force_call`` is set (a model asking for a tool it was not given).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ModelStub", "Seen", "strings_in"]


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value (the prompt sits somewhere inside)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


class ModelStub:
    """``with ModelStub(answer="hi", input_tokens=12, output_tokens=3) as stub:`` then
    point a CLI at ``stub.url``; ``stub.seen`` lists the requests."""

    def __init__(
        self,
        answer: str = "stub answer",
        *,
        input_tokens: int = 1200,
        output_tokens: int = 34,
        tool_call: tuple[str, dict[str, Any]] | None = None,
        force_call: bool = False,
    ) -> None:
        self.answer = answer
        self.tool_call = tool_call
        self.force_call = force_call  # ask for the tool even if the request does not offer it
        self.tool_calls_sent = 0
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> Seen:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with stub._lock:
                    stub.seen.append(seen)
                return seen

            def do_HEAD(self) -> None:
                self._record()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                seen = self._record()
                if seen.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [], "models": []})
                else:
                    self._json(404, {"error": {"message": f"no {seen.path}"}})

            def do_POST(self) -> None:
                seen = self._record()
                path = seen.path
                try:
                    req = seen.json() or {}
                except ValueError:
                    req = {}
                call = stub._wants_call(path, req)
                if call:
                    with stub._lock:
                        stub.tool_calls_sent += 1
                if call and path.endswith("/responses"):
                    self._sse(stub._responses_call_events(req))
                elif call and path.endswith("/messages"):
                    if req.get("stream"):
                        self._sse(stub._anthropic_call_events(req), named=True)
                    else:
                        self._json(200, stub._anthropic_call_body(req))
                elif call and "generatecontent" in path.lower():
                    body = stub._gemini_call_body()
                    if ":streamGenerateContent" in path:
                        self._sse([body])
                    else:
                        self._json(200, body)
                elif path.endswith("/responses"):
                    self._sse(stub._responses_events(req))
                elif path.endswith("/chat/completions"):
                    if req.get("stream"):
                        self._sse(stub._chat_events(req), done=True)
                    else:
                        self._json(200, stub._chat_body(req))
                elif path.endswith("/messages/count_tokens"):
                    self._json(200, {"input_tokens": stub.input_tokens})
                elif path.endswith("/messages"):
                    if req.get("stream"):
                        self._sse(stub._anthropic_events(req), named=True)
                    else:
                        self._json(200, stub._anthropic_body(req))
                elif ":streamGenerateContent" in path:
                    self._sse([stub._gemini_body()])
                elif ":generateContent" in path:
                    self._json(200, stub._gemini_body())
                elif ":countTokens" in path:
                    self._json(200, {"totalTokens": stub.input_tokens})
                else:
                    self._json(404, {"error": {"message": f"no {path}"}})

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[Any], *, named: bool = False, done: bool = False) -> None:
                chunks = []
                for ev in events:
                    head = f"event: {ev['type']}\n" if named or "type" in ev else ""
                    chunks.append(f"{head}data: {json.dumps(ev)}\n\n")
                if done:
                    chunks.append("data: [DONE]\n\n")
                data = "".join(chunks).encode()
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ModelStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what was asked ------------------------------------------------------------------

    def model_requests(self) -> list[Seen]:
        """The requests that asked a model for an answer (not HEAD probes)."""
        marks = ("/responses", "/chat/completions", "/messages", "generatecontent")
        return [
            s for s in self.seen if s.method == "POST" and any(m in s.path.lower() for m in marks)
        ]

    def received(self, text: str) -> bool:
        """Whether ``text`` arrived verbatim inside one string of one model request."""
        for s in self.model_requests():
            try:
                body = s.json()
            except ValueError:
                continue
            if any(text in piece for piece in strings_in(body)):
                return True
        return False

    # -- tool calls ----------------------------------------------------------------------

    @staticmethod
    def offered_tools(req: dict[str, Any]) -> list[str]:
        """The names of the tools a model request offers (any of the three APIs)."""
        names = []
        for tool in req.get("tools") or ():
            if not isinstance(tool, dict):
                continue
            if "name" in tool:  # Anthropic, OpenAI Responses
                names.append(tool["name"])
            elif isinstance(tool.get("function"), dict):  # Chat Completions
                names.append(tool["function"].get("name"))
            for decl in tool.get("functionDeclarations") or ():  # Gemini
                names.append(decl.get("name"))
        return [n for n in names if isinstance(n, str)]

    @staticmethod
    def _results_in(req: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for msg in req.get("messages") or ():  # Anthropic
            content = msg.get("content") if isinstance(msg, dict) else None
            for block in content if isinstance(content, list) else ():
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.append(block.get("content"))
        for item in req.get("input") or () if isinstance(req.get("input"), list) else ():
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                out.append(item.get("output"))
        for content in req.get("contents") or ():  # Gemini
            for part in content.get("parts") or () if isinstance(content, dict) else ():
                if isinstance(part, dict) and "functionResponse" in part:
                    out.append(part["functionResponse"])
        return out

    def _wants_call(self, path: str, req: dict[str, Any]) -> bool:
        if self.tool_call is None or self._results_in(req):
            return False
        if self.force_call:
            return bool(req.get("tools") or req.get("contents") or req.get("input"))
        return self.tool_call[0] in self.offered_tools(req)

    def tool_results(self) -> list[str]:
        """Every tool result the CLIs sent back, each as JSON text."""
        out = []
        for s in self.model_requests():
            try:
                req = s.json() or {}
            except ValueError:
                continue
            out.extend(json.dumps(r, ensure_ascii=False) for r in self._results_in(req))
        return out

    def _responses_call_events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.tool_call is not None
        name, args = self.tool_call
        item = {
            "type": "function_call",
            "id": "fc_stub",
            "call_id": "call_stub",
            "name": name,
            "arguments": json.dumps(args),
            "status": "completed",
        }
        base = {"id": "resp_call", "object": "response", "model": req.get("model", "stub")}
        usage = {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 1,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + 1,
        }
        return [
            {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}},
            {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {
                "type": "response.completed",
                "response": {**base, "status": "completed", "output": [item], "usage": usage},
            },
        ]

    def _anthropic_call_body(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.tool_call is not None
        name, args = self.tool_call
        return {
            **self._anthropic_body(req),
            "content": [{"type": "tool_use", "id": "toolu_stub", "name": name, "input": args}],
            "stop_reason": "tool_use",
        }

    def _anthropic_call_events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.tool_call is not None
        name, args = self.tool_call
        start = {**self._anthropic_body(req), "content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        block = {"type": "tool_use", "id": "toolu_stub", "name": name, "input": {}}
        return [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": block},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": json.dumps(args)},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
            {"type": "message_stop"},
        ]

    def _gemini_call_body(self) -> dict[str, Any]:
        assert self.tool_call is not None
        name, args = self.tool_call
        body = self._gemini_body()
        body["candidates"][0]["content"]["parts"] = [{"functionCall": {"name": name, "args": args}}]
        return body

    # -- answers -------------------------------------------------------------------------

    def _responses_events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        rid, mid = "resp_stub", "msg_stub"
        message = {
            "type": "message",
            "id": mid,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": self.answer, "annotations": []}],
        }
        usage = {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        base = {"id": rid, "object": "response", "model": req.get("model", "stub")}
        return [
            {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**message, "status": "in_progress", "content": []},
            },
            {
                "type": "response.output_text.delta",
                "item_id": mid,
                "output_index": 0,
                "content_index": 0,
                "delta": self.answer,
            },
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {
                "type": "response.completed",
                "response": {**base, "status": "completed", "output": [message], "usage": usage},
            },
        ]

    def _chat_body(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 0,
            "model": req.get("model", "stub"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            },
        }

    def _chat_events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        base = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": req.get("model", "stub"),
        }
        return [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.answer}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": self.input_tokens,
                    "completion_tokens": self.output_tokens,
                    "total_tokens": self.input_tokens + self.output_tokens,
                },
            },
        ]

    def _anthropic_body(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": req.get("model", "stub"),
            "content": [{"type": "text", "text": self.answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
        }

    def _anthropic_events(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        start = {**self._anthropic_body(req), "content": [], "stop_reason": None}
        start["usage"] = {"input_tokens": self.input_tokens, "output_tokens": 1}
        return [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": self.answer}},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            },
            {"type": "message_stop"},
        ]

    def _gemini_body(self) -> dict[str, Any]:
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": self.answer}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": self.input_tokens,
                "candidatesTokenCount": self.output_tokens,
                "totalTokenCount": self.input_tokens + self.output_tokens,
            },
            "modelVersion": "stub",
        }
