"""Approvals: list, approve (starts remediation exactly once), reject (closes, per the graph)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sentinel.api.state import CurrentPrincipal, Reader, StateDep
from sentinel.approval import service as approval_service
from sentinel.approval.schemas import ApprovalRead, DecisionIn
from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.auth.service import Principal
from sentinel.core.db import transaction
from sentinel.core.ids import remediation_workflow_id
from sentinel.flows.incident import REMEDIATE
from sentinel.incident import service as incident_service
from sentinel.incident.models import IncidentStatus
from sentinel.plan import service as plan_service
from sentinel.plan.models import ExecutionStatus
from sentinel.policy.actions import RiskLevel

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])


def approver(principal: CurrentPrincipal) -> Principal:
    principal.require("approve")
    return principal


Approver = Annotated[Principal, Depends(approver)]


@router.get("", response_model=list[ApprovalRead])
def list_approvals(
    state: StateDep, _: Reader, status: Annotated[str | None, Query()] = None
) -> list[ApprovalRead]:
    """Approval requests, newest first (status=pending hides expired ones)."""
    with transaction(state.engine) as s:
        rows = approval_service.list_by_status(session=s, status=status)
        out = []
        for r in rows:
            plan = plan_service.get(session=s, plan_id=r.plan_id)
            out.append(ApprovalRead.model_validate(r).model_copy(update={"params": plan.params}))
        return out


@router.post("/{approval_id}/approve", response_model=ApprovalRead)
def approve(
    approval_id: str, state: StateDep, who: Approver, body: DecisionIn | None = None
) -> ApprovalRead:
    """Approve: recorded and the remediation workflow enqueued in one transaction."""
    with transaction(state.engine) as s:
        risk = approval_service.get(session=s, approval_id=approval_id).risk_level
        req = approval_service.decide(
            session=s,
            approval_id=approval_id,
            approve=True,
            user=who.name,
            role=who.role,
            comment=(body.comment if body else ""),
            allowed_roles=frozenset(state.policy().document.roles_for(RiskLevel(risk))),
        )
        # Deterministic id: a second start of the same remediation is a no-op.
        state.enqueuer.enqueue_in(
            s, REMEDIATE, remediation_workflow_id(req.incident_id), req.incident_id
        )
        return ApprovalRead.model_validate(req)


@router.post("/{approval_id}/reject", response_model=ApprovalRead)
def reject(
    approval_id: str, state: StateDep, who: Approver, body: DecisionIn | None = None
) -> ApprovalRead:
    """Reject: nothing runs; the incident is closed by the human (EscalateToHuman → Closed)."""
    with transaction(state.engine) as s:
        req = approval_service.decide(
            session=s,
            approval_id=approval_id,
            approve=False,
            user=who.name,
            role=who.role,
            comment=(body.comment if body else ""),
        )
        plan = plan_service.get(session=s, plan_id=req.plan_id)
        plan.human_approved = False
        plan.execution_status = ExecutionStatus.SKIPPED
        incident_service.set_status(
            session=s, incident_id=req.incident_id, status=IncidentStatus.CLOSED
        )
        audit.append(
            s,
            actor=Actor.HUMAN_USER,
            action_type=ActionType.WORKFLOW_STEP,
            incident_id=req.incident_id,
            details={
                "step": "IncidentClosed",
                "reason": f"rejected by {who.name}",
                "comment": req.comment,
            },
        )
        return ApprovalRead.model_validate(req)
