"""Webhook signatures of the alert sources that sign (on top of the bearer token).

- Grafana (12+, HMAC contact-point setting): lowercase hex HMAC-SHA256 of the raw body with
  the shared secret, in ``X-Grafana-Alerting-Signature`` (the header name is configurable).
  With a timestamp header configured, Grafana signs ``<unix seconds>:<body>`` instead and
  Sentinel refuses a timestamp more than ``max_skew`` seconds away (replays).
- PagerDuty v3: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]``, HMAC-SHA256 of the raw
  body with the subscription's secret; several signatures while a secret is rotated, and
  one match is enough.

Comparisons are constant-time. A failure raises ``Unauthorized``; what it says never
includes the secret or the expected value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from sentinel.core.errors import Unauthorized


def _hmac_hex(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def verify_grafana(
    secret: str,
    body: bytes,
    signature: str | None,
    *,
    timestamp: str | None = None,
    timestamp_required: bool = False,
    now: float = 0.0,
    max_skew: float = 300.0,
) -> None:
    """Check Grafana's HMAC signature (and its timestamp when one is configured)."""
    if not signature:
        raise Unauthorized("missing Grafana signature header")
    signed = body
    if timestamp_required:
        if not timestamp:
            raise Unauthorized("missing Grafana signature timestamp header")
        try:
            ts = float(timestamp)
        except ValueError as exc:
            raise Unauthorized("Grafana signature timestamp is not a number") from exc
        if abs(now - ts) > max_skew:
            raise Unauthorized(f"Grafana signature timestamp is more than {max_skew:g} s away")
        signed = timestamp.encode() + b":" + body
    if not hmac.compare_digest(_hmac_hex(secret, signed), signature.strip().lower()):
        raise Unauthorized("Grafana signature does not match the body")


def verify_pagerduty(secrets: Sequence[str], body: bytes, header: str | None) -> None:
    """Check ``X-PagerDuty-Signature`` against every configured secret."""
    if not header:
        raise Unauthorized("missing X-PagerDuty-Signature header")
    given = [s.strip()[3:] for s in header.split(",") if s.strip().startswith("v1=")]
    if not given:
        raise Unauthorized("X-PagerDuty-Signature has no v1 signature")
    for secret in secrets:
        expected = _hmac_hex(secret, body)
        if any(hmac.compare_digest(expected, g.lower()) for g in given):
            return
    raise Unauthorized("X-PagerDuty-Signature does not match the body")
