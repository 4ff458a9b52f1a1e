"""Settings: the only place that reads the environment (SENTINEL_*, nested with __) or a YAML file."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sentinel.core.llm_settings import LlmSettings


class IngestSettings(BaseModel):
    """Alert ingestion limits and grouping."""

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    group_window_seconds: int = Field(default=600, ge=0)
    # Group-commit writer threads per API process (PostgreSQL only; SQLite has one writer).
    writer_threads: int = Field(default=1, ge=1, le=16)
    # How long the writer waits for one more delivery before it commits a batch (ms). None:
    # 0.3 on PostgreSQL, whose commit (round trips + WAL flush) is long enough that the
    # deliveries answered by one commit are back before the next. On SQLite with
    # ``sqlite_inline``: the longest a delivery waits on the event loop for others (1.0; the
    # loop commits sooner, after two turns with nothing new); without it, 0.
    batch_linger_ms: float | None = Field(default=None, ge=0, le=50)
    # SQLite: commit batches on the event loop's own thread (no thread hand-off, no GIL
    # contention); a batch that finds the database locked goes to the writer thread instead,
    # so the loop never waits for a lock. False: always the writer thread.
    sqlite_inline: bool = True
    # Signed sources (on top of the bearer token). Grafana: its contact point's HMAC secret;
    # the header names as configured there (no timestamp header: Grafana signs the body
    # alone). PagerDuty v3: the subscription's secret(s), several while rotating.
    grafana_hmac_secret: SecretStr | None = None
    grafana_signature_header: str = "X-Grafana-Alerting-Signature"
    grafana_timestamp_header: str | None = None
    signature_max_skew_seconds: float = Field(default=300.0, gt=0)
    pagerduty_webhook_secrets: list[SecretStr] = Field(default_factory=list)


class PrometheusSettings(BaseModel):
    """Where the Prometheus HTTP API lives and which series describe a service."""

    url: str | None = None
    timeout_seconds: float = 5.0
    lookback_seconds: int = 900
    step_seconds: int = 15
    max_series: int = 50
    max_points: int = 20000
    # $service is replaced by the alert's service label value (escaped).
    service_queries: dict[str, str] = Field(
        default_factory=lambda: {
            "up": 'up{job="$service"}',
            "request_rate": 'sum(rate(http_requests_total{service="$service"}[1m]))',
            "error_rate": 'sum(rate(http_requests_total{service="$service",code=~"5.."}[1m]))',
            "cpu": 'sum(rate(process_cpu_seconds_total{job="$service"}[1m]))',
            "memory": 'sum(process_resident_memory_bytes{job="$service"})',
        }
    )
    # Queries over every service at once (one series per `service` label): what the causal
    # analysis needs to tell the cause from the services it propagated to.
    fleet_queries: dict[str, str] = Field(default_factory=dict)


class WorkerSettings(BaseModel):
    """Durable workflow worker: identity, version pin, concurrency, liveness."""

    executor_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-0")
    # Bumped whenever a workflow's step sequence changes or a workflow is added (wf-2: the
    # Slack and PagerDuty steps; wf-3: the approval_expired workflow). A worker only resumes workflows of its own version: drain the old version's
    # in-flight incidents with an old worker before retiring it.
    app_version: str = "sentinel-wf-3"
    concurrency: int = Field(default=4, ge=1)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    dead_after_seconds: float = Field(default=15.0, gt=0)
    # Test/ops hook: SIGKILL this process right after the named step commits (never set in prod).
    crash_after_step: str | None = None


class AuditSettings(BaseModel):
    """Where signed checkpoints and the signing key live (outside the database)."""

    checkpoint_dir: Path = Path("./var/audit-checkpoints")
    signing_key_path: Path = Path("./var/audit-signing.key")
    checkpoint_every: int = Field(default=100, ge=1)


REPO_ROOT = Path(__file__).resolve().parents[3]


class PolicySettings(BaseModel):
    """The policy matrix file and approval lifetime."""

    file: Path = REPO_ROOT / "policies" / "default.yaml"
    approval_ttl_seconds: int = Field(default=1800, ge=60)


class PlannerSettings(BaseModel):
    """Runbooks: the planner when no LLM is configured and the fallback when it fails."""

    runbook_paths: list[Path] = Field(default_factory=lambda: [REPO_ROOT / "runbooks"])


class ExecutorSettings(BaseModel):
    """Real executors switched on by configuration; everything else runs dry."""

    redis_clusters: dict[str, str] = Field(default_factory=dict)  # name -> redis:// URL
    redis_timeout_seconds: float = Field(default=5.0, gt=0)
    # Validated by bootstrap into executors.ssh.SshSettings / executors.aws.AwsSettings
    # (core sits below executors, so it keeps them as plain mappings).
    ssh: dict[str, Any] | None = None
    aws: dict[str, Any] | None = None
    kubernetes: dict[str, Any] | None = None  # executors.kubernetes.KubernetesSettings


class ContextSettings(BaseModel):
    """Optional read-only context sources beyond Prometheus (validated by bootstrap)."""

    # executors.kubernetes.KubernetesSettings shape; only the API source, the standing
    # identity and the read settings count. Unset: the executor's identity reads the context.
    kubernetes: dict[str, Any] | None = None
    loki: dict[str, Any] | None = None  # context.loki.LokiSettings
    changes: dict[str, Any] | None = None  # context.changes.ChangesSettings


class VerifySettings(BaseModel):
    """How long and how often to re-check the alert's condition after an action."""

    interval_seconds: float = Field(default=5.0, gt=0)
    stable_seconds: float = Field(default=30.0, ge=0)
    deadline_seconds: float = Field(default=300.0, gt=0)


class NotifySettings(BaseModel):
    """Telling humans: a generic escalation webhook, Slack (threads + approvals), PagerDuty."""

    webhook_url: str | None = None
    webhook_timeout_seconds: float = 5.0
    # Slack: posting needs the bot token and the channel; approving from Slack needs the
    # signing secret too. slack_users maps a Slack user id (U...) to a Sentinel user name,
    # whose role (users table) decides what that person may approve.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_channel: str | None = None
    slack_users: dict[str, str] = Field(default_factory=dict)
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout_seconds: float = Field(default=5.0, gt=0)
    # PagerDuty Events API v2: escalations trigger, closing resolves (dedup key per incident).
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_timeout_seconds: float = Field(default=5.0, gt=0)

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and bool(self.slack_channel)


class Settings(BaseSettings):
    """All of Sentinel's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="SENTINEL_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: str = "sqlite:///./var/sentinel.db"
    environment: str = "prod"
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    executors: ExecutorSettings = Field(default_factory=ExecutorSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    # Known call graph [[caller, callee], ...] for the causal analysis (learned when empty).
    callgraph: list[list[str]] = Field(default_factory=list)
    # Static inventory (policy.facts.Inventory shape), merged with live reads at decision time.
    inventory: dict[str, Any] = Field(default_factory=dict)
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not (v.startswith("sqlite") or v.startswith("postgresql")):
            raise ValueError("database_url must be sqlite:///... or postgresql+psycopg://...")
        return v

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Values from the YAML file named by SENTINEL_CONFIG (lowest precedence)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("SENTINEL_CONFIG")
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text())
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the configuration file must hold a mapping")
        return data


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Build the settings once (env > YAML file > defaults)."""
    if config_file:
        os.environ["SENTINEL_CONFIG"] = config_file
    return Settings(**overrides)
