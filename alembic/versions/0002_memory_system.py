"""Memory system: pgvector, the six memory tables, settings, functions, triggers and views.

Corrections to the source document: access tracking is a BEFORE UPDATE trigger that changes NEW (the
document's AFTER UPDATE trigger updated its own table and recursed); expiry comes from the tier's retention
in ``memory_settings`` when a row gives none (the document's fixed 30-day default contradicted its own
tiers); HNSW instead of ivfflat (an ivfflat index built on an empty table has poor recall); CHECK
constraints for the enumerations and the 0-1 scores; ``consolidate_session_memories`` has a real body. No
``uuid-ossp`` (``gen_random_uuid()`` is built in) and no encryption trigger with a hard-coded key.

The vector dimension (384 unless chosen otherwise at this first migration) is recorded in
``memory_settings`` as ``embedding.dimension``.

Revision ID: 0002_memory_system
Revises: 0001_core_tables
Create Date: 2024-12-01 00:00:01
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import context, op
from memcli.schema import names

revision: str = "0002_memory_system"
down_revision: str | Sequence[str] | None = "0001_core_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_DIMENSION = names.DEFAULT_EMBEDDING_DIMENSION

PGVECTOR_HINT = (
    "install pgvector on the server (Debian/Ubuntu: apt install postgresql-NN-pgvector; RHEL: "
    "dnf install pgvector_NN; macOS: brew install pgvector; Docker: the pgvector/pgvector image), or on "
    "Supabase enable the vector extension (Dashboard > Database > Extensions); creating it needs a "
    "superuser or the database owner on Postgres 13+ (trusted extension)"
)


# Merges the session's unexpired short_term memories older than p_min_age (NULL: the setting
# consolidation.min_age_days) into one long_term memory, in (created_at, id) order: object values are
# merged with later values winning, other values wrapped as {context_key: value}; every overwritten
# value is kept in the log row's details.overridden (key -> list of overwritten values, oldest first).
# Revision 0004 restores these on downgrade, from here.
CONSOLIDATE_SESSION_MEMORIES = (
    """
        CREATE FUNCTION consolidate_session_memories(p_session_id text, p_min_age interval) RETURNS uuid
        LANGUAGE plpgsql AS $fn$
        DECLARE
            v_min_age interval := p_min_age;
            v_new_id uuid := gen_random_uuid();
            v_ids uuid[] := '{}';
            v_keys text[] := '{}';
            v_merged jsonb := '{}'::jsonb;
            v_overridden jsonb := '{}'::jsonb;
            v_value jsonb;
            v_key text;
            v_importance real;
            v_accesses bigint := 0;
            v_user uuid;
            v_last_access timestamptz;
            r record;
        BEGIN
            IF v_min_age IS NULL THEN
                v_min_age := coalesce(
                    (SELECT (v #>> '{}')::double precision
                       FROM memcli_setting('consolidation.min_age_days') AS v
                      WHERE jsonb_typeof(v) IN ('number', 'string')),
                    5) * interval '1 day';
            END IF;
            FOR r IN
                SELECT id, user_id, context_key, context_value, importance_score, access_count,
                       last_accessed_at
                  FROM conversation_memory
                 WHERE session_id = p_session_id
                   AND memory_type = 'short_term'
                   AND created_at < now() - v_min_age
                   -- an expired memory is due for deletion, not for a new lease of life in long_term
                   AND (expires_at IS NULL OR expires_at >= now())
                 ORDER BY created_at, id
                   FOR UPDATE
            LOOP
                v_ids := v_ids || r.id;
                v_keys := v_keys || r.context_key;
                v_value := CASE WHEN jsonb_typeof(r.context_value) = 'object' THEN r.context_value
                                ELSE jsonb_build_object(r.context_key, r.context_value) END;
                FOR v_key IN SELECT jsonb_object_keys(v_value) LOOP
                    IF v_merged ? v_key AND (v_merged -> v_key) IS DISTINCT FROM (v_value -> v_key) THEN
                        v_overridden := jsonb_set(
                            v_overridden, ARRAY[v_key],
                            coalesce(v_overridden -> v_key, '[]'::jsonb)
                                || jsonb_build_array(v_merged -> v_key));
                    END IF;
                END LOOP;
                v_merged := v_merged || v_value;
                v_importance := greatest(v_importance, r.importance_score);
                v_accesses := v_accesses + coalesce(r.access_count, 0);
                v_user := coalesce(r.user_id, v_user);
                v_last_access := greatest(v_last_access, r.last_accessed_at);
            END LOOP;

            IF cardinality(v_ids) = 0 THEN
                RETURN NULL;
            END IF;

            INSERT INTO conversation_memory (id, session_id, user_id, memory_type, context_key, context_value,
                                             importance_score, access_count, last_accessed_at, created_at,
                                             expires_at)
            VALUES (v_new_id, p_session_id, v_user, 'long_term', 'consolidated:' || v_new_id, v_merged,
                    coalesce(v_importance, 0.5), least(v_accesses, 2147483647)::integer,
                    coalesce(v_last_access, now()), now(),
                    now() + coalesce(memory_retention('long_term'), interval '90 days'));
            INSERT INTO memory_consolidation_log (session_id, consolidation_type, old_memory_ids,
                                                  new_memory_id, consolidation_reason, details)
            VALUES (p_session_id, 'merge', v_ids, v_new_id,
                    'merged ' || cardinality(v_ids) || ' short_term memories older than ' || v_min_age::text,
                    jsonb_build_object('overridden', v_overridden, 'source_keys', to_jsonb(v_keys)));
            DELETE FROM conversation_memory WHERE id = ANY (v_ids);
            RETURN v_new_id;
        END
        $fn$
        """,
    """
        CREATE FUNCTION consolidate_session_memories(p_session_id text) RETURNS uuid
        LANGUAGE sql AS $fn$
            SELECT consolidate_session_memories(p_session_id, NULL::interval)
        $fn$
        """,
)


def _embedding_dimension() -> int:
    value = context.config.attributes.get("memcli.embedding_dim") or DEFAULT_DIMENSION
    return int(value)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    dim = _embedding_dimension()

    # The application's businesses table is adopted as it is; the memory schema needs only id and name.
    op.execute(
        """
        DO $memcli$
        BEGIN
            IF to_regclass('businesses') IS NULL THEN
                RAISE EXCEPTION 'table businesses does not exist';
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('businesses')
                           AND attname = 'id' AND NOT attisdropped AND attnum > 0)
               OR NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('businesses')
                              AND attname = 'name' AND NOT attisdropped AND attnum > 0) THEN
                RAISE EXCEPTION 'table businesses has no id or no name column'
                    USING HINT = 'the memory schema references businesses(id) and reads businesses.name';
            END IF;
        END
        $memcli$
        """
    )

    # pgvector: created when missing (and recorded, so a downgrade drops only what memcli created).
    op.execute(
        f"""
        DO $memcli$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
                BEGIN
                    CREATE EXTENSION vector;
                EXCEPTION WHEN feature_not_supported OR undefined_file OR insufficient_privilege THEN
                    RAISE EXCEPTION 'pgvector (extension "vector") cannot be created in this database: %',
                        SQLERRM USING ERRCODE = SQLSTATE, HINT = {_literal(PGVECTOR_HINT)};
                END;
                INSERT INTO memcli_created_objects (object_type, object_name, revision)
                VALUES ('extension', 'vector', '{revision}');
            END IF;
        END
        $memcli$
        """  # noqa: S608 - built from this file's constants
    )

    op.execute(
        """
        CREATE TABLE memory_settings (
            key text PRIMARY KEY,
            value jsonb NOT NULL,
            description text,
            updated_at timestamptz DEFAULT now()
        )
        """
    )
    from memcli.settings import DEFAULTS

    for key, (default, description) in DEFAULTS.items():
        value = dim if key == "embedding.dimension" else default
        op.execute(
            sa.text(
                "INSERT INTO memory_settings (key, value, description) "
                "VALUES (:key, CAST(:value AS jsonb), :description) ON CONFLICT (key) DO NOTHING"
            ).bindparams(key=key, value=json.dumps(value), description=description)
        )

    op.execute(
        """
        CREATE TABLE conversation_memory (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text NOT NULL,
            user_id uuid,
            memory_type text NOT NULL,
            context_key text NOT NULL,
            context_value jsonb,
            importance_score real DEFAULT 0.5,
            access_count integer DEFAULT 0,
            last_accessed_at timestamptz DEFAULT now(),
            created_at timestamptz DEFAULT now(),
            expires_at timestamptz,
            CONSTRAINT conversation_memory_session_id_context_key_key UNIQUE (session_id, context_key),
            CONSTRAINT ck_conversation_memory_memory_type
                CHECK (memory_type IN ('short_term', 'long_term', 'archived', 'semantic')),
            CONSTRAINT ck_conversation_memory_importance_score
                CHECK (importance_score >= 0 AND importance_score <= 1),
            CONSTRAINT ck_conversation_memory_access_count CHECK (access_count >= 0)
        )
        """
    )
    op.execute("CREATE INDEX idx_conversation_memory_session ON conversation_memory (session_id)")
    op.execute("CREATE INDEX idx_conversation_memory_type ON conversation_memory (memory_type)")
    op.execute("CREATE INDEX idx_conversation_memory_expires ON conversation_memory (expires_at)")
    op.execute(
        "CREATE INDEX idx_conversation_memory_importance ON conversation_memory (importance_score DESC)"
    )
    op.execute("CREATE INDEX idx_conversation_memory_user ON conversation_memory (user_id)")

    op.execute(
        """
        CREATE TABLE business_context_sections (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            business_id uuid REFERENCES businesses (id) ON DELETE CASCADE,
            section_type text NOT NULL,
            section_name text NOT NULL,
            section_content jsonb,
            section_order integer DEFAULT 0,
            is_active boolean DEFAULT true,
            last_updated timestamptz DEFAULT now(),
            created_at timestamptz DEFAULT now(),
            source_hash text,
            CONSTRAINT business_context_sections_business_id_section_type_section_key
                UNIQUE (business_id, section_type, section_name),
            CONSTRAINT ck_business_context_sections_section_type
                CHECK (section_type IN ('menu', 'services', 'hours', 'location', 'policies', 'overview'))
        )
        """
    )
    op.execute("CREATE INDEX idx_business_sections_business ON business_context_sections (business_id)")
    op.execute("CREATE INDEX idx_business_sections_type ON business_context_sections (section_type)")
    op.execute("CREATE INDEX idx_business_sections_active ON business_context_sections (is_active)")

    op.execute(
        f"""
        CREATE TABLE semantic_memory (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text NOT NULL,
            user_id uuid,
            content_type text NOT NULL,
            content_text text NOT NULL,
            embedding_vector vector({dim}),
            metadata jsonb,
            relevance_score real DEFAULT 0.5,
            created_at timestamptz DEFAULT now(),
            embedding_model text,
            access_count integer DEFAULT 0,
            last_accessed_at timestamptz,
            content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content_text)) STORED,
            CONSTRAINT ck_semantic_memory_content_type
                CHECK (content_type IN ('conversation', 'business_info', 'user_preference')),
            CONSTRAINT ck_semantic_memory_relevance_score
                CHECK (relevance_score >= 0 AND relevance_score <= 1),
            CONSTRAINT ck_semantic_memory_access_count CHECK (access_count >= 0)
        )
        """
    )
    op.execute("CREATE INDEX idx_semantic_memory_session ON semantic_memory (session_id)")
    op.execute("CREATE INDEX idx_semantic_memory_type ON semantic_memory (content_type)")
    op.execute("CREATE INDEX idx_semantic_memory_user ON semantic_memory (user_id)")
    op.execute(
        "CREATE INDEX idx_semantic_memory_vector ON semantic_memory "
        "USING hnsw (embedding_vector vector_cosine_ops)"
    )
    op.execute("CREATE INDEX idx_semantic_memory_tsv ON semantic_memory USING gin (content_tsv)")

    op.execute(
        """
        CREATE TABLE memory_consolidation_log (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text NOT NULL,
            consolidation_type text NOT NULL,
            old_memory_ids uuid[],
            new_memory_id uuid,
            consolidation_reason text,
            created_at timestamptz DEFAULT now(),
            details jsonb,
            CONSTRAINT ck_memory_consolidation_log_consolidation_type
                CHECK (consolidation_type IN ('merge', 'summarize', 'archive', 'forget'))
        )
        """
    )
    op.execute("CREATE INDEX idx_consolidation_log_session ON memory_consolidation_log (session_id)")

    op.execute(
        """
        CREATE TABLE context_relevance (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            session_id text NOT NULL,
            context_type text NOT NULL,
            context_key text NOT NULL,
            relevance_score real DEFAULT 0.5,
            decay_factor real DEFAULT 0.95,
            last_calculated timestamptz DEFAULT now(),
            created_at timestamptz DEFAULT now(),
            CONSTRAINT context_relevance_session_id_context_type_context_key_key
                UNIQUE (session_id, context_type, context_key),
            CONSTRAINT ck_context_relevance_relevance_score
                CHECK (relevance_score >= 0 AND relevance_score <= 1),
            CONSTRAINT ck_context_relevance_decay_factor CHECK (decay_factor >= 0 AND decay_factor <= 1)
        )
        """
    )
    op.execute("CREATE INDEX idx_context_relevance_session ON context_relevance (session_id)")
    op.execute("CREATE INDEX idx_context_relevance_score ON context_relevance (relevance_score DESC)")

    op.execute(
        """
        CREATE TABLE user_context_profiles (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL UNIQUE,
            profile_data jsonb,
            preferences jsonb,
            behavior_patterns jsonb,
            context_history jsonb,
            last_updated timestamptz DEFAULT now(),
            created_at timestamptz DEFAULT now()
        )
        """
    )

    _create_functions()
    _create_views()


def _create_functions() -> None:
    # A setting's value for the triggers and functions below. SECURITY DEFINER: an application role that
    # row-level security keeps from reading memory_settings still gets the operator's retention.
    op.execute(
        """
        CREATE FUNCTION memcli_setting(p_key text) RETURNS jsonb
        LANGUAGE sql STABLE SECURITY DEFINER AS $fn$
            SELECT value FROM memory_settings WHERE key = p_key
        $fn$
        """
    )
    # A SECURITY DEFINER function gets a fixed search_path (no caller-controlled schema before its own).
    op.execute(
        """
        DO $memcli$
        BEGIN
            EXECUTE format('ALTER FUNCTION memcli_setting(text) SET search_path = pg_catalog, %I, pg_temp',
                           current_schema());
        END
        $memcli$
        """
    )
    # Retention of a tier: memory_settings 'retention.<tier>_days', else the documented 7 / 90 / 365 days;
    # NULL (never expires) for a tier without retention, such as 'semantic'.
    op.execute(
        """
        CREATE FUNCTION memory_retention(p_memory_type text) RETURNS interval
        LANGUAGE sql STABLE AS $fn$
            SELECT coalesce(
                (SELECT (v #>> '{}')::double precision
                   FROM memcli_setting('retention.' || p_memory_type || '_days') AS v
                  WHERE jsonb_typeof(v) IN ('number', 'string')),
                CASE p_memory_type
                    WHEN 'short_term' THEN 7 WHEN 'long_term' THEN 90 WHEN 'archived' THEN 365
                END
            ) * interval '1 day'
        $fn$
        """
    )
    op.execute(
        """
        CREATE FUNCTION set_memory_expiry() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            IF NEW.expires_at IS NULL THEN
                NEW.expires_at := coalesce(NEW.created_at, now()) + memory_retention(NEW.memory_type);
            END IF;
            RETURN NEW;
        END
        $fn$
        """
    )
    # The WHEN clause is evaluated without calling the function: bulk loads that give expires_at (COPY from
    # seed --demo, an app's batch insert) pay nothing per row for the trigger.
    op.execute(
        """
        CREATE TRIGGER trigger_memory_expiry
            BEFORE INSERT ON conversation_memory
            FOR EACH ROW WHEN (NEW.expires_at IS NULL) EXECUTE FUNCTION set_memory_expiry()
        """
    )
    # Counts an application's update of a memory as an access by changing the row being written (no second
    # UPDATE, so no recursion). Not counted: updates that set access_count themselves (memcli's retrieval
    # already counts) and memcli's maintenance (SET LOCAL memcli.maintenance = 'on').
    op.execute(
        """
        CREATE FUNCTION update_memory_access() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            IF coalesce(current_setting('memcli.maintenance', true), '') = 'on' THEN
                RETURN NEW;
            END IF;
            IF NEW.access_count IS DISTINCT FROM OLD.access_count THEN
                RETURN NEW;
            END IF;
            NEW.access_count := coalesce(OLD.access_count, 0) + 1;
            NEW.last_accessed_at := now();
            RETURN NEW;
        END
        $fn$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trigger_memory_access
            BEFORE UPDATE ON conversation_memory
            FOR EACH ROW EXECUTE FUNCTION update_memory_access()
        """
    )
    op.execute(
        """
        CREATE FUNCTION cleanup_expired_memory() RETURNS integer
        LANGUAGE plpgsql AS $fn$
        DECLARE
            deleted_count integer;
        BEGIN
            DELETE FROM conversation_memory WHERE expires_at < now();
            GET DIAGNOSTICS deleted_count = ROW_COUNT;
            -- relevance rows of sessions that have no memory left
            DELETE FROM context_relevance cr
             WHERE NOT EXISTS (SELECT 1 FROM conversation_memory cm WHERE cm.session_id = cr.session_id)
               AND NOT EXISTS (SELECT 1 FROM semantic_memory sm WHERE sm.session_id = cr.session_id);
            RETURN deleted_count;
        END
        $fn$
        """
    )
    for statement in CONSOLIDATE_SESSION_MEMORIES:
        op.execute(statement)


def _create_views() -> None:
    # The views read the application's businesses table: optional columns it lacks (category, is_active,
    # user_id) become NULL / no filter / no match instead of failing the migration.
    op.execute(
        """
        DO $memcli$
        DECLARE
            biz regclass := to_regclass('businesses');
            has_category boolean;
            has_active boolean;
            has_user boolean;
            category_expr text;
        BEGIN
            SELECT bool_or(attname = 'category'), bool_or(attname = 'is_active'), bool_or(attname = 'user_id')
              INTO has_category, has_active, has_user
              FROM pg_attribute
             WHERE attrelid = biz AND attnum > 0 AND NOT attisdropped;
            category_expr := CASE WHEN has_category THEN 'b.category' ELSE 'NULL::text' END;

            EXECUTE format(
                'CREATE VIEW active_business_context AS '
                'SELECT bcs.*, b.name AS business_name, %s AS business_category '
                'FROM business_context_sections bcs JOIN businesses b ON bcs.business_id = b.id '
                'WHERE bcs.is_active = true AND %s '
                'ORDER BY bcs.business_id, bcs.section_order',
                category_expr,
                CASE WHEN has_active THEN 'b.is_active = true' ELSE 'true' END);

            EXECUTE format(
                'CREATE VIEW business_memory_overview AS '
                'SELECT b.id AS business_id, b.name AS business_name, %s AS business_category, '
                'count(bcs.id) AS context_sections, count(DISTINCT sm.id) AS semantic_memories, '
                'max(bcs.last_updated) AS last_context_update '
                'FROM businesses b '
                'LEFT JOIN business_context_sections bcs ON b.id = bcs.business_id AND bcs.is_active = true '
                'LEFT JOIN semantic_memory sm ON %s '
                'GROUP BY b.id, b.name%s',
                category_expr,
                CASE WHEN has_user THEN 'sm.user_id = b.user_id' ELSE 'false' END,
                CASE WHEN has_category THEN ', b.category' ELSE '' END);
        END
        $memcli$
        """
    )
    op.execute(
        """
        CREATE VIEW session_memory_summary AS
        SELECT session_id,
               memory_type,
               count(*) AS memory_count,
               avg(importance_score) AS avg_importance,
               max(last_accessed_at) AS last_access,
               sum(access_count) AS total_accesses
          FROM conversation_memory
         GROUP BY session_id, memory_type
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP VIEW IF EXISTS business_memory_overview, active_business_context, session_memory_summary"
    )
    op.execute(
        "DROP TABLE user_context_profiles, context_relevance, memory_consolidation_log, semantic_memory"
    )
    op.execute("DROP TABLE business_context_sections, conversation_memory")
    op.execute("DROP FUNCTION consolidate_session_memories(text)")
    op.execute("DROP FUNCTION consolidate_session_memories(text, interval)")
    op.execute("DROP FUNCTION cleanup_expired_memory()")
    op.execute("DROP FUNCTION update_memory_access()")
    op.execute("DROP FUNCTION set_memory_expiry()")
    op.execute("DROP FUNCTION memory_retention(text)")
    op.execute("DROP FUNCTION memcli_setting(text)")
    op.execute("DROP TABLE memory_settings")
    # pgvector only if memcli created it and nothing of the application uses it.
    op.execute(
        f"""
        DO $memcli$
        BEGIN
            IF EXISTS (SELECT 1 FROM memcli_created_objects
                        WHERE object_type = 'extension' AND object_name = 'vector') THEN
                BEGIN
                    DROP EXTENSION IF EXISTS vector;
                EXCEPTION WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'pgvector kept: other objects use it';
                END;
                DELETE FROM memcli_created_objects
                 WHERE object_type = 'extension' AND object_name = 'vector' AND revision = '{revision}';
            END IF;
        END
        $memcli$
        """  # noqa: S608 - built from this file's constants
    )
