"""Chat threads per incident: find one, remember one. Flushes, never commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sentinel.notify.models import ChatThread


def thread_of(*, session: Session, incident_id: str, provider: str) -> ChatThread | None:
    """The incident's thread in a provider, if its first message was posted."""
    return session.get(ChatThread, (incident_id, provider))


def remember_thread(
    *, session: Session, incident_id: str, provider: str, channel: str, thread_ts: str
) -> ChatThread:
    """Store the incident's thread; the first one stored wins (later calls return it)."""
    row = thread_of(session=session, incident_id=incident_id, provider=provider)
    if row is None:
        row = ChatThread(
            incident_id=incident_id, provider=provider, channel=channel, thread_ts=thread_ts
        )
        session.add(row)
        session.flush()
    return row
