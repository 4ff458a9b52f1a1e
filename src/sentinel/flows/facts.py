"""Facts for the policy, read deterministically at decision time (one step, recorded verbatim)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.approval.models import ApprovalRequest
from sentinel.core.clock import utcnow
from sentinel.flows.deps import Deps
from sentinel.flows.models import Intent, IntentStatus

HISTORY_WINDOW = timedelta(hours=24)


def live_inventory(
    static: dict[str, Any], readers: list[Callable[[], dict[str, Any]]]
) -> dict[str, Any]:
    """Static inventory from configuration, overlaid with what live sources report now.

    A live list replaces the static one (what exists is what the source says now), except
    that live entries keep the static entry's extra fields (service, labels, key patterns).
    """
    inv: dict[str, Any] = {k: list(v) for k, v in static.items()}
    for read in readers:
        for kind, items in read().items():
            if not isinstance(items, list):
                continue
            static = {_key(x): x for x in inv.get(kind, []) if isinstance(x, dict)}
            inv[kind] = [{**static.get(_key(x), {}), **x} for x in items]
    return inv


def _key(item: dict[str, Any]) -> str:
    return str(
        item.get("instance_id")
        or f"{item.get('cluster', '')}/{item.get('namespace', '')}/{item.get('name')}"
    )


def read_facts(deps: Deps, session: Session, *, approval_id: str | None = None) -> dict[str, Any]:
    """Environment, clock, inventory, recent actions, actions in flight and the approval offered."""
    now = utcnow()
    history = []
    in_flight = []
    for it in session.scalars(
        select(Intent).where(Intent.kind == "execute", Intent.started_at >= now - HISTORY_WINDOW)
    ):
        if it.status in (IntentStatus.SUCCEEDED, IntentStatus.UNKNOWN) and it.action_id:
            history.append(
                {
                    "action_id": it.action_id,
                    "target": it.target,
                    "service": it.service,
                    "at": it.started_at.isoformat(),
                }
            )
        if it.status == IntentStatus.EXECUTING and it.action_id == "restart_kubernetes_pod":
            ns, _, pod = it.target.removeprefix("k8s:").partition("/pod/")
            in_flight.append({"namespace": ns, "name": pod})
    approval = None
    if approval_id:
        req = session.get(ApprovalRequest, approval_id)
        if req is not None and req.decided_by and req.status == "APPROVED":
            approval = {
                "approval_id": req.approval_id,
                "approver": req.decided_by,
                "approver_roles": [req.decided_by_role] if req.decided_by_role else [],
                "requester": req.requested_by,
                "proposal_digest": req.proposal_digest,
                "expires_at": req.expires_at.isoformat(),
                "used": req.consumed_at is not None,
            }
    return {
        "environment": deps.settings.environment,
        "now": now.isoformat(),
        "inventory": live_inventory(deps.settings.inventory, deps.inventory_readers),
        "history": history,
        "pods_in_flight": in_flight,
        "approval": approval,
    }
