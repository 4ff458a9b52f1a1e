"""kill -9 at every step boundary, then restart: the incident finishes and no side effect repeats."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.audit.models import AuditRecord
from sentinel.core.db import make_engine
from sentinel.flows.models import Intent, StepResult
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

STEPS = [
    "AlertReceived",
    "ContextGathering",
    "RootCauseAnalysis",
    "RemediationPlanning",
    "RiskEvaluation",
    "EscalateToHuman",
]
CRASH_POINTS = [*STEPS, "notify:after_intent", "notify:after_call"]


def _serve(env: dict[str, str], port: int, log: Path) -> Proc:
    p = Proc(["serve", "--port", str(port)], env, log)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc=p)
    return p


def step_audits(engine: Any, incident_id: str) -> collections.Counter[str]:
    with Session(engine) as s:
        recs = s.scalars(select(AuditRecord).where(AuditRecord.incident_id == incident_id))
        c: collections.Counter[str] = collections.Counter()
        for r in recs:
            import json

            d = json.loads(r.body)["details"]
            if "step" in d:
                c[d["step"]] += 1
        return c


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill9_at_step_boundary_then_restart(
    db_url: str, tmp_path: Path, receiver: WebhookReceiver, point: str
) -> None:
    base = sentinel_env(
        db_url,
        tmp_path,
        SENTINEL_NOTIFY__WEBHOOK_URL=receiver.url,
        SENTINEL_WORKER__EXECUTOR_ID="worker-a",
    )
    run_cli(base, "db", "upgrade")
    token = create_token(base, "am", "ingest")
    port = free_port()
    crashing = _serve(
        {**base, "SENTINEL_WORKER__CRASH_AFTER_STEP": point}, port, tmp_path / "a.log"
    )
    r = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager",
        json=am_payload(am_alert(fingerprint="crash-1")),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202
    incident_id = r.json()["incident_ids"][0]
    crashing.p.wait(timeout=60)
    assert crashing.p.returncode == -9, crashing.log.read_text()[-2000:]

    engine = make_engine(db_url)
    with Session(engine) as s:
        assert s.get(Incident, incident_id).status != "ESCALATED" or point.startswith(
            ("EscalateToHuman", "notify")
        )
    again = _serve(base, port, tmp_path / "b.log")
    try:

        def done() -> bool:
            with Session(engine) as s:
                return s.get(
                    StepResult, (f"{incident_id}:triage", "EscalateToHuman")
                ) is not None and (
                    s.get(Intent, f"{incident_id}:triage:notify:escalated") is not None
                    and s.get(Intent, f"{incident_id}:triage:notify:escalated").status
                    != "EXECUTING"
                )

        wait_for(done, timeout=90, what="the incident to finish after restart")
    finally:
        again.stop()
        crashing.stop()
    with Session(engine) as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None and inc.status == "ESCALATED"
        intent = s.get(Intent, f"{incident_id}:triage:notify:escalated")
        assert intent is not None
    engine.dispose()
    # every step recorded exactly once, whatever was re-entered
    counts = step_audits(make_engine(db_url), incident_id)
    assert all(counts[s] == 1 for s in STEPS), counts
    # the side effect: never twice; after a mid-call crash, not repeated and left to a human
    keys = receiver.keys()
    assert keys.count(f"{incident_id}:triage:notify:escalated") <= 1
    if point == "notify:after_intent":
        assert keys == [] and intent.status == "UNKNOWN"
    elif point == "notify:after_call":
        assert len(keys) == 1 and intent.status == "UNKNOWN"
    else:
        assert len(keys) == 1 and intent.status == "SUCCEEDED"
