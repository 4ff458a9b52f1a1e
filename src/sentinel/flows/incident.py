"""The spec's agent graph as durable workflows.

triage_incident:   AlertReceived → ContextGathering → RootCauseAnalysis → RemediationPlanning
                   → RiskEvaluation → (EXECUTE: start remediation | otherwise EscalateToHuman)
remediate_incident: AutonomousExecution → Verification → IncidentClosed | EscalatedRunbook

The workflow functions branch only on step outputs. Each external call is its own step.
Where a component is not configured, the step records why and the incident takes the
spec's human path (escalation) with what was gathered; it never invents a result.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from sentinel.audit.models import ActionType
from sentinel.context.base import AlertContext, ContextRequest, SourceResult
from sentinel.core.clock import utcnow
from sentinel.core.ids import remediation_workflow_id
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.effects import at_most_once, db_step
from sentinel.incident import service as incident_service
from sentinel.incident.models import IncidentStatus

TRIAGE = "triage_incident"
REMEDIATE = "remediate_incident"


def _incident_doc(s: Session, incident_id: str) -> dict[str, Any]:
    inc = incident_service.get(session=s, incident_id=incident_id)
    return {
        "incident_id": inc.incident_id,
        "service": inc.service,
        "title": inc.title,
        "status": inc.status,
        "source_alert": inc.source_alert,
    }


# ---------------------------------------------------------------- steps


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


@runtime.step(name="RootCauseAnalysis")
def root_cause_analysis(incident_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Run the configured analyzer; record plainly when there is none."""
    analyzer = flow_deps.get().analyzer

    def body(s: Session) -> dict[str, Any]:
        if analyzer is None:
            return {"rca": None, "reason": "no analyzer configured"}
        rca = analyzer.analyze(_incident_doc(s, incident_id), snapshot)
        inc = incident_service.get(session=s, incident_id=incident_id)
        inc.rca = rca
        inc.rca_hypothesis = str(rca.get("hypothesis") or "") or None
        return {"rca": rca, "analyzer": analyzer.name}

    return db_step("RootCauseAnalysis", incident_id, {"snapshot": snapshot}, body)


@runtime.step(name="RemediationPlanning")
def remediation_planning(incident_id: str, rca: dict[str, Any]) -> dict[str, Any]:
    """Ask the configured planner for one catalog action; it proposes only."""
    planner = flow_deps.get().planner

    def body(s: Session) -> dict[str, Any]:
        if planner is None:
            return {"proposal": None, "reason": "no planner configured"}
        proposal = planner.plan(_incident_doc(s, incident_id), rca.get("rca"), {})
        if proposal is None:
            return {"proposal": None, "reason": f"planner {planner.name} proposed no action"}
        return {"proposal": proposal, "planner": planner.name}

    return db_step("RemediationPlanning", incident_id, {"rca": rca}, body)


@runtime.step(name="RiskEvaluation")
def risk_evaluation(incident_id: str, plan: dict[str, Any]) -> dict[str, Any]:
    """The deterministic policy decides; with nothing to decide on, the answer is a human."""
    policy = flow_deps.get().policy

    def body(s: Session) -> dict[str, Any]:
        proposal = plan.get("proposal")
        if proposal is None:
            return {"outcome": "ESCALATE", "reason": plan.get("reason", "no proposal")}
        if policy is None:
            return {"outcome": "ESCALATE", "reason": "no policy engine configured: default deny"}
        decision = policy.decide(proposal, _incident_doc(s, incident_id))
        return {"outcome": decision["outcome"], "decision": decision}

    return db_step(
        "RiskEvaluation", incident_id, {"plan": plan}, body, action_type=ActionType.POLICY_EVAL
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
        "EscalateToHuman",
        incident_id,
        {"reason": reason},
        body,
        action_type=ActionType.ESCALATION,
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


# ---------------------------------------------------------------- workflows


@runtime.workflow(name=TRIAGE)
def triage_incident(incident_id: str) -> dict[str, Any]:
    """Triage: from the alert to a decision. Waiting for a human holds no worker."""
    std = alert_received(incident_id)
    results = {name: gather_source(incident_id, name, std) for name in std["context_sources"]}
    snapshot = store_context(incident_id, results)
    rca = root_cause_analysis(incident_id, snapshot)
    plan = remediation_planning(incident_id, rca)
    decision = risk_evaluation(incident_id, plan)
    missing = [r["reason"] for r in (rca, plan) if r.get("reason")]
    outcome = decision["outcome"]
    if outcome == "EXECUTE":
        # The remediation workflow id is deterministic, so it starts once.
        runtime.enqueue_child(remediate_incident, remediation_workflow_id(incident_id), incident_id)
        return {"outcome": outcome, "next": remediation_workflow_id(incident_id)}
    reason = decision.get("reason") or f"policy outcome {outcome}"
    if decision.get("reason") and missing:
        reason = "; ".join(dict.fromkeys([*missing, reason]))
    escalate_to_human(incident_id, reason)
    sent = notify(incident_id, "escalated", reason)
    return {"outcome": "ESCALATED", "reason": reason, "notification": sent["status"]}


@runtime.workflow(name=REMEDIATE)
def remediate_incident(incident_id: str) -> dict[str, Any]:
    """Remediation: execute → verify → close, or escalate (executors arrive with the policy)."""
    reason = "no executor configured: the approved action was not run"
    escalate_to_human(incident_id, reason)
    notify(incident_id, "escalated", reason)
    return {"outcome": "ESCALATED", "reason": reason}
