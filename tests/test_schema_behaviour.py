"""What the migrated schema does: access tracking, expiry by tier, CHECKs, the SQL functions, views, RLS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

from memcli import migrations
from memcli.schema import names

USER_A = "aaaaaaaa-aaaa-aaaa-aaaa-000000000001"  # owner of Trattoria Roma in tests/app_database.sql
USER_B = "aaaaaaaa-aaaa-aaaa-aaaa-000000000002"  # owner of Green Leaf Cafe
ROMA = "11111111-1111-1111-1111-000000000001"
LEAF = "11111111-1111-1111-1111-000000000002"


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def insert_memory(conn: psycopg.Connection, session: str, key: str, **columns: object) -> uuid.UUID:
    values = {"session_id": session, "context_key": key, "memory_type": "short_term", **columns}
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"INSERT INTO conversation_memory ({names}) VALUES ({marks}) RETURNING id", list(values.values())
    ).fetchone()
    assert row is not None
    return row[0]


# --- access tracking ---------------------------------------------------------------------------------


def test_an_application_update_counts_one_access_and_does_not_recurse(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        ids = [
            insert_memory(conn, "s1", f"k{i}", context_value=psycopg.types.json.Jsonb({"i": i}))
            for i in range(50)
        ]
        with conn.transaction():
            conn.execute("SET LOCAL memcli.maintenance = 'on'")
            conn.execute("UPDATE conversation_memory SET last_accessed_at = now() - interval '1 day'")
        updated = conn.execute(
            "UPDATE conversation_memory SET importance_score = 0.9 "
            "RETURNING access_count, last_accessed_at > now() - interval '1 minute'"
        ).fetchall()
        assert len(updated) == len(ids)
        assert set(updated) == {(1, True)}


def test_an_update_that_sets_access_count_itself_is_not_counted_twice(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        memory = insert_memory(conn, "s1", "k")
        conn.execute(
            "UPDATE conversation_memory SET access_count = access_count + 5, last_accessed_at = now() "
            "WHERE id = %s",
            (memory,),
        )
        assert conn.execute(
            "SELECT access_count FROM conversation_memory WHERE id = %s", (memory,)
        ).fetchone() == (5,)


def test_maintenance_updates_are_not_accesses(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        memory = insert_memory(conn, "s1", "k", memory_type="long_term")
        before = conn.execute(
            "SELECT last_accessed_at FROM conversation_memory WHERE id = %s", (memory,)
        ).fetchone()
        with conn.transaction():
            conn.execute("SET LOCAL memcli.maintenance = 'on'")
            conn.execute("UPDATE conversation_memory SET memory_type = 'archived' WHERE id = %s", (memory,))
        row = conn.execute(
            "SELECT access_count, last_accessed_at, memory_type FROM conversation_memory WHERE id = %s",
            (memory,),
        ).fetchone()
        assert row == (0, before[0], "archived")  # type: ignore[index]
        # SET LOCAL ended with its transaction: the next application update counts again
        conn.execute("UPDATE conversation_memory SET importance_score = 0.1 WHERE id = %s", (memory,))
        assert conn.execute(
            "SELECT access_count FROM conversation_memory WHERE id = %s", (memory,)
        ).fetchone() == (1,)


# --- expiry by tier ----------------------------------------------------------------------------------


def test_expiry_defaults_to_the_tiers_retention_from_settings(migrated_db: str) -> None:
    with connect(migrated_db) as conn:

        def lifetime(tier: str, **extra: object) -> timedelta | None:
            memory = insert_memory(conn, "s", f"{tier}-{uuid.uuid4()}", memory_type=tier, **extra)
            row = conn.execute(
                "SELECT expires_at - created_at FROM conversation_memory WHERE id = %s", (memory,)
            ).fetchone()
            return row[0]  # type: ignore[index]

        assert lifetime("short_term") == timedelta(days=7)
        assert lifetime("long_term") == timedelta(days=90)
        assert lifetime("archived") == timedelta(days=365)
        assert lifetime("semantic") is None  # no retention for this tier: never expires
        conn.execute("UPDATE memory_settings SET value = '2.5' WHERE key = 'retention.short_term_days'")
        assert lifetime("short_term") == timedelta(days=2, hours=12)
        memory = insert_memory(
            conn, "s", "given", expires_at="2030-01-01T00:00:00+00", created_at="2029-01-01T00:00:00+00"
        )
        row = conn.execute("SELECT expires_at::date::text FROM conversation_memory WHERE id = %s", (memory,))
        assert row.fetchone() == ("2030-01-01",)
        conn.execute("DELETE FROM memory_settings WHERE key = 'retention.long_term_days'")
        assert lifetime("long_term") == timedelta(days=90)  # the documented default when the setting is gone


# --- constraints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO conversation_memory (session_id, memory_type, context_key) VALUES ('s', 'forever', 'k')",
        "INSERT INTO conversation_memory (session_id, memory_type, context_key, importance_score) "
        "VALUES ('s', 'short_term', 'k', 1.5)",
        "INSERT INTO conversation_memory (session_id, memory_type, context_key, access_count) "
        "VALUES ('s', 'short_term', 'k', -1)",
        "INSERT INTO semantic_memory (session_id, content_type, content_text) VALUES ('s', 'gossip', 't')",
        "INSERT INTO semantic_memory (session_id, content_type, content_text, relevance_score) "
        "VALUES ('s', 'conversation', 't', -0.1)",
        f"INSERT INTO business_context_sections (business_id, section_type, section_name) "
        f"VALUES ('{ROMA}', 'gossip', 'x')",
        "INSERT INTO memory_consolidation_log (session_id, consolidation_type) VALUES ('s', 'shred')",
        "INSERT INTO context_relevance (session_id, context_type, context_key, decay_factor) "
        "VALUES ('s', 't', 'k', 1.2)",
        "INSERT INTO system_maintenance_log (maintenance_type, status) VALUES ('daily', 'completed')",
    ],
)
def test_check_constraints_reject_values_outside_the_documented_sets(
    migrated_app_db: str, statement: str
) -> None:
    with connect(migrated_app_db) as conn, pytest.raises(errors.CheckViolation):
        conn.execute(statement)


def test_unique_keys_of_the_document(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        insert_memory(conn, "s", "k")
        with pytest.raises(errors.UniqueViolation):
            insert_memory(conn, "s", "k")


# --- SQL functions -----------------------------------------------------------------------------------


def test_consolidate_session_memories_merges_old_short_term_memories(migrated_db: str) -> None:
    jsonb = psycopg.types.json.Jsonb
    # past the 5-day consolidation threshold, within the 7-day short_term retention (not yet expired)
    old = datetime.now(UTC) - timedelta(days=6)
    with connect(migrated_db) as conn:
        first = insert_memory(
            conn,
            "s",
            "prefs",
            context_value=jsonb({"food": "pizza", "seat": "window"}),
            importance_score=0.4,
            access_count=2,
            created_at=old,
        )
        second = insert_memory(
            conn,
            "s",
            "prefs2",
            context_value=jsonb({"food": "pasta", "drink": "water"}),
            importance_score=0.8,
            access_count=3,
            created_at=old + timedelta(minutes=1),
        )
        third = insert_memory(
            conn,
            "s",
            "party_size",
            context_value=jsonb(4),
            importance_score=0.1,
            created_at=old + timedelta(minutes=2),
        )
        recent = insert_memory(conn, "s", "recent", context_value=jsonb({"x": 1}))
        long_term = insert_memory(conn, "s", "lt", memory_type="long_term", created_at=old)
        other = insert_memory(conn, "other", "k", created_at=old)

        new_id = conn.execute("SELECT consolidate_session_memories('s')").fetchone()[0]  # type: ignore[index]
        assert new_id is not None
        merged = conn.execute(
            "SELECT session_id, memory_type, context_key, context_value, importance_score, access_count, "
            "expires_at - now() FROM conversation_memory WHERE id = %s",
            (new_id,),
        ).fetchone()
        assert merged is not None
        assert merged[:4] == (
            "s",
            "long_term",
            f"consolidated:{new_id}",
            {"food": "pasta", "seat": "window", "drink": "water", "party_size": 4},
        )
        assert merged[4] == pytest.approx(0.8) and merged[5] == 5
        assert timedelta(days=89) < merged[6] <= timedelta(days=90)
        log = conn.execute(
            "SELECT consolidation_type, old_memory_ids, consolidation_reason, details "
            "FROM memory_consolidation_log WHERE new_memory_id = %s",
            (new_id,),
        ).fetchone()
        assert log is not None
        assert log[0] == "merge" and log[1] == [first, second, third] and "3 short_term" in log[2]
        assert log[3] == {"overridden": {"food": ["pizza"]}, "source_keys": ["prefs", "prefs2", "party_size"]}
        left = {r[0] for r in conn.execute("SELECT id FROM conversation_memory")}
        assert left == {new_id, recent, long_term, other}
        # nothing old is left; an explicit threshold of zero reaches the recent one
        assert conn.execute("SELECT consolidate_session_memories('s')").fetchall() == []
        again = conn.execute("SELECT consolidate_session_memories('s', interval '0')").fetchone()
        assert again is not None and again[0] is not None


def test_cleanup_expired_memory_deletes_expired_rows_and_orphaned_relevance(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        insert_memory(conn, "gone", "a", expires_at="2000-01-01")
        insert_memory(conn, "gone", "b", expires_at="2000-01-01")
        insert_memory(conn, "kept", "c")
        conn.execute(
            "INSERT INTO semantic_memory (session_id, content_type, content_text) "
            "VALUES ('semantic-only', 'conversation', 't')"
        )
        for session in ("gone", "kept", "semantic-only"):
            conn.execute(
                "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES (%s, 't', 'k')",
                (session,),
            )
        assert conn.execute("SELECT cleanup_expired_memory()").fetchone() == (2,)
        assert {r[0] for r in conn.execute("SELECT session_id FROM context_relevance")} == {
            "kept",
            "semantic-only",
        }
        assert conn.execute("SELECT cleanup_expired_memory()").fetchone() == (0,)


# --- views, indexes, extensions ----------------------------------------------------------------------


def test_views_follow_the_document(migrated_app_db: str) -> None:
    with connect(migrated_app_db) as conn:
        for business in (ROMA, LEAF, "11111111-1111-1111-1111-000000000003"):
            conn.execute(
                "INSERT INTO business_context_sections "
                "(business_id, section_type, section_name, section_order) "
                "VALUES (%s, 'overview', 'About', 1), (%s, 'hours', 'Hours', 2)",
                (business, business),
            )
        active = conn.execute(
            "SELECT DISTINCT business_name, business_category FROM active_business_context"
        ).fetchall()
        assert sorted(active) == [
            ("Green Leaf Cafe", "cafe"),
            ("Trattoria Roma", "restaurant"),
        ]  # not the inactive one
        conn.execute(
            "INSERT INTO semantic_memory (session_id, user_id, content_type, content_text) "
            "VALUES ('s', %s, 'conversation', 'x')",
            (USER_A,),
        )
        overview = conn.execute(
            "SELECT business_name, context_sections, semantic_memories FROM business_memory_overview "
            "WHERE business_id = %s",
            (ROMA,),
        ).fetchone()
        assert overview == ("Trattoria Roma", 2, 1)
        insert_memory(conn, "s", "a", access_count=2)
        insert_memory(conn, "s", "b", access_count=3)
        summary = conn.execute(
            "SELECT memory_count, total_accesses FROM session_memory_summary WHERE session_id = 's'"
        )
        assert summary.fetchone() == (2, 5)


def test_vector_index_is_hnsw_and_no_document_mistakes_ship(
    migrated_db: str, partitioned_layout: bool
) -> None:
    with connect(migrated_db) as conn:
        indexdef = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_semantic_memory_vector'"
        ).fetchone()
        assert indexdef is not None and "USING hnsw (embedding_vector vector_cosine_ops)" in indexdef[0]
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert "vector" in extensions and "uuid-ossp" not in extensions
        triggers = {
            r[0]
            for r in conn.execute(
                "SELECT tgname FROM pg_trigger "
                "WHERE tgrelid = 'conversation_memory'::regclass AND NOT tgisinternal"
            )
        }
        # the partitioned layout keeps (session_id, context_key) unique with a trigger of its own
        layout = (
            {"trigger_memory_unique_key", "trigger_memory_unique_key_release"}
            if partitioned_layout
            else set()
        )
        assert triggers == {"trigger_memory_access", "trigger_memory_expiry"} | layout
        assert conn.execute("SELECT to_regproc('encrypt_memory_content')").fetchone() == (None,)
        rls = dict(
            conn.execute(
                "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s)",
                (list(names.REQUIRED_TABLES),),
            ).fetchall()
        )
        assert len(rls) == len(names.REQUIRED_TABLES) and all(rls.values())


def test_semantic_memory_has_full_text_search(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        conn.execute(
            "INSERT INTO semantic_memory (session_id, content_type, content_text) VALUES "
            "('s', 'conversation', 'The guests loved the vegetarian lasagna')"
        )
        hit = conn.execute(
            "SELECT count(*) FROM semantic_memory WHERE content_tsv @@ plainto_tsquery('english', 'lasagnas')"
        )
        assert hit.fetchone() == (1,)


def test_views_adapt_to_a_businesses_table_without_optional_columns(empty_db: str) -> None:
    with connect(empty_db) as conn:
        conn.execute(
            "CREATE TABLE businesses (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL)"
        )
        conn.execute(f"INSERT INTO businesses (id, name) VALUES ('{ROMA}', 'Minimal')")
    migrations.upgrade(empty_db)
    with connect(empty_db) as conn:
        conn.execute(
            "INSERT INTO business_context_sections (business_id, section_type, section_name) "
            f"VALUES ('{ROMA}', 'overview', 'About')"
        )
        assert conn.execute(
            "SELECT business_name, business_category FROM active_business_context"
        ).fetchall() == [("Minimal", None)]
        assert conn.execute(
            "SELECT context_sections, semantic_memories FROM business_memory_overview"
        ).fetchall() == [(1, 0)]
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'businesses' ORDER BY ordinal_position"
            )
        ]
        assert columns == ["id", "name"]  # adopted, not altered


def test_a_businesses_table_without_name_stops_the_migration_with_a_reason(empty_db: str) -> None:
    with connect(empty_db) as conn:
        conn.execute("CREATE TABLE businesses (id uuid PRIMARY KEY)")
    with pytest.raises(migrations.MigrationError, match="businesses has no id or no name column") as info:
        migrations.upgrade(empty_db)
    assert "0002_memory_system" in str(info.value)
    assert migrations.status(empty_db).current == "0001_core_tables"


# --- row-level security ------------------------------------------------------------------------------


@pytest.fixture
def app_role(pg_server: str) -> Iterator[tuple[str, list[str]]]:
    """A non-owner role like an application's (name, databases it was granted in)."""
    name = f"app_{uuid.uuid4().hex[:10]}"
    granted: list[str] = []
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} NOLOGIN").format(psycopg.sql.Identifier(name)))
    yield name, granted
    for dsn in granted:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(name)))
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


def grant(dsn: str, role: tuple[str, list[str]]) -> None:
    name, granted = role
    ident = psycopg.sql.Identifier(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        conn.execute(
            psycopg.sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
            ).format(ident)
        )
    granted.append(dsn)


def visible(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def seed_two_users(dsn: str) -> None:
    with connect(dsn) as conn:
        insert_memory(conn, "session-a", "k", user_id=USER_A)
        insert_memory(conn, USER_A, "by-session")  # a session named by the user's id
        insert_memory(conn, "session-b", "k", user_id=USER_B)
        conn.execute("INSERT INTO user_context_profiles (user_id) VALUES (%s), (%s)", (USER_A, USER_B))
        conn.execute(
            "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES "
            "('session-a', 't', 'k'), ('session-b', 't', 'k')"
        )
        for business in (ROMA, LEAF):
            conn.execute(
                "INSERT INTO business_context_sections (business_id, section_type, section_name) "
                "VALUES (%s, 'overview', 'About')",
                (business,),
            )


def test_rls_on_plain_postgres_uses_the_memcli_user_id_setting(
    migrated_app_db: str, app_role: tuple[str, list[str]]
) -> None:
    grant(migrated_app_db, app_role)
    seed_two_users(migrated_app_db)
    with connect(migrated_app_db) as conn:
        assert visible(conn, "conversation_memory") == 3  # the owner is not subject to the policies
        conn.execute("UPDATE memory_settings SET value = '3' WHERE key = 'retention.short_term_days'")
        conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(app_role[0])))
        assert visible(conn, "conversation_memory") == 0  # no user named: nothing
        conn.execute("SET memcli.user_id = %s", (USER_A,)) if False else conn.execute(
            f"SET memcli.user_id = '{USER_A}'"
        )
        assert visible(conn, "conversation_memory") == 2
        assert visible(conn, "user_context_profiles") == 1
        assert visible(conn, "context_relevance") == 1
        assert visible(conn, "memory_settings") == 0  # operating tables: owner only
        sections = conn.execute("SELECT business_id::text FROM business_context_sections").fetchall()
        assert sections == [(ROMA,)]
        # writes are checked too, and the tier's retention still comes from the operator's settings
        memory = insert_memory(conn, "session-a", "new", user_id=USER_A)
        lifetime = conn.execute(
            "SELECT expires_at - created_at FROM conversation_memory WHERE id = %s", (memory,)
        )
        assert lifetime.fetchone() == (timedelta(days=3),)
        with pytest.raises(errors.InsufficientPrivilege):
            insert_memory(conn, "session-b", "intrusion", user_id=USER_B)
        conn.execute(f"SET memcli.user_id = '{USER_B}'")
        assert visible(conn, "conversation_memory") == 1


def test_rls_uses_supabase_auth_uid_when_an_auth_schema_exists(
    empty_db: str, app_role: tuple[str, list[str]]
) -> None:
    with connect(empty_db) as conn:
        conn.execute("CREATE SCHEMA auth")
        conn.execute(
            "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS "
            "$$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$"
        )
        conn.execute("CREATE TABLE businesses (id uuid PRIMARY KEY, name text NOT NULL, user_id uuid)")
        conn.execute(
            "INSERT INTO businesses VALUES (%s, 'Roma', %s), (%s, 'Leaf', %s)", (ROMA, USER_A, LEAF, USER_B)
        )
    migrations.upgrade(empty_db)
    grant(empty_db, app_role)
    with connect(empty_db) as conn:
        conn.execute(
            psycopg.sql.SQL("GRANT USAGE ON SCHEMA auth TO {}").format(psycopg.sql.Identifier(app_role[0]))
        )
        policy = conn.execute(
            "SELECT qual FROM pg_policies WHERE tablename = 'conversation_memory'"
        ).fetchone()
        assert policy is not None and "auth.uid()" in policy[0]
    seed_two_users(empty_db)
    with connect(empty_db) as conn:
        conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(app_role[0])))
        conn.execute(f"SET memcli.user_id = '{USER_A}'")
        assert (
            visible(conn, "conversation_memory") == 0
        )  # on Supabase the JWT names the user, not the setting
        conn.execute(f"SET request.jwt.claim.sub = '{USER_B}'")
        assert visible(conn, "conversation_memory") == 1
        assert conn.execute("SELECT business_id::text FROM business_context_sections").fetchall() == [(LEAF,)]
