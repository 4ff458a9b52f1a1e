"""Database plumbing: declarative Base, engines for SQLite and PostgreSQL, transactions.

Services flush and never commit; the request or the workflow step owns the transaction
(``with transaction(engine) as session``) so audit records commit with their change.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Sentinel table."""

    metadata = MetaData(naming_convention=NAMING)


JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from sentinel.core.clock import as_utc

        return as_utc(value)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE writes."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Index pages from memory rather than read() calls: a 64 MiB page cache per
            # connection and the file mapped (reads only; writes still go through the WAL).
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA mmap_size=268435456")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Take the write lock up front: a deferred transaction that later upgrades
            # can fail with SQLITE_BUSY no matter the timeout, and the audit chain
            # needs its read of the head and its append to be one serialized step.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


class WalCheckpointer:
    """Checkpoint a SQLite WAL from a thread of its own, so no committing writer pays for it.

    With SQLite's default, the commit that pushes the WAL past 1,000 pages copies it into
    the database file and fsyncs, inside the writer's critical path: under ingest load one
    commit in ~20 took 8-27 ms instead of 0.5 ms. The ingest writer turns its connection's
    auto-checkpoint off (``disable_autocheckpoint``) and this thread runs a PASSIVE
    checkpoint every ``interval`` seconds on its own connection (a page rewritten many
    times meanwhile is copied once); PASSIVE never blocks writers or readers. Other
    connections keep SQLite's automatic checkpoint as a backstop.
    """

    def __init__(self, engine: Engine, interval: float = 2.0) -> None:
        self.path = engine.url.database or ""
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sentinel-wal", daemon=True)
        self.checkpoints = 0

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error:
            logging.getLogger("sentinel.db").warning("WAL checkpointer could not open the db")
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    continue  # busy or gone for a moment: the next round tries again
        finally:
            conn.close()


class WriterLock:
    """A cross-process lock beside a SQLite file: hands SQLite's single writer over at once.

    Several API processes can share one SQLite file; each ingest writer takes this lock
    around its write transaction. Without it the process that finds the database locked
    waits in SQLite's busy handler, which sleeps (1, 2, 5, 10 ... ms) and polls; a blocked
    ``flock`` wakes the moment the holder lets go, and waiting on it releases the GIL.
    The lock file (``<db>.writer-lock``) holds nothing; deleting it while nobody writes is
    harmless. Process-local: one writer thread per process takes it.
    """

    def __init__(self, path: str) -> None:
        self.path = f"{path}.writer-lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriterLock:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def is_file_sqlite(engine: Engine) -> bool:
    """A SQLite engine on a file (not in memory)."""
    db = engine.url.database
    return engine.dialect.name == "sqlite" and bool(db) and db != ":memory:"


def disable_autocheckpoint(session: Session) -> None:
    """Turn this session's SQLite connection's automatic WAL checkpoint off (once)."""
    conn = session.connection()
    if conn.info.get("sentinel_no_autockpt"):
        return
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    conn.info["sentinel_no_autockpt"] = True


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to the engine (objects stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
