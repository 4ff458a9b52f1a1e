"""Read API: incidents, timeline, post-mortem, audit, audit verification."""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sentinel.api.state import AppState, Reader, StateDep
from sentinel.approval import service as approval_service
from sentinel.approval.schemas import ApprovalRead
from sentinel.audit import chain as audit_chain
from sentinel.audit import checkpoint
from sentinel.audit.models import AuditRecord
from sentinel.incident import service as incident_service
from sentinel.incident.schemas import IncidentPage, IncidentRead, TimelineEntry
from sentinel.notify import postmortem
from sentinel.plan import service as plan_service
from sentinel.plan.schemas import PlanRead

router = APIRouter(prefix="/api/v1", tags=["read"])


class IncidentDetail(IncidentRead):
    """An incident with everything other domains recorded about it: its plans (with the
    policy decision and execution status), its approval requests, and the verification's
    verdict (None until one ran)."""

    plans: list[PlanRead]
    approvals: list[ApprovalRead] = []
    verification: dict[str, Any] | None = None


def _verification(s: Session, incident_id: str) -> dict[str, Any] | None:
    """The latest Verification verdict from the audit log: recovered, reason, checks made."""
    rec = s.scalars(
        select(AuditRecord)
        .where(AuditRecord.incident_id == incident_id, AuditRecord.action_type == "VERIFICATION")
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    ).first()
    if rec is None:
        return None
    details = json.loads(rec.body).get("details") or {}
    out = details.get("output") or {}
    checks = (details.get("input") or {}).get("checks") or []
    return {
        "recovered": out.get("recovered"),
        "reason": out.get("reason"),
        "checks": len(checks),
        "at": rec.timestamp,
        "seq": rec.seq,
    }


@router.get("/incidents", response_model=IncidentPage)
def list_incidents(
    state: StateDep,
    _: Reader,
    status: str | None = None,
    service: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> IncidentPage:
    """Incidents, newest first."""
    with Session(state.engine) as s:
        return incident_service.list_page(
            session=s, status=status, service=service, limit=limit, cursor=cursor
        )


@router.get("/incidents/{incident_id}", response_model=IncidentDetail)
def get_incident(incident_id: str, state: StateDep, _: Reader) -> IncidentDetail:
    """Everything known about one incident."""
    with Session(state.engine) as s:
        inc = incident_service.read(session=s, incident_id=incident_id)
        plans = plan_service.plans_of(session=s, incident_id=incident_id)
        approvals = [
            ApprovalRead.model_validate(a)
            for a in approval_service.list_for_incident(session=s, incident_id=incident_id)
        ]
        verification = _verification(s, incident_id)
    return IncidentDetail(
        **inc.model_dump(), plans=plans, approvals=approvals, verification=verification
    )


@router.get("/incidents/{incident_id}/timeline", response_model=list[TimelineEntry])
def get_timeline(incident_id: str, state: StateDep, _: Reader) -> list[TimelineEntry]:
    """The incident's path through the graph, from the audit log."""
    with Session(state.engine) as s:
        return incident_service.timeline(session=s, incident_id=incident_id)


@router.get("/incidents/{incident_id}/postmortem", response_class=PlainTextResponse)
def get_postmortem(
    incident_id: str, request: Request, state: StateDep, _: Reader
) -> PlainTextResponse:
    """The post-mortem in Markdown from recorded facts; with an LLM, a narrative after them."""
    with Session(state.engine) as s:
        inc = incident_service.read(session=s, incident_id=incident_id)
        plans = plan_service.plans_of(session=s, incident_id=incident_id)
        tl = incident_service.timeline(session=s, incident_id=incident_id)
    timeline = [t.model_dump() for t in tl]
    story = None
    if state.settings.llm.enabled:
        story = postmortem.narrative(
            engine=state.engine,
            incident_id=incident_id,
            timeline=timeline,
            narrator=_narrator(request, state),
            token_budget=state.settings.llm.token_budget_per_incident,
        )
    md = postmortem.render(
        inc.model_dump(), [p.model_dump() for p in plans], timeline, narrative=story
    )
    return PlainTextResponse(md, media_type="text/markdown; charset=utf-8")


_narrator_lock = threading.Lock()


def _narrator(request: Request, state: AppState) -> postmortem.Narrator:
    """One model client per app for post-mortem narratives (no tools: it only writes prose)."""
    with _narrator_lock:
        found: postmortem.Narrator | None = getattr(request.app.state, "narrator", None)
        if found is None:
            from sentinel.analysis.llm import LlmAnalyst

            found = LlmAnalyst(state.settings.llm)
            request.app.state.narrator = found
        return found


@router.get("/audit")
def list_audit(
    state: StateDep,
    _: Reader,
    incident_id: str | None = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit records in sequence order, as hashed."""
    q = select(AuditRecord).where(AuditRecord.seq > after_seq)
    if incident_id:
        q = q.where(AuditRecord.incident_id == incident_id)
    with Session(state.engine) as s:
        rows = list(s.scalars(q.order_by(AuditRecord.seq).limit(limit)))
    items = [audit_chain.record_view(r) for r in rows]
    return {"items": items, "next_after_seq": rows[-1].seq if len(rows) == limit else None}


@router.get("/audit/verify")
async def verify_audit(state: StateDep, _: Reader) -> dict[str, object]:
    """Recompute the chain and check it against the signed checkpoints."""
    a = state.settings.audit
    report = await run_in_threadpool(
        checkpoint.verify, state.engine, a.signing_key_path, a.checkpoint_dir
    )
    return report.as_dict()
