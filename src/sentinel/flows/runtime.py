"""The durable runtime, wrapped: the only module that imports DBOS.

Rules from WORKFLOW.md live here: a stable executor id per process, a pinned application
version, portable JSON serialization, a queue that workers share, enqueue inside the
caller's transaction (so an incident and its workflow commit together), and a sweeper
that hands a dead worker's workflows to a live one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from dbos._serialization import DBOSPortableJSON
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.core.clock import utcnow
from sentinel.core.config import Settings
from sentinel.flows.models import WorkerHeartbeat

log = logging.getLogger("sentinel.runtime")

QUEUE = "sentinel-incidents"
APP_NAME = "sentinel"

F = TypeVar("F", bound=Callable[..., Any])


def workflow(*, name: str) -> Callable[[F], F]:
    """Declare a durable workflow under a stable name (names are part of the stored state)."""
    return DBOS.workflow(name=name)  # type: ignore[return-value]


def step(*, name: str) -> Callable[[F], F]:
    """Declare a checkpointed step (its output is stored; it is not re-run once recorded)."""
    return DBOS.step(name=name)  # type: ignore[return-value]


def durable_sleep(seconds: float) -> None:
    """Sleep inside a workflow; the wake-up time survives a restart."""
    DBOS.sleep(seconds)


def current_workflow_id() -> str:
    """The id of the workflow this code runs in."""
    wid = DBOS.workflow_id
    if wid is None:
        raise RuntimeError("not inside a workflow")
    return str(wid)


def enqueue_child(fn: Callable[..., Any], workflow_id: str, *args: Any) -> None:
    """From inside a workflow, durably enqueue another workflow under a fixed id."""
    queue = DBOS.retrieve_queue(QUEUE)
    if queue is None:
        raise RuntimeError(f"queue {QUEUE} is not registered")
    with SetWorkflowID(workflow_id):
        queue.enqueue(fn, *args)


def system_url(settings: Settings) -> str:
    """The DBOS system database: the same database Sentinel uses."""
    return settings.database_url


def migrate(settings: Settings) -> None:
    """Create or upgrade the engine's system tables (part of ``sentinel db upgrade``)."""
    DBOS.migrate(system_url(settings))


class Enqueuer:
    """Starts workflows from any process (API replicas included) without running them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: DBOSClient | None = None
        self._lock = threading.Lock()

    def _get(self) -> DBOSClient:
        with self._lock:
            if self._client is None:
                self._client = DBOSClient(
                    system_database_url=system_url(self._settings),
                    serializer=DBOSPortableJSON,
                    application_name=APP_NAME,
                    lazy=True,
                )
            return self._client

    def enqueue_in(
        self, session: Session, workflow_name: str, workflow_id: str, *args: Any
    ) -> None:
        """Enqueue inside the caller's transaction: it exists iff the caller commits."""
        self._get().enqueue_in_transaction(
            session,
            {
                "queue_name": QUEUE,
                "workflow_name": workflow_name,
                "workflow_id": workflow_id,
                "app_version": self._settings.worker.app_version,
            },
            *args,
        )

    def enqueue(self, workflow_name: str, workflow_id: str, *args: Any) -> None:
        """Enqueue now (idempotent: an existing workflow id is left as it is)."""
        self._get().enqueue(
            {
                "queue_name": QUEUE,
                "workflow_name": workflow_name,
                "workflow_id": workflow_id,
                "app_version": self._settings.worker.app_version,
            },
            *args,
        )

    def status(self, workflow_id: str) -> str | None:
        """The engine's status of a workflow (PENDING, SUCCESS, ERROR, ...), or None."""
        wfs = self._get().list_workflows(workflow_ids=[workflow_id])
        return str(wfs[0].status) if wfs else None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.destroy()
                self._client = None


class Worker:
    """One worker process: launches the engine under a stable id, beats, sweeps the dead."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        periodic: list[Callable[[], object]] | None = None,
        closers: list[Callable[[], object]] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.executor_id = settings.worker.executor_id
        # Run with every sweep (every two heartbeats), e.g. expiring approvals.
        self.periodic = periodic or []
        self.closers = closers or []  # run by stop(), after the threads
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Launch the engine (recovering this executor's own pending workflows) and threads."""
        cfg: DBOSConfig = {
            "name": APP_NAME,
            "system_database_url": system_url(self.settings),
            "executor_id": self.executor_id,
            "application_version": self.settings.worker.app_version,
            "serializer": DBOSPortableJSON,
            "run_migrations": True,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.2,
        }
        DBOS(config=cfg)
        DBOS.launch()
        DBOS.register_queue(
            QUEUE,
            worker_concurrency=self.settings.worker.concurrency,
            polling_interval_sec=0.2,
            on_conflict="always_update",
        )
        self._beat()
        for fn in (self._beat_loop, self._sweep_loop):
            t = threading.Thread(target=fn, name=f"sentinel-{fn.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("worker %s up (version %s)", self.executor_id, self.settings.worker.app_version)

    def stop(self) -> None:
        """Stop threads and the engine (in-flight workflows resume on the next start)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        for close in self.closers:
            close()
        DBOS.destroy(destroy_registry=False)

    def _beat(self) -> None:
        now = utcnow()
        with Session(self.engine) as s, s.begin():
            hb = s.get(WorkerHeartbeat, self.executor_id)
            if hb is None:
                s.add(
                    WorkerHeartbeat(
                        executor_id=self.executor_id,
                        host=socket.gethostname(),
                        pid=os.getpid(),
                        app_version=self.settings.worker.app_version,
                        started_at=now,
                        last_seen_at=now,
                    )
                )
            else:
                hb.last_seen_at = now
                hb.pid = os.getpid()
                hb.recovered_by = None

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.settings.worker.heartbeat_seconds):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat must not kill the worker
                log.exception("heartbeat failed")

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.worker.heartbeat_seconds * 2):
            for task in (self.sweep, *self.periodic):
                try:
                    task()
                except Exception:  # noqa: BLE001 - the next round retries
                    log.exception("periodic task %s failed", getattr(task, "__name__", task))

    def sweep(self) -> list[str]:
        """Hand the pending workflows of workers silent past the deadline to the queue."""
        deadline = utcnow() - timedelta(seconds=self.settings.worker.dead_after_seconds)
        with Session(self.engine) as s, s.begin():
            dead = list(
                s.scalars(
                    select(WorkerHeartbeat)
                    .where(
                        WorkerHeartbeat.last_seen_at < deadline,
                        WorkerHeartbeat.executor_id != self.executor_id,
                        WorkerHeartbeat.recovered_by.is_(None),
                    )
                    .with_for_update(skip_locked=True)
                )
            )
            ids = [d.executor_id for d in dead]
            if ids:
                # Re-enqueueing is idempotent in the engine: each workflow gets one runner.
                handles = DBOS._recover_pending_workflows(ids)
                for d in dead:
                    d.recovered_by = self.executor_id
                log.warning(
                    "worker %s: recovered %d workflows of dead workers %s",
                    self.executor_id,
                    len(handles),
                    ids,
                )
        return ids
