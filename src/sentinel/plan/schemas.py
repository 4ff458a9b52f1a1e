"""Pydantic I/O for remediation plans."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class PlanRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    plan_id: str
    proposed_action: str
    target_resource: str
    params: dict[str, Any]
    reasoning: str | None
    planner: str
    risk_level: str
    decision: dict[str, Any] | None
    human_approved: bool | None
    execution_status: str
    created_at: datetime
