"""Property-based: no input lets a CRITICAL action EXECUTE without a valid, bound approval.

Actions, params, inventories, histories, policies (including invalid ones: lowered
overrides, CRITICAL in run_alone) and approvals are all random. The oracle below is
written from the spec, independently of the engine: which actions are CRITICAL, what the
digest is (SHA-256 of RFC 8785 via the `rfc8785` package) and what makes an approval valid.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from sentinel.policy import (
    CATALOG,
    ActionId,
    ActionRecord,
    ApprovalFact,
    Decision,
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
    PolicyDocument,
    ProposedAction,
    RedisClusterFact,
    evaluate,
)

BASE = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
IDS = [a.value for a in ActionId]
CRITICAL_BY_CATALOG = {"rollback_deployment", "reboot_ec2_instance"}
READ_ONLY = {"query_metrics", "fetch_recent_logs", "list_recent_deployments"}
RISKS = ["SAFE", "WARNING", "CRITICAL"]
ROLES = ["viewer", "responder", "approver", "admin"]
PEOPLE = ["alice", "Alice", "bob", "sentinel"]
ENVS = ["prod", "staging", "dev"]

NAMESPACES = ["shop", "kube-system", "prod"]
PODS = ["api-1", "api-2", "db-0"]
DEPLOYMENTS = ["api", "db"]
CLUSTERS = ["cache", "main"]
PATTERNS = ["session:*", "*", "user:?"]
HOSTS = ["web-01", "db-01"]
GROUPS = ["web", "db"]
COMMANDS = ["restart_nginx", "reboot", "clear_tmp"]
INSTANCES = ["i-0123abcd", "i-89abcdef"]
SERVICES = ["api", "db", "worker"]

PROTECTED = {"sentinel.io/protected": "true"}


# Hypothesis favours the first element of sampled_from and small integers; these say
# "mostly yes" / "mostly no" without depending on that bias.
usually = st.sampled_from([True] * 7 + [False] * 3)
rarely = st.sampled_from([False] * 9 + [True])


def _bits(draw: st.DrawFn, n: int) -> list[bool]:
    return draw(st.lists(usually, min_size=n, max_size=n))


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    """A random sub-world of a small universe, so that params often name real things."""
    pod_keys = [(ns, p) for ns in NAMESPACES for p in PODS]
    dep_keys = [(ns, d) for ns in NAMESPACES for d in DEPLOYMENTS]
    keep = _bits(draw, 32)
    guard = draw(st.lists(rarely, min_size=6, max_size=6))  # protected, now and then
    pods = [
        PodFact(
            namespace=ns,
            name=p,
            deployment=p.split("-")[0],
            labels=PROTECTED if guard[0] and i == 0 else {},
        )
        for i, (ns, p) in enumerate(pod_keys)
        if keep[i]
    ]
    deployments = [
        DeploymentFact(
            namespace=ns,
            name=d,
            replicas=draw(st.integers(0, 6)),
            current_revision=draw(st.sampled_from([4, 1, 2, 3])),
            revisions=[r for r in range(1, 5) if keep[9 + r + i % 2]],
            labels=PROTECTED if guard[1] and i == 0 else {},
            service=d,
        )
        for i, (ns, d) in enumerate(dep_keys)
        if keep[16 + i]
    ]
    return Inventory(
        pods=pods,
        deployments=deployments,
        redis_clusters=[
            RedisClusterFact(
                name=c,
                dbs=[0, 1] if keep[22 + i] else [0],
                key_patterns=PATTERNS[: 1 + i + keep[24]],
                labels=PROTECTED if guard[2] else {},
                service="db",
            )
            for i, c in enumerate(CLUSTERS)
        ],
        hosts=[
            HostFact(name=h, groups=GROUPS[: 1 + keep[25]], service="api", labels={})
            for h in HOSTS
            if keep[26]
        ],
        host_groups=[
            HostGroupFact(name=g, allowed_command_ids=COMMANDS[: 1 + keep[27] + keep[28]])
            for g in GROUPS
        ],
        ec2_instances=[
            Ec2InstanceFact(instance_id=i, tags=PROTECTED if guard[3] else {}, service="worker")
            for i in INSTANCES[: 1 + keep[29]]
        ],
        ecs_services=[
            EcsServiceFact(cluster=c, name=n, tags=PROTECTED if guard[4] else {}, service=n)
            for c in CLUSTERS
            for n in SERVICES
            if keep[30]
        ],
    )


FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "namespace": st.sampled_from(NAMESPACES),
    "pod": st.sampled_from(PODS),
    "deployment": st.sampled_from(DEPLOYMENTS),
    "to_revision": st.sampled_from([2, 3, 1, 4, 5]),
    "replicas": st.integers(0, 8),
    "cluster": st.sampled_from(CLUSTERS),
    "db": st.integers(0, 3),
    "key_pattern": st.sampled_from(PATTERNS),
    "host": st.sampled_from(HOSTS),
    "command_id": st.sampled_from([*COMMANDS, "rm -rf /"]),
    "instance_id": st.sampled_from(INSTANCES),
    "service": st.sampled_from(SERVICES),
    "promql": st.text(min_size=1, max_size=20),
    "timeframe": st.sampled_from(["5m", "1h", "x"]),
    "environment": st.sampled_from(ENVS),
}
JUNK = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats())


@st.composite
def proposals(draw: st.DrawFn) -> ProposedAction:
    action_id = draw(
        st.sampled_from([*IDS, *CRITICAL_BY_CATALOG, "delete_namespace", "RESTART_POD"])
    )
    if action_id in IDS:
        fields = list(CATALOG[ActionId(action_id)].model_fields)
    else:
        fields = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=3, unique=True))
    params: dict[str, Any] = {}
    for name in fields:
        if not draw(rarely):  # usually present, usually well-typed
            params[name] = draw(JUNK if draw(rarely) else FIELD_VALUES[name])
    if action_id == "flush_redis_cache" and draw(usually):
        params.pop(draw(st.sampled_from(["db", "key_pattern"])), None)  # usually exactly one
    if draw(rarely):
        params[draw(st.sampled_from(["force", "extra"]))] = draw(JUNK)
    return ProposedAction(action_id=action_id, params=params, reasoning=draw(st.text(max_size=10)))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    envs = [e for e in ENVS if not draw(rarely)]
    subset = st.lists(st.sampled_from(RISKS), unique=True)
    rule = st.fixed_dictionaries(
        {"effect": st.sampled_from(["allow", "require_approval", "deny"])},
        optional={
            "match": st.fixed_dictionaries(
                {},
                optional={
                    "actions": st.lists(st.sampled_from(IDS), unique=True),
                    "environments": st.lists(st.sampled_from(ENVS), unique=True),
                    "risks": subset,
                },
            )
        },
    )
    rules = draw(st.lists(rule, max_size=2))
    if draw(usually):
        rules.append({"effect": "allow"})
    doc = {
        "version": 1,
        "environments": {
            e: {
                "mode": draw(st.sampled_from(["autonomous", "propose", "shadow"])),
                "run_alone": draw(subset),
            }
            for e in envs
        },
        "risk_overrides": draw(st.dictionaries(st.sampled_from(IDS), st.sampled_from(RISKS))),
        "approver_roles": draw(
            st.one_of(
                st.just({}),
                st.dictionaries(
                    st.sampled_from(RISKS), st.lists(st.sampled_from(ROLES), unique=True)
                ),
            )
        ),
        "denied_namespaces": draw(st.lists(st.sampled_from(["kube-*", "prod"]), unique=True)),
        "protected": {"labels": draw(st.sampled_from([{}, {"sentinel.io/protected": "true"}]))},
        "rate_limits": [
            {"id": f"rl{i}", **lim}
            for i, lim in enumerate(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "per": st.sampled_from(["action", "target", "service"]),
                                "max": st.sampled_from([3, 2, 1, 0]),
                                "window_seconds": st.integers(1, 7200),
                            }
                        ),
                        max_size=2,
                    )
                )
            )
        ],
        "blast_radius": {
            "max_pods": draw(st.integers(1, 3)),
            "max_percent": draw(st.integers(1, 100)),
        },
        "freezes": [
            {
                "id": f"fz{i}",
                "start": BASE + timedelta(hours=draw(st.integers(-3, 1))),
                "end": BASE + timedelta(hours=draw(st.integers(-1, 3))),
                "outcome": draw(st.sampled_from(["require_approval", "deny"])),
                "except_actions": draw(st.lists(st.sampled_from(IDS), max_size=2, unique=True)),
            }
            for i in range(draw(st.integers(0, 2)))
        ],
        "rules": [{"id": f"rule{i}", **r} for i, r in enumerate(rules)],
    }
    return Policy(document=PolicyDocument.model_validate(doc), sha256="0" * 64)


def oracle_digest(proposal: ProposedAction) -> str:
    """SHA-256 of the RFC 8785 form of {action_id, params with every field present}."""
    params = dict(proposal.params)
    if proposal.action_id in IDS:
        for name in CATALOG[ActionId(proposal.action_id)].model_fields:
            params.setdefault(name, None)
    try:
        return hashlib.sha256(
            rfc8785.dumps({"action_id": proposal.action_id, "params": params})
        ).hexdigest()
    except Exception:  # junk params (NaN, huge ints): no approval can match this
        return "<unencodable>"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ProposedAction, Facts, Policy]:
    proposal = draw(proposals())
    policy = draw(policies())
    now = BASE + timedelta(minutes=draw(st.integers(-90, 90)))
    approval = None
    if draw(usually):  # usually offered: the interesting case
        approval = ApprovalFact(
            approval_id="apr",
            approver=draw(st.sampled_from(PEOPLE)),
            approver_roles=draw(
                st.one_of(
                    st.sampled_from([["approver"], ["admin"], ["viewer"], []]),
                    st.lists(st.sampled_from(ROLES), unique=True),
                )
            ),
            requester=draw(st.sampled_from(PEOPLE[::-1])),
            proposal_digest=draw(
                st.sampled_from([oracle_digest(proposal)] * 3 + ["0" * 64, "f" * 64])
            ),
            expires_at=now
            + timedelta(
                seconds=draw(st.one_of(st.sampled_from([1800, 0, -1]), st.integers(-9999, 9999)))
            ),
            used=draw(rarely),
        )
    targets = st.sampled_from(
        ["k8s:shop/pod/api-1", "k8s:shop/deployment/api", "redis:cache/db/0", "ssh:web-01", "x"]
    )
    facts = Facts(
        environment=draw(st.sampled_from([*ENVS, *ENVS, *ENVS, "qa"])),
        now=now,
        inventory=draw(inventories()),
        history=draw(
            st.lists(
                st.builds(
                    ActionRecord,
                    action_id=st.sampled_from(IDS),
                    target=targets,
                    service=st.sampled_from([None, *SERVICES]),
                    at=st.integers(-7200, 60).map(lambda s: now + timedelta(seconds=s)),
                ),
                max_size=4,
            )
        ),
        pods_in_flight=draw(
            st.lists(
                st.builds(
                    PodRef, namespace=st.sampled_from(NAMESPACES), name=st.sampled_from(PODS)
                ),
                max_size=2,
            )
        ),
        approval=approval,
    )
    return proposal, facts, policy


def is_critical(proposal: ProposedAction, policy: Policy) -> bool:
    """CRITICAL by the catalog, or raised to CRITICAL by the policy (read-only tools aside)."""
    if proposal.action_id in READ_ONLY:
        return False
    overrides = {k.value: v.value for k, v in policy.document.risk_overrides.items()}
    return (
        proposal.action_id in CRITICAL_BY_CATALOG or overrides.get(proposal.action_id) == "CRITICAL"
    )


def approval_is_valid(proposal: ProposedAction, facts: Facts, policy: Policy) -> bool:
    """Valid for a CRITICAL action, by the spec."""
    a = facts.approval
    if a is None:
        return False
    configured = {k.value: v for k, v in policy.document.approver_roles.items()}
    allowed = configured.get("CRITICAL", ["approver", "admin"])
    return (
        a.proposal_digest == oracle_digest(proposal)
        and not a.used
        and a.expires_at > facts.now
        and a.approver.strip().casefold() != a.requester.strip().casefold()
        and bool(set(a.approver_roles) & set(allowed))
    )


def decide(scenario: tuple[ProposedAction, Facts, Policy]) -> Decision:
    return evaluate(*scenario)


# Generating a scenario takes tens of ms here; raise the count for a longer soak run.
EXAMPLES = int(os.environ.get("SENTINEL_POLICY_FUZZ_EXAMPLES", "400"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenarios())
def test_critical_never_executes_without_a_valid_bound_approval(
    scenario: tuple[ProposedAction, Facts, Policy],
) -> None:
    proposal, facts, policy = scenario
    decision = decide(scenario)
    event(f"{decision.outcome.value} {decision.risk.value}")
    if is_critical(proposal, policy):
        assert decision.risk == "CRITICAL"
        if decision.outcome == "EXECUTE":
            assert approval_is_valid(proposal, facts, policy)
            assert decision.rule_id == "approval.valid"
            assert decision.approval_id == "apr"
            assert decision.proposal_digest == oracle_digest(proposal)
    _general_invariants(proposal, facts, policy, decision)


def _general_invariants(
    proposal: ProposedAction, facts: Facts, policy: Policy, decision: Decision
) -> None:
    assert decision == decide((proposal, facts, policy))  # deterministic
    # The engine builds its Decision without validating it again: it must be exactly
    # what validation gives, field for field, and survive a round trip.
    validated = Decision(**{name: getattr(decision, name) for name in Decision.model_fields})
    assert decision == validated
    assert decision.__dict__ == validated.__dict__
    assert decision.model_fields_set == validated.model_fields_set
    assert decision.model_dump_json() == validated.model_dump_json()
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    assert decision.policy_hash == "0" * 64
    if proposal.action_id not in IDS:
        assert (decision.outcome, decision.rule_id) == ("DENY", "catalog.unknown_action")
    if decision.outcome == "EXECUTE" and proposal.action_id not in READ_ONLY:
        env = policy.document.environments.get(facts.environment)
        assert env is not None
        assert env.mode == "autonomous" or decision.approval_id is not None
        assert decision.matched_rule is not None
        rule = next(r for r in policy.document.rules if r.id == decision.matched_rule)
        assert rule.effect != "deny"
    if decision.outcome == "SHADOW":
        assert policy.document.environments[facts.environment].mode == "shadow"
    if decision.approval_id is not None:
        assert decision.outcome == "EXECUTE"
        assert facts.approval is not None and not facts.approval.used


@pytest.mark.slow
def test_the_generator_reaches_an_approved_critical_execution() -> None:
    """Guard against a vacuous property: approved CRITICAL executions do get generated."""
    found = find(
        scenarios(),
        lambda s: is_critical(s[0], s[2]) and decide(s).outcome == "EXECUTE",
        settings=settings(max_examples=3000, deadline=None, database=None),
    )
    assert approval_is_valid(*found)


# -- focused: the approval checks, on proposals that pass every other guard ----------------

CRITICAL_PROPOSALS = [
    ("rollback", {"to_revision": 6}, None),
    ("rollback", {"to_revision": 5}, None),
    ("reboot_ec2", {}, None),
    ("rollout_restart", {}, "rollout_restart_deployment"),  # raised to CRITICAL by policy
    ("flush_keys", {}, "flush_redis_cache"),  # SAFE floor, raised to CRITICAL by policy
]
FOCUS_PEOPLE = ["alice", "Alice", " alice", "bob", "sentinel"]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_critical_executes_exactly_when_the_approval_is_valid(
    kit: Any, data: st.DataObject
) -> None:
    variant, params, raised = data.draw(st.sampled_from(CRITICAL_PROPOSALS))
    proposal = kit.proposal(variant, **params)
    other = kit.proposal("rollback", to_revision=5 if params.get("to_revision") == 6 else 6)
    doc = kit.base_policy_dict()
    env = data.draw(st.sampled_from(["prod", "staging", "dev"]))
    doc["environments"][env]["mode"] = data.draw(st.sampled_from(["autonomous", "propose"]))
    doc["environments"][env]["run_alone"] = data.draw(st.lists(st.sampled_from(RISKS), unique=True))
    if raised:
        doc["risk_overrides"] = {raised: "CRITICAL"}
    if data.draw(st.booleans()):
        doc["approver_roles"] = data.draw(
            st.dictionaries(st.sampled_from(RISKS), st.lists(st.sampled_from(ROLES), unique=True))
        )
    policy = Policy(document=PolicyDocument.model_validate(doc), sha256="0" * 64)
    approval = ApprovalFact(
        approval_id="apr",
        approver=data.draw(st.sampled_from(FOCUS_PEOPLE)),
        approver_roles=data.draw(st.lists(st.sampled_from(ROLES), unique=True)),
        requester=data.draw(st.sampled_from(FOCUS_PEOPLE[::-1])),
        proposal_digest=data.draw(
            st.one_of(
                st.sampled_from([oracle_digest(proposal), oracle_digest(other), "0" * 64]),
                st.text(max_size=70),
            )
        ),
        expires_at=kit.now
        + timedelta(
            seconds=data.draw(st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-3600, 3600)))
        ),
        used=data.draw(st.booleans()),
    )
    facts = kit.facts(env, approval=approval)
    decision = evaluate(proposal, facts, policy)
    assert decision.risk == "CRITICAL"
    valid = approval_is_valid(proposal, facts, policy)
    event("valid" if valid else "invalid")
    if valid:
        assert (decision.outcome, decision.rule_id, decision.approval_id) == (
            "EXECUTE",
            "approval.valid",
            "apr",
        )
    else:
        assert decision.outcome == "REQUIRE_APPROVAL"
        assert decision.rule_id.startswith("approval.")
        assert decision.approval_id is None
