"""PagerDuty Events API v2: trigger on escalation, resolve on close, one dedup key per incident."""

from __future__ import annotations

from typing import Any

import httpx

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def dedup_key(incident_id: str) -> str:
    """The incident's PagerDuty dedup key (trigger and resolve use the same one)."""
    return f"sentinel-{incident_id}"


class PagerDutyNotifier:
    """Sends trigger/resolve events to one routing key (the key never appears in results)."""

    name = "pagerduty"

    def __init__(
        self, routing_key: str, events_url: str = EVENTS_URL, timeout_seconds: float = 5.0
    ) -> None:
        self._routing_key = routing_key
        self.events_url = events_url
        self._client = httpx.Client(timeout=timeout_seconds)

    def send(
        self,
        action: str,
        key: str,
        summary: str,
        source: str = "sentinel",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One event; PagerDuty answers 202 {"status": "success", "dedup_key": ...}."""
        if action not in ("trigger", "resolve"):
            raise ValueError(f"unsupported PagerDuty event_action {action!r}")
        body: dict[str, Any] = {
            "routing_key": self._routing_key,
            "event_action": action,
            "dedup_key": key,
        }
        if action == "trigger":
            body["payload"] = {
                "summary": summary[:1024] or "Sentinel escalation",
                "source": source or "sentinel",
                "severity": "critical",
                "component": source or "sentinel",
                "custom_details": details or {},
            }
            body["client"] = "Sentinel"
        resp = self._client.post(self.events_url, json=body)
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        return {
            "ok": resp.status_code == 202,
            "http_status": resp.status_code,
            "event_action": action,
            "dedup_key": doc.get("dedup_key", key),
            "status": doc.get("status"),
            "message": doc.get("message"),
        }
