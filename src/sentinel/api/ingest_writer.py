"""One writer per API process: group commit of alert deliveries.

Requests hand their validated delivery to the writer and wait; a writer thread takes
whatever has queued (up to ``max_batch``), stores it in ONE transaction, commits, and only
then wakes each request, which replies 202. Nothing is acknowledged before it is committed.
If a batch fails, its deliveries are retried one by one so one bad delivery fails alone.

``ingest.batch_linger_ms`` lets the writer wait a moment for more deliveries before it
commits: on PostgreSQL (0.3 ms by default), where a commit takes milliseconds, the requests
one commit answers are back within that moment and join the next batch instead of
starting a half-empty one of their own.

``ingest.writer_threads`` > 1 (PostgreSQL) lets one batch run its reads and writes while
another's commit waits for the WAL flush; batches that touch the same service still wait
for each other (per-service locks). Deliveries in flight at the same time have no order
between them (HTTP gives none either); one sent after another's 202 is stored after it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sentinel.core.db import (
    WalCheckpointer,
    WriterLock,
    disable_autocheckpoint,
    is_file_sqlite,
    transaction,
)
from sentinel.incident.ingest import Delivery, IngestOutcome, ingest_batch

log = logging.getLogger("sentinel.ingest")

# The PostgreSQL default of ``ingest.batch_linger_ms``: measured in-process at 16 deliveries
# in flight, batches went from 8-13 deliveries to 16 (two half batches alternating, each
# waiting out the other's commit, became one).
PG_LINGER_MS = 0.3

StartTriage = Callable[[Session, list[str]], None]


@dataclass
class _Job:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestOutcome]


class IngestWriter:
    """A daemon thread that commits deliveries in batches."""

    def __init__(
        self,
        engine: Engine,
        window_seconds: int,
        start_triage: StartTriage,
        max_batch: int = 128,
        threads: int | None = None,
        linger_ms: float | None = None,
    ) -> None:
        self.engine = engine
        self.window_seconds = window_seconds
        self.start_triage = start_triage
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # put() in C, no lock
        self._sqlite = is_file_sqlite(engine)
        self._checkpointer = WalCheckpointer(engine).start() if self._sqlite else None
        # Several API processes on one SQLite file take turns without SQLite's sleepy
        # busy handler (PostgreSQL needs nothing: its writers run concurrently).
        self._writer_lock = WriterLock(engine.url.database or "") if self._sqlite else None
        self.batches = 0
        self.deliveries = 0
        sqlite = engine.dialect.name == "sqlite"
        if linger_ms is None:
            linger_ms = 0.0 if sqlite else PG_LINGER_MS
        self.linger = linger_ms / 1000
        n = 1 if sqlite or not threads else threads  # SQLite: one writer anyway
        self._threads = [
            threading.Thread(target=self._run, name=f"sentinel-ingest-{i}", daemon=True)
            for i in range(n)
        ]
        for t in self._threads:
            t.start()

    async def submit(self, delivery: Delivery) -> IngestOutcome:
        """Queue a delivery and wait until it is committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IngestOutcome] = loop.create_future()
        self._q.put(_Job(delivery, loop, fut))
        return await fut

    def close(self) -> None:
        """Finish what is queued, then stop."""
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join(timeout=30)
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._writer_lock is not None:
            self._writer_lock.close()

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            # Take what has queued; with a linger, also what arrives within `linger` of the
            # last one, for at most 10 lingers in all (a steady stream still commits).
            linger = self.linger
            until = time.monotonic() + 10 * linger
            while len(jobs) < self.max_batch:
                try:
                    if linger:
                        wait = min(linger, until - time.monotonic())
                        nxt = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                    else:
                        nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            self._commit(jobs)
            if stop:
                return

    def _store(self, jobs: list[_Job]) -> list[IngestOutcome]:
        if self._writer_lock is None:
            return self._store_batch(jobs)
        with self._writer_lock:
            return self._store_batch(jobs)

    def _store_batch(self, jobs: list[_Job]) -> list[IngestOutcome]:
        with transaction(self.engine) as s:
            if self._sqlite:
                disable_autocheckpoint(s)
            outs = ingest_batch(
                session=s,
                deliveries=[j.delivery for j in jobs],
                window_seconds=self.window_seconds,
            )
            self.start_triage(s, [iid for o in outs for iid in o.opened])
        return outs

    def _commit(self, jobs: list[_Job]) -> None:
        try:
            outs = self._store(jobs)
        except Exception as exc:  # noqa: BLE001 - isolate the failing delivery below
            if len(jobs) == 1:
                log.exception("ingest failed")
                _resolve([(jobs[0], exc)])
                return
            for j in jobs:
                self._commit([j])
            return
        self.batches += 1
        self.deliveries += len(jobs)
        _resolve(list(zip(jobs, outs, strict=True)))


def _resolve(results: list[tuple[_Job, IngestOutcome | BaseException]]) -> None:
    """Wake the waiting requests: one loop wake-up per event loop, not one per delivery."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, IngestOutcome | BaseException]]]
    by_loop = {}
    for job, result in results:
        by_loop.setdefault(job.loop, []).append((job, result))
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_set_results, items)


def _set_results(items: list[tuple[_Job, IngestOutcome | BaseException]]) -> None:
    for job, result in items:
        if job.future.done():
            continue  # the request was cancelled (client gone); the delivery is stored anyway
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)
