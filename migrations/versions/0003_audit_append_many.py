"""audit: batch append function (one round trip for a batch of records)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PG_APPEND_MANY = r"""
CREATE OR REPLACE FUNCTION sentinel_audit_append_many(
    p_audit_ids text[], p_ts timestamptz, p_actors text[], p_action_types text[],
    p_incident_ids text[], p_bodies bytea[])
RETURNS TABLE(seq bigint, hash text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    v_prev text;
    v_seq bigint;
    v_hash text;
    i int;
BEGIN
    PERFORM pg_advisory_xact_lock(7262730001);
    SELECT a.seq, a.cryptographic_hash INTO v_seq, v_prev
      FROM audit_log a ORDER BY a.seq DESC LIMIT 1;
    IF v_seq IS NULL THEN
        v_seq := 0;
        v_prev := repeat('0', 64);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_bodies, 1), 0) LOOP
        v_seq := v_seq + 1;
        v_hash := encode(sha256('\x00'::bytea || decode(v_prev, 'hex') || int8send(v_seq)
                                || p_bodies[i]), 'hex');
        INSERT INTO audit_log(seq, audit_id, "timestamp", actor, action_type, incident_id,
                              body, prev_hash, cryptographic_hash)
        VALUES (v_seq, p_audit_ids[i], p_ts, p_actors[i], p_action_types[i], p_incident_ids[i],
                p_bodies[i], v_prev, v_hash);
        seq := v_seq;
        hash := v_hash;
        RETURN NEXT;
        v_prev := v_hash;
    END LOOP;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_APPEND_MANY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS sentinel_audit_append_many")
