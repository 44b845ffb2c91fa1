"""Audit trail, erasure receipts and session closures.

- ``memcli_audit_log``: one row per memcli operation that reads out, changes or erases a user's data
  (export, forget, delete, update, import, remember): the operation, the database role and operating-system
  user that ran it, the time, row counts and the user id — never the content. After the user is forgotten
  their rows keep the counts but the user id is replaced by a salted digest (see ``memcli.people.audit``).
- ``memcli_erasure_receipts``: one row per ``users forget`` / ``sessions forget``: who ran it, when, rows
  erased per table and the proof (rows left per table, all zero) — the subject only as a salted digest, so
  the receipt holds no personal data and can be shown to an auditor.
- ``memcli_session_closures``: sessions closed by ``memcli sessions close`` or by ``maintain daily`` after
  their timeout (new activity after the closure reopens a session).
- ``memcli_erasure_scope``: the sessions an erasure in progress covers, so an interrupted erasure resumes
  with the same scope and still proves it; its rows are removed when the erasure completes.

Row-level security: everyone with the grants may append to the audit log; a user (``auth.uid()`` on
Supabase, else ``memcli.user_id``) sees and may pseudonymise only the rows about themselves; the erasure
tables hold no personal data once complete and are governed by grants alone.

Revision ID: 0005_audit_erasure
Revises: 0004_consolidate_per_user
Create Date: 2026-11-30 00:00:05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_audit_erasure"
down_revision: str | Sequence[str] | None = "0004_consolidate_per_user"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the names this revision was written with (history: later renames in memcli.schema.names do not apply)
AUDIT = "memcli_audit_log"
RECEIPTS = "memcli_erasure_receipts"
SCOPE = "memcli_erasure_scope"
CLOSURES = "memcli_session_closures"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {AUDIT} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            occurred_at timestamptz NOT NULL DEFAULT now(),
            operation text NOT NULL,
            target text NOT NULL,
            db_role text NOT NULL DEFAULT session_user,
            os_user text,
            user_id uuid,
            subject_digest text,
            counts jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            CONSTRAINT ck_memcli_audit_log_target CHECK (target IN ('user', 'session', 'memory'))
        )
        """
    )
    op.execute(f"CREATE INDEX idx_memcli_audit_log_user ON {AUDIT} (user_id)")
    op.execute(f"CREATE INDEX idx_memcli_audit_log_occurred ON {AUDIT} (occurred_at)")
    op.execute(
        f"""
        CREATE TABLE {RECEIPTS} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            subject_kind text NOT NULL,
            subject_digest text NOT NULL,
            salt text NOT NULL,
            status text NOT NULL DEFAULT 'running',
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            db_role text NOT NULL DEFAULT session_user,
            os_user text,
            erased jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            proof jsonb,
            CONSTRAINT ck_memcli_erasure_receipts_subject_kind CHECK (subject_kind IN ('user', 'session')),
            CONSTRAINT ck_memcli_erasure_receipts_status CHECK (status IN ('running', 'completed', 'failed'))
        )
        """
    )
    op.execute(f"CREATE INDEX idx_memcli_erasure_receipts_status ON {RECEIPTS} (status)")
    op.execute(
        f"""
        CREATE TABLE {SCOPE} (
            receipt_id uuid NOT NULL REFERENCES {RECEIPTS} (id) ON DELETE CASCADE,
            session_id text NOT NULL,
            PRIMARY KEY (receipt_id, session_id)
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE {CLOSURES} (
            session_id text PRIMARY KEY,
            closed_at timestamptz NOT NULL DEFAULT now(),
            reason text NOT NULL,
            CONSTRAINT ck_memcli_session_closures_reason CHECK (reason IN ('manual', 'timeout'))
        )
        """
    )
    for table in (AUDIT, RECEIPTS, SCOPE, CLOSURES):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY memcli_audit_append ON {AUDIT} FOR INSERT WITH CHECK (true)")
    op.execute(
        f"""
        DO $memcli$
        DECLARE
            uid text := CASE WHEN to_regprocedure('auth.uid()') IS NOT NULL THEN '(SELECT auth.uid())'
                             ELSE '(SELECT memcli_current_user_id())' END;
        BEGIN
            EXECUTE format('CREATE POLICY memcli_audit_subject_read ON {AUDIT} FOR SELECT '
                           'USING (user_id = %s)', uid);
            EXECUTE format('CREATE POLICY memcli_audit_subject_pseudonymise ON {AUDIT} FOR UPDATE '
                           'USING (user_id = %s) WITH CHECK (user_id IS NULL)', uid);
        END
        $memcli$
        """
    )
    for table in (RECEIPTS, SCOPE):
        op.execute(f"CREATE POLICY memcli_erasure_access ON {table} FOR ALL USING (true) WITH CHECK (true)")
    # a closure is about a session: visible to whoever sees the session's memories
    op.execute(
        f"CREATE POLICY memcli_user_access ON {CLOSURES} FOR ALL "  # noqa: S608 - a constant name
        "USING (session_id IN (SELECT cm.session_id FROM conversation_memory cm)) "
        "WITH CHECK (session_id IN (SELECT cm.session_id FROM conversation_memory cm))"
    )


def downgrade() -> None:
    op.execute(f"DROP TABLE {CLOSURES}, {SCOPE}, {RECEIPTS}, {AUDIT}")
