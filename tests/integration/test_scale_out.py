"""Several workers on one PostgreSQL: each incident handled once; a dead worker's work is resumed."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sentinel.audit import chain
from sentinel.audit.models import AuditRecord
from sentinel.core.db import make_engine
from sentinel.flows.models import StepResult
from sentinel.incident.models import Incident
from tests.conftest import (
    Proc,
    WebhookReceiver,
    am_alert,
    am_payload,
    create_token,
    free_port,
    run_cli,
    sentinel_env,
    wait_for,
    wait_http,
)


def _escalated(engine: object, n: int) -> bool:
    with Session(engine) as s:  # type: ignore[arg-type]
        return (s.scalar(select(func.count()).where(Incident.status == "ESCALATED")) or 0) >= n


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_share_fifty_incidents_exactly_once(
    pg_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    base = sentinel_env(pg_url, tmp_path, SENTINEL_NOTIFY__WEBHOOK_URL=receiver.url)
    run_cli(base, "db", "upgrade")
    token = create_token(base, "am", "ingest")
    port = free_port()
    procs = [Proc(["api", "--port", str(port)], base, tmp_path / "api.log")]
    for wid in ("w1", "w2"):
        env = {**base, "SENTINEL_WORKER__EXECUTOR_ID": wid, "SENTINEL_WORKER__CONCURRENCY": "3"}
        procs.append(Proc(["worker"], env, tmp_path / f"{wid}.log"))
    engine = make_engine(pg_url)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=procs[0])
        ids = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            for i in range(50):
                r = c.post(
                    "/api/v1/alerts/alertmanager",
                    json=am_payload(am_alert("HighErrorRate", f"svc-{i:02d}")),
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert r.status_code == 202
                ids += r.json()["incident_ids"]
        assert len(set(ids)) == 50
        wait_for(lambda: _escalated(engine, 50), timeout=240, interval=1, what="50 escalations")
    finally:
        for p in procs:
            p.stop()
    with Session(engine) as s:
        rows = list(s.scalars(select(StepResult).where(StepResult.step == "AlertReceived")))
        per_incident = collections.Counter(r.workflow_id for r in rows)
        by_worker = collections.Counter(r.executor_id for r in rows)
        step_records = collections.Counter(
            json.loads(r.body)["details"]["step"] + "|" + (r.incident_id or "")
            for r in s.scalars(
                select(AuditRecord).where(AuditRecord.action_type != "ALERT_INGESTED")
            )
            if "step" in json.loads(r.body)["details"]
        )
    assert len(per_incident) == 50 and set(per_incident.values()) == {1}
    assert set(by_worker) == {"w1", "w2"}, by_worker  # both took a share
    assert set(step_records.values()) == {1}  # no step of any incident ran twice
    keys = receiver.keys()
    assert len(keys) == 50 and len(set(keys)) == 50
    assert chain.walk_chain(engine).ok
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_dead_workers_incident_is_resumed_by_another(
    pg_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    base = sentinel_env(
        pg_url,
        tmp_path,
        SENTINEL_NOTIFY__WEBHOOK_URL=receiver.url,
        SENTINEL_WORKER__DEAD_AFTER_SECONDS="4",
        SENTINEL_WORKER__HEARTBEAT_SECONDS="0.5",
    )
    run_cli(base, "db", "upgrade")
    token = create_token(base, "am", "ingest")
    port = free_port()
    api = Proc(["api", "--port", str(port)], base, tmp_path / "api.log")
    doomed = Proc(
        ["worker"],
        {
            **base,
            "SENTINEL_WORKER__EXECUTOR_ID": "doomed",
            "SENTINEL_WORKER__CRASH_AFTER_STEP": "RootCauseAnalysis",
        },
        tmp_path / "doomed.log",
    )
    engine = make_engine(pg_url)
    survivor = None
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=api)
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager",
            json=am_payload(am_alert()),
            headers={"Authorization": f"Bearer {token}"},
        )
        incident_id = r.json()["incident_ids"][0]
        doomed.p.wait(timeout=60)
        assert doomed.p.returncode == -9
        survivor = Proc(
            ["worker"], {**base, "SENTINEL_WORKER__EXECUTOR_ID": "survivor"}, tmp_path / "s.log"
        )
        wait_for(lambda: _escalated(engine, 1), timeout=90, interval=0.5, what="resumed incident")
    finally:
        for p in (api, doomed, survivor):
            if p is not None:
                p.stop()
    with Session(engine) as s:
        done = {
            r.step: r.executor_id
            for r in s.scalars(
                select(StepResult).where(StepResult.workflow_id == f"{incident_id}:triage")
            )
        }
    assert done["AlertReceived"] == "doomed" and done["RootCauseAnalysis"] == "doomed"
    assert done["RiskEvaluation"] == "survivor" and done["EscalateToHuman"] == "survivor"
    assert len(receiver.keys()) == 1
    engine.dispose()
