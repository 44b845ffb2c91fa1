"""Consolidation never merges memories of different users, in the job and in the SQL function alike.

Apps share session ids between users. Each memory here carries its owner in its content, so a merged
memory that holds content of two owners (or an owner's content under another user id) is caught.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from memcli import migrations
from memcli.jobs.consolidate import merge_sessions
from memcli.schema import names

USER_A = "aaaaaaaa-0000-4000-8000-000000000001"
USER_B = "bbbbbbbb-0000-4000-8000-000000000002"
USER_C = "cccccccc-0000-4000-8000-000000000003"
NOBODY = "nobody"  # the owner tag of memories without a user


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def add(conn: psycopg.Connection, session: str, user: str | None, key: str, age: str = "10 days") -> str:
    """An old short-term memory whose content names its owner."""
    row = conn.execute(
        """
        INSERT INTO conversation_memory
            (session_id, user_id, memory_type, context_key, context_value, created_at, expires_at)
        VALUES (%s, %s, 'short_term', %s, %s, now() - %s::interval, now() + interval '30 days')
        RETURNING id
        """,
        (session, user, key, Jsonb({key: user or NOBODY}), age),
    ).fetchone()
    assert row is not None
    return str(row[0])


def long_term(conn: psycopg.Connection) -> list[tuple[str, str | None, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT session_id, user_id::text, context_value FROM conversation_memory "
        "WHERE memory_type = 'long_term' ORDER BY session_id, user_id NULLS FIRST"
    ).fetchall()
    return [(s, u, v) for s, u, v in rows]


def assert_one_owner_each(conn: psycopg.Connection) -> None:
    for session, user, value in long_term(conn):
        owners = set(value.values())
        assert owners == {user or NOBODY}, (session, user, value)


def test_sql_function_merges_each_owner_apart(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        a = [add(conn, "shared", USER_A, "a1"), add(conn, "shared", USER_A, "a2", age="9 days")]
        b = [add(conn, "shared", USER_B, "b1")]
        n = [add(conn, "shared", None, "n1")]
        new = [r[0] for r in conn.execute("SELECT consolidate_session_memories('shared')").fetchall()]
        assert len(new) == 3
        assert long_term(conn) == [
            ("shared", None, {"n1": NOBODY}),
            ("shared", USER_A, {"a1": USER_A, "a2": USER_A}),
            ("shared", USER_B, {"b1": USER_B}),
        ]
        logged = conn.execute(
            "SELECT old_memory_ids::text[] FROM memory_consolidation_log "
            "WHERE new_memory_id = ANY(%s) ORDER BY cardinality(old_memory_ids), old_memory_ids::text",
            (new,),
        ).fetchall()
        assert sorted(sorted(ids) for (ids,) in logged) == sorted([sorted(a), b, n])
        # nothing old is left: no row, not a NULL
        assert conn.execute("SELECT consolidate_session_memories('shared')").fetchall() == []


def test_the_job_merges_each_owner_apart(migrated_db: str, cli: Any) -> None:
    with connect(migrated_db) as conn:
        add(conn, "shared", USER_A, "a1")
        add(conn, "shared", USER_B, "b1")
        add(conn, "shared", USER_B, "b2")
        add(conn, "alone", USER_C, "c1")
    result = cli("consolidate", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    with connect(migrated_db) as conn:
        assert long_term(conn) == [
            ("alone", USER_C, {"c1": USER_C}),
            ("shared", USER_A, {"a1": USER_A}),
            ("shared", USER_B, {"b1": USER_B, "b2": USER_B}),
        ]
        assert conn.execute("SELECT count(*) FROM conversation_memory").fetchone() == (3,)


@pytest.fixture
def app_role(pg_server: str, migrated_db: str) -> Iterator[str]:
    """A non-owner role like an application's, granted what an application has."""
    name = f"app_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier(name)
    with connect(pg_server) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    with connect(migrated_db) as conn:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(ident)
        )
    yield name
    with connect(migrated_db) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    with connect(pg_server) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def as_user(conn: psycopg.Connection, role: str, user: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("SET memcli.user_id = {}").format(sql.Literal(user)))


def test_each_user_consolidates_only_their_own_under_rls(migrated_db: str, app_role: str) -> None:
    with connect(migrated_db) as conn:
        add(conn, "shared", USER_A, "a1")
        add(conn, "shared", USER_B, "b1")
        add(conn, "shared", None, "n1")
    with connect(migrated_db) as conn:
        as_user(conn, app_role, USER_A)
        assert len(conn.execute("SELECT consolidate_session_memories('shared')").fetchall()) == 1
        assert long_term(conn) == [("shared", USER_A, {"a1": USER_A})]
    with connect(migrated_db) as conn:
        as_user(conn, app_role, USER_B)
        assert len(conn.execute("SELECT consolidate_session_memories('shared')").fetchall()) == 1
        assert long_term(conn) == [("shared", USER_B, {"b1": USER_B})]
    with connect(migrated_db) as conn:  # the owner sees all: the memory without a user is untouched
        assert conn.execute(
            "SELECT context_key FROM conversation_memory WHERE memory_type = 'short_term'"
        ).fetchall() == [("n1",)]
        assert_one_owner_each(conn)


def test_after_the_job_each_user_reads_only_their_own_content(
    migrated_db: str, app_role: str, cli: Any
) -> None:
    with connect(migrated_db) as conn:
        add(conn, "shared", USER_A, "a1")
        add(conn, "shared", USER_B, "b1")
    assert cli("consolidate", dsn=migrated_db).exit_code == 0
    for user, key in ((USER_A, "a1"), (USER_B, "b1")):
        with connect(migrated_db) as conn:
            as_user(conn, app_role, user)
            assert long_term(conn) == [("shared", user, {key: user})]


owners = st.sampled_from([USER_A, USER_B, USER_C, None])
memories = st.lists(
    st.tuples(st.sampled_from(["s1", "s2", "s3"]), owners, st.integers(min_value=6, max_value=20)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mix=memories)
def test_no_merged_memory_ever_holds_two_owners_content(migrated_db: str, mix: list[Any]) -> None:
    with connect(migrated_db) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(
                    sql.Identifier(t) for t in (names.CONVERSATION_MEMORY, names.CONSOLIDATION_LOG)
                )
            )
        )
        keys = {}
        for n, (session, user, days) in enumerate(mix):
            key = f"k{n}"
            add(conn, session, user, key, age=f"{days} days")
            keys[key] = (session, user)
        result = merge_sessions(conn)
        assert result.memories_merged == len(mix)
        assert result.sessions == len({s for s, _, _ in mix})
        merged = long_term(conn)
        assert len(merged) == len({(s, u) for s, u, _ in mix}) == len(result.new_memory_ids)
        seen: list[str] = []
        for session, user, value in merged:
            assert set(value.values()) == {user or NOBODY}  # one owner's content, under that owner
            for key in value:
                assert keys[key] == (session, user)
            seen.extend(value)
        assert sorted(seen) == sorted(keys)  # every memory's content kept, exactly once


def test_downgrade_restores_the_single_merge_function(migrated_db: str) -> None:
    def result_type(conn: psycopg.Connection) -> str:
        row = conn.execute(
            "SELECT pg_get_function_result('consolidate_session_memories(text, interval)'::regprocedure)"
        ).fetchone()
        assert row is not None
        return str(row[0])

    migrations.downgrade(migrated_db, "0003_operations_security")
    with connect(migrated_db) as conn:
        assert result_type(conn) == "uuid"
        add(conn, "shared", USER_A, "a1")
        add(conn, "shared", USER_B, "b1")
        assert len(conn.execute("SELECT consolidate_session_memories('shared')").fetchall()) == 1
    migrations.upgrade(migrated_db)
    with connect(migrated_db) as conn:
        assert result_type(conn) == "SETOF uuid"
