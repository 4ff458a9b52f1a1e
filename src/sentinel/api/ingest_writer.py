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

On a SQLite file (``ingest.sqlite_inline``, the default) batches are committed on the event
loop's own thread instead. A SQLite commit in WAL mode with ``synchronous=NORMAL`` is CPU
work with no wait in it, and handing batches to another thread cost more than it saved in
GIL hand-offs. The loop gathers deliveries and commits once it has gone two full turns with
no new delivery (every request that had arrived has been read and parsed) or the oldest has
waited ``batch_linger_ms`` (1 ms by default); a lone delivery is committed on the next turn.
Measured at 16 in flight: 5,000-5,300 req/s with the thread, 6,200-6,500 this way, and
0.64 -> 0.48 ms at one in flight. The loop never waits for a lock: its connection has no
busy timeout and the cross-process writer lock is only tried, so a batch that finds either
taken (another API process, or the worker of ``sentinel serve``, is writing) goes to the
writer thread, which waits as before. Any other failure of a batch on the loop also goes to
the thread, which retries it and, if it fails again, stores its deliveries one by one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from sentinel.api.metrics import INGEST_BATCH
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
# The SQLite default for the event-loop writer: the longest a delivery waits for others
# to join its batch (16 deliveries in flight take well under 1 ms of loop time to arrive).
INLINE_LINGER_MS = 1.0
# Turns of the event loop with no new delivery before the loop commits: a request's bytes
# arrive in one turn and its task parses and submits in the next. 1: 6,213 req/s; 2: 6,540.
_QUIET_TURNS = 2

StartTriage = Callable[[Session, list[str]], None]


@dataclass
class _Job:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestOutcome]


class IngestWriter:
    """Commits deliveries in batches: on the event loop (SQLite) or a daemon thread."""

    def __init__(
        self,
        engine: Engine,
        window_seconds: int,
        start_triage: StartTriage,
        max_batch: int = 128,
        threads: int | None = None,
        linger_ms: float | None = None,
        inline: bool = True,
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
        self.inline = inline and self._sqlite
        # ``linger_ms`` is the loop's cap when the loop gathers (the thread, its fallback,
        # then commits at once), else the thread's wait for one more delivery.
        self.inline_linger = 0.0
        self.linger = (0.0 if sqlite else PG_LINGER_MS) / 1000
        if self.inline:
            self.inline_linger = (INLINE_LINGER_MS if linger_ms is None else linger_ms) / 1000
            self.linger = 0.0
        elif linger_ms is not None:
            self.linger = linger_ms / 1000
        self.inline_batches = 0  # batches committed on the loop (the rest: by the thread)
        self._home: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Job] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._since = 0.0
        self._seen = 0
        self._quiet = 0
        self._conn: Connection | None = None
        # The loop and the writer thread never store at the same time (the flock above is
        # per process: it cannot tell them apart).
        self._local = threading.Lock()
        self._pg = engine.dialect.name == "postgresql"
        self._tl = threading.local()  # PostgreSQL: each writer thread's connection
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
        job = _Job(delivery, loop, fut)
        if self.inline and (self._home is loop or self._home is None):
            self._home = loop
            self._pending.append(job)
            if len(self._pending) >= self.max_batch:
                self._flush()
            elif self._timer is None:
                self._since = loop.time()
                self._quiet = 0
                self._seen = 0
                self._timer = loop.call_soon(self._tick)
        else:
            self._q.put(job)
        return await fut

    def _tick(self) -> None:
        """Commit once the loop has gone a full turn with no delivery added (every request
        that had arrived has been read and parsed) or the oldest has waited the linger."""
        n = len(self._pending)
        if n > self._seen:
            self._seen, self._quiet = n, 0
        else:
            self._quiet += 1
        loop = asyncio.get_running_loop()
        if self._quiet >= _QUIET_TURNS or loop.time() - self._since >= self.inline_linger:
            self._timer = None
            self._flush()
        else:
            self._timer = loop.call_soon(self._tick)

    def _flush(self) -> None:
        """Commit the pending deliveries on this (the loop's) thread, or hand them over."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        try:
            outs = self._store_inline(jobs)
        except Exception as exc:  # noqa: BLE001 - locked or failed: the thread retries it all
            if not _is_busy(exc):
                log.warning("ingest batch failed on the event loop; the writer thread retries it")
                self._drop_connection()
            for j in jobs:
                self._q.put(j)
            return
        self.inline_batches += 1
        self._done(jobs, outs)

    def _store_inline(self, jobs: list[_Job]) -> list[IngestOutcome]:
        if not self._local.acquire(blocking=False):
            raise _Busy
        if self._writer_lock is not None and not self._writer_lock.try_acquire():
            self._local.release()
            raise _Busy
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
                # Fail at once on a locked database instead of waiting on the loop's thread
                # (on the driver's connection: through SQLAlchemy it would BEGIN first).
                _pragma(self._conn, "busy_timeout=0")
            with Session(bind=self._conn, expire_on_commit=False) as s, s.begin():
                return self._ingest(s, jobs)
        finally:
            if self._writer_lock is not None:
                self._writer_lock.release()
            self._local.release()

    def _drop_connection(self) -> None:
        """Forget the loop's connection after a failure (the next batch opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # discarded, not returned to the pool with no busy timeout
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                log.debug("closing a failed ingest connection", exc_info=True)

    def _ingest(self, s: Session, jobs: list[_Job]) -> list[IngestOutcome]:
        if self._sqlite:
            disable_autocheckpoint(s)
        outs = ingest_batch(
            session=s,
            deliveries=[j.delivery for j in jobs],
            window_seconds=self.window_seconds,
        )
        self.start_triage(s, [iid for o in outs for iid in o.opened])
        return outs

    def close(self) -> None:
        """Finish what is queued, then stop."""
        if self._pending:
            self._flush()  # on the loop's thread (lifespan shutdown) or queued to the thread
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join(timeout=30)
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._writer_lock is not None:
            self._writer_lock.close()
        if self._conn is not None:
            _pragma(self._conn, "busy_timeout=30000")  # back to the pool as it came
            self._conn.close()

    def _run(self) -> None:
        try:
            self._loop_jobs()
        finally:
            conn = getattr(self._tl, "conn", None)
            if conn is not None:
                conn.close()

    def _loop_jobs(self) -> None:
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
        with self._local:
            if self._writer_lock is None:
                return self._store_batch(jobs)
            with self._writer_lock:
                return self._store_batch(jobs)

    def _store_batch(self, jobs: list[_Job]) -> list[IngestOutcome]:
        if not self._pg:
            with transaction(self.engine) as s:
                return self._ingest(s, jobs)
        conn = self._thread_connection()
        try:
            with Session(bind=conn, expire_on_commit=False) as s, s.begin():
                return self._ingest(s, jobs)
        except Exception:
            self._tl.conn = None  # broken or not: the retries start on a new connection
            conn.invalidate()
            raise

    def _thread_connection(self) -> Connection:
        """PostgreSQL: this writer thread's own connection, kept from batch to batch (no pool
        checkout, no pre-ping round trip). psycopg's server-side prepared statements are off
        on it: on one long-lived connection PostgreSQL kept the generic plans it settled on
        while the tables were small, and ingest ran at 1,754-1,974 req/s with the server at
        61-63% CPU. Without them, against pooled connections, three interleaved pairs of 8 s
        runs: 2,758 / 2,683 / 3,412 req/s against 2,332 / 2,559 / 2,694 (+17%)."""
        conn: Connection | None = getattr(self._tl, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            conn.connection.dbapi_connection.prepare_threshold = None  # type: ignore[union-attr]
            self._tl.conn = conn
        return conn

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
        self._done(jobs, outs)

    def _done(self, jobs: list[_Job], outs: list[IngestOutcome]) -> None:
        self.batches += 1
        self.deliveries += len(jobs)
        INGEST_BATCH.observe(len(jobs))
        _resolve(list(zip(jobs, outs, strict=True)))


def _pragma(conn: Connection, pragma: str) -> None:
    conn.connection.dbapi_connection.execute(f"PRAGMA {pragma}")  # type: ignore[union-attr]


def _is_busy(exc: BaseException) -> bool:
    """Somebody else is writing: the writer lock, or SQLite's own (SQLITE_BUSY)."""
    if isinstance(exc, _Busy):
        return True
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


class _Busy(Exception):
    """The writer thread or another process is writing: the loop does not wait for it."""


def _resolve(results: list[tuple[_Job, IngestOutcome | BaseException]]) -> None:
    """Wake the waiting requests: one loop wake-up per event loop, not one per delivery
    (none for the loop this runs on: its futures are set directly)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, IngestOutcome | BaseException]]]
    by_loop = {}
    for job, result in results:
        by_loop.setdefault(job.loop, []).append((job, result))
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, items in by_loop.items():
        if loop is here:
            _set_results(items)
        else:
            loop.call_soon_threadsafe(_set_results, items)


def _set_results(items: list[tuple[_Job, IngestOutcome | BaseException]]) -> None:
    for job, result in items:
        if job.future.done():
            continue  # the request was cancelled (client gone); the delivery is stored anyway
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)
