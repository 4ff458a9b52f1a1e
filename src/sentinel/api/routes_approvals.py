"""Approvals: list, approve (starts remediation exactly once), reject (closes, per the graph)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query

from sentinel.api.slack_messages import refresh_approval_message
from sentinel.api.state import AppState, CurrentPrincipal, Reader, StateDep
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
    approval_id: str,
    state: StateDep,
    who: Approver,
    later: BackgroundTasks,
    body: DecisionIn | None = None,
) -> ApprovalRead:
    """Approve: recorded and the remediation workflow enqueued in one transaction."""
    read = decide_approval(
        state,
        approval_id=approval_id,
        approve=True,
        user=who.name,
        role=who.role,
        comment=body.comment if body else "",
    )
    later.add_task(refresh_approval_message, state, approval_id)  # after the reply
    return read


@router.post("/{approval_id}/reject", response_model=ApprovalRead)
def reject(
    approval_id: str,
    state: StateDep,
    who: Approver,
    later: BackgroundTasks,
    body: DecisionIn | None = None,
) -> ApprovalRead:
    """Reject: nothing runs; the incident is closed by the human (EscalateToHuman → Closed)."""
    read = decide_approval(
        state,
        approval_id=approval_id,
        approve=False,
        user=who.name,
        role=who.role,
        comment=body.comment if body else "",
    )
    later.add_task(refresh_approval_message, state, approval_id)  # after the reply
    return read


def decide_approval(
    state: AppState,
    *,
    approval_id: str,
    approve: bool,
    user: str,
    role: str,
    comment: str,
    via: dict[str, Any] | None = None,
) -> ApprovalRead:
    """One human decision, whichever way it arrives (API, dashboard, Slack): same rules, one commit.

    Approving enqueues the remediation workflow under its deterministic id; rejecting closes
    the incident. Raises Forbidden/Conflict/NotFound from the approval service.
    """
    with transaction(state.engine) as s:
        if approve:
            risk = approval_service.get(session=s, approval_id=approval_id).risk_level
            req = approval_service.decide(
                session=s,
                approval_id=approval_id,
                approve=True,
                user=user,
                role=role,
                comment=comment,
                allowed_roles=frozenset(state.policy().document.roles_for(RiskLevel(risk))),
                via=via,
            )
            # Deterministic id: a second start of the same remediation is a no-op.
            state.enqueuer.enqueue_in(
                s, REMEDIATE, remediation_workflow_id(req.incident_id), req.incident_id
            )
            return ApprovalRead.model_validate(req)
        req = approval_service.decide(
            session=s,
            approval_id=approval_id,
            approve=False,
            user=user,
            role=role,
            comment=comment,
            via=via,
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
                "reason": f"rejected by {user}",
                "comment": req.comment,
            },
        )
        return ApprovalRead.model_validate(req)
