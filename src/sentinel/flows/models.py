"""Tables that make workflow steps exactly-once in the database and side effects at-most-once."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from sentinel.core.clock import utcnow
from sentinel.core.db import Base, JsonDoc, UTCDateTime


class StepResult(Base):
    """A step's committed output, keyed by workflow id and step name.

    A step that committed but died before the engine checkpointed it finds its own
    result here on re-entry and returns it instead of running again.
    """

    __tablename__ = "workflow_step_results"

    workflow_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    step: Mapped[str] = mapped_column(String(64), primary_key=True)
    output: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    executor_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IntentStatus(StrEnum):
    EXECUTING = "EXECUTING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # died mid-call and the target could not tell us: a human decides


class Intent(Base):
    """An external side effect, committed as EXECUTING before the call (idempotency key = PK)."""

    __tablename__ = "side_effect_intents"

    idempotency_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    action_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    service: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    executor_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)


class WorkerHeartbeat(Base):
    """Liveness of each worker process (by its stable executor id), read by the sweeper."""

    __tablename__ = "worker_heartbeats"

    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column()
    app_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recovered_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
