"""A scripted OpenAI-compatible chat-completions server for tests and benchmarks (never a vendor).

Each POST /v1/chat/completions consumes the next step of a script. A step is a `Reply`
(text, tool calls, a delay, an HTTP status, or a verbatim body such as malformed JSON)
or a function of the request body returning one, so an adversarial model can react to
what it was sent. Every request body received is kept in `requests` for assertions.
Both plain and streamed (`"stream": true`, SSE) responses are served.

    with ScriptedServer([call("query_metrics", promql="up"), final("submit_rca", {...})]) as srv:
        settings = LlmSettings(provider="openai", base_url=srv.base_url, model="scripted")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "Reply",
    "ScriptedServer",
    "Step",
    "ToolCall",
    "call",
    "calls",
    "estimate_tokens",
    "final",
    "say",
]


@dataclass(frozen=True)
class ToolCall:
    """One tool call in a reply; a `str` arguments value is sent verbatim (may be malformed)."""

    name: str
    arguments: str | Mapping[str, Any]
    id: str | None = None

    def arguments_text(self) -> str:
        """The arguments as the JSON string the protocol carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request."""

    content: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    delay: float = 0.0
    status: int = 200
    raw: str | None = None  # sent verbatim as the body (malformed JSON, an error page)
    prompt_tokens: int | None = None  # default: estimated from the request
    completion_tokens: int | None = None  # default: estimated from the reply


Step = Reply | Callable[[dict[str, Any]], Reply]


def say(text: str, **kw: Any) -> Reply:
    """A reply with text content only."""
    return Reply(content=text, **kw)


def call(name: str, /, **arguments: Any) -> Reply:
    """A reply with one tool call."""
    return Reply(tool_calls=(ToolCall(name, arguments),))


def calls(*tool_calls: ToolCall, **kw: Any) -> Reply:
    """A reply with several tool calls."""
    return Reply(tool_calls=tuple(tool_calls), **kw)


def final(tool_name: str, payload: Mapping[str, Any] | str, **kw: Any) -> Reply:
    """A reply calling the output tool `tool_name` with `payload` (a str is sent verbatim)."""
    return Reply(tool_calls=(ToolCall(tool_name, payload),), **kw)


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters a token), the same for every run."""
    return max(1, math.ceil(len(text) / 4))


EXHAUSTED = Reply(status=500, raw='{"error": {"message": "scripted server: script exhausted"}}')


@dataclass
class ScriptedServer:
    """An OpenAI-compatible server answering from a script, on a free local port in a thread."""

    script: Iterable[Step] = ()
    on_exhausted: Reply = EXHAUSTED
    model: str = "scripted"
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._steps: list[Step] = list(self.script)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------ script control

    def extend(self, steps: Iterable[Step]) -> None:
        """Append steps to the script."""
        with self._lock:
            self._steps.extend(steps)

    def reset(self, steps: Iterable[Step] = ()) -> None:
        """Replace the script and forget the requests and replies seen so far."""
        with self._lock:
            self._steps = list(steps)
            self.requests.clear()
            self.replies.clear()

    @property
    def remaining(self) -> int:
        """Steps not consumed yet."""
        with self._lock:
            return len(self._steps)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (ends in /v1)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            step = self._steps.pop(0) if self._steps else self.on_exhausted
        reply = step(body) if callable(step) else step
        with self._lock:
            self.replies.append(reply)
        return reply

    # ------------------------------------------------------------ HTTP

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": {"message": "request is not JSON"}}, status_code=400)
        reply = self._next(body)
        if reply.delay:
            await self._sleep(reply.delay)
        if reply.raw is not None:
            return Response(reply.raw, status_code=reply.status, media_type="application/json")
        if reply.status != 200:
            err = {"error": {"message": f"scripted HTTP {reply.status}", "type": "server_error"}}
            return JSONResponse(err, status_code=reply.status)
        n = next(self._ids)
        usage = self._usage(body, reply)
        if body.get("stream"):
            return StreamingResponse(
                self._chunks(n, body, reply, usage), media_type="text/event-stream"
            )
        return JSONResponse(self._completion(n, body, reply, usage))

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(
                json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))
            )
        completion = reply.completion_tokens
        if completion is None:
            completion = estimate_tokens(
                (reply.content or "") + "".join(t.arguments_text() for t in reply.tool_calls)
            )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _message(self, n: int, reply: Reply) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": t.id or f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": t.name, "arguments": t.arguments_text()},
                }
                for i, t in enumerate(reply.tool_calls)
            ]
        return msg

    def _completion(
        self, n: int, body: dict[str, Any], reply: Reply, usage: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion",
            "created": 1_700_000_000 + n,
            "model": str(body.get("model") or self.model),
            "choices": [
                {
                    "index": 0,
                    "message": self._message(n, reply),
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": usage,
        }

    async def _chunks(
        self, n: int, body: dict[str, Any], reply: Reply, usage: dict[str, int]
    ) -> Any:
        base = {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000 + n,
            "model": str(body.get("model") or self.model),
        }
        delta: dict[str, Any] = {"role": "assistant"}
        if reply.content is not None:
            delta["content"] = reply.content
        if reply.tool_calls:
            delta["tool_calls"] = [
                {"index": i, **tc} for i, tc in enumerate(self._message(n, reply)["tool_calls"])
            ]
        finish = "tool_calls" if reply.tool_calls else "stop"
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {**base, "choices": [], "usage": usage},
        ]
        for c in chunks:
            yield f"data: {json.dumps(c)}\n\n"
        yield "data: [DONE]\n\n"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ScriptedServer:
        """Serve on a free 127.0.0.1 port in a daemon thread; returns when it accepts requests."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="scripted-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (pending delayed replies end at once)."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
