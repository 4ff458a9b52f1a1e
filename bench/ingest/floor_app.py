"""The durable floor of the ingest benchmark: the bare endpoint plus a committed write.

What any endpoint that commits a delivery before replying must do at the least in this
stack: read the body, decode the JSON, hand the bytes to one writer thread that inserts
whatever has queued into one table in ONE transaction, commits, and wakes the waiting
requests (one loop wake-up per batch). No auth, no validation, no grouping into incidents,
no audit record: the gap between ``bare`` and this target is the price of the commit alone,
and between this target and Sentinel the price of everything Sentinel adds.

Two databases, each as Sentinel runs it:

- ``FLOOR_DB=/path/floor.db``: a SQLite file (WAL, ``synchronous=NORMAL``);
- ``FLOOR_PG=postgresql://...``: PostgreSQL through psycopg (the driver Sentinel uses), one
  kept connection, server defaults (``synchronous_commit=on``: the commit waits for the
  WAL flush), the batch's rows in one pipelined ``executemany``.

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
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_Job = tuple[bytes, asyncio.AbstractEventLoop, "asyncio.Future[int]"]
_MAX_BATCH = 128


def _sqlite_store(path: str) -> Callable[[list[bytes]], None]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
    )
    cur = conn.cursor()

    def store(bodies: list[bytes]) -> None:
        cur.execute("BEGIN IMMEDIATE")
        cur.executemany("INSERT INTO deliveries (body) VALUES (?)", [(b,) for b in bodies])
        cur.execute("COMMIT")

    return store


def _pg_store(url: str) -> Callable[[list[bytes]], None]:
    import psycopg

    conn = psycopg.connect(url, prepare_threshold=None)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL)"
    )
    conn.commit()
    cur = conn.cursor()

    def store(bodies: list[bytes]) -> None:
        cur.executemany("INSERT INTO deliveries (body) VALUES (%s)", [(b,) for b in bodies])
        conn.commit()

    return store


class _Writer:
    def __init__(self, stores: list[Callable[[list[bytes]], None]]) -> None:
        self.q: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        for i, store in enumerate(stores):
            threading.Thread(
                target=self._run, args=(store,), name=f"floor-writer-{i}", daemon=True
            ).start()

    def _run(self, store: Callable[[list[bytes]], None]) -> None:
        while True:
            jobs = [self.q.get()]
            while len(jobs) < _MAX_BATCH:
                try:
                    jobs.append(self.q.get_nowait())
                except queue.Empty:
                    break
            store([j[0] for j in jobs])
            by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
            for j in jobs:
                by_loop.setdefault(j[1], []).append(j)
            for loop, items in by_loop.items():
                loop.call_soon_threadsafe(_wake, items)


def _wake(items: list[_Job]) -> None:
    for _body, _loop, fut in items:
        if not fut.done():
            fut.set_result(1)


def _make_writer() -> _Writer:
    pg = os.environ.get("FLOOR_PG")
    if pg:
        return _Writer([_pg_store(pg) for _ in range(int(os.environ.get("FLOOR_WRITERS", "1")))])
    path = os.environ.get("FLOOR_DB") or os.path.join(tempfile.mkdtemp(), "floor.db")
    return _Writer([_sqlite_store(path)])


_WRITER = _make_writer()


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
