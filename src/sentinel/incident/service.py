"""Incident lifecycle: grouping alerts into incidents, status changes, reads. Flushes, never commits."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor, AuditRecord
from sentinel.core.clock import utcnow
from sentinel.core.errors import BadRequest, NotFound
from sentinel.incident.models import (
    OPEN_STATUSES,
    Alert,
    AlertStatus,
    ContextSnapshot,
    Incident,
    IncidentStatus,
)
from sentinel.incident.schemas import (
    AlertIn,
    AlertRead,
    IncidentPage,
    IncidentRead,
    IncidentSummary,
    SnapshotRead,
    TimelineEntry,
)

_OPEN = [s.value for s in OPEN_STATUSES]


@dataclass
class IngestOutcome:
    """Which incidents the delivery touched and which it opened."""

    incident_ids: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)


def _lock_services(session: Session, services: list[str]) -> None:
    # Serialize grouping per service across API replicas (SQLite is already serialized).
    if session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import text

    for svc in sorted(set(services)):
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:s, 7262730002))"), {"s": svc}
        )


def ingest_alerts(
    *,
    session: Session,
    alerts: list[AlertIn],
    raw: dict[str, Any],
    source: str,
    window_seconds: int,
    principal: str,
    now: datetime | None = None,
) -> IngestOutcome:
    """Store a delivery: dedupe by fingerprint, group by service within the window, audit it."""
    now = now or utcnow()
    _lock_services(session, [a.service for a in alerts])
    out = IngestOutcome()
    audit.append(
        session,
        actor=Actor.EXTERNAL_SOURCE,
        action_type=ActionType.ALERT_INGESTED,
        details={"source": source, "principal": principal, "payload": raw},
    )
    for a in alerts:
        incident_id = _ingest_one(session, a, window_seconds, now, out)
        if incident_id and incident_id not in out.incident_ids:
            out.incident_ids.append(incident_id)
    return out


def _ingest_one(
    session: Session, a: AlertIn, window_seconds: int, now: datetime, out: IngestOutcome
) -> str | None:
    existing = session.execute(
        select(Alert, Incident)
        .join(Incident, Incident.incident_id == Alert.incident_id)
        .where(Alert.source == a.source, Alert.fingerprint == a.fingerprint)
        .order_by(Incident.status.in_(_OPEN).desc(), Alert.last_received_at.desc())
        .limit(1)
    ).first()
    if a.status == "resolved":
        if existing is None:
            return None  # never saw it fire; the delivery itself is in the audit log
        alert, incident = existing
        alert.status = AlertStatus.RESOLVED
        alert.resolved_at = now
        alert.ends_at = a.ends_at or now
        alert.last_received_at = now
        return incident.incident_id
    if existing is not None and existing[1].status in _OPEN:
        alert, incident = existing
        alert.received_count += 1
        alert.last_received_at = now
        alert.status = AlertStatus.FIRING
        alert.resolved_at = None
        incident.last_alert_at = now
        return incident.incident_id
    grouped = session.scalar(
        select(Incident)
        .where(
            Incident.service == a.service,
            Incident.status.in_(_OPEN),
            Incident.last_alert_at >= now - timedelta(seconds=window_seconds),
        )
        .order_by(Incident.created_at.desc())
        .limit(1)
    )
    if grouped is None:
        incident = Incident(
            status=IncidentStatus.OPEN,
            service=a.service,
            title=f"{a.alertname} on {a.service}",
            severity=a.severity,
            source_alert={
                "type": a.alertname,
                "service": a.service,
                "source": a.source,
                "labels": a.labels,
                "annotations": a.annotations,
                "generator_url": a.generator_url,
                "starts_at": a.starts_at.isoformat() if a.starts_at else None,
            },
            created_at=now,
            updated_at=now,
            last_alert_at=now,
        )
        session.add(incident)
        session.flush()
        out.opened.append(incident.incident_id)
        audit.append(
            session,
            actor=Actor.SENTINEL_AGENT,
            action_type=ActionType.INCIDENT_OPENED,
            incident_id=incident.incident_id,
            details={"service": a.service, "alertname": a.alertname, "fingerprint": a.fingerprint},
        )
    else:
        incident = grouped
        incident.last_alert_at = now
    session.add(
        Alert(
            incident_id=incident.incident_id,
            source=a.source,
            fingerprint=a.fingerprint,
            alertname=a.alertname,
            service=a.service,
            status=AlertStatus.FIRING,
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            generator_url=a.generator_url,
            first_received_at=now,
            last_received_at=now,
        )
    )
    session.flush()
    return incident.incident_id


def get(*, session: Session, incident_id: str) -> Incident:
    """Return an incident or raise NotFound."""
    inc = session.get(Incident, incident_id)
    if inc is None:
        raise NotFound(f"incident {incident_id} not found")
    return inc


def set_status(
    *, session: Session, incident_id: str, status: IncidentStatus, reason: str | None = None
) -> Incident:
    """Move an incident to a status (closing stamps closed_at; escalating keeps the reason)."""
    inc = get(session=session, incident_id=incident_id)
    inc.status = status
    inc.updated_at = utcnow()
    if status == IncidentStatus.CLOSED:
        inc.closed_at = inc.updated_at
    if status == IncidentStatus.ESCALATED and reason:
        inc.escalation_reason = reason
    session.flush()
    return inc


def alerts_of(*, session: Session, incident_id: str) -> list[Alert]:
    """The incident's alerts, oldest first."""
    return list(
        session.scalars(
            select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.first_received_at)
        )
    )


def add_snapshot(
    *, session: Session, incident_id: str, sources: dict[str, Any], data: dict[str, Any]
) -> ContextSnapshot:
    """Store a context snapshot verbatim and attach a summary to the incident."""
    size = len(json.dumps(data, default=str))
    snap = ContextSnapshot(incident_id=incident_id, sources=sources, data=data, size_bytes=size)
    session.add(snap)
    inc = get(session=session, incident_id=incident_id)
    inc.enriched_context = {"snapshot_id": snap.snapshot_id, "sources": sources}
    session.flush()
    return snap


def _encode_cursor(created_at: datetime, incident_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), incident_id]).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, iid = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor.encode())))
        return datetime.fromisoformat(created), str(iid)
    except Exception as exc:  # noqa: BLE001 - any garbage cursor is the client's error
        raise BadRequest("invalid cursor") from exc


def list_page(
    *,
    session: Session,
    status: str | None,
    service: str | None,
    limit: int,
    cursor: str | None,
) -> IncidentPage:
    """Newest first, keyset-paginated."""
    if status is not None and status not in IncidentStatus.__members__:
        raise BadRequest(f"unknown status {status!r}", {"allowed": list(IncidentStatus)})
    q = select(Incident)
    if status:
        q = q.where(Incident.status == status)
    if service:
        q = q.where(Incident.service == service)
    if cursor:
        c_at, c_id = _decode_cursor(cursor)
        q = q.where(
            or_(
                Incident.created_at < c_at,
                and_(Incident.created_at == c_at, Incident.incident_id < c_id),
            )
        )
    rows = list(
        session.scalars(
            q.order_by(Incident.created_at.desc(), Incident.incident_id.desc()).limit(limit + 1)
        )
    )
    nxt = (
        _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].incident_id)
        if len(rows) > limit
        else None
    )
    return IncidentPage(
        items=[IncidentSummary.model_validate(r) for r in rows[:limit]], next_cursor=nxt
    )


def read(*, session: Session, incident_id: str) -> IncidentRead:
    """Everything known about an incident."""
    inc = get(session=session, incident_id=incident_id)
    snaps = session.scalars(
        select(ContextSnapshot)
        .where(ContextSnapshot.incident_id == incident_id)
        .order_by(ContextSnapshot.created_at)
    )
    base = IncidentSummary.model_validate(inc).model_dump()
    return IncidentRead(
        **base,
        source_alert=inc.source_alert,
        enriched_context=inc.enriched_context,
        rca_hypothesis=inc.rca_hypothesis,
        rca=inc.rca,
        escalation_reason=inc.escalation_reason,
        alerts=[
            AlertRead.model_validate(a) for a in alerts_of(session=session, incident_id=incident_id)
        ],
        context_snapshots=[SnapshotRead.model_validate(s) for s in snaps],
    )


def timeline(*, session: Session, incident_id: str) -> list[TimelineEntry]:
    """The incident's path through the graph, from its audit records."""
    get(session=session, incident_id=incident_id)
    out: list[TimelineEntry] = []
    for rec in session.scalars(
        select(AuditRecord).where(AuditRecord.incident_id == incident_id).order_by(AuditRecord.seq)
    ):
        doc = json.loads(rec.body)
        details = doc.get("details") or {}
        summary = details.get("step") or details.get("summary") or rec.action_type
        out.append(
            TimelineEntry(
                seq=rec.seq,
                timestamp=doc["timestamp"],
                actor=rec.actor,
                action_type=rec.action_type,
                summary=str(summary),
                details=details,
            )
        )
    return out
