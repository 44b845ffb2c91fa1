"""Each problem health looks for, provoked for real in a migrated database, and detected."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from memcli.db import connect
from memcli.health import CheckResult, Status, run_checks


def check(dsn: str, name: str, **thresholds: float) -> CheckResult:
    conn = connect(dsn)
    try:
        return run_checks(conn, [name], thresholds=thresholds).result(name)
    finally:
        conn.close()


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def vector_sql(alias: str = "g") -> str:
    """A random 384-dimension vector per row of ``alias`` (the outer reference makes it per row)."""
    return f"(SELECT array_agg(random() + {alias} * 0 + x * 0)::vector FROM generate_series(1, 384) x)"


def health_json(cli, dsn: str, *args: str) -> tuple[int, dict]:
    result = cli("health", "--json", *args, dsn=dsn)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


# --- memory hygiene ----------------------------------------------------------------------------------------


def test_expired_backlog(cli, migrated_db: str) -> None:
    execute(
        migrated_db,
        """
        INSERT INTO conversation_memory (session_id, memory_type, context_key, created_at, expires_at)
        SELECT 's', 'long_term', 'recent' || g, now() - interval '91 days', now() - interval '1 hour'
        FROM generate_series(1, 3) g
        """,
    )
    result = check(migrated_db, "expired_backlog")
    assert result.status is Status.OK and result.value == 3  # expired an hour ago: cleanup runs daily
    execute(
        migrated_db,
        """
        INSERT INTO conversation_memory (session_id, memory_type, context_key, created_at, expires_at)
        VALUES ('s', 'short_term', 'old', now() - interval '10 days', now() - interval '3 days')
        """,
    )
    code, doc = health_json(cli, migrated_db)
    assert code == 0  # a warning: exit 1 only with --strict
    found = next(c for c in doc["checks"] if c["name"] == "expired_backlog")
    assert found["status"] == "warn" and found["value"] == 4
    assert "oldest expired 3.0 d ago" in found["message"] and "memcli cleanup" in found["hint"]
    assert cli("health", "--strict", "--check", "expired_backlog", dsn=migrated_db).exit_code == 1


def test_consolidation_backlog_and_missing_embeddings(migrated_db: str) -> None:
    execute(
        migrated_db,
        """
        INSERT INTO conversation_memory (session_id, memory_type, context_key, created_at, expires_at)
        VALUES ('s', 'short_term', 'fresh', now() - interval '5 days', now() + interval '1 day'),
               ('s', 'short_term', 'waiting', now() - interval '8 days', now() + interval '1 day'),
               ('s', 'short_term', 'stale', now() - interval '13 days', now() + interval '1 day'),
               ('s', 'short_term', 'expired', now() - interval '20 days', now() - interval '1 day')
        """,
        """
        INSERT INTO semantic_memory (session_id, content_type, content_text, created_at)
        VALUES ('s', 'conversation', 'just written', now()),
               ('s', 'conversation', 'forgotten', now() - interval '2 hours')
        """,
    )
    backlog = check(migrated_db, "consolidation_backlog")
    assert backlog.status is Status.WARN and backlog.value == 1 and not backlog.estimate
    missing = check(migrated_db, "missing_embeddings")
    assert missing.status is Status.WARN and missing.value == 1 and "memcli embed" in (missing.hint or "")


def test_dimension_mismatch_between_settings_and_column(migrated_db: str) -> None:
    execute(migrated_db, "UPDATE memory_settings SET value = '1536' WHERE key = 'embedding.dimension'")
    result = check(migrated_db, "embedding_mismatch")
    assert result.status is Status.FAIL
    assert "column is vector(384) but settings say 1536 dimensions" in result.message


@pytest.mark.parametrize("stored", ["1536.0", '"1536"'])
def test_dimension_setting_written_as_float_or_text_is_still_compared(migrated_db: str, stored: str) -> None:
    execute(migrated_db, f"UPDATE memory_settings SET value = '{stored}' WHERE key = 'embedding.dimension'")
    result = check(migrated_db, "embedding_mismatch")
    assert result.status is Status.FAIL
    assert "column is vector(384) but settings say 1536 dimensions" in result.message


def test_rows_embedded_by_another_model(migrated_db: str) -> None:
    execute(
        migrated_db,
        """UPDATE memory_settings SET value = '"hashing-v1"' WHERE key = 'embedding.model'""",
        f"""
        INSERT INTO semantic_memory
               (session_id, content_type, content_text, embedding_vector, embedding_model)
        SELECT 's', 'conversation', 'row ' || g, {vector_sql()},
               CASE WHEN g = 1 THEN 'other-model' ELSE 'hashing-v1' END
        FROM generate_series(1, 5) g
        """,
    )
    result = check(migrated_db, "embedding_mismatch")
    assert result.status is Status.WARN and result.value == 1
    assert "1 rows embedded by another model than hashing-v1" in result.message


def test_unconstrained_column_with_rows_of_another_dimension(migrated_db: str) -> None:
    execute(
        migrated_db,
        "DROP INDEX idx_semantic_memory_vector",
        "ALTER TABLE semantic_memory ALTER COLUMN embedding_vector TYPE vector",
        f"INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector) "
        f"VALUES ('s', 'conversation', 'ok', {vector_sql('1')}), ('s', 'conversation', 'odd', '[1,2,3]')",
    )
    result = check(migrated_db, "embedding_mismatch")
    assert result.status is Status.FAIL and "1 rows with a dimension other than 384" in result.message


def test_orphaned_rows(migrated_db: str) -> None:
    execute(
        migrated_db,
        "INSERT INTO conversation_memory (session_id, memory_type, context_key) "
        "VALUES ('alive', 'short_term', 'k')",
        """
        INSERT INTO context_relevance (session_id, context_type, context_key)
        VALUES ('alive', 'topic', 'a'), ('gone', 'topic', 'a'), ('gone', 'topic', 'b')
        """,
        "INSERT INTO businesses (id, name, is_active) VALUES "
        "('00000000-0000-0000-0000-00000000000a', 'Open', true), "
        "('00000000-0000-0000-0000-00000000000b', 'Closed', false)",
        """
        INSERT INTO business_context_sections (business_id, section_type, section_name, is_active) VALUES
          ('00000000-0000-0000-0000-00000000000a', 'overview', 'o', true),
          ('00000000-0000-0000-0000-00000000000b', 'overview', 'o', true),
          ('00000000-0000-0000-0000-00000000000b', 'menu', 'm', false)
        """,
    )
    result = check(migrated_db, "orphaned_rows")
    assert result.status is Status.WARN and result.value == 3
    assert result.details == {
        "context_relevance without memories": 2,
        "business sections of missing or inactive businesses": 1,
    }


# --- schema ------------------------------------------------------------------------------------------------


def test_missing_index(cli, migrated_db: str) -> None:
    execute(migrated_db, "DROP INDEX idx_conversation_memory_expires", "DROP VIEW session_memory_summary")
    code, doc = health_json(cli, migrated_db)
    assert code == 1 and doc["status"] == "fail"
    found = next(c for c in doc["checks"] if c["name"] == "schema_objects")
    assert found["status"] == "fail" and found["value"] == 2
    assert found["details"]["missing"] == {
        "indexes": ["idx_conversation_memory_expires"],
        "views": ["session_memory_summary"],
    }
    assert "idx_conversation_memory_expires" in found["message"] and found["hint"]
    # the expired backlog is still counted, without the index
    assert next(c for c in doc["checks"] if c["name"] == "expired_backlog")["status"] == "ok"


def test_missing_function_and_trigger(migrated_db: str) -> None:
    execute(
        migrated_db,
        "DROP FUNCTION consolidate_session_memories(text)",
        "DROP TRIGGER trigger_memory_access ON conversation_memory",
    )
    result = check(migrated_db, "schema_objects")
    assert result.status is Status.FAIL
    assert result.details["missing"] == {
        "functions": ["consolidate_session_memories(text)"],
        "triggers": ["conversation_memory.trigger_memory_access"],
    }


def test_invalid_index_left_by_failed_concurrent_build(migrated_db: str, partitioned_layout: bool) -> None:
    if partitioned_layout:
        pytest.skip("a partitioned table cannot be indexed CONCURRENTLY, so no build of it is left invalid")
    execute(
        migrated_db,
        "INSERT INTO conversation_memory (session_id, memory_type, context_key) "
        "VALUES ('a', 'short_term', 'k'), ('b', 'short_term', 'k')",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(
            migrated_db, "CREATE UNIQUE INDEX CONCURRENTLY idx_by_key ON conversation_memory (context_key)"
        )
    result = check(migrated_db, "invalid_indexes")
    assert result.status is Status.WARN and result.value == 1
    assert "idx_by_key on conversation_memory" in result.message and "DROP INDEX CONCURRENTLY" in (
        result.hint or ""
    )
    # one of memcli's own indexes, rebuilt concurrently and failed: queries lose it, so it fails
    execute(
        migrated_db,
        "DROP INDEX idx_by_key",
        "DROP INDEX idx_conversation_memory_type",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(
            migrated_db,
            "CREATE UNIQUE INDEX CONCURRENTLY idx_conversation_memory_type "
            "ON conversation_memory (memory_type)",
        )
    result = check(migrated_db, "invalid_indexes")
    assert result.status is Status.FAIL and "memcli's own" in result.message


def test_pending_migration(cli, migrated_db: str) -> None:
    execute(migrated_db, "UPDATE alembic_version SET version_num = '0002_memory_system'")
    result = check(migrated_db, "schema_revision")
    assert result.status is Status.FAIL and result.value == "0002_memory_system"
    assert result.details["pending"] == [
        "0003_operations_security",
        "0004_consolidate_per_user",
        "0005_audit_erasure",
        "0006_semantic_memory_hot_access",
        "0007_imports",
        "0008_vector_index_parameters",
        "0009_vector_type",
        "0010_partitioned_layout",
        "0011_memory_key_index",
        "0012_import_keys_no_foreign_key",
        "0013_semantic_memory_access_log",
    ]
    assert "11 pending revisions: 0003_operations_security, 0004_consolidate_per_user" in result.message
    assert result.hint == "run: memcli migrate"
    execute(migrated_db, "DELETE FROM alembic_version")
    result = check(migrated_db, "schema_revision")
    assert result.status is Status.FAIL
    assert result.details["pending"] == [
        "0001_core_tables",
        "0002_memory_system",
        "0003_operations_security",
        "0004_consolidate_per_user",
        "0005_audit_erasure",
        "0006_semantic_memory_hot_access",
        "0007_imports",
        "0008_vector_index_parameters",
        "0009_vector_type",
        "0010_partitioned_layout",
        "0011_memory_key_index",
        "0012_import_keys_no_foreign_key",
        "0013_semantic_memory_access_log",
    ]
    assert "alembic_version is empty" in result.message
    assert cli("health", "--check", "schema_revision", dsn=migrated_db).exit_code == 1


def test_revision_unknown_to_this_memcli(migrated_db: str) -> None:
    execute(migrated_db, "UPDATE alembic_version SET version_num = '0099_from_the_future'")
    result = check(migrated_db, "schema_revision")
    assert result.status is Status.WARN and "does not know" in result.message


# --- operations --------------------------------------------------------------------------------------------


def test_stale_and_failed_maintenance_runs(cli, migrated_db: str) -> None:
    execute(
        migrated_db,
        """
        INSERT INTO system_maintenance_log (maintenance_type, step, started_at, finished_at, status)
        VALUES ('daily', NULL, now() - interval '3 days', now() - interval '3 days' + interval '1 minute',
                'succeeded')
        """,
    )
    daily = check(migrated_db, "maintenance_daily")
    assert daily.status is Status.FAIL and daily.value > 3 * 86400 - 120
    assert "last success 72.0 h ago" in daily.message and "memcli maintain daily" in (daily.hint or "")
    execute(
        migrated_db,
        """
        INSERT INTO system_maintenance_log (maintenance_type, step, started_at, finished_at, status, error)
        VALUES ('weekly', NULL, now() - interval '2 days', now() - interval '2 days', 'succeeded', NULL),
               ('weekly', 'vacuum', now() - interval '1 hour', now(), 'failed', 'lock timeout'),
               ('weekly', NULL, now() - interval '1 hour', now(), 'failed', 'step vacuum failed')
        """,
    )
    weekly = check(migrated_db, "maintenance_weekly")
    assert weekly.status is Status.WARN and "the latest run failed: step vacuum failed" in weekly.message
    failures = check(migrated_db, "maintenance_failures")
    assert failures.status is Status.WARN and failures.value == 1
    assert "weekly" in failures.message and "step vacuum failed" in failures.message
    code, doc = health_json(cli, migrated_db, "--check", "operations")
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert code == 1 and statuses == {
        "maintenance_daily": "fail",
        "maintenance_weekly": "warn",
        "maintenance_monthly": "ok",
        "maintenance_failures": "warn",
        "maintenance_stuck": "ok",
        "erasures": "ok",
        "partitions_ahead": "ok",
    }


def test_jobs_never_run_on_an_old_schema(migrated_db: str) -> None:
    execute(migrated_db, "UPDATE memory_settings SET updated_at = now() - interval '20 days'")
    assert check(migrated_db, "maintenance_daily").status is Status.FAIL
    assert check(migrated_db, "maintenance_weekly").status is Status.FAIL
    monthly = check(migrated_db, "maintenance_monthly")
    assert monthly.status is Status.OK and "not run yet" in monthly.message  # 20 d < 2 x 31 d
    daily = check(migrated_db, "maintenance_daily")
    assert "never succeeded" in daily.message and "schedule" in (daily.hint or "")


# --- Postgres internals ------------------------------------------------------------------------------------


@contextmanager
def row_lock_held(dsn: str) -> Iterator[tuple[int, int]]:
    """A connection holding a row lock in an open transaction and a second one blocked behind it."""
    execute(
        dsn,
        "INSERT INTO conversation_memory (session_id, memory_type, context_key) "
        "VALUES ('s', 'short_term', 'k')",
    )
    holder = psycopg.connect(dsn)
    waiter = psycopg.connect(dsn, autocommit=True)
    waiter_pid = waiter.info.backend_pid
    holder.execute("UPDATE conversation_memory SET importance_score = 0.9 WHERE context_key = 'k'")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            waiter.execute("UPDATE conversation_memory SET importance_score = 0.1 WHERE context_key = 'k'")
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as probe:
            for _ in range(100):
                blocked = probe.execute("SELECT pg_blocking_pids(%s)", (waiter_pid,)).fetchone()[0]
                if blocked:
                    break
                time.sleep(0.05)
            assert blocked == [holder.info.backend_pid]
        yield holder.info.backend_pid, waiter_pid
    finally:
        holder.rollback()
        thread.join(10)
        holder.close()
        waiter.close()
    assert not errors and not thread.is_alive()


def test_blocking_lock_held_by_another_connection(cli, migrated_db: str) -> None:
    with row_lock_held(migrated_db) as (holder_pid, waiter_pid):
        result = check(migrated_db, "blocking_locks")
        code, doc = health_json(cli, migrated_db, "--check", "blocking_locks", "--strict")
    assert result.status is Status.WARN and result.value == 1
    assert [r["pid"] for r in result.details["blocked"]] == [waiter_pid]
    assert result.details["blocked"][0]["blocked_by"] == [holder_pid]
    assert [b["pid"] for b in result.details["blockers"]] == [holder_pid]
    assert f"by pid {holder_pid} (idle in transaction" in result.message
    assert code == 1 and doc["checks"][0]["status"] == "warn"
    assert check(migrated_db, "blocking_locks").status is Status.OK  # released


def test_long_transaction(cli, migrated_db: str, isolated_env: Path) -> None:
    (isolated_env / "memcli.toml").write_text("[health.thresholds]\nlong_transaction_warn_seconds = 1\n")
    other = psycopg.connect(migrated_db)
    other_pid = other.info.backend_pid
    try:
        other.execute("SELECT count(*) FROM conversation_memory")  # opens the transaction
        assert cli("health", "--check", "long_transactions", "--strict", dsn=migrated_db).exit_code == 0
        time.sleep(1.5)
        code, doc = health_json(cli, migrated_db, "--check", "long_transactions", "--strict")
    finally:
        other.close()
    found = doc["checks"][0]
    assert code == 1 and found["status"] == "warn" and found["value"] >= 1.5
    assert found["threshold"] == "< 1 s (fail ≥ 60 min)"
    assert [r["pid"] for r in found["details"]["long"]] == [other_pid]
    assert "idle in transaction" in found["message"]


def test_unused_index(migrated_db: str) -> None:
    execute(
        migrated_db,
        "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value) "
        "SELECT 's' || g, 'long_term', 'k' || g, jsonb_build_object('n', g) FROM generate_series(1, 2000) g",
        "CREATE INDEX idx_app_by_value ON conversation_memory ((context_value ->> 'n'))",
    )
    result = check(migrated_db, "unused_indexes")
    assert result.status is Status.WARN and result.value == 1
    assert "idx_app_by_value" in result.message and "0 scans" in result.message
    # memcli's own indexes are never reported as droppable: removing one fails schema_objects
    assert "idx_conversation_memory_importance" in {
        r["index"] for r in result.details["unused_memcli_indexes"]
    }


def test_sequence_near_its_limit(migrated_db: str) -> None:
    execute(migrated_db, "SELECT setval('system_maintenance_log_id_seq', 9000000000000000000)")
    result = check(migrated_db, "sequences")
    assert result.status is Status.WARN and "system_maintenance_log_id_seq 98%" in result.message


def test_thresholds_from_the_config_file(cli, migrated_db: str, isolated_env: Path) -> None:
    (isolated_env / "memcli.toml").write_text(
        "[health.thresholds]\nwraparound_warn_age = 1\nlatency_fail_ms = 0\n"
    )
    code, doc = health_json(cli, migrated_db, "--check", "wraparound", "--check", "connection")
    statuses = {c["name"]: c["status"] for c in doc["checks"]}
    assert code == 1 and statuses == {"connection": "fail", "wraparound": "warn"}


# --- vector index ------------------------------------------------------------------------------------------


def test_vector_index_missing_invalid_and_recall(migrated_db: str) -> None:
    execute(
        migrated_db,
        f"INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector) "
        f"SELECT 's' || g, 'conversation', 'row ' || g, {vector_sql()} FROM generate_series(1, 300) g",
    )
    conn = connect(migrated_db)
    try:
        recall = run_checks(conn, ["vector_recall"]).result("vector_recall")
    finally:
        conn.close()
    assert recall.status is Status.OK and recall.value >= 0.9 and recall.details["index_used"]
    assert recall.details["queries"] == 10
    execute(migrated_db, "DROP INDEX idx_semantic_memory_vector")
    result = check(migrated_db, "vector_index")
    assert result.status is Status.FAIL and "every search scans the table" in result.message
    execute(
        migrated_db,
        "CREATE INDEX idx_semantic_memory_vector ON semantic_memory "
        "USING ivfflat (embedding_vector vector_l2_ops) WITH (lists = 1)",
    )
    result = check(migrated_db, "vector_index")
    assert result.status is Status.WARN and "does not serve cosine search" in result.message
    assert check(migrated_db, "ivfflat_lists").status is Status.OK  # too few rows to judge
    assert check(migrated_db, "ivfflat_lists", ivfflat_lists_factor=0).message.startswith("not judged")


def test_old_pgvector_warns(migrated_db: str) -> None:
    from memcli.health.checks_server import version_tuple
    from memcli.health.thresholds import PGVECTOR_MIN_VERSION

    # The server under test ships a fixed pgvector; the rule itself is a version comparison.
    assert version_tuple("0.8.3") < version_tuple(PGVECTOR_MIN_VERSION) <= version_tuple("0.8.10")
    result = check(migrated_db, "pgvector")
    installed = version_tuple(str(result.value))
    assert result.status is (Status.WARN if installed < version_tuple(PGVECTOR_MIN_VERSION) else Status.OK)


def test_a_real_daily_run_satisfies_the_daily_check(cli, migrated_db: str) -> None:
    execute(migrated_db, "UPDATE memory_settings SET updated_at = now() - interval '5 days'")
    assert check(migrated_db, "maintenance_daily").status is Status.FAIL  # old schema, never ran
    ran = cli("maintain", "daily", dsn=migrated_db)
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    daily = check(migrated_db, "maintenance_daily")
    assert daily.status is Status.OK and daily.value < 60 and daily.message.startswith("last success")
    assert check(migrated_db, "maintenance_failures").status is Status.OK
