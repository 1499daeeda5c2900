"""A local HTTP server that speaks the Anthropic Messages API well enough for the real SDK.

Tests script its replies (`reply`, `error`, or a callable that sees the request); the server
checks each request the way the real API does (roles alternate, every ``tool_use`` answered by
a ``tool_result`` in the next user turn, at most four cache breakpoints, no empty text, the API
key), answers with the real wire format (content blocks, ``stop_reason``, ``usage`` with
``cache_creation_input_tokens`` / ``cache_read_input_tokens``), and simulates prompt caching:
a prefix up to a ``cache_control`` breakpoint is written on first sight and read afterwards.
Error steps answer with the API's error body and status (529 overloaded, 429 rate limit) and
may carry ``retry-after`` headers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk-ant-test-fake"
MAX_BREAKPOINTS = 4
_ids = itertools.count(1)


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(name: str, tool_input: dict, tool_id: str | None = None) -> dict:
    return {"type": "tool_use", "id": tool_id or f"toolu_{next(_ids):06d}", "name": name,
            "input": tool_input}


@dataclass
class Reply:
    content: list[dict]
    stop_reason: str | None = None


@dataclass
class Error:
    status: int
    type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def reply(*blocks: dict, stop_reason: str | None = None) -> Reply:
    return Reply(list(blocks), stop_reason)


def error(status: int, kind: str, message: str = "", **headers: str) -> Error:
    return Error(status, kind, message or kind, {k.replace("_", "-"): v
                                                 for k, v in headers.items()})


def overloaded(retry_after_ms: int = 5) -> Error:
    return error(529, "overloaded_error", "Overloaded", retry_after_ms=str(retry_after_ms))


def rate_limited(retry_after_ms: int = 5) -> Error:
    return error(429, "rate_limit_error", "Number of request tokens has exceeded your rate "
                 "limit", retry_after_ms=str(retry_after_ms))


Step = Reply | Error | Callable[[dict], "Reply | Error"]


def tokens(value: object) -> int:
    """A stand-in tokenizer: about four characters per token."""
    return max(1, math.ceil(len(json.dumps(value, sort_keys=True)) / 4))


class FakeAnthropic:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.script: deque[Step] = deque()
        self.requests: list[dict] = []
        """Every request body received (valid or not), in order."""
        self.problems: list[str] = []
        """Why requests were refused with 400 (a test asserts this stays empty)."""
        self.usages: list[dict] = []
        self.headers: list[dict] = []
        self._cache: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}"

    def add(self, *steps: Step) -> None:
        self.script.extend(steps)

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- answering ----------------------------------------------------------------------------
    def answer(self, body: dict, api_key: str | None) -> tuple[int, dict, dict]:
        with self._lock:
            self.requests.append(body)
            if api_key != self.api_key:
                return _error(Error(401, "authentication_error", "invalid x-api-key"))
            problem = check_request(body)
            if problem:
                self.problems.append(problem)
                return _error(Error(400, "invalid_request_error", problem))
            if not self.script:
                self.problems.append("script exhausted")
                return _error(Error(500, "api_error", "fake server: script exhausted"))
            step = self.script.popleft()
            if callable(step):
                step = step(body)
            if isinstance(step, Error):
                return _error(step)
            usage = self._usage(body, step.content)
            self.usages.append(usage)
            stop = step.stop_reason or ("tool_use" if any(b["type"] == "tool_use"
                                                          for b in step.content) else "end_turn")
            message = {"id": f"msg_{next(_ids):08d}", "type": "message", "role": "assistant",
                       "model": body["model"], "content": step.content, "stop_reason": stop,
                       "stop_sequence": None, "usage": usage}
            return 200, message, {"request-id": f"req_{next(_ids)}"}

    def _usage(self, body: dict, content: list[dict]) -> dict:
        """Prompt caching as the API does it: tools, then system, then messages; each
        cache_control block closes a cacheable prefix."""
        segments: list[object] = []
        breakpoints: list[int] = []
        blocks = [*body.get("tools", []), *_system_blocks(body),
                  *(b for m in body["messages"] for b in _content(m))]
        for block in blocks:
            segments.append({k: v for k, v in block.items() if k != "cache_control"})
            if isinstance(block, dict) and "cache_control" in block:
                breakpoints.append(len(segments))
        total = sum(tokens(s) for s in segments)
        read = 0
        keys = []
        for end in breakpoints:
            key = hashlib.sha256(json.dumps(segments[:end], sort_keys=True).encode()).hexdigest()
            keys.append(key)
            if key in self._cache:
                read = sum(tokens(s) for s in segments[:end])
        last = sum(tokens(s) for s in segments[:breakpoints[-1]]) if breakpoints else 0
        created = max(0, last - read)
        self._cache.update(keys)
        return {"input_tokens": total - read - created, "output_tokens": tokens(content),
                "cache_creation_input_tokens": created, "cache_read_input_tokens": read}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.path.split("?")[0] != "/v1/messages":
                    self._send(404, {"type": "error", "error": {
                        "type": "not_found_error", "message": f"no route {self.path}"}}, {})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"type": "error", "error": {
                        "type": "invalid_request_error", "message": "body is not JSON"}}, {})
                    return
                key = self.headers.get("x-api-key")
                bearer = self.headers.get("authorization", "")
                if key is None and bearer.startswith("Bearer "):
                    key = bearer[len("Bearer "):]  # newer SDKs send the key as a bearer token
                status, payload, headers = fake.answer(body, key)
                fake.headers.append(dict(self.headers))
                self._send(status, payload, headers)

            def _send(self, status: int, payload: dict, headers: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _error(err: Error) -> tuple[int, dict, dict]:
    return err.status, {"type": "error", "error": {"type": err.type, "message": err.message}}, \
        err.headers


def _system_blocks(body: dict) -> list[dict]:
    system = body.get("system")
    if system is None:
        return []
    return [{"type": "text", "text": system}] if isinstance(system, str) else list(system)


def _content(message: dict) -> list[dict]:
    content = message.get("content")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def check_request(body: dict) -> str | None:
    """What the real API would refuse in ``body`` (None: nothing)."""
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    messages = body["messages"]
    if not messages or messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    names = [t.get("name") for t in body.get("tools", [])]
    if len(names) != len(set(names)):
        return "tools: tool names must be unique"
    if any("input_schema" not in t for t in body.get("tools", [])):
        return "tools: input_schema: Field required"
    blocks = [*body.get("tools", []), *_system_blocks(body),
              *(b for m in messages for b in _content(m))]
    if sum(1 for b in blocks if "cache_control" in b) > MAX_BREAKPOINTS:
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided"
    expected: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if index and role == messages[index - 1].get("role"):
            return f"messages.{index}: roles must alternate between user and assistant"
        content = _content(message)
        if not content:
            return f"messages.{index}: content must be non-empty"
        for block in content:
            if block.get("type") == "text" and not block.get("text"):
                return f"messages.{index}: text content blocks must be non-empty"
        if role == "user":
            answered = {b["tool_use_id"] for b in content if b.get("type") == "tool_result"}
            if expected - answered:
                return (f"messages.{index}: tool_use ids were found without tool_result "
                        f"blocks immediately after: {sorted(expected - answered)}")
            if answered - expected:
                return f"messages.{index}: unexpected tool_use_id in tool_result blocks"
            expected = set()
        else:
            expected = {b["id"] for b in content if b.get("type") == "tool_use"}
    if messages[-1].get("role") != "user":
        return "the final message must use the user role"
    return None
