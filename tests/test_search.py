"""Search, remember and embed against a real migrated database, with the lexical hashing embedder.

The meaning-level checks (vegetarian ~ meat-free) are in test_search_model.py with the real model.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from memcli import memories, search
from memcli.embeddings import ensure_compatible
from memcli.embeddings.hashing import HashingEmbedder
from memcli.errors import ConfigError, NotReadyError
from memcli.semantic import use_vectors

HASHING = HashingEmbedder(384)
ALICE = uuid.UUID("00000000-0000-0000-0000-00000000a11c")
BOB = uuid.UUID("00000000-0000-0000-0000-000000000b0b")
NOW = datetime.now(UTC)


def add(
    conn: psycopg.Connection,
    text: str,
    session: str = "s1",
    *,
    user: uuid.UUID | None = None,
    content_type: str = "conversation",
    age_days: float = 0,
    embed: bool = True,
) -> uuid.UUID:
    use_vectors(conn)
    vector = HASHING.embed([text])[0] if embed else None
    row = conn.execute(
        """
        INSERT INTO semantic_memory
            (session_id, user_id, content_type, content_text, embedding_vector, embedding_model, created_at)
        VALUES (%s, %s, %s, %s, %s::vector, %s, %s) RETURNING id
        """,
        (
            session,
            user,
            content_type,
            text,
            vector,
            HASHING.name if embed else None,
            NOW - timedelta(days=age_days),
        ),
    ).fetchone()
    return row[0]


@pytest.fixture
def db(migrated_db: str) -> Any:
    with psycopg.connect(migrated_db) as conn:
        ensure_compatible(conn, HASHING)
        ids = {
            "pasta": add(
                conn, "pasta with tomato sauce and basil", "s1", user=ALICE, content_type="business_info"
            ),
            "pasta_bob": add(conn, "pasta carbonara recipe request", "s2", user=BOB, age_days=10),
            "pasta_old": add(conn, "pasta night every friday", "s1", user=ALICE, age_days=40),
            "pref": add(conn, "prefers pasta without cheese", "s3", user=BOB, content_type="user_preference"),
            "parking": add(conn, "the parking lot is behind the building", "s2"),
            "hours": add(conn, "opening hours are nine to five", "s1", content_type="business_info"),
        }
        conn.commit()
        yield conn, ids, migrated_db


def ids_of(result: search.SearchResult) -> list[uuid.UUID]:
    return [hit.id for hit in result.hits]


def test_ranks_lexical_matches_first_with_details(db: Any) -> None:
    conn, ids, _ = db
    result = search.search(conn, HASHING, "pasta with tomato sauce", min_similarity=0.0, top_k=3)
    assert result.hits[0].id == ids["pasta"]
    assert result.hits[0].similarity == pytest.approx(1.0, abs=0.2)
    assert [h.rank for h in result.hits] == [1, 2, 3]
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True)
    top = result.hits[0]
    assert (top.session_id, top.user_id, top.content_type) == ("s1", ALICE, "business_info")
    assert top.content_text == "pasta with tomato sauce and basil"
    assert result.mode == "indexed" and result.embedder == "hashing-v1"
    assert set(result.timing) == {"embed_ms", "query_ms", "total_ms"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"session": "s1"}, {"pasta", "pasta_old"}),
        ({"user": str(BOB)}, {"pasta_bob", "pref"}),
        ({"content_type": "user_preference"}, {"pref"}),
        ({"since": NOW - timedelta(days=20)}, {"pasta", "pasta_bob", "pref"}),
        ({"until": NOW - timedelta(days=5)}, {"pasta_bob", "pasta_old"}),
        ({"since": NOW - timedelta(days=20), "until": NOW - timedelta(days=5)}, {"pasta_bob"}),
        ({"session": "s1", "content_type": "business_info"}, {"pasta"}),
    ],
)
def test_filters_narrow(db: Any, options: dict[str, Any], expected: set[str]) -> None:
    conn, ids, _ = db
    result = search.search(conn, HASHING, "pasta", min_similarity=0.15, **options)
    assert set(ids_of(result)) == {ids[name] for name in expected}


def test_filtered_search_still_returns_top_k_through_the_index(db: Any) -> None:
    # Many rows outside the filter sit nearer the query than the few inside it: an index scan that stopped
    # at ef_search candidates would return fewer than top_k; the iterative scan keeps going.
    conn, _, _ = db
    for i in range(300):
        add(conn, f"pasta pasta pasta special {i}", "crowd")
    wanted = {add(conn, f"a quiet note {i} about pasta", "needle") for i in range(5)}
    conn.commit()
    result = search.search(conn, HASHING, "pasta pasta pasta", session="needle", top_k=5, min_similarity=-1)
    assert set(ids_of(result)) == wanted
    exact = search.search(
        conn, HASHING, "pasta pasta pasta", session="needle", top_k=5, min_similarity=-1, exact=True
    )
    assert ids_of(exact) == ids_of(result)


def test_threshold_is_respected(db: Any) -> None:
    conn, _, _ = db
    everything = search.search(conn, HASHING, "pasta with tomato", min_similarity=-1.0, top_k=10)
    assert len(everything.hits) == 6
    floor = 0.3
    result = search.search(conn, HASHING, "pasta with tomato", min_similarity=floor, top_k=10)
    assert result.hits and all(h.similarity >= floor for h in result.hits)
    assert len(result.hits) == sum(1 for h in everything.hits if h.similarity >= floor)
    assert len(result.hits) < len(everything.hits)


def test_floor_defaults_to_the_model_then_its_setting_then_the_generic_one(db: Any) -> None:
    from memcli.embeddings.floors import CALIBRATED

    conn, ids, _ = db
    result = search.search(conn, HASHING, "pasta")
    assert result.min_similarity == pytest.approx(CALIBRATED["hashing-v1"])
    assert result.floor_source == "model default"
    # The floor stored with the model overrides its calibrated default; the generic 0.7 is not used.
    conn.execute(
        "INSERT INTO memory_settings (key, value) VALUES ('embedding.min_similarity', '0.05') "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
    conn.commit()
    result = search.search(conn, HASHING, "pasta")
    assert (result.min_similarity, result.floor_source) == (
        pytest.approx(0.05),
        "setting embedding.min_similarity",
    )
    assert len(result.hits) == 4
    # A model memcli has no calibration for falls back to search.min_similarity (the SQL examples' 0.7).
    conn.execute("UPDATE memory_settings SET value = 'null' WHERE key = 'embedding.min_similarity'")
    conn.execute("UPDATE memory_settings SET value = '\"some-new-model\"' WHERE key = 'embedding.model'")
    conn.commit()
    result = search.search(conn, None, None, like_id=ids["pasta"])
    assert (result.min_similarity, result.floor_source) == (
        pytest.approx(0.7),
        "setting search.min_similarity",
    )


def test_a_floor_that_hides_results_says_how_many_and_the_best_score(db: Any) -> None:
    conn, _, _ = db
    everything = search.search(
        conn, HASHING, "pasta with tomato", min_similarity=-1, top_k=6, record_access=False
    )
    floor = everything.hits[1].similarity + 1e-4  # only the best one passes
    result = search.search(conn, HASHING, "pasta with tomato", min_similarity=floor, top_k=6)
    assert [h.id for h in result.hits] == [everything.hits[0].id]
    assert result.hidden == len(everything.hits) - 1
    assert result.best_hidden == pytest.approx(everything.hits[1].similarity)
    counts = dict(conn.execute("SELECT id, access_count FROM semantic_memory").fetchall())
    conn.commit()
    assert counts[everything.hits[0].id] == 1 and counts[everything.hits[1].id] == 0  # hidden: not accessed
    nothing = search.search(conn, HASHING, "pasta with tomato", min_similarity=0.99, top_k=6)
    assert nothing.hits == [] and nothing.hidden == len(everything.hits)


def test_exact_and_indexed_agree_on_small_data(db: Any) -> None:
    conn, _, _ = db
    for i in range(200):
        add(
            conn, f"memory number {i} mentions {['soup', 'bread', 'wine', 'salad'][i % 4]} and table {i % 17}"
        )
    conn.commit()
    for query in ("soup and bread", "wine table 3", "pasta"):
        indexed = search.search(conn, HASHING, query, top_k=10, min_similarity=-1, record_access=False)
        exact = search.search(
            conn, HASHING, query, top_k=10, min_similarity=-1, exact=True, record_access=False
        )
        assert exact.mode == "exact"
        # Equal similarities rank by id in both, but the index may see a different row of a tie at the edge:
        # compare the similarity profile, which any miss would change.
        assert [h.similarity for h in indexed.hits] == pytest.approx(
            [h.similarity for h in exact.hits], abs=1e-5
        )
        assert ids_of(indexed)[:3] == ids_of(exact)[:3]


def test_exact_cannot_use_the_index_and_indexed_does(db: Any) -> None:
    conn, _, _ = db
    use_vectors(conn)
    vector = HASHING.embed(["pasta"])[0]
    plans = {}
    for exact in (False, True):
        with conn.transaction():
            search._tune_index_scan(conn, 10)
            conn.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the index the cheap choice
            query = search._vector_query("", exact=exact).as_string(conn)
            plan = conn.execute("EXPLAIN " + query, {"q": vector, "k": 10, "min": 0}).fetchall()
            plans[exact] = "\n".join(row[0] for row in plan)
    assert "idx_semantic_memory_vector" in plans[False]
    assert "idx_semantic_memory_vector" not in plans[True]


def test_exact_stays_exact_after_repeated_indexed_searches(db: Any) -> None:
    # psycopg prepares a statement after five runs; a cached plan must not turn --exact into an index scan.
    conn, _, _ = db
    for _ in range(8):
        search.search(conn, HASHING, "pasta", min_similarity=-1, record_access=False)
    exact = search.search(conn, HASHING, "pasta", min_similarity=-1, exact=True, record_access=False)
    assert exact.mode == "exact" and exact.exact
    with psycopg.connect(conn.info.dsn) as fresh:
        again = search.search(fresh, HASHING, "pasta", min_similarity=-1, exact=True, record_access=False)
    assert ids_of(exact) == ids_of(again)


def test_like_uses_the_stored_vector_and_excludes_itself(db: Any) -> None:
    conn, ids, _ = db
    result = search.search(conn, None, None, like_id=ids["pasta"], min_similarity=0.1)
    assert result.embedder is None and result.like_id == ids["pasta"]
    assert ids["pasta"] not in ids_of(result)
    assert ids_of(result)[0] in {ids["pasta_old"], ids["pasta_bob"], ids["pref"]}
    with pytest.raises(ConfigError, match="no semantic memory"):
        search.search(conn, None, None, like_id=uuid.uuid4())
    unembedded = add(conn, "not embedded yet", embed=False)
    conn.commit()
    with pytest.raises(NotReadyError, match="no embedding yet"):
        search.search(conn, None, None, like_id=unembedded)


def test_hybrid_fuses_full_text_matches(db: Any) -> None:
    conn, ids, _ = db
    # "carbonara" appears in one memory; with a high floor the vector side returns little, the text side
    # still brings the keyword match in.
    result = search.search(conn, HASHING, "carbonara", hybrid=True, min_similarity=0.99)
    assert result.mode == "hybrid"
    assert ids_of(result) == [ids["pasta_bob"]]
    assert result.hits[0].text_rank == 1 and result.hits[0].vector_rank is None
    both = search.search(conn, HASHING, "pasta", hybrid=True, min_similarity=0.1, top_k=3)
    first = both.hits[0]
    assert first.vector_rank is not None and first.text_rank is not None
    assert [h.score for h in both.hits] == sorted([h.score for h in both.hits], reverse=True)
    # Filters apply to both sides.
    filtered = search.search(conn, HASHING, "pasta", hybrid=True, min_similarity=0.1, session="s3")
    assert ids_of(filtered) == [ids["pref"]]
    # --like --hybrid leaves the memory itself out of the text side too, though its words match.
    like = search.search(conn, None, "pasta tomato", like_id=ids["pasta"], hybrid=True, min_similarity=-1)
    assert ids["pasta"] not in ids_of(like) and ids["pasta_bob"] in ids_of(like)


def test_access_is_recorded_for_returned_rows_only(db: Any) -> None:
    conn, ids, _ = db
    result = search.search(conn, HASHING, "pasta", session="s1", min_similarity=0.1)
    returned = set(ids_of(result))
    rows = {
        r[0]: (r[1], r[2])
        for r in conn.execute("SELECT id, access_count, last_accessed_at FROM semantic_memory")
    }
    for memory_id, (count, last) in rows.items():
        if memory_id in returned:
            assert count == 1 and last is not None
        else:
            assert count == 0 and last is None
    search.search(conn, HASHING, "pasta", session="s1", min_similarity=0.1, record_access=False)
    assert (
        conn.execute("SELECT access_count FROM semantic_memory WHERE id = %s", (ids["pasta"],)).fetchone()[0]
        == 1
    )


def test_validation_errors(db: Any) -> None:
    conn, _, _ = db
    with pytest.raises(ConfigError):
        search.search(conn, HASHING, "x", content_type="dreams")
    with pytest.raises(ConfigError, match="UUID"):
        search.search(conn, HASHING, "x", user="alice")
    with pytest.raises(ConfigError, match="nothing to search"):
        search.search(conn, HASHING, "  ")
    with pytest.raises(ConfigError, match="before"):
        search.search(conn, HASHING, "x", since=NOW, until=NOW - timedelta(days=1))


def test_parse_time_bound() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert search.parse_time_bound("7d", now=now) == now - timedelta(days=7)
    assert search.parse_time_bound("90m", now=now) == now - timedelta(minutes=90)
    assert search.parse_time_bound("1h30m", now=now) == now - timedelta(minutes=90)
    assert search.parse_time_bound("2024-05-01T14:30+00:00") == datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    start = search.parse_time_bound("2024-05-01")
    end = search.parse_time_bound("2024-05-01", end=True)
    assert end - start == timedelta(days=1) and start.tzinfo is not None
    with pytest.raises(ConfigError, match="cannot read the date"):
        search.parse_time_bound("last tuesday")


# -- model and dimension guard -------------------------------------------------------------------------


def model_setting(conn: psycopg.Connection) -> Any:
    return conn.execute("SELECT value FROM memory_settings WHERE key = 'embedding.model'").fetchone()[0]


def test_first_write_records_model_and_a_different_model_is_refused(migrated_db: str) -> None:
    class OtherModel(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__(384)
            self.name = "other-model-v2"

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        ensure_compatible(conn, HASHING, record=False)  # a read records nothing
        search.search(conn, HASHING, "nothing stored yet")
        assert model_setting(conn) is None
        memories.remember(conn, HASHING, "first memory", "s1")
        assert model_setting(conn) == "hashing-v1"
        assert conn.execute("SELECT embedding_model FROM semantic_memory").fetchone()[0] == "hashing-v1"
        with pytest.raises(NotReadyError, match=r"'hashing-v1'.*'other-model-v2'"):
            search.search(conn, OtherModel(), "first")
        with pytest.raises(NotReadyError, match=r"'hashing-v1'.*'other-model-v2'"):
            memories.remember(conn, OtherModel(), "second", "s1")
        with pytest.raises(NotReadyError, match=r"'hashing-v1'.*'other-model-v2'"):
            memories.embed_missing(conn, OtherModel())
        assert conn.execute("SELECT count(*) FROM semantic_memory").fetchone()[0] == 1


def test_dimension_mismatch_is_refused_before_anything_is_recorded(migrated_db: str) -> None:
    small = HashingEmbedder(16)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        with pytest.raises(NotReadyError, match=r"384-dimensional.*produces 16"):
            memories.remember(conn, small, "text", "s1")
        assert model_setting(conn) is None
        assert conn.execute("SELECT count(*) FROM semantic_memory").fetchone()[0] == 0


def test_cli_dimension_and_model_mismatch_exit_4_naming_both(
    migrated_db: str, cli: Any, isolated_env: Any
) -> None:
    assert cli("remember", "hello there", "--session", "s1", dsn=migrated_db).exit_code == 0
    (isolated_env / "memcli.toml").write_text("[embedding]\ndimension = 32\n")
    result = cli("search", "hello", dsn=migrated_db)
    assert result.exit_code == 4
    assert "384" in result.stderr and "32" in result.stderr and "hashing-v1" in result.stderr
    (isolated_env / "memcli.toml").unlink()
    result = cli("search", "hello", "--embedder", "local", dsn=migrated_db)
    assert result.exit_code == 4
    assert "'hashing-v1'" in result.stderr and "all-MiniLM-L6-v2" in result.stderr
    result = cli("embed", "--embedder", "local", dsn=migrated_db)
    assert result.exit_code == 4


# -- CLI ---------------------------------------------------------------------------------------------------


def test_empty_database_is_a_friendly_message(migrated_db: str, cli: Any) -> None:
    result = cli("search", "anything at all", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    assert "No memories yet" in result.stdout and "memcli remember" in result.stdout
    data = json.loads(cli("search", "anything", "--json", dsn=migrated_db).stdout)
    assert data["hits"] == [] and data["empty_database"] is True


def test_not_migrated_exits_4(empty_db: str, cli: Any) -> None:
    for args in (
        ["search", "x"],
        ["remember", "x", "--session", "s"],
        ["embed"],
        ["search", "--sections", "x"],
    ):
        result = cli(*args, dsn=empty_db)
        assert result.exit_code == 4, (args, result.stdout, result.stderr)
        assert "memcli migrate" in result.stderr


def test_remember_then_search_round_trip(migrated_db: str, cli: Any) -> None:
    out = cli(
        "remember",
        "The guest at table 4 is allergic to peanuts",
        "--session",
        "sess-42",
        "--user",
        str(ALICE),
        "--type",
        "user_preference",
        "--metadata",
        '{"source": "waiter"}',
        "--json",
        dsn=migrated_db,
    )
    assert out.exit_code == 0, out.stderr
    memory = json.loads(out.stdout)
    assert memory["embedding_model"] == "hashing-v1" and memory["dimension"] == 384
    cli("remember", "Parking is free after six", "--session", "sess-7", dsn=migrated_db)

    found = cli("search", "allergic to peanuts", "--min-similarity", "0.3", "--json", dsn=migrated_db)
    assert found.exit_code == 0, found.stderr
    data = json.loads(found.stdout)
    assert [h["id"] for h in data["hits"]] == [memory["id"]]
    hit = data["hits"][0]
    assert hit["content_text"] == "The guest at table 4 is allergic to peanuts"
    assert (hit["session_id"], hit["user_id"], hit["content_type"]) == (
        "sess-42",
        str(ALICE),
        "user_preference",
    )

    table = cli("search", "allergic to peanuts", "--min-similarity", "0.3", dsn=migrated_db)
    assert table.exit_code == 0
    for cell in ("sim", "user_preference", "sess-42", "allergic to peanuts", "hashing-v1"):
        assert cell in table.stdout
    with psycopg.connect(migrated_db) as conn:
        metadata = conn.execute(
            "SELECT metadata FROM semantic_memory WHERE id = %s", (memory["id"],)
        ).fetchone()[0]
    assert metadata == {"source": "waiter"}


def test_cli_options_reach_the_search(db: Any, cli: Any) -> None:
    _, ids, dsn = db
    out = cli(
        "search", "pasta", "--session", "s1", "--since", "20d", "--min-similarity", "0.1", "--json", dsn=dsn
    )
    assert [h["id"] for h in json.loads(out.stdout)["hits"]] == [str(ids["pasta"])]
    out = cli(
        "search", "--like", str(ids["pasta"]), "--min-similarity", "0.1", "--top-k", "1", "--json", dsn=dsn
    )
    data = json.loads(out.stdout)
    assert len(data["hits"]) == 1 and data["hits"][0]["id"] != str(ids["pasta"])
    out = cli("search", "carbonara", "--hybrid", "--json", dsn=dsn)
    assert [h["id"] for h in json.loads(out.stdout)["hits"]] == [str(ids["pasta_bob"])]
    out = cli(
        "search", "pasta", "--exact", "--type", "user_preference", "--min-similarity", "0", "--json", dsn=dsn
    )
    assert [h["id"] for h in json.loads(out.stdout)["hits"]] == [str(ids["pref"])]
    # --like with --hybrid: the stored vector for the vector side, the text for the full-text side.
    out = cli(
        "search",
        "carbonara",
        "--like",
        str(ids["pasta"]),
        "--hybrid",
        "--min-similarity",
        "0.9",
        "--json",
        dsn=dsn,
    )
    data = json.loads(out.stdout)
    assert data["embedder"] is None and [h["id"] for h in data["hits"]] == [str(ids["pasta_bob"])]
    both = cli("search", "pasta", "--like", str(ids["pasta"]), dsn=dsn)
    assert both.exit_code == 2 and "not both" in both.stderr
    bad = cli("search", "pasta", "--until", "someday", dsn=dsn)
    assert bad.exit_code == 2 and "cannot read the date" in bad.stderr
    bad = cli("search", "pasta", "--type", "dreams", dsn=dsn)
    assert bad.exit_code == 2
    nothing = cli("search", "zebra quantum", dsn=dsn)
    assert nothing.exit_code == 0 and "No memories matched" in nothing.stdout


def test_embed_backfill_is_batched_resumable_and_searchable(migrated_db: str, cli: Any) -> None:
    with psycopg.connect(migrated_db) as conn:
        for i in range(25):
            add(conn, f"unembedded memory {i} about {'soup' if i % 5 == 0 else 'bread'}", "s1", embed=False)
        conn.commit()
    dry = json.loads(cli("embed", "--dry-run", "--json", dsn=migrated_db).stdout)
    assert (dry["pending"], dry["planned"], dry["embedded"]) == (25, 25, 0)

    first = json.loads(cli("embed", "--batch-size", "4", "--limit", "10", "--json", dsn=migrated_db).stdout)
    assert (first["embedded"], first["batches"], first["remaining"]) == (10, 3, 15)
    # A row the application holds is skipped, not waited for; the next run picks it up.
    with psycopg.connect(migrated_db) as holder:
        held = holder.execute(
            "SELECT id FROM semantic_memory WHERE embedding_vector IS NULL ORDER BY id LIMIT 1 FOR UPDATE"
        ).fetchone()[0]
        second = json.loads(cli("embed", "--batch-size", "4", "--json", dsn=migrated_db).stdout)
        assert (second["embedded"], second["remaining"]) == (14, 1)
    with psycopg.connect(migrated_db) as conn, pytest.raises(ValueError, match="transaction open"):
        conn.execute("SELECT 1")
        memories.embed_missing(conn, HASHING)  # batches must commit on their own
    third = json.loads(cli("embed", "--json", dsn=migrated_db).stdout)
    assert (third["embedded"], third["remaining"]) == (1, 0)
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute("SELECT embedding_model FROM semantic_memory WHERE id = %s", (held,)).fetchone()
        assert row[0] == "hashing-v1"
        assert conn.execute("SELECT value FROM memory_settings WHERE key = 'embedding.model'").fetchone()[
            0
        ] == ("hashing-v1")
    again = cli("embed", dsn=migrated_db)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    found = json.loads(cli("search", "soup", "--min-similarity", "0.3", "--json", dsn=migrated_db).stdout)
    assert len(found["hits"]) == 5


def test_unembedded_memories_are_pointed_out(migrated_db: str, cli: Any) -> None:
    with psycopg.connect(migrated_db) as conn:
        add(conn, "waiting for an embedding", embed=False)
        conn.commit()
    result = cli("search", "waiting", dsn=migrated_db)
    assert result.exit_code == 0 and "memcli embed" in result.stdout


# -- business sections -----------------------------------------------------------------------------------


def test_search_sections_full_text_then_substring(migrated_db: str, cli: Any) -> None:
    with psycopg.connect(migrated_db) as conn:
        biz = conn.execute("INSERT INTO businesses (name) VALUES ('Trattoria Uno') RETURNING id").fetchone()[
            0
        ]
        other = conn.execute("INSERT INTO businesses (name) VALUES ('Cafe Due') RETURNING id").fetchone()[0]
        rows = [
            (biz, "menu", "Mains", {"items": ["Vegetarian lasagne", "Beef ragu"]}, True),
            (biz, "hours", "Opening hours", {"monday": "closed", "tuesday": "12:00-22:00"}, True),
            (biz, "location", "Address", {"phone": "+39 055 123456", "city": "Florence"}, True),
            (biz, "policies", "Old policy", {"text": "vegetarian options on request"}, False),
            (other, "menu", "Drinks", {"items": ["Espresso", "Vegetarian smoothie"]}, True),
        ]
        for business_id, kind, name, content, active in rows:
            conn.execute(
                """
                INSERT INTO business_context_sections
                    (business_id, section_type, section_name, section_content, is_active)
                VALUES (%s, %s, %s, %s, %s)
                """,
                (business_id, kind, name, psycopg.types.json.Jsonb(content), active),
            )
        conn.commit()
        result = search.search_sections(conn, "vegetarian")
        assert {h.section_name for h in result.hits} == {"Mains", "Drinks"}  # inactive section left out
        assert all(h.matched_by == "fulltext" for h in result.hits)
        only = search.search_sections(conn, "vegetarian", business_id=biz)
        assert [(h.section_name, h.business_name) for h in only.hits] == [("Mains", "Trattoria Uno")]
        assert search.search_sections(conn, "vegetarian", section_type="hours").hits == []
        fragment = search.search_sections(conn, "055 123")  # stemming cannot find a number fragment
        assert [(h.section_name, h.matched_by) for h in fragment.hits] == [("Address", "substring")]
        assert search.search_sections(conn, "100%").hits == []  # % is literal, not a wildcard

    out = cli("search", "--sections", "opening hours", "--json", dsn=migrated_db)
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert [h["section_name"] for h in data["hits"]] == ["Opening hours"]
    assert data["hits"][0]["section_content"]["monday"] == "closed"
    table = cli("search", "--sections", "vegetarian", "--business", str(other), dsn=migrated_db)
    assert "Drinks" in table.stdout and "Cafe Due" in table.stdout and "Mains" not in table.stdout


# -- pgvector adapter ----------------------------------------------------------------------------------


def test_vectors_round_trip_exactly_through_the_adapter(migrated_db: str) -> None:
    import numpy as np

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        memory_id = memories.remember(conn, HASHING, "pasta with basil", "s1")
        neighbour = memories.remember(conn, HASHING, "pasta with basil and tomato", "s1")
        stored = conn.execute("SELECT embedding_vector FROM semantic_memory WHERE id = %s", (memory_id,))
        vector = stored.fetchone()[0]
        use_vectors(conn)  # registered already: a second call is a no-op
        found = search.search(conn, None, None, like_id=memory_id, min_similarity=-1)
    expected = HASHING.embed(["pasta with basil"])[0]
    np.testing.assert_array_equal(np.asarray(vector.to_numpy(), dtype=np.float32), expected)
    assert [h.id for h in found.hits] == [neighbour]  # the stored vector, read back, finds its neighbour


def test_writing_memories_does_not_import_the_search_module() -> None:
    import subprocess
    import sys

    code = "import sys, memcli.memories; print('memcli.search' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# -- access recording ----------------------------------------------------------------------------------


def _updates(conn: psycopg.Connection) -> tuple[int, int]:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'semantic_memory'"
    ).fetchone()
    return int(row[0]), int(row[1])


def test_recording_access_updates_rows_in_place_without_touching_an_index(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        reloptions = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'semantic_memory'"
        ).fetchone()
        assert "fillfactor=75" in (reloptions[0] or [])
        indexed = conn.execute(
            """
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = 'semantic_memory'::regclass
            """
        ).fetchall()
        assert {"access_count", "last_accessed_at"}.isdisjoint(name for (name,) in indexed)
        for i in range(60):
            add(conn, f"memory {i} about {'soup' if i % 2 else 'bread'} and table {i % 7}", f"s{i % 5}")
        conn.execute("ANALYZE semantic_memory")
        before = _updates(conn)
        returned = 0
        for query in ("soup", "bread", "table 3", "soup and bread", "table 5 soup"):
            returned += len(search.search(conn, HASHING, query, min_similarity=-1, top_k=10).hits)
        upd, hot = (a - b for a, b in zip(_updates(conn), before, strict=True))
        counted = conn.execute("SELECT sum(access_count) FROM semantic_memory").fetchone()[0]
    assert returned == 50 and counted == 50  # exact: one per returned row
    # Heap-only (HOT) updates, the index untouched. Not quite all: two rows of one page returned by the same
    # search share the page's one free slot (with fillfactor 100 hardly any update is HOT).
    assert upd == 50 and hot >= 40


def test_a_callers_transaction_keeps_its_durability(db: Any) -> None:
    conn, _, _ = db
    with conn.transaction():
        assert search.search(conn, HASHING, "pasta", min_similarity=-1).hits
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    conn.commit()
