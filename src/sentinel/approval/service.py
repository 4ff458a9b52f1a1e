"""Approval lifecycle: open, approve, reject, expire, consume. Flushes, never commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.approval.models import ApprovalRequest, ApprovalStatus
from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.core.clock import utcnow
from sentinel.core.errors import Conflict, Forbidden, NotFound

APPROVER_ROLES = frozenset({"approver", "admin"})


def open_request(
    *,
    session: Session,
    incident_id: str,
    plan_id: str,
    action_id: str,
    target: str,
    risk_level: str,
    proposal_digest: str,
    requested_by: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open a pending approval for one plan (bound to its digest)."""
    now = now or utcnow()
    req = ApprovalRequest(
        incident_id=incident_id,
        plan_id=plan_id,
        action_id=action_id,
        target=target,
        risk_level=risk_level,
        proposal_digest=proposal_digest,
        requested_by=requested_by,
        status=ApprovalStatus.PENDING,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(req)
    session.flush()
    return req


def get(*, session: Session, approval_id: str, lock: bool = False) -> ApprovalRequest:
    """Return an approval request or raise NotFound."""
    q = select(ApprovalRequest).where(ApprovalRequest.approval_id == approval_id)
    if lock:
        q = q.with_for_update()
    req = session.scalar(q)
    if req is None:
        raise NotFound(f"approval {approval_id} not found")
    return req


def list_for_incident(*, session: Session, incident_id: str) -> list[ApprovalRequest]:
    """An incident's approval requests, oldest first."""
    q = select(ApprovalRequest).where(ApprovalRequest.incident_id == incident_id)
    return list(session.scalars(q.order_by(ApprovalRequest.created_at)))


def expire_due(*, session: Session, now: datetime | None = None) -> list[ApprovalRequest]:
    """Mark every pending approval past its expiry EXPIRED (locked, skipping rows another
    process holds: each expires once) and return them. Flushes."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.status == ApprovalStatus.PENDING,
                ApprovalRequest.expires_at <= now,
            )
            .with_for_update(skip_locked=True)
        )
    )
    for req in due:
        req.status = ApprovalStatus.EXPIRED
    session.flush()
    return due


def list_by_status(
    *, session: Session, status: str | None, limit: int = 200
) -> list[ApprovalRequest]:
    """Approvals, newest first, optionally by status (pending ones past expiry read as EXPIRED)."""
    q = select(ApprovalRequest)
    now = utcnow()
    if status and status.upper() == ApprovalStatus.PENDING:
        q = q.where(
            ApprovalRequest.status == ApprovalStatus.PENDING, ApprovalRequest.expires_at > now
        )
    elif status:
        q = q.where(ApprovalRequest.status == status.upper())
    return list(session.scalars(q.order_by(ApprovalRequest.created_at.desc()).limit(limit)))


def decide(
    *,
    session: Session,
    approval_id: str,
    approve: bool,
    user: str,
    role: str,
    comment: str,
    allowed_roles: frozenset[str] = APPROVER_ROLES,
    now: datetime | None = None,
    via: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Record a human decision; enforce role, expiry, single use and no self-approval of CRITICAL.

    ``allowed_roles`` are the roles the policy lets approve this risk level (approving);
    rejecting needs only an approver role. ``via`` (e.g. the Slack user id) goes into the audit.
    """
    now = now or utcnow()
    req = get(session=session, approval_id=approval_id, lock=True)
    if req.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval {approval_id} is already {req.status}", {"status": req.status})
    if req.expires_at <= now:
        req.status = ApprovalStatus.EXPIRED
        session.flush()
        raise Conflict(f"approval {approval_id} expired at {req.expires_at.isoformat()}")
    if role not in APPROVER_ROLES:
        raise Forbidden(f"role {role!r} may not decide approvals")
    if approve and role not in allowed_roles:
        raise Forbidden(
            f"the policy lets only {sorted(allowed_roles)} approve {req.risk_level} actions",
            {"role": role, "risk_level": req.risk_level},
        )
    if approve and req.risk_level == "CRITICAL" and user == req.requested_by:
        raise Forbidden("the requester of a CRITICAL action may not approve it")
    req.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    req.decided_by = user
    req.decided_by_role = role
    req.decided_at = now
    req.comment = comment or None
    session.flush()
    audit.append(
        session,
        actor=Actor.HUMAN_USER,
        action_type=ActionType.APPROVAL,
        incident_id=req.incident_id,
        details={
            "approval_id": req.approval_id,
            "decision": req.status,
            "user": user,
            "role": role,
            "comment": comment,
            "proposal_digest": req.proposal_digest,
            "action_id": req.action_id,
            "target": req.target,
            "risk_level": req.risk_level,
            **({"via": via} if via else {}),
        },
    )
    return req


def consume(*, session: Session, approval_id: str, now: datetime | None = None) -> ApprovalRequest:
    """Mark an approval used (single use): the remediation workflow consumes it once."""
    req = get(session=session, approval_id=approval_id, lock=True)
    if req.consumed_at is None:
        req.consumed_at = now or utcnow()
        session.flush()
    return req
