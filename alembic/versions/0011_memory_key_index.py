"""The partitioned layout's (session_id, context_key) uniqueness through one plain index, not every partition.

A partitioned ``conversation_memory`` cannot have a unique index on ``(session_id, context_key)`` (it would
have to contain the partition key), so revision 0010's trigger looked the key up in every partition: one
index probe per month, the main cost of an insert. This revision gives the key a plain table of its own,
``conversation_memory_keys (session_id, context_key) -> memory_id``, whose primary key is the unique index
the partitioned table cannot have:

- ``memcli_conversation_memory_unique()`` (the insert / key-changing update trigger) now records the key
  there: a key no row holds costs one index insertion, and a concurrent writer of the same key waits for
  it as on a unique index. Only a key already recorded takes the old path (the key's lock, the look-up in
  every partition): its row may still exist (a duplicate: the same unique violation as before), may have
  left with a dropped partition, or may be this very row moving between partitions.
- ``memcli_conversation_memory_release()``, a BEFORE DELETE trigger, removes a deleted row's key (a
  partition drop cannot fire it: a dropped partition's keys stay until ``maintain weekly`` sweeps them).

Every row's key is recorded; a recorded key without its row is allowed (it only sends the next insert of
that key the old way). On the plain layout the table stays empty: the unique constraint does the work.

Revision ID: 0011_memory_key_index
Revises: 0010_partitioned_layout
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from memcli.migrations import load_revision

revision: str = "0011_memory_key_index"
down_revision: str | Sequence[str] | None = "0010_partitioned_layout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = "conversation_memory_keys"
RELEASE_TRIGGER = "trigger_memory_unique_key_release"

# SECURITY DEFINER: an application role writes memories without any privilege on the key table, and the
# look-up sees every row whatever the row-level security (as a unique index would).
UNIQUE_FUNCTION = """
CREATE OR REPLACE FUNCTION memcli_conversation_memory_unique() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.session_id = OLD.session_id AND NEW.context_key = OLD.context_key THEN
            RETURN NEW;
        END IF;
        DELETE FROM conversation_memory_keys
         WHERE session_id = OLD.session_id AND context_key = OLD.context_key AND memory_id = OLD.id;
    END IF;
    -- A key no row holds: recorded by one index insertion, which waits for a concurrent writer of the
    -- same key and then sees its key, as a unique index would.
    INSERT INTO conversation_memory_keys (session_id, context_key, memory_id)
    VALUES (NEW.session_id, NEW.context_key, NEW.id)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    -- Recorded already: a duplicate, a key whose row left with a dropped partition, or this row moving
    -- to another partition (an update of expires_at runs as a delete and an insert).
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
    INSERT INTO conversation_memory_keys (session_id, context_key, memory_id)
    VALUES (NEW.session_id, NEW.context_key, NEW.id)
    ON CONFLICT (session_id, context_key) DO UPDATE SET memory_id = EXCLUDED.memory_id;
    RETURN NEW;
END
$fn$
"""

RELEASE_FUNCTION = """
CREATE FUNCTION memcli_conversation_memory_release() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
BEGIN
    DELETE FROM conversation_memory_keys
     WHERE session_id = OLD.session_id AND context_key = OLD.context_key AND memory_id = OLD.id;
    RETURN OLD;
END
$fn$
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {KEYS} (
            session_id text NOT NULL,
            context_key text NOT NULL,
            memory_id uuid NOT NULL,
            CONSTRAINT {KEYS}_pkey PRIMARY KEY (session_id, context_key)
        )
        """
    )
    op.execute(
        f"COMMENT ON TABLE {KEYS} IS 'the (session_id, context_key) of every memory of the partitioned "
        "conversation_memory, where a unique index cannot be: kept by its triggers'"
    )
    op.execute(UNIQUE_FUNCTION)
    op.execute(RELEASE_FUNCTION)
    # A SECURITY DEFINER function gets a fixed search_path (no caller-controlled schema before its own).
    op.execute(
        """
        DO $memcli$
        BEGIN
            EXECUTE format('ALTER FUNCTION memcli_conversation_memory_unique() '
                           'SET search_path = pg_catalog, %I, pg_temp', current_schema());
            EXECUTE format('ALTER FUNCTION memcli_conversation_memory_release() '
                           'SET search_path = pg_catalog, %I, pg_temp', current_schema());
        END
        $memcli$
        """
    )
    # A partitioned layout already in place (or a conversion's twin being filled): its keys, recorded
    # while writers wait, and the trigger that releases them.
    op.execute(
        """
        DO $memcli$
        DECLARE
            v_table text;
        BEGIN
            FOREACH v_table IN ARRAY ARRAY['conversation_memory', 'conversation_memory__twin'] LOOP
                IF (SELECT relkind FROM pg_class WHERE oid = to_regclass(v_table)) = 'p' THEN
                    EXECUTE format('LOCK TABLE %I IN SHARE MODE', v_table);
                    EXECUTE format('INSERT INTO conversation_memory_keys '
                                   '(session_id, context_key, memory_id) '
                                   'SELECT session_id, context_key, id FROM %I ON CONFLICT DO NOTHING',
                                   v_table);
                    EXECUTE format('CREATE TRIGGER trigger_memory_unique_key_release BEFORE DELETE ON %I '
                                   'FOR EACH ROW EXECUTE FUNCTION memcli_conversation_memory_release()',
                                   v_table);
                    -- a twin being filled has its triggers off (the conversion keeps its keys itself):
                    -- the new one follows them
                    IF EXISTS (SELECT 1 FROM pg_trigger
                                WHERE tgrelid = to_regclass(v_table) AND NOT tgisinternal
                                  AND tgname = 'trigger_memory_unique_key' AND tgenabled = 'D') THEN
                        EXECUTE format('ALTER TABLE %I DISABLE TRIGGER trigger_memory_unique_key_release',
                                       v_table);
                    END IF;
                END IF;
            END LOOP;
        END
        $memcli$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DO $memcli$
        DECLARE
            v_table text;
        BEGIN
            FOREACH v_table IN ARRAY ARRAY['conversation_memory', 'conversation_memory__twin'] LOOP
                IF to_regclass(v_table) IS NOT NULL THEN
                    EXECUTE format('DROP TRIGGER IF EXISTS trigger_memory_unique_key_release ON %I', v_table);
                END IF;
            END LOOP;
        END
        $memcli$
        """
    )
    op.execute("ALTER FUNCTION memcli_conversation_memory_unique() RESET ALL")
    op.execute(load_revision("0010_partitioned_layout.py").UNIQUE_FUNCTION)
    op.execute("DROP FUNCTION memcli_conversation_memory_release()")
    op.execute(f"DROP TABLE {KEYS}")
