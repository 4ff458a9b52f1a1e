"""A real Prometheus → Alertmanager → Sentinel chain, and a Prometheus that is not there.

The first test runs everything for real: a scrape target the test controls, Prometheus
evaluating an alerting rule every second, Alertmanager delivering the webhook with a bearer
token, and ``sentinel serve`` on SQLite reading the alert's own expression back from that
Prometheus. The second test points Sentinel at a closed port: the failure must be stored in
full and the incident must still reach a human.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Proc,
    am_alert,
    am_payload,
    create_token,
    free_port,
    need,
    sentinel_env,
    wait_for,
    wait_http,
)
from tests.integration.promstack import (
    MetricsTarget,
    Service,
    binaries_present,
    logs_on_failure,
    start_alertmanager,
    start_prometheus,
    stop_all,
)

ALERTNAME = "CheckoutQueueBackedUp"
# Written the way PromQL prints it: Prometheus puts expr.String() into the generatorURL.
EXPR = 'checkout_queue_depth{job="checkout"} > 100'
RULE = {
    "alert": ALERTNAME,
    "expr": EXPR,
    "for": "0s",
    "labels": {"severity": "page", "service": "checkout"},
    "annotations": {"summary": "checkout queue depth is {{ $value }}"},
}
QUEUE = 'checkout_queue_depth{service="checkout"}'
ERRORS = 'http_requests_total{service="checkout",code="500"}'
HIGH = 250.0
GROUP_INTERVAL_S = 1.0


class SentinelApi:
    """The read API as a viewer sees it."""

    def __init__(self, base: str, token: str) -> None:
        self.c = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def incidents(self, **params: str) -> list[dict[str, Any]]:
        r = self.c.get("/api/v1/incidents", params={"limit": "100", **params})
        r.raise_for_status()
        return list(r.json()["items"])

    def incident(self, incident_id: str) -> dict[str, Any]:
        r = self.c.get(f"/api/v1/incidents/{incident_id}")
        r.raise_for_status()
        return dict(r.json())

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        r = self.c.get(f"/api/v1/incidents/{incident_id}/timeline")
        r.raise_for_status()
        return list(r.json())

    def wait_status(self, incident_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            inc = self.incident(incident_id)
            return inc if inc["status"] == status else None

        return dict(wait_for(reached, timeout=timeout, what=f"incident {status}"))

    def close(self) -> None:
        self.c.close()


def start_sentinel(env: dict[str, str], tmp: Path, port: int) -> Proc:
    proc = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "sentinel.log")
    wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc)
    return proc


def prom_instant(prom: Service, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def steps_of(timeline: list[dict[str, Any]]) -> list[str]:
    return [e["summary"] for e in timeline]


def held_for(pred: Any, seconds: float, what: str) -> None:
    """Assert that ``pred`` stays true for ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert pred(), what
        time.sleep(0.25)


@dataclass
class Stack:
    target: MetricsTarget
    prom: Service
    am: Service
    sentinel: Proc
    api: SentinelApi


@contextmanager
def checkout_stack(sqlite_url: str, tmp_path: Path, *, repeat_interval: str) -> Iterator[Stack]:
    """Target → Prometheus → Alertmanager → ``sentinel serve``; logs printed on failure."""
    need(binaries_present(), "the prometheus and prometheus-alertmanager binaries")
    target = MetricsTarget()
    target.declare("checkout_queue_depth", "gauge", "Jobs waiting in the checkout queue.")
    target.declare("http_requests_total", "counter", "HTTP requests served.")
    target.set_gauge(QUEUE, 3)
    target.set_climb(ERRORS, 5)  # a steady stream of 500s

    sentinel_port, am_port = free_port(), free_port()
    prom_dir, am_dir = tmp_path / "prometheus", tmp_path / "alertmanager"
    logs = [
        ("prometheus", prom_dir / "prometheus.log"),
        ("alertmanager", am_dir / "alertmanager.log"),
        ("sentinel", tmp_path / "sentinel.log"),
    ]
    prom: Service | None = None
    am: Service | None = None
    sentinel: Proc | None = None
    api: SentinelApi | None = None
    with logs_on_failure(*logs):
        try:
            prom = start_prometheus(
                prom_dir,
                job="checkout",
                target=target.address,
                rules=[RULE],
                alertmanager=f"127.0.0.1:{am_port}",
            )
            prom.wait_ready()

            env = sentinel_env(
                sqlite_url,
                tmp_path,
                SENTINEL_PROMETHEUS__URL=prom.url,
                SENTINEL_PROMETHEUS__STEP_SECONDS="1",
                SENTINEL_PROMETHEUS__LOOKBACK_SECONDS="120",
                SENTINEL_LOG_LEVEL="INFO",
            )
            ingest_token = create_token(env, "alertmanager", "ingest")
            api_base = f"http://127.0.0.1:{sentinel_port}"
            api = SentinelApi(api_base, create_token(env, "oncall", "viewer"))
            sentinel = start_sentinel(env, tmp_path, sentinel_port)

            am = start_alertmanager(
                am_dir,
                port=am_port,
                webhook_url=f"{api_base}/api/v1/alerts/alertmanager",
                bearer_token=ingest_token,
                group_wait="1s",
                group_interval=f"{GROUP_INTERVAL_S:g}s",
                repeat_interval=repeat_interval,
            )
            am.wait_ready()

            # Prometheus has scraped the target a few times; the rule is loaded, not firing.
            wait_for(
                lambda: any(
                    float(s["value"][1]) >= 3
                    for s in prom_instant(
                        prom, 'count_over_time(checkout_queue_depth{job="checkout"}[1m])'
                    )
                ),
                timeout=30,
                what="three scrapes of the target",
            )
            assert prom_instant(prom, f'ALERTS{{alertname="{ALERTNAME}"}}') == []
            assert api.incidents() == []
            yield Stack(target=target, prom=prom, am=am, sentinel=sentinel, api=api)
        finally:
            if api is not None:
                api.close()
            stop_all(am, prom, sentinel, target)


def back_up_the_queue(stack: Stack) -> tuple[str, dict[str, Any]]:
    """Raise the gauge; return the incident once Sentinel has escalated it."""
    t0 = time.monotonic()
    stack.target.set_gauge(QUEUE, HIGH)
    first = wait_for(
        lambda: stack.api.incidents(service="checkout"), timeout=60, what="an incident"
    )
    t_incident = time.monotonic() - t0
    assert len(first) == 1, first
    incident_id = str(first[0]["incident_id"])
    inc = stack.api.wait_status(incident_id, "ESCALATED", timeout=60)
    print(f"incident after {t_incident:.1f}s, escalated after {time.monotonic() - t0:.1f}s")
    return incident_id, inc


@pytest.mark.prometheus
@pytest.mark.slow
def test_prometheus_alert_through_alertmanager_becomes_one_escalated_incident(
    sqlite_url: str, tmp_path: Path
) -> None:
    with checkout_stack(sqlite_url, tmp_path, repeat_interval="1h") as stack:
        api, target, prom, am = stack.api, stack.target, stack.prom, stack.am
        incident_id, inc = back_up_the_queue(stack)

        # The alert is what Alertmanager has: name, the rule's labels, its fingerprint.
        am_alerts = httpx.get(f"{am.url}/api/v2/alerts", timeout=5).json()
        assert [a["labels"]["alertname"] for a in am_alerts] == [ALERTNAME]
        (alert,) = inc["alerts"]
        assert alert["source"] == "alertmanager"
        assert alert["alertname"] == ALERTNAME
        assert alert["service"] == "checkout"
        assert alert["status"] == "firing"
        assert alert["fingerprint"] == am_alerts[0]["fingerprint"]
        assert alert["labels"] == am_alerts[0]["labels"]
        assert alert["labels"] == {
            "alertname": ALERTNAME,
            "severity": "page",
            "service": "checkout",
            "job": "checkout",
            "instance": target.address,
        }
        assert alert["annotations"]["summary"] == f"checkout queue depth is {HIGH:g}"
        assert alert["generator_url"].startswith(prom.url)
        assert inc["severity"] == "page" and inc["service"] == "checkout"
        assert inc["escalation_reason"]

        # The graph went the whole human path.
        steps = steps_of(api.timeline(incident_id))
        for step in ("AlertReceived", "ContextGathering", "RiskEvaluation", "EscalateToHuman"):
            assert step in steps, steps
        assert steps.index("AlertReceived") < steps.index("ContextGathering")
        assert steps.index("ContextGathering") < steps.index("EscalateToHuman")

        # The snapshot holds real series from the target, read with the rule's own query.
        (snap,) = inc["context_snapshots"]
        assert snap["sources"]["prometheus"]["ok"] is True
        assert snap["sources"]["prometheus"]["error"] is None
        assert EXPR in snap["sources"]["prometheus"]["queries"]
        pdata = snap["data"]["prometheus"]
        assert pdata["source"] == "prometheus" and pdata["ok"] is True
        queries = {q["name"]: q for q in pdata["queries"]}
        q = queries[f"alert:{ALERTNAME}"]
        assert q["query"] == EXPR
        assert q["ok"] is True and q["error"] is None and q["truncated"] is False
        assert q["data"]["step"] == 1
        series = q["data"]["series"]
        assert len(series) == 1, series
        assert series[0]["metric"] == {
            "__name__": "checkout_queue_depth",
            "job": "checkout",
            "instance": target.address,
            "service": "checkout",
        }
        values = [float(v) for _, v in series[0]["values"]]
        assert values, "the alert's own expression returned no samples"
        assert all(v == HIGH for v in values), values  # only > 100, and only ours
        # The service's default key series came from the same target.
        up = queries["up"]
        assert up["ok"] is True
        assert 1.0 in {float(v) for s in up["data"]["series"] for _, v in s["values"]}
        err = queries["error_rate"]
        assert err["ok"] is True
        assert any(float(v) > 0 for s in err["data"]["series"] for _, v in s["values"]), err

        # Alertmanager keeps flushing the group every group_interval: still one incident.
        held_for(
            lambda: len(api.incidents()) == 1,
            seconds=5 * GROUP_INTERVAL_S,
            what="a second incident was opened for the same firing alert",
        )

        # The queue drains: Prometheus resolves, Alertmanager sends the resolved notice.
        t1 = time.monotonic()
        target.set_gauge(QUEUE, 0)

        def resolved() -> dict[str, Any] | None:
            a = api.incident(incident_id)["alerts"]
            return a[0] if len(a) == 1 and a[0]["status"] == "resolved" else None

        done = wait_for(resolved, timeout=60, what="the alert to be resolved")
        print(f"resolved after {time.monotonic() - t1:.1f}s")
        assert done["fingerprint"] == alert["fingerprint"]
        assert done["resolved_at"] is not None and done["ends_at"] is not None
        assert [i["incident_id"] for i in api.incidents()] == [incident_id]
        assert len(api.incident(incident_id)["alerts"]) == 1


@pytest.mark.prometheus
@pytest.mark.slow
def test_alertmanager_repeat_notifications_join_the_escalated_incident(
    sqlite_url: str, tmp_path: Path
) -> None:
    with checkout_stack(sqlite_url, tmp_path, repeat_interval="2s") as stack:
        api = stack.api
        incident_id, _ = back_up_the_queue(stack)

        def redelivered() -> bool:
            (alert,) = api.incident(incident_id)["alerts"]
            return len(api.incidents()) > 1 or int(alert["received_count"]) >= 2

        wait_for(redelivered, timeout=30, what="Alertmanager's repeat notification")
        assert [i["incident_id"] for i in api.incidents()] == [incident_id]
        (alert,) = api.incident(incident_id)["alerts"]
        assert alert["received_count"] >= 2 and alert["status"] == "firing"


@pytest.mark.slow
def test_unreachable_prometheus_is_recorded_in_full_and_the_incident_still_escalates(
    sqlite_url: str, tmp_path: Path
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"  # bound once, then closed: nothing listens
    try:
        httpx.get(f"{dead_url}/api/v1/query_range", timeout=2)
    except httpx.ConnectError as exc:
        expected_error = f"ConnectError: {exc}"
    else:
        pytest.fail(f"something answers on {dead_url}")

    port = free_port()
    env = sentinel_env(sqlite_url, tmp_path, SENTINEL_PROMETHEUS__URL=dead_url)
    ingest_token = create_token(env, "alertmanager", "ingest")
    api = SentinelApi(f"http://127.0.0.1:{port}", create_token(env, "oncall", "viewer"))
    sentinel: Proc | None = None
    with logs_on_failure(("sentinel", tmp_path / "sentinel.log")):
        try:
            sentinel = start_sentinel(env, tmp_path, port)
            body = am_payload(
                am_alert(ALERTNAME, "checkout", fingerprint="dead-prom-1", severity="page")
            )
            r = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager",
                json=body,
                headers={"Authorization": f"Bearer {ingest_token}"},
                timeout=10,
            )
            assert r.status_code == 202, r.text
            (incident_id,) = r.json()["incident_ids"]

            inc = api.wait_status(incident_id, "ESCALATED", timeout=60)
            assert inc["escalation_reason"]
            (alert,) = inc["alerts"]
            assert alert["fingerprint"] == "dead-prom-1" and alert["alertname"] == ALERTNAME

            (snap,) = inc["context_snapshots"]
            summary = snap["sources"]["prometheus"]
            assert summary["ok"] is False
            assert summary["error"] == expected_error
            pdata = snap["data"]["prometheus"]
            assert pdata["ok"] is False and pdata["error"] == expected_error
            # Every query is kept with its exact text and the whole error, none with data.
            names = [q["name"] for q in pdata["queries"]]
            assert names[0] == f"alert:{ALERTNAME}"
            assert pdata["queries"][0]["query"] == "up == 0"  # am_alert's generatorURL
            assert {"up", "request_rate", "error_rate", "cpu", "memory"} <= set(names)
            for q in pdata["queries"]:
                assert q["ok"] is False and q["data"] is None
                assert q["error"] == expected_error
            assert summary["queries"] == [q["query"] for q in pdata["queries"]]

            steps = steps_of(api.timeline(incident_id))
            assert "ContextGathering" in steps and "EscalateToHuman" in steps, steps
        finally:
            api.close()
            stop_all(sentinel)
