"""Facts for the policy, read deterministically at decision time (one step, recorded verbatim)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.approval.models import ApprovalRequest
from sentinel.core.clock import utcnow
from sentinel.flows.deps import Deps
from sentinel.flows.models import Intent, IntentStatus

HISTORY_WINDOW = timedelta(hours=24)


def live_inventory(deps: Deps) -> dict[str, Any]:
    """Static inventory from configuration, overlaid with what live sources report now."""
    inv: dict[str, Any] = {k: list(v) for k, v in deps.settings.inventory.items()}
    static_redis = {c["name"]: c for c in inv.get("redis_clusters", [])}
    if deps.redis_inventory is not None:
        live = deps.redis_inventory()
        clusters = []
        for name, info in sorted(live.items()):
            if not info.get("reachable"):
                continue  # an unreachable cluster is not a valid target
            base = dict(static_redis.get(name, {"name": name}))
            base["dbs"] = info.get("dbs", [])
            clusters.append(base)
        inv["redis_clusters"] = clusters
    return inv


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
        "inventory": live_inventory(deps),
        "history": history,
        "pods_in_flight": in_flight,
        "approval": approval,
    }
