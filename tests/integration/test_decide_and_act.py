"""Decide and act, end to end: real Prometheus, Alertmanager, Redis and ``sentinel serve``.

- A cache alert: the runbook proposes ``flush_redis_cache`` by key pattern, the policy lets it
  run alone (SAFE in prod), the Redis executor deletes exactly the poisoned keys, the gauge
  (computed from Redis at scrape time) drops, verification sees it clear, the incident CLOSES.
- A flush that does not help: verification never clears → EscalatedRunbook → EscalateToHuman.
- A rollback (CRITICAL) waits for a human: approved through the API it runs once (dry run)
  and is verified; rejected on another incident, nothing runs.
- DENY decisions, each recorded with its rule and reason, and nothing executed: kube-system,
  a pod not in the inventory, a per-target rate limit, a change freeze; shadow mode runs
  nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import ROOT, WebhookReceiver, am_alert, am_payload, run_cli, wait_for
from tests.integration.actstack import (
    REDIS_DB,
    REDIS_URL,
    ActStack,
    Api,
    LiveMetricsTarget,
    act_stack,
    entries,
    index_of,
    post_alerts,
    redis_area,
    script_exec,
)

VERIFY = {
    "SENTINEL_VERIFY__INTERVAL_SECONDS": "1",
    "SENTINEL_VERIFY__STABLE_SECONDS": "2",
}
POISON = "cart:poison:"
GOOD = "cart:good:"
N_POISON = 300
N_GOOD = 40
CACHE_EXPR = 'cache_poisoned_keys{job="cart"} > 0'
CACHE_GAUGE = 'cache_poisoned_keys{service="cart"}'


def cache_rule(key_pattern: str) -> dict[str, Any]:
    return {
        "alert": "CacheHitRateLow",
        "expr": CACHE_EXPR,
        "for": "0s",
        "labels": {"severity": "page", "service": "cart", "key_pattern": key_pattern},
        "annotations": {"summary": "{{ $value }} poisoned cart keys"},
    }


def cache_env(key_pattern: str, deadline: int, **extra: str) -> dict[str, str]:
    inventory = {
        "redis_clusters": [{"name": "cart-cache", "service": "cart", "key_patterns": [key_pattern]}]
    }
    return {
        **VERIFY,
        "SENTINEL_VERIFY__DEADLINE_SECONDS": str(deadline),
        "SENTINEL_ENVIRONMENT": "prod",
        "SENTINEL_EXECUTORS__REDIS_CLUSTERS": json.dumps({"cart-cache": REDIS_URL}),
        "SENTINEL_INVENTORY": json.dumps(inventory),
        **extra,
    }


def audit_ok(stack: ActStack) -> None:
    code, out = stack.audit_verify()
    assert code == 0, out


# ---------------------------------------------------------------- 1. flush, recover, close


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
def test_cache_alert_flush_runs_alone_metric_recovers_and_incident_closes(
    sqlite_url: str, tmp_path: Path
) -> None:
    with redis_area() as area:
        pattern = f"{area.prefix}{POISON}*"
        target = LiveMetricsTarget()
        target.declare("cache_poisoned_keys", "gauge", "Poisoned cart cache entries.")
        target.set_live(CACHE_GAUGE, lambda: area.count(f"{POISON}*"))
        with act_stack(
            sqlite_url,
            tmp_path,
            env=cache_env(pattern, deadline=20),
            target=target,
            job="cart",
            rules=[cache_rule(pattern)],
        ) as stack:
            api = stack.viewer
            assert api.incidents() == []
            area.seed(GOOD, N_GOOD)
            area.seed(POISON, N_POISON)

            incident_id = api.wait_incident("cart")
            area.incident_ids.append(incident_id)
            inc = api.wait_status(incident_id, "CLOSED", timeout=90)

            # Only the poisoned keys are gone.
            assert area.count(f"{POISON}*") == 0
            assert area.count(f"{GOOD}*") == N_GOOD

            # The plan: the runbook's flush, decided EXECUTE by the policy, run, succeeded.
            (plan,) = inc["plans"]
            assert plan["proposed_action"] == "flush_redis_cache"
            assert plan["params"] == {"cluster": "cart-cache", "key_pattern": pattern}
            assert plan["planner"] == "runbook"
            assert plan["target_resource"] == f"redis:cart-cache/keys/{pattern}"
            assert plan["risk_level"] == "SAFE"
            assert plan["execution_status"] == "SUCCESS"
            assert plan["human_approved"] is None
            decision = plan["decision"]
            assert decision["outcome"] == "EXECUTE"
            assert decision["rule_id"] == "catalog-remediations"
            assert decision["risk"] == "SAFE"
            assert decision["environment"] == "prod" and decision["mode"] == "autonomous"
            assert decision["approval_id"] is None

            tl = api.timeline(incident_id)
            policy = entries(tl, "POLICY_EVAL")
            assert [e["summary"] for e in policy] == ["RiskEvaluation", "RiskEvaluation.recheck"]
            for e in policy:
                assert e["details"]["output"]["outcome"] == "EXECUTE"
                assert e["details"]["output"]["decision"]["rule_id"] == "catalog-remediations"
            (intent,) = script_exec(tl, "intent")
            (result,) = script_exec(tl, "result")
            assert intent["details"]["key"] == f"{incident_id}:remediate:execute"
            assert intent["details"]["target"] == plan["target_resource"]
            assert result["details"]["status"] == "SUCCEEDED"
            assert result["details"]["reconciled"] is False
            ran = result["details"]["result"]
            assert ran["ok"] is True and ran["executor"] == "redis"
            assert ran["mode"] == "scan_unlink"
            assert ran["cluster"] == "cart-cache" and ran["db"] == REDIS_DB
            assert ran["key_pattern"] == pattern
            assert ran["keys_deleted"] == N_POISON and ran["keys_matched"] == N_POISON
            assert ran["truncated"] is False
            assert ran["keys_before"] >= N_POISON + N_GOOD
            assert len(ran["sample_deleted_keys"]) == 20
            assert all(k.startswith(f"{area.prefix}{POISON}") for k in ran["sample_deleted_keys"])
            assert any(c.startswith("SCAN") for c in ran["commands"])
            assert not any(c.startswith("KEYS") for c in ran["commands"])
            # The executor's marker proves completion under the same idempotency key.
            assert area.markers(incident_id) == [f"sentinel:action:{incident_id}:remediate:execute"]

            (verification,) = entries(tl, "VERIFICATION")
            assert verification["details"]["output"]["recovered"] is True
            assert CACHE_EXPR in verification["details"]["output"]["reason"]
            checks = verification["details"]["input"]["checks"]
            assert checks[-2:] == [{"ok": True, "firing": False, "error": None}] * 2

            i_policy = index_of(tl, lambda e: e["summary"] == "RiskEvaluation")
            i_intent = index_of(tl, lambda e: e["details"].get("phase") == "intent")
            i_result = index_of(tl, lambda e: e["details"].get("phase") == "result")
            i_verify = index_of(tl, lambda e: e["action_type"] == "VERIFICATION")
            i_closed = index_of(tl, lambda e: e["summary"] == "IncidentClosed")
            assert i_policy < i_intent < i_result < i_verify < i_closed
            assert not any(e["summary"] in ("EscalateToHuman", "EscalatedRunbook") for e in tl)

            # Exactly one execution, one remediation run.
            (it,) = stack.intents(incident_id)
            assert it["kind"] == "execute" and it["status"] == "SUCCEEDED"
            assert it["action_id"] == "flush_redis_cache" and it["service"] == "cart"
            assert it["result"]["keys_deleted"] == N_POISON
            names = sorted(w["name"] for w in stack.workflows(incident_id))
            assert names == ["remediate_incident", "triage_incident"]

            audit_ok(stack)


# ---------------------------------------------------------------- 2. a fix that does not help


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
def test_flush_that_does_not_help_ends_in_escalated_runbook(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    with redis_area() as area:
        pattern = f"{area.prefix}{POISON}*"
        target = LiveMetricsTarget()
        target.declare("cache_poisoned_keys", "gauge", "Poisoned cart cache entries.")
        target.set_gauge(CACHE_GAUGE, 0)  # set by the test: the flush cannot change it
        env = cache_env(pattern, deadline=6, SENTINEL_NOTIFY__WEBHOOK_URL=receiver.url)
        with act_stack(
            sqlite_url, tmp_path, env=env, target=target, job="cart", rules=[cache_rule(pattern)]
        ) as stack:
            api = stack.viewer
            area.seed(GOOD, N_GOOD)
            area.seed(POISON, N_POISON)
            target.set_gauge(CACHE_GAUGE, N_POISON)

            incident_id = api.wait_incident("cart")
            area.incident_ids.append(incident_id)
            inc = api.wait_status(incident_id, "ESCALATED", timeout=90)

            # The flush did run, and did its job on Redis; the metric did not move.
            assert area.count(f"{POISON}*") == 0 and area.count(f"{GOOD}*") == N_GOOD
            (plan,) = inc["plans"]
            assert plan["proposed_action"] == "flush_redis_cache"
            assert plan["decision"]["outcome"] == "EXECUTE"
            assert plan["execution_status"] == "SUCCESS"
            reason = inc["escalation_reason"]
            assert reason.startswith("remediation did not recover the metric: "), reason
            assert f"{CACHE_EXPR} did not stay clear within 6 checks" in reason

            tl = api.timeline(incident_id)
            (result,) = script_exec(tl, "result")
            assert result["details"]["result"]["keys_deleted"] == N_POISON
            (verification,) = entries(tl, "VERIFICATION")
            assert verification["details"]["output"]["recovered"] is False
            checks = verification["details"]["input"]["checks"]
            assert checks == [{"ok": True, "firing": True, "error": None}] * 6
            i_verify = index_of(tl, lambda e: e["action_type"] == "VERIFICATION")
            i_runbook = index_of(tl, lambda e: e["summary"] == "EscalatedRunbook")
            i_human = index_of(tl, lambda e: e["summary"] == "EscalateToHuman")
            assert i_verify < i_runbook < i_human
            assert tl[i_human]["action_type"] == "ESCALATION"
            assert tl[i_runbook]["details"]["output"]["reason"] in reason
            assert not any(e["summary"] == "IncidentClosed" for e in tl)

            # One escalation delivered to the webhook (the notify step's result is recorded
            # after the POST returns, so once it is in the log the count is final).
            wait_for(
                lambda: [
                    e
                    for e in entries(api.timeline(incident_id), "NOTIFICATION")
                    if e["details"].get("phase") == "result"
                ],
                timeout=30,
                what="the escalation notification",
            )
            assert [d["body"] for d in receiver.deliveries] == [
                {"event": "escalated", "incident_id": incident_id, "reason": reason}
            ]
            assert receiver.keys() == [f"{incident_id}:remediate:notify:escalated"]
            kinds = sorted((i["kind"], i["status"]) for i in stack.intents(incident_id))
            assert kinds == [("execute", "SUCCEEDED"), ("notify", "SUCCEEDED")]
            audit_ok(stack)


# ---------------------------------------------------------------- 3. rollback with approval

ERR_RATIO = "deploy_error_ratio"


def err_gauge(deployment: str) -> str:
    return f'{ERR_RATIO}{{namespace="shop",deployment="{deployment}",service="{deployment}"}}'


def err_rule(deployment: str) -> dict[str, Any]:
    # One rule per deployment, so each alert's expression (what verification re-checks)
    # covers only its own series.
    return {
        "alert": "HighErrorRateAfterDeploy",
        "expr": f'{ERR_RATIO}{{deployment="{deployment}"}} > 0.05',
        "for": "0s",
        "labels": {"severity": "page"},
        "annotations": {"summary": "error ratio {{ $value }} since the last deploy"},
    }


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
def test_rollback_waits_for_approval_runs_once_dry_run_and_is_verified_reject_runs_nothing(
    sqlite_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    inventory = {
        "deployments": [
            {
                "namespace": "shop",
                "name": "checkout",
                "replicas": 3,
                "current_revision": 7,
                "revisions": [5, 6, 7],
                "service": "checkout",
            },
            {
                "namespace": "shop",
                "name": "payments",
                "replicas": 2,
                "current_revision": 4,
                "revisions": [3, 4],
                "service": "payments",
            },
        ]
    }
    target = LiveMetricsTarget()
    target.declare(ERR_RATIO, "gauge", "5xx share of requests since the last deploy.")
    for dep in ("checkout", "payments"):
        target.set_gauge(err_gauge(dep), 0.0)
    env = {
        **VERIFY,
        "SENTINEL_VERIFY__DEADLINE_SECONDS": "20",
        "SENTINEL_ENVIRONMENT": "prod",
        "SENTINEL_INVENTORY": json.dumps(inventory),
        "SENTINEL_NOTIFY__WEBHOOK_URL": receiver.url,
    }
    with act_stack(
        sqlite_url,
        tmp_path,
        env=env,
        target=target,
        job="shop",
        rules=[err_rule("checkout"), err_rule("payments")],
    ) as stack:
        api, alice = stack.viewer, stack.approver
        for dep in ("checkout", "payments"):
            target.set_gauge(err_gauge(dep), 0.4)
        ids = {svc: api.wait_incident(svc) for svc in ("checkout", "payments")}
        incs = {svc: api.wait_status(iid, "AWAITING_APPROVAL") for svc, iid in ids.items()}

        # The plan and its decision: CRITICAL, so the matrix asks a human.
        (plan,) = incs["checkout"]["plans"]
        assert plan["proposed_action"] == "rollback_deployment"
        assert plan["params"] == {"namespace": "shop", "deployment": "checkout", "to_revision": 6}
        assert plan["target_resource"] == "k8s:shop/deployment/checkout"
        assert plan["risk_level"] == "CRITICAL"
        assert plan["execution_status"] == "PENDING" and plan["human_approved"] is None
        decision = plan["decision"]
        assert decision["outcome"] == "REQUIRE_APPROVAL"
        assert decision["rule_id"] == "matrix.critical_needs_approval"
        assert decision["approval_required_by"] == "matrix.critical_needs_approval"
        assert decision["risk"] == "CRITICAL" and decision["matched_rule"] == "catalog-remediations"
        (pay_plan,) = incs["payments"]["plans"]
        assert pay_plan["params"] == {
            "namespace": "shop",
            "deployment": "payments",
            "to_revision": 3,
        }

        pending = {a["incident_id"]: a for a in api.approvals(status="pending")}
        assert set(pending) == set(ids.values()), pending
        appr = pending[ids["checkout"]]
        assert appr["action_id"] == "rollback_deployment"
        assert appr["risk_level"] == "CRITICAL"
        assert appr["target"] == "k8s:shop/deployment/checkout"  # the revision is in the plan
        assert appr["plan_id"] == plan["plan_id"]
        assert appr["proposal_digest"] == decision["proposal_digest"]
        assert appr["status"] == "PENDING" and appr["requested_by"] == "sentinel"
        assert appr["decided_by"] is None
        created = datetime.fromisoformat(appr["created_at"])
        assert datetime.fromisoformat(appr["expires_at"]) - created == timedelta(minutes=30)
        approval_id = appr["approval_id"]
        pay_approval_id = pending[ids["payments"]]["approval_id"]

        # The approval exists before triage's last step sends its notification: let the
        # notifications arrive, so the rejection below is the last thing on the timeline.
        wait_for(
            lambda: (
                {
                    d["body"]["incident_id"]
                    for d in receiver.deliveries
                    if d["body"]["event"] == "approval_requested"
                }
                >= set(ids.values())
            ),
            timeout=30,
            what="the approval_requested notifications",
        )

        # Reject payments: closed by the human, nothing runs.
        r = alice.post(f"/api/v1/approvals/{pay_approval_id}/reject", {"comment": "not now"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "REJECTED" and r.json()["decided_by"] == "alice"
        assert api.incident(ids["payments"])["status"] == "CLOSED"
        r = alice.post(f"/api/v1/approvals/{pay_approval_id}/approve", {"comment": "changed"})
        assert r.status_code == 409, r.text

        # A viewer may not approve; an approver may, once.
        r = api.post(f"/api/v1/approvals/{approval_id}/approve", {"comment": "me too"})
        assert r.status_code == 403, r.text
        r = alice.post(f"/api/v1/approvals/{approval_id}/approve", {"comment": "roll it back"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "APPROVED" and body["decided_by"] == "alice"
        assert body["comment"] == "roll it back"
        target.set_gauge(err_gauge("checkout"), 0.0)  # the rollback "worked"
        r = alice.post(f"/api/v1/approvals/{approval_id}/approve", {"comment": "again"})
        assert r.status_code == 409, r.text

        inc = api.wait_status(ids["checkout"], "CLOSED", timeout=90)
        (plan,) = inc["plans"]
        assert plan["human_approved"] is True and plan["execution_status"] == "SUCCESS"
        assert plan["decision"]["outcome"] == "EXECUTE"
        assert plan["decision"]["rule_id"] == "approval.valid"
        assert plan["decision"]["approval_id"] == approval_id
        assert plan["decision"]["proposal_digest"] == appr["proposal_digest"]

        tl = api.timeline(ids["checkout"])
        (approved,) = entries(tl, "APPROVAL")
        assert approved["actor"] == "HUMAN_USER"
        assert approved["details"]["decision"] == "APPROVED"
        assert approved["details"]["user"] == "alice"
        assert approved["details"]["proposal_digest"] == appr["proposal_digest"]
        (intent,) = script_exec(tl, "intent")
        (result,) = script_exec(tl, "result")
        ran = result["details"]["result"]
        assert result["details"]["status"] == "SUCCEEDED"
        assert ran["ok"] is True and ran["dry_run"] is True and ran["executor"] == "dry_run"
        assert ran["params"] == {"namespace": "shop", "deployment": "checkout", "to_revision": 6}
        assert ran["would_run"] == [
            "kubectl rollout undo deployment/checkout --namespace shop --to-revision=6"
        ]
        (verification,) = entries(tl, "VERIFICATION")
        assert verification["details"]["output"]["recovered"] is True
        i_appr = index_of(tl, lambda e: e["action_type"] == "APPROVAL")
        i_recheck = index_of(tl, lambda e: e["summary"] == "RiskEvaluation.recheck")
        i_closed = index_of(tl, lambda e: e["summary"] == "IncidentClosed")
        assert i_appr < i_recheck < tl.index(intent) < tl.index(result) < i_closed
        recheck = tl[i_recheck]["details"]
        assert recheck["input"]["facts"]["approval"]["approval_id"] == approval_id
        assert recheck["output"]["decision"]["rule_id"] == "approval.valid"

        (it,) = [i for i in stack.intents(ids["checkout"]) if i["kind"] == "execute"]
        assert (it["action_id"], it["status"]) == ("rollback_deployment", "SUCCEEDED")
        assert it["result"]["dry_run"] is True and it["result"]["params"]["to_revision"] == 6
        notified = sorted(i["idempotency_key"] for i in stack.intents(ids["checkout"]))
        assert notified == sorted(
            [
                f"{ids['checkout']}:remediate:execute",
                f"{ids['checkout']}:remediate:notify:resolved",
                f"{ids['checkout']}:triage:notify:approval_requested",
            ]
        )
        runs = [w["name"] for w in stack.workflows(ids["checkout"])]
        assert sorted(runs) == ["remediate_incident", "triage_incident"]
        assert {a["approval_id"] for a in api.approvals(status="approved")} == {approval_id}
        assert api.approvals(status="pending") == []

        # The rejected incident, checked again after the other one ran to the end.
        pay = api.incident(ids["payments"])
        assert pay["status"] == "CLOSED"
        (pay_plan,) = pay["plans"]
        assert pay_plan["human_approved"] is False and pay_plan["execution_status"] == "SKIPPED"
        pay_tl = api.timeline(ids["payments"])
        assert entries(pay_tl, "SCRIPT_EXEC") == []
        (rejected,) = entries(pay_tl, "APPROVAL")
        assert rejected["details"]["decision"] == "REJECTED"
        assert pay_tl[-1]["summary"] == "IncidentClosed"
        assert pay_tl[-1]["details"]["reason"] == "rejected by alice"
        assert [i["kind"] for i in stack.intents(ids["payments"])] == ["notify"]
        assert [w["name"] for w in stack.workflows(ids["payments"])] == ["triage_incident"]

        events = sorted((d["body"]["event"], d["body"]["incident_id"]) for d in receiver.deliveries)
        assert events == sorted(
            [
                ("approval_requested", ids["checkout"]),
                ("approval_requested", ids["payments"]),
                ("resolved", ids["checkout"]),
            ]
        )
        audit_ok(stack)


# ---------------------------------------------------------------- 4. DENY and SHADOW

CART_POD = "cart-7d9f6c-x2x9q"
DNS_POD = "coredns-5d78c9869d-abcde"
DENY_INVENTORY = {
    "pods": [
        {
            "namespace": "kube-system",
            "name": DNS_POD,
            "deployment": "coredns",
            "service": "dns",
        },
        {"namespace": "shop", "name": CART_POD, "deployment": "cart", "service": "cart"},
    ],
    "deployments": [
        {
            "namespace": "kube-system",
            "name": "coredns",
            "replicas": 2,
            "current_revision": 1,
            "revisions": [1],
            "service": "dns",
        },
        {
            "namespace": "shop",
            "name": "cart",
            "replicas": 4,
            "current_revision": 3,
            "revisions": [2, 3],
            "service": "cart",
        },
        {
            "namespace": "shop",
            "name": "search",
            "replicas": 2,
            "current_revision": 5,
            "revisions": [4, 5],
            "service": "search",
        },
    ],
}


def write_policy(tmp: Path, **changes: Any) -> Path:
    """policies/default.yaml with some top-level sections replaced; checked by the CLI."""
    doc = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    doc.update(changes)
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def deny_env(policy: Path) -> dict[str, str]:
    return {
        **VERIFY,
        "SENTINEL_VERIFY__DEADLINE_SECONDS": "3",
        "SENTINEL_ENVIRONMENT": "prod",
        "SENTINEL_INVENTORY": json.dumps(DENY_INVENTORY),
        "SENTINEL_POLICY__FILE": str(policy),
        # every alert its own incident, even for the same service
        "SENTINEL_INGEST__GROUP_WINDOW_SECONDS": "0",
    }


def fire(stack: ActStack, alertname: str, service: str, **labels: str) -> str:
    (incident_id,) = post_alerts(
        stack.base, stack.ingest_token, am_payload(am_alert(alertname, service, **labels))
    )
    return incident_id


def assert_refused(
    stack: ActStack, incident_id: str, outcome: str, rule_id: str, reason: str
) -> dict[str, Any]:
    """ESCALATED with the decision's reason; the decision recorded; nothing executed."""
    inc = stack.viewer.wait_status(incident_id, "ESCALATED", timeout=60)
    assert reason in inc["escalation_reason"], inc["escalation_reason"]
    assert inc["escalation_reason"].startswith(f"policy {outcome} ({rule_id}): ")
    (plan,) = inc["plans"]
    decision = plan["decision"]
    assert decision["outcome"] == outcome and decision["rule_id"] == rule_id, decision
    assert reason in decision["reasons"], decision
    assert plan["execution_status"] == "SKIPPED" and plan["human_approved"] is None
    tl = stack.viewer.timeline(incident_id)
    (evaluation,) = entries(tl, "POLICY_EVAL")
    assert evaluation["details"]["output"]["decision"] == decision
    assert entries(tl, "SCRIPT_EXEC") == []
    assert tl[-1]["summary"] == "EscalateToHuman"
    assert stack.intents(incident_id) == []
    assert [w["name"] for w in stack.workflows(incident_id)] == ["triage_incident"]
    return decision


@pytest.mark.slow
def test_deny_decisions_are_recorded_and_nothing_runs(sqlite_url: str, tmp_path: Path) -> None:
    from sentinel.policy.actions import CATALOG

    now = datetime.now(UTC).replace(microsecond=0)
    mutating = sorted(a.value for a, cls in CATALOG.items() if not cls.read_only)
    policy = write_policy(
        tmp_path,
        rate_limits=[
            {
                "id": "rate.one-restart-per-pod",
                "actions": ["restart_kubernetes_pod"],
                "per": "target",
                "max": 1,
                "window_seconds": 3600,
            }
        ],
        freezes=[
            {
                "id": "freeze.e2e-now",
                "start": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                "end": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                "environments": ["prod"],
                "except_actions": [a for a in mutating if a != "scale_deployment"],
                "outcome": "deny",
                "reason": "e2e change freeze",
            }
        ],
    )
    with act_stack(sqlite_url, tmp_path, env=deny_env(policy)) as stack:
        check = run_cli(stack.env, "policy", "check", str(policy), check=False)
        assert check.returncode == 0, check.stdout + check.stderr

        # (a) a kube-system pod that IS in the inventory
        kube = fire(stack, "KubePodCrashLooping", "dns", namespace="kube-system", pod=DNS_POD)
        # (b) a pod that is not in the inventory
        ghost = fire(stack, "KubePodCrashLooping", "cart", namespace="shop", pod="ghost-0")
        # (d) a change freeze in force now, for scale_deployment in prod
        frozen = fire(stack, "CPUSaturation", "search", namespace="shop", deployment="search")
        # (c) the first restart of a pod runs (dry run)...
        first = fire(stack, "KubePodCrashLooping", "cart", namespace="shop", pod=CART_POD)

        assert_refused(
            stack,
            kube,
            "DENY",
            "guard.denied_namespace",
            "namespace kube-system is deny-listed (kube-*)",
        )
        assert_refused(
            stack, ghost, "DENY", "inventory.pod_not_found", "pod ghost-0 not found in shop"
        )
        d = assert_refused(
            stack,
            frozen,
            "DENY",
            "freeze.e2e-now",
            "change freeze freeze.e2e-now: e2e change freeze",
        )
        assert d["action_id"] == "scale_deployment"
        assert d["target"] == "k8s:shop/deployment/search"

        inc = stack.viewer.wait_status(first, "ESCALATED", timeout=60)  # no verifier here
        (plan,) = inc["plans"]
        assert plan["decision"]["outcome"] == "EXECUTE"
        assert plan["execution_status"] == "SUCCESS"
        (result,) = script_exec(stack.viewer.timeline(first), "result")
        assert result["details"]["result"]["dry_run"] is True
        assert result["details"]["target"] == f"k8s:shop/pod/{CART_POD}"

        # ...the second incident on the same pod, within the window, is refused.
        second = fire(stack, "KubePodCrashLooping", "cart", namespace="shop", pod=CART_POD)
        assert second != first
        assert_refused(
            stack,
            second,
            "DENY",
            "rate.one-restart-per-pod",
            "rate limit rate.one-restart-per-pod: 1 of max 1 in 3600s"
            f" for target k8s:shop/pod/{CART_POD}",
        )
        (evaluation,) = entries(stack.viewer.timeline(second), "POLICY_EVAL")
        history = evaluation["details"]["input"]["facts"]["history"]
        assert [(h["action_id"], h["target"]) for h in history] == [
            ("restart_kubernetes_pod", f"k8s:shop/pod/{CART_POD}")
        ]
        assert stack.viewer.approvals() == []
        audit_ok(stack)


@pytest.mark.slow
def test_shadow_mode_records_what_would_run_and_runs_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, environments={"prod": {"mode": "shadow"}})
    with act_stack(sqlite_url, tmp_path, env=deny_env(policy)) as stack:
        # SAFE: autonomous mode would run it alone.
        restart = fire(stack, "KubePodCrashLooping", "cart", namespace="shop", pod=CART_POD)
        # CRITICAL: autonomous mode would ask for an approval; shadow opens none.
        rollback = fire(
            stack, "HighErrorRateAfterDeploy", "cart", namespace="shop", deployment="cart"
        )
        d = assert_refused(
            stack,
            restart,
            "SHADOW",
            "mode.shadow",
            "shadow mode in prod: recorded, not run (would EXECUTE)",
        )
        assert d["shadow_outcome"] == "EXECUTE" and d["risk"] == "SAFE"
        d = assert_refused(
            stack,
            rollback,
            "SHADOW",
            "mode.shadow",
            "shadow mode in prod: recorded, not run (would REQUIRE_APPROVAL)",
        )
        assert d["shadow_outcome"] == "REQUIRE_APPROVAL" and d["risk"] == "CRITICAL"
        assert stack.viewer.approvals() == []
        audit_ok(stack)


# ---------------------------------------------------------------- regressions (bugs found and fixed)


@pytest.mark.slow
def test_approve_api_enforces_the_policys_approver_roles(sqlite_url: str, tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        approver_roles={
            "SAFE": ["approver", "admin"],
            "WARNING": ["approver", "admin"],
            "CRITICAL": ["admin"],
        },
    )
    with act_stack(sqlite_url, tmp_path, env=deny_env(policy), users={"root": "admin"}) as stack:
        incident_id = fire(
            stack, "HighErrorRateAfterDeploy", "cart", namespace="shop", deployment="cart"
        )
        stack.viewer.wait_status(incident_id, "AWAITING_APPROVAL")
        (appr,) = stack.viewer.approvals(status="pending")
        assert appr["risk_level"] == "CRITICAL"
        path = f"/api/v1/approvals/{appr['approval_id']}/approve"

        # An approver, but the policy lets only admins approve CRITICAL actions.
        r = stack.approver.post(path, {"comment": "ok"})
        assert r.status_code == 403, r.text
        assert [a["approval_id"] for a in stack.viewer.approvals(status="pending")] == [
            appr["approval_id"]
        ]

        root = Api(stack.base, stack.tokens["root"])
        try:
            r = root.post(path, {"comment": "ok"})
            assert r.status_code == 200, r.text
        finally:
            root.close()
        stack.viewer.wait_status(incident_id, "ESCALATED")  # no verifier in this stack
        tl = stack.viewer.timeline(incident_id)
        recheck = tl[index_of(tl, lambda e: e["summary"] == "RiskEvaluation.recheck")]
        assert recheck["details"]["output"]["decision"]["rule_id"] == "approval.valid"
        (result,) = script_exec(tl, "result")
        assert result["details"]["status"] == "SUCCEEDED"


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
def test_verification_watches_only_the_alerts_own_series(sqlite_url: str, tmp_path: Path) -> None:
    with redis_area() as area:
        pattern = f"{area.prefix}{POISON}*"
        expr = 'cache_poisoned_keys{job="cache"} > 0'
        target = LiveMetricsTarget()
        target.declare("cache_poisoned_keys", "gauge", "Poisoned cache entries.")
        target.set_live(CACHE_GAUGE, lambda: area.count(f"{POISON}*"))
        # Another service's cache, poisoned too, with nothing that can fix it.
        target.set_gauge('cache_poisoned_keys{service="search"}', 0)
        rule = {
            "alert": "CacheHitRateLow",
            "expr": expr,  # one rule over every service's series, as real rules are written
            "for": "0s",
            "labels": {"severity": "page", "key_pattern": pattern},
        }
        with act_stack(
            sqlite_url,
            tmp_path,
            env=cache_env(pattern, deadline=6),
            target=target,
            job="cache",
            rules=[rule],
        ) as stack:
            api = stack.viewer
            target.set_gauge('cache_poisoned_keys{service="search"}', 50)
            search_id = api.wait_incident("search")
            area.seed(POISON, N_POISON)
            cart_id = api.wait_incident("cart")
            area.incident_ids.append(cart_id)
            api.wait_status(search_id, "ESCALATED")  # no Redis cluster serves search

            # The cart flush works: cart's own series clears...
            wait_for(
                lambda: script_exec(api.timeline(cart_id), "result"),
                timeout=60,
                what="the cart flush",
            )
            assert area.count(f"{POISON}*") == 0
            # ...so cart's incident should close, whatever search's series does.
            inc = api.wait_status(cart_id, "CLOSED", timeout=60)
            assert inc["plans"][0]["execution_status"] == "SUCCESS"


def test_an_unanswered_approval_expires_and_the_incident_is_escalated(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Nobody decides in time: the worker marks the approval EXPIRED (audited) and escalates
    the incident through its own durable workflow, instead of leaving it AWAITING_APPROVAL
    for ever; deciding afterwards is refused and nothing runs."""
    policy = write_policy(tmp_path)
    with act_stack(sqlite_url, tmp_path, env=deny_env(policy)) as stack:
        incident_id = fire(
            stack, "HighErrorRateAfterDeploy", "cart", namespace="shop", deployment="cart"
        )
        stack.viewer.wait_status(incident_id, "AWAITING_APPROVAL")
        (appr,) = stack.viewer.approvals(status="pending")
        # Time passes: the request's expiry moves into the past (the table is not the
        # append-only audit log; the TTL itself is at least 60 s).
        db = create_engine(sqlite_url)
        with db.begin() as c:
            c.execute(
                text(
                    "UPDATE approval_requests SET expires_at = '2000-01-01 00:00:00.000000'"
                    " WHERE approval_id = :a"
                ),
                {"a": appr["approval_id"]},
            )
        db.dispose()
        inc = stack.viewer.wait_status(incident_id, "ESCALATED", timeout=60)
        assert f"approval {appr['approval_id']} expired unanswered" in inc["escalation_reason"]
        assert [a["status"] for a in stack.viewer.approvals()] == ["EXPIRED"]
        detail = stack.viewer.incident(incident_id)  # GET /incidents/{id} carries them too
        assert [(a["approval_id"], a["status"]) for a in detail["approvals"]] == [
            (appr["approval_id"], "EXPIRED")
        ]
        assert detail["verification"] is None  # nothing ran, so nothing was verified
        assert stack.viewer.approvals(status="pending") == []
        r = stack.approver.post(f"/api/v1/approvals/{appr['approval_id']}/approve", {})
        assert r.status_code == 409, r.text
        tl = stack.viewer.timeline(incident_id)
        assert any(
            e["action_type"] == "APPROVAL" and e["details"].get("status") == "EXPIRED" for e in tl
        ), tl
        assert not script_exec(tl, "result")  # nothing ran
        assert stack.audit_verify()[0] == 0


def test_an_alert_without_an_expression_is_verified_by_its_resolved_notification(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A generic (or Grafana, Datadog, PagerDuty) alert carries no PromQL to re-evaluate:
    after the action, verification watches the incident's alerts, which the source resolves
    by its resolved notification. Resolved and stable: CLOSED; still firing at the
    deadline: ESCALATED (EscalatedRunbook)."""
    import httpx

    policy = write_policy(tmp_path)
    with act_stack(sqlite_url, tmp_path, env=deny_env(policy)) as stack:

        def send(status: str) -> list[str]:
            alert = {
                "name": "KubePodCrashLooping",
                "service": "cart",
                "status": status,
                "fingerprint": "generic-cart-crashloop",
                "labels": {"namespace": "shop", "pod": CART_POD},
            }
            r = httpx.post(
                f"{stack.base}/api/v1/alerts/generic",
                json={"alerts": [alert]},
                headers={"Authorization": f"Bearer {stack.ingest_token}"},
                timeout=10,
            )
            assert r.status_code == 202, r.text
            return list(r.json()["incident_ids"])

        def executed(incident_id: str) -> None:  # the SAFE pod restart runs alone
            wait_for(
                lambda: script_exec(stack.viewer.timeline(incident_id), "result"),
                timeout=60,
            )

        (fixed,) = send("firing")
        executed(fixed)
        send("resolved")  # the source says the condition cleared
        inc = stack.viewer.wait_status(fixed, "CLOSED", timeout=60)
        assert inc["escalation_reason"] is None
        tl = stack.viewer.timeline(fixed)
        (ver,) = [e for e in tl if e["action_type"] == "VERIFICATION"]
        out = ver["details"]["output"]
        assert out["recovered"] is True and out["reason"].startswith("the incident's alerts")
        detail = stack.viewer.incident(fixed)
        assert detail["verification"]["recovered"] is True
        assert detail["verification"]["reason"] == out["reason"]
        assert detail["verification"]["checks"] == len(ver["details"]["input"]["checks"])
        assert detail["approvals"] == []  # the SAFE restart needed none

        (stuck,) = send("firing")  # fires again: a new incident (the first one is closed)
        assert stuck != fixed
        executed(stuck)
        inc = stack.viewer.wait_status(stuck, "ESCALATED", timeout=60)
        assert "the incident's alerts" in inc["escalation_reason"]
        assert "did not stay clear" in inc["escalation_reason"]
