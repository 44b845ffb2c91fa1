"""Every SQL example of the schema document that uses only this schema runs on a migrated database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

QUERIES = Path(__file__).parent / "document_queries.sql"
BUSINESS = "11111111-1111-1111-1111-000000000001"  # Trattoria Roma in tests/app_database.sql
USER = "aaaaaaaa-aaaa-aaaa-aaaa-000000000001"  # its owner (businesses.user_id)
VECTOR = "[" + ",".join(["0.05"] * 384) + "]"


def blocks() -> list[tuple[str, list[str]]]:
    """(name, statements) per ``-- name:`` block; comment lines dropped, statements split at ``;``."""
    result: list[tuple[str, list[str]]] = []
    for chunk in re.split(r"^-- name: ", QUERIES.read_text(encoding="utf-8"), flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        code = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
        statements = [s.strip() for s in code.split(";") if s.strip()]
        result.append((name.strip(), statements))
    return result


def fill(statement: str) -> str:
    return (
        statement.replace("'user-uuid-here'", f"'{USER}'")
        .replace("'uuid-here'", f"'{BUSINESS}'")
        .replace("'[0.1,0.2,...]'", f"'{VECTOR}'")
    )


SEED = f"""
INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value,
                                 importance_score, access_count, created_at, last_accessed_at, expires_at)
VALUES
 ('user_session_123', '{USER}', 'short_term', 'food_preference', '{{"food_preference": "italian"}}', 0.8, 3,
  now() - interval '8 days', now() - interval '1 day', now() + interval '1 day'),
 ('user_session_123', '{USER}', 'short_term', 'party_size', '4', 0.6, 1,
  now() - interval '9 days', now() - interval '2 days', now() + interval '1 day'),
 ('user_session_123', '{USER}', 'long_term', 'allergy', '{{"allergy": "nuts"}}', 0.2, 12,
  now() - interval '40 days', now() - interval '3 days', now() + interval '30 days'),
 ('session-123', '{USER}', 'short_term', 'greeting', '"hello"', 0.4, 0,
  now() - interval '1 hour', now(), NULL),
 ('session-old', NULL, 'short_term', 'expired', '{{"x": 1}}', 0.1, 0,
  now() - interval '20 days', now() - interval '20 days', now() - interval '1 day');
INSERT INTO semantic_memory (session_id, user_id, content_type, content_text, embedding_vector,
                             relevance_score) VALUES
 ('session-123', '{USER}', 'business_info', 'Wood-fired pizza and fresh pasta', '{VECTOR}', 0.9),
 ('user_session_123', '{USER}', 'conversation', 'Guest prefers Italian food', '{VECTOR}', 0.7);
INSERT INTO business_context_sections (business_id, section_type, section_name, section_content)
VALUES ('{BUSINESS}', 'overview', 'About', '{{"rating": "4.7"}}'),
       ('{BUSINESS}', 'menu', 'Pizza', '{{"items": ["Margherita"]}}');
INSERT INTO context_relevance (session_id, context_type, context_key, relevance_score, last_calculated)
VALUES ('session-123', 'preference', 'food', 0.9, now() - interval '2 days'),
       ('user_session_123', 'preference', 'food', 0.8, now());
INSERT INTO user_context_profiles (user_id, preferences)
VALUES ('{USER}', '{{"cuisine": "italian", "seating": "outside"}}');
"""


def seeded(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SEED)
    return dsn


@pytest.fixture(scope="module")
def shared_memory_db(pg_server: str, db_templates: dict[str, str]) -> Iterator[str]:
    """One migrated application database with memories for all blocks (they only need to run)."""
    from conftest import Databases, _template

    dbs = Databases(pg_server)
    yield seeded(dbs.create(template=_template(pg_server, db_templates, "migrated_app")))
    dbs.drop_all()


def test_the_document_queries_file_is_complete() -> None:
    names = [name for name, _ in blocks()]
    assert len(names) == len(set(names)) >= 29
    for expected in (
        "Get Recent Conversation Memory",
        "Health Checks",
        "Semantic Search with Similarity Threshold",
        "Weekly Memory Optimization",
        "Memory Cleanup Job (Daily)",
    ):
        assert expected in names


@pytest.mark.parametrize(("name", "statements"), blocks(), ids=[name for name, _ in blocks()])
def test_document_query_runs(shared_memory_db: str, name: str, statements: list[str]) -> None:
    with psycopg.connect(shared_memory_db, autocommit=True) as conn:
        for statement in statements:
            conn.execute(fill(statement))


def test_document_queries_return_the_rows_they_describe(migrated_app_db: str) -> None:
    with psycopg.connect(seeded(migrated_app_db), autocommit=True) as conn:
        recent = conn.execute(fill(dict(blocks())["Get Recent Conversation Memory"][0])).fetchall()
        assert len(recent) == 2
        sections = conn.execute(fill(dict(blocks())["Get Business Context Sections"][0])).fetchall()
        assert len(sections) == 2
        similar = conn.execute(
            fill(dict(blocks())["Semantic Search with Similarity Threshold"][0])
        ).fetchall()
        assert len(similar) == 1  # identical vectors: similarity 1
        overview = conn.execute(fill(dict(blocks())["Active Businesses with Memory Stats"][0])).fetchall()
        assert [row[1] for row in overview] == ["Trattoria Roma"]
        assert conn.execute("SELECT cleanup_expired_memory()").fetchone() == (1,)
        merged = conn.execute(fill(dict(blocks())["Memory Consolidation Job (Weekly)"][0])).fetchall()
        assert len(merged) == 1 and merged[0][0] is not None
