"""audit: no unique index on cryptographic_hash

Nothing looks a record up by its hash: the chain is walked by ``seq`` and checkpoints name
a ``seq`` and its hash. A SHA-256 hex value is a random key, so its index took one random
B-tree page per record, and a SQLite commit writes every page it dirtied: dropping it took
sustained SQLite ingest from 5,265 to 6,381 req/s (same hour, 10 s at 16 in flight).
Uniqueness was never the chain's guarantee anyway: ``sentinel audit verify`` recomputes
every link, which a duplicate hash cannot pass.

PostgreSQL drops the constraint. SQLite cannot drop a table constraint, so the table is
rebuilt: a new table without it, the rows copied in ``seq`` order, the old table dropped
(DROP TABLE fires no DELETE trigger), the new one renamed, and the index and the two
append-only triggers created again. Both run inside the migration's transaction.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SQLITE_TABLE = """
CREATE TABLE audit_log_new (
    seq INTEGER NOT NULL,
    audit_id VARCHAR(36) NOT NULL,
    timestamp DATETIME NOT NULL,
    actor VARCHAR(32) NOT NULL,
    action_type VARCHAR(32) NOT NULL,
    incident_id VARCHAR(36),
    body BLOB NOT NULL,
    prev_hash VARCHAR(64) NOT NULL,
    cryptographic_hash VARCHAR(64) NOT NULL,
    CONSTRAINT pk_audit_log PRIMARY KEY (seq),
    CONSTRAINT uq_audit_log_audit_id UNIQUE (audit_id)
)
"""

_SQLITE_AFTER = [
    "CREATE INDEX ix_audit_log_incident_seq ON audit_log (incident_id, seq)",
    "CREATE TRIGGER audit_log_refuse_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_refuse_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
]

_COLUMNS = (
    "seq, audit_id, timestamp, actor, action_type, incident_id, body, prev_hash, cryptographic_hash"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_log DROP CONSTRAINT uq_audit_log_cryptographic_hash")
        return
    op.execute(_SQLITE_TABLE)
    op.execute(
        f"INSERT INTO audit_log_new ({_COLUMNS}) SELECT {_COLUMNS} FROM audit_log ORDER BY seq"
    )
    op.execute("DROP TABLE audit_log")
    op.execute("ALTER TABLE audit_log_new RENAME TO audit_log")
    for stmt in _SQLITE_AFTER:
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE audit_log ADD CONSTRAINT uq_audit_log_cryptographic_hash"
            " UNIQUE (cryptographic_hash)"
        )
        return
    op.execute(
        "CREATE UNIQUE INDEX uq_audit_log_cryptographic_hash ON audit_log (cryptographic_hash)"
    )
