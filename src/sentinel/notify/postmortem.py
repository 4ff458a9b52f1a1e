"""Post-mortem as Markdown: structured sections from recorded facts, and an optional model narrative.

The structured sections (summary, timeline, root cause, decisions, verification,
follow-ups) come from the incident's records and the audit log and never from a model.
When an LLM is configured, `narrative` asks it for prose over facts taken from the
audit log only (`facts_of`), records the prompt and the raw answer in the audit log
(an `LLM_INFERENCE` record, step `PostmortemNarrative`, keyed by the facts' digest) and
reuses that record while the facts stay the same, so a second read calls no model. The
prose is rendered last, quoted, under its own heading; it cannot touch the sections above.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor, AuditRecord
from sentinel.core.db import transaction
from sentinel.core.redact import redact

__all__ = [
    "NARRATIVE_STEP",
    "Narrative",
    "Narrator",
    "facts_of",
    "narrative",
    "render",
]

NARRATIVE_STEP = "PostmortemNarrative"
# A failed narrative is not retried on every read: one model call per incident this often.
RETRY_FAILED_AFTER_SECONDS = 60.0
_MAX_TEXT = 600  # characters of one free-text fact given to the model
_MAX_FACTS = 24_000  # characters of all facts


class Narrator(Protocol):
    """Writes prose from facts (`LlmAnalyst` satisfies it); never raises for a model failure."""

    def narrate(
        self, facts: Mapping[str, Any], *, token_limit: int | None = None
    ) -> dict[str, Any]: ...


@dataclass
class Narrative:
    """The model's prose (None when there is none) and what to say about it."""

    text: str | None
    note: str
    seq: int | None = None
    model: str | None = None
    cached: bool = False
    flags: list[dict[str, Any]] = field(default_factory=list)


def _dur(a: datetime, b: datetime | None) -> str:
    if b is None:
        return "ongoing"
    secs = int((b - a).total_seconds())
    return f"{secs // 3600}h {secs % 3600 // 60}m {secs % 60}s"


def _is_narrative(e: Mapping[str, Any]) -> bool:
    return (
        e.get("action_type") == ActionType.LLM_INFERENCE
        and (e.get("details") or {}).get("step") == NARRATIVE_STEP
    )


# ---------------------------------------------------------------- facts for the model


def _clip(value: Any, n: int = _MAX_TEXT) -> Any:
    if isinstance(value, str):
        return value if len(value) <= n else value[:n] + "…"
    if isinstance(value, Mapping):
        return {str(k): _clip(v, n) for k, v in list(value.items())[:30]}
    if isinstance(value, list | tuple):
        return [_clip(v, n) for v in value[:20]]
    return value


def _event(e: Mapping[str, Any]) -> dict[str, Any]:
    """One audit record as a fact: what happened, and only the fields a reader needs."""
    d: Mapping[str, Any] = e.get("details") or {}
    step = d.get("step")
    inp: Mapping[str, Any] = d.get("input") or {}
    out: Mapping[str, Any] = d.get("output") or {}
    kind = e.get("action_type")
    ev: dict[str, Any] = {
        "seq": e.get("seq"),
        "at": e.get("timestamp"),
        "actor": e.get("actor"),
        "event": step or kind,
    }
    if kind == ActionType.INCIDENT_OPENED:
        ev.update({"service": d.get("service"), "alertname": d.get("alertname")})
    elif step == "AlertReceived":
        ev["alerts"] = [
            {k: a.get(k) for k in ("alertname", "labels", "annotations", "starts_at")}
            for a in out.get("alerts") or []
        ]
    elif step == "ContextGathering":
        ev["sources"] = {
            name: {"ok": src.get("ok"), "error": src.get("error")}
            for name, src in (out.get("sources") or {}).items()
        }
    elif step == "RootCauseAnalysis":
        rca: Mapping[str, Any] = out.get("rca") or {}
        ev["analyzer"] = out.get("analyzer")
        ev["rca"] = {
            k: rca.get(k)
            for k in ("root_cause_found", "root_cause_service", "hypothesis", "confidence")
            if rca.get(k) is not None
        }
        if out.get("reason"):
            ev["reason"] = out.get("reason")
        if isinstance(rca.get("llm_attempt"), Mapping):
            ev["llm_analysis_outcome"] = rca["llm_attempt"].get("outcome")
    elif step == "RemediationPlanning":
        ev.update({"planner": out.get("planner"), "proposal": out.get("proposal")})
        if out.get("reason"):
            ev["reason"] = out.get("reason")
        if isinstance(out.get("fallback"), Mapping):
            ev["fallback_because"] = out["fallback"].get("why")
    elif kind == ActionType.POLICY_EVAL:
        dec: Mapping[str, Any] = out.get("decision") or {}
        ev["decision"] = {
            k: dec.get(k)
            for k in ("outcome", "risk", "rule_id", "reasons", "action_id", "target")
            if dec.get(k) is not None
        } or {"outcome": out.get("outcome")}
        for k in ("reason", "approval_id"):
            if out.get(k):
                ev[k] = out[k]
    elif kind == ActionType.APPROVAL:
        ev.update(
            {
                k: d.get(k)
                for k in ("decision", "user", "role", "comment", "action_id", "target")
                if d.get(k) is not None
            }
        )
    elif kind in (ActionType.SCRIPT_EXEC, ActionType.NOTIFICATION):
        ev.update(
            {k: d.get(k) for k in ("phase", "kind", "target", "status") if d.get(k) is not None}
        )
        if kind == ActionType.SCRIPT_EXEC and d.get("result") is not None:
            ev["output"] = d.get("result")
    elif kind == ActionType.VERIFICATION:
        ev.update({"recovered": out.get("recovered"), "reason": out.get("reason")})
        ev["checks"] = len(inp.get("checks") or [])
    elif step == "ExecutionRecorded":
        ev.update({"ok": out.get("ok"), "status": out.get("status")})
    elif step in ("EscalateToHuman", "EscalatedRunbook", "IncidentClosed"):
        ev["reason"] = inp.get("reason") or out.get("reason")
    clipped: dict[str, Any] = _clip(ev)
    return clipped


def facts_of(incident_id: str, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """The facts a narrator may use: the incident's audit records, reduced and redacted.

    Free text inside (alert annotations, hypotheses, comments, command output) was
    written by others: it is data for the model, not instructions.
    """
    events = [_event(e) for e in timeline if not _is_narrative(e)]
    facts: dict[str, Any] = {"incident_id": incident_id, "events": events}
    omitted = 0
    while len(json.dumps(facts, default=str)) > _MAX_FACTS and len(events) > 2:
        events.pop(len(events) // 2)  # keep how it began and how it ended
        omitted += 1
    if omitted:
        facts["omitted_events"] = omitted
    clean: dict[str, Any] = redact(facts)
    return clean


def facts_digest(facts: Mapping[str, Any]) -> str:
    """sha256 of the facts (sorted-key JSON): the narrative cache key."""
    text = json.dumps(facts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- the narrative


def _why_none(outcome: str | None, error: str | None) -> str:
    err = f" ({str(redact(error))[:200]})" if error else ""
    if outcome == "timeout":
        return f"the model did not answer within its deadline{err}"
    if outcome in ("budget_exceeded", "skipped"):
        return f"the incident's LLM token budget is exhausted{err}"
    if outcome == "model_error":
        return f"the model could not be reached{err}"
    return f"the model gave no usable answer: {outcome}{err}"


def _spent(rec: Mapping[str, Any]) -> int:
    """LLM tokens one audit record accounts for (analysis, planning, narratives)."""
    d = rec.get("details") or {}
    usages: list[Any] = []
    if d.get("step") == "RootCauseAnalysis":
        rca = (d.get("output") or {}).get("rca") or {}
        usages += [rca.get("usage"), (rca.get("llm_attempt") or {}).get("usage")]
    elif d.get("step") == "RemediationPlanning":
        out = (d.get("input") or {}).get("planner_output") or {}
        usages += [out.get("usage") if out.get("planner") == "llm" else None]
        usages += [(out.get("fallback") or {}).get("usage")]
    elif d.get("step") == NARRATIVE_STEP:
        usages += [(d.get("output") or {}).get("usage")]
    total = 0
    for u in usages:
        if isinstance(u, Mapping) and isinstance(u.get("total_tokens"), int):
            total += int(u["total_tokens"])
    return total


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(incident_id: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 1000:
            _locks.clear()
        return _locks.setdefault(incident_id, threading.Lock())


def _from_record(rec: AuditRecord, details: Mapping[str, Any], cached: bool) -> Narrative:
    out: Mapping[str, Any] = details.get("output") or {}
    text = str(out.get("text") or "")
    if out.get("ok") and text:
        return Narrative(
            text=text,
            note=f"audit record {rec.seq}",
            seq=rec.seq,
            model=out.get("model"),
            cached=cached,
            flags=list(out.get("flags") or []),
        )
    return Narrative(
        text=None,
        note=_why_none(out.get("outcome"), out.get("error")),
        seq=rec.seq,
        cached=cached,
    )


def _recorded(s: Session, incident_id: str) -> list[tuple[AuditRecord, dict[str, Any]]]:
    rows = s.scalars(
        select(AuditRecord)
        .where(
            AuditRecord.incident_id == incident_id,
            AuditRecord.action_type == ActionType.LLM_INFERENCE,
        )
        .order_by(AuditRecord.seq.desc())
    )
    out = []
    for rec in rows:
        details = json.loads(rec.body).get("details") or {}
        if details.get("step") == NARRATIVE_STEP:
            out.append((rec, details))
    return out


def narrative(
    *,
    engine: Engine,
    incident_id: str,
    timeline: list[dict[str, Any]],
    narrator: Narrator,
    token_budget: int,
    now: datetime | None = None,
) -> Narrative:
    """The narrative for the current facts: the audited one if any, else ask once and audit it."""
    facts = facts_of(incident_id, timeline)
    digest = facts_digest(facts)
    now = now or datetime.now(UTC)
    with _lock_for(incident_id):  # concurrent reads of one incident make one model call
        with Session(engine) as s:
            for rec, details in _recorded(s, incident_id):
                if (details.get("input") or {}).get("facts_sha256") != digest:
                    continue
                if (details.get("output") or {}).get("ok"):
                    return _from_record(rec, details, cached=True)
                age = (now - rec.timestamp).total_seconds()
                if age < RETRY_FAILED_AFTER_SECONDS:
                    return _from_record(rec, details, cached=True)
                break
        limit = token_budget - sum(_spent(e) for e in timeline)
        try:
            res = narrator.narrate(facts, token_limit=limit)
        except Exception as exc:  # noqa: BLE001 - a narrator bug must not cost the post-mortem
            res = {"ok": False, "outcome": "error", "error": f"{type(exc).__name__}: {exc}"}
        trace = res.get("llm_trace") or {}
        output = {
            "ok": bool(res.get("ok") and res.get("text")),
            "text": str(res.get("text") or ""),
            "outcome": res.get("outcome"),
            "error": res.get("error"),
            "flags": res.get("flags") or [],
            "usage": res.get("usage"),
            "model": trace.get("model"),
            "llm_trace": res.get("llm_trace"),
        }
        details = {
            "step": NARRATIVE_STEP,
            "input": {"facts_sha256": digest, "token_limit": limit},
            "output": output,
        }
        with transaction(engine) as s:
            appended = audit.append(
                s,
                actor=Actor.SENTINEL_AGENT,
                action_type=ActionType.LLM_INFERENCE,
                incident_id=incident_id,
                details=details,
            )
            row = s.get(AuditRecord, appended.seq)
            assert row is not None
            stored = json.loads(row.body)["details"]
            return _from_record(row, stored, cached=False)


# ---------------------------------------------------------------- Markdown


def _quote(text: str) -> list[str]:
    """The model's prose as a block quote that cannot open a heading, table, rule or tag."""
    out: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        line = raw.rstrip().replace("<", "&lt;")
        stripped = line.lstrip()
        if stripped[:1] in ("#", "|", ">", "=", "-", "*", "_", "`"):
            line = "\\" + stripped
        out.append(f"> {line}".rstrip())
    return out


def _narrative_section(story: Narrative) -> list[str]:
    out = ["", "## Narrative (written by a model)", ""]
    if story.text is None:
        out.append(f"_No narrative: {story.note}. The sections above are complete without it._")
        return out
    who = f"`{story.model}`" if story.model else "the configured model"
    out.append(
        f"_Written by {who} from the audit-log facts only ({story.note}). It adds no facts:"
        " where it differs from the sections above, they are right._"
    )
    out.append("")
    out.extend(_quote(story.text))
    unknown = sorted({str(f.get("name")) for f in story.flags if f.get("kind") == "unknown_entity"})
    if unknown:
        out.append("")
        out.append(f"_Names in the narrative not found in the facts: {', '.join(unknown)}._")
    return out


def render(
    incident: dict[str, Any],
    plans: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    narrative: Narrative | None = None,
) -> str:
    """Markdown: summary, timeline, root cause, actions/decisions/approvals, verification,
    follow-ups, then the model's narrative when there is one (or why there is none)."""
    timeline = [e for e in timeline if not _is_narrative(e)]
    out: list[str] = []
    created: datetime = incident["created_at"]
    out.append(f"# Post-mortem: {incident['title']}")
    out.append("")
    out.append("## Summary")
    out.append("")
    out.append(f"- Incident: `{incident['incident_id']}`")
    out.append(
        f"- Service: **{incident['service']}**; severity: {incident.get('severity') or 'n/a'}"
    )
    out.append(f"- Status: **{incident['status']}**")
    out.append(f"- Opened: {created.isoformat()}; closed: {incident.get('closed_at') or '—'}")
    out.append(f"- Duration: {_dur(created, incident.get('closed_at'))}")
    alerts = incident.get("alerts") or []
    out.append(f"- Alerts: {', '.join(sorted({a['alertname'] for a in alerts})) or '—'}")
    if incident.get("escalation_reason"):
        out.append(f"- Escalated because: {incident['escalation_reason']}")
    out.append("")
    out.append("## Timeline")
    out.append("")
    out.append("| seq | time (UTC) | actor | what |")
    out.append("|---:|---|---|---|")
    for e in timeline:
        what = e["summary"]
        d = e.get("details") or {}
        if e["action_type"] == "APPROVAL":
            what = f"approval {d.get('decision')} by {d.get('user')} ({d.get('role')})"
        elif e["action_type"] == "SCRIPT_EXEC":
            what = f"execution {d.get('phase')}: {d.get('target')} {d.get('status') or ''}".strip()
        out.append(f"| {e['seq']} | {e['timestamp']} | {e['actor']} | {what} |")
    out.append("")
    out.append("## Root cause")
    out.append("")
    rca = incident.get("rca")
    if rca:
        out.append(str(rca.get("hypothesis") or rca))
    else:
        out.append("No root-cause analysis was recorded for this incident.")
    out.append("")
    out.append("## Actions and decisions")
    out.append("")
    if not plans:
        out.append("No remediation was proposed.")
    for p in plans:
        dec = p.get("decision") or {}
        out.append(
            f"- **{p['proposed_action']}** on `{p['target_resource']}` (planner: {p['planner']})"
        )
        out.append(f"  - reasoning: {p.get('reasoning') or '—'}")
        if dec:
            out.append(
                f"  - policy: **{dec.get('outcome')}**, risk {dec.get('risk')}, rule `{dec.get('rule_id')}`,"
                f" policy sha256 `{str(dec.get('policy_hash'))[:16]}…`"
            )
            for r in dec.get("reasons") or []:
                out.append(f"    - {r}")
        out.append(
            f"  - human approved: {p.get('human_approved')}; execution: {p['execution_status']}"
        )
    out.append("")
    out.append("## Verification")
    out.append("")
    ver = [e for e in timeline if e["action_type"] == "VERIFICATION"]
    if ver:
        v = (ver[-1].get("details") or {}).get("output") or {}
        out.append(f"- recovered: **{v.get('recovered')}** — {v.get('reason')}")
    else:
        out.append("No verification ran.")
    out.append("")
    out.append("## Follow-ups")
    out.append("")
    follow: list[str] = []
    if incident["status"] == "ESCALATED":
        follow.append("A human owns this incident: confirm the root cause and the fix.")
    if any(p["execution_status"] == "FAILED" for p in plans):
        follow.append("An action failed: check the executor output in the audit log.")
    if not rca:
        follow.append(
            "Add context sources or an analyzer so the root cause is found automatically."
        )
    if not plans:
        follow.append("Write a runbook for this alert so a fix can be proposed next time.")
    out.extend(f"- [ ] {f}" for f in follow or ["None."])
    out.append("")
    out.append("_Built from the audit log; every line above is a recorded fact._")
    if narrative is not None:
        out.extend(_narrative_section(narrative))
    return "\n".join(out) + "\n"
