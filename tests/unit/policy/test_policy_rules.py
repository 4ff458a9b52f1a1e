"""The policy file: loading, hashing and `policy check` messages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sentinel.policy import (
    Outcome,
    PolicyError,
    ProposedAction,
    RunMode,
    check_policy_text,
    evaluate,
    load_policy,
    load_policy_file,
)
from sentinel.policy.facts import DeploymentFact, Facts, Inventory, PodFact

DEFAULT = Path(__file__).resolve().parents[3] / "policies" / "default.yaml"

MINIMAL = """\
version: 1
environments:
  prod: {mode: autonomous}
rules:
  - {id: allow-all, effect: allow}
"""


def test_shipped_policy_is_valid() -> None:
    text = DEFAULT.read_bytes()
    assert check_policy_text(text) == []
    policy = load_policy_file(DEFAULT)
    assert policy.sha256 == hashlib.sha256(text).hexdigest()
    doc = policy.document
    assert {name: env.mode for name, env in doc.environments.items()} == {
        "prod": RunMode.AUTONOMOUS,
        "staging": RunMode.AUTONOMOUS,
        "dev": RunMode.AUTONOMOUS,
    }
    assert doc.environments["prod"].run_alone == ["SAFE"]
    assert doc.environments["staging"].run_alone == ["SAFE", "WARNING"]
    assert doc.protected.labels == {"sentinel.io/protected": "true"}
    assert (doc.blast_radius.max_pods, doc.blast_radius.max_percent) == (1, 25)
    assert "kube-*" in doc.denied_namespaces


def test_shipped_policy_decisions() -> None:
    policy = load_policy_file(DEFAULT)
    from datetime import UTC, datetime

    inventory = Inventory(
        pods=[
            PodFact(namespace="shop", name="api-1", deployment="api"),
            PodFact(namespace="kube-system", name="coredns-1"),
        ],
        deployments=[
            DeploymentFact(
                namespace="shop", name="api", replicas=4, current_revision=2, revisions=[1, 2]
            )
        ],
    )

    def decide(env: str, action_id: str, **params: object) -> tuple[str, str]:
        facts = Facts(environment=env, now=datetime(2025, 6, 1, tzinfo=UTC), inventory=inventory)
        d = evaluate(ProposedAction(action_id=action_id, params=params), facts, policy)
        return d.outcome.value, d.rule_id

    pod = {"namespace": "shop", "pod": "api-1"}
    dep = {"namespace": "shop", "deployment": "api"}
    assert decide("prod", "restart_kubernetes_pod", **pod) == ("EXECUTE", "catalog-remediations")
    assert decide("prod", "rollout_restart_deployment", **dep) == (
        "REQUIRE_APPROVAL",
        "matrix.needs_approval",
    )
    assert decide("staging", "rollout_restart_deployment", **dep) == (
        "EXECUTE",
        "catalog-remediations",
    )
    assert decide("staging", "rollback_deployment", **dep, to_revision=1) == (
        "REQUIRE_APPROVAL",
        "matrix.critical_needs_approval",
    )
    assert decide("prod", "restart_kubernetes_pod", namespace="kube-system", pod="coredns-1") == (
        "DENY",
        "guard.denied_namespace",
    )


def test_policy_hash_is_over_the_exact_bytes() -> None:
    a = load_policy(MINIMAL)
    b = load_policy(MINIMAL.encode())
    c = load_policy(MINIMAL + "# a comment\n")
    assert a.sha256 == b.sha256 == hashlib.sha256(MINIMAL.encode()).hexdigest()
    assert c.sha256 != a.sha256
    assert c.document == a.document


def test_policy_change_changes_the_decision_hash() -> None:
    facts = Facts(environment="prod", now="2025-06-01T00:00:00Z")  # type: ignore[arg-type]
    prop = ProposedAction(action_id="query_metrics", params={"promql": "up"})
    a = evaluate(prop, facts, load_policy(MINIMAL))
    b = evaluate(prop, facts, load_policy(MINIMAL + "\n"))
    assert a.outcome == b.outcome == Outcome.EXECUTE
    assert a.policy_hash != b.policy_hash


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        (
            MINIMAL + "risk_overrides: {rollback_deployment: WARNING}\n",
            [
                "risk_overrides.rollback_deployment: WARNING is below the catalog floor CRITICAL; "
                "an override may only raise an action's risk (evaluation uses CRITICAL)"
            ],
        ),
        (
            MINIMAL.replace(
                "{mode: autonomous}", "{mode: autonomous, run_alone: [SAFE, CRITICAL]}"
            ),
            [
                "environments.prod.run_alone: CRITICAL never runs alone; it always needs a human "
                "approval (ignored at evaluation)"
            ],
        ),
        (
            MINIMAL + "risk_overrides: {delete_namespace: SAFE}\n",
            [
                "risk_overrides.delete_namespace.[key]: Input should be 'restart_kubernetes_pod', "
                "'rollout_restart_deployment', 'rollback_deployment', 'scale_deployment', "
                "'flush_redis_cache', 'run_ssh_command', 'reboot_ec2_instance', "
                "'ecs_force_new_deployment', 'query_metrics', 'fetch_recent_logs' or "
                "'list_recent_deployments'"
            ],
        ),
        (MINIMAL + "colour: blue\n", ["colour: Extra inputs are not permitted"]),
        (MINIMAL.replace("version: 1", "version: 2"), ["version: Input should be 1"]),
        (
            MINIMAL.replace("autonomous", "yolo"),
            ["environments.prod.mode: Input should be 'shadow', 'propose' or 'autonomous'"],
        ),
        (
            MINIMAL + "approver_roles: {CRITICAL: []}\n",
            ["approver_roles.CRITICAL: empty, so nobody could approve"],
        ),
        (
            MINIMAL
            + "freezes:\n  - {id: f1, start: 2025-01-02T00:00:00Z, end: 2025-01-01T00:00:00Z,"
            " environments: [qa]}\n",
            [
                "freezes[0] 'f1': end must be after start",
                "freezes[0] 'f1': unknown environment 'qa'",
            ],
        ),
        (
            MINIMAL
            + "freezes:\n  - {id: f1, start: 2025-01-01T00:00:00, end: 2025-01-02T00:00:00Z}\n",
            ["freezes.0.start: Input should have timezone info"],
        ),
        (
            MINIMAL + "  - {id: after, effect: deny}\n",
            ["rules[1] 'after': unreachable, rule 'allow-all' above matches everything"],
        ),
        (
            MINIMAL.replace(
                "rules:\n",
                "rules:\n  - {id: allow-all, effect: deny, match: {environments: [qa]}}\n",
            ),
            [
                "rules[1] 'allow-all': duplicate id",
                "rules[0] 'allow-all': unknown environment 'qa'",
            ],
        ),
        (
            MINIMAL.replace("id: allow-all", "id: approval.valid"),
            [
                "rules[0] 'approval.valid': ids starting with approval. are reserved for the "
                "engine's built-in checks"
            ],
        ),
        (
            MINIMAL + "environments: {}\n",
            ["YAML line 6, column 1: found duplicate key 'environments'"],
        ),
        (
            "version: 1\nenvironments: [\n",
            ["YAML line 3, column 1: expected the node content, but found '<stream end>'"],
        ),
        ("- just\n- a list\n", ["the policy must be a YAML mapping"]),
        ("", ["the policy must be a YAML mapping"]),
    ],
)
def test_check_reports_problems(text: str, errors: list[str]) -> None:
    assert check_policy_text(text) == errors


def test_load_refuses_what_it_cannot_parse() -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(MINIMAL + "colour: blue\n")
    assert exc.value.errors == ["colour: Extra inputs are not permitted"]


def test_lowered_override_still_loads_and_is_neutralised() -> None:
    policy = load_policy(MINIMAL + "risk_overrides: {reboot_ec2_instance: SAFE}\n")
    assert check_policy_text(MINIMAL + "risk_overrides: {reboot_ec2_instance: SAFE}\n") != []
    from sentinel.policy import Ec2InstanceFact

    facts = Facts(
        environment="prod",
        now="2025-06-01T00:00:00Z",  # type: ignore[arg-type]
        inventory=Inventory(ec2_instances=[Ec2InstanceFact(instance_id="i-0123abcd")]),
    )
    prop = ProposedAction(action_id="reboot_ec2_instance", params={"instance_id": "i-0123abcd"})
    decision = evaluate(prop, facts, policy)
    assert (decision.outcome, decision.risk, decision.rule_id) == (
        "REQUIRE_APPROVAL",
        "CRITICAL",
        "matrix.critical_needs_approval",
    )


def test_naive_now_is_rejected() -> None:
    from datetime import datetime

    with pytest.raises(ValueError):
        Facts(environment="prod", now=datetime(2025, 6, 1))


def test_now_is_normalised_to_utc() -> None:
    facts = Facts(environment="prod", now="2025-06-01T02:00:00+02:00")  # type: ignore[arg-type]
    assert facts.now.isoformat() == "2025-06-01T00:00:00+00:00"


def test_runs_alone_matrix() -> None:
    from sentinel.policy import RiskLevel
    from sentinel.policy.rules import EnvironmentPolicy

    listed = EnvironmentPolicy(mode=RunMode.AUTONOMOUS, run_alone=[RiskLevel.CRITICAL])
    assert [listed.runs_alone(r) for r in RiskLevel] == [True, False, False]
    both = EnvironmentPolicy(mode=RunMode.AUTONOMOUS, run_alone=[RiskLevel.WARNING])
    assert [both.runs_alone(r) for r in RiskLevel] == [True, True, False]
