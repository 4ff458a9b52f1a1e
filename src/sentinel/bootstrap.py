"""Composition root: Settings → engine, migrations, and the adapters a worker uses."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from sentinel.context.prometheus import PrometheusContext, PrometheusVerifier
from sentinel.core.config import Settings
from sentinel.core.db import make_engine
from sentinel.executors.dry_run import DryRunExecutor
from sentinel.executors.redis import RedisExecutor
from sentinel.executors.router import ExecutorRouter
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.ports import ContextPort
from sentinel.notify.webhook import WebhookNotifier
from sentinel.plan.runbooks import RunbookPlanner, load_runbooks
from sentinel.policy.rules import load_policy_file

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
    verifier = None
    if settings.prometheus.url:
        prom = PrometheusContext(settings.prometheus)
        sources.append(prom)
        verifier = PrometheusVerifier(prom)
    notifier = (
        WebhookNotifier(settings.notify.webhook_url, settings.notify.webhook_timeout_seconds)
        if settings.notify.webhook_url
        else None
    )
    redis_ex = (
        RedisExecutor(settings.executors.redis_clusters, settings.executors.redis_timeout_seconds)
        if settings.executors.redis_clusters
        else None
    )
    executor = ExecutorRouter([redis_ex] if redis_ex else [], fallback=DryRunExecutor())
    return flow_deps.Deps(
        settings=settings,
        engine=engine,
        context_sources=sources,
        planner=RunbookPlanner(load_runbooks(settings.planner.runbook_paths)),
        policy=load_policy_file(settings.policy.file),
        executor=executor,
        verifier=verifier,
        notifier=notifier,
        redis_inventory=redis_ex.inventory if redis_ex else None,
    )


def start_worker(settings: Settings, engine: Engine) -> runtime.Worker:
    """Install the adapters, import the workflows, launch the durable worker."""
    import sentinel.flows.incident  # noqa: F401  (registers the workflows before launch)

    flow_deps.configure(build_deps(settings, engine))
    worker = runtime.Worker(settings, engine)
    worker.start()
    return worker
