"""Pydantic I/O for approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ApprovalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    approval_id: str
    incident_id: str
    plan_id: str
    action_id: str
    target: str
    risk_level: str
    proposal_digest: str
    requested_by: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None
    params: dict[str, Any] | None = None  # the exact parameters being approved


class DecisionIn(BaseModel):
    """Body of approve/reject."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=2000)
