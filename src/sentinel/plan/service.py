"""Remediation plan reads and writes. Flushes, never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.core.errors import NotFound
from sentinel.plan.models import ExecutionStatus, RemediationPlan
from sentinel.plan.schemas import PlanRead


def plans_of(*, session: Session, incident_id: str) -> list[PlanRead]:
    """An incident's plans, oldest first."""
    rows = session.scalars(
        select(RemediationPlan)
        .where(RemediationPlan.incident_id == incident_id)
        .order_by(RemediationPlan.created_at)
    )
    return [PlanRead.model_validate(p) for p in rows]


def create(
    *,
    session: Session,
    incident_id: str,
    proposal: dict[str, Any],
    planner: str,
    target: str,
    risk_level: str,
) -> RemediationPlan:
    """Record a proposal as a plan (PENDING until the policy and execution say otherwise)."""
    plan = RemediationPlan(
        incident_id=incident_id,
        proposed_action=str(proposal.get("action_id")),
        target_resource=target,
        params=dict(proposal.get("params") or {}),
        reasoning=proposal.get("reasoning"),
        planner=planner,
        risk_level=risk_level,
        execution_status=ExecutionStatus.PENDING,
    )
    session.add(plan)
    session.flush()
    return plan


def get(*, session: Session, plan_id: str) -> RemediationPlan:
    """Return a plan or raise NotFound."""
    plan = session.get(RemediationPlan, plan_id)
    if plan is None:
        raise NotFound(f"plan {plan_id} not found")
    return plan


def latest(*, session: Session, incident_id: str) -> RemediationPlan | None:
    """The incident's most recent plan."""
    return session.scalar(
        select(RemediationPlan)
        .where(RemediationPlan.incident_id == incident_id)
        .order_by(RemediationPlan.created_at.desc())
        .limit(1)
    )
