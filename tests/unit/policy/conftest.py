"""Builders shared by the policy tests: a small world, a policy from a dict, proposals."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from sentinel.policy import (
    ActionRecord,
    ApprovalFact,
    DeploymentFact,
    Ec2InstanceFact,
    EcsServiceFact,
    Facts,
    HostFact,
    HostGroupFact,
    Inventory,
    PodFact,
    PodRef,
    Policy,
    ProposedAction,
    RedisClusterFact,
    load_policy,
    proposal_digest,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

INVENTORY = Inventory(
    pods=[
        PodFact(
            namespace="shop",
            name="checkout-7d9f",
            deployment="checkout",
            labels={"app": "checkout"},
        ),
        PodFact(namespace="shop", name="checkout-8a1b", deployment="checkout"),
        PodFact(namespace="shop", name="cart-1", deployment="cart"),
        PodFact(namespace="shop", name="ledger-0", deployment="ledger"),
        PodFact(namespace="shop", name="vault-0", labels={"sentinel.io/protected": "true"}),
        PodFact(namespace="kube-system", name="coredns-1", deployment="coredns"),
        PodFact(namespace="shop", name="lonely-1", service="lonely"),
    ],
    deployments=[
        DeploymentFact(
            namespace="shop",
            name="checkout",
            replicas=4,
            current_revision=7,
            revisions=[5, 6, 7],
            labels={"tier": "web"},
            service="checkout",
        ),
        DeploymentFact(
            namespace="shop",
            name="cart",
            replicas=2,
            current_revision=3,
            revisions=[2, 3],
            service="cart",
        ),
        DeploymentFact(
            namespace="shop",
            name="ledger",
            replicas=3,
            current_revision=2,
            revisions=[1, 2],
            labels={"sentinel.io/protected": "true"},
            service="ledger",
        ),
        DeploymentFact(
            namespace="kube-system",
            name="coredns",
            replicas=2,
            current_revision=1,
            revisions=[1],
            service="dns",
        ),
    ],
    redis_clusters=[
        RedisClusterFact(
            name="cache-main",
            dbs=[0, 1],
            key_patterns=["session:*", "*"],
            service="checkout",
        ),
        RedisClusterFact(name="cache-vault", dbs=[0], labels={"sentinel.io/protected": "true"}),
    ],
    hosts=[
        HostFact(name="web-01", groups=["web"], service="checkout"),
        HostFact(name="bastion", groups=[]),
    ],
    host_groups=[HostGroupFact(name="web", allowed_command_ids=["restart_nginx", "clear_tmp"])],
    ec2_instances=[
        Ec2InstanceFact(instance_id="i-0123456789abcdef0", name="batch-1", service="batch"),
        Ec2InstanceFact(instance_id="i-deadbeef", tags={"sentinel.io/protected": "true"}),
    ],
    ecs_services=[EcsServiceFact(cluster="main", name="worker", service="worker")],
)

# One valid proposal per mutating catalog variant, its expected risk floor and target.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "restart_pod": (
        "restart_kubernetes_pod",
        {"namespace": "shop", "pod": "checkout-7d9f"},
    ),
    "rollout_restart": (
        "rollout_restart_deployment",
        {"namespace": "shop", "deployment": "checkout"},
    ),
    "rollback": (
        "rollback_deployment",
        {"namespace": "shop", "deployment": "checkout", "to_revision": 6},
    ),
    "scale_up": (
        "scale_deployment",
        {"namespace": "shop", "deployment": "checkout", "replicas": 6},
    ),
    "flush_keys": (
        "flush_redis_cache",
        {"cluster": "cache-main", "key_pattern": "session:*"},
    ),
    "flush_db": (
        "flush_redis_cache",
        {"cluster": "cache-main", "db": 1},
    ),
    "ssh": (
        "run_ssh_command",
        {"host": "web-01", "command_id": "restart_nginx"},
    ),
    "reboot_ec2": (
        "reboot_ec2_instance",
        {"instance_id": "i-0123456789abcdef0"},
    ),
    "ecs_redeploy": (
        "ecs_force_new_deployment",
        {"cluster": "main", "service": "worker"},
    ),
}

READ_ONLY: dict[str, tuple[str, dict[str, Any]]] = {
    "query_metrics": ("query_metrics", {"promql": 'rate(http_requests_total{code="500"}[5m])'}),
    "fetch_logs": ("fetch_recent_logs", {"service": "checkout", "timeframe": "15m"}),
    "list_deploys": ("list_recent_deployments", {"environment": "prod"}),
}


def base_policy_dict() -> dict[str, Any]:
    """A permissive policy: every env autonomous, one catch-all allow rule, no limits."""
    return {
        "version": 1,
        "environments": {
            "prod": {"mode": "autonomous", "run_alone": ["SAFE"]},
            "staging": {"mode": "autonomous", "run_alone": ["SAFE", "WARNING"]},
            "dev": {"mode": "autonomous", "run_alone": ["WARNING"]},
        },
        "denied_namespaces": ["kube-*"],
        "protected": {"labels": {"sentinel.io/protected": "true"}},
        "blast_radius": {"max_pods": 1, "max_percent": 25},
        "rules": [{"id": "allow-all", "effect": "allow"}],
    }


def policy_from(doc: dict[str, Any]) -> Policy:
    """Dump a dict to YAML and load it the way a file is loaded."""
    return load_policy(yaml.safe_dump(doc, sort_keys=False))


def proposal(variant: str, **params: Any) -> ProposedAction:
    """The proposal of a named variant, with params overridden."""
    if variant in VARIANTS:
        action_id, base = VARIANTS[variant]
    else:
        action_id, base = READ_ONLY[variant]
    return ProposedAction(action_id=action_id, params={**base, **params}, reasoning="because")


def facts(
    environment: str = "prod",
    *,
    now: datetime = NOW,
    inventory: Inventory = INVENTORY,
    history: list[ActionRecord] | None = None,
    pods_in_flight: list[PodRef] | None = None,
    approval: ApprovalFact | None = None,
) -> Facts:
    """Facts for one decision in the shared world."""
    return Facts(
        environment=environment,
        now=now,
        inventory=inventory,
        history=history or [],
        pods_in_flight=pods_in_flight or [],
        approval=approval,
    )


def approval_for(
    prop: ProposedAction,
    *,
    approver: str = "alice",
    roles: tuple[str, ...] = ("approver",),
    requester: str = "sentinel",
    expires_in: timedelta = timedelta(minutes=30),
    used: bool = False,
    digest: str | None = None,
) -> ApprovalFact:
    """An approval bound to `prop` (valid unless told otherwise)."""
    return ApprovalFact(
        approval_id="apr-1",
        approver=approver,
        approver_roles=list(roles),
        requester=requester,
        proposal_digest=proposal_digest(prop) if digest is None else digest,
        expires_at=NOW + expires_in,
        used=used,
    )


@dataclass(frozen=True)
class Kit:
    """The builders, handed to tests as one fixture."""

    now: datetime
    inventory: Inventory
    base_policy_dict: Callable[[], dict[str, Any]]
    policy_from: Callable[[dict[str, Any]], Policy]
    proposal: Callable[..., ProposedAction]
    facts: Callable[..., Facts]
    approval_for: Callable[..., ApprovalFact]

    def policy(self, **changes: Any) -> Policy:
        """The base policy with top-level keys replaced."""
        doc = copy.deepcopy(self.base_policy_dict())
        doc.update(changes)
        return self.policy_from(doc)


@pytest.fixture(scope="session")
def kit() -> Kit:
    """Builders for policy tests."""
    return Kit(
        now=NOW,
        inventory=INVENTORY,
        base_policy_dict=base_policy_dict,
        policy_from=policy_from,
        proposal=proposal,
        facts=facts,
        approval_for=approval_for,
    )
