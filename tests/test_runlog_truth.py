"""The maintenance log tells the truth about killed runs: real processes, killed with SIGTERM and SIGKILL."""

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

from memcli.jobs.runlog import INTERRUPTED
from memcli.settings import set_setting

pytestmark = pytest.mark.slow
TOTAL = 300


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def prepare(dsn: str) -> None:
    """TOTAL expired memories, deleted ten per batch at ~0.1 s a batch."""
    with connect(dsn) as conn:
        set_setting(conn, "cleanup.batch_size", 10)
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
            "SELECT 's' || (g %% 7), 'short_term', 'k' || g, now() - interval '1 day' "
            "FROM generate_series(1, %s) g",
            (TOTAL,),
        )
        conn.execute(
            """
            CREATE FUNCTION test_slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.01); RETURN OLD; END $$;
            CREATE TRIGGER test_slow_delete BEFORE DELETE ON conversation_memory
                FOR EACH ROW EXECUTE FUNCTION test_slow_delete();
            """
        )


def fast_deletes(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute("DROP TRIGGER test_slow_delete ON conversation_memory")


def deleted(dsn: str) -> int:
    with connect(dsn) as conn:
        return TOTAL - conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0]  # type: ignore[index]


def log(dsn: str) -> list[dict[str, Any]]:
    with connect(dsn) as conn:
        cur = conn.execute(
            "SELECT maintenance_type AS job, step, status, records_processed AS rows, error, "
            "finished_at, details ->> 'run_id' AS run_id FROM system_maintenance_log ORDER BY id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def start(dsn: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "memcli", "--dsn", dsn, *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_mid_run(dsn: str, proc: subprocess.Popen[str], signum: int) -> str:
    """Send ``signum`` once a few batches are committed; the process's stderr."""
    try:
        deadline = time.monotonic() + 60
        while deleted(dsn) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for_no_memcli_backend(dsn)
    return stderr


def wait_for_no_memcli_backend(dsn: str, timeout: float = 20) -> None:
    """A killed client's server processes finish the statement at hand, then roll back and go."""
    deadline = time.monotonic() + timeout
    with connect(dsn) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'memcli' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row and row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("memcli's connections did not go away")


def health(cli: Any, dsn: str, check: str) -> dict[str, Any]:
    result = cli("health", "--check", check, "--json", dsn=dsn)
    return next(c for c in json.loads(result.stdout)["checks"] if c["name"] == check)


def test_sigterm_the_run_counts_what_its_steps_committed(migrated_db: str) -> None:
    prepare(migrated_db)
    stderr = kill_mid_run(migrated_db, start(migrated_db, "cleanup", "--expired"), signal.SIGTERM)
    assert "interrupted" in stderr
    done = deleted(migrated_db)
    assert 0 < done < TOTAL
    run, step = log(migrated_db)
    assert (run["step"], run["status"], step["step"], step["status"]) == (None, "failed", "cleanup", "failed")
    assert step["rows"] == done and run["rows"] == done  # the summary is the sum of its committed steps
    assert run["finished_at"] and step["finished_at"]


def test_kill_9_leaves_true_counts_and_any_job_sharing_the_lock_closes_the_run(
    migrated_db: str, cli: Any
) -> None:
    prepare(migrated_db)
    kill_mid_run(migrated_db, start(migrated_db, "cleanup", "--expired"), signal.SIGKILL)
    done = deleted(migrated_db)
    assert 0 < done < TOTAL
    run, step = log(migrated_db)
    assert (run["status"], step["status"]) == ("running", "running")
    assert step["rows"] == done  # every committed batch counted itself in its own transaction

    stuck = health(cli, migrated_db, "maintenance_stuck")
    assert stuck["status"] == "warn" and stuck["value"] == 1 and "cleanup" in stuck["message"]

    fast_deletes(migrated_db)
    daily = cli("maintain", "daily", "--json", dsn=migrated_db)  # another job, holding the cleanup lock
    assert daily.exit_code == 0, daily.stderr
    assert json.loads(daily.stdout)["interrupted_runs_closed"] == 2
    closed = [r for r in log(migrated_db) if r["run_id"] == run["run_id"]]
    assert [(r["step"], r["status"], r["error"]) for r in closed] == [
        (None, "failed", INTERRUPTED),
        ("cleanup", "failed", INTERRUPTED),
    ]
    assert [r["rows"] for r in closed] == [done, done]
    assert all(r["finished_at"] is not None for r in closed)
    assert health(cli, migrated_db, "maintenance_stuck")["status"] == "ok"


def test_a_killed_daily_run_is_closed_by_a_cleanup_run(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    kill_mid_run(migrated_db, start(migrated_db, "maintain", "daily"), signal.SIGKILL)
    done = deleted(migrated_db)
    fast_deletes(migrated_db)
    result = cli("cleanup", "--expired", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    # (the daily job's partitions step, done before the kill, is not the subject here)
    daily = [r for r in log(migrated_db) if r["job"] == "daily" and r["step"] != "partitions"]
    assert [(r["step"], r["status"]) for r in daily] == [(None, "failed"), ("cleanup", "failed")]
    assert [r["rows"] for r in daily] == [done, done]


def test_a_live_run_is_not_stuck(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    proc = start(migrated_db, "cleanup", "--expired")
    try:
        deadline = time.monotonic() + 60
        while deleted(migrated_db) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        stuck = health(cli, migrated_db, "maintenance_stuck")
        assert stuck["status"] == "ok" and stuck["details"]["running"] == 1
    finally:
        proc.kill()
        proc.communicate(timeout=30)
