"""The HTTP application: Kubernetes API, telemetry, and the sandbox's control endpoints."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.parse
from datetime import datetime
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sentinel_sandbox import promql, telemetry
from sentinel_sandbox.kubeapi import KubeApi
from sentinel_sandbox.sandbox import Sandbox
from sentinel_sandbox.scenario import FaultSpec

PROM_CT = "text/plain; version=0.0.4; charset=utf-8"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _json_body(raw: bytes) -> Any:
    if not raw:
        return {}
    return json.loads(raw)


def prometheus_rules(sb: Sandbox) -> dict[str, Any]:
    """A Prometheus rule file holding the scenario's alert."""
    a = sb.scenario.alert
    if not a:
        return {"groups": []}
    rule: dict[str, Any] = {
        "alert": a["name"],
        "expr": a["expr"],
        "for": a.get("for", "0s"),
        "labels": dict(a["labels"]),
    }
    if a.get("annotations"):
        rule["annotations"] = dict(a["annotations"])
    return {"groups": [{"name": f"sandbox-{sb.scenario.name}", "rules": [rule]}]}


def build_app(sb: Sandbox) -> Starlette:
    """The Starlette app serving one Sandbox."""
    kube = KubeApi(sb)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "scenario": sb.scenario.name})

    async def version(request: Request) -> Response:
        return JSONResponse(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-sentinel-sandbox",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.22.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    def state(request: Request) -> Response:
        return JSONResponse(sb.state())

    def scenario(request: Request) -> Response:
        sc = sb.scenario
        return JSONResponse(
            {
                "name": sc.name,
                "description": sc.description,
                "namespace": sc.namespace,
                "environment": sc.environment,
                "expected": sc.expected,
                "alert": sc.alert,
                "cache": {"name": sc.cache.name, "key_prefix": sc.cache.key_prefix},
                "faults": [f.__dict__ for f in sc.faults],
            }
        )

    def rules(request: Request) -> Response:
        return PlainTextResponse(
            yaml.safe_dump(prometheus_rules(sb), sort_keys=False), media_type="application/yaml"
        )

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            with sb.lock:
                return JSONResponse({"faults": sb.faults})
        try:
            raw = _json_body(await request.body())
            raw = dict(raw)
            raw.pop("start", None)
            spec = FaultSpec.parse(raw)
        except (ValueError, TypeError) as exc:
            return _error(400, "bad_fault", str(exc))
        try:
            rec = await asyncio.to_thread(sb.inject, spec)
        except (ValueError, KeyError) as exc:
            return _error(400, "bad_fault", str(exc))
        return JSONResponse(rec, status_code=201)

    def clear_fault(request: Request) -> Response:
        try:
            rec = sb.clear_fault(int(request.path_params["fid"]))
        except KeyError:
            return _error(404, "not_found", "no such fault")
        except ValueError as exc:
            return _error(409, "not_clearable", str(exc))
        return JSONResponse(rec)

    async def tick(request: Request) -> Response:
        try:
            n = int(_json_body(await request.body()).get("n", 1))
        except (ValueError, TypeError, AttributeError):
            return _error(400, "bad_request", 'body: {"n": <ticks>}')
        if not 0 < n <= 10000:
            return _error(400, "bad_request", "n must be 1..10000")
        await asyncio.to_thread(sb.tick, n)
        return JSONResponse({"ticks": sb.sim.ticks, "sim_time": sb.sim.t})

    async def clock(request: Request) -> Response:
        try:
            adv = float(_json_body(await request.body()).get("advance_seconds", 0))
        except (ValueError, TypeError, AttributeError):
            return _error(400, "bad_request", 'body: {"advance_seconds": <s>}')
        with sb.lock:
            sb.clock.offset += adv
            return JSONResponse({"offset_seconds": sb.clock.offset, "now": sb.clock.now()})

    async def reset(request: Request) -> Response:
        await asyncio.to_thread(sb.reset)
        return JSONResponse({"ok": True})

    def deployments(request: Request) -> Response:
        since = request.query_params.get("since")
        try:
            since_f = float(since) if since else None
        except ValueError:
            return _error(400, "bad_request", "since: unix seconds")
        return JSONResponse(
            {"deployments": sb.history.as_json(request.query_params.get("service"), since_f)}
        )

    def commits(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return _error(400, "bad_request", "limit: an integer")
        return JSONResponse({"repo": str(sb.history.dir), "commits": sb.history.log(limit)})

    def metrics_all(request: Request) -> Response:
        with sb.lock:
            return PlainTextResponse(telemetry.exposition(sb.sim), media_type=PROM_CT)

    def metrics_one(request: Request) -> Response:
        svc = request.path_params["service"]
        if svc not in sb.scenario.topology.services:
            return PlainTextResponse(f"unknown service {svc}\n", status_code=404)
        with sb.lock:
            return PlainTextResponse(telemetry.exposition(sb.sim, [svc]), media_type=PROM_CT)

    def loki_query(request: Request) -> Response:
        q = request.query_params
        now_ns = int(sb.clock.now() * 1e9)
        try:
            query = q.get("query")
            if not query:
                raise telemetry.LogQLError("query is required")
            end = telemetry.parse_time(q.get("end") or q.get("time"), now_ns)
            start = telemetry.parse_time(q.get("start"), end - 3600 * 10**9)
            limit = int(q.get("limit", "100"))
            direction = q.get("direction", "backward")
            if direction not in ("forward", "backward"):
                raise telemetry.LogQLError("direction must be forward or backward")
            with sb.lock:
                out = telemetry.query_range(sb.sim, query, start, end + 1, max(1, limit), direction)
        except (telemetry.LogQLError, ValueError) as exc:
            return PlainTextResponse(str(exc), status_code=400)
        return JSONResponse(out)

    def loki_labels(request: Request) -> Response:
        return JSONResponse(
            {"status": "success", "data": ["container", "job", "namespace", "pod", "service"]}
        )

    def loki_label_values(request: Request) -> Response:
        name = request.path_params["name"]
        with sb.lock:
            vals: set[str] = set()
            for qd in sb.sim.logs.values():
                for ln in qd:
                    vals.add(telemetry.stream_labels(ln).get(name, ""))
        return JSONResponse({"status": "success", "data": sorted(v for v in vals if v)})

    def ready(request: Request) -> Response:
        return PlainTextResponse("ready\n")

    # -- a Prometheus-compatible query API over the sandbox's own scrapes ------------------

    def _prom_error(status: int, kind: str, msg: str) -> JSONResponse:
        return JSONResponse(
            {"status": "error", "errorType": kind, "error": msg}, status_code=status
        )

    async def _params(request: Request) -> dict[str, str]:
        params = dict(request.query_params)
        if request.method == "POST":
            raw = (await request.body()).decode("utf-8", "replace")
            params.update({k: v[-1] for k, v in urllib.parse.parse_qs(raw).items()})
        return params

    def _time(raw: str | None, default: float) -> float:
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()

    def _step(raw: str) -> float:
        try:
            return float(raw)
        except ValueError:
            return promql.parse_duration(raw)

    async def prom_query(request: Request) -> Response:
        q = await _params(request)
        try:
            with sb.lock:
                t = _time(q.get("time"), sb.metrics_now())
                data = promql.query(sb.alerting.store, q.get("query", ""), t)
        except (promql.PromQLError, ValueError, re.error) as exc:
            return _prom_error(400, "bad_data", str(exc))
        return JSONResponse({"status": "success", "data": data})

    async def prom_query_range(request: Request) -> Response:
        q = await _params(request)
        try:
            with sb.lock:
                now = sb.metrics_now()
                start = _time(q.get("start"), now - 300)
                end = _time(q.get("end"), now)
                step = _step(q.get("step", ""))
                data = promql.query_range(sb.alerting.store, q.get("query", ""), start, end, step)
        except (promql.PromQLError, ValueError, KeyError, re.error) as exc:
            return _prom_error(400, "bad_data", str(exc))
        return JSONResponse({"status": "success", "data": data})

    def prom_alerts(request: Request) -> Response:
        with sb.lock:
            return JSONResponse({"status": "success", "data": {"alerts": sb.alerting.rule_state()}})

    def prom_graph(request: Request) -> Response:
        expr = request.query_params.get("g0.expr", "")
        return PlainTextResponse(
            f"sentinel-sandbox: no Prometheus UI; query /prometheus/api/v1/query?query=... \n{expr}\n"
        )

    def audit(request: Request) -> Response:
        q = request.query_params
        with sb.lock:
            recs = [
                r
                for r in sb.api_audit
                if (not q.get("verb") or r["verb"] == q["verb"])
                and (not q.get("resource") or r["resource"] == q["resource"])
                and (not q.get("user") or r["user"] == q["user"])
            ]
        return JSONResponse({"records": recs})

    def alerting_state(request: Request) -> Response:
        with sb.lock:
            al = sb.alerting
            n = al.notifier
            return JSONResponse(
                {
                    "webhook_url": al.cfg.webhook_url,
                    "scrape_interval_s": al.cfg.scrape_interval_s,
                    "evaluation_interval_s": al.cfg.evaluation_interval_s,
                    "scrapes": len(al.store.times),
                    "evaluations": al.rule.evaluations if al.rule else 0,
                    "alerts": al.rule_state(),
                    "sent": list(n.sent) if n else [],
                    "errors": (list(n.errors) if n else []) + al.errors,
                }
            )

    kube_methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/healthz", healthz),
        Route("/ready", ready),
        Route("/version", version),
        Route("/sandbox/state", state),
        Route("/sandbox/scenario", scenario),
        Route("/sandbox/prometheus-rules", rules),
        Route("/sandbox/faults", faults, methods=["GET", "POST"]),
        Route("/sandbox/faults/{fid:int}", clear_fault, methods=["DELETE"]),
        Route("/sandbox/tick", tick, methods=["POST"]),
        Route("/sandbox/clock", clock, methods=["POST"]),
        Route("/sandbox/reset", reset, methods=["POST"]),
        Route("/sandbox/deployments", deployments),
        Route("/sandbox/commits", commits),
        Route("/metrics", metrics_all),
        Route("/metrics/{service}", metrics_one),
        Route("/prometheus/api/v1/query", prom_query, methods=["GET", "POST"]),
        Route("/prometheus/api/v1/query_range", prom_query_range, methods=["GET", "POST"]),
        Route("/prometheus/api/v1/alerts", prom_alerts),
        Route("/prometheus/graph", prom_graph),
        Route("/prometheus/-/ready", ready),
        Route("/prometheus/-/healthy", ready),
        Route("/sandbox/alerting", alerting_state),
        Route("/sandbox/audit", audit),
        Route("/loki/api/v1/query_range", loki_query),
        Route("/loki/api/v1/query", loki_query),
        Route("/loki/api/v1/labels", loki_labels),
        Route("/loki/api/v1/label/{name}/values", loki_label_values),
        Route("/api", kube.handle, methods=kube_methods),
        Route("/api/{path:path}", kube.handle, methods=kube_methods),
        Route("/apis", kube.handle, methods=kube_methods),
        Route("/apis/{path:path}", kube.handle, methods=kube_methods),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sb
    return app


class ServerThread:
    """Serve a Sandbox with uvicorn in a background thread (tests, the demo)."""

    def __init__(self, sb: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sb = sb
        config = uvicorn.Config(
            build_app(sb), host=host, port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self.thread = threading.Thread(target=self.server.run, name="sandbox-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.02)
        if self.port == 0:
            self.port = self.server.servers[0].sockets[0].getsockname()[1]
        if not self.sb.alerting_cfg.external_url:
            self.sb.alerting.set_external_url(f"{self.url}/prometheus")
        self.sb.start()
        return self

    def stop(self) -> None:
        self.sb.stop()
        self.server.should_exit = True
        self.thread.join(timeout=10)
