"""memcli import mumble: every mapped field, vectors kept or left, bad vectors, layout mismatch, rollback."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from memcli import access
from memcli.imports.records import user_uuid
from tests.importing import build_layout, counts, execute, fetch, scalar, stored_vector, vec

MESSAGES = [
    # id, user, user_session, session_id, type, role, text, importance, summary, timestamp
    (
        1,
        "alice",
        7,
        "s-alice",
        "text",
        "user",
        "I am vegetarian and love spicy food",
        0.9,
        "diet",
        "2024-05-01 12:00",
    ),
    (
        2,
        "alice",
        7,
        "s-alice",
        "voice",
        "assistant",
        "Noted: vegetarian, spicy",
        0.4,
        None,
        "2024-05-01 12:01",
    ),
    (3, "bob", 2, None, "text", "user", "Book a table for four on Friday", 1.7, None, "2024-05-02 09:30"),
]


def fill(dsn: str, *, model: str = "hashing-v1", threshold: str = "0.65") -> None:
    build_layout(dsn, "mumble")
    execute(
        dsn,
        "INSERT INTO conversation_sessions (user_name, session_id) VALUES ('alice', 's-alice')",
    )
    for mid, user, us, sid, mtype, role, text, imp, summary, ts in MESSAGES:
        execute(
            dsn,
            """INSERT INTO conversation_history (id, user_name, user_session, session_id, message_type, role,
                   message, embedding, importance_score, summary, timestamp, consolidated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                mid,
                user,
                us,
                sid,
                mtype,
                role,
                text,
                vec(text),
                imp,
                summary,
                ts,
                "2024-06-01" if mid == 2 else None,
            ),
        )
    execute(
        dsn,
        """INSERT INTO entity_mentions (user_name, entity_text, canonical_id, entity_type, confidence,
               context_info, message_id, created_at)
           VALUES ('alice', 'spicy food', 'food:spicy', 'OTHER', 0.8, 'likes', 1, '2024-05-01 12:00'),
                  ('bob', 'Friday', 'date:friday', 'DATE', 0.95, NULL, 3, '2024-05-02 09:30'),
                  ('bob', 'orphan', 'x', 'OTHER', 0.1, NULL, NULL, '2024-05-02 09:30')""",
    )
    execute(dsn, "UPDATE bot_config SET value = %s WHERE key = 'embedding_model'", (model,))
    execute(dsn, "UPDATE bot_config SET value = %s WHERE key = 'semantic_similarity_threshold'", (threshold,))


def test_mumble_maps_every_field_and_keeps_matching_vectors(cli, migrated_db: str) -> None:
    fill(migrated_db)
    result = cli("import", "mumble", "--schema", "legacy", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == 3 and report["vectors_kept"] == 3 and report["rejected"] == []
    rows = {
        r[0]["source"]["id"]: r
        for r in fetch(
            migrated_db,
            """SELECT metadata, id, session_id, user_id, content_type, content_text, relevance_score,
                      created_at, embedding_model
               FROM semantic_memory""",
        )
    }
    assert set(rows) == {1, 2, 3}
    meta, mid, session, user, ctype, text, relevance, created, model = rows[1]
    assert (session, user, ctype, text, model) == (
        "s-alice",
        user_uuid("mumble", "alice"),
        "conversation",
        MESSAGES[0][6],
        "hashing-v1",
    )
    assert relevance == pytest.approx(0.9)
    assert created == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert meta["role"] == "user" and meta["message_type"] == "text" and meta["user_session"] == 7
    assert meta["summary"] == "diet" and meta["user_name"] == "alice"
    assert meta["entities"] == [
        {
            "text": "spicy food",
            "canonical_id": "food:spicy",
            "type": "OTHER",
            "confidence": 0.8,
            "context": "likes",
            "created_at": "2024-05-01T12:00:00+00:00",
        }
    ]
    np.testing.assert_allclose(stored_vector(migrated_db, mid), vec(MESSAGES[0][6]), rtol=1e-6)
    assert rows[2][0]["consolidated_at"] == "2024-06-01T00:00:00+00:00"
    # bob had no session id: one is made of his name and user_session; importance 1.7 is clamped
    assert rows[3][2] == "mumble:bob:2" and rows[3][6] == pytest.approx(1.0)
    assert rows[3][3] != rows[1][3]  # two users, two ids
    assert (
        scalar(migrated_db, "SELECT value FROM memory_settings WHERE key = 'search.min_similarity'") == 0.65
    )
    # the model was recorded by the first write of its vectors
    assert (
        scalar(migrated_db, "SELECT value FROM memory_settings WHERE key = 'embedding.model'") == "hashing-v1"
    )
    # the imported vectors are searchable with the database's model
    found = cli("search", "vegetarian spicy food", "--min-similarity", "0.3", "--json", dsn=migrated_db)
    assert json.loads(found.stdout)["hits"][0]["content_text"] == MESSAGES[0][6]


def test_other_model_leaves_vectors_for_embed_or_reembeds(cli, migrated_db: str) -> None:
    fill(migrated_db, model="nomic-embed-text:latest")
    plan = cli("import", "mumble", "--schema", "legacy", "--dry-run", "--json", dsn=migrated_db)
    assert plan.exit_code == 0
    planned = json.loads(plan.stdout)
    assert planned["vectors"]["keep"] is False and "nomic-embed-text" in planned["vectors"]["reason"]
    assert planned["source_rows"] == {"conversation_history": 3}
    assert planned["dropped"]["entity_mentions without a message"] == 1
    assert counts(migrated_db)["semantic_memory"] == 0  # a dry run changes nothing
    result = cli("import", "mumble", "--schema", "legacy", "--json", dsn=migrated_db)
    assert json.loads(result.stdout)["vectors_missing"] == 3
    assert scalar(migrated_db, "SELECT count(*) FROM semantic_memory WHERE embedding_vector IS NULL") == 3
    assert cli("embed", dsn=migrated_db).exit_code == 0
    assert scalar(migrated_db, "SELECT count(*) FROM semantic_memory WHERE embedding_vector IS NULL") == 0


def test_reembed_on_the_way(cli, migrated_db: str) -> None:
    fill(migrated_db, model="nomic-embed-text:latest")
    result = cli(
        "import", "mumble", "--schema", "legacy", "--mismatched", "reembed", "--json", dsn=migrated_db
    )
    report = json.loads(result.stdout)
    assert report["vectors_reembedded"] == 3 and report["vectors_kept"] == 0
    rows = fetch(migrated_db, "SELECT id, content_text, embedding_model FROM semantic_memory")
    for mid, text, model in rows:
        assert model == "hashing-v1"
        np.testing.assert_allclose(stored_vector(migrated_db, mid), vec(text), rtol=1e-6)


def test_bad_vectors_are_rejected_per_row_never_half_imported(cli, migrated_db: str) -> None:
    fill(migrated_db)
    execute(migrated_db, "UPDATE conversation_history SET embedding[5] = 'NaN' WHERE id = 2")
    execute(migrated_db, "UPDATE conversation_history SET embedding = embedding[1:100] WHERE id = 3")
    result = cli("import", "mumble", "--schema", "legacy", dsn=migrated_db)
    assert result.exit_code == 1
    assert "conversation_history:2: bad vector: NaN or infinite element" in result.stdout
    assert "conversation_history:3: bad vector: 100 dimensions, expected 384" in result.stdout
    assert counts(migrated_db) == {
        "semantic_memory": 1,
        "conversation_memory": 0,
        "context_relevance": 0,
        "memory_import_keys": 1,
    }
    stored = scalar(migrated_db, "SELECT counts FROM memory_imports")
    assert [r["source_key"] for r in stored["rejections"]] == [
        "conversation_history:2",
        "conversation_history:3",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ALTER TABLE conversation_history DROP COLUMN summary", "has no column 'summary'"),
        (
            "ALTER TABLE conversation_history ALTER COLUMN embedding TYPE text USING embedding::text",
            "conversation_history.embedding is text, expected float8[]",
        ),
        ("DROP TABLE entity_mentions; DROP TABLE conversation_history", "conversation_history not found"),
    ],
)
def test_layout_mismatch_exits_2_naming_the_column(cli, migrated_db: str, change: str, message: str) -> None:
    fill(migrated_db)
    execute(migrated_db, change)
    result = cli("import", "mumble", "--schema", "legacy", dsn=migrated_db)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert counts(migrated_db)["semantic_memory"] == 0


def test_import_from_another_database_and_rollback(cli, migrated_db: str, empty_db: str) -> None:
    fill(empty_db)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO semantic_memory (session_id, content_type, content_text) "
            "VALUES ('mine', 'conversation', 'x')"
        )
    before = {r[0]: r for r in fetch(migrated_db, "SELECT key, value FROM memory_settings")}
    result = cli("import", "mumble", "--from", empty_db, "--schema", "legacy", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    import_id = json.loads(result.stdout)["import_id"]
    assert counts(migrated_db)["semantic_memory"] == 4
    # the audit trail has one row per user whose memories were imported, with counts and no content
    audit = fetch(migrated_db, "SELECT user_id, counts FROM memcli_audit_log WHERE operation = 'import'")
    assert sorted((str(u), c) for u, c in audit) == sorted(
        [
            (str(user_uuid("mumble", "alice")), {"semantic_memory": 2}),
            (str(user_uuid("mumble", "bob")), {"semantic_memory": 1}),
        ]
    )
    listed = json.loads(cli("import", "list", "--json", dsn=migrated_db).stdout)
    assert listed[0]["import_id"] == import_id and listed[0]["rows"] == 3
    plan = json.loads(cli("import", "rollback", import_id, "--dry-run", "--json", dsn=migrated_db).stdout)
    assert plan["rows"]["semantic_memory"] == 3 and counts(migrated_db)["semantic_memory"] == 4
    with psycopg.connect(migrated_db) as conn:  # access logged during an index build: the imported row's
        imported, mine = (  # records go with it (the same ids come back with a new import), "mine" stay
            scalar(migrated_db, f"SELECT id FROM semantic_memory WHERE session_id {op} 'mine' LIMIT 1")
            for op in ("<>", "=")
        )
        access.record(conn, [imported, mine])
    undone = cli("import", "rollback", import_id, "--json", dsn=migrated_db)
    assert undone.exit_code == 0, undone.stderr
    assert json.loads(undone.stdout)["deleted"] == {"semantic_memory": 3}
    assert fetch(migrated_db, "SELECT content_text FROM semantic_memory") == [("x",)]
    assert fetch(migrated_db, "SELECT memory_id FROM semantic_memory_access") == [(mine,)]
    assert counts(migrated_db)["memory_import_keys"] == 0
    assert scalar(migrated_db, "SELECT counts FROM memcli_audit_log WHERE operation = 'delete'") == {
        "semantic_memory": 3
    }
    after = {r[0]: r for r in fetch(migrated_db, "SELECT key, value FROM memory_settings")}
    assert after["search.min_similarity"] == before["search.min_similarity"]
    assert scalar(migrated_db, "SELECT status FROM memory_imports") == "rolled_back"
    # rolled back, the rows may be imported again
    again = cli("import", "mumble", "--from", empty_db, "--schema", "legacy", "--json", dsn=migrated_db)
    assert json.loads(again.stdout)["imported"] == 3


def test_rollback_of_an_unknown_import_exits_1(cli, migrated_db: str) -> None:
    for bad in (str(uuid.uuid4()), "not-an-id"):
        result = cli("import", "rollback", bad, dsn=migrated_db)
        assert result.exit_code == 1 and "no import" in result.stderr
