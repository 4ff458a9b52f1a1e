"""Source payload schemas (Alertmanager webhook v4) and their normalization to AlertIn."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from sentinel.incident.schemas import AlertIn

SERVICE_LABELS = ("service", "app", "job")


def service_of(labels: dict[str, str]) -> str:
    """The service an alert belongs to: label service, else app, else job, else 'unknown'."""
    for key in SERVICE_LABELS:
        if labels.get(key):
            return labels[key]
    return "unknown"


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint from labels, for sources that send none."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


class AMAlert(BaseModel):
    """One alert of an Alertmanager v4 webhook (unknown fields tolerated)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[StrictStr, StrictStr]
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: StrictStr = ""
    fingerprint: StrictStr = ""

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if not v.get("alertname"):
            raise ValueError("labels.alertname is required")
        return v


class AlertmanagerWebhook(BaseModel):
    """Alertmanager webhook payload, version 4, as Alertmanager sends it."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: StrictStr
    truncatedAlerts: StrictInt = 0
    status: Literal["firing", "resolved"]
    receiver: StrictStr
    groupLabels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    commonLabels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    commonAnnotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    externalURL: StrictStr = ""
    alerts: list[AMAlert] = Field(min_length=1, max_length=10000)


def real_time(value: datetime | None) -> datetime | None:
    """None for no time or Alertmanager's 0001-01-01T00:00:00Z ("no end yet"); else UTC-aware."""
    if value is None or value.year < 1971:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def normalize_alertmanager(payload: AlertmanagerWebhook) -> list[AlertIn]:
    """Turn a validated Alertmanager delivery into normalized alerts."""
    out: list[AlertIn] = []
    for a in payload.alerts:
        labels = dict(a.labels)
        out.append(
            # Every value is already validated (AMAlert, strict types): no second validation.
            AlertIn.model_construct(
                source="alertmanager",
                fingerprint=a.fingerprint or label_fingerprint(labels),
                status=a.status,
                alertname=labels["alertname"],
                service=service_of(labels),
                severity=labels.get("severity"),
                labels=labels,
                annotations=dict(a.annotations),
                starts_at=real_time(a.startsAt),
                ends_at=real_time(a.endsAt),
                generator_url=a.generatorURL or None,
            )
        )
    return out
