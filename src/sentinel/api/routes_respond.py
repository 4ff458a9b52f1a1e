"""What a responder does to an incident: close an escalated one by hand."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sentinel.api.state import Responder, StateDep
from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.core.db import transaction
from sentinel.incident import service as incident_service
from sentinel.incident.schemas import IncidentRead

router = APIRouter(prefix="/api/v1", tags=["respond"])


class CloseIn(BaseModel):
    """Why the incident is closed (what the human did), for the audit log and post-mortem."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=4000)


@router.post("/incidents/{incident_id}/close", response_model=IncidentRead)
def close_incident(
    incident_id: str, body: CloseIn, state: StateDep, who: Responder
) -> IncidentRead:
    """Close an ESCALATED incident after a manual fix (409 for any other status); the
    audit record names who closed it and why, in the same commit."""
    with transaction(state.engine) as s:
        incident_service.close_by_hand(
            session=s, incident_id=incident_id, user=who.name, comment=body.comment
        )
        audit.append(
            s,
            actor=Actor.HUMAN_USER,
            action_type=ActionType.WORKFLOW_STEP,
            incident_id=incident_id,
            details={
                "step": "IncidentClosed",
                "reason": f"closed by {who.name} after escalation",
                "comment": body.comment,
            },
        )
        return incident_service.read(session=s, incident_id=incident_id)
