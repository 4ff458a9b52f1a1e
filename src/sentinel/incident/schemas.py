"""Pydantic I/O for incidents: what the read API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class AlertIn(BaseModel):
    """A source-independent alert, as every ingest parser produces it."""

    source: str
    fingerprint: str
    status: Literal["firing", "resolved"]
    alertname: str
    service: str
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str | None


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    alert_id: str
    source: str
    fingerprint: str
    alertname: str
    service: str
    status: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    starts_at: datetime | None
    ends_at: datetime | None
    generator_url: str | None
    received_count: int
    first_received_at: datetime
    last_received_at: datetime
    resolved_at: datetime | None


class IncidentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: str
    status: str
    service: str
    title: str
    severity: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class SnapshotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    snapshot_id: str
    created_at: datetime
    sources: dict[str, Any]
    data: dict[str, Any]
    size_bytes: int


class IncidentRead(IncidentSummary):
    source_alert: dict[str, Any]
    enriched_context: dict[str, Any] | None
    rca_hypothesis: str | None
    rca: dict[str, Any] | None
    escalation_reason: str | None
    alerts: list[AlertRead]
    context_snapshots: list[SnapshotRead]


class IncidentPage(BaseModel):
    items: list[IncidentSummary]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    seq: int
    timestamp: str
    actor: str
    action_type: str
    summary: str
    details: dict[str, Any]


class IngestResult(BaseModel):
    accepted: int
    incident_ids: list[str]
