"""What the model must answer with: an RCA and a proposed action, closed shapes (extra="forbid").

A field the schema does not have (risk, approval, policy, ...) fails validation and is
sent back to the model; it never reaches the caller.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CausalLink", "EntityRef", "PlanOutput", "RcaOutput", "SENSITIVE_KEYS"]

# Keys a model might use to try to decide for the policy; seeing one is flagged.
SENSITIVE_KEYS = frozenset(
    {
        "risk",
        "risk_level",
        "approval",
        "approved",
        "approver",
        "approval_id",
        "requires_approval",
        "policy",
        "policy_override",
        "decision",
        "outcome",
        "safe",
        "dry_run",
        "force",
    }
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntityRef(_Closed):
    """Something the hypothesis names; it must appear in the evidence."""

    kind: Literal[
        "service", "metric", "pod", "deployment", "revision", "host", "redis_cluster", "other"
    ]
    name: str = Field(max_length=256)


class CausalLink(_Closed):
    """One hop of the causal chain, from the root cause towards the alerting symptom."""

    service: str = Field(max_length=256)
    symptom: str = Field(max_length=500)
    evidence_refs: list[str] = Field(default_factory=list, max_length=10)


class RcaOutput(_Closed):
    """The analyst's answer. `root_cause_found: false` is a valid, honest answer."""

    root_cause_found: bool
    root_cause_service: str | None = Field(default=None, max_length=256)
    hypothesis: str = Field(max_length=2000)
    causal_chain: list[CausalLink] = Field(default_factory=list, max_length=10)
    evidence_refs: list[str] = Field(
        default_factory=list,
        max_length=30,
        description="ids of the evidence items that support the hypothesis",
    )
    entities: list[EntityRef] = Field(
        default_factory=list,
        max_length=30,
        description="every service, metric, pod, deployment or revision the hypothesis names",
    )
    confidence: float = Field(ge=0.0, le=1.0)
    reasoning: str = Field(max_length=4000)


class PlanOutput(_Closed):
    """The planner's answer: one catalog action (id + params), or none (action_id null)."""

    action_id: str | None = Field(
        description="a remediation action id from the catalog, or null for no action",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = Field(max_length=4000)
    evidence_refs: list[str] = Field(default_factory=list, max_length=30)
