"""Append to and verify the hash chain: hash_n = SHA-256(0x00 || hash_{n-1} || seq_n || body_n).

Bodies are RFC 8785 canonical JSON; the stored bytes are what is hashed. On PostgreSQL the
append runs inside ``sentinel_audit_append`` (SECURITY DEFINER, under an advisory lock) so
appends from many processes serialize; on SQLite the write transaction is BEGIN IMMEDIATE.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from sentinel.audit.canonical import canonical, canonical_json_native, clean_details
from sentinel.audit.models import AuditRecord
from sentinel.core.clock import utcnow
from sentinel.core.ids import new_id
from sentinel.core.rawsql import RawSql

GENESIS = "00" * 32


__all__ = ["GENESIS", "Appended", "Entry", "append", "append_many", "canonical", "chain_hash"]


def _body(
    audit_id: str,
    ts: str,
    actor: str,
    action_type: str,
    incident_id: str | None,
    details: Any,
    json_native: bool = False,
) -> bytes:
    """A record's canonical body; ``details`` made JSON-compatible and redacted on the way.

    ``json_native``: the details are plain ``json.loads`` output (see Entry), so when
    nothing in them can need redaction they are encoded as they are, in one pass.
    """
    doc = {
        "audit_id": audit_id,
        "timestamp": ts,
        "actor": actor,
        "action_type": action_type,
        "incident_id": incident_id,
        "details": details,
    }
    if json_native:
        fast = canonical_json_native(doc)
        if fast is not None:
            return fast
    clean, plain = clean_details(details)
    doc["details"] = clean
    return canonical(doc, plain=plain)


def chain_hash(prev_hash_hex: str, seq: int, body: bytes) -> str:
    """The chain link: SHA-256(0x00 || prev || seq as 8-byte big-endian || body), hex."""
    h = hashlib.sha256()
    h.update(b"\x00")
    h.update(bytes.fromhex(prev_hash_hex))
    h.update(seq.to_bytes(8, "big"))
    h.update(body)
    return h.hexdigest()


@dataclass(frozen=True)
class Appended:
    seq: int
    audit_id: str
    cryptographic_hash: str


def append(
    session: Session,
    *,
    actor: str,
    action_type: str,
    details: dict[str, Any],
    incident_id: str | None = None,
    at: datetime | None = None,
) -> Appended:
    """Append one record inside the caller's transaction (it commits with the caller's change)."""
    audit_id = new_id()
    ts = (at or utcnow()).isoformat().replace("+00:00", "Z")
    body = _body(audit_id, ts, str(actor), str(action_type), incident_id, details)
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        row = session.execute(
            text(
                "SELECT seq, hash FROM sentinel_audit_append("
                ":audit_id, CAST(:ts AS timestamptz), :actor, :action_type, :incident_id, :body)"
            ),
            {
                "audit_id": audit_id,
                "ts": ts,
                "actor": str(actor),
                "action_type": str(action_type),
                "incident_id": incident_id,
                "body": body,
            },
        ).one()
        return Appended(int(row.seq), audit_id, str(row.hash))
    # SQLite: the transaction began with BEGIN IMMEDIATE, so nobody else appends meanwhile.
    head = session.execute(
        select(AuditRecord.seq, AuditRecord.cryptographic_hash)
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    ).first()
    seq = (head.seq if head else 0) + 1
    prev = head.cryptographic_hash if head else GENESIS
    digest = chain_hash(prev, seq, body)
    session.add(
        AuditRecord(
            seq=seq,
            audit_id=audit_id,
            timestamp=datetime.fromisoformat(ts.replace("Z", "+00:00")),
            actor=str(actor),
            action_type=str(action_type),
            incident_id=incident_id,
            body=body,
            prev_hash=prev,
            cryptographic_hash=digest,
        )
    )
    session.flush()
    return Appended(seq, audit_id, digest)


@dataclass(frozen=True)
class Entry:
    """One record to append (see append_many).

    ``json_native``: ``details`` holds only strings, booleans, null, lists, integers within
    ±(2**53 − 1) and dicts whose keys pass ``canonical.keys_are_native``: a webhook body
    as ``routes_alerts.parse_json_document`` vouches for it. The body is then written in one
    encoder pass unless a secret-shaped string could be in it. Leave it False otherwise.
    """

    actor: str
    action_type: str
    details: dict[str, Any]
    incident_id: str | None = None
    json_native: bool = False


def append_many(
    session: Session, entries: list[Entry], at: datetime | None = None
) -> list[Appended]:
    """Append several records in order inside the caller's transaction (one head read on SQLite)."""
    if not entries:
        return []
    ts_dt = at or utcnow()
    ts = ts_dt.isoformat().replace("+00:00", "Z")
    ids = [new_id() for _ in entries]
    bodies = [
        _body(
            audit_id, ts, str(e.actor), str(e.action_type), e.incident_id, e.details, e.json_native
        )
        for audit_id, e in zip(ids, entries, strict=True)
    ]
    sql = RawSql(session)
    if sql.pg:
        res = sql.rows(
            "SELECT seq, hash FROM sentinel_audit_append_many(:ids, CAST(:ts AS timestamptz),"
            " :actors, :types, :incidents, :bodies)",
            {
                "ids": ids,
                "ts": ts,
                "actors": [str(e.actor) for e in entries],
                "types": [str(e.action_type) for e in entries],
                "incidents": [e.incident_id for e in entries],
                "bodies": bodies,
            },
        )
        return [Appended(int(seq), i, str(h)) for (seq, h), i in zip(res, ids, strict=True)]
    head = sql.rows("SELECT seq, cryptographic_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    seq, prev = (int(head[0][0]), str(head[0][1])) if head else (0, GENESIS)
    stamp = sql.ts(ts_dt)
    rows: list[dict[str, Any]] = []
    out: list[Appended] = []
    for audit_id, e, body in zip(ids, entries, bodies, strict=True):
        seq += 1
        digest = chain_hash(prev, seq, body)
        rows.append(
            {
                "seq": seq,
                "audit_id": audit_id,
                "timestamp": stamp,
                "actor": str(e.actor),
                "action_type": str(e.action_type),
                "incident_id": e.incident_id,
                "body": body,
                "prev_hash": prev,
                "cryptographic_hash": digest,
            }
        )
        out.append(Appended(seq, audit_id, digest))
        prev = digest
    sql.many(
        "INSERT INTO audit_log (seq, audit_id, timestamp, actor, action_type, incident_id, body,"
        " prev_hash, cryptographic_hash) VALUES (:seq, :audit_id, :timestamp, :actor,"
        " :action_type, :incident_id, :body, :prev_hash, :cryptographic_hash)",
        rows,
    )
    return out


def record_view(rec: AuditRecord) -> dict[str, Any]:
    """The API/export view of a record: its canonical body plus chain fields."""
    doc: dict[str, Any] = json.loads(rec.body)
    doc["seq"] = rec.seq
    doc["prev_hash"] = rec.prev_hash
    doc["cryptographic_hash"] = rec.cryptographic_hash
    return doc


def iter_records(engine: Engine, *, batch: int = 2000) -> Iterator[AuditRecord]:
    """Stream every record in sequence order."""
    last = 0
    while True:
        with Session(engine) as s:
            rows = list(
                s.scalars(
                    select(AuditRecord)
                    .where(AuditRecord.seq > last)
                    .order_by(AuditRecord.seq)
                    .limit(batch)
                )
            )
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


@dataclass
class ChainReport:
    """Outcome of a chain walk: ok, count, head, and the first bad record with why."""

    ok: bool
    records: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None
    hashes: dict[int, str] = field(default_factory=dict, repr=False)


def walk_chain(engine: Engine, *, want_hashes_at: set[int] | None = None) -> ChainReport:
    """Recompute every link; report the first record whose bytes, link or fields disagree."""
    want = want_hashes_at or set()
    prev = GENESIS
    expected_seq = 1
    count = 0
    hashes: dict[int, str] = {}
    for rec in iter_records(engine):
        bad = _check(rec, prev, expected_seq)
        if bad:
            return ChainReport(False, count, prev, rec.seq, bad, hashes)
        prev = rec.cryptographic_hash
        if rec.seq in want:
            hashes[rec.seq] = prev
        expected_seq += 1
        count += 1
    return ChainReport(True, count, prev, None, None, hashes)


def _check(rec: AuditRecord, prev: str, expected_seq: int) -> str | None:
    if rec.seq != expected_seq:
        return f"sequence gap: expected {expected_seq}, found {rec.seq} (records removed)"
    if rec.prev_hash != prev:
        return "prev_hash does not match the previous record's hash"
    if chain_hash(prev, rec.seq, bytes(rec.body)) != rec.cryptographic_hash:
        return "hash does not match the record's bytes (record altered)"
    try:
        doc = json.loads(rec.body)
    except ValueError:
        return "body is not JSON"
    if canonical(doc) != bytes(rec.body):
        return "body is not in RFC 8785 canonical form"
    for col in ("audit_id", "actor", "action_type", "incident_id"):
        if doc.get(col) != getattr(rec, col):
            return f"column {col} disagrees with the hashed body"
    return None
