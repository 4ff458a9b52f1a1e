"""Composition root: Settings → engine, migrations, and the adapters a worker uses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from sentinel.audit.checkpoint import CheckpointWriter
from sentinel.context.prometheus import PrometheusContext, PrometheusVerifier
from sentinel.core.config import Settings
from sentinel.core.db import make_engine
from sentinel.executors.dry_run import DryRunExecutor
from sentinel.executors.redis import RedisExecutor
from sentinel.executors.router import ExecutorRouter
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.facts import live_inventory
from sentinel.flows.models import Intent
from sentinel.flows.ports import Chat, ContextPort, Pager
from sentinel.notify.webhook import WebhookNotifier
from sentinel.plan.runbooks import RunbookPlanner, load_runbooks
from sentinel.policy.rules import load_policy_file

log = logging.getLogger("sentinel")

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade_database(settings: Settings, engine: Engine | None = None) -> None:
    """Apply Alembic migrations and the workflow engine's schema (safe to run concurrently)."""
    from alembic import command
    from alembic.config import Config

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
    """Real adapters for whatever the configuration switches on; nothing fake.

    Adapters' libraries (kubernetes, boto3, asyncssh, pydantic-ai, pandas) are imported only
    when configured: a CLI call or a worker that does not use them starts in a fraction of the time.
    """
    from sentinel.analysis.causal import CausalAnalyzer

    sources: list[ContextPort] = []
    verifier = None
    prom = None
    if settings.prometheus.url:
        prom = PrometheusContext(settings.prometheus)
        sources.append(prom)
        verifier = PrometheusVerifier(prom)
    notifier = (
        WebhookNotifier(settings.notify.webhook_url, settings.notify.webhook_timeout_seconds)
        if settings.notify.webhook_url
        else None
    )
    chat, pager = build_channels(settings)
    ex = settings.executors
    executors: list[Any] = []
    readers: list[Callable[[], dict[str, Any]]] = []
    if ex.redis_clusters:
        redis_ex = RedisExecutor(ex.redis_clusters, ex.redis_timeout_seconds)
        executors.append(redis_ex)
        readers.append(lambda: redis_facts(redis_ex.inventory()))
    if ex.ssh:
        from sentinel.executors.ssh import SshExecutor, SshSettings

        ssh_ex = SshExecutor(SshSettings.model_validate(ex.ssh))
        executors.append(ssh_ex)
        readers.append(ssh_ex.inventory)
    if ex.aws:
        from sentinel.executors.aws import AwsExecutor, AwsSettings

        aws_ex = AwsExecutor(
            AwsSettings.model_validate(ex.aws),
            intent_started_at=lambda key: intent_started_at(engine, key),
        )
        executors.append(aws_ex)
        readers.append(
            lambda: {
                k: v
                for k, v in aws_ex.inventory().items()
                if k in ("ec2_instances", "ecs_services")
            }
        )
    if ex.kubernetes:
        from sentinel.executors.kubernetes import KubernetesExecutor, KubernetesSettings, warm_up

        ks = KubernetesSettings.model_validate(ex.kubernetes)
        kx = KubernetesExecutor(ks)
        # Off the first incident's critical path: the client's lazy imports take seconds.
        threading.Thread(target=warm_up, name="k8s-warm-up", daemon=True).start()
        executors.append(kx)
        readers.append(
            lambda: {k: v for k, v in kx.inventory().items() if k in ("pods", "deployments")}
        )
        if not settings.context.kubernetes:
            sources.append(_kube_context(kx.standing_api, ks))
    ctx = settings.context
    if ctx.kubernetes:
        # Context only (no executor), or a read-only identity of its own beside the
        # executor's: its standing identity reads the context.
        from sentinel.executors.kubernetes import KubernetesSettings, standing_client, warm_up

        cks = KubernetesSettings.model_validate(ctx.kubernetes)
        if not cks.is_configured():
            raise ValueError("context.kubernetes: configure api_server, kubeconfig or in_cluster")
        if not ex.kubernetes:
            threading.Thread(target=warm_up, name="k8s-warm-up", daemon=True).start()
        sources.append(_kube_context(standing_client(cks), cks))
    if ctx.loki:
        from sentinel.context.loki import LokiContext, LokiSettings

        sources.append(LokiContext(LokiSettings.model_validate(ctx.loki)))
    if ctx.changes:
        from sentinel.context.changes import ChangesSettings, DeploymentsContext, GitContext

        ch = ChangesSettings.model_validate(ctx.changes)
        if ch.deployments_url:
            sources.append(DeploymentsContext(ch))
        if ch.git_repo_path or ch.github_repo:
            sources.append(GitContext(ch))
    executor = ExecutorRouter(executors, fallback=DryRunExecutor())
    runbooks = RunbookPlanner(load_runbooks(settings.planner.runbook_paths))
    llm: Any = None
    planner: Any = runbooks
    if settings.llm.enabled:
        from sentinel.analysis.llm import FallbackPlanner, build_llm

        llm = build_llm(
            settings.llm,
            metrics=prom,
            inventory=lambda: live_inventory(settings.inventory, readers),
        )
        planner = FallbackPlanner(llm, runbooks) if llm is not None else runbooks
    return flow_deps.Deps(
        settings=settings,
        engine=engine,
        context_sources=sources,
        analyzer=CausalAnalyzer(),
        planner=planner,
        llm=llm,
        policy=load_policy_file(settings.policy.file),
        executor=executor,
        verifier=verifier,
        notifier=notifier,
        chat=chat,
        pager=pager,
        inventory_readers=readers,
    )


def _kube_context(api_client: Any, ks: Any) -> ContextPort:
    """The Kubernetes context source on a standing (read-only) client, as ``ks`` says."""
    from sentinel.context.kubernetes import KubernetesContext

    return KubernetesContext(
        api_client,
        default_namespace=ks.default_namespace,
        service_label=ks.service_label,
        timeout_seconds=ks.read_timeout_seconds,
    )


def build_channels(settings: Settings) -> tuple[Chat | None, Pager | None]:
    """Slack (bot token + channel) and PagerDuty (routing key) when configured, else None."""
    n = settings.notify
    chat: Chat | None = None
    if n.slack_enabled:
        from sentinel.notify.slack import SlackNotifier

        assert n.slack_bot_token is not None and n.slack_channel
        chat = SlackNotifier(
            n.slack_bot_token.get_secret_value(),
            n.slack_channel,
            base_url=n.slack_api_url,
            timeout=n.slack_timeout_seconds,
        )
    pager: Pager | None = None
    if n.pagerduty_routing_key is not None:
        from sentinel.notify.pagerduty import PagerDutyNotifier

        pager = PagerDutyNotifier(
            n.pagerduty_routing_key.get_secret_value(),
            n.pagerduty_events_url,
            n.pagerduty_timeout_seconds,
        )
    return chat, pager


def redis_facts(live: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Redis executor inventory → policy facts: reachable clusters and their dbs only."""
    return {
        "redis_clusters": [
            {"name": name, "dbs": info.get("dbs", [])}
            for name, info in sorted(live.items())
            if info.get("reachable")
        ]
    }


def intent_started_at(engine: Engine, key: str) -> datetime | None:
    """When the side effect with this idempotency key was first attempted (for reconcile)."""
    with Session(engine) as s:
        it = s.get(Intent, key)
        return it.started_at if it else None


def checkpoint_writer(settings: Settings, engine: Engine) -> CheckpointWriter:
    """The signed-checkpoint writer as the settings say (the caller starts and stops it):
    in ``sentinel worker`` and in the worker of ``sentinel serve``."""
    a = settings.audit
    return CheckpointWriter(engine, a.signing_key_path, a.checkpoint_dir, a.checkpoint_every)


def start_worker(settings: Settings, engine: Engine) -> runtime.Worker:
    """Install the adapters, import the workflows, launch the durable worker."""
    import sentinel.flows.incident  # noqa: F401  (registers the workflows before launch)
    from sentinel.flows.incident import expire_approvals

    flow_deps.configure(build_deps(settings, engine))
    enqueuer = runtime.Enqueuer(settings)
    worker = runtime.Worker(
        settings,
        engine,
        periodic=[lambda: expire_approvals(engine, enqueuer)],
        closers=[enqueuer.close],
    )
    worker.start()
    return worker
