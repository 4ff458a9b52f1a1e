"""Who the caller is: name, role, and which roles the policy lets approve each risk level."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sentinel.api.state import CurrentPrincipal, StateDep
from sentinel.policy.actions import RiskLevel

router = APIRouter(prefix="/api/v1", tags=["me"])


@router.get("/me")
def me(state: StateDep, who: CurrentPrincipal) -> dict[str, Any]:
    """The signed-in principal (the dashboard disables what it may not do, and says why)."""
    roles = {r.value: sorted(state.policy().document.roles_for(r)) for r in RiskLevel}
    return {
        "user": who.name,
        "role": who.role,
        "scopes": sorted(who.scopes),
        "can_approve": "approve" in who.scopes,
        "approver_roles": roles,
    }
