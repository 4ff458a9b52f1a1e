"""The other alert sources (Grafana, Datadog, PagerDuty v3, generic) on SQLite and PostgreSQL:
the payloads as those tools send them, signatures, dedupe/resolve, 4xx with nothing stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sentinel.api.app import create_app
from sentinel.audit.chain import walk_chain
from sentinel.audit.models import AuditRecord
from sentinel.auth import service as auth_service
from sentinel.bootstrap import upgrade_database
from sentinel.core.config import Settings
from sentinel.core.db import make_engine, transaction
from sentinel.incident.models import Alert, Incident

GRAFANA_SECRET = "grafana-hmac-secret-0123456789"
PD_SECRETS = ["pd-old-secret-abcdef", "pd-new-secret-uvwxyz"]


class Env:
    def __init__(self, client: TestClient, engine: Any, ingest: str, viewer: str) -> None:
        self.client, self.engine, self.ingest, self.viewer = client, engine, ingest, viewer

    def post(
        self,
        source: str,
        body: Any,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"Authorization": f"Bearer {token or self.ingest}", **(headers or {})}
        return self.client.post(f"/api/v1/alerts/{source}", content=data, headers=h)

    def counts(self) -> tuple[int, int, int]:
        with Session(self.engine) as s:
            return (
                s.scalar(select(func.count()).select_from(Incident)) or 0,
                s.scalar(select(func.count()).select_from(Alert)) or 0,
                s.scalar(select(func.count()).select_from(AuditRecord)) or 0,
            )

    def alerts(self, source: str) -> list[Alert]:
        with Session(self.engine) as s:
            rows = s.scalars(select(Alert).where(Alert.source == source).order_by(Alert.alertname))
            return list(rows)


@pytest.fixture
def make_env(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    engine = make_engine(db_url)
    made: list[TestClient] = []

    def make(**ingest: Any) -> Env:
        settings = Settings(
            database_url=db_url,
            ingest={"group_window_seconds": 600, **ingest},
            audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
        )
        upgrade_database(settings)
        with transaction(engine) as s:
            n = len(made)
            _, tok = auth_service.create_user(session=s, name=f"src{n}", role="ingest")
            _, viewer = auth_service.create_user(session=s, name=f"v{n}", role="viewer")
        client = TestClient(create_app(settings))
        client.__enter__()
        made.append(client)
        return Env(client, engine, tok, viewer)

    yield make
    for c in made:
        c.__exit__(None, None, None)
    engine.dispose()


# -- payloads as the tools send them ---------------------------------------------------------


def grafana_payload(status: str = "firing", ends: str = "0001-01-01T00:00:00Z") -> dict[str, Any]:
    """Grafana's documented webhook body (two alerts, float ``values``), with a service label."""

    def alert(name: str, fp: str, zone: str) -> dict[str, Any]:
        return {
            "status": status,
            "labels": {"alertname": name, "team": "blue", "zone": zone, "service": "payments"},
            "annotations": {"summary": f"{name} in {zone}", "runbook_url": "https://rb/1234"},
            "startsAt": "2026-12-07T09:51:03.157076+02:00",
            "endsAt": ends,
            "generatorURL": "https://grafana.example/alerting/1afz29v7z/edit",
            "fingerprint": fp,
            "silenceURL": "https://grafana.example/alerting/silence/new?matchers=alertname%3DT2",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        }

    return {
        "receiver": "sentinel",
        "status": status,
        "orgId": 1,
        "alerts": [
            alert("High memory usage", "c6eadffa33fcdf37", "us-1"),
            alert("High CPU usage", "bc97ff14869b13e3", "eu-1"),
        ],
        "groupLabels": {},
        "commonLabels": {"team": "blue", "service": "payments"},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "title": f"[{status.upper()}:2]  (blue)",
        "state": "alerting",
        "message": "**Firing**",
    }


def datadog_payload(transition: str = "Triggered", scope: str = "host:web-1") -> dict[str, Any]:
    """Sentinel's Datadog template after Datadog substituted its variables."""
    return {
        "alert_id": "12345678",
        "aggreg_key": "",
        "alert_transition": transition,
        "alert_title": f"[{transition} on {{{scope}}}] Checkout error rate high",
        "alert_type": "error",
        "alert_priority": "P1",
        "alert_query": "avg(last_5m):sum:trace.http.request.errors{service:checkout} > 5",
        "alert_scope": scope,
        "tags": "env:prod,service:checkout,team:shop,canary",
        "hostname": scope.split(":")[-1],
        "link": "https://app.datadoghq.com/monitors/12345678",
        "date": "1796623200000",
        "body": "Error rate is 7.2 % (threshold 5 %)",
        # Datadog's $ID: one per notification
        "id": str(int(hashlib.sha256(f"{transition}|{scope}".encode()).hexdigest()[:10], 16)),
    }


def pagerduty_payload(
    event_type: str = "incident.triggered",
    incident_key: str = "d3640fbd41094207a1c11e58e46b1662",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A PagerDuty generic webhook v3 delivery for an incident event."""
    return {
        "event": {
            "id": event_id or f"01DEN7WHBC3UCBGTW6MCW2T3TH-{event_type}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-12-07T09:55:00.000Z",
            "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": "Tenex Engineer"},
            "client": {"name": "PagerDuty"},
            "data": {
                "id": "PGR0VU2",
                "type": "incident",
                "self": "https://api.pagerduty.com/incidents/PGR0VU2",
                "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                "number": 2,
                "status": "resolved" if event_type == "incident.resolved" else "triggered",
                "incident_key": incident_key,
                "created_at": "2026-12-07T09:54:00Z",
                "title": "Search latency above SLO",
                "service": {
                    "html_url": "https://acme.pagerduty.com/services/PF9KMXH",
                    "id": "PF9KMXH",
                    "self": "https://api.pagerduty.com/services/PF9KMXH",
                    "summary": "search",
                    "type": "service_reference",
                },
                "assignees": [],
                "escalation_policy": {"id": "PRXEEQ8", "summary": "Default"},
                "teams": [],
                "priority": {"id": "PSO75BM", "summary": "P2"},
                "urgency": "high",
                "conference_bridge": None,
                "resolve_reason": None,
            },
        }
    }


def generic_payload(**over: Any) -> dict[str, Any]:
    alert = {"name": "QueueBacklog", "service": "billing", "severity": "warning", **over}
    return {"alerts": [alert]}


def _sign(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


# -- Grafana ------------------------------------------------------------------------------------


def test_grafana_payload_opens_one_incident_and_resolves(make_env: Callable[..., Env]) -> None:
    env = make_env()
    r = env.post("grafana", grafana_payload())
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2 and len(r.json()["incident_ids"]) == 1
    stored = env.alerts("grafana")
    assert [a.alertname for a in stored] == ["High CPU usage", "High memory usage"]
    assert all(a.service == "payments" and a.status == "firing" for a in stored)
    assert stored[0].fingerprint == "bc97ff14869b13e3"
    assert env.post("grafana", grafana_payload()).status_code == 202  # re-sent: joins
    assert env.counts()[:2] == (1, 2)
    r = env.post("grafana", grafana_payload("resolved", "2026-12-07T10:05:00Z"))
    assert r.status_code == 202
    assert all(a.status == "resolved" for a in env.alerts("grafana"))
    assert walk_chain(env.engine).ok


def test_grafana_hmac_signature_is_checked_when_configured(make_env: Callable[..., Env]) -> None:
    env = make_env(grafana_hmac_secret=GRAFANA_SECRET)
    body = json.dumps(grafana_payload()).encode()
    before = env.counts()
    for headers in ({}, {"X-Grafana-Alerting-Signature": _sign("wrong", body)}):
        r = env.post("grafana", body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text
    tampered = body.replace(b"payments", b"paymentz")
    r = env.post(
        "grafana", tampered, headers={"X-Grafana-Alerting-Signature": _sign(GRAFANA_SECRET, body)}
    )
    assert r.status_code == 401
    assert env.counts() == before
    good = {"X-Grafana-Alerting-Signature": _sign(GRAFANA_SECRET, body)}
    assert env.post("grafana", body, headers=good).status_code == 202
    assert GRAFANA_SECRET not in json.dumps(
        env.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {env.ingest}"}).json()
    )


def test_grafana_signed_timestamp_refuses_replays(make_env: Callable[..., Env]) -> None:
    env = make_env(
        grafana_hmac_secret=GRAFANA_SECRET,
        grafana_signature_header="X-Sig",
        grafana_timestamp_header="X-Sig-Timestamp",
    )
    body = json.dumps(grafana_payload()).encode()

    def signed(ts: int) -> dict[str, str]:
        return {
            "X-Sig": _sign(GRAFANA_SECRET, f"{ts}:".encode() + body),
            "X-Sig-Timestamp": str(ts),
        }

    now = int(time.time())
    assert env.post("grafana", body, headers=signed(now - 3600)).status_code == 401  # replay
    body_only = {"X-Sig": _sign(GRAFANA_SECRET, body)}
    assert env.post("grafana", body, headers=body_only).status_code == 401  # no timestamp
    assert env.counts()[1] == 0
    assert env.post("grafana", body, headers=signed(now)).status_code == 202


# -- Datadog ------------------------------------------------------------------------------------


def test_datadog_template_fires_groups_by_scope_and_recovers(make_env: Callable[..., Env]) -> None:
    env = make_env()
    r1 = env.post("datadog", datadog_payload(scope="host:web-1"))
    r2 = env.post("datadog", datadog_payload(scope="host:web-2"))
    assert r1.status_code == r2.status_code == 202, r1.text
    assert r1.json()["incident_ids"] == r2.json()["incident_ids"]  # one service, one incident
    stored = env.alerts("datadog")
    assert len(stored) == 2 and {a.fingerprint for a in stored} != {stored[0].fingerprint}
    a = stored[0]
    assert a.alertname == "Checkout error rate high" and a.service == "checkout"
    assert a.labels["env"] == "prod" and a.labels["canary"] == "" and a.labels["team"] == "shop"
    assert a.annotations["summary"].startswith("Error rate is 7.2")
    assert a.starts_at is not None and a.starts_at.year == 2026
    assert env.post("datadog", datadog_payload("Recovered", "host:web-1")).status_code == 202
    by_host = {x.labels["host"]: x.status for x in env.alerts("datadog")}
    assert by_host == {"web-1": "resolved", "web-2": "firing"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({k: v for k, v in datadog_payload().items() if k != "alert_id"}, ["alert_id"]),
        ({**datadog_payload(), "alert_transition": " "}, ["alert_transition"]),
        ({**datadog_payload(), "tags": {"service": "x"}}, ["tags"]),
    ],
)
def test_datadog_bad_payload_is_400_with_details(
    make_env: Callable[..., Env], body: dict[str, Any], loc: list[str]
) -> None:
    env = make_env()
    before = env.counts()
    r = env.post("datadog", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_request" and "Datadog" in err["message"]
    assert any(d["loc"][: len(loc)] == loc for d in err["details"]), err
    assert env.counts() == before


# -- PagerDuty ----------------------------------------------------------------------------------


def test_pagerduty_incident_lifecycle(make_env: Callable[..., Env]) -> None:
    env = make_env()
    r = env.post("pagerduty", pagerduty_payload())
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    (a,) = env.alerts("pagerduty")
    assert (a.alertname, a.service, a.fingerprint) == (
        "Search latency above SLO",
        "search",
        "pd-PGR0VU2",
    )
    assert a.labels["priority"] == "P2" and a.generator_url.endswith("/incidents/PGR0VU2")
    # Acknowledged / annotated: recorded in the audit log, no alert change.
    audit_before = env.counts()[2]
    r = env.post("pagerduty", pagerduty_payload("incident.acknowledged"))
    assert r.status_code == 202 and r.json() == {"accepted": 0, "incident_ids": []}
    assert env.counts()[2] == audit_before + 1
    assert env.post("pagerduty", pagerduty_payload("incident.resolved")).status_code == 202
    (a,) = env.alerts("pagerduty")
    assert a.status == "resolved"


def test_pagerduty_echo_of_sentinels_own_escalation_opens_nothing(
    make_env: Callable[..., Env],
) -> None:
    """Sentinel pages with dedup key sentinel-<incident>; that incident's webhook must not
    come back as a new incident (an escalation loop)."""
    env = make_env()
    r = env.post("pagerduty", pagerduty_payload(incident_key="sentinel-0190f2a4-aaaa"))
    assert r.status_code == 202 and r.json()["accepted"] == 0
    assert env.counts()[:2] == (0, 0) and env.counts()[2] == 1


def test_pagerduty_signature_with_rotating_secrets(make_env: Callable[..., Env]) -> None:
    env = make_env(pagerduty_webhook_secrets=PD_SECRETS)
    body = json.dumps(pagerduty_payload()).encode()
    for header in (None, "v1=" + _sign("not-ours", body), "v0=" + _sign(PD_SECRETS[0], body)):
        h = {"X-PagerDuty-Signature": header} if header else {}
        assert env.post("pagerduty", body, headers=h).status_code == 401
    assert env.counts() == (0, 0, 0)
    # During a rotation PagerDuty sends one signature per secret; either configured one passes.
    both = f"v1={_sign('retired', body)},v1={_sign(PD_SECRETS[1], body)}"
    assert env.post("pagerduty", body, headers={"X-PagerDuty-Signature": both}).status_code == 202
    assert env.counts()[:2] == (1, 1)


# -- generic ------------------------------------------------------------------------------------


def test_generic_minimal_alert_and_its_resend(make_env: Callable[..., Env]) -> None:
    env = make_env()
    r = env.post("generic", generic_payload())
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    assert env.post("generic", generic_payload()).status_code == 202  # same alert: joins
    (a,) = env.alerts("generic")
    assert (a.alertname, a.service, a.received_count) == ("QueueBacklog", "billing", 2)
    r = env.post("generic", generic_payload(status="resolved"))
    assert r.status_code == 202
    assert env.alerts("generic")[0].status == "resolved"


@pytest.mark.parametrize(
    "alert",
    [
        {"name": "X"},  # no service
        {"name": "X", "service": "s", "servce": "typo"},  # unknown field
        {"name": "X", "service": "s", "status": "firng"},
        {"name": "", "service": "s"},
        {"name": "X", "service": "s", "labels": {"a": 1}},
    ],
)
def test_generic_bad_alert_is_400_and_nothing_stored(
    make_env: Callable[..., Env], alert: dict[str, Any]
) -> None:
    env = make_env()
    r = env.post("generic", {"alerts": [alert]})
    assert r.status_code == 400 and r.json()["error"]["details"], r.text
    assert env.counts() == (0, 0, 0)


# -- every source -------------------------------------------------------------------------------

BODIES = {
    "grafana": grafana_payload,
    "datadog": datadog_payload,
    "pagerduty": pagerduty_payload,
    "generic": generic_payload,
}


@pytest.mark.parametrize("source", sorted(BODIES))
def test_every_source_needs_an_ingest_token(make_env: Callable[..., Env], source: str) -> None:
    env = make_env()
    body = json.dumps(BODIES[source]()).encode()
    url = f"/api/v1/alerts/{source}"
    assert env.client.post(url, content=body).status_code == 401
    assert (
        env.client.post(url, content=body, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert env.post(source, body, token=env.viewer).status_code == 403
    assert env.post(source, b"{not json").status_code == 400
    assert env.post(source, b"[]").status_code == 400
    assert env.client.get(url).status_code == 405
    assert env.counts() == (0, 0, 0)
    assert env.post(source, body).status_code == 202


def test_pagerduty_replayed_event_changes_nothing(make_env: Callable[..., Env]) -> None:
    """PagerDuty signs no timestamp, so a captured signed delivery could be sent again:
    ``event.id`` is seen once. A retry of the same event (or a replay after the incident
    resolved) is recorded in the audit log and opens or reopens nothing."""
    env = make_env(pagerduty_webhook_secrets=PD_SECRETS)

    def send(payload: dict[str, Any]) -> Any:
        body = json.dumps(payload).encode()
        sig = {"X-PagerDuty-Signature": "v1=" + _sign(PD_SECRETS[0], body)}
        return env.post("pagerduty", body, headers=sig)

    triggered = pagerduty_payload(event_id="01EVENTTRIGGERED")
    first = send(triggered)
    assert first.status_code == 202 and first.json()["accepted"] == 1
    again = send(triggered)  # PagerDuty's own retry
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "incident_ids": [], "duplicate": True}
    assert env.counts()[:2] == (1, 1)
    assert (
        send(pagerduty_payload("incident.resolved", event_id="01EVENTRESOLVED")).json()["accepted"]
        == 1
    )
    assert env.alerts("pagerduty")[0].status == "resolved"
    replay = send(triggered)  # a replay after the fix: must not fire the alert again
    assert replay.json()["duplicate"] is True
    (a,) = env.alerts("pagerduty")
    assert a.status == "resolved" and a.received_count == 1
    with Session(env.engine) as s:
        bodies = [
            json.loads(r.body)
            for r in s.scalars(
                select(AuditRecord).where(AuditRecord.action_type == "ALERT_INGESTED")
            )
        ]
    dups = [b["details"].get("duplicate_event") for b in bodies]
    assert dups == [None, "01EVENTTRIGGERED", None, "01EVENTTRIGGERED"]
    assert walk_chain(env.engine).ok


def test_datadog_notification_sent_twice_counts_once(make_env: Callable[..., Env]) -> None:
    env = make_env()
    body = datadog_payload()
    assert env.post("datadog", body).json()["accepted"] == 1
    assert env.post("datadog", body).json()["duplicate"] is True
    (a,) = env.alerts("datadog")
    assert a.received_count == 1
    no_id = {k: v for k, v in body.items() if k != "id"}  # a template without $ID: no dedupe
    assert env.post("datadog", no_id).json()["accepted"] == 1
    assert env.alerts("datadog")[0].received_count == 2
