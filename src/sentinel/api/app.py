"""FastAPI app factory: routes, error mapping, health, metrics, optional in-process worker."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sentinel.api import (
    dashboard,
    errors,
    routes_alerts,
    routes_approvals,
    routes_me,
    routes_read,
    routes_respond,
    routes_slack,
)
from sentinel.api.ingest_writer import IngestWriter
from sentinel.api.metrics import AUDIT_RECORDS, INCIDENTS, exposition
from sentinel.api.state import AppState, StateDep
from sentinel.audit.checkpoint import CheckpointWriter
from sentinel.audit.models import AuditRecord
from sentinel.bootstrap import checkpoint_writer, start_worker
from sentinel.core.config import Settings, load_settings
from sentinel.core.db import make_engine
from sentinel.flows.runtime import Enqueuer, Worker
from sentinel.incident.models import Incident, IncidentStatus

log = logging.getLogger("sentinel.api")


class SentinelApp(FastAPI):
    """FastAPI plus a table of hot endpoints served without the middleware stack.

    The alert webhooks (``POST /api/v1/alerts/<source>``) are: plain ASGI endpoints that do
    their own error mapping; skipping routing, dependency injection and five middlewares is
    most of what separates them from a bare Starlette endpoint. Each is also on the router,
    so every other method on its path gets the usual 405.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot: dict[tuple[str, str], ASGIApp] = {}

    def add_hot_route(self, method: str, path: str, endpoint: ASGIApp) -> None:
        self.hot[(method, path)] = endpoint
        self.router.routes.insert(0, Route(path, endpoint, methods=[method]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hot = self.hot.get((scope["method"], scope["path"]))
            if hot is not None:
                await hot(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _freeze_startup_objects() -> None:
    """Keep what start-up built out of every later garbage collection.

    Importing Sentinel and its libraries leaves ~145,000-160,000 objects the collector
    tracks, and an oldest-generation collection walks them all. Under ingest load the
    requests in flight keep surviving the young collections, so CPython ran a full one every
    ~0.7 s at 64 in flight, each 88-100 ms long, each finding nothing to free: every request
    in flight stalled (p99 104 ms against p90 11-13 ms) and ~13% of the process's time went
    there. Frozen, start-up's objects are skipped (they live as long as the process anyway):
    a full collection then takes 2-4 ms. The lifespan's end unfreezes them.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, with_worker: bool = False) -> FastAPI:
    """Build the API; with_worker runs the durable worker in the same process (serve)."""
    engine = make_engine(settings.database_url)
    state = AppState(settings=settings, engine=engine, enqueuer=Enqueuer(settings))
    state.writer = IngestWriter(
        engine,
        settings.ingest.group_window_seconds,
        routes_alerts.start_triage(state),
        threads=settings.ingest.writer_threads,
        linger_ms=settings.ingest.batch_linger_ms,
        inline=settings.ingest.sqlite_inline,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker: Worker | None = None
        checkpoints: CheckpointWriter | None = None
        if with_worker:
            worker = await run_in_threadpool(start_worker, settings, engine)
            checkpoints = checkpoint_writer(settings, engine).start()
        _freeze_startup_objects()
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)
            if checkpoints is not None:
                await run_in_threadpool(checkpoints.stop)
            gc.unfreeze()
            state.writer.close()
            state.enqueuer.close()
            engine.dispose()

    app = SentinelApp(title="Sentinel", version="0.1.0", lifespan=lifespan)
    app.state.sentinel = state
    errors.install(app)
    for source in routes_alerts.SOURCES:
        app.add_hot_route("POST", source.path, routes_alerts.IngestEndpoint(state, source))
    app.include_router(routes_read.router)
    app.include_router(routes_approvals.router)
    app.include_router(routes_respond.router)
    app.include_router(routes_slack.router)
    app.include_router(routes_me.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(st: StateDep) -> Response:
        """The database answers and the schema is in place."""
        try:
            with Session(st.engine) as s:
                s.execute(text("SELECT 1 FROM audit_log LIMIT 1"))
        except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
            return errors.error_response(503, "not_ready", f"database not ready: {exc}")
        return Response('{"status":"ready"}', media_type="application/json")

    @app.get("/metrics")
    def metrics(st: StateDep) -> Response:
        """Prometheus exposition."""
        with Session(st.engine) as s:
            counts = dict(
                s.execute(select(Incident.status, func.count()).group_by(Incident.status)).all()
            )
            AUDIT_RECORDS.set(s.scalar(select(func.coalesce(func.max(AuditRecord.seq), 0))) or 0)
        for status in IncidentStatus:
            INCIDENTS.labels(status.value).set(counts.get(status.value, 0))
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    dashboard.mount_dashboard(app, dashboard.DIST)  # last: its catch-all GET route must match last
    return app


def api_only_app() -> FastAPI:
    """Factory for ``sentinel api --workers N``: each process's API, settings from the env."""
    return create_app(load_settings(), with_worker=False)
