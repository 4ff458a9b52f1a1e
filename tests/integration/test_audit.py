"""The audit chain on SQLite and PostgreSQL: append-only in the database, tamper found by verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sentinel.audit import chain, checkpoint
from sentinel.audit.models import AuditRecord
from sentinel.bootstrap import upgrade_database
from sentinel.core.config import Settings
from sentinel.core.db import make_engine, transaction
from tests.conftest import ROOT, sentinel_env


@pytest.fixture
def audit_env(db_url: str, tmp_path: Path) -> Any:
    settings = Settings(
        database_url=db_url,
        audit={
            "checkpoint_dir": tmp_path / "checkpoints",
            "signing_key_path": tmp_path / "audit-signing.key",
        },
    )
    upgrade_database(settings)
    engine = make_engine(db_url)
    yield settings, engine, tmp_path
    engine.dispose()


def fill(engine: Engine, n: int, incident_id: str | None = None) -> None:
    for i in range(n):
        with transaction(engine) as s:
            chain.append(
                s,
                actor="SENTINEL_AGENT",
                action_type="WORKFLOW_STEP",
                incident_id=incident_id,
                details={"i": i, "note": "ünïcode ✓", "f": 1.5, "nested": {"b": 2, "a": [1, None]}},
            )


def verify_cli(settings: Settings, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = sentinel_env(settings.database_url, tmp)
    return subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "audit", "verify", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_chain_links_and_canonical_bytes(audit_env: Any) -> None:
    settings, engine, tmp = audit_env
    fill(engine, 5)
    with Session(engine) as s:
        rows = list(s.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    prev = chain.GENESIS
    for r in rows:
        assert r.prev_hash == prev
        assert r.cryptographic_hash == chain.chain_hash(prev, r.seq, bytes(r.body))
        assert chain.canonical(json.loads(r.body)) == bytes(r.body)
        prev = r.cryptographic_hash
    out = verify_cli(settings, tmp)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["records"] == 5


def test_secrets_are_redacted_before_hashing(audit_env: Any) -> None:
    _, engine, _ = audit_env
    with transaction(engine) as s:
        chain.append(
            s,
            actor="EXTERNAL_SOURCE",
            action_type="ALERT_INGESTED",
            details={
                "password": "hunter2",
                "msg": "Authorization: Bearer abcdefghijklmnop",
                "ok": "x",
            },
        )
    with Session(engine) as s:
        body = bytes(s.scalars(select(AuditRecord.body)).one())
    assert b"hunter2" not in body and b"abcdefghijklmnop" not in body and b'"ok":"x"' in body


def test_update_delete_are_refused_by_the_database(audit_env: Any) -> None:
    _, engine, _ = audit_env
    fill(engine, 3)
    for stmt in (
        "UPDATE audit_log SET actor = 'HUMAN_USER' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(stmt))
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))
        # Triggers are ENABLE ALWAYS: replica mode does not skip them.
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text("SET LOCAL session_replication_role = replica"))
            c.execute(text("DELETE FROM audit_log WHERE seq = 1"))
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord)) == 3


def _bypass(engine: Engine, stmts: list[str]) -> None:
    """Alter rows with the protection switched off, as a superuser could."""
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            for st in stmts:
                c.execute(text(st))
            c.execute(text("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_refuse_change"))
        else:
            c.execute(text("DROP TRIGGER audit_log_refuse_update"))
            c.execute(text("DROP TRIGGER audit_log_refuse_delete"))
            for st in stmts:
                c.execute(text(st))


def test_altered_row_is_reported_with_its_seq(audit_env: Any) -> None:
    settings, engine, tmp = audit_env
    fill(engine, 10)
    with Session(engine) as s:
        body = bytes(s.scalars(select(AuditRecord.body).where(AuditRecord.seq == 7)).one())
    forged = body.replace(b'"i":6', b'"i":666')
    assert forged != body
    hexed = forged.hex()
    lit = f"'\\x{hexed}'::bytea" if engine.dialect.name == "postgresql" else f"X'{hexed}'"
    _bypass(engine, [f"UPDATE audit_log SET body = {lit} WHERE seq = 7"])
    out = verify_cli(settings, tmp)
    assert out.returncode == 1
    rep = json.loads(out.stdout)
    assert rep["ok"] is False and rep["first_bad_seq"] == 7 and "altered" in rep["reason"]


def test_deleted_row_is_reported(audit_env: Any) -> None:
    settings, engine, tmp = audit_env
    fill(engine, 6)
    _bypass(engine, ["DELETE FROM audit_log WHERE seq = 4"])
    rep = checkpoint.verify(engine, None, None)
    assert not rep.ok and rep.first_bad_seq == 5 and "gap" in (rep.reason or "")


def test_consistent_rewrite_is_caught_by_the_signed_checkpoint(audit_env: Any) -> None:
    settings, engine, tmp = audit_env
    a = settings.audit
    fill(engine, 8)
    cp = checkpoint.write_checkpoint(engine, a.signing_key_path, a.checkpoint_dir)
    assert cp is not None and cp.size == 8
    fill(engine, 4)
    assert checkpoint.verify(engine, a.signing_key_path, a.checkpoint_dir).ok
    # Rewrite record 3 and recompute every later link: the chain alone verifies again.
    with Session(engine) as s:
        rows = list(s.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    stmts = []
    prev = rows[1].cryptographic_hash
    for r in rows[2:]:
        body = bytes(r.body)
        if r.seq == 3:
            body = body.replace(b'"i":2', b'"i":222')
        h = chain.chain_hash(prev, r.seq, body)
        lit = (
            f"'\\x{body.hex()}'::bytea"
            if engine.dialect.name == "postgresql"
            else f"X'{body.hex()}'"
        )
        stmts.append(
            f"UPDATE audit_log SET body = {lit}, prev_hash = '{prev}', cryptographic_hash = '{h}' "
            f"WHERE seq = {r.seq}"
        )
        prev = h
    _bypass(engine, stmts)
    assert chain.walk_chain(engine).ok  # the rewrite is internally consistent
    out = verify_cli(settings, tmp)
    assert out.returncode == 1, out.stdout
    rep = json.loads(out.stdout)
    assert rep["first_bad_seq"] == 8 and "signed checkpoint" in rep["reason"]


def test_forged_checkpoint_signature_is_refused(audit_env: Any) -> None:
    settings, engine, _ = audit_env
    a = settings.audit
    fill(engine, 3)
    cp = checkpoint.write_checkpoint(engine, a.signing_key_path, a.checkpoint_dir)
    assert cp is not None
    txt = cp.path.read_text().replace("\n3\n", "\n2\n")
    cp.path.write_text(txt)
    rep = checkpoint.verify(engine, a.signing_key_path, a.checkpoint_dir)
    assert not rep.ok and "signature" in (rep.reason or "")


def test_truncation_below_a_checkpoint_is_caught(audit_env: Any) -> None:
    settings, engine, _ = audit_env
    a = settings.audit
    fill(engine, 5)
    checkpoint.write_checkpoint(engine, a.signing_key_path, a.checkpoint_dir)
    _bypass(engine, ["DELETE FROM audit_log WHERE seq = 5"])
    rep = checkpoint.verify(engine, a.signing_key_path, a.checkpoint_dir)
    assert not rep.ok and "records removed" in (rep.reason or "")


def test_concurrent_appenders_keep_one_clean_chain(audit_env: Any) -> None:
    """Threads here, processes in test_concurrent_processes: appends serialize."""
    _, engine, _ = audit_env
    errors: list[BaseException] = []

    def work() -> None:
        try:
            fill(engine, 40)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rep = chain.walk_chain(engine)
    assert rep.ok and rep.records == 240


@pytest.mark.postgres
def test_concurrent_processes_on_postgres(pg_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=pg_url)
    upgrade_database(settings)
    script = tmp_path / "appender.py"
    script.write_text(
        "import sys\n"
        "from sentinel.core.db import make_engine, transaction\n"
        "from sentinel.audit import chain\n"
        "e = make_engine(sys.argv[1])\n"
        "for i in range(150):\n"
        "    with transaction(e) as s:\n"
        "        chain.append(s, actor='SENTINEL_AGENT', action_type='WORKER', details={'n': i})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, str(script), pg_url], env=env) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    engine = make_engine(pg_url)
    rep = chain.walk_chain(engine)
    engine.dispose()
    assert rep.ok and rep.records == 600


def test_migration_0006_keeps_the_chain_and_the_protection(db_url: str, tmp_path: Path) -> None:
    """A database at 0005 with records in it: after 0006 every record is there byte for
    byte, the chain verifies, UPDATE and DELETE are still refused, the hash has no unique
    index any more, the (incident_id, seq) index is still there and appends go on."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from sentinel.bootstrap import MIGRATIONS

    settings = Settings(
        database_url=db_url,
        audit={"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"},
    )
    engine = make_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.commit()
    fill(engine, 4, incident_id="inc-1")
    with transaction(engine) as s:
        chain.append_many(s, [chain.Entry("SENTINEL_AGENT", "NOTE", {"k": i}) for i in range(3)])

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as c:
            got = c.execute(text("SELECT * FROM audit_log ORDER BY seq"))
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in got]

    before = rows()
    assert len(before) == 7

    def hash_is_indexed() -> bool:
        insp = inspect(engine)
        uniques = insp.get_unique_constraints("audit_log")
        indexes = insp.get_indexes("audit_log")
        return any("cryptographic_hash" in (u["column_names"] or []) for u in uniques + indexes)

    assert hash_is_indexed()
    upgrade_database(settings, engine)
    assert rows() == before
    assert not hash_is_indexed()
    assert any(
        i["name"] == "ix_audit_log_incident_seq" for i in inspect(engine).get_indexes("audit_log")
    )
    assert chain.walk_chain(engine).ok
    for stmt in ("UPDATE audit_log SET actor = 'X' WHERE seq = 2", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(stmt))
    fill(engine, 2)
    report = chain.walk_chain(engine)
    assert report.ok and report.records == 9
    engine.dispose()


def test_an_auditor_verifies_with_the_public_key_alone(audit_env: Any) -> None:
    """``<key>.pub`` is enough to check the signed checkpoints: the private key can stay on
    the signing host. A rewritten chain is still caught that way."""
    settings, engine, tmp = audit_env
    a = settings.audit
    fill(engine, 6)
    assert checkpoint.write_checkpoint(engine, a.signing_key_path, a.checkpoint_dir) is not None
    pub = tmp / "auditor" / "sentinel-audit.pub"
    pub.parent.mkdir()
    pub.write_text(a.signing_key_path.with_suffix(".pub").read_text())
    a.signing_key_path.rename(tmp / "elsewhere.key")  # not on the auditor's machine
    assert not a.signing_key_path.exists()
    for key in (pub, a.signing_key_path):  # the .pub itself, or the .pub beside a missing key
        rep = checkpoint.verify(engine, key, a.checkpoint_dir)
        assert rep.ok and rep.checkpoints == 1, rep
    other = Path(tmp / "other.key")
    checkpoint.load_or_create_key(other)  # a different key's .pub must not verify
    rep = checkpoint.verify(engine, other.with_suffix(".pub"), a.checkpoint_dir)
    assert not rep.ok and "signature" in (rep.reason or "")
    _bypass(engine, ["DELETE FROM audit_log WHERE seq = 6"])
    rep = checkpoint.verify(engine, pub, a.checkpoint_dir)
    assert not rep.ok and "records removed" in (rep.reason or "")


def test_serve_writes_signed_checkpoints(tmp_path: Path) -> None:
    """The worker inside ``sentinel serve`` (the embedded default) signs the chain head as
    ``sentinel worker`` does: without it a consistent rewrite would go unnoticed."""
    from fastapi.testclient import TestClient

    from sentinel.api.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        audit={
            "checkpoint_dir": tmp_path / "checkpoints",
            "signing_key_path": tmp_path / "audit-signing.key",
            "checkpoint_every": 1,
        },
        worker={"executor_id": "serve-cp-test"},
    )
    upgrade_database(settings)
    engine = make_engine(settings.database_url)
    fill(engine, 3)
    with TestClient(create_app(settings, with_worker=True)) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 60
        while not list((tmp_path / "checkpoints").glob("checkpoint-*.note")):
            assert time.monotonic() < deadline, "no checkpoint written under serve"
            time.sleep(0.2)
        fill(engine, 2)
    # Stopping writes a last checkpoint of what is there.
    notes = sorted((tmp_path / "checkpoints").glob("checkpoint-*.note"))
    head = chain.walk_chain(engine).records
    assert notes and notes[-1].name == f"checkpoint-{head:012d}.note"
    rep = checkpoint.verify(engine, settings.audit.signing_key_path, settings.audit.checkpoint_dir)
    assert rep.ok and rep.checkpoints == len(notes) >= 2, rep
    engine.dispose()
