"""memcli maintain daily|weekly|monthly: steps, the run log, failing steps, locks, index upkeep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from memcli.jobs.locks import check_direct_connection, holds_lock, job_lock, lock_key
from memcli.jobs.maintain import Step, run_job, run_steps
from memcli.jobs.runlog import INTERRUPTED
from memcli.settings import set_setting


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def add_memory(
    conn: psycopg.Connection, session: str, tier: str, *, age: str, expires: str, importance=0.5
) -> None:
    conn.execute(
        """
        INSERT INTO conversation_memory
            (session_id, memory_type, context_key, context_value, importance_score, created_at, expires_at)
        VALUES (%s, %s, gen_random_uuid()::text, %s, %s, now() - %s::interval, now() + %s::interval)
        """,
        (session, tier, Jsonb({"s": session}), importance, age, expires),
    )


def add_relevance(conn: psycopg.Connection, session: str, score: float, calculated: str = "1h") -> None:
    conn.execute(
        "INSERT INTO context_relevance "
        "(session_id, context_type, context_key, relevance_score, decay_factor, last_calculated) "
        "VALUES (%s, 't', gen_random_uuid()::text, %s, 0.5, now() - %s::interval)",
        (session, score, calculated),
    )


def prepare(dsn: str) -> None:
    with connect(dsn) as conn:
        for _ in range(4):
            add_memory(conn, "expired", "short_term", age="10 days", expires="-1 day")  # daily deletes
        for _ in range(3):
            add_memory(conn, "old", "short_term", age="6 days", expires="+1 day")  # weekly merges
        for _ in range(2):  # weekly archives
            add_memory(conn, "faded", "long_term", age="40 days", expires="+50 days", importance=0.1)
        add_memory(conn, "live", "long_term", age="1 day", expires="+80 days")
        add_relevance(conn, "live", 0.005)  # stale: below relevance.min_score
        add_relevance(conn, "live", 0.8, calculated="3 days")  # decays
        add_relevance(conn, "nobody", 0.5)  # orphan


def log_rows(dsn: str, job: str) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return conn.execute(
            "SELECT step, status, records_processed, error FROM system_maintenance_log "
            "WHERE maintenance_type = %s ORDER BY id",
            (job,),
        ).fetchall()


def run_json(cli: Any, dsn: str, *args: str, code: int = 0) -> dict[str, Any]:
    result = cli(*args, "--json", dsn=dsn)
    assert result.exit_code == code, result.stderr
    return json.loads(result.stdout)


def test_daily_runs_its_steps_and_logs_them(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    out = run_json(cli, migrated_db, "maintain", "daily")
    steps = {s["step"]: s for s in out["steps"]}
    assert list(steps) == ["partitions", "cleanup", "stale_relevance", "close_sessions", "retention"]
    assert steps["cleanup"]["result"]["deleted"] == {"conversation_memory": 4, "context_relevance": 1}
    assert steps["stale_relevance"]["rows"] == 1
    assert out["status"] == "succeeded" and out["rows"] == 6
    rows = log_rows(migrated_db, "daily")
    assert [r[:3] for r in rows] == [
        (None, "succeeded", 6),
        ("partitions", "succeeded", 0),
        ("cleanup", "succeeded", 5),
        ("stale_relevance", "succeeded", 1),
        ("close_sessions", "succeeded", 0),
        ("retention", "succeeded", 0),
    ]
    with connect(migrated_db) as conn:
        timing = conn.execute(
            "SELECT bool_and(finished_at >= started_at AND duration_seconds >= 0) FROM system_maintenance_log"
        ).fetchone()[0]
    assert timing


def test_dry_run_changes_nothing_and_logs_nothing(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    with connect(migrated_db) as conn:
        query = (
            "SELECT (SELECT json_agg(m ORDER BY id) FROM conversation_memory m)::text, "
            "(SELECT json_agg(r ORDER BY id) FROM context_relevance r)::text, "
            "(SELECT count(*) FROM system_maintenance_log), (SELECT count(*) FROM memory_consolidation_log)"
        )
        before = conn.execute(query).fetchone()
        for job in ("daily", "weekly", "monthly"):
            out = run_json(cli, migrated_db, "maintain", job, "--dry-run")
            assert out["dry_run"] is True and out["status"] == "succeeded"
            if job == "weekly":
                steps = {s["step"]: s["rows"] for s in out["steps"]}
                # only the 3 live old short-term memories merge; the 4 expired ones are left for cleanup
                assert steps == {"consolidate": 3, "decay": 1, "archive": 2, "partition_keys": 0}
        assert conn.execute(query).fetchone() == before


def test_weekly_with_a_failing_step_runs_the_others_and_exits_1(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    with connect(migrated_db) as app, app.transaction():
        # the application holds context_relevance: the decay step cannot get its row locks
        app.execute("LOCK TABLE context_relevance IN ACCESS EXCLUSIVE MODE")
        result = cli("maintain", "weekly", "--lock-timeout", "100ms", "--json", dsn=migrated_db)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "decay" in result.stderr
    out = json.loads(result.stdout)
    assert {s["step"]: s["status"] for s in out["steps"]} == {
        "consolidate": "succeeded",
        "decay": "failed",
        "archive": "succeeded",
        "partition_keys": "succeeded",
    }
    rows = log_rows(migrated_db, "weekly")
    assert [r[:2] for r in rows] == [
        (None, "failed"),
        ("consolidate", "succeeded"),
        ("decay", "failed"),
        ("archive", "succeeded"),
        ("partition_keys", "succeeded"),
    ]
    assert "lock timeout" in rows[2][3]
    with connect(migrated_db) as conn:
        tiers = dict(
            conn.execute(
                "SELECT session_id, string_agg(memory_type, ',') FROM conversation_memory GROUP BY 1"
            )
        )
    assert tiers["old"] == "long_term"  # merged into one long-term memory
    assert tiers["faded"] == "archived,archived"
    assert run_json(cli, migrated_db, "maintain", "weekly")["status"] == "succeeded"


def test_a_raising_step_does_not_stop_the_run(migrated_db: str) -> None:
    def boom(conn: psycopg.Connection) -> None:
        conn.execute("SELECT 1/0")

    seen: list[str] = []

    def record(conn: psycopg.Connection) -> Any:
        seen.append(conn.execute("SELECT current_database()").fetchone()[0])

    report = run_steps(
        migrated_db, "custom", [Step("one", record), Step("boom", boom), Step("three", record)]
    )
    assert report.exit_code == 1
    assert [(s.step, s.status) for s in report.steps] == [
        ("one", "succeeded"),
        ("boom", "failed"),
        ("three", "succeeded"),
    ]
    assert "DivisionByZero" in report.steps[1].error
    assert len(seen) == 2
    assert [r[:2] for r in log_rows(migrated_db, "custom")] == [
        (None, "failed"),
        ("one", "succeeded"),
        ("boom", "failed"),
        ("three", "succeeded"),
    ]


def test_weekly_forget_and_option_checks(migrated_db: str, cli: Any) -> None:
    out = run_json(cli, migrated_db, "maintain", "weekly", "--forget")
    assert [s["step"] for s in out["steps"]] == [
        "consolidate",
        "decay",
        "archive",
        "forget",
        "partition_keys",
    ]
    assert cli("maintain", "daily", "--forget", dsn=migrated_db).exit_code == 2
    assert cli("maintain", "hourly", dsn=migrated_db).exit_code == 2


def test_lock_held_exits_75_without_logging(migrated_db: str, cli: Any) -> None:
    with connect(migrated_db) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("monthly"),))
        started = time.monotonic()
        result = cli("maintain", "monthly", dsn=migrated_db)
        assert time.monotonic() - started < 5
    assert result.exit_code == 75
    assert "monthly" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert log_rows(migrated_db, "monthly") == []


def test_locks_are_per_connection_and_released(migrated_db: str) -> None:
    with connect(migrated_db) as a, connect(migrated_db) as b:
        assert check_direct_connection(a) == []
        with job_lock(a, ["daily", "cleanup"], "daily"):
            assert holds_lock(a, "daily") and holds_lock(a, "cleanup")
            assert not holds_lock(b, "daily")
            with pytest.raises(Exception) as caught, job_lock(b, ["weekly", "cleanup"], "weekly"):
                pass
            assert getattr(caught.value, "exit_code", None) == 75
            assert not holds_lock(b, "weekly")  # the lock taken before the refusal was given back
        assert not holds_lock(a, "daily")
        with job_lock(b, ["cleanup"]):
            assert holds_lock(b, "cleanup")


def test_monthly_vacuums_where_it_helps_and_rebuilds_indexes(
    migrated_db: str, cli: Any, partitioned_layout: bool
) -> None:
    if partitioned_layout:
        pytest.skip("names the plain table's statistics and indexes; test_partitions covers the partitions")
    with connect(migrated_db) as conn:
        # autovacuum would otherwise, on a busy machine, vacuum or analyze the tables before the job looks
        for table in ("conversation_memory", "context_relevance"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
            "SELECT 's' || g % 10, 'short_term', 'k' || g, now() + interval '1 day' "
            "FROM generate_series(1, 3000) g"
        )
        conn.execute("DELETE FROM conversation_memory WHERE context_key NOT IN ('k1', 'k2')")
        # a leftover of a failed concurrent rebuild: an invalid index named *_ccnew
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY idx_conversation_memory_type_ccnew "
                "ON conversation_memory (memory_type)"
            )
        conn.execute(
            "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES ('s', 't', 'k')"
        )
    with connect(migrated_db) as conn:  # the deleting backend has reported its dead rows once this shows them
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            dead = conn.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'conversation_memory'"
            ).fetchone()[0]
            if dead >= 2998:
                break
            time.sleep(0.1)

    out = run_json(cli, migrated_db, "maintain", "monthly")
    steps = {s["step"]: s for s in out["steps"]}
    actions = {t["table"]: t["action"] for t in steps["vacuum_analyze"]["result"]["tables"]}
    assert actions["conversation_memory"] == "vacuum_analyze"
    assert actions["context_relevance"] == "analyze"
    rebuilt = {i["index"] for i in steps["reindex"]["result"]["rebuilt"]}
    assert {"idx_conversation_memory_expires", "conversation_memory_pkey"} <= rebuilt
    # a healthy HNSW index is left alone (it needs no periodic rebuild)
    assert "idx_semantic_memory_vector" not in rebuilt
    assert [s["index"] for s in steps["reindex"]["result"]["skipped"]] == ["idx_semantic_memory_vector"]
    assert steps["reindex"]["result"]["leftovers_dropped"] == ["idx_conversation_memory_type_ccnew"]
    with connect(migrated_db) as conn:
        invalid = conn.execute(
            "SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE NOT x.indisvalid"
        ).fetchone()[0]
        assert invalid == 0
        analyzed = conn.execute(
            "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE relname = 'conversation_memory'"
        ).fetchone()
    assert analyzed == (True, True)
    assert [r[:2] for r in log_rows(migrated_db, "monthly")] == [
        (None, "succeeded"),
        ("vacuum_analyze", "succeeded"),
        ("reindex", "succeeded"),
    ]


def test_reindex_blocked_by_a_long_transaction_keeps_valid_indexes(migrated_db: str, cli: Any) -> None:
    with connect(migrated_db) as app:
        app.execute(
            "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES ('s', 't', 'k')"
        )
        with app.transaction():
            app.execute("UPDATE context_relevance SET relevance_score = 0.6")  # an open write transaction
            result = cli("maintain", "monthly", "--lock-timeout", "200ms", "--json", dsn=migrated_db)
    assert result.exit_code == 1 and "reindex" in result.stderr
    out = json.loads(result.stdout)
    steps = {s["step"]: s for s in out["steps"]}
    assert steps["vacuum_analyze"]["status"] == "succeeded"
    assert steps["reindex"]["status"] == "failed"
    failed_tables = {f["table"] for f in steps["reindex"]["result"]["failed"]}
    assert failed_tables == {"context_relevance"}
    # a partitioned table's indexes are rebuilt partition by partition
    rebuilt = {
        i["table"].split("_20")[0].removesuffix("_default") for i in steps["reindex"]["result"]["rebuilt"]
    }
    assert "conversation_memory" in rebuilt and "semantic_memory" in rebuilt

    out = run_json(cli, migrated_db, "maintain", "monthly")  # the transaction is over: everything goes
    assert out["status"] == "succeeded"
    with connect(migrated_db) as conn:
        invalid = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]
        names = {r[0] for r in conn.execute("SELECT indexrelid::regclass::text FROM pg_index")}
    assert invalid == 0
    assert not [n for n in names if "_ccnew" in n or "_ccold" in n]


def test_sigterm_records_the_step_as_interrupted(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        set_setting(conn, "cleanup.batch_size", 10)
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
            "SELECT 's', 'short_term', 'k' || g, now() - interval '1 day' FROM generate_series(1, 200) g"
        )
        conn.execute(
            """
            CREATE FUNCTION test_slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.01); RETURN OLD; END $$;
            CREATE TRIGGER test_slow_delete BEFORE DELETE ON conversation_memory
                FOR EACH ROW EXECUTE FUNCTION test_slow_delete();
            """
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcli", "--dsn", migrated_db, "maintain", "daily"],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not [
            r for r in log_rows(migrated_db, "daily") if r[0] == "cleanup"
        ]:
            time.sleep(0.02)
        while time.monotonic() < deadline:  # a batch has committed: the signal lands mid-run
            with connect(migrated_db) as conn:
                if conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0] < 200:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in stderr
    rows = log_rows(migrated_db, "daily")
    assert [r[:2] for r in rows] == [(None, "failed"), ("partitions", "succeeded"), ("cleanup", "failed")]
    assert rows[2][3] == "interrupted by a signal" and rows[2][3] != INTERRUPTED
    with connect(migrated_db) as conn:
        left = conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0]
    assert 0 < left < 200
    assert rows[2][2] == 200 - left  # the rows recorded are the rows committed


def test_run_job_library_api(migrated_db: str) -> None:
    prepare(migrated_db)
    steps_seen: list[str] = []
    report = run_job(migrated_db, "daily", on_step=lambda name, i, n: steps_seen.append(name))
    assert steps_seen == ["partitions", "cleanup", "stale_relevance", "close_sessions", "retention"]
    assert report.exit_code == 0 and report.run_id and report.step("cleanup").rows == 5
