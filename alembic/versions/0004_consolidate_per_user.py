"""Consolidation never merges memories of different users.

``consolidate_session_memories`` merged every old short-term memory of a session into one long-term
memory owned by whichever user came last: apps share session ids between users, so one user's memory
became another's (and under row-level security the first user lost it). The function now makes one merged
memory per owner of the session's memories (memories without a user form their own group) and returns the
new memories' ids as a set (none when nothing was old enough). Downgrade restores the single-merge
function.

Revision ID: 0004_consolidate_per_user
Revises: 0003_operations_security
Create Date: 2026-11-30 00:00:04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from memcli.migrations import load_revision

revision: str = "0004_consolidate_per_user"
down_revision: str | Sequence[str] | None = "0003_operations_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The return type changes (uuid -> SETOF uuid), which CREATE OR REPLACE cannot do: drop, then create.
_DROP = (
    "DROP FUNCTION consolidate_session_memories(text)",
    "DROP FUNCTION consolidate_session_memories(text, interval)",
)

# Merges the session's unexpired short_term memories older than p_min_age (NULL: the setting
# consolidation.min_age_days) into one long_term memory per owner (user_id, NULL being an owner of its
# own), in (created_at, id) order: object values are merged with later values winning, other values
# wrapped as {context_key: value}; every overwritten value is kept in the log row's details.overridden.
PER_USER = (
    """
    CREATE FUNCTION consolidate_session_memories(p_session_id text, p_min_age interval) RETURNS SETOF uuid
    LANGUAGE plpgsql AS $fn$
    DECLARE
        v_min_age interval := p_min_age;
        v_owner record;
        v_new_id uuid;
        v_ids uuid[];
        v_keys text[];
        v_merged jsonb;
        v_overridden jsonb;
        v_value jsonb;
        v_key text;
        v_importance real;
        v_accesses bigint;
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
        -- One merged memory per owner: memories of different users never merge, and memories without a
        -- user stay apart from those with one (apps share session ids between users).
        FOR v_owner IN
            SELECT DISTINCT user_id
              FROM conversation_memory
             WHERE session_id = p_session_id
               AND memory_type = 'short_term'
               AND created_at < now() - v_min_age
               AND (expires_at IS NULL OR expires_at >= now())
             ORDER BY user_id NULLS FIRST
        LOOP
            v_new_id := gen_random_uuid();
            v_ids := '{}';
            v_keys := '{}';
            v_merged := '{}'::jsonb;
            v_overridden := '{}'::jsonb;
            v_importance := NULL;
            v_accesses := 0;
            v_last_access := NULL;
            FOR r IN
                SELECT id, context_key, context_value, importance_score, access_count, last_accessed_at
                  FROM conversation_memory
                 WHERE session_id = p_session_id
                   AND user_id IS NOT DISTINCT FROM v_owner.user_id
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
                v_last_access := greatest(v_last_access, r.last_accessed_at);
            END LOOP;

            -- another transaction changed the owner's memories since they were listed
            CONTINUE WHEN cardinality(v_ids) = 0;

            INSERT INTO conversation_memory (id, session_id, user_id, memory_type, context_key, context_value,
                                             importance_score, access_count, last_accessed_at, created_at,
                                             expires_at)
            VALUES (v_new_id, p_session_id, v_owner.user_id, 'long_term', 'consolidated:' || v_new_id,
                    v_merged,
                    coalesce(v_importance, 0.5), least(v_accesses, 2147483647)::integer,
                    coalesce(v_last_access, now()), now(),
                    now() + coalesce(memory_retention('long_term'), interval '90 days'));
            INSERT INTO memory_consolidation_log (session_id, consolidation_type, old_memory_ids,
                                                  new_memory_id, consolidation_reason, details)
            VALUES (p_session_id, 'merge', v_ids, v_new_id,
                    'merged ' || cardinality(v_ids) || ' short_term memories older than ' || v_min_age::text,
                    jsonb_build_object('overridden', v_overridden, 'source_keys', to_jsonb(v_keys)));
            DELETE FROM conversation_memory WHERE id = ANY (v_ids);
            RETURN NEXT v_new_id;
        END LOOP;
        RETURN;
    END
    $fn$
    """,
    """
    CREATE FUNCTION consolidate_session_memories(p_session_id text) RETURNS SETOF uuid
    LANGUAGE sql AS $fn$
        SELECT consolidate_session_memories(p_session_id, NULL::interval)
    $fn$
    """,
)


def _single_merge() -> tuple[str, ...]:
    """Revision 0002's definitions, as that revision creates them: one merged memory per session."""
    return tuple(load_revision("0002_memory_system.py").CONSOLIDATE_SESSION_MEMORIES)


def upgrade() -> None:
    for statement in (*_DROP, *PER_USER):
        op.execute(statement)


def downgrade() -> None:
    for statement in (*_DROP, *_single_merge()):
        op.execute(statement)
