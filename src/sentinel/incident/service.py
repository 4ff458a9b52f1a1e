"""Incident lifecycle: grouping alerts into incidents, status changes, reads. Flushes, never commits."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from sentinel.audit.models import AuditRecord
from sentinel.core.clock import utcnow
from sentinel.core.errors import BadRequest, Conflict, NotFound
from sentinel.incident.ingest import Delivery, IngestOutcome, ingest_batch
from sentinel.incident.models import Alert, ContextSnapshot, Incident, IncidentStatus
from sentinel.incident.schemas import (
    AlertIn,
    AlertRead,
    IncidentPage,
    IncidentRead,
    IncidentSummary,
    SnapshotRead,
    TimelineEntry,
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
    """Store one delivery: dedupe by fingerprint, group by service within the window, audit it."""
    (out,) = ingest_batch(
        session=session,
        deliveries=[Delivery(alerts=alerts, raw=raw, source=source, principal=principal)],
        window_seconds=window_seconds,
        now=now,
    )
    return out


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


CLOSABLE_BY_HAND = frozenset({IncidentStatus.ESCALATED})


def close_by_hand(*, session: Session, incident_id: str, user: str, comment: str) -> Incident:
    """A human closes an escalated incident (EscalateToHuman -> IncidentClosed: manual fix).

    Only ESCALATED: every other open status still has a workflow (or an approval) moving it,
    and closing under it would race that workflow. Raises NotFound or Conflict. Flushes; the
    caller's transaction records the audit record with the change.
    """
    inc = session.get(Incident, incident_id, with_for_update=True)
    if inc is None:
        raise NotFound(f"incident {incident_id} not found")
    if inc.status not in CLOSABLE_BY_HAND:
        raise Conflict(
            f"incident {incident_id} is {inc.status}: only an ESCALATED incident is closed by"
            " hand (the others are still being handled)",
            {"status": inc.status},
        )
    set_status(session=session, incident_id=incident_id, status=IncidentStatus.CLOSED)
    return inc
