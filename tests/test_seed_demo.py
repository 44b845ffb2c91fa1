"""memcli seed --demo: a deterministic, believable dataset loaded with COPY."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from memcli.embeddings import get_embedder
from memcli.schema import names
from memcli.seed import DemoRefusedError, generate_demo, seed_demo

BASE = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
TIERS = set(names.MEMORY_TYPES)
# The memory tables the demo fills.
SEEDED_TABLES = (
    names.CONVERSATION_MEMORY,
    names.SEMANTIC_MEMORY,
    names.CONTEXT_RELEVANCE,
    names.USER_CONTEXT_PROFILES,
)


def count(dsn: str, query: str, *params: object) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params or None).fetchone()[0]


def digest(dsn: str) -> dict[str, str]:
    """A digest of every table the demo writes, ids and timestamps included (only memcli's own
    bookkeeping columns, set by now() at load time, are left out)."""
    queries = {
        "businesses": "SELECT b::text FROM businesses b",
        "menu_categories": "SELECT t::text FROM menu_categories t",
        "menu_items": "SELECT t::text FROM menu_items t",
        "working_hours": "SELECT t::text FROM working_hours t",
        "conversation_memory": "SELECT t::text FROM conversation_memory t",
        "semantic_memory": "SELECT t::text FROM semantic_memory t",
        "context_relevance": "SELECT t::text FROM context_relevance t",
        "user_context_profiles": "SELECT t::text FROM user_context_profiles t",
        "business_context_sections": "SELECT concat_ws('|', business_id, section_type, section_name, "
        "section_content, section_order, source_hash) FROM business_context_sections",
    }
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(
                f"SELECT md5(string_agg(r, ',' ORDER BY r)) FROM ({query}) AS q(r)"
            ).fetchone()[0]
            for table, query in queries.items()
        }


def load(dsn: str, **options: object):
    options = {"businesses": 3, "sessions": 12, "random_seed": 7, "base_time": BASE, **options}
    with psycopg.connect(dsn) as conn:
        return seed_demo(conn, get_embedder(provider="hashing"), **options)


def test_counts_match_the_options(cli, migrated_db):
    result = cli(
        "seed",
        "--demo",
        "--businesses",
        "3",
        "--sessions",
        "12",
        "--random-seed",
        "7",
        "--json",
        dsn=migrated_db,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["sessions"] == 12 and report["users"] == 6
    assert count(migrated_db, "SELECT count(*) FROM businesses WHERE slug LIKE 'demo-%'") == 3
    assert count(migrated_db, "SELECT count(DISTINCT session_id) FROM conversation_memory") == 12
    assert count(migrated_db, "SELECT count(*) FROM user_context_profiles") == 6
    for table, rows in report["counts"].items():
        assert count(migrated_db, f"SELECT count(*) FROM {table}") == rows, table
    assert report["counts"]["business_context_sections"] >= 3 * 3  # overview, menu, hours (+ location)
    with psycopg.connect(migrated_db) as conn:
        tiers = {row[0] for row in conn.execute("SELECT DISTINCT memory_type FROM conversation_memory")}
        models = conn.execute(
            "SELECT DISTINCT embedding_model, vector_dims(embedding_vector) FROM semantic_memory"
        ).fetchall()
        recorded = conn.execute("SELECT value FROM memory_settings WHERE key = 'embedding.model'").fetchone()[
            0
        ]
        demo_marked = conn.execute(
            "SELECT bool_and(context_value @> '{\"demo\": true}') FROM conversation_memory"
        ).fetchone()[0]
    assert tiers == TIERS
    assert models == [("hashing-v1", 384)] and recorded == "hashing-v1"
    assert demo_marked
    assert count(migrated_db, "SELECT count(*) FROM semantic_memory WHERE content_type = 'business_info'") > 0


def test_the_same_seed_gives_the_same_data(databases, db_templates, migrated_db):
    other = databases.create(template=db_templates["migrated"])
    load(migrated_db)
    load(other)
    first, second = digest(migrated_db), digest(other)
    assert first == second
    assert all(first.values())  # every table got rows

    def rows(seed: int):
        data = generate_demo(businesses=3, sessions=12, random_seed=seed, base_time=BASE)
        return data.conversation, data.semantic

    assert rows(7) == rows(7)
    assert rows(7) != rows(8)


def test_expired_near_expiry_and_busy_rows_for_the_jobs(migrated_db):
    result = load(migrated_db, sessions=20, base_time=None)  # relative to today, as the CLI loads it
    assert result.expired > 0 and result.near_expiry > 0 and result.heavily_accessed > 0

    expired = count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE expires_at < now()")
    assert expired >= result.expired
    near = (
        "SELECT count(*) FROM conversation_memory "
        "WHERE expires_at BETWEEN now() AND now() + interval '2 days'"
    )
    assert count(migrated_db, near) > 0
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE access_count >= 50") > 0
    # old short-term memories that have not expired yet: work for consolidation
    consolidatable = (
        "SELECT count(*) FROM conversation_memory WHERE memory_type = 'short_term' "
        "AND created_at < now() - interval '5 days' AND expires_at > now()"
    )
    assert count(migrated_db, consolidatable) > 0

    with psycopg.connect(migrated_db) as conn:
        deleted = conn.execute("SELECT cleanup_expired_memory()").fetchone()[0]
        conn.commit()
    assert deleted == expired
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE expires_at < now()") == 0


def test_refuses_next_to_real_memories(cli, migrated_db):
    with psycopg.connect(migrated_db) as conn:
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value) "
            "VALUES ('session-roma-1', 'short_term', 'diet', '{\"diet\": \"vegan\"}')"
        )
        conn.commit()
        with pytest.raises(DemoRefusedError):
            seed_demo(conn, get_embedder(provider="hashing"), businesses=1, sessions=2)

    refused = cli("seed", "--demo", "--sessions", "2", dsn=migrated_db)
    assert refused.exit_code == 2
    assert "not demo data" in refused.stderr and "--yes" in refused.stderr
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory") == 1

    accepted = cli("seed", "--demo", "--sessions", "2", "--yes", "--json", dsn=migrated_db)
    assert accepted.exit_code == 0, accepted.stderr
    assert json.loads(accepted.stdout)["warnings"]
    assert count(migrated_db, "SELECT count(DISTINCT session_id) FROM conversation_memory") == 3


def test_loading_a_seed_twice_adds_nothing(cli, migrated_db):
    first = cli("seed", "--demo", "--sessions", "4", "--json", dsn=migrated_db)
    assert first.exit_code == 0, first.stderr
    rows = count(migrated_db, "SELECT count(*) FROM conversation_memory")

    again = cli("seed", "--demo", "--sessions", "4", dsn=migrated_db)
    assert again.exit_code == 0
    assert "already loaded" in again.stderr
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory") == rows

    other = cli("seed", "--demo", "--sessions", "4", "--random-seed", "43", "--json", dsn=migrated_db)
    assert other.exit_code == 0, other.stderr
    assert count(migrated_db, "SELECT count(DISTINCT session_id) FROM conversation_memory") == 8


def test_dry_run_and_progress(migrated_db):
    with psycopg.connect(migrated_db) as conn:
        dry = seed_demo(conn, None, businesses=2, sessions=5, dry_run=True)
    assert dry.counts["conversation_memory"] > 0 and dry.counts["businesses"] == 2
    for table in (names.BUSINESSES, *SEEDED_TABLES):
        assert count(migrated_db, f"SELECT count(*) FROM {table}") == 0

    calls: list[tuple[str, int, int]] = []
    result = load(migrated_db, businesses=2, sessions=5, progress=lambda *call: calls.append(call))
    last = {stage: (done, total) for stage, done, total in calls}
    assert last["embedding"] == (result.counts["semantic_memory"],) * 2
    assert last["conversation_memory"] == (result.counts["conversation_memory"],) * 2


def test_another_embedding_model_is_refused(cli, migrated_db):
    with psycopg.connect(migrated_db) as conn:
        conn.execute(
            "UPDATE memory_settings SET value = '\"some-other-model\"' WHERE key = 'embedding.model'"
        )
        conn.commit()
    result = cli("seed", "--demo", "--sessions", "2", dsn=migrated_db)
    assert result.exit_code == 4
    assert "some-other-model" in result.stderr
    assert count(migrated_db, "SELECT count(*) FROM businesses") == 0  # nothing half-loaded


def nearest(dsn: str, embedder, text: str, limit: int = 5) -> list[str]:
    vector = "[" + ",".join(repr(x) for x in embedder.embed([text])[0].tolist()) + "]"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT content_text FROM semantic_memory ORDER BY embedding_vector <=> %s::vector LIMIT %s",
            (vector, limit),
        ).fetchall()
    return [row[0] for row in rows]


VEGETARIAN_WORDS = ("vegetarian", "meat-free", "vegan", "plant-based")


def test_vegetarian_options_finds_the_right_rows_lexically(migrated_db):
    load(migrated_db, businesses=5, sessions=40)
    found = nearest(migrated_db, get_embedder(provider="hashing"), "vegetarian options")
    assert all(any(word in text.lower() for word in VEGETARIAN_WORDS) for text in found), found


@pytest.mark.model
def test_vegetarian_options_finds_the_right_rows_with_minilm(migrated_db):
    embedder = get_embedder(provider="local")
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, embedder, businesses=5, sessions=40, random_seed=3, base_time=BASE)
    found = nearest(migrated_db, embedder, "do you have anything for someone who doesn't eat meat?")
    assert sum(any(word in text.lower() for word in VEGETARIAN_WORDS) for text in found) >= 4, found


def test_demo_next_to_an_apps_businesses_needs_yes(cli, migrated_app_db):
    refused = cli("seed", "--demo", "--sessions", "3", dsn=migrated_app_db)
    assert refused.exit_code == 2 and "businesses" in refused.stderr

    with psycopg.connect(migrated_app_db) as conn:
        before = conn.execute("SELECT b::text FROM businesses b ORDER BY id").fetchall()
    accepted = cli(
        "seed", "--demo", "--businesses", "2", "--sessions", "3", "--yes", "--json", dsn=migrated_app_db
    )
    assert accepted.exit_code == 0, accepted.stderr
    with psycopg.connect(migrated_app_db) as conn:
        app_rows = conn.execute(
            "SELECT b::text FROM businesses b WHERE slug NOT LIKE 'demo-%' ORDER BY id"
        ).fetchall()
        sections_of = conn.execute(
            "SELECT DISTINCT b.slug LIKE 'demo-%' FROM business_context_sections s JOIN businesses b "
            "ON b.id = s.business_id"
        ).fetchall()
    assert app_rows == before  # the app's rows are untouched
    assert sections_of == [(True,)]  # only the demo businesses got sections


def test_expiry_follows_the_retention_the_trigger_uses(migrated_db):
    # A zero retention is a valid setting for the expiry trigger; the demo must not replace it by the default.
    with psycopg.connect(migrated_db) as conn:
        conn.execute("UPDATE memory_settings SET value = '0' WHERE key = 'retention.archived_days'")
        conn.commit()
    load(migrated_db, sessions=20)
    archived = "SELECT count(*) FROM conversation_memory WHERE memory_type = 'archived'"
    assert count(migrated_db, archived) > 0
    assert count(migrated_db, archived + " AND expires_at <> created_at + memory_retention('archived')") == 0
