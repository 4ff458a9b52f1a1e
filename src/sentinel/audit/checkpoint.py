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
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, func, select
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


def load_public_key(path: Path) -> Ed25519PublicKey | None:
    """The verification key: from the signing key when it is there, else from the public
    key file written beside it (``<key>.pub``, base64 of the raw key), or ``path`` itself
    when it names that file (an auditor's copy). None when neither exists."""
    if path.suffix != ".pub" and path.exists():
        return load_or_create_key(path).public_key()
    pub_path = path if path.suffix == ".pub" else path.with_suffix(".pub")
    if not pub_path.exists():
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_path.read_text().strip()))
    except ValueError as exc:
        raise ValueError(f"{pub_path} does not hold an Ed25519 public key") from exc


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
            pub = load_public_key(key_path)
            if pub is None:
                return VerifyReport(
                    False, 0, "", None, "checkpoints exist but the key is missing", 0
                )
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


log = logging.getLogger("sentinel.audit")


class CheckpointWriter:
    """Signs the chain head every ``checkpoint_every`` records, or every ``interval`` seconds
    when it moved; ``start`` runs it on a daemon thread (``sentinel worker`` and the worker
    inside ``sentinel serve``). Several writers on one database are harmless: a note is
    named by its sequence number and written whole."""

    def __init__(
        self,
        engine: Engine,
        key_path: Path,
        directory: Path,
        every: int,
        interval: float = 10.0,
        poll: float = 2.0,
    ) -> None:
        self.engine = engine
        self.key_path = key_path
        self.directory = directory
        self.every = every
        self.interval = interval
        self.poll = poll
        self.written = 0
        self._last_seq = 0
        self._last_time = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, force: bool = False) -> None:
        """Write a checkpoint if one is due (``force``: whenever the chain moved)."""
        with Session(self.engine) as s:
            head = s.scalar(select(func.coalesce(func.max(AuditRecord.seq), 0))) or 0
        waited = time.monotonic() - self._last_time >= self.interval
        due = head - self._last_seq >= self.every or (head > self._last_seq and (force or waited))
        if due:
            cp = write_checkpoint(self.engine, self.key_path, self.directory)
            if cp is not None:
                self._last_seq, self._last_time = cp.size, time.monotonic()
                self.written += 1

    def start(self) -> CheckpointWriter:
        self._thread = threading.Thread(target=self._run, name="sentinel-checkpoints", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after one last checkpoint of what is there."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._safe_tick(force=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self._safe_tick()

    def _safe_tick(self, force: bool = False) -> None:
        try:
            self.tick(force)
        except Exception:  # noqa: BLE001 - keep working; the next tick retries
            log.exception("audit checkpoint failed")
