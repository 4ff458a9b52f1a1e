"""The runbook planner: matching, label and inventory references, and why nothing matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sentinel.plan.runbooks import RunbookPlanner, load_runbooks
from sentinel.policy.actions import Action, ProposedAction, parse_proposal

ROOT = Path(__file__).resolve().parents[3]
INVENTORY: dict[str, Any] = {
    "pods": [{"namespace": "boutique", "name": "productcatalog-1", "deployment": "productcatalog"}],
    "deployments": [
        {
            "namespace": "boutique",
            "name": "checkout",
            "replicas": 2,
            "current_revision": 3,
            "revisions": [1, 2, 3],
        },
        {
            "namespace": "boutique",
            "name": "frontend",
            "replicas": 3,
            "current_revision": 1,
            "revisions": [1],
        },
        {
            "namespace": "boutique",
            "name": "fresh",
            "replicas": 1,
            "current_revision": 1,
            "revisions": [1],
        },
    ],
    "redis_clusters": [{"name": "redis-cart", "service": "cart", "key_patterns": ["cart:*"]}],
}


@pytest.fixture(scope="module")
def planner() -> RunbookPlanner:
    return RunbookPlanner(load_runbooks([ROOT / "runbooks"]))


def plan(planner: RunbookPlanner, service: str, **labels: str) -> dict[str, Any]:
    incident = {"service": service, "source_alert": {"labels": labels}}
    return planner.plan(incident, None, {"inventory": INVENTORY})


@pytest.mark.parametrize(
    "service,labels,action,params",
    [
        (
            "cart",
            {
                "alertname": "CartHighErrorRate",
                "deployment": "cart",
                "namespace": "boutique",
                "redis_cluster": "redis-cart",
            },
            "flush_redis_cache",
            {"cluster": "redis-cart", "key_pattern": "cart:*"},
        ),
        (
            "checkout",
            {
                "alertname": "CheckoutHighErrorRate",
                "deployment": "checkout",
                "namespace": "boutique",
            },
            "rollback_deployment",
            {"namespace": "boutique", "deployment": "checkout", "to_revision": 2},
        ),
        (
            "productcatalog",
            {"alertname": "PodCpuSaturated", "pod": "productcatalog-1", "namespace": "boutique"},
            "restart_kubernetes_pod",
            {"namespace": "boutique", "pod": "productcatalog-1"},
        ),
        (
            "frontend",
            {
                "alertname": "FrontendSheddingLoad",
                "deployment": "frontend",
                "namespace": "boutique",
            },
            "scale_deployment",
            {"namespace": "boutique", "deployment": "frontend", "replicas": 6},
        ),
        (
            "currency",
            {"alertname": "CurrencyLatencyHigh", "deployment": "currency", "namespace": "boutique"},
            "rollout_restart_deployment",
            {"namespace": "boutique", "deployment": "currency"},
        ),
    ],
)
def test_generic_runbooks(
    planner: RunbookPlanner,
    service: str,
    labels: dict[str, str],
    action: str,
    params: dict[str, Any],
) -> None:
    out = plan(planner, service, **labels)
    assert out["action_id"] == action and out["params"] == params
    assert isinstance(parse_proposal(ProposedAction(action_id=action, params=params)), Action)


def test_no_match_says_why(planner: RunbookPlanner) -> None:
    out = plan(planner, "x", alertname="SomethingNobodyWrote")
    assert out["action_id"] is None and "no runbook matches" in out["reason"]
    # matches, but the deployment has no earlier revision: the reason names it
    out = plan(
        planner, "fresh", alertname="FreshHighErrorRate", deployment="fresh", namespace="boutique"
    )
    assert out["action_id"] is None and "no revision before 1" in out["reason"]
    # a label the runbook needs is missing
    out = plan(planner, "productcatalog", alertname="KubePodCrashLooping", namespace="boutique")
    assert out["action_id"] is None and "no label 'pod'" in out["reason"]


def test_every_shipped_runbook_names_a_catalog_action(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrunbooks:\n- {id: x, description: d, match: {alertname: A}, action: delete_namespace, params: {}}\n"
    )
    with pytest.raises(ValueError, match="not in the catalog"):
        load_runbooks([bad])
