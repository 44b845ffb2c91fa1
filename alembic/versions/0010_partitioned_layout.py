"""Partitioned layout: partition functions, and the layout itself when chosen at the first migration.

- ``memcli_create_partition(parent, month)``: the month's range partition of a partitioned memcli table
  (``<table>_YYYY_MM``, UTC month), created beside the table and attached (a SHARE UPDATE EXCLUSIVE lock
  on the parent, not the ACCESS EXCLUSIVE of ``CREATE TABLE ... PARTITION OF``); rows of that month
  waiting in the default partition move into it. Idempotent.
- ``create_memory_partition(date)``: the source document's function, for ``conversation_memory``.
- ``memcli_memory_expiry(expires_at, created_at, memory_type)``: ``conversation_memory``'s partition key,
  its ``expires_at`` as the expiry trigger will set it.
- ``memcli_lock_memory_key(session_id, context_key)``: the transaction lock that writers of one
  ``(session_id, context_key)`` share (the trigger below, and upserts on either layout).
- ``memcli_conversation_memory_unique()``: keeps ``(session_id, context_key)`` unique on the partitioned
  layout, where a unique index would have to contain ``expires_at``.
- With ``memcli migrate --partitioned`` (a new database): ``conversation_memory``,
  ``memory_consolidation_log`` and ``system_maintenance_log`` are rebuilt partitioned while still empty.
  A database with rows is converted online by ``memcli partition convert`` instead.

Downgrade turns partitioned tables back into plain ones (their rows copied) and drops the functions.

Revision ID: 0010_partitioned_layout
Revises: 0009_vector_type
Create Date: 2026-11-30 00:00:05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

revision: str = "0010_partitioned_layout"
down_revision: str | Sequence[str] | None = "0009_vector_type"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The unique (session_id, context_key) trigger function (revision 0011 replaces it and puts it back on its
# downgrade from here).
UNIQUE_FUNCTION = """
CREATE OR REPLACE FUNCTION memcli_conversation_memory_unique() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id = OLD.session_id AND NEW.context_key = OLD.context_key THEN
        RETURN NEW;
    END IF;
    PERFORM memcli_lock_memory_key(NEW.session_id, NEW.context_key);
    IF EXISTS (SELECT 1 FROM conversation_memory
                WHERE session_id = NEW.session_id AND context_key = NEW.context_key
                  AND id IS DISTINCT FROM NEW.id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "%"',
                        'conversation_memory_session_id_context_key_key'
            USING ERRCODE = 'unique_violation',
                  CONSTRAINT = 'conversation_memory_session_id_context_key_key',
                  DETAIL = format('Key (session_id, context_key)=(%s, %s) already exists.',
                                  NEW.session_id, NEW.context_key);
    END IF;
    RETURN NEW;
END
$fn$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION memcli_create_partition(p_parent regclass, p_month date) RETURNS text
        LANGUAGE plpgsql AS $fn$
        DECLARE
            v_schema text;
            v_table text;
            v_key text;
            v_name text;
            v_from timestamptz := date_trunc('month', p_month)::timestamp AT TIME ZONE 'UTC';
            v_to timestamptz := (date_trunc('month', p_month) + interval '1 month')::timestamp
                                AT TIME ZONE 'UTC';
            v_default regclass;
        BEGIN
            SELECT n.nspname, c.relname, pg_get_partkeydef(pt.partrelid) INTO v_schema, v_table, v_key
              FROM pg_partitioned_table pt
              JOIN pg_class c ON c.oid = pt.partrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE pt.partrelid = p_parent AND pt.partstrat = 'r' AND pt.partnatts = 1;
            IF v_key IS NULL THEN
                RAISE EXCEPTION 'table % is not partitioned by range', p_parent
                    USING ERRCODE = 'wrong_object_type',
                          HINT = 'convert it first: memcli partition convert';
            END IF;
            -- 'RANGE (expires_at)' -> the key's column or expression, as SQL
            v_key := substr(v_key, 8, length(v_key) - 8);
            v_name := v_table || '_' || to_char(p_month, 'YYYY_MM');
            IF to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL THEN
                RETURN v_name;
            END IF;
            EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                           'INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)',
                           v_schema, v_name, p_parent);
            -- The bound as a constraint lets ATTACH skip scanning the new table.
            EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I '
                           'CHECK ((%s) IS NOT NULL AND (%s) >= %L AND (%s) < %L)',
                           v_schema, v_name, left(v_name, 57) || '_bound', v_key, v_key, v_from, v_key, v_to);
            SELECT i.inhrelid INTO v_default
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
            IF v_default IS NOT NULL THEN
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE (%s) >= %L AND (%s) < %L RETURNING *) '
                               'INSERT INTO %I.%I SELECT * FROM moved',
                               v_default, v_key, v_from, v_key, v_to, v_schema, v_name);
            END IF;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                           p_parent, v_schema, v_name, v_from, v_to);
            EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
                           v_schema, v_name, left(v_name, 57) || '_bound');
            RETURN v_name;
        END
        $fn$
        """
    )
    # conversation_memory's partition key. Rows are routed to a partition before BEFORE ROW triggers run,
    # so a key of plain expires_at would send a memory inserted without one (trigger_memory_expiry fills it
    # in from its tier's retention) to the default partition, and the trigger's value could not move it out.
    # The key computes what the trigger will store. IMMUTABLE so Postgres accepts it as a key: it reads the
    # retention settings only for rows without expires_at, and the trigger stores the same value in the
    # same statement, so every stored row's key is its expires_at.
    op.execute(
        """
        CREATE FUNCTION memcli_memory_expiry(p_expires_at timestamptz, p_created_at timestamptz,
                                             p_memory_type text) RETURNS timestamptz
        LANGUAGE plpgsql IMMUTABLE AS $fn$
        BEGIN
            IF p_expires_at IS NOT NULL THEN
                RETURN p_expires_at;
            END IF;
            RETURN coalesce(p_created_at, now()) + memory_retention(p_memory_type);
        END
        $fn$
        """
    )
    op.execute(
        """
        CREATE FUNCTION create_memory_partition(target_date date) RETURNS void
        LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM memcli_create_partition('conversation_memory'::regclass, target_date);
        END
        $fn$
        """
    )
    # Writers of one (session_id, context_key) take the same transaction lock, then look across all
    # partitions: the second sees the first's row once it commits, as a unique index would make it wait.
    # The keys share 1024 locks, so a bulk load holds at most 1024 entries of the server's lock table.
    # An upsert (look up, then update or insert) takes it first, on either layout.
    op.execute(
        """
        CREATE FUNCTION memcli_lock_memory_key(p_session_id text, p_context_key text) RETURNS void
        LANGUAGE sql AS $fn$
            SELECT pg_advisory_xact_lock(
                hashtext('memcli.unique.conversation_memory'),
                hashtext(p_session_id || chr(31) || p_context_key) & 1023)
        $fn$
        """
    )
    op.execute(UNIQUE_FUNCTION)
    if context.config.attributes.get("memcli.partitioned"):
        if context.is_offline_mode():
            raise RuntimeError(
                "the partitioned layout is built from the live catalog: migrate online, or render the plain "
                "layout's SQL and convert later with memcli partition convert"
            )
        from memcli.partitions.build import partition_new_tables

        partition_new_tables(op.get_bind().connection.driver_connection)


def downgrade() -> None:
    if not context.is_offline_mode():
        from memcli.partitions.build import unpartition_tables

        unpartition_tables(op.get_bind().connection.driver_connection)
    op.execute("DROP FUNCTION memcli_conversation_memory_unique()")
    op.execute("DROP FUNCTION memcli_lock_memory_key(text, text)")
    op.execute("DROP FUNCTION create_memory_partition(date)")
    op.execute("DROP FUNCTION memcli_memory_expiry(timestamptz, timestamptz, text)")
    op.execute("DROP FUNCTION memcli_create_partition(regclass, date)")
