"""Replay: re-run every recorded decision of an incident on its recorded inputs; no model is called.

Per incident, in audit order:

- ``RootCauseAnalysis (llm)``: the recorded raw model responses and tool envelopes go
  through the live path again (schema validation, evidence binding, confidence caps);
  which analyzer won and what it concluded must match the record.
- ``RemediationPlanning (llm)``: the recorded planner call is validated again (catalog,
  parameters, inventory); when it yields no proposal the runbooks take over, as they did
  live. ``RemediationPlanning (runbook)`` when no model was involved.
- ``RiskEvaluation`` / ``RiskEvaluation.recheck``: today's policy on the recorded facts,
  fed the proposal the replay produced (the recorded one when no model was involved).

A record whose bytes no longer match its chain hash is reported as different too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.analysis.llm import LlmAnalyst, LlmSettings
from sentinel.audit.chain import chain_hash
from sentinel.audit.models import ActionType, AuditRecord
from sentinel.flows.incident import _incident_doc
from sentinel.incident import service as incident_service
from sentinel.incident.models import ContextSnapshot, IncidentStatus
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
RCA_COMPARED = (
    "outcome",
    "ok",
    "fallback_required",
    "root_cause_found",
    "root_cause_service",
    "hypothesis",
    "confidence",
    "causal_chain",
    "evidence_refs",
    "flags",
)
PROPOSAL_KEYS = ("action_id", "params", "reasoning")


@dataclass
class Replayed:
    """One re-run decision: identical or the fields that differ."""

    seq: int
    step: str
    identical: bool
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    note: str | None = None


@dataclass
class _Recorded:
    """The audit records replay reads, by step (the last one of each)."""

    records: list[tuple[AuditRecord, dict[str, Any]]] = field(default_factory=list)
    by_step: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    altered: set[int] = field(default_factory=set)


def _load(s: Session, incident_id: str) -> _Recorded:
    out = _Recorded()
    recs = s.scalars(
        select(AuditRecord).where(AuditRecord.incident_id == incident_id).order_by(AuditRecord.seq)
    )
    for rec in recs:
        details = json.loads(rec.body)["details"]
        out.records.append((rec, details))
        if details.get("step"):
            out.by_step[str(details["step"])] = (rec.seq, details)
        if chain_hash(rec.prev_hash, rec.seq, bytes(rec.body)) != rec.cryptographic_hash:
            out.altered.add(rec.seq)
    return out


def _diff(
    recorded: dict[str, Any], now: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, tuple[Any, Any]]:
    return {k: (recorded.get(k), now.get(k)) for k in keys if recorded.get(k) != now.get(k)}


def _digest(text: Any) -> str:
    return "sha256:" + hashlib.sha256(str(text).encode()).hexdigest()[:16]


def _prompt_diff(recorded: Any, replayed: Any) -> dict[str, tuple[Any, Any]]:
    """The rebuilt prompt must be the one sent: otherwise the recorded inputs changed."""
    was = (recorded or {}).get("user_prompt")
    now = (replayed or {}).get("user_prompt")
    if was is None or was == now:
        return {}
    return {"user_prompt": (_digest(was), _digest(now))}


def _proposal(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not doc or not doc.get("action_id"):
        return None
    return {k: doc.get(k) for k in PROPOSAL_KEYS}


class _ModelReplay:
    """Replays the model-driven steps (RCA, plan) from the traces in the audit log."""

    def __init__(
        self,
        s: Session,
        recorded: _Recorded,
        doc: dict[str, Any],
        planner: RunbookPlanner | None,
        llm_settings: LlmSettings,
    ) -> None:
        self.s = s
        self.rec = recorded
        # The analyst and planner ran while the incident was ANALYZING (AlertReceived set it).
        self.doc = {**doc, "status": IncidentStatus.ANALYZING.value}
        self.planner = planner
        self.analyst = LlmAnalyst(llm_settings.model_copy(update={"provider": None}))
        self.rca: dict[str, Any] | None = None  # the analysis as replayed (fed to the plan)
        self.proposal: dict[str, Any] | None = None  # the proposal as replayed (fed to policy)
        self.planned = False

    def close(self) -> None:
        """Stop the replaying analyst's loop."""
        self.analyst.close()

    def analysis(self) -> Replayed | None:
        """RootCauseAnalysis (llm): the recorded model answer, validated and bound again."""
        found = self.rec.by_step.get("RootCauseAnalysis")
        if found is None:
            return None
        seq, details = found
        result = details.get("output") or {}
        rca = result.get("rca")
        self.rca = rca
        if not isinstance(rca, dict):
            return None
        if rca.get("analyzer") == "llm":
            was_llm: dict[str, Any] = {k: v for k, v in rca.items() if k != "causal"}
            causal = rca.get("causal")
        elif isinstance(rca.get("llm_attempt"), dict):
            was_llm = dict(rca["llm_attempt"])
            causal = {k: v for k, v in rca.items() if k != "llm_attempt"}
        else:
            return None
        trace = was_llm.get("llm_trace")
        if not isinstance(trace, dict):
            return Replayed(seq, "RootCauseAnalysis (llm)", True, note="no model call recorded")
        snap_id = (details.get("input") or {}).get("snapshot_id") or result.get("snapshot_id")
        snap = self.s.get(ContextSnapshot, snap_id) if snap_id else None
        data = dict(snap.data) if snap is not None else {}
        now = self.analyst.replay_analyze(trace, dict(self.doc), {"data": data, "causal": causal})
        if now.get("ok") and not now.get("fallback_required"):
            self.rca, used = {**now, "causal": causal}, "llm"
        elif causal is not None:
            self.rca, used = {**causal, "llm_attempt": now}, str(result.get("analyzer"))
        else:
            self.rca, used = now, "llm"
        diffs = _diff(was_llm, now, tuple(k for k in RCA_COMPARED if k in was_llm))
        if result.get("analyzer") != used:
            diffs["analyzer"] = (result.get("analyzer"), used)
        diffs |= _prompt_diff(trace, now.get("llm_trace"))
        return Replayed(seq, "RootCauseAnalysis (llm)", not diffs, diffs)

    def planning(self, inventory: dict[str, Any]) -> Replayed | None:
        """RemediationPlanning (llm): the recorded plan validated again, else the runbooks."""
        found = self.rec.by_step.get("RemediationPlanning")
        if found is None:
            return None
        seq, details = found
        out = (details.get("input") or {}).get("planner_output") or {}
        if out.get("planner") != "llm" and "fallback" not in out:
            return None  # no model was involved: the runbook replay covers it
        self.planned = True
        trace = out.get("llm_trace")
        first = out if out.get("planner") == "llm" else dict(out.get("fallback") or {})
        ctx = {"inventory": inventory}
        if isinstance(trace, dict):
            llm = self.analyst.replay_plan(trace, dict(self.doc), self.rca, ctx)
        else:  # skipped (budget) or raised before any call: nothing to replay
            llm = {"action_id": None, "outcome": first.get("outcome"), "flags": []}
        if llm.get("action_id"):
            now: dict[str, Any] = {**llm, "planner": "llm"}
        elif self.planner is not None:
            now = {**self.planner.plan(dict(self.doc), self.rca, ctx), "planner": "runbook"}
        else:
            now = {"action_id": None, "planner": None}
        self.proposal = _proposal(now)
        recorded_proposal = (details.get("output") or {}).get("proposal")
        diffs = _diff(out, now, ("planner",))
        diffs |= _diff({"proposal": recorded_proposal}, {"proposal": self.proposal}, ("proposal",))
        diffs |= _diff(first, llm, ("outcome", "flags"))
        diffs |= _prompt_diff(trace, llm.get("llm_trace"))
        return Replayed(seq, "RemediationPlanning (llm)", not diffs, diffs)


def replay_incident(
    engine: Engine,
    incident_id: str,
    policy: Policy,
    planner: RunbookPlanner | None,
    llm_settings: LlmSettings | None = None,
) -> list[Replayed]:
    """Re-evaluate each recorded decision with today's policy file; no model, no I/O but the DB.

    `llm_settings` only supplies defaults for traces recorded without their limits; the
    provider is never used.
    """
    out: list[Replayed] = []
    with Session(engine) as s:
        incident_service.get(session=s, incident_id=incident_id)
        inc_doc = _incident_doc(s, incident_id)
        rec = _load(s, incident_id)
        models = _ModelReplay(s, rec, inc_doc, planner, llm_settings or LlmSettings())
        try:
            triage_facts = (rec.by_step.get("RiskEvaluation") or (0, {}))[1].get("input") or {}
            inventory = dict((triage_facts.get("facts") or {}).get("inventory") or {})
            for r in (models.analysis(), models.planning(inventory)):
                if r is not None:
                    out.append(r)
        finally:
            models.close()
    planned: dict[str, Any] | None = None
    for record, details in rec.records:
        step = details.get("step")
        if step == "RemediationPlanning":
            planned = details.get("output") or {}
            continue
        if record.action_type != ActionType.POLICY_EVAL or not step:
            continue
        inp, res = details.get("input") or {}, details.get("output") or {}
        recorded = res.get("decision")
        proposal = inp.get("proposal") or res.get("proposal")
        if models.planned:
            # The proposal is the one replay derived from the recorded model output.
            if _proposal(proposal) != models.proposal:
                out.append(
                    Replayed(
                        record.seq,
                        step,
                        False,
                        {"proposal": (_proposal(proposal), models.proposal)},
                        note="the replayed plan differs from the one the policy was given",
                    )
                )
                continue
            proposal = models.proposal
        if recorded is None or proposal is None:
            out.append(
                Replayed(record.seq, step, True, note="no decision was made (nothing proposed)")
            )
            continue
        facts = Facts.model_validate(inp["facts"])
        now = evaluate(ProposedAction.model_validate(proposal), facts, policy).model_dump(
            mode="json"
        )
        diffs = _diff(recorded, now, COMPARED)
        note = None
        if recorded.get("policy_hash") != policy.sha256:
            note = f"policy file changed: recorded sha256 {str(recorded.get('policy_hash'))[:12]}…, now {policy.sha256[:12]}…"
        out.append(Replayed(record.seq, step, not diffs, diffs, note))
        if step == "RiskEvaluation" and planner is not None and planned is not None:
            if models.planned:
                continue  # RemediationPlanning (llm) replayed the plan, runbooks included
            again = planner.plan(inc_doc, None, {"inventory": inp["facts"].get("inventory", {})})
            was = planned.get("proposal") or {}
            pd = {
                k: (was.get(k), again.get(k))
                for k in ("action_id", "params")
                if was.get(k) != again.get(k)
            }
            out.append(Replayed(record.seq, "RemediationPlanning (runbook)", not pd, pd))
    for r in out:
        if r.seq in rec.altered:
            r.identical = False
            r.differences["audit_record"] = ("intact", "altered after it was written")
    return out
