"""memcli cleanup --expired: exact counts per table and tier, dry run, narrowing, locks, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psycopg
import pytest

from memcli.jobs.cleanup import CleanupOptions, cleanup_expired, cleanup_stale_relevance
from memcli.jobs.locks import lock_key
from memcli.schema import names

TIERS = names.MEMORY_TYPES
# Every table with an id the jobs could touch: a dry run leaves all of them as they were.
SNAPSHOT_TABLES = (*names.MEMORY_TABLES, names.MAINTENANCE_LOG)


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def add_memory(
    conn: psycopg.Connection, session: str, tier: str, expires: str, key: str | None = None
) -> str:
    """A memory expiring at now() + ``expires`` (an interval such as '-40 days')."""
    row = conn.execute(
        """
        INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value, expires_at)
        VALUES (%s, %s, coalesce(%s, gen_random_uuid()::text), '{"v": 1}', now() + %s::interval)
        RETURNING id
        """,
        (session, tier, key, expires),
    ).fetchone()
    return str(row[0])


def add_semantic(conn: psycopg.Connection, session: str) -> None:
    conn.execute(
        """
        INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector)
        SELECT %s, 'conversation', 'likes quiet tables',
               array_fill(0.1::real, ARRAY[coalesce((SELECT (value #>> '{}')::int FROM memory_settings
                                                    WHERE key = 'embedding.dimension'), 384)])::vector
        """,
        (session,),
    )


def add_relevance(conn: psycopg.Connection, session: str, score: float = 0.5) -> None:
    conn.execute(
        "INSERT INTO context_relevance (session_id, context_type, context_key, relevance_score) "
        "VALUES (%s, 'topic', 'food', %s)",
        (session, score),
    )


def prepare(dsn: str) -> dict[str, set[str]]:
    """Per tier: 3 memories expired 40 days ago (their session has nothing else), 2 expired an hour ago
    and 4 alive (sharing a session). Relevance rows: one per session, plus one for a session with only
    semantic memory and one for a session with nothing at all."""
    ids: dict[str, set[str]] = {"old": set(), "recent": set(), "alive": set()}
    with connect(dsn) as conn:
        for tier in TIERS:
            ids["old"] |= {add_memory(conn, f"gone-{tier}", tier, "-40 days") for _ in range(3)}
            ids["recent"] |= {add_memory(conn, f"mixed-{tier}", tier, "-1 hour") for _ in range(2)}
            ids["alive"] |= {add_memory(conn, f"mixed-{tier}", tier, "+1 day") for _ in range(4)}
            add_relevance(conn, f"gone-{tier}")
            add_relevance(conn, f"mixed-{tier}")
        add_semantic(conn, "semantic-only")
        add_relevance(conn, "semantic-only")
        add_relevance(conn, "empty")
    return ids


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with connect(dsn) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in SNAPSHOT_TABLES}


def memory_ids(dsn: str) -> set[str]:
    with connect(dsn) as conn:
        return {str(r[0]) for r in conn.execute("SELECT id FROM conversation_memory")}


def relevance_sessions(dsn: str) -> set[str]:
    with connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT session_id FROM context_relevance")}


def run_json(cli: Any, dsn: str, *args: str) -> dict[str, Any]:
    result = cli(*args, "--json", dsn=dsn)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_counts_per_tier_and_changes_nothing(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    before = snapshot(migrated_db)
    out = run_json(cli, migrated_db, "cleanup", "--expired", "--dry-run")
    assert out["dry_run"] is True
    assert out["would_delete"] == {"conversation_memory": 20, "context_relevance": 5}
    assert out["would_delete_by_tier"] == dict.fromkeys(TIERS, 5)
    assert out["deleted"] == {"conversation_memory": 0, "context_relevance": 0}
    sample = {s["session_id"]: s["expired"] for s in out["sample_sessions"]}
    assert sample == {**{f"gone-{t}": 3 for t in TIERS}, **{f"mixed-{t}": 2 for t in TIERS}}
    assert snapshot(migrated_db) == before  # nothing deleted, nothing logged


def test_cleanup_deletes_exactly_the_expired_and_orphaned(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    out = run_json(cli, migrated_db, "cleanup", "--expired", "--batch-size", "3")
    assert out["status"] == "succeeded" and out["exit_code"] == 0
    assert out["deleted"] == {"conversation_memory": 20, "context_relevance": 5}
    assert out["deleted_by_tier"] == dict.fromkeys(TIERS, 5)
    assert out["batches"] >= 7  # 20 memories in batches of 3, then the relevance rows
    assert out["complete"] is True
    assert memory_ids(migrated_db) == ids["alive"]
    assert relevance_sessions(migrated_db) == {f"mixed-{t}" for t in TIERS} | {"semantic-only"}

    with connect(migrated_db) as conn:
        rows = conn.execute(
            "SELECT step, status, records_processed, finished_at IS NOT NULL, details->>'run_id' "
            "FROM system_maintenance_log WHERE maintenance_type = 'cleanup' ORDER BY id"
        ).fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (None, "succeeded", 25, True),
        ("cleanup", "succeeded", 25, True),
    ]
    assert rows[0][4] == rows[1][4] == out["run_id"]

    again = run_json(cli, migrated_db, "cleanup", "--expired")
    assert again["deleted"] == {"conversation_memory": 0, "context_relevance": 0}


@pytest.mark.parametrize(
    ("args", "deleted", "by_tier", "orphans"),
    [
        (["--older-than", "30d"], 12, dict.fromkeys(TIERS, 3), 5),
        (["--type", "short_term"], 5, {"short_term": 5}, 2),
        (["--older-than", "30d", "--type", "archived"], 3, {"archived": 3}, 2),
        (["--older-than", "50d"], 0, {}, 1),
    ],
)
def test_narrowing(
    migrated_db: str, cli: Any, args: list[str], deleted: int, by_tier: dict[str, int], orphans: int
) -> None:
    prepare(migrated_db)
    dry = run_json(cli, migrated_db, "cleanup", "--expired", "--dry-run", *args)
    assert dry["would_delete"] == {"conversation_memory": deleted, "context_relevance": orphans}
    out = run_json(cli, migrated_db, "cleanup", "--expired", *args)
    assert out["deleted"] == {"conversation_memory": deleted, "context_relevance": orphans}
    assert out["deleted_by_tier"] == dict.fromkeys(TIERS, 0) | by_tier


def test_same_result_as_the_sql_function(migrated_db: str, databases: Any, cli: Any) -> None:
    prepare(migrated_db)
    with connect(migrated_db) as conn:  # a few more shapes: many sessions, never-expiring rows
        conn.execute(
            """
            INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at)
            SELECT 'bulk-' || (g % 17), (ARRAY['short_term','long_term','archived'])[1 + g % 3], 'k' || g,
                   now() + (CASE WHEN g % 3 = 0 THEN -1 ELSE 1 END) * interval '1 day'
            FROM generate_series(1, 300) g
            """
        )
        conn.execute("UPDATE conversation_memory SET expires_at = 'infinity' WHERE context_key = 'k2'")
        for n in range(20):
            add_relevance(conn, f"bulk-{n}")
    dbname = psycopg.conninfo.conninfo_to_dict(migrated_db)["dbname"]
    twin = databases.create(template=dbname)

    out = run_json(cli, migrated_db, "cleanup", "--expired", "--batch-size", "7")
    with connect(twin) as conn:
        function_deleted = conn.execute("SELECT cleanup_expired_memory()").fetchone()[0]

    assert out["deleted"]["conversation_memory"] == function_deleted
    assert memory_ids(migrated_db) == memory_ids(twin)
    with connect(migrated_db) as a, connect(twin) as b:
        query = "SELECT id FROM context_relevance ORDER BY id"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_rows_the_application_holds_are_skipped_not_waited_for(migrated_db: str) -> None:
    ids = prepare(migrated_db)
    held = sorted(ids["recent"])[0]
    with connect(migrated_db) as app, connect(migrated_db) as job:
        with app.transaction():
            app.execute("SELECT 1 FROM conversation_memory WHERE id = %s FOR UPDATE", (held,))
            started = time.monotonic()
            result = cleanup_expired(job, CleanupOptions(batch_size=4))
            assert time.monotonic() - started < 5
            assert result.deleted["conversation_memory"] == 19
            assert held in memory_ids(migrated_db)
        assert cleanup_expired(job).deleted["conversation_memory"] == 1
    assert memory_ids(migrated_db) == ids["alive"]


def test_max_runtime_stops_between_batches_and_a_rerun_continues(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    out = run_json(cli, migrated_db, "cleanup", "--expired", "--max-runtime", "0s")
    assert out["complete"] is False and out["stopped"] == "max runtime reached"
    assert out["deleted"]["conversation_memory"] == 0
    out = run_json(cli, migrated_db, "cleanup", "--expired", "--max-runtime", "10m")
    assert out["complete"] is True and out["deleted"]["conversation_memory"] == 20
    assert memory_ids(migrated_db) == ids["alive"]


def test_second_run_exits_75_at_once(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    before = snapshot(migrated_db)
    with connect(migrated_db) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("cleanup"),))
        started = time.monotonic()
        result = cli("cleanup", "--expired", dsn=migrated_db)
        elapsed = time.monotonic() - started
        daily = cli("maintain", "daily", dsn=migrated_db)  # shares the cleanup lock
    assert result.exit_code == 75
    assert elapsed < 5
    assert len(result.stderr.strip().splitlines()) == 1
    assert "lock" in result.stderr and "pid" in result.stderr
    assert daily.exit_code == 75
    assert snapshot(migrated_db) == before


def test_usage_errors(migrated_db: str, cli: Any) -> None:
    assert cli("cleanup", dsn=migrated_db).exit_code == 2
    bad_duration = cli("cleanup", "--expired", "--older-than", "30", dsn=migrated_db)
    assert bad_duration.exit_code == 2 and "30d" in bad_duration.stderr
    assert cli("cleanup", "--expired", "--type", "episodic", dsn=migrated_db).exit_code == 2


def test_not_migrated_database_exits_4(empty_db: str, cli: Any) -> None:
    assert cli("cleanup", "--expired", dsn=empty_db).exit_code == 4


def test_stale_relevance(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        for n, score in enumerate((0.001, 0.005, 0.02, 0.5)):
            add_relevance(conn, f"s{n}", score)
        dry = cleanup_stale_relevance(conn, dry_run=True)
        assert dry.would_delete == 2 and dry.deleted == 0
        assert cleanup_stale_relevance(conn, batch_size=1).deleted == 2
    assert relevance_sessions(migrated_db) == {"s2", "s3"}


def _slow_deletes(dsn: str, seconds: float) -> None:
    with connect(dsn) as conn:
        conn.execute(
            f"""
            CREATE FUNCTION test_slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({seconds}); RETURN OLD; END $$;
            CREATE TRIGGER test_slow_delete BEFORE DELETE ON conversation_memory
                FOR EACH ROW EXECUTE FUNCTION test_slow_delete();
            """
        )


def _drop_slow_deletes(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute("DROP TRIGGER test_slow_delete ON conversation_memory")


def _wait_for_no_memcli_backend(dsn: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with connect(dsn) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'memcli' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("memcli's connections did not go away")


def _count_memories(dsn: str) -> int:
    with connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0]


def test_killed_run_loses_nothing_and_a_rerun_finishes(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    with connect(migrated_db) as conn:
        bulk = {add_memory(conn, "bulk", "short_term", "-2 days") for _ in range(60)}
    total = _count_memories(migrated_db)
    _slow_deletes(migrated_db, 0.02)  # 5 rows per batch: ~0.1 s per batch, ~16 batches
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcli", "--dsn", migrated_db, "cleanup", "--expired", "--batch-size", "5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while _count_memories(migrated_db) > total - 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    _wait_for_no_memcli_backend(migrated_db)

    left = memory_ids(migrated_db)
    assert ids["alive"] <= left  # nothing that should survive is gone
    assert total - 10 >= len(left) > len(ids["alive"])  # part of the work was done, not all of it
    with connect(migrated_db) as conn:
        evidence = conn.execute(
            "SELECT step, status FROM system_maintenance_log WHERE maintenance_type = 'cleanup' ORDER BY id"
        ).fetchall()
    assert evidence == [(None, "running"), ("cleanup", "running")]

    _drop_slow_deletes(migrated_db)
    out = run_json(cli, migrated_db, "cleanup", "--expired")
    assert out["interrupted_runs_closed"] == 2
    assert memory_ids(migrated_db) == ids["alive"]
    assert not (bulk & memory_ids(migrated_db))
    with connect(migrated_db) as conn:
        statuses = conn.execute(
            "SELECT status, error LIKE 'interrupted%%' FROM system_maintenance_log "
            "WHERE maintenance_type = 'cleanup' ORDER BY id"
        ).fetchall()
    assert statuses == [("failed", True), ("failed", True), ("succeeded", None), ("succeeded", None)]


def test_cancelled_batch_fails_the_step_and_keeps_committed_work(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    _slow_deletes(migrated_db, 0.05)

    finished = threading.Event()

    def cancel_second_batch() -> None:
        # once a first batch of 4 is committed, cancel the statement of the batch in flight (again, should
        # the cancel reach the backend between two statements and be ignored)
        with connect(migrated_db) as conn:
            deadline = time.monotonic() + 20
            while not finished.is_set() and time.monotonic() < deadline:
                if _count_memories(migrated_db) <= len(ids["alive"]) + 16:
                    conn.execute(
                        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = 'memcli' "
                        "AND state = 'active' "
                        "AND query ILIKE '%%DELETE FROM conversation_memory%%'"
                    )
                time.sleep(0.02)

    canceller = threading.Thread(target=cancel_second_batch)
    canceller.start()
    try:
        result = cli("cleanup", "--expired", "--batch-size", "4", "--json", dsn=migrated_db)
    finally:
        finished.set()
        canceller.join()
    assert result.exit_code == 1
    assert "cleanup" in result.stderr and "cancel" in result.stderr.lower()
    out = json.loads(result.stdout)
    assert out["status"] == "failed" and out["complete"] is False
    left = memory_ids(migrated_db)
    assert ids["alive"] <= left
    assert len(left) == len(ids["alive"]) + 20 - out["deleted"]["conversation_memory"]
    with connect(migrated_db) as conn:
        step = conn.execute(
            "SELECT status, records_processed, error FROM system_maintenance_log "
            "WHERE maintenance_type = 'cleanup' AND step = 'cleanup'"
        ).fetchone()
    assert step[0] == "failed" and step[1] == out["deleted"]["conversation_memory"] and "cancel" in step[2]

    _drop_slow_deletes(migrated_db)
    run_json(cli, migrated_db, "cleanup", "--expired")
    assert memory_ids(migrated_db) == ids["alive"]
