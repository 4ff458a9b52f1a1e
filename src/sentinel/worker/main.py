"""Entry of ``sentinel worker``: durable workflows plus periodic signed checkpoints."""

from __future__ import annotations

import signal
import threading

from sentinel.bootstrap import checkpoint_writer, start_worker, upgrade_database
from sentinel.core.config import Settings
from sentinel.core.db import make_engine


def run(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT."""
    engine = make_engine(settings.database_url)
    upgrade_database(settings, engine)
    worker = start_worker(settings, engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    writer = checkpoint_writer(settings, engine).start()
    print(f"sentinel worker {settings.worker.executor_id} running", flush=True)
    stop.wait()
    worker.stop()
    writer.stop()
    engine.dispose()
