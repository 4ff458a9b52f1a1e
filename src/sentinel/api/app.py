"""FastAPI app factory: routes, error mapping, health, metrics, optional in-process worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sentinel.api import (
    dashboard,
    errors,
    routes_alerts,
    routes_approvals,
    routes_me,
    routes_read,
    routes_slack,
)
from sentinel.api.ingest_writer import IngestWriter
from sentinel.api.metrics import AUDIT_RECORDS, INCIDENTS, REGISTRY
from sentinel.api.state import AppState, StateDep
from sentinel.audit.models import AuditRecord
from sentinel.bootstrap import start_worker
from sentinel.core.config import Settings
from sentinel.core.db import make_engine
from sentinel.flows.runtime import Enqueuer, Worker
from sentinel.incident.models import Incident, IncidentStatus

log = logging.getLogger("sentinel.api")


def create_app(settings: Settings, *, with_worker: bool = False) -> FastAPI:
    """Build the API; with_worker runs the durable worker in the same process (serve)."""
    engine = make_engine(settings.database_url)
    state = AppState(settings=settings, engine=engine, enqueuer=Enqueuer(settings))
    state.writer = IngestWriter(
        engine, settings.ingest.group_window_seconds, routes_alerts.start_triage(state)
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker: Worker | None = None
        if with_worker:
            worker = await run_in_threadpool(start_worker, settings, engine)
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)
            state.writer.close()
            state.enqueuer.close()
            engine.dispose()

    app = FastAPI(title="Sentinel", version="0.1.0", lifespan=lifespan)
    app.state.sentinel = state
    errors.install(app)
    app.include_router(routes_alerts.router)
    app.include_router(routes_read.router)
    app.include_router(routes_approvals.router)
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
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    dashboard.mount_dashboard(app, dashboard.DIST)  # last: its catch-all GET route must match last
    return app
