"""ORM models: Incident (spec fields kept), Alert, ContextSnapshot."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sentinel.core.clock import utcnow
from sentinel.core.db import Base, JsonDoc, UTCDateTime
from sentinel.core.ids import new_id


class IncidentStatus(StrEnum):
    """The spec's OPEN | ANALYZING | MITIGATING | CLOSED plus what the graph needs."""

    OPEN = "OPEN"
    ANALYZING = "ANALYZING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    MITIGATING = "MITIGATING"
    VERIFYING = "VERIFYING"
    ESCALATED = "ESCALATED"
    CLOSED = "CLOSED"


# Every status but CLOSED: an escalated incident is still someone's open work, so a
# re-sent alert (Alertmanager's repeat_interval) or a sibling alert joins it.
OPEN_STATUSES = frozenset(s for s in IncidentStatus if s != IncidentStatus.CLOSED)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Incident(Base):
    """An incident: one or more alerts of one service, and what Sentinel did about it."""

    __tablename__ = "incidents"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(32), default=IncidentStatus.OPEN, index=True)
    service: Mapped[str] = mapped_column(String(255), index=True)
    title: Mapped[str] = mapped_column(String(512))
    severity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # {"type": alertname, "service": ..., "source": "alertmanager", "labels": {...}}
    source_alert: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    enriched_context: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    rca_hypothesis: Mapped[str | None] = mapped_column(Text, nullable=True)
    rca: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    escalation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_alert_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_incidents_service_status", "service", "status"),)


class Alert(Base):
    """One alert (by source fingerprint) and the incident it joined."""

    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.incident_id"), index=True
    )
    source: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    alertname: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    annotations: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    generator_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_count: Mapped[int] = mapped_column(Integer, default=1)
    first_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookEvent(Base):
    """A delivery id a source gave (PagerDuty's ``event.id``, Datadog's ``$ID``), seen once:
    a replayed or re-sent delivery is recorded in the audit log and changes nothing."""

    __tablename__ = "webhook_events"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContextSnapshot(Base):
    """What the context sources returned, stored verbatim at decision time."""

    __tablename__ = "context_snapshots"

    snapshot_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.incident_id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # per source: {"ok": bool, "error": str|None, "truncated": bool, "queries": [...]}
    sources: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    size_bytes: Mapped[int] = mapped_column(Integer)
