"""Ed25519-signed checkpoints of the chain head, kept outside the database.

A checkpoint is a note in the C2SP signed-note shape::

    sentinel-audit
    <tree size = last seq>
    <base64 of the chain hash at that seq>

    — sentinel-audit <base64(4-byte key id || 64-byte Ed25519 signature)>

The chain hash at seq N commits to every record up to N, so it plays the role of a tree
root. A superuser who rewrites the chain consistently cannot forge the signature.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sentinel.audit.chain import ChainReport, walk_chain
from sentinel.audit.models import AuditRecord

ORIGIN = "sentinel-audit"
KEY_NAME = "sentinel-audit"


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key, creating it (mode 0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path.with_suffix(".pub").write_text(base64.b64encode(pub).decode() + "\n")
    return key


def _key_id(pub: Ed25519PublicKey) -> bytes:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(KEY_NAME.encode() + b"\n\x01" + raw).digest()[:4]


def _note_text(size: int, head_hex: str) -> str:
    return f"{ORIGIN}\n{size}\n{base64.b64encode(bytes.fromhex(head_hex)).decode()}\n"


def sign_note(key: Ed25519PrivateKey, size: int, head_hex: str) -> str:
    """Return the signed note text for a tree size and head hash."""
    text = _note_text(size, head_hex)
    sig = key.sign(text.encode())
    blob = base64.b64encode(_key_id(key.public_key()) + sig).decode()
    return f"{text}\n\u2014 {KEY_NAME} {blob}\n"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    size: int
    head: str


def parse_note(path: Path, pub: Ed25519PublicKey) -> Checkpoint:
    """Parse and verify one note; raise ValueError when malformed or the signature fails."""
    raw = path.read_text()
    text, sep, sigpart = raw.partition("\n\n")
    if not sep:
        raise ValueError(f"{path.name}: not a signed note")
    text += "\n"
    lines = text.splitlines()
    if len(lines) != 3 or lines[0] != ORIGIN:
        raise ValueError(f"{path.name}: unexpected note body")
    ok = False
    for line in sigpart.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != KEY_NAME:
            continue
        blob = base64.b64decode(parts[2])
        if blob[:4] != _key_id(pub):
            continue
        try:
            pub.verify(blob[4:], text.encode())
            ok = True
        except InvalidSignature:
            ok = False
    if not ok:
        raise ValueError(f"{path.name}: signature does not verify")
    return Checkpoint(path, int(lines[1]), base64.b64decode(lines[2]).hex())


def write_checkpoint(engine: Engine, key_path: Path, directory: Path) -> Checkpoint | None:
    """Sign the current head and write it as ``checkpoint-<seq>.note``; None if the log is empty."""
    with Session(engine) as s:
        head = s.execute(
            select(AuditRecord.seq, AuditRecord.cryptographic_hash)
            .order_by(AuditRecord.seq.desc())
            .limit(1)
        ).first()
    if head is None:
        return None
    key = load_or_create_key(key_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{head.seq:012d}.note"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(sign_note(key, head.seq, head.cryptographic_hash))
        tmp.replace(path)
    return Checkpoint(path, head.seq, head.cryptographic_hash)


@dataclass
class VerifyReport:
    """What ``sentinel audit verify`` and ``GET /audit/verify`` report."""

    ok: bool
    records: int
    head: str
    first_bad_seq: int | None
    reason: str | None
    checkpoints: int

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "checkpoints": self.checkpoints,
        }


def verify(engine: Engine, key_path: Path | None, directory: Path | None) -> VerifyReport:
    """Verify the chain, then every signed checkpoint against the recomputed chain."""
    notes: list[Checkpoint] = []
    if key_path is not None and directory is not None and directory.exists():
        files = sorted(directory.glob("checkpoint-*.note"))
        if files:
            if not key_path.exists():
                return VerifyReport(
                    False, 0, "", None, "checkpoints exist but the key is missing", 0
                )
            pub = load_or_create_key(key_path).public_key()
            for f in files:
                try:
                    notes.append(parse_note(f, pub))
                except ValueError as exc:
                    return VerifyReport(False, 0, "", None, str(exc), len(files))
    report: ChainReport = walk_chain(engine, want_hashes_at={n.size for n in notes})
    if not report.ok:
        return VerifyReport(
            False, report.records, report.head, report.first_bad_seq, report.reason, len(notes)
        )
    for note in sorted(notes, key=lambda n: n.size):
        if note.size > report.records:
            return VerifyReport(
                False,
                report.records,
                report.head,
                report.records + 1,
                f"signed checkpoint {note.path.name} covers {note.size} records but only "
                f"{report.records} remain (records removed)",
                len(notes),
            )
        if report.hashes.get(note.size) != note.head:
            return VerifyReport(
                False,
                report.records,
                report.head,
                note.size,
                f"chain hash at seq {note.size} differs from signed checkpoint {note.path.name} "
                "(history rewritten at or before this record)",
                len(notes),
            )
    return VerifyReport(True, report.records, report.head, None, None, len(notes))
