"""Approvals turn REQUIRE_APPROVAL into EXECUTE only when valid and bound to the proposal."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from sentinel.policy import Outcome, evaluate


def _run(kit: Any, variant: str, env: str = "prod", policy: Any = None, **approval_kw: Any):
    prop = kit.proposal(variant)
    approval = kit.approval_for(prop, **approval_kw)
    return evaluate(prop, kit.facts(env, approval=approval), policy or kit.policy())


def test_valid_approval_executes_a_critical_action(kit: Any) -> None:
    decision = _run(kit, "rollback", approver="bob", roles=("approver",), requester="sentinel")
    assert (decision.outcome, decision.rule_id, decision.approval_id) == (
        Outcome.EXECUTE,
        "approval.valid",
        "apr-1",
    )
    assert decision.approval_required_by == "matrix.critical_needs_approval"
    assert decision.reasons == [
        "CRITICAL actions always need an approval",
        "approved by bob (apr-1)",
    ]


@pytest.mark.parametrize(
    ("approval_kw", "rule_id", "reason"),
    [
        (
            {"expires_in": timedelta(0)},
            "approval.expired",
            "approval apr-1 expired at 2025-06-02T12:00:00+00:00",
        ),
        (
            {"expires_in": timedelta(seconds=-1)},
            "approval.expired",
            "approval apr-1 expired at 2025-06-02T11:59:59+00:00",
        ),
        ({"used": True}, "approval.used", "approval apr-1 was already used"),
        (
            {"digest": "0" * 64},
            "approval.digest_mismatch",
            "approval apr-1 is bound to a different proposal",
        ),
        (
            {"approver": "carol", "requester": "carol"},
            "approval.self_approval",
            "approval apr-1 is by the requester (not allowed for CRITICAL)",
        ),
        (
            {"approver": "Carol ", "requester": "carol"},
            "approval.self_approval",
            "approval apr-1 is by the requester (not allowed for CRITICAL)",
        ),
        (
            {"roles": ("responder", "viewer")},
            "approval.role_not_allowed",
            "approval apr-1 approver lacks a role allowed for CRITICAL (approver, admin)",
        ),
        (
            {"roles": ()},
            "approval.role_not_allowed",
            "approval apr-1 approver lacks a role allowed for CRITICAL (approver, admin)",
        ),
    ],
)
def test_invalid_approval_keeps_requiring_approval(
    kit: Any, approval_kw: dict[str, Any], rule_id: str, reason: str
) -> None:
    decision = _run(kit, "rollback", **approval_kw)
    assert (decision.outcome, decision.rule_id) == (Outcome.REQUIRE_APPROVAL, rule_id)
    assert decision.approval_required_by == "matrix.critical_needs_approval"
    assert decision.approval_id is None
    assert decision.reasons[-1] == reason


def test_approval_for_another_proposal_does_not_transfer(kit: Any) -> None:
    # Approved: roll back to 6. Proposed: roll back to 5.
    approved = kit.proposal("rollback")
    approval = kit.approval_for(approved, approver="bob")
    other = kit.proposal("rollback", to_revision=5)
    decision = evaluate(other, kit.facts("prod", approval=approval), kit.policy())
    assert (decision.outcome, decision.rule_id) == (
        Outcome.REQUIRE_APPROVAL,
        "approval.digest_mismatch",
    )


def test_self_approval_is_fine_below_critical(kit: Any) -> None:
    decision = _run(kit, "rollout_restart", approver="carol", requester="carol")
    assert (decision.outcome, decision.rule_id) == (Outcome.EXECUTE, "approval.valid")


def test_approval_never_overrides_a_deny(kit: Any) -> None:
    prop = kit.proposal("rollback", to_revision=4)
    approval = kit.approval_for(prop, approver="bob", roles=("admin",))
    decision = evaluate(prop, kit.facts("prod", approval=approval), kit.policy())
    assert (decision.outcome, decision.rule_id) == (Outcome.DENY, "inventory.revision_not_found")


def test_approval_never_runs_anything_in_shadow_mode(kit: Any) -> None:
    doc = kit.base_policy_dict()
    doc["environments"]["prod"]["mode"] = "shadow"
    decision = _run(kit, "rollback", policy=kit.policy_from(doc), roles=("admin",))
    assert (decision.outcome, decision.shadow_outcome, decision.approval_id) == (
        Outcome.SHADOW,
        Outcome.REQUIRE_APPROVAL,
        None,
    )


ROLE_POLICY = {
    "SAFE": ["responder", "approver", "admin"],
    "WARNING": ["approver", "admin"],
    "CRITICAL": ["admin"],
}
RISK_VARIANT = {"SAFE": "restart_pod", "WARNING": "rollout_restart", "CRITICAL": "rollback"}
ROLES = ["viewer", "responder", "approver", "admin"]


@pytest.mark.parametrize(("risk", "role"), list(itertools.product(ROLE_POLICY, ROLES)))
def test_approver_roles_per_risk(kit: Any, risk: str, role: str) -> None:
    # propose mode, so every risk level (SAFE included) needs an approval.
    doc = kit.base_policy_dict()
    doc["environments"]["prod"]["mode"] = "propose"
    doc["approver_roles"] = ROLE_POLICY
    policy = kit.policy_from(doc)
    decision = _run(kit, RISK_VARIANT[risk], policy=policy, approver="bob", roles=(role,))
    assert decision.risk == risk
    if role in ROLE_POLICY[risk]:
        assert (decision.outcome, decision.rule_id) == (Outcome.EXECUTE, "approval.valid")
    else:
        assert (decision.outcome, decision.rule_id) == (
            Outcome.REQUIRE_APPROVAL,
            "approval.role_not_allowed",
        )
    assert decision.approval_required_by == "mode.propose"


def test_missing_risk_level_in_approver_roles_defaults_to_approver_or_admin(kit: Any) -> None:
    policy = kit.policy(approver_roles={"SAFE": ["responder"]})
    ok = _run(kit, "rollback", policy=policy, approver="bob", roles=("approver",))
    assert ok.outcome == Outcome.EXECUTE
    no = _run(kit, "rollback", policy=policy, approver="bob", roles=("responder",))
    assert no.rule_id == "approval.role_not_allowed"
