"""The vector index: per-query ef_search, build memory sizing, online rebuilds, tuning to the recall target,
health's recall report, and the monthly job leaving a healthy vector index alone."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pgvector.psycopg import register_vector

from memcli import vector_index as vi
from memcli import vector_recall
from memcli.db import connect
from memcli.errors import ConfigError
from memcli.health import Status, run_checks
from memcli.jobs.locks import try_lock, unlock

DIM = 384


def clustered(n: int, seed: int = 3, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = centers[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def load(dsn: str, vectors: np.ndarray) -> None:
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY semantic_memory (session_id, content_type, content_text, embedding_vector) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["text", "text", "text", "vector"])
            for i, vector in enumerate(vectors):
                copy.write_row((f"s{i % 50}", "conversation", f"memory {i}", vector))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE semantic_memory")


def setting(dsn: str, key: str) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT value FROM memory_settings WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


# -- ef_search per query -----------------------------------------------------------------------------------


@given(st.integers(1, 2000), st.integers(1, 1000), st.booleans())
def test_ef_search_covers_top_k_and_widens_for_filters(base: int, top_k: int, filtered: bool) -> None:
    ef = vi.ef_search_for(base, top_k, filtered=filtered)
    assert vi.EF_SEARCH_MIN <= ef <= vi.EF_SEARCH_MAX
    assert ef >= min(vi.EF_SEARCH_MAX, 2 * top_k, max(base, vi.EF_SEARCH_MIN))
    assert ef >= vi.ef_search_for(base, top_k)  # a filter never narrows the list
    if filtered and 2 * max(base, 2 * top_k, vi.EF_SEARCH_MIN) <= vi.EF_SEARCH_MAX:
        assert ef == 2 * vi.ef_search_for(base, top_k)


def test_search_uses_the_tuned_ef_search(migrated_db: str) -> None:
    """memcli.search sets hnsw.ef_search from search.ef_search, widened for top-k and for filters."""
    from memcli.search import search

    load(migrated_db, clustered(50))
    model = "sentence-transformers/all-MiniLM-L6-v2"

    class Fixed:
        name, dimension = model, DIM

        def embed(self, texts: object) -> np.ndarray:
            return clustered(1, seed=9)

    with psycopg.connect(migrated_db) as conn:
        conn.execute(
            "INSERT INTO memory_settings (key, value) VALUES ('search.ef_search', '321') "
            "ON CONFLICT (key) DO UPDATE SET value = '321'"
        )
        conn.execute(
            "UPDATE memory_settings SET value = to_jsonb(%s::text) WHERE key = 'embedding.model'", (model,)
        )
        conn.commit()
        used = {}
        for label, options in (
            ("plain", {"top_k": 5}),
            ("filtered", {"top_k": 5, "session": "s1"}),
            ("wide", {"top_k": 400}),
        ):
            # Inside an outer transaction search's SET LOCAL outlives its savepoint: read what it set.
            with conn.transaction():
                search(conn, Fixed(), "q", min_similarity=-1, record_access=False, **options)
                used[label] = int(conn.execute("SELECT current_setting('hnsw.ef_search')").fetchone()[0])
    assert used == {"plain": 321, "filtered": 642, "wide": 800}


# -- build memory ------------------------------------------------------------------------------------------


def test_plan_says_when_the_graph_will_not_fit() -> None:
    fits = vi.plan_build(1_000_000, DIM, m=16, ef_construction=64, cap_mb=8192)
    assert fits.fits and fits.maintenance_work_mem_mb == fits.graph_mb and not fits.warnings
    assert 2000 < fits.graph_mb < 3500  # ~2.5 kB a row at 384 dims, m=16
    capped = vi.plan_build(1_000_000, DIM, m=16, ef_construction=64, cap_mb=1024)
    assert not capped.fits and capped.maintenance_work_mem_mb == 1024
    assert "does not fit" in capped.warnings[0] and vi.BUILD_MEMORY_CAP_KEY in capped.warnings[0]
    half = vi.plan_build(1_000_000, DIM, m=16, ef_construction=64, cap_mb=8192, column_type="halfvec")
    assert half.graph_mb < fits.graph_mb - 600  # 768 bytes less per row
    tiny = vi.plan_build(100, DIM, m=16, ef_construction=64, cap_mb=8192)
    assert tiny.maintenance_work_mem_mb == 64 and tiny.workers == 0  # never below the server default


def _build_notices(dsn: str, memory_kb: int) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("DROP INDEX IF EXISTS idx_semantic_memory_vector")
        conn.execute(f"SET maintenance_work_mem = '{memory_kb}kB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        conn.execute(vi.build_statement(vi.INDEX_NAME, "vector", 16, 32, concurrently=False))
    return [n for n in notices if "no longer fits" in n]


@pytest.mark.slow
def test_graph_estimate_matches_pgvectors_own_accounting(migrated_db: str) -> None:
    """Sized by the estimate, pgvector builds in memory; at 70% of it, it runs out (its NOTICE says so)."""
    rows = 2500
    load(migrated_db, clustered(rows))
    estimate_kb = math.ceil(vi.graph_bytes(rows, DIM, 16) / 1024)
    assert _build_notices(migrated_db, estimate_kb) == []
    short = _build_notices(migrated_db, int(estimate_kb * 0.7))
    assert short, "the estimate is more than 1.4x what pgvector needs"
    fitted = int(re.search(r"after (\d+) tuples", short[0]).group(1))  # type: ignore[union-attr]
    measured_per_row = estimate_kb * 0.7 * 1024 / fitted
    assert vi.graph_bytes(1, DIM, 16) >= measured_per_row  # the estimate never falls short


# -- rebuilds ----------------------------------------------------------------------------------------------


def test_rebuild_changes_parameters_online_and_replaces_the_index(cli, migrated_db: str) -> None:
    load(migrated_db, clustered(300))
    dry = cli("index", "rebuild", "--m", "8", "--ef-construction", "32", "--dry-run", dsn=migrated_db)
    assert dry.exit_code == 0 and "would rebuild" in dry.stdout
    with psycopg.connect(migrated_db) as conn:
        # a new database's index already has the parameters chosen for scale (revision 0007)
        assert vi.index_info(conn).m == vi.DEFAULT_M  # type: ignore[union-attr]
        # A leftover of an interrupted rebuild is cleared first.
        conn.execute(vi.build_statement(vi.INDEX_NAME + vi.NEW_SUFFIX, "vector", 4, 16, concurrently=False))
        conn.commit()
    done = cli("index", "rebuild", "--m", "8", "--ef-construction", "32", "--json", dsn=migrated_db)
    assert done.exit_code == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["build"]["m"] == 8 and document["seconds"] > 0 and document["bytes"] > 0
    with psycopg.connect(migrated_db) as conn:
        info = vi.index_info(conn)
        assert info is not None and info.valid and (info.m, info.ef_construction) == (8, 32)
        names = conn.execute(
            "SELECT array_agg(indexrelid::regclass::text) FROM pg_index "
            "WHERE indrelid = 'semantic_memory'::regclass AND indexrelid::regclass::text LIKE '%vector%'"
        ).fetchone()[0]
    assert names == [vi.INDEX_NAME]


def test_rebuild_and_tune_refuse_while_another_runs(cli, migrated_db: str) -> None:
    load(migrated_db, clustered(1200))
    before = setting(migrated_db, vi.EF_SEARCH_KEY)
    holder = connect(migrated_db, autocommit=True)
    try:
        assert try_lock(holder, vi.LOCK_NAME)
        for args in (("index", "rebuild"), ("tune",)):
            result = cli(*args, dsn=migrated_db)
            assert result.exit_code == 75, (args, result.stdout, result.stderr)
            assert "lock" in result.stderr
        unlock(holder, vi.LOCK_NAME)
    finally:
        holder.close()
    assert setting(migrated_db, vi.EF_SEARCH_KEY) == before  # nothing was changed
    assert setting(migrated_db, vi.LAST_RECALL_KEY) is None


def test_bad_options_and_settings_exit_2(cli, migrated_db: str) -> None:
    for bad in ("0", "-0.5", "1.01", "nan"):
        result = cli("tune", "--target", bad, dsn=migrated_db)
        assert result.exit_code == 2, (bad, result.stdout, result.stderr)
        assert "recall target" in result.stderr and "Traceback" not in result.stderr
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO memory_settings (key, value) VALUES ('search.recall_target', '1.5') "
            "ON CONFLICT (key) DO UPDATE SET value = '1.5'"
        )
    assert cli("tune", dsn=migrated_db).exit_code == 2
    assert cli("index", "rebuild", "--m", "1", dsn=migrated_db).exit_code == 2
    assert cli("index", "rebuild", "--memory-cap", "10MB", dsn=migrated_db).exit_code == 2
    with pytest.raises(ConfigError):
        vi.check_recall_target("most")


# -- tuning and the recall report ----------------------------------------------------------------------------


def test_tune_on_a_tiny_table_changes_nothing(cli, migrated_db: str) -> None:
    load(migrated_db, clustered(200))
    before = setting(migrated_db, vi.EF_SEARCH_KEY)
    result = cli("tune", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["too_small"] and "Nothing changed" in document["message"]
    assert setting(migrated_db, vi.EF_SEARCH_KEY) == before
    assert setting(migrated_db, vi.LAST_RECALL_KEY) is None


@pytest.mark.slow
def test_tune_meets_the_target_and_health_reports_it(cli, migrated_db: str) -> None:
    load(migrated_db, clustered(1200))
    result = cli("tune", "--target", "0.9", "--queries", "20", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    chosen = document["ef_search"]
    assert document["measurement"]["recall"] >= 0.9 and document["rebuild"] is None
    assert setting(migrated_db, vi.EF_SEARCH_KEY) == chosen
    assert setting(migrated_db, vi.RECALL_TARGET_KEY) == 0.9
    # the least: every smaller candidate tried fell short
    assert all(row["recall"] < 0.9 for row in document["sweep"] if row["ef_search"] < chosen)

    conn = connect(migrated_db)
    try:
        reported = run_checks(conn, ["vector_recall_measured"]).result("vector_recall_measured")
        assert reported.status is Status.OK and reported.value == document["measurement"]["recall"]
        # A measurement below the target warns, and says tuning will not do when it already found so.
        low = vector_recall.RecallMeasurement(**{**document["measurement"], "recall": 0.5})
        low.rebuild_recommended = True
        vector_recall.store(conn, low)
        conn.commit()
        reported = run_checks(conn, ["vector_recall_measured"]).result("vector_recall_measured")
    finally:
        conn.close()
    assert reported.status is Status.WARN and "index rebuild" in (reported.hint or "")


@pytest.mark.slow
def test_tune_recommends_a_rebuild_when_no_ef_search_reaches_the_target(migrated_db: str) -> None:
    # Nearly uniform vectors and a degenerate graph (2 links a node), searched with short lists only.
    load(migrated_db, clustered(1200, clusters=1200))
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_semantic_memory_vector")
        conn.execute(vi.build_statement(vi.INDEX_NAME, "vector", 2, 4, concurrently=False))
        result = vector_recall.tune(conn, target=1.0, queries=10, candidates=(10, 20))
        reason = vi.rebuild_reason(conn)
    assert result.measurement is not None and result.measurement.recall < 1.0
    assert result.rebuild is not None and result.rebuild["m"] > 2
    assert result.rebuild["command"].startswith("memcli index rebuild --m ")
    last = setting(migrated_db, vi.LAST_RECALL_KEY)
    assert isinstance(last, dict) and last["rebuild_recommended"]
    assert reason is not None and "recall" in reason  # the monthly job will rebuild it


@pytest.mark.slow
def test_deep_health_records_recall_for_the_plain_run(cli, migrated_db: str) -> None:
    load(migrated_db, clustered(1500))
    before = json.loads(cli("health", "--json", "--check", "vector_recall_measured", dsn=migrated_db).stdout)
    assert "not measured yet" in before["checks"][0]["message"]
    deep = cli("health", "--json", "--deep", "--check", "vector_recall", dsn=migrated_db)
    measured = json.loads(deep.stdout)["checks"][0]
    assert measured["status"] == "ok" and measured["details"]["index_used"]
    after = json.loads(cli("health", "--json", "--check", "vector_recall_measured", dsn=migrated_db).stdout)
    assert after["checks"][0]["value"] == measured["value"]


# -- the monthly job ---------------------------------------------------------------------------------------


def test_monthly_reindex_leaves_a_healthy_vector_index_alone(migrated_db: str) -> None:
    from memcli.jobs.optimize import reindex

    load(migrated_db, clustered(300))
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        oid_before = conn.execute("SELECT to_regclass(%s)::oid", (vi.INDEX_NAME,)).fetchone()[0]
        result = reindex(conn)
        oid_after = conn.execute("SELECT to_regclass(%s)::oid", (vi.INDEX_NAME,)).fetchone()[0]
    assert oid_after == oid_before  # not rebuilt
    assert [s["index"] for s in result.skipped] == [vi.INDEX_NAME]
    assert result.rebuilt and vi.INDEX_NAME not in {r["index"] for r in result.rebuilt}

    with psycopg.connect(migrated_db, autocommit=True) as conn:  # a failed build: invalid
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (vi.INDEX_NAME,)
        )
        result = reindex(conn)
        info = vi.index_info(conn)
    rebuilt = {r["index"]: r for r in result.rebuilt}
    assert "invalid" in rebuilt[vi.INDEX_NAME]["reason"] and info is not None and info.valid
