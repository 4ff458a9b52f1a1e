"""Loki context: the service's log lines over the alert window, bounded and with secrets masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from sentinel.context.base import ContextRequest, QueryResult, SourceResult
from sentinel.core.redact import redact


class LokiSettings(BaseModel):
    """Where Loki's HTTP API lives, which log queries describe a service, and the bounds."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None  # e.g. http://loki:3100
    tenant_id: str | None = None  # X-Scope-OrgID for a multi-tenant Loki
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    lookback_seconds: int = Field(default=900, ge=1, le=7 * 86400)
    # $service is replaced by the alert's service, escaped as a LogQL string.
    queries: dict[str, str] = Field(
        default_factory=lambda: {
            "logs": '{service="$service"}',
            "errors": '{service="$service"} |~ "(?i)(level=error|panic|exception|fatal)"',
        }
    )
    max_lines: int = Field(default=200, ge=1, le=5000)  # per query (Loki's `limit`)
    max_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)  # per query, all lines
    max_line_chars: int = Field(default=2000, ge=80, le=65536)


def logql_string(value: str) -> str:
    """``value`` as the inside of a double-quoted LogQL string (Go string escaping)."""
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


class LokiContext:
    """Reads log lines through Loki's ``/loki/api/v1/query_range``, newest first."""

    name = "loki"

    def __init__(self, settings: LokiSettings, transport: httpx.BaseTransport | None = None):
        if not settings.url:
            raise ValueError("LokiContext needs loki.url")
        self.settings = settings
        headers = {"X-Scope-OrgID": settings.tenant_id} if settings.tenant_id else {}
        self._client = httpx.Client(
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout_seconds,
            headers=headers,
            transport=transport,
        )

    def queries_for(self, request: ContextRequest) -> list[tuple[str, str]]:
        """The (name, LogQL) pairs to run for the request's service."""
        svc = logql_string(request.service)
        return [(n, q.replace("$service", svc)) for n, q in self.settings.queries.items()]

    def window(self, request: ContextRequest) -> tuple[datetime, datetime]:
        """From lookback before the earliest alert start to now."""
        starts = [a.starts_at for a in request.alerts if a.starts_at is not None]
        anchor = min(starts) if starts else request.now
        start = min(anchor, request.now) - timedelta(seconds=self.settings.lookback_seconds)
        return start, request.now

    def gather(self, request: ContextRequest) -> SourceResult:
        """Run every query; a failed one carries its full error, the others still count."""
        start, end = self.window(request)
        results = [self._query(n, q, start, end) for n, q in self.queries_for(request)]
        ok = any(r.ok for r in results)
        return SourceResult(
            source=self.name,
            ok=ok,
            error=None if ok else (results[0].error if results else "no queries"),
            truncated=any(r.truncated for r in results),
            queries=results,
        )

    def _query(self, name: str, q: str, start: datetime, end: datetime) -> QueryResult:
        s = self.settings
        params = {
            "query": q,
            "start": str(_ns(start)),
            "end": str(_ns(end)),
            "limit": str(s.max_lines),
            "direction": "backward",
        }
        try:
            resp = self._client.get("/loki/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            return QueryResult(name=name, query=q, ok=False, error=f"{type(exc).__name__}: {exc}")
        if resp.status_code != 200:
            # Loki answers errors as plain text (LogQL parse errors) or JSON.
            body = resp.text.strip()[:4000]
            return QueryResult(
                name=name, query=q, ok=False, error=f"HTTP {resp.status_code}: {redact(body)}"
            )
        try:
            payload = resp.json()
            streams = payload["data"]["result"]
            if payload.get("status") != "success" or not isinstance(streams, list):
                raise ValueError(f"unexpected answer: status={payload.get('status')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            return QueryResult(name=name, query=q, ok=False, error=f"{type(exc).__name__}: {exc}")
        lines: list[dict[str, Any]] = []
        for stream in streams:
            labels = stream.get("stream") or {}
            for ts, line in stream.get("values") or []:
                lines.append({"ts_ns": int(ts), "labels": labels, "line": str(line)})
        lines.sort(key=lambda x: x["ts_ns"], reverse=True)
        truncated = len(lines) >= s.max_lines  # Loki stopped at `limit`: there may be more
        kept: list[dict[str, Any]] = []
        used = 0
        for item in lines[: s.max_lines]:
            text = item["line"]
            if len(text) > s.max_line_chars:
                text, truncated = text[: s.max_line_chars] + "…", True
            entry = {
                "at": datetime.fromtimestamp(item["ts_ns"] / 1e9, UTC).isoformat(),
                "labels": redact(item["labels"]),
                "line": redact(text),
            }
            size = len(json.dumps(entry))
            if used + size > s.max_bytes:
                truncated = True
                break
            used += size
            kept.append(entry)
        return QueryResult(
            name=name,
            query=q,
            ok=True,
            truncated=truncated,
            data={
                "start": start.isoformat(),
                "end": end.isoformat(),
                "streams": len(streams),
                "lines_returned": len(lines),
                "lines": kept,
            },
        )

    def close(self) -> None:
        self._client.close()


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000_000)
