"""The other alert sources of INTERFACES.md: Grafana, Datadog, PagerDuty (v3) and generic.

Each parser takes the decoded JSON body and returns the normalized alerts (``AlertIn``), or
raises ``pydantic.ValidationError`` (the endpoint answers 400 with its details). A delivery
that is valid but carries nothing to act on (a PagerDuty ``incident.annotated`` event, an
incident Sentinel itself opened in PagerDuty) returns no alerts: it is still stored in the
audit log, and the reply says ``"accepted": 0``.

The shapes:

- **Grafana** unified alerting webhook (``version`` "1"): Alertmanager's shape plus
  ``orgId``, ``values``, ``silenceURL``... (tolerated). Same normalization as Alertmanager.
- **Datadog** webhook integration: Datadog sends whatever payload template the webhook is
  given; Sentinel reads the one in README ("Datadog"), built from Datadog's ``$ALERT_*``
  variables. ``alert_transition`` "Recovered" resolves, every other transition fires.
- **PagerDuty** generic webhook v3 (``{"event": {...}}``): ``incident.triggered`` and
  ``incident.reopened`` fire, ``incident.resolved`` resolves, other events are recorded only.
- **generic**: ``{"alerts": [{"name", "service", ...}]}``, documented in README.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from sentinel.incident.schemas import AlertIn
from sentinel.ingest.schemas import AMAlert, label_fingerprint, real_time, service_of

MAX_ALERTS = 10000
# Sentinel pages PagerDuty with this dedup-key prefix (notify.pagerduty.dedup_key): such an
# incident coming back through PagerDuty's webhook is Sentinel's own escalation, not an alert.
OWN_PAGERDUTY_KEY_PREFIX = "sentinel-"


def _alert(
    source: str,
    *,
    fingerprint: str,
    status: Literal["firing", "resolved"],
    alertname: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    severity: str | None,
    starts_at: datetime | None,
    ends_at: datetime | None = None,
    generator_url: str | None = None,
    service: str | None = None,
) -> AlertIn:
    return AlertIn(
        source=source,
        fingerprint=fingerprint[:128],
        status=status,
        alertname=alertname[:255] or "unnamed",
        service=(service or service_of(labels))[:255],
        severity=severity,
        labels=labels,
        annotations=annotations,
        starts_at=real_time(starts_at),
        ends_at=real_time(ends_at),
        generator_url=generator_url or None,
    )


# -- Grafana ------------------------------------------------------------------------------------


class GrafanaWebhook(BaseModel):
    """Grafana unified alerting's webhook contact point payload (version 1)."""

    model_config = ConfigDict(extra="allow")

    version: Literal["1"]
    status: Literal["firing", "resolved"]
    receiver: StrictStr = ""
    orgId: StrictInt | None = None  # noqa: N815 - Grafana's field name
    groupKey: StrictStr = ""  # noqa: N815
    truncatedAlerts: StrictInt = 0  # noqa: N815
    groupLabels: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # noqa: N815
    externalURL: StrictStr = ""  # noqa: N815
    alerts: list[AMAlert] = Field(min_length=1, max_length=MAX_ALERTS)


def parse_grafana(raw: dict[str, Any]) -> list[AlertIn]:
    """Grafana's alerts, normalized as Alertmanager's are (same label rules)."""
    payload = GrafanaWebhook.model_validate(raw)
    return [
        _alert(
            "grafana",
            fingerprint=a.fingerprint or label_fingerprint(dict(a.labels)),
            status=a.status,
            alertname=a.labels["alertname"],
            labels=dict(a.labels),
            annotations=dict(a.annotations),
            severity=a.labels.get("severity"),
            starts_at=a.startsAt,
            ends_at=a.endsAt,
            generator_url=a.generatorURL,
        )
        for a in payload.alerts
    ]


# -- Datadog ------------------------------------------------------------------------------------

_TRANSITION_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*")


class DatadogWebhook(BaseModel):
    """Sentinel's Datadog webhook payload template (README), after Datadog's substitution.

    Datadog substitutes its variables as text; an unquoted numeric one arrives as a number.
    """

    model_config = ConfigDict(extra="allow")

    alert_id: StrictStr | StrictInt
    alert_transition: StrictStr
    alert_title: StrictStr
    aggreg_key: StrictStr | StrictInt | None = None
    alert_scope: StrictStr | None = None
    alert_type: StrictStr | None = None
    alert_priority: StrictStr | None = None
    alert_query: StrictStr | None = None
    tags: StrictStr | list[StrictStr] = ""
    hostname: StrictStr | None = None
    link: StrictStr | None = None
    date: StrictStr | StrictInt | None = None
    body: StrictStr | None = None
    id: StrictStr | StrictInt | None = None

    @field_validator("alert_transition")
    @classmethod
    def _transition(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("alert_transition is empty")
        return v

    @field_validator("alert_title")
    @classmethod
    def _title(cls, v: str) -> str:
        if not _TRANSITION_PREFIX.sub("", v).strip():
            raise ValueError("alert_title is empty")
        return v


def datadog_tags(tags: str | list[str]) -> dict[str, str]:
    """``env:prod,service:checkout,canary`` (or a list) as labels; a bare tag maps to ""."""
    items = tags if isinstance(tags, list) else tags.split(",")
    out: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _epoch(value: str | int | None) -> datetime | None:
    """Datadog's $DATE / $LAST_UPDATED: epoch milliseconds (or seconds), as text or number."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    seconds = n / 1000 if n > 10**11 else n
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_datadog(raw: dict[str, Any]) -> list[AlertIn]:
    """One monitor notification: "Recovered" resolves, anything else fires."""
    p = DatadogWebhook.model_validate(raw)
    labels = datadog_tags(p.tags)
    name = _TRANSITION_PREFIX.sub("", p.alert_title).strip()
    labels.setdefault("alertname", name)
    labels["datadog_alert_id"] = str(p.alert_id)
    if p.alert_scope:
        labels["datadog_scope"] = p.alert_scope
    if p.hostname and "host" not in labels:
        labels["host"] = p.hostname
    annotations = {
        k: v
        for k, v in (
            ("summary", p.body),
            ("query", p.alert_query),
            ("transition", p.alert_transition),
        )
        if v
    }
    # One monitor notifies per group (scope): the monitor id and the scope name the alert.
    if p.aggreg_key not in (None, ""):
        fingerprint = f"dd-{p.aggreg_key}"
    else:
        fingerprint = (
            f"dd-{p.alert_id}-" + hashlib.sha256((p.alert_scope or "").encode()).hexdigest()[:16]
        )
    severity = p.alert_priority or {"error": "critical", "warning": "warning"}.get(
        p.alert_type or ""
    )
    return [
        _alert(
            "datadog",
            fingerprint=fingerprint,
            status="resolved" if p.alert_transition.strip().lower() == "recovered" else "firing",
            alertname=name,
            labels=labels,
            annotations=annotations,
            severity=severity,
            starts_at=_epoch(p.date),
            generator_url=p.link,
        )
    ]


# -- PagerDuty (generic webhooks v3) ------------------------------------------------------------


class _PdReference(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StrictStr = ""
    summary: StrictStr = ""


class PagerDutyIncident(BaseModel):
    """``event.data`` of an incident event (only what Sentinel reads is checked)."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr = Field(min_length=1)
    title: StrictStr = ""
    status: StrictStr = ""
    incident_key: StrictStr | None = None
    number: StrictInt | None = None
    html_url: StrictStr | None = None
    created_at: datetime | None = None
    urgency: StrictStr | None = None
    service: _PdReference
    priority: _PdReference | None = None


class PagerDutyEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StrictStr = ""
    event_type: StrictStr = Field(min_length=1)
    resource_type: StrictStr = ""
    occurred_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PagerDutyWebhook(BaseModel):
    """A PagerDuty v3 webhook delivery: ``{"event": {...}}``."""

    model_config = ConfigDict(extra="allow")

    event: PagerDutyEvent


PAGERDUTY_FIRING = frozenset({"incident.triggered", "incident.reopened"})
PAGERDUTY_RESOLVED = frozenset({"incident.resolved"})


def parse_pagerduty(raw: dict[str, Any]) -> list[AlertIn]:
    """A triggered/reopened incident fires, a resolved one resolves; the rest is recorded only."""
    event = PagerDutyWebhook.model_validate(raw).event
    if event.event_type not in PAGERDUTY_FIRING | PAGERDUTY_RESOLVED:
        return []
    inc = PagerDutyIncident.model_validate(event.data)
    if (inc.incident_key or "").startswith(OWN_PAGERDUTY_KEY_PREFIX):
        return []  # Sentinel's own escalation, echoed back: never a new incident
    service = inc.service.summary or inc.service.id or "unknown"
    labels = {
        "alertname": inc.title or f"PagerDuty incident {inc.number or inc.id}",
        "service": service,
        "pagerduty_incident_id": inc.id,
        "pagerduty_service_id": inc.service.id,
    }
    if inc.urgency:
        labels["urgency"] = inc.urgency
    if inc.priority is not None and inc.priority.summary:
        labels["priority"] = inc.priority.summary
    if inc.number is not None:
        labels["pagerduty_incident_number"] = str(inc.number)
    firing = event.event_type in PAGERDUTY_FIRING
    return [
        _alert(
            "pagerduty",
            fingerprint=f"pd-{inc.id}",
            status="firing" if firing else "resolved",
            alertname=labels["alertname"],
            labels=labels,
            annotations={"summary": inc.title} if inc.title else {},
            severity=labels.get("priority") or inc.urgency,
            starts_at=inc.created_at or event.occurred_at,
            ends_at=None if firing else event.occurred_at,
            generator_url=inc.html_url,
            service=service,
        )
    ]


def pagerduty_event_id(raw: dict[str, Any]) -> str | None:
    """PagerDuty's ``event.id``: the same for every retry and replay of one event."""
    event = raw.get("event")
    value = event.get("id") if isinstance(event, dict) else None
    return value[:255] if isinstance(value, str) and value else None


def datadog_event_id(raw: dict[str, Any]) -> str | None:
    """The template's ``id`` (Datadog's ``$ID``, one per notification), when it is there."""
    value = raw.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)[:255]


# -- generic ------------------------------------------------------------------------------------


class GenericAlert(BaseModel):
    """One alert of the generic schema (README: "Other alert sources")."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1, max_length=255)
    service: StrictStr = Field(min_length=1, max_length=255)
    status: Literal["firing", "resolved"] = "firing"
    severity: StrictStr | None = None
    fingerprint: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    annotations: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    url: StrictStr | None = None


class GenericWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    alerts: list[GenericAlert] = Field(min_length=1, max_length=MAX_ALERTS)


def parse_generic(raw: dict[str, Any]) -> list[AlertIn]:
    """The generic schema: name and service required; the fingerprint defaults to one of
    name, service and labels (the same alert sent again joins its incident)."""
    out: list[AlertIn] = []
    for a in GenericWebhook.model_validate(raw).alerts:
        labels = {**a.labels, "alertname": a.name, "service": a.service}
        if a.severity is not None:
            labels.setdefault("severity", a.severity)
        out.append(
            _alert(
                "generic",
                fingerprint=a.fingerprint or label_fingerprint(labels),
                status=a.status,
                alertname=a.name,
                labels=labels,
                annotations=dict(a.annotations),
                severity=a.severity,
                starts_at=a.starts_at,
                ends_at=a.ends_at,
                generator_url=a.url,
                service=a.service,
            )
        )
    return out
