"""Composition root: Settings → engine, migrations, and the adapters a worker uses."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from sentinel.context.prometheus import PrometheusContext
from sentinel.core.config import Settings
from sentinel.core.db import make_engine
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.ports import ContextPort
from sentinel.notify.webhook import WebhookNotifier

log = logging.getLogger("sentinel")

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade_database(settings: Settings, engine: Engine | None = None) -> None:
    """Apply Alembic migrations and the workflow engine's schema (safe to run concurrently)."""
    eng = engine or make_engine(settings.database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with eng.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(7262730000)"))
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(7262730000)"))
                conn.commit()
    if engine is None:
        eng.dispose()
    runtime.migrate(settings)


def build_deps(settings: Settings, engine: Engine) -> flow_deps.Deps:
    """Real adapters for whatever the configuration switches on; nothing fake."""
    sources: list[ContextPort] = []
    if settings.prometheus.url:
        sources.append(PrometheusContext(settings.prometheus))
    notifier = (
        WebhookNotifier(settings.notify.webhook_url, settings.notify.webhook_timeout_seconds)
        if settings.notify.webhook_url
        else None
    )
    return flow_deps.Deps(
        settings=settings, engine=engine, context_sources=sources, notifier=notifier
    )


def start_worker(settings: Settings, engine: Engine) -> runtime.Worker:
    """Install the adapters, import the workflows, launch the durable worker."""
    import sentinel.flows.incident  # noqa: F401  (registers the workflows before launch)

    flow_deps.configure(build_deps(settings, engine))
    worker = runtime.Worker(settings, engine)
    worker.start()
    return worker
