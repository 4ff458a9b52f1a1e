"""The model's read-only tools. Each returns an envelope: the exact query, ok, data or the
full error text, and whether the data was truncated to fit the token budget.

Nothing here changes anything: metrics are instant PromQL reads, logs and deployments are
callables the composition root hands in, inventory and ranking lookups read memory. In
replay the recorded envelope is returned instead of calling anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic_ai import RunContext, Tool

from sentinel.analysis.llm.evidence import Evidence, compact_lines
from sentinel.context.base import QueryResult
from sentinel.core.redact import redact
from sentinel.policy.actions import ProposedAction, parse_proposal

__all__ = [
    "DeploymentsReader",
    "LogsReader",
    "MetricsReader",
    "RunState",
    "Toolbox",
    "truncate",
]


class MetricsReader(Protocol):
    """Evaluates a PromQL expression now (PrometheusContext satisfies it)."""

    def instant(self, query: str) -> QueryResult: ...


LogsReader = Callable[[str, str], Any]
"""(service, timeframe like '15m') -> recent log lines (a list of str, text, or JSON)."""

DeploymentsReader = Callable[[str], Any]
"""(environment) -> recent deployments (JSON: service, revision, at, commit message, ...)."""

InventoryKind = Literal[
    "pods",
    "deployments",
    "redis_clusters",
    "hosts",
    "host_groups",
    "ec2_instances",
    "ecs_services",
]


@dataclass
class RunState:
    """Per-call state the tools and validators share (pydantic-ai `deps`)."""

    evidence: Evidence
    token_limit: int
    max_chars: int
    refusals: list[dict[str, Any]] = field(default_factory=list)
    recorded: Mapping[str, Any] | None = None  # tool_call_id -> envelope, in replay


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def truncate(data: Any, max_chars: int) -> tuple[Any, bool]:
    """Cut data to at most `max_chars` of JSON, keeping its shape where it can: a list keeps
    its first items, a mapping shrinks its largest member, text keeps its start."""
    text = json.dumps(data, default=str)
    if len(text) <= max_chars:
        return data, False
    if isinstance(data, list):
        kept: list[Any] = []
        used = 80  # the wrapper's keys
        for item in data:
            used += _size(item) + 2
            if used > max_chars:
                break
            kept.append(item)
        return {"items": kept, "items_total": len(data), "omitted": len(data) - len(kept)}, True
    if isinstance(data, dict) and data:
        sizes = {k: _size(v) for k, v in data.items()}
        big = max(sizes, key=lambda k: sizes[k])
        room = max_chars - (len(text) - sizes[big])
        if room > 100:
            out = {**data, big: truncate(data[big], room)[0]}
            if _size(out) <= max_chars:
                return out, True
    if isinstance(data, str):
        n = max_chars
        while n > 0 and _size(data[:n] + " ...[cut]") > max_chars:
            n = int(n * 0.8)
        return data[:n] + " ...[cut]", True
    n = max_chars
    while n > 0 and _size({"partial_json": text[:n], "chars_total": len(text)}) > max_chars:
        n = int(n * 0.8)
    return {"partial_json": text[:n], "chars_total": len(text)}, True


def _invalid(action_id: str, params: dict[str, Any]) -> str | None:
    parsed = parse_proposal(ProposedAction(action_id=action_id, params=params))
    return getattr(parsed, "message", None)


class Toolbox:
    """Builds the read-only tools the model may call; only configured ones are offered."""

    def __init__(
        self,
        *,
        metrics: MetricsReader | None = None,
        logs: LogsReader | None = None,
        deployments: DeploymentsReader | None = None,
    ) -> None:
        self.metrics = metrics
        self.logs = logs
        self.deployments = deployments

    def tools(self, *, replay: bool = False) -> list[Tool[RunState]]:
        """The tools to offer (in replay, every tool a recording may contain)."""
        out: list[Tool[RunState]] = []
        if self.metrics is not None or replay:
            out.append(Tool(self._query_metrics, takes_ctx=True, name="query_metrics"))
        if self.logs is not None or replay:
            out.append(Tool(self._fetch_recent_logs, takes_ctx=True, name="fetch_recent_logs"))
        if self.deployments is not None or replay:
            out.append(
                Tool(self._list_recent_deployments, takes_ctx=True, name="list_recent_deployments")
            )
        out.append(Tool(self._lookup_inventory, takes_ctx=True, name="lookup_inventory"))
        out.append(Tool(self._causal_ranking, takes_ctx=True, name="causal_ranking"))
        out.append(Tool(self._read_evidence, takes_ctx=True, name="read_evidence"))
        return out

    # ------------------------------------------------------------ envelope

    def _run(
        self,
        ctx: RunContext[RunState],
        tool: str,
        query: Any,
        read: Callable[[], Any],
        invalid: str | None = None,
    ) -> dict[str, Any]:
        state = ctx.deps
        call_id = ctx.tool_call_id or f"anon{len(state.evidence.items)}"
        if state.recorded is not None:
            rec = state.recorded.get(call_id)
            env = (
                dict(rec)
                if isinstance(rec, Mapping)
                else {"tool": tool, "query": query, "ok": False, "error": "not in the recording"}
            )
        else:
            env = {"tool": tool, "query": query, "ok": False, "truncated": False}
            if invalid is not None:
                env["error"] = invalid
            else:
                try:
                    data = read()
                except Exception as exc:  # noqa: BLE001 - the full error goes back to the model
                    env["error"] = f"{type(exc).__name__}: {exc}"
                else:
                    if isinstance(data, QueryResult):
                        env["ok"] = data.ok
                        env["query"] = data.query
                        if data.ok:
                            env["data"] = data.data
                        else:
                            env["error"] = data.error
                        data_truncated = data.truncated
                    else:
                        env["ok"] = True
                        env["data"] = data
                        data_truncated = False
                    if "data" in env:
                        used = ctx.usage.input_tokens + ctx.usage.output_tokens
                        # Later requests re-send this output: allow about a quarter of the tokens left
                        # (one token is ~4 characters).
                        room = min(state.max_chars, max(200, state.token_limit - used))
                        env["data"], cut = truncate(redact(env["data"]), room)
                        env["truncated"] = cut or data_truncated
            env = redact(env)  # error texts and queries too, not only the data
            env["evidence_id"] = f"tool:{call_id}"
        state.evidence.add_tool_result(call_id, env)
        return env

    # ------------------------------------------------------------ tools

    def _query_metrics(self, ctx: RunContext[RunState], promql: str) -> dict[str, Any]:
        """Instant PromQL query."""
        metrics = self.metrics
        return self._run(
            ctx,
            "query_metrics",
            promql,
            lambda: metrics.instant(promql) if metrics else None,
            _invalid("query_metrics", {"promql": promql})
            or (None if metrics else "no metrics source configured"),
        )

    def _fetch_recent_logs(
        self, ctx: RunContext[RunState], service: str, timeframe: str = "15m"
    ) -> dict[str, Any]:
        """A service's recent log lines; timeframe like 15m, 2h, 1d."""
        logs = self.logs
        return self._run(
            ctx,
            "fetch_recent_logs",
            {"service": service, "timeframe": timeframe},
            lambda: logs(service, timeframe) if logs else None,
            _invalid("fetch_recent_logs", {"service": service, "timeframe": timeframe})
            or (None if logs else "no log source configured"),
        )

    def _list_recent_deployments(
        self, ctx: RunContext[RunState], environment: str
    ) -> dict[str, Any]:
        """Recent deployments of an environment (service, revision, time, commit message)."""
        deployments = self.deployments
        return self._run(
            ctx,
            "list_recent_deployments",
            {"environment": environment},
            lambda: deployments(environment) if deployments else None,
            _invalid("list_recent_deployments", {"environment": environment})
            or (None if deployments else "no deployment source configured"),
        )

    def _lookup_inventory(
        self,
        ctx: RunContext[RunState],
        kind: InventoryKind,
        name_contains: str = "",
        service: str = "",
    ) -> dict[str, Any]:
        """What exists now (deployments list their revisions)."""
        inv = ctx.deps.evidence.inventory

        def read() -> Any:
            items = [i.model_dump(mode="json") for i in getattr(inv, kind)]
            return [
                i
                for i in items
                if name_contains.lower() in str(i.get("name") or i.get("instance_id") or "").lower()
                and (not service or i.get("service") == service)
            ]

        query = {"kind": kind, "name_contains": name_contains, "service": service}
        return self._run(ctx, "lookup_inventory", query, read)

    def _causal_ranking(self, ctx: RunContext[RunState], top: int = 10) -> dict[str, Any]:
        """The causal engine's ranked root-cause candidates."""
        ranking = ctx.deps.evidence.ranking
        return self._run(
            ctx,
            "causal_ranking",
            {"top": top},
            lambda: ranking[: max(1, min(top, 50))],
            None if ranking else "no causal ranking in the snapshot",
        )

    def _read_evidence(self, ctx: RunContext[RunState], evidence_id: str) -> dict[str, Any]:
        """One evidence item in full."""
        full = ctx.deps.evidence.full

        def read() -> Any:
            value = full[evidence_id]
            data = value.get("data") if isinstance(value, Mapping) else None
            if isinstance(data, Mapping) and isinstance(data.get("lines"), list):
                # Log lines: every distinct shape once, with counts (not the first N lines).
                lines = compact_lines(data["lines"], max_distinct=40, max_chars=500)
                return {**value, "data": {**data, "lines": lines}}
            return value

        return self._run(
            ctx,
            "read_evidence",
            {"evidence_id": evidence_id},
            read,
            None if evidence_id in full else f"no evidence item {evidence_id!r}",
        )
