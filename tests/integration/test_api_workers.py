"""`sentinel api --workers 2` and a `sentinel worker` on one SQLite file.

The API processes take turns as the writer; the worker runs what they enqueued.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from sentinel.core.db import make_engine
from tests.conftest import (
    Proc,
    am_alert,
    am_payload,
    create_token,
    free_port,
    run_cli,
    sentinel_env,
    wait_for,
    wait_http,
)


def _children(pid: int) -> list[int]:
    """uvicorn's serving processes under its supervisor (not multiprocessing's tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for c in task.read_text().split():
            try:
                cmd = Path(f"/proc/{c}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(int(c))
    return out


def _received(exposition: str) -> float:
    """sentinel_alerts_received_total of firing Alertmanager alerts in a scrape."""
    for line in exposition.splitlines():
        if line.startswith("sentinel_alerts_received_total{") and 'status="firing"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no sentinel_alerts_received_total sample:\n" + exposition)


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as c:
        return int(c.execute(text(sql)).scalar() or 0)


def test_two_api_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sentinel.db'}"
    env = sentinel_env(url, tmp_path)
    run_cli(env, "db", "upgrade")
    token = create_token(env, "am", "ingest")
    port = free_port()
    api = Proc(["api", "--port", str(port), "--workers", "2"], env, tmp_path / "api.log")
    worker_env = {**env, "SENTINEL_WORKER__EXECUTOR_ID": "w1"}
    worker = Proc(["worker"], worker_env, tmp_path / "worker.log")
    engine = make_engine(url)
    services, per_service, repeats = 10, 12, 3
    bodies = [
        json.dumps(am_payload(am_alert("HighErrorRate", f"svc-{s}", fingerprint=f"fp-{s}-{i}")))
        for s in range(services)
        for i in range(per_service)
    ] * repeats
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=api)
        wait_for(lambda: len(_children(api.p.pid)) == 2, what="two API processes")

        def post(chunk: list[str]) -> list[int]:
            # one connection per thread: the kernel spreads connections over the processes
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                return [
                    c.post(
                        "/api/v1/alerts/alertmanager",
                        content=b,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Content-Type": "application/json",
                        },
                    ).status_code
                    for b in chunk
                ]

        chunks = [bodies[i::12] for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            codes = [c for out in pool.map(post, chunks) for c in out]
        served = _children(api.p.pid)
        # whichever process answers a scrape reports every process's counts
        scraped = []
        for _ in range(6):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                scraped.append(_received(c.get("/metrics").text))
        # the workflows the API processes enqueued run in the one worker beside them
        wait_for(
            lambda: (
                _count(engine, "SELECT count(*) FROM incidents WHERE status = 'ESCALATED'")
                == services
            ),
            timeout=120,
            what="every incident triaged by the worker",
        )
    finally:
        api.stop()
        worker.stop()
    assert codes.count(202) == len(bodies), sorted(set(codes))
    assert len(served) == 2
    assert scraped == [float(len(bodies))] * len(scraped), scraped
    with engine.connect() as c:
        # one incident per service, although both processes saw its first alerts at once
        assert c.execute(text("SELECT count(*), count(DISTINCT service) FROM incidents")).one() == (
            services,
            services,
        )
        assert c.execute(text("SELECT count(*), sum(received_count) FROM alerts")).one() == (
            services * per_service,
            len(bodies),
        )
        ingested = c.execute(
            text("SELECT count(*) FROM audit_log WHERE action_type = 'ALERT_INGESTED'")
        ).scalar()
        assert ingested == len(bodies)
    engine.dispose()
    verify = run_cli(env, "audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
