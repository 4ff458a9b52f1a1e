"""POST /api/v1/alerts/*: authenticate, bound, verify, parse, store durably, then reply 202.

The ingest endpoints are the one hot path of the API, so they are plain ASGI endpoints: no
dependency injection, no middleware stack (``SentinelApp`` hands them the request directly;
the router holds the same endpoint for everything else, e.g. a 405 on GET). They do their
own error mapping to the INTERFACES.md shape. Nothing is acknowledged before the group
commit of ``IngestWriter`` has committed it.

One endpoint per source (``SOURCES``): Alertmanager (the fast path, tuned for volume),
Grafana, Datadog, PagerDuty v3 and generic (``ingest.sources``). Grafana's and PagerDuty's
signatures are checked on the raw body when a secret is configured, after the bearer token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sentinel.api.metrics import ALERTS_RECEIVED, INGEST_SECONDS
from sentinel.api.state import AppState
from sentinel.audit.canonical import keys_are_native
from sentinel.auth.service import Principal
from sentinel.core.errors import BadRequest, PayloadTooLarge, SentinelError
from sentinel.core.ids import triage_workflow_id
from sentinel.flows.incident import TRIAGE
from sentinel.incident.ingest import Delivery
from sentinel.incident.schemas import AlertIn
from sentinel.ingest import signatures, sources
from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager

log = logging.getLogger("sentinel.api")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Disconnected(Exception):
    """The client went away before the body arrived: nothing to store, nothing to answer."""


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v).decode("latin-1")
    return None


async def read_limited(scope: Scope, receive: Receive, limit: int) -> bytes:
    """Read the body, refusing (413) anything over the limit before holding it all."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise BadRequest("invalid Content-Length") from exc
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_INT_MAX = 2**53 - 1


def parse_json_document(body: bytes) -> tuple[dict[str, Any], bool]:
    """Decode a JSON object or raise a 400 that says what is wrong.

    Also says whether the object is JSON-native for the audit log (``Entry.json_native``):
    no float, NaN or infinity, no integer past ±(2**53 − 1) and no secret-looking or astral
    key anywhere in it. orjson decodes the common case (UTF-8, RFC 8259, strings, small
    integers: an Alertmanager delivery) to the same values as ``json``, and one walk over
    the result checks it. Everything else takes the ``json`` module's path, so the values
    and the error messages are ``json``'s: what orjson refuses (other encodings, NaN, lone
    surrogates, malformed text) and any document that is not native (orjson turns an
    integer past 64 bits into a float, ``json`` keeps it exact).
    """
    if not body:
        raise BadRequest("empty body; expected a JSON object")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _parse_json_slow(body)
    if type(raw) is dict and _is_native(raw):
        return raw, True
    return _parse_json_slow(body)


def _is_native(doc: dict[str, Any]) -> bool:
    """No float, no integer past ±(2**53 − 1), and only keys ``keys_are_native`` passes."""
    pending: list[Any] = [doc]
    while pending:
        node = pending.pop()
        if type(node) is dict:
            if not keys_are_native(node):
                return False
            node = node.values()
        for value in node:
            kind = type(value)
            if kind is str or kind is bool or value is None:
                continue
            if kind is int:
                if -_INT_MAX <= value <= _INT_MAX:
                    continue
                return False
            if kind is dict or kind is list:
                pending.append(value)
                continue
            return False  # a float
    return True


def _parse_json_slow(body: bytes) -> tuple[dict[str, Any], bool]:
    """``parse_json_document`` through the ``json`` module, checking as it parses: the
    decoder hands over each number and each object it builds."""
    odd: list[str] = []

    def _float(text: str) -> float:
        odd.append(text)
        return float(text)

    def _int(text: str) -> int:
        value = int(text)
        if not -_INT_MAX <= value <= _INT_MAX:
            odd.append(text)
        return value

    def _object(obj: dict[str, Any]) -> dict[str, Any]:
        if not keys_are_native(obj):
            odd.append("key")
        return obj

    decoder = json.JSONDecoder(
        object_hook=_object, parse_float=_float, parse_int=_int, parse_constant=_float
    )
    try:
        raw = decoder.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("expected a JSON object at the top level")
    return raw, not odd


def start_triage(state: AppState) -> Callable[[Session, list[str]], None]:
    """Enqueue each new incident's triage workflow inside the ingest transaction."""

    def start(s: Session, incident_ids: list[str]) -> None:
        for iid in incident_ids:
            state.enqueuer.enqueue_in(s, TRIAGE, triage_workflow_id(iid), iid)

    return start


async def _principal(state: AppState, scope: Scope) -> Principal:
    authorization = _header(scope, b"authorization")
    cached = state.cached_principal(authorization)
    if cached is not None:
        return cached
    return await run_in_threadpool(state.authenticate, authorization)


Parser = Callable[[dict[str, Any]], list[AlertIn]]
Verifier = Callable[[AppState, Scope, bytes], None]


def _alertmanager(raw: dict[str, Any]) -> list[AlertIn]:
    return normalize_alertmanager(AlertmanagerWebhook.model_validate(raw))


def _grafana_signature(state: AppState, scope: Scope, body: bytes) -> None:
    cfg = state.settings.ingest
    if cfg.grafana_hmac_secret is None:
        return
    ts_header = cfg.grafana_timestamp_header
    signatures.verify_grafana(
        cfg.grafana_hmac_secret.get_secret_value(),
        body,
        _header(scope, cfg.grafana_signature_header.lower().encode("latin-1")),
        timestamp=_header(scope, ts_header.lower().encode("latin-1")) if ts_header else None,
        timestamp_required=ts_header is not None,
        now=time.time(),
        max_skew=cfg.signature_max_skew_seconds,
    )


def _pagerduty_signature(state: AppState, scope: Scope, body: bytes) -> None:
    secrets = state.settings.ingest.pagerduty_webhook_secrets
    if secrets:
        signatures.verify_pagerduty(
            [s.get_secret_value() for s in secrets], body, _header(scope, b"x-pagerduty-signature")
        )


class Source:
    """One alert source's endpoint: its path, parser, payload name and signature check."""

    def __init__(
        self,
        name: str,
        label: str,
        parse: Parser,
        verify: Verifier | None = None,
        event_id: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.name = name
        self.path = f"/api/v1/alerts/{name}"
        self.label = label
        self.parse = parse
        self.verify = verify
        self.event_id = event_id
        self.seconds = INGEST_SECONDS.labels(name)
        self.received = {s: ALERTS_RECEIVED.labels(name, s) for s in ("firing", "resolved")}


SOURCES = (
    Source("alertmanager", "Alertmanager v4 webhook", _alertmanager),
    Source("grafana", "Grafana alerting webhook", sources.parse_grafana, _grafana_signature),
    Source(
        "datadog",
        "Datadog webhook (Sentinel's template)",
        sources.parse_datadog,
        event_id=sources.datadog_event_id,
    ),
    Source(
        "pagerduty",
        "PagerDuty v3 webhook",
        sources.parse_pagerduty,
        _pagerduty_signature,
        event_id=sources.pagerduty_event_id,
    ),
    Source("generic", "generic alert", sources.parse_generic),
)


async def _ingest(
    state: AppState, source: Source, scope: Scope, receive: Receive
) -> dict[str, Any]:
    principal = await _principal(state, scope)
    principal.require("ingest")
    body = await read_limited(scope, receive, state.settings.ingest.max_body_bytes)
    if source.verify is not None:
        source.verify(state, scope, body)
    raw, native = parse_json_document(body)
    try:
        alerts = source.parse(raw)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise BadRequest(f"not a valid {source.label} payload", details) from exc
    out = await state.writer.submit(
        Delivery(
            alerts=alerts,
            raw=raw,
            source=source.name,
            principal=principal.name,
            raw_json_native=native,
            event_id=source.event_id(raw) if source.event_id is not None else None,
        )
    )
    if out.duplicate:
        return {"accepted": 0, "incident_ids": [], "duplicate": True}
    for a in alerts:
        source.received[a.status].inc()
    return {"accepted": len(alerts), "incident_ids": out.incident_ids}


async def _reply(send: Send, status: int, content: Any) -> None:
    body = orjson.dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class IngestEndpoint:
    """The ASGI endpoint of one alert source."""

    def __init__(self, state: AppState, source: Source) -> None:
        self.state = state
        self.source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status, content = 202, await _ingest(self.state, self.source, scope, receive)
        except _Disconnected:
            return
        except SentinelError as exc:
            status = exc.status
            content = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        except Exception:  # noqa: BLE001 - answered as the API's 500 shape, never raised
            log.exception("ingest failed")
            status = 500
            content = {"error": {"code": "internal", "message": "internal error", "details": None}}
        await _reply(send, status, content)
        self.source.seconds.observe(time.perf_counter() - started)
