"""The baseline for the ingest benchmark: a bare Starlette app, no auth, no validation, no DB.

One POST endpoint at Sentinel's path that reads the body, decodes the JSON and replies 202
with a body of the same shape as Sentinel's, so the difference to Sentinel is what Sentinel
does between reading the request and writing the reply.

    uv run uvicorn bench.ingest.bare_app:app --no-access-log --loop uvloop --http httptools
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def alertmanager(request: Request) -> JSONResponse:
    body = await request.body()
    doc = json.loads(body)
    alerts = doc.get("alerts", []) if isinstance(doc, dict) else []
    return JSONResponse({"accepted": len(alerts), "incident_ids": []}, status_code=202)


app = Starlette(routes=[Route("/api/v1/alerts/alertmanager", alertmanager, methods=["POST"])])
