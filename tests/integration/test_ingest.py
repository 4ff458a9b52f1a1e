"""Alertmanager ingestion on SQLite and PostgreSQL: durable 202, dedupe, grouping, resolve, 4xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sentinel.api.app import create_app
from sentinel.audit.models import AuditRecord
from sentinel.auth import service as auth_service
from sentinel.bootstrap import upgrade_database
from sentinel.core.config import Settings
from sentinel.core.db import make_engine, transaction
from sentinel.incident.models import Alert, Incident
from tests.conftest import am_alert, am_payload

URL = "/api/v1/alerts/alertmanager"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(
        database_url=db_url,
        ingest={"max_body_bytes": 64 * 1024, "group_window_seconds": 600},
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    engine = make_engine(db_url)
    with transaction(engine) as s:
        _, ingest = auth_service.create_user(session=s, name="am", role="ingest")
        _, viewer = auth_service.create_user(session=s, name="v", role="viewer")
    app = create_app(settings)
    with TestClient(app) as client:
        yield {"client": client, "engine": engine, "ingest": ingest, "viewer": viewer}
    engine.dispose()


def counts(engine: Any) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(Incident)) or 0,
            s.scalar(select(func.count()).select_from(Alert)) or 0,
            s.scalar(select(func.count()).select_from(AuditRecord)) or 0,
        )


def post(env: dict[str, Any], body: Any, token: str | None = "ingest", **kw: Any) -> Any:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {env.get(token, token)}"
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return env["client"].post(URL, content=body, headers=headers)


def test_valid_delivery_is_committed_before_202(env: dict[str, Any]) -> None:
    r = post(env, am_payload(am_alert(fingerprint="fp1", extra_field_ok="x")))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 1 and len(body["incident_ids"]) == 1
    with Session(env["engine"]) as s:
        inc = s.get(Incident, body["incident_ids"][0])
        assert inc is not None and inc.status == "OPEN" and inc.service == "checkout"
        alert = s.scalars(select(Alert)).one()
        assert alert.fingerprint == "fp1" and alert.starts_at is not None and alert.ends_at is None
        kinds = [r.action_type for r in s.scalars(select(AuditRecord).order_by(AuditRecord.seq))]
    assert kinds[-2:] == ["ALERT_INGESTED", "INCIDENT_OPENED"]


def test_redelivery_joins_the_open_incident(env: dict[str, Any]) -> None:
    first = post(env, am_payload(am_alert(fingerprint="same"))).json()["incident_ids"]
    for _ in range(3):
        again = post(env, am_payload(am_alert(fingerprint="same"))).json()["incident_ids"]
        assert again == first
    with Session(env["engine"]) as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.received_count == 4
    assert counts(env["engine"])[:2] == (1, 1)


def test_alerts_of_one_service_group_and_others_do_not(env: dict[str, Any]) -> None:
    a = post(env, am_payload(am_alert("HighLatency", "checkout"))).json()["incident_ids"]
    b = post(env, am_payload(am_alert("HighErrorRate", "checkout"))).json()["incident_ids"]
    c = post(env, am_payload(am_alert("HighErrorRate", "payment"))).json()["incident_ids"]
    assert a == b and a != c
    # service label absent: app, then job
    d = post(env, am_payload({**am_alert(), "labels": {"alertname": "X", "app": "cart"}}))
    e = post(env, am_payload({**am_alert(), "labels": {"alertname": "Y", "job": "cart"}}))
    assert d.json()["incident_ids"] == e.json()["incident_ids"]
    assert counts(env["engine"])[:2] == (3, 5)


def test_grouping_window_is_respected(env: dict[str, Any]) -> None:
    from datetime import timedelta

    first = post(env, am_payload(am_alert("A", "search"))).json()["incident_ids"]
    with transaction(env["engine"]) as s:
        inc = s.get(Incident, first[0])
        assert inc is not None
        inc.last_alert_at = inc.last_alert_at - timedelta(seconds=601)
    later = post(env, am_payload(am_alert("B", "search"))).json()["incident_ids"]
    assert later != first


def test_resolved_notification_marks_the_alert_resolved(env: dict[str, Any]) -> None:
    ids = post(env, am_payload(am_alert(fingerprint="r1"))).json()["incident_ids"]
    r = post(env, am_payload(am_alert(fingerprint="r1", status="resolved"), status="resolved"))
    assert r.status_code == 202 and r.json()["incident_ids"] == ids
    with Session(env["engine"]) as s:
        alert = s.scalars(select(Alert)).one()
        assert alert.status == "resolved" and alert.resolved_at is not None
        assert alert.ends_at is not None and alert.ends_at.year == 2026
    # a resolved alert we never saw fire opens nothing, but is accepted and audited
    before = counts(env["engine"])
    r = post(env, am_payload(am_alert(fingerprint="never", status="resolved"), status="resolved"))
    assert r.status_code == 202 and r.json()["incident_ids"] == []
    after = counts(env["engine"])
    assert after[:2] == before[:2] and after[2] == before[2] + 1


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"version": "4", ', 400, "bad_request"),
    ("not an object", b"[1,2]", 400, "bad_request"),
    ("empty", b"", 400, "bad_request"),
    ("wrong version", am_payload(am_alert()) | {"version": "3"}, 400, "bad_request"),
    ("alerts not a list", am_payload(am_alert()) | {"alerts": {"a": 1}}, 400, "bad_request"),
    ("no alerts", am_payload(), 400, "bad_request"),
    (
        "missing groupKey",
        {k: v for k, v in am_payload(am_alert()).items() if k != "groupKey"},
        400,
        "bad_request",
    ),
    (
        "label not a string",
        am_payload({**am_alert(), "labels": {"alertname": "X", "n": 5}}),
        400,
        "bad_request",
    ),
    ("no alertname", am_payload({**am_alert(), "labels": {"service": "x"}}), 400, "bad_request"),
    ("bad status", am_payload({**am_alert(), "status": "burning"}), 400, "bad_request"),
    ("bad startsAt", am_payload({**am_alert(), "startsAt": "yesterday"}), 400, "bad_request"),
    (
        "too large",
        am_payload(
            am_alert(),
        )
        | {"pad": "x" * 70_000},
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize("name,body,status,code", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_is_a_4xx_and_stores_nothing(
    env: dict[str, Any], name: str, body: Any, status: int, code: str
) -> None:
    before = counts(env["engine"])
    r = post(env, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert counts(env["engine"]) == before


@pytest.mark.parametrize(
    "token,status",
    [(None, 401), ("wrong-token", 401), ("viewer", 403)],
    ids=["none", "wrong", "scope"],
)
def test_auth_failures_store_nothing(env: dict[str, Any], token: str | None, status: int) -> None:
    before = counts(env["engine"])
    r = post(env, am_payload(am_alert()), token=token)
    assert r.status_code == status
    assert r.json()["error"]["code"] in {"unauthorized", "forbidden"}
    assert counts(env["engine"]) == before


def test_chunked_body_over_limit_is_refused(env: dict[str, Any]) -> None:
    def gen() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    before = counts(env["engine"])
    r = env["client"].post(URL, content=gen(), headers={"Authorization": f"Bearer {env['ingest']}"})
    assert r.status_code == 413
    assert counts(env["engine"]) == before


def test_read_api(env: dict[str, Any]) -> None:
    for i in range(5):
        post(env, am_payload(am_alert("A", f"svc{i}")))
    h = {"Authorization": f"Bearer {env['viewer']}"}
    c = env["client"]
    page = c.get("/api/v1/incidents?limit=2", headers=h).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = c.get(f"/api/v1/incidents?limit=10&cursor={page['next_cursor']}", headers=h).json()
    assert len(rest["items"]) == 3 and rest["next_cursor"] is None
    ids = {i["incident_id"] for i in page["items"] + rest["items"]}
    assert len(ids) == 5
    one = c.get("/api/v1/incidents?service=svc3", headers=h).json()["items"]
    assert [i["service"] for i in one] == ["svc3"]
    detail = c.get(f"/api/v1/incidents/{one[0]['incident_id']}", headers=h).json()
    assert detail["alerts"][0]["alertname"] == "A" and detail["plans"] == []
    tl = c.get(f"/api/v1/incidents/{one[0]['incident_id']}/timeline", headers=h).json()
    assert [t["action_type"] for t in tl] == ["INCIDENT_OPENED"]
    assert c.get("/api/v1/incidents/nope", headers=h).status_code == 404
    assert c.get("/api/v1/incidents?status=BOGUS", headers=h).status_code == 400
    assert c.get("/api/v1/incidents?cursor=garbage", headers=h).status_code == 400
    assert c.get("/api/v1/incidents").status_code == 401
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status_code == 200
    m = c.get("/metrics").text
    assert 'sentinel_incidents{status="OPEN"} 5.0' in m
    audit = c.get("/api/v1/audit?limit=3", headers=h).json()
    assert [r["seq"] for r in audit["items"]] == [1, 2, 3] and audit["next_after_seq"] == 3
    v = c.get("/api/v1/audit/verify", headers=h).json()
    assert v["ok"] is True and v["records"] > 5 and v["first_bad_seq"] is None


def test_redelivery_to_an_escalated_incident_joins_it(env: dict[str, Any]) -> None:
    """Alertmanager's repeat_interval re-sends a firing alert after Sentinel escalated it."""
    first = post(env, am_payload(am_alert(fingerprint="rep"))).json()["incident_ids"]
    with transaction(env["engine"]) as s:
        inc = s.get(Incident, first[0])
        assert inc is not None
        inc.status = "ESCALATED"
    again = post(env, am_payload(am_alert(fingerprint="rep"))).json()["incident_ids"]
    sibling = post(env, am_payload(am_alert("Other", fingerprint="sib"))).json()["incident_ids"]
    assert again == first and sibling == first
    with transaction(env["engine"]) as s:
        inc = s.get(Incident, first[0])
        assert inc is not None
        inc.status = "CLOSED"
    after_close = post(env, am_payload(am_alert(fingerprint="rep"))).json()["incident_ids"]
    assert after_close != first


def submit_all(writer: Any, raws: list[dict[str, Any]]) -> list[Any]:
    """Submit every payload to an IngestWriter at once, wait for all, then close it."""
    import asyncio

    from sentinel.incident.ingest import Delivery
    from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager

    def delivery(raw: dict[str, Any]) -> Delivery:
        alerts = normalize_alertmanager(AlertmanagerWebhook.model_validate(raw))
        return Delivery(alerts=alerts, raw=raw, source="alertmanager", principal="am")

    async def run() -> list[Any]:
        return await asyncio.gather(*(writer.submit(delivery(r)) for r in raws))

    try:
        return asyncio.run(run())
    finally:
        writer.close()


def test_concurrent_batches_on_several_writer_threads(db_url: str, tmp_path: Path) -> None:
    """Four writer threads (PostgreSQL; SQLite keeps one): one incident per service, every
    re-delivery counted once, one ALERT_INGESTED record per delivery, the chain intact."""

    from sentinel.api.ingest_writer import IngestWriter
    from sentinel.audit.chain import walk_chain

    settings = Settings(
        database_url=db_url,
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    engine = make_engine(db_url)
    writer = IngestWriter(engine, 600, lambda s, ids: None, max_batch=8, threads=4)
    expected_threads = 1 if engine.dialect.name == "sqlite" else 4
    assert len(writer._threads) == expected_threads
    services, per_service, repeats = 12, 10, 3
    raws = [
        am_payload(am_alert("HighErrorRate", f"svc-{s}", fingerprint=f"fp-{s}-{i}"))
        for s in range(services)
        for i in range(per_service)
    ] * repeats

    outs = submit_all(writer, raws)
    assert writer.deliveries == len(raws) and writer.batches > 1
    assert len({o.incident_ids[0] for o in outs}) == services
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == services
        assert s.scalar(select(func.count()).select_from(Alert)) == services * per_service
        assert s.scalar(select(func.sum(Alert.received_count))) == len(raws)
        ingested = s.scalar(select(func.count()).where(AuditRecord.action_type == "ALERT_INGESTED"))
        assert ingested == len(raws)
    assert walk_chain(engine).ok
    engine.dispose()


def test_a_failed_batch_rolls_back_and_its_deliveries_are_retried_alone(
    db_url: str, tmp_path: Path
) -> None:
    """A batch that fails after it wrote (PostgreSQL: its connection is killed; SQLite: an
    error) leaves nothing behind; each of its deliveries is retried alone (on a working
    connection) and stored exactly once."""

    from sqlalchemy import text

    from sentinel.api.ingest_writer import IngestWriter
    from sentinel.audit.chain import walk_chain

    settings = Settings(
        database_url=db_url,
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    engine = make_engine(db_url)
    calls: list[int] = []

    def start_triage(conn: Any, incident_ids: list[str]) -> None:
        calls.append(len(incident_ids))
        if len(calls) == 1:  # the first batch fails after its writes
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            raise RuntimeError("transient failure")

    writer = IngestWriter(engine, 600, start_triage, max_batch=64)
    raws = [
        am_payload(am_alert("HighErrorRate", f"svc-{i % 3}", fingerprint=f"fp-{i}"))
        for i in range(9)
    ]

    outs = submit_all(writer, raws)
    assert calls[0] >= 1 and len(calls) > 1  # a failed batch, then retries
    assert len({o.incident_ids[0] for o in outs}) == 3
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 3
        assert s.scalar(select(func.count()).select_from(Alert)) == len(raws)
        assert s.scalar(select(func.sum(Alert.received_count))) == len(raws)
        ingested = s.scalar(select(func.count()).where(AuditRecord.action_type == "ALERT_INGESTED"))
        assert ingested == len(raws)
    assert walk_chain(engine).ok
    engine.dispose()


def _sqlite_writer(tmp_path: Path, **kw: Any) -> tuple[Any, Any, str]:
    from sentinel.api.ingest_writer import IngestWriter

    path = str(tmp_path / "inline.db")
    settings = Settings(
        database_url=f"sqlite:///{path}",
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    return IngestWriter(engine, 600, lambda s, ids: None, **kw), engine, path


def _stored(engine: Any) -> tuple[int, int, int]:
    with Session(engine) as s:
        alerts = s.scalar(select(func.count()).select_from(Alert)) or 0
        received = s.scalar(select(func.sum(Alert.received_count))) or 0
        ingested = s.scalar(select(func.count()).where(AuditRecord.action_type == "ALERT_INGESTED"))
    return alerts, received, ingested or 0


@pytest.mark.parametrize("inline", [True, False])
def test_sqlite_batches_form_on_the_loop_and_are_counted(tmp_path: Path, inline: bool) -> None:
    """SQLite: concurrent deliveries are committed in batches, on the event loop's thread
    (``ingest.sqlite_inline``) or by the writer thread; the batch histogram counts them."""
    from sentinel.api.metrics import REGISTRY
    from sentinel.audit.chain import walk_chain

    def hist(kind: str) -> float:
        return REGISTRY.get_sample_value(f"sentinel_ingest_batch_deliveries_{kind}") or 0.0

    count0, sum0 = hist("count"), hist("sum")
    writer, engine, _ = _sqlite_writer(tmp_path, inline=inline)
    raws = [
        am_payload(am_alert("HighErrorRate", f"svc-{i % 4}", fingerprint=f"fp-{i % 30}"))
        for i in range(60)
    ]
    outs = submit_all(writer, raws)
    assert len(outs) == 60 and len({o.incident_ids[0] for o in outs}) == 4
    assert writer.deliveries == 60 and 1 <= writer.batches < 60
    assert (writer.inline_batches == writer.batches) if inline else writer.inline_batches == 0
    assert hist("count") - count0 == writer.batches and hist("sum") - sum0 == 60
    assert _stored(engine) == (30, 60, 60)
    assert walk_chain(engine).ok
    engine.dispose()


def test_sqlite_loop_writer_never_waits_for_a_lock(tmp_path: Path) -> None:
    """While another connection holds SQLite's write lock, the deliveries wait on the writer
    thread, not on the event loop (it keeps running); they are stored once the lock goes,
    each exactly once, and the next batch is committed on the loop again."""
    import asyncio
    import sqlite3

    from sentinel.incident.ingest import Delivery
    from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager

    writer, engine, path = _sqlite_writer(tmp_path)
    assert writer.inline

    def delivery(i: int) -> Delivery:
        raw = am_payload(am_alert("HighErrorRate", "svc", fingerprint=f"fp-{i}"))
        alerts = normalize_alertmanager(AlertmanagerWebhook.model_validate(raw))
        return Delivery(alerts=alerts, raw=raw, source="alertmanager", principal="am")

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def run() -> float:
        loop = asyncio.get_running_loop()
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(loop.time())
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        held = asyncio.gather(*(writer.submit(delivery(i)) for i in range(5)))
        await asyncio.sleep(0.4)
        assert not held.done()  # nothing acknowledged while the lock is held
        blocker.execute("COMMIT")
        await asyncio.wait_for(held, 30)
        assert writer.inline_batches == 0 and writer.deliveries == 5
        await writer.submit(delivery(5))  # the lock is free: the loop commits again
        tick.cancel()
        return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))

    try:
        longest_gap = asyncio.run(run())
    finally:
        blocker.close()
        writer.close()
    assert longest_gap < 0.2, f"the event loop stalled for {longest_gap:.3f} s"
    assert writer.inline_batches == 1
    assert _stored(engine) == (6, 6, 6)
    engine.dispose()


def test_startup_objects_are_frozen_out_of_the_collector(tmp_path: Path) -> None:
    """While the API runs, what start-up built is in the collector's permanent generation
    (a full collection skips it); the lifespan's end gives it back."""
    import gc

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    gc.unfreeze()
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        frozen = gc.get_freeze_count()
        assert frozen > 10 * len(gc.get_objects(generation=2))
    assert gc.get_freeze_count() == 0


def test_a_responder_closes_an_escalated_incident_by_hand(env: dict[str, Any]) -> None:
    """EscalateToHuman -> IncidentClosed (manual fix): POST /incidents/{id}/close by a
    responder, recorded in the audit log with who and why; the alert firing again afterwards
    opens a new incident (triaged again) instead of joining the closed one."""
    with transaction(env["engine"]) as s:
        _, responder = auth_service.create_user(session=s, name="resp", role="responder")
    (iid,) = post(env, am_payload(am_alert(fingerprint="esc"))).json()["incident_ids"]
    url = f"/api/v1/incidents/{iid}/close"

    def close(token: str, body: Any) -> Any:
        return env["client"].post(url, json=body, headers={"Authorization": f"Bearer {token}"})

    assert close(responder, {"comment": "fixed"}).status_code == 409  # still OPEN: a workflow's
    with transaction(env["engine"]) as s:
        inc = s.get(Incident, iid)
        assert inc is not None
        inc.status = "ESCALATED"
    audit_before = counts(env["engine"])[2]
    assert close(env["viewer"], {"comment": "fixed"}).status_code == 403
    assert close(responder, {}).status_code == 422  # the comment says what was done
    assert close(responder, {"comment": "x", "force": True}).status_code == 422
    missing = env["client"].post(
        "/api/v1/incidents/nope/close",
        json={"comment": "x"},
        headers={"Authorization": f"Bearer {responder}"},
    )
    assert missing.status_code == 404
    assert counts(env["engine"])[2] == audit_before  # refusals store nothing
    r = close(responder, {"comment": "rolled back payments by hand"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CLOSED" and r.json()["closed_at"]
    assert close(responder, {"comment": "again"}).status_code == 409
    with Session(env["engine"]) as s:
        rec = s.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()
    body = json.loads(rec.body)
    assert rec.incident_id == iid and body["actor"] == "HUMAN_USER"
    assert body["details"] == {
        "step": "IncidentClosed",
        "reason": "closed by resp after escalation",
        "comment": "rolled back payments by hand",
    }
    again = post(env, am_payload(am_alert(fingerprint="esc"))).json()["incident_ids"]
    assert again and again != [iid]


def test_sentinel_close_cli(db_url: str, tmp_path: Path) -> None:
    """``sentinel close ID -m ... --token T`` against a live API: closes an escalated
    incident (exit 0), says why it cannot (exit 1, the API's message) otherwise."""
    import socket
    import threading

    import uvicorn

    from tests.conftest import run_cli, sentinel_env

    settings = Settings(
        database_url=db_url,
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    upgrade_database(settings)
    engine = make_engine(db_url)
    with transaction(engine) as s:
        _, responder = auth_service.create_user(session=s, name="resp", role="responder")
        inc = Incident(
            incident_id="inc-cli-close",
            status="ESCALATED",
            service="checkout",
            title="HighErrorRate on checkout",
            source_alert={},
        )
        s.add(inc)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        env = sentinel_env(db_url, tmp_path)
        args = ["--url", f"http://127.0.0.1:{port}", "--token", responder]
        out = run_cli(env, "close", "inc-cli-close", "-m", "restarted the db by hand", *args)
        assert out.stdout.startswith("CLOSED: incident inc-cli-close"), out.stdout
        out = run_cli(env, "close", "inc-cli-close", "-m", "again", *args, check=False)
        assert out.returncode == 1 and "only an ESCALATED incident" in out.stderr, out.stderr
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.dispose()


def test_a_leaked_token_is_rotated_and_a_user_disabled(db_url: str, tmp_path: Path) -> None:
    """``sentinel users rotate-token NAME`` revokes every token of the user and prints a new
    one; ``users disable NAME`` revokes them all; both audited; ``users list`` shows no
    token. A fresh API process (the token cache lives 30 s) refuses the revoked ones."""
    from tests.conftest import create_token, run_cli, sentinel_env

    env = sentinel_env(db_url, tmp_path)
    old = create_token(env, "alertmanager", "ingest")
    out = run_cli(env, "users", "rotate-token", "alertmanager", "--json")
    doc = json.loads(out.stdout)
    new = doc["token"]
    assert doc["revoked"] == 1 and new.startswith("snt_") and new != old
    settings = Settings(
        database_url=db_url,
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    body = json.dumps(am_payload(am_alert(fingerprint="rot")))
    with TestClient(create_app(settings)) as client:
        url = "/api/v1/alerts/alertmanager"
        assert (
            client.post(url, content=body, headers={"Authorization": f"Bearer {old}"}).status_code
            == 401
        )
        assert (
            client.post(url, content=body, headers={"Authorization": f"Bearer {new}"}).status_code
            == 202
        )
    out = run_cli(env, "users", "disable", "alertmanager")
    assert "revoked 1 token(s)" in out.stdout
    with TestClient(create_app(settings)) as client:
        r = client.post(url, content=body, headers={"Authorization": f"Bearer {new}"})
        assert r.status_code == 401
    listed = json.loads(run_cli(env, "users", "list", "--json").stdout)
    assert listed == [{"name": "alertmanager", "role": "ingest", "disabled": True, "tokens": 0}]
    assert "snt_" not in run_cli(env, "users", "list").stdout
    bad = run_cli(env, "users", "disable", "nobody", check=False)
    assert bad.returncode == 2 and "no user 'nobody'" in bad.stderr
    again = run_cli(env, "users", "rotate-token", "alertmanager", check=False)
    assert again.returncode == 2 and "disabled" in again.stderr
    engine = make_engine(db_url)
    with Session(engine) as s:
        ops = [
            json.loads(r.body)["details"]["op"]
            for r in s.scalars(
                select(AuditRecord)
                .where(AuditRecord.action_type == "USER_ADMIN")
                .order_by(AuditRecord.seq)
            )
        ]
        exported = json.dumps([json.loads(r.body) for r in s.scalars(select(AuditRecord))])
    engine.dispose()
    assert ops == ["user_created", "token_rotated", "user_disabled"]
    assert old not in exported and new not in exported
