"""Slack interactivity: Approve/Reject buttons, signature-verified, decided by the approval rules.

Slack user ids map to Sentinel users through ``SENTINEL_NOTIFY__SLACK_USERS`` (JSON
{"U123": "alice"}); the Sentinel user's role (users table) is what counts, exactly as for
a bearer token. Forged or stale signatures get 401 and touch nothing; an authentic click that
the rules refuse (unknown user, role, self-approval of CRITICAL, already decided, expired) is
audited, the Slack message says why, and the reply carries the API's status (403/409/404).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sentinel.api.routes_approvals import decide_approval
from sentinel.api.slack_messages import refresh_approval_message
from sentinel.api.state import AppState, StateDep
from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.auth.models import User
from sentinel.core.db import transaction
from sentinel.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SentinelError,
    Unauthorized,
)
from sentinel.flows.channels import approval_doc
from sentinel.notify.slack import (
    APPROVE_ACTION,
    decision_of,
    esc,
    message_ref,
    parse_interaction,
    verify_signature,
)

log = logging.getLogger("sentinel.api.slack")
router = APIRouter(prefix="/api/v1/slack", tags=["slack"])

MAX_BODY_BYTES = 64 * 1024
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")


@router.post("/interactions")
async def interactions(request: Request, state: StateDep) -> dict[str, Any]:
    """Slack's interactive payload (form field ``payload=``); v0 signature, 300 s window."""
    cfg = state.settings.notify
    if cfg.slack_signing_secret is None:
        raise NotFound(
            "Slack interactivity is not configured (SENTINEL_NOTIFY__SLACK_SIGNING_SECRET)"
        )
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a Slack interaction is at most {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a Slack interaction is at most {MAX_BODY_BYTES} bytes")
    ok = verify_signature(
        cfg.slack_signing_secret.get_secret_value(),
        raw,
        request.headers.get("x-slack-request-timestamp"),
        request.headers.get("x-slack-signature"),
    )
    if not ok:
        log.warning("refused a Slack interaction: invalid or stale signature")
        raise Unauthorized("invalid or stale Slack request signature")
    payload = parse_interaction(raw)
    clicked = decision_of(payload) if payload.get("type") == "block_actions" else None
    if clicked is None:
        return {"ok": True, "ignored": str(payload.get("type") or "unknown")}
    return await run_in_threadpool(handle_click, state, payload, *clicked)


def handle_click(
    state: AppState, payload: dict[str, Any], action: str, approval_id: str
) -> dict[str, Any]:
    """Decide through the same path as the API, then rewrite the Slack message with the outcome."""
    slack_user = str((payload.get("user") or {}).get("id") or "")
    mention = f"<@{slack_user}>" if _SLACK_ID.match(slack_user) else esc(slack_user or "?")
    approve = action == APPROVE_ACTION
    verb = "approval" if approve else "rejection"
    via = {"channel": "slack", "slack_user_id": slack_user}
    user: str | None = None
    role: str | None = None
    try:
        user, role = sentinel_user(state, slack_user)
        read = decide_approval(
            state,
            approval_id=approval_id,
            approve=approve,
            user=user,
            role=role,
            comment=f"via Slack by {slack_user}",
            via=via,
        )
    except (Forbidden, Conflict, NotFound) as exc:
        record_refusal(state, approval_id, approve, user, role, via, exc)
        update_message(
            state,
            payload,
            approval_id,
            note=f":no_entry: {verb} by {mention} refused: {esc(exc.message)}",
        )
        raise
    outcome = (
        f":white_check_mark: *Approved* by {esc(user)} ({mention}); remediation started"
        if approve
        else f":x: *Rejected* by {esc(user)} ({mention}); nothing runs, incident closed"
    )
    slack = update_message(state, payload, approval_id, outcome=outcome)
    return {
        "ok": True,
        "approval_id": read.approval_id,
        "status": read.status,
        "decided_by": read.decided_by,
        "slack_update": slack,
    }


def sentinel_user(state: AppState, slack_user: str) -> tuple[str, str]:
    """The Sentinel user (name, role) a Slack user id is mapped to; Forbidden if none."""
    name = state.settings.notify.slack_users.get(slack_user)
    if not name:
        raise Forbidden(
            f"Slack user {slack_user or '?'} is not mapped to a Sentinel user",
            {"slack_user_id": slack_user},
        )
    with Session(state.engine) as s:
        row = s.scalar(select(User).where(User.name == name))
    if row is None or row.disabled:
        raise Forbidden(
            f"Slack user {slack_user} maps to {name!r}, which is not an active Sentinel user",
            {"slack_user_id": slack_user},
        )
    return row.name, row.role


def record_refusal(
    state: AppState,
    approval_id: str,
    approve: bool,
    user: str | None,
    role: str | None,
    via: dict[str, Any],
    exc: SentinelError,
) -> None:
    """Audit an authentic click the rules refused (what was asked, by whom, and why not)."""
    with transaction(state.engine) as s:
        try:
            incident_id: str | None = approval_doc(s, approval_id)["incident_id"]
        except NotFound:
            incident_id = None
        audit.append(
            s,
            actor=Actor.HUMAN_USER,
            action_type=ActionType.APPROVAL,
            incident_id=incident_id,
            details={
                "approval_id": approval_id,
                "decision": "REFUSED",
                "requested": "APPROVE" if approve else "REJECT",
                "user": user,
                "role": role,
                "reason": exc.message,
                "status": exc.status,
                "via": via,
            },
        )


def update_message(
    state: AppState,
    payload: dict[str, Any],
    approval_id: str,
    *,
    outcome: str | None = None,
    note: str | None = None,
) -> str:
    """chat.update the clicked message from the approval's stored state; never fails the request."""
    ref = message_ref(payload)
    if ref is None:
        return "skipped"
    return refresh_approval_message(state, approval_id, ref, outcome=outcome, note=note)
