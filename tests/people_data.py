"""Rows about people for the tests of memcli.people: memories, relevance, lineage and profiles."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

ALICE = uuid.UUID("a11ce000-0000-4000-8000-000000000001")
BOB = uuid.UUID("b0b00000-0000-4000-8000-000000000002")


def conversation(
    conn: psycopg.Connection,
    session: str,
    key: str,
    *,
    user: uuid.UUID | None = None,
    tier: str = "short_term",
    value: Any = None,
    age_days: float = 0.0,
    expired: bool = False,
    importance: float = 0.5,
) -> uuid.UUID:
    row = conn.execute(
        """
        INSERT INTO conversation_memory
            (session_id, user_id, memory_type, context_key, context_value, importance_score, created_at,
             last_accessed_at, expires_at)
        VALUES (%s, %s, %s, %s, %s::jsonb, %s, now() - %s * interval '1 day', now() - %s * interval '1 day',
                CASE WHEN %s THEN now() - interval '1 hour' ELSE now() + interval '30 days' END)
        RETURNING id
        """,
        (
            session,
            user,
            tier,
            key,
            json.dumps(value if value is not None else {key: f"value of {key}"}),
            importance,
            age_days,
            age_days,
            expired,
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def semantic(
    conn: psycopg.Connection,
    session: str,
    text: str,
    *,
    user: uuid.UUID | None = None,
    content_type: str = "conversation",
    age_days: float = 0.0,
) -> uuid.UUID:
    row = conn.execute(
        """
        INSERT INTO semantic_memory (session_id, user_id, content_type, content_text, created_at)
        VALUES (%s, %s, %s, %s, now() - %s * interval '1 day') RETURNING id
        """,
        (session, user, content_type, text, age_days),
    ).fetchone()
    assert row is not None
    return row[0]


def relevance(conn: psycopg.Connection, session: str, key: str, score: float = 0.5) -> None:
    conn.execute(
        "INSERT INTO context_relevance (session_id, context_type, context_key, relevance_score) "
        "VALUES (%s, 'conversation', %s, %s)",
        (session, key, score),
    )


def profile(conn: psycopg.Connection, user: uuid.UUID, data: Any = None) -> None:
    conn.execute(
        "INSERT INTO user_context_profiles (user_id, profile_data, preferences) VALUES (%s, %s, %s)",
        (user, json.dumps(data or {"name": "someone"}), json.dumps({"food": "italian"})),
    )


def people(dsn: str) -> dict[str, Any]:
    """Alice (two sessions, a profile, relevance, a merge in her lineage), Bob (one session), an anonymous
    session, and an anonymous memory inside Alice's session (merged on its own)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ids: dict[str, Any] = {}
        ids["a1"] = conversation(conn, "alice-1", "food", user=ALICE, age_days=10)
        ids["a2"] = conversation(conn, "alice-1", "seat", user=ALICE, age_days=9, value="window")
        ids["a3"] = conversation(conn, "alice-2", "allergy", user=ALICE, tier="long_term", age_days=1)
        ids["a_anon"] = conversation(conn, "alice-1", "greeting", user=None, age_days=9)
        ids["a_sem"] = semantic(conn, "alice-2", "Alice prefers Italian food", user=ALICE)
        relevance(conn, "alice-1", "food")
        relevance(conn, "alice-2", "allergy")
        profile(conn, ALICE)
        # one merged memory per owner: Alice's, and one of the anonymous greeting
        conn.execute("SELECT consolidate_session_memories('alice-1')").fetchall()
        merged = (
            "SELECT id FROM conversation_memory "
            "WHERE session_id = 'alice-1' AND user_id IS NOT DISTINCT FROM %s"
        )
        ids["merged"] = conn.execute(merged, (ALICE,)).fetchone()[0]  # type: ignore[index]
        ids["merged_anon"] = conn.execute(merged, (None,)).fetchone()[0]  # type: ignore[index]
        ids["b1"] = conversation(conn, "bob-1", "food", user=BOB, expired=True)
        ids["b_sem"] = semantic(conn, "bob-1", "Bob is vegetarian", user=BOB, content_type="user_preference")
        relevance(conn, "bob-1", "food")
        profile(conn, BOB)
        ids["anon"] = conversation(conn, "anon-1", "topic", user=None)
        return ids


def count(dsn: str, query: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0
