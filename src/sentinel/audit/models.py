"""ORM model of the audit log: canonical RFC 8785 bytes plus the columns needed to query them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from sentinel.core.db import Base, UTCDateTime


class Actor(StrEnum):
    SENTINEL_AGENT = "SENTINEL_AGENT"
    HUMAN_USER = "HUMAN_USER"
    EXTERNAL_SOURCE = "EXTERNAL_SOURCE"


class ActionType(StrEnum):
    ALERT_INGESTED = "ALERT_INGESTED"
    INCIDENT_OPENED = "INCIDENT_OPENED"
    WORKFLOW_STEP = "WORKFLOW_STEP"
    CONTEXT_GATHERED = "CONTEXT_GATHERED"
    LLM_INFERENCE = "LLM_INFERENCE"
    POLICY_EVAL = "POLICY_EVAL"
    APPROVAL = "APPROVAL"
    SCRIPT_EXEC = "SCRIPT_EXEC"
    VERIFICATION = "VERIFICATION"
    NOTIFICATION = "NOTIFICATION"
    ESCALATION = "ESCALATION"
    USER_ADMIN = "USER_ADMIN"
    WORKER = "WORKER"


class AuditRecord(Base):
    """One audit record. ``body`` is the canonical JSON that the hash covers; the rest index it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    )
    audit_id: Mapped[str] = mapped_column(String(36), unique=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(32))
    action_type: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    prev_hash: Mapped[str] = mapped_column(String(64))
    cryptographic_hash: Mapped[str] = mapped_column(String(64))  # no index: see migration 0006

    __table_args__ = (Index("ix_audit_log_incident_seq", "incident_id", "seq"),)
