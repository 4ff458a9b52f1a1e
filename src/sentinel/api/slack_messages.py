"""Keep an approval's Slack message in step with the approval, however it was decided.

The approval request is posted into the incident's thread by the workflow (with Approve and
Reject buttons). A click rewrites the clicked message; a decision through the API, the CLI
or the dashboard rewrites the same message, found through the post's intent record, so
nobody is left looking at live buttons for a decision already made. Slack is only told: a
failure is logged and never undoes or fails the decision.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from sentinel.api.state import AppState
from sentinel.core.clock import utcnow
from sentinel.core.errors import NotFound
from sentinel.flows.channels import approval_doc, approval_message_ref
from sentinel.notify.slack import approval_message, esc

log = logging.getLogger("sentinel.api.slack")


def refresh_approval_message(
    state: AppState,
    approval_id: str,
    ref: tuple[str, str] | None = None,
    *,
    outcome: str | None = None,
    note: str | None = None,
) -> str:
    """chat.update the approval's message (``ref``: the clicked one; else the posted one)
    from the approval's stored state: "updated", "skipped" (no Slack, no message) or
    "failed"."""
    slack = state.slack()
    if slack is None:
        return "skipped"
    try:
        with Session(state.engine) as s:
            doc = approval_doc(s, approval_id)
            if ref is None:
                ref = approval_message_ref(s, str(doc["incident_id"]), slack.name)
    except NotFound:
        return "skipped"
    if ref is None:
        return "skipped"
    if outcome is None and doc["status"] != "PENDING":
        by = f" by {esc(doc['decided_by'])}" if doc.get("decided_by") else ""
        outcome = f"*{esc(doc['status'].capitalize())}*{by}"
    elif outcome is None and datetime.fromisoformat(str(doc["expires_at"])) <= utcnow():
        outcome = "*Expired*: nothing runs"
    try:
        slack.update(ref[0], ref[1], approval_message(doc, note=note, outcome=outcome))
    except Exception as exc:  # noqa: BLE001 - the decision stands; Slack is only told
        log.warning("chat.update for approval %s failed: %s", approval_id, type(exc).__name__)
        return "failed"
    return "updated"
