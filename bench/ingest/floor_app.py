"""The durable floor of the ingest benchmark: the bare endpoint plus a committed write.

What any endpoint that commits a delivery before replying must do at the least in this
stack: read the body, decode the JSON, hand the bytes to one writer thread that inserts
whatever has queued into a SQLite table (WAL, ``synchronous=NORMAL``, as Sentinel runs it)
in ONE transaction, commits, and wakes the waiting requests (one loop wake-up per batch).
No auth, no validation, no grouping into incidents, no audit record: the gap between
``bare`` and this target is the price of the commit alone, and between this target and
Sentinel the price of everything Sentinel adds.

    FLOOR_DB=/tmp/floor.db uv run uvicorn bench.ingest.floor_app:app --no-access-log
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import tempfile
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_Job = tuple[bytes, asyncio.AbstractEventLoop, "asyncio.Future[int]"]


class _Writer:
    def __init__(self, path: str) -> None:
        self.q: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
        )
        threading.Thread(target=self._run, name="floor-writer", daemon=True).start()

    def _run(self) -> None:
        cur = self.conn.cursor()
        while True:
            jobs = [self.q.get()]
            while len(jobs) < 128:
                try:
                    jobs.append(self.q.get_nowait())
                except queue.Empty:
                    break
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany("INSERT INTO deliveries (body) VALUES (?)", [(j[0],) for j in jobs])
            cur.execute("COMMIT")
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for j in jobs:
                by_loop.setdefault(j[1], []).append(j)
            for loop, items in by_loop.items():
                loop.call_soon_threadsafe(_wake, items)


def _wake(items: list[_Job]) -> None:
    for _body, _loop, fut in items:
        if not fut.done():
            fut.set_result(1)


_WRITER = _Writer(os.environ.get("FLOOR_DB") or os.path.join(tempfile.mkdtemp(), "floor.db"))


async def alertmanager(request: Request) -> JSONResponse:
    body = await request.body()
    doc: Any = json.loads(body)
    alerts = doc.get("alerts", []) if isinstance(doc, dict) else []
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    _WRITER.q.put((body, loop, fut))
    await fut
    return JSONResponse({"accepted": len(alerts), "incident_ids": []}, status_code=202)


app = Starlette(routes=[Route("/api/v1/alerts/alertmanager", alertmanager, methods=["POST"])])
