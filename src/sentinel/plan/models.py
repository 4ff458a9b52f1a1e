"""ORM model of the spec's Remediation Plan (spec field names kept)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sentinel.core.clock import utcnow
from sentinel.core.db import Base, JsonDoc, UTCDateTime
from sentinel.core.ids import new_id


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    EXECUTING = "EXECUTING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class RemediationPlan(Base):
    """A proposed action for an incident and the deterministic decision about it."""

    __tablename__ = "remediation_plans"

    plan_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.incident_id"), index=True
    )
    proposed_action: Mapped[str] = mapped_column(String(64))
    target_resource: Mapped[str] = mapped_column(String(512))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    planner: Mapped[str] = mapped_column(String(32))
    risk_level: Mapped[str] = mapped_column(String(16))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    human_approved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    execution_status: Mapped[str] = mapped_column(String(16), default=ExecutionStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
