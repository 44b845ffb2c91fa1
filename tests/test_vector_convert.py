"""halfvec: a new database migrated with it, and the online conversion of a live one (both directions) while
searches run; interrupted, resumed, aborted; the revision's downgrade; the bad input."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from memcli import migrations
from memcli.embeddings.hashing import HashingEmbedder
from memcli.errors import ConfigError
from memcli.memories import embed_missing, remember
from memcli.reembed import reembed
from memcli.search import search
from memcli.seed import seed_demo
from memcli.vector_convert import convert, convert_abort
from tests.importing import scalar, stored_vector, vec

HASHING = HashingEmbedder()
PREVIOUS = "0008_vector_index_parameters"


def column_type(dsn: str) -> str:
    return scalar(
        dsn,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'semantic_memory'::regclass AND attname = 'embedding_vector' AND NOT attisdropped",
    )


def index_def(dsn: str) -> str:
    return scalar(
        dsn,
        "SELECT pg_get_indexdef(indexrelid) || ' ' || indisvalid FROM pg_index "
        "WHERE indexrelid = 'idx_semantic_memory_vector'::regclass",
    )


def recorded_type(dsn: str) -> str | None:
    rows = (
        psycopg.connect(dsn)
        .execute("SELECT value FROM memory_settings WHERE key = 'embedding.vector_type'")
        .fetchall()
    )
    return rows[0][0] if rows else None


@pytest.fixture
def demo_db(migrated_db: str) -> str:
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, HASHING, businesses=3, sessions=40, random_seed=7)
    return migrated_db


def test_a_new_database_migrated_with_halfvec_stores_searches_and_downgrades(
    cli, empty_db: str, tmp_path: Path
) -> None:
    assert cli("migrate", "--vector-type", "halfvec", dsn=empty_db).exit_code == 0
    assert column_type(empty_db) == "halfvec(384)" and recorded_type(empty_db) == "halfvec"
    index = index_def(empty_db)
    assert (
        "hnsw (embedding_vector halfvec_cosine_ops)" in index and "m='24'" in index and index.endswith("true")
    )
    with psycopg.connect(empty_db) as conn:
        kept = remember(conn, HASHING, "vegetarian lasagne on fridays", "s1")
        remember(conn, HASHING, "parking is behind the building", "s1")
        conn.execute(
            "INSERT INTO semantic_memory (session_id, content_type, content_text) "
            "VALUES ('s1', 'conversation', 'opening hours nine to five')"
        )
        conn.commit()
        assert embed_missing(conn, HASHING).embedded == 1
        hits = search(conn, HASHING, "vegetarian lasagne", top_k=3, min_similarity=-1).hits
        assert hits[0].id == kept and len(hits) == 3
        assert search(conn, None, None, like_id=kept, top_k=1, min_similarity=-1).hits
        assert search(conn, HASHING, "lasagne", hybrid=True, top_k=2).hits[0].id == kept
    # an import writes its vectors (binary COPY) as halfvec
    text = "prefers a window table"
    path = tmp_path / "in.jsonl"
    line = {
        "id": "p1",
        "text": text,
        "session_id": "s2",
        "embedding": vec(text),
        "embedding_model": HASHING.name,
    }
    path.write_text(json.dumps(line) + "\n", "utf-8")
    imported = cli("import", "jsonl", str(path), "--json", dsn=empty_db)
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout)["vectors_kept"] == 1
    with psycopg.connect(empty_db) as conn:
        assert search(conn, HASHING, text, top_k=1).hits[0].content_text == text
    # Down to the revision before: vector again, values kept, the setting gone.
    migrations.downgrade(empty_db, PREVIOUS)
    assert column_type(empty_db) == "vector(384)" and recorded_type(empty_db) is None
    assert "vector_cosine_ops" in index_def(empty_db)
    np.testing.assert_allclose(
        stored_vector(empty_db, kept), HASHING.embed(["vegetarian lasagne on fridays"])[0], atol=1e-3
    )
    migrations.upgrade(empty_db)  # the default type: vector stays
    assert column_type(empty_db) == "vector(384)" and recorded_type(empty_db) == "vector"


def test_migrate_refuses_another_type_for_a_database_with_memories(cli, demo_db: str) -> None:
    result = cli("migrate", "--vector-type", "halfvec", dsn=demo_db)
    assert result.exit_code == 2
    assert "vectors convert halfvec" in result.output and "Traceback" not in result.output
    assert column_type(demo_db) == "vector(384)"
    assert cli("migrate", "--vector-type", "float8", dsn=demo_db).exit_code == 2
    assert cli("migrate", "--vector-type", "vector", dsn=demo_db).exit_code == 0


class Searcher(threading.Thread):
    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.searches, self.empty = 0, 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    result = search(conn, HASHING, "vegetarian dinner for two", min_similarity=-1.0, top_k=5)
                except BaseException as exc:  # pragma: no cover - the test reports it
                    self.errors.append(exc)
                    return
                self.searches += 1
                self.empty += not result.hits


@pytest.mark.slow
def test_convert_to_halfvec_and_back_while_searches_run(cli, demo_db: str) -> None:
    rows = scalar(demo_db, "SELECT count(embedding_vector) FROM semantic_memory")
    probe_id, probe_text = (
        psycopg.connect(demo_db).execute("SELECT id, content_text FROM semantic_memory").fetchone()
    )
    with psycopg.connect(demo_db) as conn:
        before = [h.id for h in search(conn, HASHING, probe_text, top_k=5, min_similarity=-1).hits]
    for kind, back in (("halfvec", "vector"), ("vector", "halfvec")):
        searcher = Searcher(demo_db)
        searcher.start()
        time.sleep(0.2)
        with psycopg.connect(demo_db) as conn:
            result = convert(conn, kind, batch_size=50, pause_seconds=0.01)
        time.sleep(0.2)
        searcher.stop.set()
        searcher.join(10)
        assert not searcher.errors and searcher.searches > 0 and searcher.empty == 0
        assert result.phase == "swapped" and result.from_type == back
        assert result.filled + result.caught_up == rows
        assert column_type(demo_db) == f"{kind}(384)" and recorded_type(demo_db) == kind
        index = index_def(demo_db)
        assert f"hnsw (embedding_vector {kind}_cosine_ops)" in index and index.endswith("true")
        assert "m='24'" in index
        assert (
            scalar(demo_db, "SELECT count(*) FROM memory_settings WHERE key = 'vectors.convert_target'") == 0
        )
        # the same neighbours, the model kept on every row
        with psycopg.connect(demo_db) as conn:
            after = [h.id for h in search(conn, HASHING, probe_text, top_k=5, min_similarity=-1).hits]
        assert after[0] == probe_id and after[:3] == before[:3]
        assert (
            scalar(
                demo_db,
                "SELECT count(*) FROM semantic_memory WHERE embedding_model IS DISTINCT FROM %s"
                " AND embedding_vector IS NOT NULL",
                (HASHING.name,),
            )
            == 0
        )
    # nothing to do the second time
    again = json.loads(cli("vectors", "convert", "vector", "--json", dsn=demo_db).stdout)
    assert again["phase"] == "nothing-to-do"


def test_interrupted_conversion_keeps_search_working_resumes_and_aborts(cli, demo_db: str) -> None:
    with psycopg.connect(demo_db) as conn:
        stopped = convert(conn, "halfvec", batch_size=40, max_rows=80)
    assert stopped.phase == "stopped" and stopped.filled == 80
    assert column_type(demo_db) == "vector(384)"
    # search and writes go on against the live column; a memory written now is converted too
    found = cli("search", "vegetarian", "--min-similarity", "0", "--json", dsn=demo_db)
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"]
    assert cli("remember", "written during the change", "--session", "s-new", dsn=demo_db).exit_code == 0
    # another change is refused while this one is under way
    with psycopg.connect(demo_db) as conn, pytest.raises(ConfigError, match="conversion"):
        reembed(conn, HashingEmbedder(variant="b"), "hashing:b")
    assert cli("vectors", "convert", "vector", dsn=demo_db).exit_code == 2
    dry = json.loads(cli("vectors", "convert", "halfvec", "--dry-run", "--json", dsn=demo_db).stdout)
    assert dry["dry_run"] and dry["estimated_index_bytes"] < dry["index_bytes_before"]
    # abort: the shadow goes, the vectors stay as they were
    with psycopg.connect(demo_db) as conn:
        aborted = convert_abort(conn)
    assert aborted.aborted and aborted.filled >= 80
    assert column_type(demo_db) == "vector(384)"
    assert not scalar(
        demo_db,
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'semantic_memory'::regclass "
        "AND attname = 'embedding_vector_next' AND NOT attisdropped",
    )
    # resume from scratch and finish; the memory written meanwhile is found
    resumed = cli("vectors", "convert", "halfvec", dsn=demo_db)
    assert resumed.exit_code == 0 and "Converted to halfvec" in resumed.output
    with psycopg.connect(demo_db) as conn:
        hits = search(conn, HASHING, "written during the change", top_k=1).hits
    assert hits and hits[0].content_text == "written during the change"


def test_bad_type_and_lone_abort(cli, demo_db: str) -> None:
    bad = cli("vectors", "convert", "float8", dsn=demo_db)
    assert bad.exit_code == 2 and "vector, halfvec" in bad.output
    assert cli("vectors", "convert", dsn=demo_db).exit_code == 2
    lone = cli("vectors", "convert", "--abort", dsn=demo_db)
    assert lone.exit_code == 0 and "No conversion under way" in lone.output
