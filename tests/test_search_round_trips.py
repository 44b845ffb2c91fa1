"""A search's round trips to the server: under load each one waits for a CPU, so their number is its latency.

Counted from libpq's protocol trace (every round trip ends with a Sync the client sends and waits on).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from typing import Any

import psycopg
import pytest

from memcli import search
from memcli.embeddings import ensure_compatible
from memcli.embeddings.hashing import HashingEmbedder
from memcli.errors import NotReadyError
from memcli.semantic import use_vectors

HASHING = HashingEmbedder(384)


def _syncs(conn: psycopg.Connection, action: Any) -> tuple[Any, int]:
    with tempfile.TemporaryFile("w+b") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            result = action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode(errors="replace").splitlines()
    # Each time the client stops sending and the server answers is one round trip.
    directions = [line.split("\t")[1] for line in lines if line.count("\t") >= 2]
    turns = sum(1 for a, b in itertools.pairwise(directions) if a == "F" and b == "B")
    return result, turns


@pytest.fixture
def conn(migrated_db: str) -> Any:
    with psycopg.connect(migrated_db) as conn:
        ensure_compatible(conn, HASHING)
        use_vectors(conn)
        for text in ("pasta with basil", "parking behind the building", "opening hours nine to five"):
            conn.execute(
                "INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector,"
                " embedding_model) VALUES ('s1', 'conversation', %s, %s, %s)",
                (text, HASHING.embed([text])[0], HASHING.name),
            )
        conn.commit()
        yield conn


@pytest.mark.skipif(os.name != "posix", reason="libpq tracing to a file descriptor")
def test_a_search_with_hits_takes_four_round_trips(conn: psycopg.Connection) -> None:
    search.search(conn, HASHING, "pasta", min_similarity=-1)  # warm: type lookups, prepared statements
    result, trips = _syncs(conn, lambda: search.search(conn, HASHING, "pasta", min_similarity=-1))
    assert result.hits and result.hits[0].content_text == "pasta with basil"
    # BEGIN with the context (schema check, lock, settings), the scan's settings, the query, the access
    # update with the commit
    assert trips == 4
    count = conn.execute("SELECT access_count FROM semantic_memory WHERE content_text = 'pasta with basil'")
    assert count.fetchone()[0] == 2
    conn.rollback()


def test_search_in_a_callers_transaction_keeps_it_open_and_durable(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("SELECT 1")
        search.search(conn, HASHING, "pasta", min_similarity=-1)
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    search.search(conn, HASHING, "pasta", min_similarity=-1)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_missing_table_is_not_migrated(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE memory_settings RENAME TO memory_settings_away")
    conn.commit()
    with pytest.raises(NotReadyError, match=r"not migrated.*memory_settings"):
        search.search(conn, HASHING, "pasta")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_an_unmigrated_database_is_not_migrated(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.commit()
        with pytest.raises(NotReadyError, match="not migrated"):
            search.search(conn, HASHING, "pasta")
