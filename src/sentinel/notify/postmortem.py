"""Post-mortem as Markdown, built only from recorded facts (incident, plans, audit timeline)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _dur(a: datetime, b: datetime | None) -> str:
    if b is None:
        return "ongoing"
    secs = int((b - a).total_seconds())
    return f"{secs // 3600}h {secs % 3600 // 60}m {secs % 60}s"


def render(
    incident: dict[str, Any], plans: list[dict[str, Any]], timeline: list[dict[str, Any]]
) -> str:
    """Markdown: summary, timeline, root cause, actions/decisions/approvals, verification, follow-ups."""
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
    return "\n".join(out) + "\n"
