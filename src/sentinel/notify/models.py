"""ORM model of a chat thread per incident (Slack: the root message's ts every update replies to)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from sentinel.core.clock import utcnow
from sentinel.core.db import Base, UTCDateTime


class ChatThread(Base):
    """Where an incident's updates go in one chat provider (one row per incident and provider)."""

    __tablename__ = "notify_threads"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(255))
    thread_ts: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
