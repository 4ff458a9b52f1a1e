"""Generic JSON webhook notifier (with an Idempotency-Key header receivers can dedupe on)."""

from __future__ import annotations

from typing import Any

import httpx


class WebhookNotifier:
    """POSTs each event as JSON to one URL."""

    name = "webhook"

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_seconds)

    def send(self, event: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Deliver one event; the result carries the HTTP status."""
        resp = self._client.post(self.url, json=event, headers={"Idempotency-Key": idempotency_key})
        return {"ok": resp.is_success, "http_status": resp.status_code}

    def reconcile(self, idempotency_key: str) -> bool | None:
        """A plain webhook cannot be asked whether it saw a delivery."""
        return None
