"""The spec's agent graph as durable workflows.

triage_incident:    AlertReceived → ContextGathering → ReadFacts → RootCauseAnalysis →
                    RemediationPlanning → RiskEvaluation →
                      EXECUTE           → start remediate_incident
                      REQUIRE_APPROVAL  → AwaitingApproval (the approval API starts remediation)
                      DENY/SHADOW/none  → EscalateToHuman
remediate_incident: ReadFacts → RiskEvaluation (again, with the approval) → AutonomousExecution →
                    Verification → IncidentClosed | EscalatedRunbook → EscalateToHuman

The workflow functions branch only on step outputs. Each external call is its own step.
Where a component is not configured, the step records why and the incident takes the
spec's human path (escalation) with what was gathered; it never invents a result.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.approval import service as approval_service
from sentinel.approval.models import ApprovalRequest, ApprovalStatus
from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.context.base import AlertContext, ContextRequest, SourceResult
from sentinel.context.prometheus import expr_from_generator_url
from sentinel.core.clock import utcnow
from sentinel.core.db import transaction
from sentinel.core.ids import approval_expired_workflow_id, remediation_workflow_id
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.channels import chat_update, page
from sentinel.flows.effects import at_most_once, db_step
from sentinel.flows.facts import read_facts
from sentinel.incident import service as incident_service
from sentinel.incident.models import AlertStatus, ContextSnapshot, IncidentStatus
from sentinel.plan import service as plan_service
from sentinel.plan.models import ExecutionStatus
from sentinel.policy.actions import Action, ProposedAction, parse_proposal
from sentinel.policy.engine import evaluate
from sentinel.policy.facts import Facts

TRIAGE = "triage_incident"
REMEDIATE = "remediate_incident"
APPROVAL_EXPIRED = "approval_expired"
REQUESTER = "sentinel"


def _incident_doc(s: Session, incident_id: str) -> dict[str, Any]:
    inc = incident_service.get(session=s, incident_id=incident_id)
    return {
        "incident_id": inc.incident_id,
        "service": inc.service,
        "title": inc.title,
        "status": inc.status,
        "source_alert": inc.source_alert,
    }


def _proposal(doc: dict[str, Any]) -> ProposedAction:
    return ProposedAction(
        action_id=str(doc.get("action_id")),
        params=dict(doc.get("params") or {}),
        reasoning=str(doc.get("reasoning") or ""),
    )


# ---------------------------------------------------------------- triage steps


@runtime.step(name="AlertReceived")
def alert_received(incident_id: str) -> dict[str, Any]:
    """Standardize: load the incident's alerts, mark it ANALYZING, fix the source list."""

    def body(s: Session) -> dict[str, Any]:
        inc = incident_service.set_status(
            session=s, incident_id=incident_id, status=IncidentStatus.ANALYZING
        )
        alerts = incident_service.alerts_of(session=s, incident_id=incident_id)
        return {
            "service": inc.service,
            "alerts": [
                {
                    "alertname": a.alertname,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "generator_url": a.generator_url,
                    "starts_at": a.starts_at.isoformat() if a.starts_at else None,
                }
                for a in alerts
            ],
            "context_sources": [c.name for c in flow_deps.get().context_sources],
        }

    return db_step("AlertReceived", incident_id, {"incident_id": incident_id}, body)


@runtime.step(name="ContextGathering.source")
def gather_source(incident_id: str, source: str, standardized: dict[str, Any]) -> dict[str, Any]:
    """Read one context source (read-only; a failure is a recorded partial result)."""
    src = next((c for c in flow_deps.get().context_sources if c.name == source), None)
    if src is None:
        return SourceResult(
            source=source, ok=False, error="source no longer configured"
        ).model_dump(mode="json")
    req = ContextRequest(
        incident_id=incident_id,
        service=standardized["service"],
        alerts=[AlertContext.model_validate(a) for a in standardized["alerts"]],
        now=utcnow(),
    )
    try:
        res = src.gather(req)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not lose the incident
        res = SourceResult(source=source, ok=False, error=f"{type(exc).__name__}: {exc}")
    return res.model_dump(mode="json")


@runtime.step(name="ContextGathering.store")
def store_context(incident_id: str, results: dict[str, Any]) -> dict[str, Any]:
    """Store the snapshot verbatim (and audit it) in one transaction."""

    def body(s: Session) -> dict[str, Any]:
        sources = {
            name: {
                "ok": r["ok"],
                "error": r.get("error"),
                "truncated": r.get("truncated", False),
                "queries": [q["query"] for q in r.get("queries", [])],
            }
            for name, r in results.items()
        }
        snap = incident_service.add_snapshot(
            session=s, incident_id=incident_id, sources=sources, data=results
        )
        return {"snapshot_id": snap.snapshot_id, "sources": sources, "size_bytes": snap.size_bytes}

    return db_step(
        "ContextGathering",
        incident_id,
        {"results": results},
        body,
        action_type=ActionType.CONTEXT_GATHERED,
    )


@runtime.step(name="ReadFacts")
def read_policy_facts(incident_id: str, for_remediation: bool) -> dict[str, Any]:
    """Read inventory, clock, history (and the approval) once; the decision uses this record."""
    d = flow_deps.get()
    with Session(d.engine) as s:
        approval_id = None
        if for_remediation:
            plan = plan_service.latest(session=s, incident_id=incident_id)
            if plan is not None:
                approval_id = s.scalar(
                    select(ApprovalRequest.approval_id)
                    .where(
                        ApprovalRequest.plan_id == plan.plan_id,
                        ApprovalRequest.status == ApprovalStatus.APPROVED,
                    )
                    .limit(1)
                )
        return read_facts(d, s, approval_id=approval_id)


@runtime.step(name="RootCauseAnalysis.compute")
def compute_rca(incident_id: str, snapshot_id: str) -> dict[str, Any]:
    """Causal analysis of the stored snapshot, then the LLM analyst when configured.

    Its own step, outside any write transaction: an LLM call may take seconds.
    """
    d = flow_deps.get()
    if d.analyzer is None and d.llm is None:
        return {"rca": None, "reason": "no analyzer configured", "snapshot_id": snapshot_id}
    with Session(d.engine) as s:
        doc = _incident_doc(s, incident_id)
        snap = s.get(ContextSnapshot, snapshot_id)
        data = dict(snap.data) if snap is not None else {}
    if d.settings.callgraph:
        doc["callgraph"] = {"edges": d.settings.callgraph}
    rca = d.analyzer.analyze(doc, data) if d.analyzer is not None else None
    used = d.analyzer.name if d.analyzer is not None else None
    if d.llm is not None:
        llm_rca = d.llm.analyze(doc, {"data": data, "causal": rca})
        if llm_rca.get("ok") and not llm_rca.get("fallback_required"):
            rca, used = {**llm_rca, "causal": rca}, "llm"
        elif rca is not None:
            rca = {**rca, "llm_attempt": llm_rca}
        else:
            rca = llm_rca
    if rca is None:
        return {"rca": None, "reason": "analysis produced nothing", "snapshot_id": snapshot_id}
    return {"rca": rca, "analyzer": used, "snapshot_id": snapshot_id}


@runtime.step(name="RootCauseAnalysis")
def root_cause_analysis(incident_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Record the analysis on the incident (and in the audit log)."""

    def body(s: Session) -> dict[str, Any]:
        rca = result.get("rca")
        if rca is not None:
            inc = incident_service.get(session=s, incident_id=incident_id)
            inc.rca = rca
            inc.rca_hypothesis = str(rca.get("hypothesis") or "") or None
        return result

    return db_step(
        "RootCauseAnalysis", incident_id, {"snapshot_id": result.get("snapshot_id")}, body
    )


@runtime.step(name="RemediationPlanning.propose")
def propose(incident_id: str, rca: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """Ask the planner (LLM and/or runbooks) for one catalog action; outside any transaction."""
    planner = flow_deps.get().planner
    if planner is None:
        return {"action_id": None, "reason": "no planner configured", "planner": None}
    with Session(flow_deps.get().engine) as s:
        doc = _incident_doc(s, incident_id)
    out = planner.plan(doc, rca.get("rca"), {"inventory": facts.get("inventory", {})})
    return {**out, "planner": str(out.get("planner") or planner.name)}


@runtime.step(name="RemediationPlanning")
def remediation_planning(incident_id: str, out: dict[str, Any]) -> dict[str, Any]:
    """Record the proposal as a plan; the planner proposes only."""

    def body(s: Session) -> dict[str, Any]:
        kept = ("runbook_id", "llm_trace", "flags", "usage", "fallback", "evidence_refs")
        extra: dict[str, Any] = {k: out[k] for k in kept if k in out}
        if not out.get("action_id"):
            reason = str(out.get("reason") or "no proposal")
            if out.get("planner"):
                reason = f"{out['planner']} planner: {reason}"
            return {"proposal": None, "reason": reason, **extra}
        proposal = {k: out.get(k) for k in ("action_id", "params", "reasoning")}
        parsed = parse_proposal(_proposal(proposal))
        target = parsed.target() if isinstance(parsed, Action) else str(proposal["action_id"])
        risk = parsed.risk_floor.value if isinstance(parsed, Action) else "UNKNOWN"
        plan = plan_service.create(
            session=s,
            incident_id=incident_id,
            proposal=proposal,
            planner=str(out["planner"]),
            target=target,
            risk_level=risk,
        )
        return {
            "proposal": proposal,
            "planner": out["planner"],
            "plan_id": plan.plan_id,
            "target": target,
            **extra,
        }

    return db_step("RemediationPlanning", incident_id, {"planner_output": out}, body)


@runtime.step(name="RiskEvaluation")
def risk_evaluation(
    incident_id: str, plan: dict[str, Any], facts: dict[str, Any]
) -> dict[str, Any]:
    """The deterministic policy decides on the recorded facts; an approval opens if it asks."""
    d = flow_deps.get()

    def body(s: Session) -> dict[str, Any]:
        proposal = plan.get("proposal")
        if proposal is None:
            return {"outcome": "ESCALATE", "reason": plan.get("reason", "no proposal")}
        if d.policy is None:
            return {"outcome": "ESCALATE", "reason": "no policy loaded: default deny"}
        decision = evaluate(_proposal(proposal), Facts.model_validate(facts), d.policy)
        doc = decision.model_dump(mode="json")
        row = plan_service.get(session=s, plan_id=plan["plan_id"])
        row.decision = doc
        row.risk_level = decision.risk.value
        out: dict[str, Any] = {"outcome": decision.outcome.value, "decision": doc}
        if decision.outcome.value == "REQUIRE_APPROVAL":
            req = approval_service.open_request(
                session=s,
                incident_id=incident_id,
                plan_id=row.plan_id,
                action_id=decision.action_id,
                target=decision.target or row.target_resource,
                risk_level=decision.risk.value,
                proposal_digest=decision.proposal_digest,
                requested_by=REQUESTER,
                ttl_seconds=d.settings.policy.approval_ttl_seconds,
            )
            incident_service.set_status(
                session=s, incident_id=incident_id, status=IncidentStatus.AWAITING_APPROVAL
            )
            out["approval_id"] = req.approval_id
        elif decision.outcome.value == "EXECUTE":
            incident_service.set_status(
                session=s, incident_id=incident_id, status=IncidentStatus.MITIGATING
            )
        else:
            row.execution_status = ExecutionStatus.SKIPPED
            out["reason"] = f"policy {decision.outcome.value} ({decision.rule_id}): " + "; ".join(
                decision.reasons
            )
        return out

    return db_step(
        "RiskEvaluation",
        incident_id,
        {
            "proposal": plan.get("proposal"),
            "facts": facts,
            "policy_hash": d.policy.sha256 if d.policy else None,
        },
        body,
        action_type=ActionType.POLICY_EVAL,
    )


@runtime.step(name="EscalateToHuman")
def escalate_to_human(incident_id: str, reason: str) -> dict[str, Any]:
    """Hand the incident to a human with what was gathered and why."""

    def body(s: Session) -> dict[str, Any]:
        incident_service.set_status(
            session=s, incident_id=incident_id, status=IncidentStatus.ESCALATED, reason=reason
        )
        return {"status": IncidentStatus.ESCALATED, "reason": reason}

    return db_step(
        "EscalateToHuman", incident_id, {"reason": reason}, body, action_type=ActionType.ESCALATION
    )


@runtime.step(name="Notify")
def notify(incident_id: str, event: str, reason: str) -> dict[str, Any]:
    """Tell humans, at most once per incident and event (one step per external call)."""
    d = flow_deps.get()
    notifier = d.notifier
    key = f"{runtime.current_workflow_id()}:notify:{event}"
    if notifier is None:
        return {"status": "SKIPPED", "reason": "no notifier configured"}
    payload = {"event": event, "incident_id": incident_id, "reason": reason}
    return at_most_once(
        incident_id=incident_id,
        kind="notify",
        target=notifier.name,
        key=key,
        call=lambda: notifier.send(payload, key),
        reconcile=lambda: (
            None if (seen := notifier.reconcile(key)) is None else {"ok": seen, "reconciled": True}
        ),
        action_type=ActionType.NOTIFICATION,
    )


# ---------------------------------------------------------------- remediation steps


@runtime.step(name="RiskEvaluation.recheck")
def risk_recheck(incident_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Decide again on fresh facts (and the approval); consume the approval if it runs."""
    d = flow_deps.get()

    def body(s: Session) -> dict[str, Any]:
        plan = plan_service.latest(session=s, incident_id=incident_id)
        if plan is None:
            return {"outcome": "ESCALATE", "reason": "no plan to execute"}
        if d.policy is None:
            return {"outcome": "ESCALATE", "reason": "no policy loaded: default deny"}
        proposal = {
            "action_id": plan.proposed_action,
            "params": plan.params,
            "reasoning": plan.reasoning or "",
        }
        decision = evaluate(_proposal(proposal), Facts.model_validate(facts), d.policy)
        doc = decision.model_dump(mode="json")
        plan.decision = doc
        out: dict[str, Any] = {
            "outcome": decision.outcome.value,
            "decision": doc,
            "proposal": proposal,
            "plan_id": plan.plan_id,
            "action": {
                "action_id": plan.proposed_action,
                "params": plan.params,
                "target": decision.target or plan.target_resource,
            },
            "service": decision.service,
        }
        if decision.outcome.value == "EXECUTE":
            if decision.approval_id:
                approval_service.consume(session=s, approval_id=decision.approval_id)
                plan.human_approved = True
            plan.execution_status = ExecutionStatus.EXECUTING
            incident_service.set_status(
                session=s, incident_id=incident_id, status=IncidentStatus.MITIGATING
            )
        else:
            plan.execution_status = ExecutionStatus.SKIPPED
            out["reason"] = (
                f"policy {decision.outcome.value} at execution time ({decision.rule_id}): "
                + "; ".join(decision.reasons)
            )
        return out

    return db_step(
        "RiskEvaluation.recheck",
        incident_id,
        {"facts": facts, "policy_hash": d.policy.sha256 if d.policy else None},
        body,
        action_type=ActionType.POLICY_EVAL,
    )


@runtime.step(name="AutonomousExecution")
def autonomous_execution(incident_id: str, checked: dict[str, Any]) -> dict[str, Any]:
    """Run the approved action once (intent first; reconcile, never re-run, after a crash)."""
    d = flow_deps.get()
    executor = d.executor
    action = checked["action"]
    key = f"{runtime.current_workflow_id()}:execute"
    if executor is None:
        return {"status": "FAILED", "result": {"ok": False, "error": "no executor configured"}}
    ran = at_most_once(
        incident_id=incident_id,
        kind="execute",
        target=action["target"],
        key=key,
        call=lambda: executor.execute(action, key),
        reconcile=lambda: executor.reconcile(action, key),
        action_type=ActionType.SCRIPT_EXEC,
        action_id=action["action_id"],
        service=checked.get("service"),
    )
    return {"status": str(ran["status"]), "result": ran["result"]}


@runtime.step(name="ExecutionRecorded")
def execution_recorded(incident_id: str, plan_id: str, ran: dict[str, Any]) -> dict[str, Any]:
    """Record the execution's outcome on the plan; move to VERIFYING when it succeeded."""

    def body(s: Session) -> dict[str, Any]:
        plan = plan_service.get(session=s, plan_id=plan_id)
        ok = ran["status"] == "SUCCEEDED"
        plan.execution_status = ExecutionStatus.SUCCESS if ok else ExecutionStatus.FAILED
        if ok:
            incident_service.set_status(
                session=s, incident_id=incident_id, status=IncidentStatus.VERIFYING
            )
        return {"ok": ok, "status": ran["status"]}

    return db_step("ExecutionRecorded", incident_id, {"execution": ran}, body)


@runtime.step(name="Verification.check")
def verification_check(expression: str, labels: dict[str, str]) -> dict[str, Any]:
    """Evaluate the alert's expression now (read-only); only the alert's own series count."""
    verifier = flow_deps.get().verifier
    if verifier is None:
        return {"ok": False, "firing": None, "error": "no verifier configured"}
    try:
        return verifier.check(expression, labels)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "firing": None, "error": f"{type(exc).__name__}: {exc}"}


@runtime.step(name="Verification.alerts")
def verification_alerts(incident_id: str) -> dict[str, Any]:
    """Without an expression to evaluate (a Grafana, Datadog, PagerDuty or generic alert):
    are the incident's alerts still firing, as their sources last said? Each source's
    resolved notification marks its alert resolved at ingest."""
    d = flow_deps.get()
    with Session(d.engine) as s:
        alerts = incident_service.alerts_of(session=s, incident_id=incident_id)
    firing = sorted({a.alertname for a in alerts if a.status == AlertStatus.FIRING})
    return {"ok": bool(alerts), "firing": bool(firing), "error": None, "alerts": firing[:5]}


@runtime.step(name="Verification")
def verification_result(incident_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """Record whether the metric recovered."""
    return db_step(
        "Verification",
        incident_id,
        {"checks": outcome.get("checks", [])},
        lambda s: {"recovered": outcome["recovered"], "reason": outcome["reason"]},
        action_type=ActionType.VERIFICATION,
    )


@runtime.step(name="IncidentClosed")
def incident_closed(incident_id: str, reason: str) -> dict[str, Any]:
    """Close the incident."""

    def body(s: Session) -> dict[str, Any]:
        incident_service.set_status(
            session=s, incident_id=incident_id, status=IncidentStatus.CLOSED
        )
        return {"status": IncidentStatus.CLOSED, "reason": reason}

    return db_step("IncidentClosed", incident_id, {"reason": reason}, body)


@runtime.step(name="EscalatedRunbook")
def escalated_runbook(incident_id: str, reason: str) -> dict[str, Any]:
    """The fix did not help: record it before handing over to a human."""
    return db_step(
        "EscalatedRunbook", incident_id, {"reason": reason}, lambda s: {"reason": reason}
    )


@runtime.step(name="VerificationPlan")
def verification_plan(incident_id: str) -> dict[str, Any]:
    """Which expression to watch and for how long (read once, so the loop is deterministic)."""
    d = flow_deps.get()
    with Session(d.engine) as s:
        inc = incident_service.get(session=s, incident_id=incident_id)
        expr = expr_from_generator_url((inc.source_alert or {}).get("generator_url"))
        labels = dict((inc.source_alert or {}).get("labels") or {})
    v = d.settings.verify
    return {
        "expression": expr,
        "labels": labels,
        "can_verify": d.verifier is not None,
        "interval": v.interval_seconds,
        "stable_checks": max(1, math.ceil(v.stable_seconds / v.interval_seconds)),
        "max_checks": max(1, math.ceil(v.deadline_seconds / v.interval_seconds)),
    }


# ---------------------------------------------------------------- workflows


def _escalate(incident_id: str, reason: str) -> dict[str, Any]:
    escalate_to_human(incident_id, reason)
    sent = notify(incident_id, "escalated", reason)
    chat_update(incident_id, "escalated", {"reason": reason})
    page(incident_id, "trigger", reason)
    return {"outcome": "ESCALATED", "reason": reason, "notification": sent["status"]}


def _decision_detail(decision: dict[str, Any]) -> dict[str, Any]:
    """What the chat update says about a policy decision (the approval id when one opened)."""
    doc = decision.get("decision") or {}
    return {
        "outcome": decision["outcome"],
        "action_id": doc.get("action_id"),
        "target": doc.get("target"),
        "risk": doc.get("risk"),
        "rule_id": doc.get("rule_id"),
        "reason": decision.get("reason"),
        "approval_id": decision.get("approval_id"),
    }


@runtime.workflow(name=TRIAGE)
def triage_incident(incident_id: str) -> dict[str, Any]:
    """Triage: from the alert to a decision. Waiting for a human holds no worker."""
    std = alert_received(incident_id)
    chat_update(incident_id, "opened", {"alerts": [a["alertname"] for a in std["alerts"]]})
    results = {name: gather_source(incident_id, name, std) for name in std["context_sources"]}
    snapshot = store_context(incident_id, results)
    facts = read_policy_facts(incident_id, False)
    rca = root_cause_analysis(incident_id, compute_rca(incident_id, snapshot["snapshot_id"]))
    chat_update(
        incident_id,
        "root_cause",
        {"hypothesis": (rca.get("rca") or {}).get("hypothesis"), "reason": rca.get("reason")},
    )
    plan = remediation_planning(incident_id, propose(incident_id, rca, facts))
    decision = risk_evaluation(incident_id, plan, facts)
    outcome = decision["outcome"]
    chat_update(incident_id, "decision", _decision_detail(decision))
    if outcome == "EXECUTE":
        # The remediation workflow id is deterministic, so it starts once.
        runtime.enqueue_child(remediate_incident, remediation_workflow_id(incident_id), incident_id)
        return {"outcome": outcome, "next": remediation_workflow_id(incident_id)}
    if outcome == "REQUIRE_APPROVAL":
        notify(incident_id, "approval_requested", f"approval {decision['approval_id']} needed")
        return {"outcome": outcome, "approval_id": decision["approval_id"]}
    missing = [r["reason"] for r in (rca, plan) if r.get("reason")]
    reason = decision.get("reason") or f"policy outcome {outcome}"
    if plan.get("proposal") is None and missing:
        reason = "; ".join(dict.fromkeys([*missing, reason]))
    return _escalate(incident_id, reason)


@runtime.workflow(name=APPROVAL_EXPIRED)
def approval_expired(incident_id: str, approval_id: str) -> dict[str, Any]:
    """Nobody answered the approval request in time: EscalateToHuman (status, notification,
    chat, page), each at most once like any escalation."""
    return _escalate(incident_id, f"approval {approval_id} expired unanswered; nothing ran")


def expire_approvals(engine: Engine, enqueuer: runtime.Enqueuer) -> list[str]:
    """Expire the pending approvals past their time, each with its audit record and its
    escalation workflow enqueued in the same commit (the worker runs this periodically).
    An incident would otherwise wait in AWAITING_APPROVAL for ever, out of the pending list."""
    with transaction(engine) as s:
        due = approval_service.expire_due(session=s)
        for req in due:
            audit.append(
                s,
                actor=Actor.SENTINEL_AGENT,
                action_type=ActionType.APPROVAL,
                incident_id=req.incident_id,
                details={
                    "approval_id": req.approval_id,
                    "status": ApprovalStatus.EXPIRED,
                    "expires_at": req.expires_at.isoformat(),
                },
            )
            enqueuer.enqueue_in(
                s,
                APPROVAL_EXPIRED,
                approval_expired_workflow_id(req.approval_id),
                req.incident_id,
                req.approval_id,
            )
        return [r.approval_id for r in due]


@runtime.workflow(name=REMEDIATE)
def remediate_incident(incident_id: str) -> dict[str, Any]:
    """Remediation: recheck → execute → verify → close, or escalate."""
    facts = read_policy_facts(incident_id, True)
    checked = risk_recheck(incident_id, facts)
    if checked["outcome"] != "EXECUTE":
        return _escalate(incident_id, checked.get("reason") or "policy refused at execution time")
    ran = autonomous_execution(incident_id, checked)
    recorded = execution_recorded(incident_id, checked["plan_id"], ran)
    chat_update(
        incident_id,
        "executed",
        {
            **{k: checked["action"].get(k) for k in ("action_id", "target")},
            "status": ran["status"],
            "error": (ran.get("result") or {}).get("error"),
        },
    )
    if not recorded["ok"]:
        reason = f"execution {ran['status']}: {ran['result'].get('error') or ran['result']}"
        escalated_runbook(incident_id, reason)
        return _escalate(incident_id, reason)
    vp = verification_plan(incident_id)
    expression = vp["expression"]
    if expression and not vp["can_verify"]:
        return _escalate(incident_id, "executed, but no verifier (Prometheus) is configured")
    # No expression: the sources' own resolved notifications say whether the alerts cleared.
    watched = expression or "the incident's alerts (their sources' resolved notifications)"
    checks: list[dict[str, Any]] = []
    clear_run = 0
    recovered = False
    for _ in range(int(vp["max_checks"])):
        runtime.durable_sleep(float(vp["interval"]))
        if expression:
            c = verification_check(expression, vp["labels"])
        else:
            c = verification_alerts(incident_id)
        checks.append({"ok": c.get("ok"), "firing": c.get("firing"), "error": c.get("error")})
        clear_run = clear_run + 1 if c.get("ok") and c.get("firing") is False else 0
        if clear_run >= int(vp["stable_checks"]):
            recovered = True
            break
    reason = (
        f"{watched} clear for {clear_run} consecutive checks"
        if recovered
        else f"{watched} did not stay clear within {len(checks)} checks"
    )
    verification_result(incident_id, {"recovered": recovered, "reason": reason, "checks": checks})
    if recovered:
        incident_closed(incident_id, reason)
        notify(incident_id, "resolved", reason)
        chat_update(incident_id, "resolved", {"reason": reason})
        page(incident_id, "resolve", reason)
        return {"outcome": "CLOSED", "reason": reason}
    escalated_runbook(incident_id, reason)
    return _escalate(incident_id, f"remediation did not recover the metric: {reason}")
