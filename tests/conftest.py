"""Shared fixtures: real PostgreSQL/SQLite databases, settings, running Sentinel processes.

A test that needs a service it cannot reach skips locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "SENTINEL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(ok: bool, what: str) -> None:
    """Skip when a service is missing locally; fail under CI=true."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"required service missing under CI: {what}")
    pytest.skip(f"service missing: {what}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    need(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
    name = f"sentinel_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sentinel.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Both backends: the embedded default and production."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sentinel.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


def sentinel_env(db: str, tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a Sentinel subprocess with its own database and checkpoint dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(
        {
            "SENTINEL_DATABASE_URL": db,
            "SENTINEL_AUDIT__CHECKPOINT_DIR": str(tmp / "checkpoints"),
            "SENTINEL_AUDIT__SIGNING_KEY_PATH": str(tmp / "audit-signing.key"),
            "SENTINEL_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``sentinel ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def create_token(env: dict[str, str], name: str, role: str) -> str:
    out = run_cli(env, "users", "create", name, "--role", role, "--json")
    return str(json.loads(out.stdout)["token"])


class Proc:
    """A Sentinel process (serve / worker) with its log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "sentinel.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def kill9(self) -> None:
        self.p.kill()
        self.p.wait(timeout=10)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._fh.close()

    def alive(self) -> bool:
        return self.p.poll() is None


def wait_http(url: str, timeout: float = 150.0, proc: Proc | None = None) -> None:
    """Wait for a 200 from ``url``. A process's startup takes ~10 s on an idle 2-core
    machine and several times that when the cores are busy (xdist, other jobs): the
    timeout only bounds a hang. If ``proc`` never gets ready it is stopped, not leaked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"process exited: {proc.log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    if proc is not None:
        proc.stop()
    raise TimeoutError(f"{url} not up after {timeout}s")


def wait_for(
    pred: Any, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def am_payload(
    *alerts: dict[str, Any], status: str = "firing", group_key: str = '{}:{alertname="X"}'
) -> dict[str, Any]:
    """An Alertmanager v4 webhook body as Alertmanager sends it."""
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "sentinel",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def am_alert(
    alertname: str = "HighErrorRate",
    service: str = "checkout",
    fingerprint: str | None = None,
    status: str = "firing",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "service": service, **labels},
        "annotations": {"summary": f"{alertname} on {service}"},
        "startsAt": "2026-11-25T05:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T05:10:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
        "fingerprint": fingerprint or uuid.uuid4().hex[:16],
    }


class WebhookReceiver:
    """A local HTTP endpoint that records every POST (body and Idempotency-Key)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.deliveries: list[dict[str, Any]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                n = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(n) or b"null")
                with lock:
                    outer.deliveries.append(
                        {"key": self.headers.get("Idempotency-Key"), "body": body}
                    )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def keys(self) -> list[str | None]:
        return [d["key"] for d in self.deliveries]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()
