"""Workflow steps that tell people: the incident's Slack thread and PagerDuty pages.

Each post is a side effect, so each goes through the at-most-once intent record
(``{workflow_id}:{channel}:{event}``); an unconfigured channel is a recorded no-op that
writes nothing. The Slack thread's root ts is stored per incident once the first post lands.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from sentinel.approval import service as approval_service
from sentinel.approval.schemas import ApprovalRead
from sentinel.audit.models import ActionType
from sentinel.core.db import transaction
from sentinel.core.ids import triage_workflow_id
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.effects import at_most_once
from sentinel.flows.models import Intent, IntentStatus
from sentinel.incident import service as incident_service
from sentinel.notify import service as notify_service
from sentinel.notify.pagerduty import dedup_key
from sentinel.notify.slack import approval_message, incident_message
from sentinel.plan import service as plan_service


def approval_doc(s: Session, approval_id: str) -> dict[str, Any]:
    """An approval request with the exact parameters being approved (what Slack shows)."""
    req = approval_service.get(session=s, approval_id=approval_id)
    plan = plan_service.get(session=s, plan_id=req.plan_id)
    read = ApprovalRead.model_validate(req).model_copy(update={"params": plan.params})
    return read.model_dump(mode="json")


def chat_post_key(workflow_id: str, provider: str, event: str) -> str:
    """The idempotency key of one chat post (its intent record)."""
    return f"{workflow_id}:{provider}:{event}"


def approval_message_ref(s: Session, incident_id: str, provider: str) -> tuple[str, str] | None:
    """(channel, ts) of the incident's approval request as posted (triage's decision post),
    or None when it was never posted (no chat configured, or the post failed)."""
    intent = s.get(Intent, chat_post_key(triage_workflow_id(incident_id), provider, "decision"))
    if intent is None or intent.status != IntentStatus.SUCCEEDED or not intent.result:
        return None
    result = intent.result
    ts, channel = result.get("ts"), result.get("channel")
    return (str(channel), str(ts)) if ts and channel else None


@runtime.step(name="ChatUpdate")
def chat_update(incident_id: str, event: str, detail: dict[str, Any]) -> dict[str, Any]:
    """Post one incident update (or the approval request) into the incident's thread, at most once."""
    d = flow_deps.get()
    chat = d.chat
    if chat is None:
        return {"status": "SKIPPED", "reason": "no chat channel configured"}
    key = chat_post_key(runtime.current_workflow_id(), chat.name, event)
    with Session(d.engine) as s:
        inc = incident_service.get(session=s, incident_id=incident_id)
        incident = {"incident_id": inc.incident_id, "service": inc.service, "title": inc.title}
        thread = notify_service.thread_of(session=s, incident_id=incident_id, provider=chat.name)
        thread_ts = thread.thread_ts if thread is not None else None
        approval_id = detail.get("approval_id")
        if approval_id:
            message = approval_message(approval_doc(s, str(approval_id)))
        else:
            message = incident_message(event, incident, detail)
    ran = at_most_once(
        incident_id=incident_id,
        kind=chat.name,
        target=f"{chat.name}:{chat.channel}",
        key=key,
        call=lambda: chat.post(message, thread_ts),
        reconcile=lambda: (
            None if (seen := chat.reconcile(key)) is None else {"ok": seen, "reconciled": True}
        ),
        action_type=ActionType.NOTIFICATION,
    )
    result = ran["result"] or {}
    if thread_ts is None and str(ran["status"]) == "SUCCEEDED" and result.get("ts"):
        with transaction(d.engine) as s:
            thread_ts = notify_service.remember_thread(
                session=s,
                incident_id=incident_id,
                provider=chat.name,
                channel=str(result.get("channel") or chat.channel),
                thread_ts=str(result["ts"]),
            ).thread_ts
    return {"status": str(ran["status"]), "ts": result.get("ts"), "thread_ts": thread_ts}


@runtime.step(name="PagerDuty")
def page(incident_id: str, action: str, summary: str) -> dict[str, Any]:
    """Trigger (escalation) or resolve (closed) the incident's page, at most once per workflow.

    After a crash mid-call the event is sent again: PagerDuty deduplicates on the incident's
    dedup key, so asking again is how this target is reconciled.
    """
    d = flow_deps.get()
    pager = d.pager
    if pager is None:
        return {"status": "SKIPPED", "reason": "no pager configured"}
    key = f"{runtime.current_workflow_id()}:{pager.name}:{action}"
    dk = dedup_key(incident_id)
    with Session(d.engine) as s:
        service = incident_service.get(session=s, incident_id=incident_id).service

    def send() -> dict[str, Any]:
        return pager.send(
            action,
            dk,
            summary,
            source=service or "sentinel",
            details={"incident_id": incident_id, "reason": summary},
        )

    ran = at_most_once(
        incident_id=incident_id,
        kind=pager.name,
        target=f"{pager.name}:{dk}",
        key=key,
        call=send,
        reconcile=lambda: {**send(), "reconciled": True},
        action_type=ActionType.NOTIFICATION,
    )
    return {"status": str(ran["status"]), "dedup_key": dk}
