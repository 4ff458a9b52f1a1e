"""Entry of ``sentinel worker``: durable workflows plus periodic signed checkpoints."""

from __future__ import annotations

import logging
import signal
import threading
import time

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sentinel.audit import checkpoint
from sentinel.audit.models import AuditRecord
from sentinel.bootstrap import start_worker, upgrade_database
from sentinel.core.config import Settings
from sentinel.core.db import make_engine

log = logging.getLogger("sentinel.worker")


class CheckpointWriter:
    """Signs the chain head every N records, or every interval when it moved."""

    def __init__(self, settings: Settings, engine: Engine, interval: float = 10.0) -> None:
        self.settings = settings
        self.engine = engine
        self.interval = interval
        self._last_seq = 0
        self._last_time = 0.0

    def tick(self) -> None:
        with Session(self.engine) as s:
            head = s.scalar(select(func.coalesce(func.max(AuditRecord.seq), 0))) or 0
        due = head - self._last_seq >= self.settings.audit.checkpoint_every or (
            head > self._last_seq and time.monotonic() - self._last_time >= self.interval
        )
        if due:
            cp = checkpoint.write_checkpoint(
                self.engine,
                self.settings.audit.signing_key_path,
                self.settings.audit.checkpoint_dir,
            )
            if cp is not None:
                self._last_seq, self._last_time = cp.size, time.monotonic()


def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT."""
    engine = make_engine(settings.database_url)
    upgrade_database(settings, engine)
    worker = start_worker(settings, engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = CheckpointWriter(settings, engine)
    print(f"sentinel worker {settings.worker.executor_id} running", flush=True)
    while not stop.wait(2.0):
        try:
            writer.tick()
        except Exception:  # noqa: BLE001 - keep working; the next tick retries
            log.exception("checkpoint failed")
    worker.stop()
    engine.dispose()
