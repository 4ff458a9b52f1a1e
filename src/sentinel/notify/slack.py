"""Slack: incident updates threaded per incident, approval requests with buttons, signed interactions.

The buttons carry only the approval's opaque id; what is approved (digest, parameters) stays in
the database, and the approval service decides with the same rules as the API.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from sentinel.core.errors import BadRequest

# slack_sdk is imported where it is used: it costs ~0.5 s, and most processes never need it.
SLACK_API_URL = "https://slack.com/api/"

APPROVE_ACTION = "sentinel_approve"
REJECT_ACTION = "sentinel_reject"
DECISION_ACTIONS = frozenset({APPROVE_ACTION, REJECT_ACTION})
MAX_TEXT = 2900  # a section block's text is limited to 3,000 characters


class SlackNotifier:
    """Posts to one channel with a bot token (chat:write) through the official Web API client."""

    name = "slack"

    def __init__(
        self, token: str, channel: str, base_url: str = SLACK_API_URL, timeout: float = 5.0
    ) -> None:
        from slack_sdk import WebClient

        self.channel = channel
        self._client = WebClient(token=token, base_url=base_url, timeout=max(1, round(timeout)))

    def post(self, message: dict[str, Any], thread_ts: str | None = None) -> dict[str, Any]:
        """chat.postMessage into the channel (a reply when ``thread_ts`` is given)."""
        resp = self._client.chat_postMessage(
            channel=self.channel,
            text=message["text"],
            blocks=message.get("blocks"),
            thread_ts=thread_ts,
            # an approval request is also shown in the channel, not only in the thread
            reply_broadcast=bool(thread_ts and message.get("broadcast")),
            unfurl_links=False,
            unfurl_media=False,
        )
        return {
            "ok": bool(resp.get("ok")),
            "channel": str(resp.get("channel") or self.channel),
            "ts": str(resp.get("ts")),
            "thread_ts": thread_ts,
        }

    def update(self, channel: str, ts: str, message: dict[str, Any]) -> dict[str, Any]:
        """chat.update: rewrite a posted message (the approval request, once decided)."""
        resp = self._client.chat_update(
            channel=channel, ts=ts, text=message["text"], blocks=message.get("blocks") or []
        )
        return {"ok": bool(resp.get("ok")), "channel": channel, "ts": str(resp.get("ts") or ts)}

    def reconcile(self, idempotency_key: str) -> bool | None:
        """Slack cannot be asked whether a post with this key was made: a human decides."""
        return None


# ---------------------------------------------------------------- signed interactions


def verify_signature(
    signing_secret: str, body: bytes, timestamp: str | None, signature: str | None
) -> bool:
    """Slack's v0 scheme: HMAC-SHA256 of ``v0:{ts}:{body}``, timestamp within 300 s of now."""
    if not timestamp or not signature:
        return False
    try:
        int(timestamp)
    except ValueError:
        return False
    from slack_sdk.signature import SignatureVerifier

    return SignatureVerifier(signing_secret).is_valid(body, timestamp, signature)


def parse_interaction(body: bytes) -> dict[str, Any]:
    """The JSON document in the form field ``payload=`` that Slack posts."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        (raw,) = fields["payload"]
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise BadRequest("a Slack interaction is a form with one payload= JSON field") from exc
    if not isinstance(doc, dict):
        raise BadRequest("the Slack payload is not a JSON object")
    return doc


def decision_of(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(action id, approval id) of an Approve/Reject click; None for anything else."""
    for act in payload.get("actions") or []:
        if isinstance(act, dict) and act.get("action_id") in DECISION_ACTIONS:
            value = act.get("value")
            if isinstance(value, str) and 0 < len(value) <= 64:
                return str(act["action_id"]), value
    return None


def message_ref(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(channel, ts) of the message whose button was clicked."""
    container = payload.get("container") or {}
    channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
    return (str(channel), str(ts)) if channel and ts else None


# ---------------------------------------------------------------- messages


def esc(text: Any) -> str:
    """Escape for mrkdwn so alert text cannot ping @channel or forge links."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


EVENT_HEADINGS = {
    "opened": ":rotating_light: *Incident opened*",
    "root_cause": ":mag: *Root cause analysis*",
    "decision": ":scales: *Policy decision*",
    "executed": ":hammer_and_wrench: *Remediation executed*",
    "resolved": ":white_check_mark: *Verified: incident closed*",
    "escalated": ":sos: *Escalated to a human*",
}


def incident_message(
    event: str, incident: dict[str, Any], detail: dict[str, Any]
) -> dict[str, Any]:
    """One incident update: a heading, what happened, and the incident it belongs to."""
    heading = EVENT_HEADINGS.get(event, f"*{esc(event)}*")
    lines: list[str] = []
    if event == "opened":
        lines.append(f"{esc(incident.get('title') or '')}")
        alerts = detail.get("alerts") or []
        if alerts:
            lines.append("Alerts: " + ", ".join(f"`{esc(a)}`" for a in alerts[:10]))
    elif event == "root_cause":
        lines.append(esc(detail.get("hypothesis") or detail.get("reason") or "no root cause found"))
    elif event == "decision":
        outcome = esc(detail.get("outcome") or "?")
        action = detail.get("action_id")
        if action:
            lines.append(
                f"*{outcome}* for `{esc(action)}` on `{esc(detail.get('target') or '')}`"
                f" (risk {esc(detail.get('risk') or '?')}, rule `{esc(detail.get('rule_id') or '')}`)"
            )
        else:
            lines.append(f"*{outcome}*")
        if detail.get("reason"):
            lines.append(esc(detail["reason"]))
    elif event == "executed":
        lines.append(
            f"`{esc(detail.get('action_id') or '')}` on `{esc(detail.get('target') or '')}`:"
            f" *{esc(detail.get('status') or '?')}*"
        )
        if detail.get("error"):
            lines.append(esc(detail["error"]))
    else:
        lines.append(esc(detail.get("reason") or ""))
    body = "\n".join(line for line in lines if line)
    footer = f"`{esc(incident.get('service') or '?')}` · incident `{esc(incident['incident_id'])}`"
    return {
        "text": f"{heading.split('*')[1] if '*' in heading else event}: {body}"[:MAX_TEXT],
        "blocks": [_section(f"{heading}\n{body}" if body else heading), _context(footer)],
    }


def approval_message(
    approval: dict[str, Any], *, note: str | None = None, outcome: str | None = None
) -> dict[str, Any]:
    """The approval request: what would run, with Approve/Reject (until ``outcome`` is known).

    ``approval`` holds approval_id, incident_id, action_id, target, risk_level, requested_by,
    expires_at (ISO) and params. The buttons' value is the approval id and nothing else.
    """
    aid = str(approval["approval_id"])
    params = json.dumps(approval.get("params") or {}, indent=2, sort_keys=True)
    text = (
        f":raising_hand: *Approval needed*: `{esc(approval['action_id'])}` on"
        f" `{esc(approval['target'])}` — risk *{esc(approval['risk_level'])}*"
    )
    blocks: list[dict[str, Any]] = [
        _section(text),
        _section(f"```{esc(params)}```"),
        _context(
            f"requested by {esc(approval.get('requested_by') or '?')} · expires"
            f" {esc(approval.get('expires_at') or '?')} · incident `{esc(approval['incident_id'])}`"
            f" · approval `{esc(aid)}`"
        ),
    ]
    if outcome is None:
        blocks.append(
            {
                "type": "actions",
                "block_id": "sentinel_approval",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ACTION,
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": aid,
                    },
                    {
                        "type": "button",
                        "action_id": REJECT_ACTION,
                        "text": {"type": "plain_text", "text": "Reject"},
                        "style": "danger",
                        "value": aid,
                    },
                ],
            }
        )
    else:
        blocks.append(_section(outcome))
    if note:
        blocks.append(_context(note))
    summary = f"Approval needed: {approval['action_id']} on {approval['target']}"
    return {
        "text": summary if outcome is None else f"{summary}: {outcome}",
        "blocks": blocks,
        "broadcast": True,
    }
