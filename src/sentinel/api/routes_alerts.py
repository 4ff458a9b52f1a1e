"""POST /api/v1/alerts/*: authenticate, bound, parse, store durably, then reply 202."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sentinel.api.metrics import ALERTS_RECEIVED, INGEST_SECONDS
from sentinel.api.state import AppState, get_state
from sentinel.core.errors import BadRequest, PayloadTooLarge
from sentinel.core.ids import triage_workflow_id
from sentinel.flows.incident import TRIAGE
from sentinel.incident.ingest import Delivery
from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager

router = APIRouter(prefix="/api/v1/alerts", tags=["ingest"])


async def read_limited(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) anything over the limit before holding it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise BadRequest("invalid Content-Length") from exc
        if size > limit:
            raise PayloadTooLarge(f"body of {size} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object or raise a 400 that says what is wrong."""
    if not body:
        raise BadRequest("empty body; expected a JSON object")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest("expected a JSON object at the top level")
    return raw


def start_triage(state: AppState) -> Callable[[Session, list[str]], None]:
    """Enqueue each new incident's triage workflow inside the ingest transaction."""

    def start(s: Session, incident_ids: list[str]) -> None:
        for iid in incident_ids:
            state.enqueuer.enqueue_in(s, TRIAGE, triage_workflow_id(iid), iid)

    return start


@router.post("/alertmanager", status_code=202)
async def alertmanager(request: Request) -> JSONResponse:
    """Prometheus Alertmanager webhook, version 4."""
    state = get_state(request)
    with INGEST_SECONDS.labels("alertmanager").time():
        principal = await run_in_threadpool(
            state.authenticate, request.headers.get("authorization")
        )
        principal.require("ingest")
        body = await read_limited(request, state.settings.ingest.max_body_bytes)
        raw = parse_json_object(body)
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
            Delivery(alerts=alerts, raw=raw, source="alertmanager", principal=principal.name)
        )
        ids = out.incident_ids
    for a in alerts:
        ALERTS_RECEIVED.labels("alertmanager", a.status).inc()
    return JSONResponse(status_code=202, content={"accepted": len(alerts), "incident_ids": ids})
