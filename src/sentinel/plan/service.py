"""Remediation plan reads and writes. Flushes, never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.plan.models import RemediationPlan
from sentinel.plan.schemas import PlanRead


def plans_of(*, session: Session, incident_id: str) -> list[PlanRead]:
    """An incident's plans, oldest first."""
    rows = session.scalars(
        select(RemediationPlan)
        .where(RemediationPlan.incident_id == incident_id)
        .order_by(RemediationPlan.created_at)
    )
    return [PlanRead.model_validate(p) for p in rows]
