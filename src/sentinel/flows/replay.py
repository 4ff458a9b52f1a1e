"""Replay: re-run every recorded policy decision (and the runbook planner) on recorded inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.audit.models import ActionType, AuditRecord
from sentinel.flows.incident import _incident_doc
from sentinel.incident import service as incident_service
from sentinel.plan.runbooks import RunbookPlanner
from sentinel.policy.actions import ProposedAction
from sentinel.policy.engine import evaluate
from sentinel.policy.facts import Facts
from sentinel.policy.rules import Policy

COMPARED = (
    "outcome",
    "risk",
    "rule_id",
    "reasons",
    "action_id",
    "target",
    "proposal_digest",
    "approval_id",
)


@dataclass
class Replayed:
    """One re-run decision: identical or the fields that differ."""

    seq: int
    step: str
    identical: bool
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str | None = None


def replay_incident(
    engine: Engine, incident_id: str, policy: Policy, planner: RunbookPlanner | None
) -> list[Replayed]:
    """Re-evaluate each recorded decision with today's policy file; no model, no I/O but the DB."""
    out: list[Replayed] = []
    with Session(engine) as s:
        incident_service.get(session=s, incident_id=incident_id)
        inc_doc = _incident_doc(s, incident_id)
        recs = list(
            s.scalars(
                select(AuditRecord)
                .where(AuditRecord.incident_id == incident_id)
                .order_by(AuditRecord.seq)
            )
        )
    planned: dict[str, Any] | None = None
    for rec in recs:
        details = json.loads(rec.body)["details"]
        step = details.get("step")
        if step == "RemediationPlanning":
            planned = details.get("output") or {}
            continue
        if rec.action_type != ActionType.POLICY_EVAL or not step:
            continue
        inp, res = details.get("input") or {}, details.get("output") or {}
        recorded = res.get("decision")
        proposal = inp.get("proposal") or res.get("proposal")
        if recorded is None or proposal is None:
            out.append(
                Replayed(rec.seq, step, True, note="no decision was made (nothing proposed)")
            )
            continue
        facts = Facts.model_validate(inp["facts"])
        now = evaluate(ProposedAction.model_validate(proposal), facts, policy).model_dump(
            mode="json"
        )
        diffs = {
            k: (recorded.get(k), now.get(k)) for k in COMPARED if recorded.get(k) != now.get(k)
        }
        note = None
        if recorded.get("policy_hash") != policy.sha256:
            note = f"policy file changed: recorded sha256 {str(recorded.get('policy_hash'))[:12]}…, now {policy.sha256[:12]}…"
        out.append(Replayed(rec.seq, step, not diffs, diffs, note))
        if step == "RiskEvaluation" and planner is not None and planned is not None:
            again = planner.plan(inc_doc, None, {"inventory": inp["facts"].get("inventory", {})})
            was = planned.get("proposal") or {}
            pd = {
                k: (was.get(k), again.get(k))
                for k in ("action_id", "params")
                if was.get(k) != again.get(k)
            }
            out.append(Replayed(rec.seq, "RemediationPlanning (runbook)", not pd, pd))
    return out
