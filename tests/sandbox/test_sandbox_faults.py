"""Faults move the right metrics on the right service, propagate to callers, and heal."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.sandbox import Sandbox
from tests.sandbox.conftest import SCENARIOS, StartFn, kube_client

NS = "boutique"


def svc(sb: Sandbox, name: str) -> dict[str, Any]:
    return dict(sb.state()["services"][name])


def inject(url: str, **fault: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/sandbox/faults", json=fault)
    assert r.status_code == 201, r.text
    return dict(r.json())


def samples(
    url: str, path: str = "/metrics"
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}{path}").text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(
    smp: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in smp.items() if n == name and want <= ls)


def loki(url: str, query: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(
        f"{url}/loki/api/v1/query_range", params={"query": query, "limit": 1000, **params}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_metrics_exposition(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    sb.tick(5)
    smp = samples(url)
    assert total(smp, "http_requests_total", service="frontend", code="200") > 100
    assert total(smp, "http_request_duration_seconds_count", service="checkout") > 0
    assert total(smp, "container_cpu_usage_seconds_total", service="cart") > 0
    assert total(smp, "container_memory_working_set_bytes", service="cart") > 50 * 2**20
    assert total(smp, "kube_deployment_spec_replicas", deployment="cart") == 2
    assert ("kube_pod_container_status_restarts_total") in {n for n, _ in smp}
    one = samples(url, "/metrics/cart")
    assert {dict(ls)["service"] for _, ls in one} == {"cart"}
    assert httpx.get(f"{url}/metrics/nope").status_code == 404


def test_bad_deploy_errors_propagate_and_are_logged(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    rec = inject(
        url,
        kind="bad_deploy",
        target="checkout",
        size=0.5,
        version="v9.9.9",
        message="checkout: deploy v9.9.9",
    )
    assert rec["details"]["revision"] == 2
    sb.tick(10)
    assert svc(sb, "checkout")["error_ratio"] > 0.4
    assert 0.01 < svc(sb, "frontend")["error_ratio"] < svc(sb, "checkout")["error_ratio"]
    assert svc(sb, "payment")["error_ratio"] == 0
    smp = samples(url)
    assert total(smp, "http_requests_total", service="checkout", code="500") > 0
    assert total(smp, "http_requests_total", service="payment", code="500") == 0
    res = loki(url, '{service="checkout"} |= "level=error"')
    assert res["status"] == "success" and res["data"]["resultType"] == "streams"
    lines = [v[1] for s in res["data"]["result"] for v in s["values"]]
    assert lines and all("level=error" in ln for ln in lines)
    assert any("nil pointer" in ln for ln in lines)
    assert all(s["stream"]["service"] == "checkout" for s in res["data"]["result"])
    assert all(
        v[0].isdigit() and len(v[0]) >= 19 for s in res["data"]["result"] for v in s["values"]
    )
    assert loki(url, '{service="payment"} |= "level=error"')["data"]["result"] == []
    # the deploy is a real git commit and a deploy-history record
    log = subprocess.run(
        ["git", "-C", str(sb.state_dir / "repo"), "log", "--format=%an|%s"],
        capture_output=True,
        text=True,
    )
    if log.returncode == 0:
        assert log.stdout.splitlines()[0].endswith("|checkout: deploy v9.9.9")
    commits = httpx.get(f"{url}/sandbox/commits").json()["commits"]
    assert commits[0]["message"] == "checkout: deploy v9.9.9"
    assert commits[0]["sha"] == rec["details"]["commit"]
    assert len(commits) == 2
    dep = httpx.get(f"{url}/sandbox/deployments").json()["deployments"][0]
    assert (dep["service"], dep["revision"], dep["version"], dep["change"]) == (
        "checkout",
        2,
        "v9.9.9",
        "image",
    )


def test_memory_leak_ooms_and_pod_restart_clears_it_for_a_while(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    inject(url, kind="memory_leak", target="recommendation", size=120)
    sb.tick(40)
    pods = svc(sb, "recommendation")["pods"]
    assert all(p["memory_mb"] > 180 for p in pods)
    sb.tick(30)
    pods = svc(sb, "recommendation")["pods"]
    assert all(p["restarts"] >= 1 for p in pods)
    core = client.CoreV1Api(admin)
    events = core.list_namespaced_event(NS, field_selector="reason=BackOff").items
    assert events and events[0].type == "Warning"
    pod = core.read_namespaced_pod(pods[0]["name"], NS)
    assert pod.status.container_statuses[0].last_state.terminated.reason == "OOMKilled"
    assert pod.status.container_statuses[0].restart_count >= 1
    assert loki(url, '{service="recommendation"} |= "OOMKilled"')["data"]["result"]
    sb.tick(20)
    victim = max(svc(sb, "recommendation")["pods"], key=lambda p: p["memory_mb"])
    core.delete_namespaced_pod(victim["name"], NS)
    sb.tick(2)
    fresh = [p for p in svc(sb, "recommendation")["pods"] if p["name"] != victim["name"]]
    new = [p for p in fresh if p["restarts"] == 0 and p["memory_mb"] < 140]
    assert new, fresh
    sb.tick(30)
    grown = next(p for p in svc(sb, "recommendation")["pods"] if p["name"] == new[0]["name"])
    assert grown["memory_mb"] > new[0]["memory_mb"] + 30  # the leak is back


def test_cpu_hog_in_one_pod_and_restart_heals(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    rec = inject(url, kind="cpu_hog", target="productcatalog", size=1.0, pod=0)
    hog = rec["details"]["pod"]
    sb.tick(5)
    pods = {p["name"]: p for p in svc(sb, "productcatalog")["pods"]}
    assert pods[hog]["cpu_cores"] > 0.45
    assert all(p["cpu_cores"] < 0.2 for n, p in pods.items() if n != hog)
    assert svc(sb, "productcatalog")["error_ratio"] > 0.1
    assert svc(sb, "frontend")["error_ratio"] > 0.1  # two catalog calls per page
    assert svc(sb, "recommendation")["error_ratio"] > 0.05
    assert svc(sb, "currency")["error_ratio"] == 0
    client.CoreV1Api(admin).delete_namespaced_pod(hog, NS)
    sb.tick(3)
    assert svc(sb, "productcatalog")["error_ratio"] < 0.01
    assert svc(sb, "frontend")["error_ratio"] < 0.01
    assert sb.state()["faults"][0]["status"] == "healed"


def test_slow_dependency_raises_latency_upstream(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    base_front = svc(sb, "frontend")["latency_ms"]
    rec = inject(
        url, kind="slow_dependency", target="currency", size=700, dependency="rates.example.com"
    )
    sb.tick(5)
    assert svc(sb, "currency")["latency_ms"] > 600
    assert svc(sb, "frontend")["latency_ms"] > base_front + 500
    assert svc(sb, "checkout")["latency_ms"] > 1000
    assert svc(sb, "cart")["latency_ms"] < 20
    assert loki(url, '{service="currency"} |= "rates.example.com"')["data"]["result"]
    assert loki(url, '{service="frontend"} | logfmt | callee="currency"')["data"]["result"]
    assert httpx.delete(f"{url}/sandbox/faults/{rec['id']}").status_code == 200
    sb.tick(2)
    assert svc(sb, "currency")["latency_ms"] < 10


def test_bad_config_is_a_config_only_deploy(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    inject(url, kind="bad_config", target="payment", size=0.5, config={"GATEWAY_TIMEOUT_MS": "15"})
    sb.tick(5)
    assert svc(sb, "payment")["error_ratio"] > 0.4
    assert svc(sb, "checkout")["error_ratio"] > 0.4
    apps = client.AppsV1Api(admin)
    d = apps.read_namespaced_deployment("payment", NS)
    env = {e.name: e.value for e in d.spec.template.spec.containers[0].env}
    assert env["GATEWAY_TIMEOUT_MS"] == "15"
    assert d.spec.template.spec.containers[0].image.endswith(":v1.3.0")
    commit = httpx.get(f"{url}/sandbox/commits").json()["commits"][0]
    assert "GATEWAY_TIMEOUT_MS 800 -> 15" in commit["message"]
    # A rollout restart does not help: the config is in the template.
    apps.patch_namespaced_deployment(
        "payment",
        NS,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "x"}}
                }
            }
        },
    )
    sb.tick(3)
    assert svc(sb, "payment")["error_ratio"] > 0.4


def test_traffic_spike_and_scaling(start_sandbox: StartFn) -> None:
    sb, url = start_sandbox("traffic-spike")
    sb.tick(40)
    assert svc(sb, "frontend")["codes"]["503"] > 0.1
    assert svc(sb, "frontend")["cpu_utilisation"] > 0.95
    client.AppsV1Api(kube_client(url, sb.admin_token)).patch_namespaced_deployment_scale(
        "frontend", NS, {"spec": {"replicas": 6}}
    )
    sb.tick(3)
    assert svc(sb, "frontend")["codes"]["503"] == 0
    assert svc(sb, "frontend")["cpu_utilisation"] < 0.6


def test_cache_poison_in_memory_store(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    rec = inject(url, kind="cache_poison", target="cart", size=200)
    sb.tick(3)
    assert svc(sb, "cart")["error_ratio"] > 0.5
    assert svc(sb, "redis-cart")["error_ratio"] == 0
    assert loki(url, '{service="cart"} |~ "failed to decode"')["data"]["result"]
    assert sb.state()["cache"]["poisoned_keys"] == 200
    assert httpx.delete(f"{url}/sandbox/faults/{rec['id']}").status_code == 200
    sb.tick(2)
    assert svc(sb, "cart")["error_ratio"] < 0.01


def test_loki_query_errors_and_directions(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    sb.tick(10)
    r = httpx.get(f"{url}/loki/api/v1/query_range", params={"query": "cart"})
    assert r.status_code == 400
    r = httpx.get(f"{url}/loki/api/v1/query_range", params={"query": '{service="cart"} | json'})
    assert r.status_code == 400
    fwd = loki(url, '{service=~"cart|frontend"}', direction="forward", limit=5)
    vals = [int(v[0]) for s in fwd["data"]["result"] for v in s["values"]]
    assert len(vals) == 5
    bwd = loki(url, '{service=~"cart|frontend", pod!=""}', limit=5)
    assert min(int(v[0]) for s in bwd["data"]["result"] for v in s["values"]) >= max(vals)
    assert httpx.get(f"{url}/loki/api/v1/label/service/values").json()["data"]


SYMPTOMS = {
    "bad-deploy-errors": lambda s: s["checkout"]["error_ratio"] > 0.1,
    "memory-leak": lambda s: max(p["memory_mb"] for p in s["recommendation"]["pods"]) > 0.8 * 256,
    "cpu-hog": lambda s: max(p["cpu_cores"] for p in s["productcatalog"]["pods"]) > 0.45,
    "cache-poisoning": lambda s: s["cart"]["error_ratio"] > 0.1,
    "slow-dependency": lambda s: s["currency"]["latency_ms"] > 500 / 2.8,
    "bad-config": lambda s: s["payment"]["error_ratio"] > 0.1,
    "traffic-spike": lambda s: s["frontend"]["codes"]["503"] > 0.05,
}


def _remediate(sb: Sandbox, url: str, expected: dict[str, Any], alert_pod: str | None) -> None:
    api = kube_client(url, sb.admin_token)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    rem = expected["remediation"]
    p = dict(rem["params"])
    action = rem["action"]
    if action == "restart_kubernetes_pod":
        pod = alert_pod if p["pod"] == "$labels.pod" else p["pod"]
        core.delete_namespaced_pod(pod, p["namespace"])
    elif action == "rollout_restart_deployment":
        apps.patch_namespaced_deployment(
            p["deployment"],
            p["namespace"],
            {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
                    }
                }
            },
        )
    elif action == "rollback_deployment":
        rss = apps.list_namespaced_replica_set(
            p["namespace"], label_selector=f"app={p['deployment']}"
        ).items
        rs = next(
            r
            for r in rss
            if r.metadata.annotations["deployment.kubernetes.io/revision"] == str(p["to_revision"])
        )
        tmpl = api.sanitize_for_serialization(rs.spec.template)
        tmpl["metadata"]["labels"].pop("pod-template-hash")
        apps.patch_namespaced_deployment(
            p["deployment"], p["namespace"], {"spec": {"template": {"$patch": "replace", **tmpl}}}
        )
    elif action == "scale_deployment":
        apps.patch_namespaced_deployment_scale(
            p["deployment"], p["namespace"], {"spec": {"replicas": p["replicas"]}}
        )
    elif action == "flush_redis_cache":
        assert p["key_pattern"].endswith("*")
        sb.cache.clear(p["key_pattern"][:-1])
    else:
        raise AssertionError(action)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: Path(p).stem)
def test_public_scenario_outcome_holds(path: Path, start_sandbox: StartFn) -> None:
    """Each public scenario: the symptom appears on the root cause; its remediation heals it, or not."""
    sc = scenario_mod.load(path)
    assert sc.expected and sc.alert, "a public scenario states its expected outcome and alert"
    labels = sc.alert["labels"]
    assert (
        labels["service"] == sc.expected["root_cause_service"]
        and labels["namespace"] == sc.namespace
    )
    assert "deployment" in labels or "pod" in sc.alert["expr"]
    sb, url = start_sandbox(sc)
    sb.tick(int(sc.faults[0].start) - 1)
    assert not SYMPTOMS[sc.name](sb.state()["services"])
    sb.tick(50)
    assert SYMPTOMS[sc.name](sb.state()["services"])
    hog = next((f["details"].get("pod") for f in sb.state()["faults"]), None)
    _remediate(sb, url, sc.expected, hog)
    sb.tick(5)
    healed = not SYMPTOMS[sc.name](sb.state()["services"])
    assert healed == bool(sc.expected["fix_helps"]), sb.state()["services"][
        sc.expected["root_cause_service"]
    ]
    assert (sc.expected["outcome"] == "escalated") == (not sc.expected["fix_helps"])


def test_deterministic_given_seed(start_sandbox: StartFn) -> None:
    a, ua = start_sandbox("cpu-hog")
    b, ub = start_sandbox("cpu-hog")
    a.tick(35)
    b.tick(35)
    sa, sb_ = a.state(), b.state()
    assert sa["services"] == sb_["services"]
    assert httpx.get(f"{ua}/metrics").text == httpx.get(f"{ub}/metrics").text


def test_reset_restores_boot_state(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    inject(url, kind="bad_deploy", target="cart", size=0.9)
    sb.tick(2)
    assert httpx.post(f"{url}/sandbox/reset").status_code == 200
    sb.tick(2)
    st = sb.state()
    assert st["faults"] == [] and st["services"]["cart"]["revision"] == 1
    assert st["services"]["cart"]["error_ratio"] == 0
    assert len(httpx.get(f"{url}/sandbox/commits").json()["commits"]) == 1
    # the same tokens still work after a reset
    assert client.CoreV1Api(kube_client(url, sb.admin_token)).list_namespaced_pod(NS).items


def test_bad_fault_requests_are_400(sandbox: tuple[Sandbox, str]) -> None:
    _, url = sandbox
    assert (
        httpx.post(f"{url}/sandbox/faults", json={"kind": "meteor", "target": "cart"}).status_code
        == 400
    )
    assert (
        httpx.post(f"{url}/sandbox/faults", json={"kind": "cpu_hog", "target": "nope"}).status_code
        == 400
    )
    assert (
        httpx.post(
            f"{url}/sandbox/faults", json={"kind": "cache_poison", "target": "email"}
        ).status_code
        == 400
    )
    assert httpx.delete(f"{url}/sandbox/faults/99").status_code == 404
