"""memcli import ybryx / agent-memories / graive: every mapped field, bad vectors, resume, rollback."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from memcli.imports import open_source
from memcli.imports.engine import ImportOptions, run_import
from memcli.imports.records import SEMANTIC, target_id
from tests.importing import build_layout, counts, execute, fetch, scalar, stored_vector, vec

ALICE = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
BOB = uuid.UUID("00000000-0000-0000-0000-000000000b0b")

# ------------------------------------------------------------------------------------------------- ybryx


def fill_ybryx(dsn: str) -> dict[str, uuid.UUID]:
    build_layout(dsn, "ybryx")
    execute(dsn, "INSERT INTO users (id) VALUES (%s), (%s)", (ALICE, BOB))
    execute(
        dsn, "INSERT INTO sessions (session_id, user_id, agent_name) VALUES ('chat-1', %s, 'sales')", (ALICE,)
    )
    ids = {name: uuid.uuid4() for name in ("goal", "belief", "bad_string", "bad_nan", "no_vector")}
    execute(
        dsn,
        """INSERT INTO goal_assessments (id, user_id, session_id, agent_name, goal_text, goal_vector, status,
               progress, confidence, created_at)
           VALUES (%s, %s, 'chat-1', 'sales', 'Buy a robot lawnmower', %s, 'active', 0.25, 0.8,
                   '2025-11-13 20:00+00')""",
        (ids["goal"], ALICE, Jsonb(vec("Buy a robot lawnmower"))),
    )
    execute(
        dsn,
        """INSERT INTO belief_graphs (id, user_id, agent_name, belief, belief_vector, confidence, evidence)
           VALUES (%s, %s, 'sales', 'Bob has a large garden', %s, 0.6, '{"said": "2 acres"}'),
                  (%s, %s, 'sales', 'string inside', %s, 0.5, NULL),
                  (%s, %s, 'sales', 'NaN as text', %s, 0.5, NULL),
                  (%s, %s, 'sales', 'not embedded yet', NULL, 0.5, NULL)""",
        (
            ids["belief"],
            BOB,
            Jsonb(vec("Bob has a large garden")),
            ids["bad_string"],
            BOB,
            Jsonb([*vec("x")[:383], "0.1"]),
            ids["bad_nan"],
            BOB,
            Jsonb([*vec("y")[:383], "NaN"]),
            ids["no_vector"],
            BOB,
        ),
    )
    execute(
        dsn,
        """INSERT INTO memory_logs (memory_id, operation, created_at) VALUES
               (%(g)s, 'write', '2025-11-13 20:00+00'), (%(g)s, 'read', '2025-11-14 08:00+00'),
               (%(g)s, 'recall', '2025-11-15 09:00+00'), (%(g)s, 'decay', '2025-11-16 00:00+00'),
               (%(other)s, 'read', '2025-11-14 08:00+00')""",
        {"g": ids["goal"], "other": uuid.uuid4()},
    )
    return ids


def test_ybryx_jsonb_vectors_and_logs(cli, migrated_db: str) -> None:
    ids = fill_ybryx(migrated_db)
    plan = json.loads(
        cli("import", "ybryx", "--schema", "legacy", "--dry-run", "--json", dsn=migrated_db).stdout
    )
    assert plan["source_rows"] == {"goal_assessments": 1, "belief_graphs": 4}
    assert plan["dropped"] == {"memory_logs of no goal or belief": 1}
    assert plan["vectors"]["source_dimension"] == 384 and plan["vectors"]["keep"] is False
    result = cli(
        "import", "ybryx", "--schema", "legacy", "--source-model", "hashing-v1", "--json", dsn=migrated_db
    )
    assert result.exit_code == 1  # two rows rejected
    report = json.loads(result.stdout)
    assert {r["source_key"]: r["reason"] for r in report["rejected"]} == {
        f"belief_graphs:{ids['bad_string']}": "bad vector: non-numeric element",
        f"belief_graphs:{ids['bad_nan']}": "bad vector: non-numeric element",
    }
    assert report["imported"] == 3 and report["vectors_kept"] == 2 and report["vectors_missing"] == 1
    rows = {
        r[0]["source"]["id"]: r
        for r in fetch(
            migrated_db,
            "SELECT metadata, id, session_id, user_id, content_type, content_text, relevance_score, "
            "access_count, last_accessed_at, created_at FROM semantic_memory",
        )
    }
    goal = rows[str(ids["goal"])]
    assert goal[2:6] == ("chat-1", ALICE, "user_preference", "Buy a robot lawnmower")
    assert goal[6] == pytest.approx(0.8) and goal[7] == 2
    assert goal[8] == datetime(2025, 11, 15, 9, 0, tzinfo=UTC)
    assert goal[9] == datetime(2025, 11, 13, 20, 0, tzinfo=UTC)
    assert goal[0]["status"] == "active" and goal[0]["progress"] == 0.25 and goal[0]["agent_name"] == "sales"
    assert goal[0]["log"]["decay"]["count"] == 1 and goal[0]["log"]["read"]["count"] == 1
    np.testing.assert_allclose(stored_vector(migrated_db, goal[1]), vec("Buy a robot lawnmower"), rtol=1e-6)
    belief = rows[str(ids["belief"])]
    assert belief[2:6] == (f"ybryx:{BOB}", BOB, "conversation", "Bob has a large garden")
    assert belief[0]["evidence"] == {"said": "2 acres"} and belief[7] == 0


# ---------------------------------------------------------------------------------------- agent memories


def fill_agent_memories(dsn: str, n_extra: int = 0) -> dict[str, uuid.UUID]:
    build_layout(dsn, "agent_memories")
    agent = uuid.uuid4()
    execute(dsn, "INSERT INTO agents (id, user_id, name) VALUES (%s, %s, 'planner')", (agent, ALICE))
    ids = {kind: uuid.uuid4() for kind in ("episodic", "semantic", "procedural", "working")}
    related = [ids["semantic"]]
    for kind, memory_id in ids.items():
        execute(
            dsn,
            """INSERT INTO agent_memories (id, agent_id, memory_type, content, embeddings, importance,
                   decay_rate, access_count, last_accessed_at, related_memories, metadata, created_at)
               VALUES (%s, %s, %s, %s, %s::vector, 0.7, 0.2, 3, '2025-08-06 10:00+00', %s, '{"k": 1}',
                       '2025-08-05 07:44+00')""",
            (
                memory_id,
                agent,
                kind,
                f"{kind} memory of the planner",
                str(vec(kind, 1536)),
                related if kind == "episodic" else [],
            ),
        )
    for n in range(n_extra):
        execute(
            dsn,
            "INSERT INTO agent_memories (agent_id, memory_type, content) VALUES (%s, 'episodic', %s)",
            (agent, f"extra {n}"),
        )
    ids["agent"] = agent
    return ids


def test_agent_memories_tiers_importance_decay(cli, migrated_db: str) -> None:
    ids = fill_agent_memories(migrated_db)
    result = cli("import", "agent-memories", "--schema", "legacy", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # 1536-dimensional vectors of an unnamed model: left for memcli embed
    assert report["vectors_missing"] == 4 and report["vectors"]["source_dimension"] == 1536
    tiers = dict(fetch(migrated_db, "SELECT context_value->>'kind', memory_type FROM conversation_memory"))
    assert tiers == {
        "working": "short_term",
        "episodic": "long_term",
        "procedural": "long_term",
        "semantic": "semantic",
    }
    sm = fetch(
        migrated_db,
        "SELECT metadata, session_id, user_id, relevance_score, access_count, last_accessed_at "
        "FROM semantic_memory WHERE metadata->>'kind' = 'episodic'",
    )[0]
    assert sm[1] == f"agent:{ids['agent']}" and sm[2] == ALICE and sm[3] == pytest.approx(0.7) and sm[4] == 3
    assert sm[5] == datetime(2025, 8, 6, 10, 0, tzinfo=UTC)
    assert sm[0]["agent_name"] == "planner" and sm[0]["related_memories"] == [str(ids["semantic"])]
    assert sm[0]["source_metadata"] == {"k": 1} and sm[0]["decay_rate"] == 0.2
    cm = fetch(
        migrated_db,
        "SELECT importance_score, access_count, created_at, expires_at FROM conversation_memory "
        "WHERE context_value->>'kind' = 'episodic'",
    )[0]
    assert cm[0] == pytest.approx(0.7) and cm[1] == 3 and cm[2] == datetime(2025, 8, 5, 7, 44, tzinfo=UTC)
    assert cm[3] is not None  # the tier's retention applied
    relevance = fetch(
        migrated_db, "SELECT relevance_score, decay_factor, context_type FROM context_relevance"
    )
    assert len(relevance) == 4
    assert all(r[0] == pytest.approx(0.7) and r[1] == pytest.approx(0.8) for r in relevance)


def test_agent_memories_reembedded_on_the_way(cli, migrated_db: str) -> None:
    fill_agent_memories(migrated_db)
    result = cli(
        "import", "agent-memories", "--schema", "legacy", "--mismatched", "reembed", "--json", dsn=migrated_db
    )
    assert json.loads(result.stdout)["vectors_reembedded"] == 4
    for memory_id, text in fetch(migrated_db, "SELECT id, content_text FROM semantic_memory"):
        np.testing.assert_allclose(stored_vector(migrated_db, memory_id), vec(text), rtol=1e-6)


def test_agent_memories_resume_and_rollback(migrated_db: str) -> None:
    fill_agent_memories(migrated_db, n_extra=46)

    def stop(done: int, total: int | None) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    with psycopg.connect(migrated_db) as conn, psycopg.connect(migrated_db, autocommit=True) as src:
        source = open_source("agent-memories", conn=src, schema="legacy")
        with pytest.raises(KeyboardInterrupt):
            run_import(conn, source, None, ImportOptions(batch_size=10), stop)
        assert counts(migrated_db)["conversation_memory"] == 20
        result = run_import(conn, source, None, ImportOptions(batch_size=10))
    assert result.resumed and result.imported == 30
    assert counts(migrated_db) == {
        "semantic_memory": 50,
        "conversation_memory": 50,
        "context_relevance": 50,
        "memory_import_keys": 50,  # one per source row: its tier and relevance rows' ids derive from it
    }
    from memcli.imports.engine import rollback_import

    with psycopg.connect(migrated_db) as conn:
        undone = rollback_import(conn, result.import_id, batch_size=40)
    assert undone.deleted == {"semantic_memory": 50, "conversation_memory": 50, "context_relevance": 50}
    assert set(counts(migrated_db).values()) == {0}


# ------------------------------------------------------------------------------------------------ graive


def fill_graive(dsn: str) -> dict[str, uuid.UUID]:
    build_layout(dsn, "graive", schema="graive")
    ids = {name: uuid.uuid4() for name in ("user", "conv", "m1", "m2", "seg", "working", "bad")}
    execute(dsn, "INSERT INTO users (id, username) VALUES (%s, 'alice')", (ids["user"],), schema="graive")
    execute(
        dsn,
        "INSERT INTO conversations (id, user_id, session_id, title) VALUES (%s, %s, 'g-1', 'AI Research')",
        (ids["conv"], ids["user"]),
        schema="graive",
    )
    execute(
        dsn,
        """INSERT INTO messages (id, conversation_id, role, content, embedding_id, importance_score,
                                created_at)
           VALUES (%s, %s, 'user', 'What are the latest AI developments?', 'chroma-1', 0.6,
                   '2025-01-01 10:00'),
                  (%s, %s, 'assistant', 'Longer context windows.', NULL, 0.3, '2025-01-01 10:01')""",
        (ids["m1"], ids["conv"], ids["m2"], ids["conv"]),
        schema="graive",
    )
    execute(
        dsn,
        """INSERT INTO memory_segments (id, conversation_id, summary, message_ids, tier, importance_score,
               compression_level, created_at)
           VALUES (%s, %s, 'Discussion about LLMs and improvements', %s, 'long_term', 0.8, 3, '2025-01-02'),
                  (%s, %s, 'Recent chat', '[]', 'working', 0.5, 0, '2025-01-03'),
                  (%s, %s, 'Odd one', '[]', 'cosmic', 0.5, 1, '2025-01-03')""",
        (
            ids["seg"],
            ids["conv"],
            Jsonb([str(ids["m1"]), str(ids["m2"])]),
            ids["working"],
            ids["conv"],
            ids["bad"],
            ids["conv"],
        ),
        schema="graive",
    )
    execute(
        dsn,
        "INSERT INTO vector_embeddings (source_type, source_id, model_name) "
        "VALUES ('message', %s, 'all-MiniLM-L6-v2')",
        (str(ids["m1"]),),
        schema="graive",
    )
    return ids


def test_graive_segments_and_their_messages(cli, migrated_db: str) -> None:
    ids = fill_graive(migrated_db)
    result = cli("import", "graive", "--schema", "graive", "--json", dsn=migrated_db)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["rejected"] == [
        {"source_key": f"memory_segments:{ids['bad']}", "reason": "unknown tier 'cosmic'"}
    ]
    assert report["vectors"]["source_model"] == "all-MiniLM-L6-v2" and report["vectors_missing"] == 4
    name = report["source_name"]
    m1 = target_id(name, f"messages:{ids['m1']}", SEMANTIC)
    message = fetch(
        migrated_db,
        "SELECT session_id, user_id, content_text, relevance_score, metadata, created_at "
        "FROM semantic_memory WHERE id = %s",
        (m1,),
    )[0]
    assert message[:3] == ("g-1", ids["user"], "What are the latest AI developments?")
    assert message[3] == pytest.approx(0.6) and message[5] == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert message[4]["role"] == "user" and message[4]["embedding_id"] == "chroma-1"
    assert message[4]["conversation_title"] == "AI Research"
    seg = fetch(
        migrated_db,
        "SELECT s.content_text, s.metadata, c.memory_type, c.importance_score FROM semantic_memory s "
        "JOIN conversation_memory c ON (c.context_value->>'semantic_memory_id')::uuid = s.id "
        "WHERE s.metadata->'source'->>'id' = %s",
        (str(ids["seg"]),),
    )[0]
    assert seg[0] == "Discussion about LLMs and improvements" and seg[2] == "long_term"
    assert seg[3] == pytest.approx(0.8) and seg[1]["compression_level"] == 3
    assert seg[1]["message_ids"] == [str(ids["m1"]), str(ids["m2"])]
    # the segment names the memories its messages became, and they exist
    referenced = [uuid.UUID(m) for m in seg[1]["message_memory_ids"]]
    assert scalar(migrated_db, "SELECT count(*) FROM semantic_memory WHERE id = ANY(%s)", (referenced,)) == 2
    working = scalar(
        migrated_db,
        "SELECT memory_type FROM conversation_memory WHERE context_value->'source'->>'id' = %s",
        (str(ids["working"]),),
    )
    assert working == "short_term"
    # one key-map row per imported source row (2 messages, 2 segments), each naming its memory
    assert (
        scalar(migrated_db, "SELECT count(*) FROM memory_import_keys WHERE target_table = %s", (SEMANTIC,))
        == 4
    )
    assert counts(migrated_db) == {
        "semantic_memory": 4,
        "conversation_memory": 2,
        "context_relevance": 0,
        "memory_import_keys": 4,
    }
    plan = json.loads(
        cli("import", "rollback", report["import_id"], "--dry-run", "--json", dsn=migrated_db).stdout
    )
    assert plan["rows"] == {"semantic_memory": 4, "conversation_memory": 2, "context_relevance": 0}
    undone = cli("import", "rollback", report["import_id"], "--json", dsn=migrated_db)
    assert undone.exit_code == 0
    assert json.loads(undone.stdout)["deleted"] == {"semantic_memory": 4, "conversation_memory": 2}
    assert set(counts(migrated_db).values()) == {0}
    # memcli's own messages table (the application's) was never touched
    assert scalar(migrated_db, "SELECT count(*) FROM public.messages") == 0


class _KeyMapReads(psycopg.Cursor):
    """A cursor noting how many key-map rows each read of the map returned."""

    pages: ClassVar[list[int]] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        self._reads_map = str(query).startswith("SELECT source_name, source_key, target_table, target_id")
        return super().execute(query, params, **kwargs)

    def fetchall(self) -> Any:
        rows = super().fetchall()
        if getattr(self, "_reads_map", False):
            _KeyMapReads.pages.append(len(rows))
        return rows


def test_rollback_removes_one_import_among_others_and_reads_older_key_maps(
    migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rollback derives a memory's tier and relevance rows from its one key-map row, touches no other
    import's rows, and still undoes a key map written with one row per target row (older imports); its
    count reads the map in pages."""
    from memcli.imports import engine
    from memcli.imports.engine import rollback_import
    from memcli.imports.records import CONVERSATION, RELEVANCE

    fill_agent_memories(migrated_db, n_extra=6)  # 10 memories: semantic + tier + relevance rows each
    lines = [
        {"id": f"j-{n}", "text": f"line {n}", "session_id": "s-1", "tier": "long_term", "decay": 0.1}
        for n in range(5)
    ]
    path = tmp_path / "other.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    with psycopg.connect(migrated_db) as conn, psycopg.connect(migrated_db, autocommit=True) as src:
        first = run_import(conn, open_source("agent-memories", conn=src, schema="legacy"), None)
        other = run_import(conn, open_source("jsonl", path=path), None)
    assert counts(migrated_db) == {
        "semantic_memory": 15,
        "conversation_memory": 15,
        "context_relevance": 15,
        "memory_import_keys": 15,
    }
    # the first import's map as older versions wrote it: a row for each row written, not per source row
    keys = fetch(
        migrated_db,
        "SELECT source_name, source_key FROM memory_import_keys WHERE import_id = %s",
        (first.import_id,),
    )
    with psycopg.connect(migrated_db) as conn:
        for name, key in keys:
            for table in (CONVERSATION, RELEVANCE):
                conn.execute(
                    "INSERT INTO memory_import_keys "
                    "(source_name, source_key, target_table, target_id, import_id) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (name, key, table, target_id(name, key, table), first.import_id),
                )
        # one of its memories was forgotten since (its tier and relevance rows stay)
        conn.execute("DELETE FROM semantic_memory WHERE id = %s", (target_id(*keys[0], SEMANTIC),))
    with psycopg.connect(migrated_db) as conn:
        from memcli.imports.engine import list_imports

        # the older map counts its source rows, not its rows
        assert {s.import_id: s.rows for s in list_imports(conn)} == {first.import_id: 10, other.import_id: 5}
    with psycopg.connect(migrated_db) as conn:
        planned = rollback_import(conn, first.import_id, dry_run=True)
        assert planned.rows == {"semantic_memory": 9, "conversation_memory": 10, "context_relevance": 10}
        assert planned.already_gone == 1
    # the count reads the map a page at a time (pages of 4 here), never the whole map at once
    monkeypatch.setattr(engine, "_PRESENT_CHUNK", 4)
    _KeyMapReads.pages.clear()
    with psycopg.connect(migrated_db, cursor_factory=_KeyMapReads) as conn:
        paged = rollback_import(conn, first.import_id, dry_run=True)
    assert (paged.rows, paged.already_gone) == (planned.rows, planned.already_gone)
    assert _KeyMapReads.pages and max(_KeyMapReads.pages) <= 4
    # the first import's 30 rows, a source key's rows kept on one page (read again at the next page's start)
    assert sum(_KeyMapReads.pages) >= 30
    monkeypatch.undo()
    with psycopg.connect(migrated_db) as conn:
        undone = rollback_import(conn, first.import_id, batch_size=7)
    assert undone.deleted == {"semantic_memory": 9, "conversation_memory": 10, "context_relevance": 10}
    # the other import is whole: its rows and its key map
    assert counts(migrated_db) == {
        "semantic_memory": 5,
        "conversation_memory": 5,
        "context_relevance": 5,
        "memory_import_keys": 5,
    }
    assert {r[0] for r in fetch(migrated_db, "SELECT DISTINCT import_id FROM memory_import_keys")} == {
        other.import_id
    }
