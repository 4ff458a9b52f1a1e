"""The sandbox as its own Prometheus + Alertmanager: PromQL subset, rule state, webhook shape.

Manual ticks throughout: the scrape store and the rule run on the metrics clock (boot time
+ simulated seconds), so minutes of simulated time take a second or two.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from kubernetes import client

from sentinel.ingest.schemas import AlertmanagerWebhook
from sentinel_sandbox import promql
from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.alerting import AlertingConfig, fingerprint
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox
from tests.conftest import wait_for
from tests.sandbox.conftest import SCENARIOS, kube_client

# ---------------------------------------------------------------- PromQL subset


def _store(series: dict[str, list[float]], step: float = 5.0) -> promql.SampleStore:
    """Series given as 'name{a="b"}' -> values at t = 0, step, 2 step, ..."""
    st = promql.SampleStore()
    n = max(len(v) for v in series.values())
    for i in range(n):
        samples = []
        for key, vals in series.items():
            if i < len(vals):
                name, _, rest = key.partition("{")
                labels = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv)
                labels = {k: v.strip('"') for k, v in labels.items()}
                samples.append((name, labels, vals[i]))
        st.append(1000.0 + i * step, samples)
    return st


def _val(st: promql.SampleStore, expr: str, t: float) -> list[tuple[dict[str, str], float]]:
    data = promql.query(st, expr, t)
    assert data["resultType"] == "vector", data
    return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def test_rate_extrapolates_like_prometheus() -> None:
    # a counter rising 10/s, scraped every 5 s; at t=1020 the 20 s window holds 5 samples
    st = _store({'c{a="x"}': [0, 50, 100, 150, 200]})
    [(m, v)] = _val(st, "rate(c[20s])", 1020.0)
    assert m == {"a": "x"} and v == pytest.approx(10.0)
    [(_, inc)] = _val(st, "increase(c[20s])", 1020.0)
    assert inc == pytest.approx(200.0)
    # evaluated 2 s after the last scrape: extrapolated to the window's end (< 1.1 x step)
    [(_, v2)] = _val(st, "rate(c[20s])", 1022.0)
    assert v2 == pytest.approx(10.0)  # samples 1005..1020: 150 over 15 s, extended by 3 + 2 s
    # a counter reset counts the value before it
    st2 = _store({"c": [100, 150, 10, 60]})
    [(_, r)] = _val(st2, "increase(c[15s])", 1015.0)
    assert r == pytest.approx((150 - 100) + (60 - 10) + 10)
    # fewer than two samples: no result
    assert _val(_store({"c": [1]}), "rate(c[20s])", 1000.0) == []


def test_a_series_gone_from_the_scrape_is_stale_at_once() -> None:
    """Like Prometheus' staleness markers: a deleted pod's gauge stops being returned."""
    st = promql.SampleStore()
    st.append(1000.0, [("m", {"pod": "old"}, 200.0), ("c", {"pod": "old"}, 10.0)])
    st.append(1005.0, [("m", {"pod": "old"}, 210.0), ("c", {"pod": "old"}, 20.0)])
    st.append(1010.0, [("m", {"pod": "new"}, 100.0), ("c", {"pod": "new"}, 0.0)])
    assert _val(st, "max(m) > 150", 1012.0) == []
    assert _val(st, "m", 1012.0) == [({"__name__": "m", "pod": "new"}, 100.0)]
    # range functions still see the samples before the marker
    assert [m["pod"] for m, _ in _val(st, "rate(c[20s])", 1012.0)] == ["old"]


def test_aggregations_binary_ops_and_histogram_quantile() -> None:
    st = _store(
        {
            'r{svc="a",code="200"}': [0, 90],
            'r{svc="a",code="500"}': [0, 10],
            'r{svc="b",code="200"}': [0, 100],
            'h_bucket{svc="a",le="0.1"}': [0, 50],
            'h_bucket{svc="a",le="0.5"}': [0, 90],
            'h_bucket{svc="a",le="+Inf"}': [0, 100],
        }
    )
    t = 1005.0
    ratio = _val(
        st,
        'sum by (svc) (rate(r{code=~"5.."}[10s])) / sum by (svc) (rate(r[10s])) > 0.05',
        t,
    )
    assert ratio == [({"svc": "a"}, pytest.approx(0.1))]
    assert sorted(_val(st, "sum without (code) (r)", t), key=lambda x: x[0]["svc"]) == [
        ({"svc": "a"}, 100.0),
        ({"svc": "b"}, 100.0),
    ]
    assert _val(st, 'max(r{svc!="a"}) * 2', t) == [({}, 200.0)]
    [(m, q)] = _val(st, "histogram_quantile(0.9, sum by (le, svc) (rate(h_bucket[10s])))", t)
    assert m == {"svc": "a"} and q == pytest.approx(0.5)
    [(_, q50)] = _val(st, "histogram_quantile(0.5, rate(h_bucket[10s]))", t)
    assert q50 == pytest.approx(0.1)
    assert promql.query(st, "1 + 2 * 3", t)["result"][1] == "7"
    assert _val(st, "r > bool 95", t)[0][1] in (0.0, 1.0)
    assert math.isnan(promql._bucket_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))


@pytest.mark.parametrize(
    "expr",
    ["rate(c[5x])", "sum(c) on (a) c", "c offset 5m", "unknown_fn(c)", "c{a=b}", "(c"],
)
def test_unsupported_or_malformed_is_an_error(expr: str) -> None:
    with pytest.raises(promql.PromQLError):
        promql.query(_store({"c": [1, 2]}), expr, 1005.0)


# ---------------------------------------------------------------- a healthy sandbox is quiet


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_healthy_sandbox_fires_nothing(path: Path, tmp_path: Path) -> None:
    """The scenario's rule on its sandbox without the fault: never even pending, 10 minutes."""
    sc = scenario_mod.load(path)
    assert "[1m]" not in sc.alert["expr"]  # the 5 s demo loop's windows
    for seed in (sc.seed, sc.seed + 1000):
        healthy = copy.copy(sc)
        healthy.faults = []
        healthy.seed = seed
        sb = Sandbox(healthy, tmp_path / f"s{seed}", tick_seconds=0)
        rule = sb.alerting.rule
        assert rule is not None
        for _ in range(600):
            sb.tick(1)
            assert not rule.active, (seed, sb.sim.t, [a.labels for a in rule.active.values()])
        assert rule.evaluations >= 115 and not sb.alerting.errors


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_fault_fires_its_rule_within_seconds(path: Path, tmp_path: Path) -> None:
    """Pending within 25 s of the fault, firing `for` later (windows of 20 s, 5 s scrapes)."""
    sc = scenario_mod.load(path)
    sb = Sandbox(sc, tmp_path, tick_seconds=0)
    rule = sb.alerting.rule
    assert rule is not None
    start = sc.faults[0].start
    sb.tick(int(start))
    assert not rule.active
    fired = None
    for _ in range(60):
        sb.tick(1)
        if any(a.fired_at is not None for a in rule.active.values()):
            fired = sb.sim.t - start
            break
    assert fired is not None and fired <= 25 + rule.for_s, fired


# ---------------------------------------------------------------- the webhook


class Receiver:
    """A webhook receiver that records every POST (body and headers)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, Any], dict[str, str]]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                outer.posts.append((json.loads(self.rfile.read(n)), dict(self.headers)))
                self.send_response(202)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/api/v1/alerts/alertmanager"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.srv.shutdown()


def test_webhook_firing_then_resolved_in_alertmanagers_shape(
    receiver: Receiver, tmp_path: Path
) -> None:
    sc = scenario_mod.load(SCENARIOS / "bad-deploy-errors.yaml")
    token_file = tmp_path / "ingest.token"
    token_file.write_text("tok-123\n")
    sb = Sandbox(
        sc,
        tmp_path / "state",
        tick_seconds=0,
        alerting=AlertingConfig(webhook_url=receiver.url, webhook_token_file=str(token_file)),
    )
    srv = ServerThread(sb).start()
    try:
        sb.tick(70)  # the bad deploy at 30 s; firing by ~50 s
        wait_for(lambda: receiver.posts, 10, what="the firing webhook")
        body, headers = receiver.posts[0]
        assert headers["Authorization"] == "Bearer tok-123"
        AlertmanagerWebhook.model_validate(body)  # what Sentinel's ingest accepts
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["receiver"] == "sentinel" and body["truncatedAlerts"] == 0
        assert body["groupLabels"] == {"alertname": "CheckoutHighErrorRate", "service": "checkout"}
        assert body["groupKey"] == '{}:{alertname="CheckoutHighErrorRate", service="checkout"}'
        assert body["externalURL"] == f"{srv.url}/prometheus"
        [a] = body["alerts"]
        assert a["labels"] == {
            "alertname": "CheckoutHighErrorRate",
            "namespace": "boutique",
            "service": "checkout",
            "deployment": "checkout",
            "severity": "critical",
        }
        # Alertmanager's own fingerprint of that label set (checked against a real one)
        assert a["fingerprint"] == fingerprint(a["labels"]) == "4e8c57815a286035"
        assert a["endsAt"] == "0001-01-01T00:00:00Z" and a["startsAt"].endswith("Z")
        assert a["annotations"]["summary"].startswith("checkout is failing")
        gen = urlparse(a["generatorURL"])
        assert f"{gen.scheme}://{gen.netloc}{gen.path}" == f"{srv.url}/prometheus/graph"
        expr = parse_qs(gen.query)["g0.expr"][0]
        assert expr == sc.alert["expr"].strip()
        # Sentinel's verification source: the same expression through the query API
        r = httpx.get(f"{srv.url}/prometheus/api/v1/query", params={"query": expr}).json()
        assert (
            r["status"] == "success" and r["data"]["result"][0]["metric"]["service"] == "checkout"
        )
        assert httpx.get(f"{srv.url}/prometheus/api/v1/alerts").json()["data"]["alerts"]

        # roll checkout back through the Kubernetes API; the rule resolves, and says so
        apps = client.AppsV1Api(kube_client(srv.url, sb.admin_token))
        rs = [
            x
            for x in apps.list_namespaced_replica_set(
                "boutique", label_selector="app=checkout"
            ).items
            if x.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
        ][0]
        tmpl = client.ApiClient().sanitize_for_serialization(rs.spec.template)
        tmpl["metadata"]["labels"].pop("pod-template-hash", None)
        apps.patch_namespaced_deployment("checkout", "boutique", {"spec": {"template": tmpl}})
        sb.tick(40)
        wait_for(lambda: len(receiver.posts) >= 2, 10, what="the resolved webhook")
        done, _ = receiver.posts[-1]
        AlertmanagerWebhook.model_validate(done)
        assert done["status"] == "resolved" and done["groupKey"] == body["groupKey"]
        [ra] = done["alerts"]
        assert ra["status"] == "resolved" and ra["fingerprint"] == a["fingerprint"]
        assert ra["endsAt"] > ra["startsAt"] == a["startsAt"]
        assert len(receiver.posts) == 2  # group_interval dedups: nothing new, nothing sent
        st = httpx.get(f"{srv.url}/sandbox/alerting").json()
        assert st["errors"] == [] and len(st["sent"]) == 2
    finally:
        srv.stop()


def test_query_range_and_errors_over_http(tmp_path: Path) -> None:
    sb = Sandbox(scenario_mod.default(), tmp_path, tick_seconds=0)
    srv = ServerThread(sb).start()
    try:
        sb.tick(60)
        now = sb.metrics_now()
        r = httpx.post(
            f"{srv.url}/prometheus/api/v1/query_range",
            data={
                "query": "sum by (service) (rate(http_requests_total[20s]))",
                "start": str(now - 30),
                "end": str(now),
                "step": "5s",
            },
        ).json()
        assert r["status"] == "success" and r["data"]["resultType"] == "matrix"
        front = [s for s in r["data"]["result"] if s["metric"] == {"service": "frontend"}][0]
        assert len(front["values"]) == 7 and 30 < float(front["values"][-1][1]) < 50
        bad = httpx.get(f"{srv.url}/prometheus/api/v1/query", params={"query": "rate(x[1q])"})
        assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
    finally:
        srv.stop()
