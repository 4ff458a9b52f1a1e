"""POST /api/v1/alerts/*: authenticate, bound, parse, store durably, then reply 202.

The ingest endpoint is the one hot path of the API, so it is a plain ASGI endpoint: no
dependency injection, no middleware stack (``SentinelApp`` hands it the request directly;
the router holds the same endpoint for everything else, e.g. a 405 on GET). It does its
own error mapping to the INTERFACES.md shape. Nothing is acknowledged before the group
commit of ``IngestWriter`` has committed it.
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
from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager

log = logging.getLogger("sentinel.api")

ALERTMANAGER_PATH = "/api/v1/alerts/alertmanager"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SECONDS = INGEST_SECONDS.labels("alertmanager")
_RECEIVED = {s: ALERTS_RECEIVED.labels("alertmanager", s) for s in ("firing", "resolved")}
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


async def _ingest_alertmanager(state: AppState, scope: Scope, receive: Receive) -> dict[str, Any]:
    principal = await _principal(state, scope)
    principal.require("ingest")
    body = await read_limited(scope, receive, state.settings.ingest.max_body_bytes)
    raw, native = parse_json_document(body)
    try:
        payload = AlertmanagerWebhook.model_validate(raw)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise BadRequest("not a valid Alertmanager v4 webhook payload", details) from exc
    alerts = normalize_alertmanager(payload)
    out = await state.writer.submit(
        Delivery(
            alerts=alerts,
            raw=raw,
            source="alertmanager",
            principal=principal.name,
            raw_json_native=native,
        )
    )
    for a in alerts:
        _RECEIVED[a.status].inc()
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


class AlertmanagerEndpoint:
    """The ASGI endpoint of the Prometheus Alertmanager webhook (version 4)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status, content = 202, await _ingest_alertmanager(self.state, scope, receive)
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
        _SECONDS.observe(time.perf_counter() - started)
