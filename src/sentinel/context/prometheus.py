"""Prometheus context: the alert's own expression and the service's key series around the alert."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from sentinel.context.base import ContextRequest, QueryResult, SourceResult
from sentinel.core.config import PrometheusSettings


def expr_from_generator_url(url: str | None) -> str | None:
    """Prometheus puts the rule's expression in the generatorURL (``g0.expr``)."""
    if not url:
        return None
    qs = parse_qs(urlparse(url).query)
    values = qs.get("g0.expr")
    return values[0] if values else None


def _escape_label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class PrometheusContext:
    """Reads series through the Prometheus HTTP API (query_range), bounded in time and size."""

    name = "prometheus"

    def __init__(self, settings: PrometheusSettings, transport: httpx.BaseTransport | None = None):
        if not settings.url:
            raise ValueError("PrometheusContext needs prometheus.url")
        self.settings = settings
        self._client = httpx.Client(
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout_seconds,
            transport=transport,
        )

    def queries_for(self, request: ContextRequest) -> list[tuple[str, str]]:
        """The (name, PromQL) pairs to run: each alert's expression, then the service's series."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for a in request.alerts:
            expr = expr_from_generator_url(a.generator_url)
            if expr and expr not in seen:
                seen.add(expr)
                out.append((f"alert:{a.alertname}", expr))
        for name, q in self.settings.fleet_queries.items():
            if q not in seen:
                seen.add(q)
                out.append((name, q))
        svc = _escape_label_value(request.service)
        for name, template in self.settings.service_queries.items():
            q = template.replace("$service", svc)
            if q not in seen:
                seen.add(q)
                out.append((name, q))
        return out

    def window(self, request: ContextRequest) -> tuple[datetime, datetime]:
        """From lookback before the earliest alert start to now."""
        starts = [a.starts_at for a in request.alerts if a.starts_at is not None]
        anchor = min(starts) if starts else request.now
        start = min(anchor, request.now) - timedelta(seconds=self.settings.lookback_seconds)
        return start, request.now

    def gather(self, request: ContextRequest) -> SourceResult:
        """Run every query; a failing query is reported with its error, the others still count."""
        start, end = self.window(request)
        step = max(
            self.settings.step_seconds,
            math.ceil((end - start).total_seconds() / 11000),  # Prometheus' 11k-point cap
        )
        results: list[QueryResult] = []
        budget = self.settings.max_points
        for name, q in self.queries_for(request):
            res = self._query_range(name, q, start, end, step, budget)
            budget -= _points(res.data)
            results.append(res)
        ok = any(r.ok for r in results)
        return SourceResult(
            source=self.name,
            ok=ok,
            error=None if ok else (results[0].error if results else "no queries"),
            truncated=any(r.truncated for r in results),
            queries=results,
        )

    def _query_range(
        self, name: str, q: str, start: datetime, end: datetime, step: int, budget: int
    ) -> QueryResult:
        params = {
            "query": q,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": str(step),
        }
        try:
            resp = self._client.get("/api/v1/query_range", params=params)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return QueryResult(name=name, query=q, ok=False, error=f"{type(exc).__name__}: {exc}")
        if resp.status_code != 200 or body.get("status") != "success":
            err = f"HTTP {resp.status_code}: {body.get('errorType', '')} {body.get('error', '')}"
            return QueryResult(name=name, query=q, ok=False, error=err.strip())
        series: list[dict[str, Any]] = body.get("data", {}).get("result", [])
        truncated = False
        if len(series) > self.settings.max_series:
            series, truncated = series[: self.settings.max_series], True
        kept: list[dict[str, Any]] = []
        for s in series:
            values = s.get("values", [])
            if budget <= 0:
                truncated = True
                break
            if len(values) > budget:
                values, truncated = values[-budget:], True
            budget -= len(values)
            kept.append({"metric": s.get("metric", {}), "values": values})
        return QueryResult(
            name=name,
            query=q,
            ok=True,
            truncated=truncated,
            data={"step": step, "start": params["start"], "end": params["end"], "series": kept},
        )

    def instant(self, query: str) -> QueryResult:
        """Evaluate an expression now (verification: an alert expression with no result is clear)."""
        try:
            resp = self._client.get("/api/v1/query", params={"query": query})
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return QueryResult(
                name="instant", query=query, ok=False, error=f"{type(exc).__name__}: {exc}"
            )
        if resp.status_code != 200 or body.get("status") != "success":
            err = f"HTTP {resp.status_code}: {body.get('errorType', '')} {body.get('error', '')}"
            return QueryResult(name="instant", query=query, ok=False, error=err.strip())
        result = body.get("data", {}).get("result", [])
        series = result[: self.settings.max_series] if isinstance(result, list) else result
        return QueryResult(name="instant", query=query, ok=True, data={"result": series})

    def close(self) -> None:
        self._client.close()


def _points(data: Any) -> int:
    if not isinstance(data, dict):
        return 0
    return sum(len(s.get("values", [])) for s in data.get("series", []))


class PrometheusVerifier:
    """Verification: is the alert's expression still returning series right now?"""

    def __init__(self, ctx: PrometheusContext) -> None:
        self.ctx = ctx

    def check(self, expression: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """{"ok", "firing", "query", "error", "series"}: firing = a series of THIS alert remains.

        A rule's expression may return series for other services too; only series whose
        labels agree with the alert's labels (on the keys both carry) count.
        """
        res = self.ctx.instant(expression)
        series = (res.data or {}).get("result", []) if res.ok else []
        mine = [s for s in series if _same_alert(s.get("metric", {}), labels or {})]
        return {
            "ok": res.ok,
            "firing": bool(mine) if res.ok else None,
            "query": expression,
            "error": res.error,
            "series": mine[:5],
            "other_series": len(series) - len(mine),
        }


def _same_alert(metric: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels[k] == v for k, v in metric.items() if k in labels and k != "__name__")
