"""The audit trace of one model call, and a model that replays it without calling anyone.

Trace (JSON):

    {"kind": "analyze" | "plan" | "narrate", "provider", "model", "base_url",
     "system_prompt", "user_prompt",                     exact text sent (redacted input)
     "messages": [                                       every turn, in order
        {"kind": "request",  "parts": [{"part_kind": "user-prompt" | "tool-return" |
                                        "retry-prompt", "content", "tool_name", "tool_call_id",
                                        "outcome"}]},
        {"kind": "response", "parts": [{"part_kind": "text" | "tool-call", "content" | "args"
                                        (the raw argument text), "tool_name", "tool_call_id"}],
         "usage": {"input_tokens", "output_tokens"}, "model_name", "provider_response_id",
         "finish_reason"}],
     "tool_calls": [{"id", "tool", "args", "result"}],   read-only tool calls and envelopes
     "outcome": "ok" | "no_proposal" | "invalid_output" | "timeout" | "budget_exceeded"
                | "model_error" | "error" | "skipped",
     "error", "usage", "token_limit", "timeout_seconds", "replayed"}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic_ai import ModelMessagesTypeAdapter
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

__all__ = [
    "ReplayExhausted",
    "compact_messages",
    "count",
    "recorded_model",
    "recorded_tool_results",
    "retry_errors",
    "tool_calls_of",
    "usage_of",
]

_PART_KEYS = ("part_kind", "content", "args", "tool_name", "tool_call_id", "outcome")


class ReplayExhausted(Exception):
    """The recording has no more model responses (the original call ended there)."""


def compact_messages(messages: Sequence[ModelMessage]) -> list[dict[str, Any]]:
    """The messages as JSON, without timestamps, run ids or provider noise."""
    dumped = ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")
    out: list[dict[str, Any]] = []
    for m in dumped:
        parts = [{k: p[k] for k in _PART_KEYS if p.get(k) is not None} for p in m.get("parts", [])]
        entry: dict[str, Any] = {"kind": m.get("kind"), "parts": parts}
        if m.get("kind") == "response":
            usage = m.get("usage") or {}
            entry["usage"] = {
                "input_tokens": int(usage.get("input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
            }
            for k in ("model_name", "provider_response_id", "finish_reason"):
                entry[k] = m.get(k)
        elif m.get("instructions"):
            entry["instructions"] = m["instructions"]
        out.append(entry)
    return out


def usage_of(messages: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Tokens and requests summed over the responses of a compact message list."""
    responses = [m for m in messages if m.get("kind") == "response"]
    inp = sum(int(m.get("usage", {}).get("input_tokens", 0)) for m in responses)
    outp = sum(int(m.get("usage", {}).get("output_tokens", 0)) for m in responses)
    return {
        "input_tokens": inp,
        "output_tokens": outp,
        "total_tokens": inp + outp,
        "requests": len(responses),
    }


def tool_calls_of(
    messages: Sequence[Mapping[str, Any]], output_tools: set[str]
) -> list[dict[str, Any]]:
    """Read-only tool calls with their arguments and envelopes, in call order."""
    results: dict[str, Any] = {}
    for m in messages:
        if m.get("kind") != "request":
            continue
        for p in m["parts"]:
            if p.get("part_kind") == "tool-return" and p.get("tool_name") not in output_tools:
                results[str(p.get("tool_call_id"))] = p.get("content")
    out = []
    for m in messages:
        if m.get("kind") != "response":
            continue
        for p in m["parts"]:
            if p.get("part_kind") == "tool-call" and p.get("tool_name") not in output_tools:
                cid = str(p.get("tool_call_id"))
                out.append(
                    {
                        "id": cid,
                        "tool": p.get("tool_name"),
                        "args": p.get("args"),
                        "result": results.get(cid),
                    }
                )
    return out


def retry_errors(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every validation error sent back to the model: {tool_name, type, loc, msg} or {msg}."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("kind") != "request":
            continue
        for p in m["parts"]:
            retried = p.get("part_kind") == "retry-prompt" or p.get("outcome") == "retried"
            if not retried:
                continue
            content = p.get("content")
            if isinstance(content, list):
                for err in content:
                    if isinstance(err, Mapping):
                        out.append(
                            {
                                "tool_name": p.get("tool_name"),
                                "type": err.get("type"),
                                "loc": list(err.get("loc") or []),
                                "msg": err.get("msg"),
                            }
                        )
            else:
                out.append({"tool_name": p.get("tool_name"), "msg": content})
    return out


def count(value: Any, default: int = 0) -> int:
    """A recorded token count, or `default` where the recording has none (or a masked one)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def recorded_tool_results(trace: Mapping[str, Any]) -> dict[str, Any]:
    """tool_call_id -> the envelope the tool returned when the trace was recorded."""
    return {str(c["id"]): c.get("result") for c in trace.get("tool_calls", [])}


def _response(entry: Mapping[str, Any]) -> ModelResponse:
    parts: list[ModelResponsePart] = []
    for p in entry.get("parts", []):
        kind = p.get("part_kind")
        if kind == "text":
            parts.append(TextPart(content=str(p.get("content", ""))))
        elif kind == "tool-call":
            parts.append(
                ToolCallPart(
                    tool_name=str(p["tool_name"]),
                    args=p.get("args"),
                    tool_call_id=str(p["tool_call_id"]),
                )
            )
    usage = entry.get("usage") or {}
    return ModelResponse(
        parts=parts,
        usage=RequestUsage(
            input_tokens=count(usage.get("input_tokens")),
            output_tokens=count(usage.get("output_tokens")),
        ),
        model_name=entry.get("model_name"),
    )


def recorded_model(trace: Mapping[str, Any]) -> FunctionModel:
    """A model that answers with the recorded responses, in order, and nothing else."""
    responses: Iterator[Mapping[str, Any]] = iter(
        [m for m in trace.get("messages", []) if m.get("kind") == "response"]
    )

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        entry = next(responses, None)
        if entry is None:
            raise ReplayExhausted(
                f"recording ends here (outcome {trace.get('outcome')}: {trace.get('error')})"
            )
        return _response(entry)

    return FunctionModel(answer, model_name=f"replay:{trace.get('model')}")
