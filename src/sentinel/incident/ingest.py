"""Batch ingestion: many deliveries in one transaction with a handful of set-based statements.

Semantics (the same as one delivery at a time, in arrival order):
- a firing alert whose fingerprint is on a not-CLOSED incident joins it (received_count + 1);
- otherwise it joins the newest not-CLOSED incident of its service whose last alert is within
  the window, or opens a new incident;
- a resolved alert marks its latest alert row resolved; one never seen opens nothing;
- every delivery is one ALERT_INGESTED audit record, every new incident one INCIDENT_OPENED;
- a delivery whose source id (``Delivery.event_id``) was seen before is recorded and changes
  nothing else (``duplicate_event`` in its record): a replayed signed PagerDuty delivery, which
  carries no timestamp, cannot reopen anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.core.clock import utcnow
from sentinel.core.ids import new_id
from sentinel.core.rawsql import RawSql
from sentinel.incident.models import OPEN_STATUSES, AlertStatus, IncidentStatus
from sentinel.incident.schemas import AlertIn

_OPEN = [s.value for s in OPEN_STATUSES]


@dataclass
class Delivery:
    """One webhook delivery: its normalized alerts and the raw payload (for the audit log)."""

    alerts: list[AlertIn]
    raw: dict[str, Any]
    source: str
    principal: str
    raw_json_native: bool = False  # ``raw`` is plain json.loads output (see audit Entry)
    event_id: str | None = None  # the source's id of this delivery, when it gives one


@dataclass
class IngestOutcome:
    """Which incidents the delivery touched and which it opened."""

    incident_ids: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    duplicate: bool = False  # its event id was seen before: recorded, nothing else changed


@dataclass
class _AlertState:
    alert_id: str
    incident_id: str
    incident_open: bool
    received_count: int
    new: bool = False
    dirty: bool = False
    values: dict[str, Any] = field(default_factory=dict)


def _lock_services(sql: RawSql, services: set[str]) -> None:
    # Serialize grouping per service across API replicas (SQLite is already serialized).
    if not sql.pg:
        return
    # Sorted so two batches never wait on each other in a cycle; inside the caller's
    # pipeline, so it costs no round trip of its own.
    sql.run(
        "SELECT pg_advisory_xact_lock(hashtextextended(t.s, 7262730002)) FROM"
        " (SELECT s FROM unnest(CAST(:svcs AS text[])) AS s ORDER BY s) AS t",
        {"svcs": sorted(services)},
    )


def ingest_batch(
    *,
    session: Session,
    deliveries: list[Delivery],
    window_seconds: int,
    now: datetime | None = None,
) -> list[IngestOutcome]:
    """Store deliveries in order; returns one outcome per delivery. Flushes, never commits."""
    now = now or utcnow()
    sql = RawSql(session)
    all_alerts = [a for d in deliveries for a in d.alerts]
    services = {a.service for a in all_alerts}
    keys = {(a.source, a.fingerprint) for a in all_alerts}
    # PostgreSQL: the service locks and both reads in one round trip (in this order).
    with sql.pipeline():
        _lock_services(sql, services)
        known_rows = None
        if keys:
            params: dict[str, Any] = {}
            where = sql.in_("a.fingerprint", "fp", sorted({fp for _, fp in keys}), params)
            known_rows = sql.deferred(
                "SELECT a.alert_id, a.source, a.fingerprint, a.received_count,"
                " a.last_received_at, a.incident_id, i.status"
                " FROM alerts a JOIN incidents i ON i.incident_id = a.incident_id"
                f" WHERE {where}",
                params,
            )
        seen_rows = None
        event_keys = {(d.source, d.event_id) for d in deliveries if d.event_id}
        if event_keys:
            params = {}
            ev_in = sql.in_("event_id", "ev", sorted({e for _, e in event_keys}), params)
            seen_rows = sql.deferred(
                f"SELECT source, event_id FROM webhook_events WHERE {ev_in}", params
            )
        service_rows = None
        if services:
            params = {"cutoff": sql.ts(now - timedelta(seconds=window_seconds))}
            svc_in = sql.in_("service", "svc", sorted(services), params)
            st_in = sql.in_("status", "st", _OPEN, params)
            service_rows = sql.deferred(
                f"SELECT incident_id, service FROM incidents WHERE {svc_in} AND {st_in}"
                " AND last_alert_at >= :cutoff ORDER BY created_at",
                params,
            )

    # Latest alert row per (source, fingerprint), preferring one on a not-CLOSED incident.
    known: dict[tuple[str, str], _AlertState] = {}
    if known_rows is not None:
        # Same-backend timestamps order correctly as they come (datetimes, or fixed-width text).
        for alert_id, source, fp, count, _last, incident_id, status in sorted(
            known_rows(), key=lambda r: (r[6] in _OPEN, r[4])
        ):
            if (source, fp) in keys:
                known[(source, fp)] = _AlertState(alert_id, incident_id, status in _OPEN, count)

    # Newest open incident per service inside the window.
    by_service: dict[str, tuple[str, datetime]] = {}
    if service_rows is not None:
        for incident_id, service in service_rows():
            by_service[service] = (incident_id, now)

    seen: set[tuple[str, str]] = set(seen_rows()) if seen_rows is not None else set()
    new_events: list[dict[str, Any]] = []
    new_incidents: list[dict[str, Any]] = []
    touched_incidents: set[str] = set()
    entries: list[audit.Entry] = []
    outcomes: list[IngestOutcome] = []
    for d in deliveries:
        out = IngestOutcome()
        details: dict[str, Any] = {"source": d.source, "principal": d.principal, "payload": d.raw}
        duplicate = False
        if d.event_id:
            key = (d.source, d.event_id)
            duplicate = key in seen
            if duplicate:
                details["duplicate_event"] = d.event_id
                out.duplicate = True
            else:
                seen.add(key)
                new_events.append({"source": d.source, "event_id": d.event_id})
        entries.append(
            audit.Entry(
                Actor.EXTERNAL_SOURCE,
                ActionType.ALERT_INGESTED,
                details,
                json_native=d.raw_json_native,
            )
        )
        outcomes.append(out)
        if duplicate:
            continue
        for a in d.alerts:
            iid = _one(a, now, known, by_service, new_incidents, touched_incidents, entries, out)
            if iid and iid not in out.incident_ids:
                out.incident_ids.append(iid)

    # PostgreSQL: every write and the audit append in one round trip.
    with sql.pipeline():
        _write(sql, now, new_incidents, known, touched_incidents)
        if new_events:
            ts = sql.ts(now)
            sql.many(
                "INSERT INTO webhook_events (source, event_id, received_at)"
                " VALUES (:source, :event_id, :received_at)",
                [{**e, "received_at": ts} for e in new_events],
            )
        audit.append_many(session, entries, at=now)
    return outcomes


_INSERT_INCIDENT = (
    "INSERT INTO incidents (incident_id, status, service, title, severity, source_alert,"
    " created_at, updated_at, last_alert_at) VALUES (:incident_id, :status, :service, :title,"
    " :severity, :source_alert, :created_at, :updated_at, :last_alert_at)"
)
_ALERT_COLUMNS = (
    "alert_id, incident_id, source, fingerprint, alertname, service, status, labels,"
    " annotations, starts_at, ends_at, generator_url, received_count, first_received_at,"
    " last_received_at, resolved_at"
)
_INSERT_ALERT = (
    f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ("
    + ", ".join(":" + c.strip() for c in _ALERT_COLUMNS.split(","))
    + ")"
)
_TIMES = ("starts_at", "ends_at", "first_received_at", "last_received_at", "resolved_at")


def _write(
    sql: RawSql,
    now: datetime,
    new_incidents: list[dict[str, Any]],
    known: dict[tuple[str, str], _AlertState],
    touched_incidents: set[str],
) -> None:
    ts = sql.ts(now)
    sql.many(
        _INSERT_INCIDENT,
        [
            {
                **i,
                "source_alert": sql.doc(i["source_alert"]),
                "created_at": ts,
                "updated_at": ts,
                "last_alert_at": ts,
            }
            for i in new_incidents
        ],
    )
    sql.many(_INSERT_ALERT, [_alert_row(sql, s.values) for s in known.values() if s.new])
    changed = [{"pk": s.alert_id, **s.values} for s in known.values() if s.dirty and not s.new]
    for group in _by_columns(changed):
        # UPDATE by primary key: one executemany per column set.
        cols = [c for c in group[0] if c != "pk"]
        sets = ", ".join(f"{c} = :{c}" for c in cols)
        sql.many(
            f"UPDATE alerts SET {sets} WHERE alert_id = :pk",
            [{k: (sql.ts(v) if k in _TIMES else v) for k, v in r.items()} for r in group],
        )
    existing = touched_incidents - {i["incident_id"] for i in new_incidents}
    if existing:
        params: dict[str, Any] = {"now": ts}
        where = sql.in_("incident_id", "iid", sorted(existing), params)
        sql.run(
            f"UPDATE incidents SET last_alert_at = :now, updated_at = :now WHERE {where}", params
        )


def _alert_row(sql: RawSql, values: dict[str, Any]) -> dict[str, Any]:
    row = dict(values)
    row["labels"] = sql.doc(row["labels"])
    row["annotations"] = sql.doc(row["annotations"])
    for k in _TIMES:
        row[k] = sql.ts(row[k])
    return row


def _by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(r)), []).append(r)
    return list(groups.values())


def _one(
    a: AlertIn,
    now: datetime,
    known: dict[tuple[str, str], _AlertState],
    by_service: dict[str, tuple[str, datetime]],
    new_incidents: list[dict[str, Any]],
    touched: set[str],
    entries: list[audit.Entry],
    out: IngestOutcome,
) -> str | None:
    key = (a.source, a.fingerprint)
    st = known.get(key)
    if a.status == "resolved":
        if st is None:
            return None  # never saw it fire; the delivery itself is in the audit log
        st.values.update(
            status=AlertStatus.RESOLVED.value,
            resolved_at=now,
            ends_at=a.ends_at or now,
            last_received_at=now,
        )
        st.dirty = True
        return st.incident_id
    if st is not None and st.incident_open:
        st.received_count += 1
        st.values.update(
            received_count=st.received_count,
            last_received_at=now,
            status=AlertStatus.FIRING.value,
            resolved_at=None,
        )
        st.dirty = True
        touched.add(st.incident_id)
        return st.incident_id
    grouped = by_service.get(a.service)
    if grouped is None:
        iid = new_id()
        new_incidents.append(
            {
                "incident_id": iid,
                "status": IncidentStatus.OPEN.value,
                "service": a.service,
                "title": f"{a.alertname} on {a.service}",
                "severity": a.severity,
                "source_alert": {
                    "type": a.alertname,
                    "service": a.service,
                    "source": a.source,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "generator_url": a.generator_url,
                    "starts_at": a.starts_at.isoformat() if a.starts_at else None,
                },
                "created_at": now,
                "updated_at": now,
                "last_alert_at": now,
            }
        )
        by_service[a.service] = (iid, now)
        out.opened.append(iid)
        entries.append(
            audit.Entry(
                Actor.SENTINEL_AGENT,
                ActionType.INCIDENT_OPENED,
                {"service": a.service, "alertname": a.alertname, "fingerprint": a.fingerprint},
                incident_id=iid,
            )
        )
    else:
        iid = grouped[0]
    touched.add(iid)
    alert_id = new_id()
    known[key] = _AlertState(
        alert_id,
        iid,
        True,
        1,
        new=True,
        values={
            "alert_id": alert_id,
            "incident_id": iid,
            "source": a.source,
            "fingerprint": a.fingerprint,
            "alertname": a.alertname,
            "service": a.service,
            "status": AlertStatus.FIRING.value,
            "labels": a.labels,
            "annotations": a.annotations,
            "starts_at": a.starts_at,
            "ends_at": a.ends_at,
            "generator_url": a.generator_url,
            "received_count": 1,
            "first_received_at": now,
            "last_received_at": now,
            "resolved_at": None,
        },
    )
    return iid
