"""Table-driven: every action x configured risk x environment x mode, with and without approval."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from sentinel.policy import Outcome, RiskLevel, evaluate

# The catalog floors, written out here independently of the code under test.
FLOORS = {
    "restart_pod": "SAFE",
    "rollout_restart": "WARNING",
    "rollback": "CRITICAL",
    "scale_up": "WARNING",
    "flush_keys": "SAFE",
    "flush_db": "WARNING",
    "ssh": "WARNING",
    "reboot_ec2": "CRITICAL",
    "ecs_redeploy": "WARNING",
}
ORDER = ["SAFE", "WARNING", "CRITICAL"]
# run_alone in the test policy: prod [SAFE]; staging [SAFE, WARNING]; dev [WARNING] (SAFE
# implied). The table also sets CRITICAL in run_alone for dev to show it is ignored.
RUNS_ALONE = {
    "prod": {"SAFE"},
    "staging": {"SAFE", "WARNING"},
    "dev": {"SAFE", "WARNING"},
}
MODES = ["shadow", "propose", "autonomous"]
ENVS = ["prod", "staging", "dev"]


def expected(variant: str, override: str, env: str, mode: str) -> tuple[str, str, str, str | None]:
    """(risk, outcome, rule_id, shadow_outcome) without an approval."""
    risk = max(FLOORS[variant], override, key=ORDER.index)
    alone = risk != "CRITICAL" and risk in RUNS_ALONE[env]
    if mode == "shadow":
        return risk, "SHADOW", "mode.shadow", "EXECUTE" if alone else "REQUIRE_APPROVAL"
    if mode == "propose":
        return risk, "REQUIRE_APPROVAL", "mode.propose", None
    if risk == "CRITICAL":
        return risk, "REQUIRE_APPROVAL", "matrix.critical_needs_approval", None
    if not alone:
        return risk, "REQUIRE_APPROVAL", "matrix.needs_approval", None
    return risk, "EXECUTE", "allow-all", None


CASES = list(itertools.product(FLOORS, ORDER, ENVS, MODES))


def _policy(kit: Any, variant: str, override: str, mode: str) -> Any:
    doc = kit.base_policy_dict()
    for env in doc["environments"].values():
        env["mode"] = mode
    doc["environments"]["dev"]["run_alone"] = ["WARNING", "CRITICAL"]  # CRITICAL is ignored
    action_id = kit.proposal(variant).action_id
    doc["risk_overrides"] = {action_id: override}
    return kit.policy_from(doc)


@pytest.mark.parametrize(("variant", "override", "env", "mode"), CASES)
def test_matrix_without_approval(
    kit: Any, variant: str, override: str, env: str, mode: str
) -> None:
    policy = _policy(kit, variant, override, mode)
    decision = evaluate(kit.proposal(variant), kit.facts(env), policy)
    risk, outcome, rule_id, shadow = expected(variant, override, env, mode)
    assert (decision.risk, decision.outcome, decision.rule_id) == (risk, outcome, rule_id)
    assert decision.shadow_outcome == shadow
    assert decision.mode == mode
    assert decision.approval_id is None
    assert decision.policy_hash == policy.sha256
    if outcome == "REQUIRE_APPROVAL":
        assert decision.approval_required_by == rule_id
        assert decision.matched_rule == "allow-all"


@pytest.mark.parametrize(("variant", "override", "env", "mode"), CASES)
def test_matrix_with_valid_approval(
    kit: Any, variant: str, override: str, env: str, mode: str
) -> None:
    policy = _policy(kit, variant, override, mode)
    prop = kit.proposal(variant)
    approval = kit.approval_for(prop, roles=("approver",))
    decision = evaluate(prop, kit.facts(env, approval=approval), policy)
    risk, outcome, rule_id, shadow = expected(variant, override, env, mode)
    if outcome == "REQUIRE_APPROVAL":
        assert (decision.outcome, decision.rule_id) == ("EXECUTE", "approval.valid")
        assert decision.approval_required_by == rule_id
        assert decision.approval_id == "apr-1"
    else:
        # An approval never changes SHADOW, and is not consumed by what runs alone.
        assert (decision.outcome, decision.rule_id) == (outcome, rule_id)
        assert decision.approval_id is None
    assert decision.risk == risk
    assert decision.shadow_outcome == shadow


READ_ONLY_CASES = list(
    itertools.product(["query_metrics", "fetch_logs", "list_deploys"], ENVS + ["nowhere"], MODES)
)


@pytest.mark.parametrize(("variant", "env", "mode"), READ_ONLY_CASES)
def test_read_only_tools_always_execute(kit: Any, variant: str, env: str, mode: str) -> None:
    doc = kit.base_policy_dict()
    for env_policy in doc["environments"].values():
        env_policy["mode"] = mode
    doc["rules"] = []  # not even a rule is needed: they change nothing
    decision = evaluate(kit.proposal(variant), kit.facts(env), kit.policy_from(doc))
    assert (decision.outcome, decision.rule_id, decision.risk) == (
        Outcome.EXECUTE,
        "catalog.read_only",
        RiskLevel.SAFE,
    )


def test_table_covers_every_mutating_catalog_action(kit: Any) -> None:
    from sentinel.policy import CATALOG

    covered = {kit.proposal(v).action_id for v in FLOORS}
    mutating = {a.value for a, t in CATALOG.items() if not t.read_only}
    assert covered == mutating
    assert len(CASES) == 9 * 3 * 3 * 3
