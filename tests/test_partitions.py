"""The partitioned layout: migration, create_memory_partition, upkeep, cleanup by dropping partitions,
health, online conversion (resume, abandon, concurrent writes), downgrade.

These tests choose their layout themselves (``plain_db`` / ``partitioned_db``); the rest of the suite runs
on the layout MEMCLI_TEST_LAYOUT names.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

from memcli import migrations
from memcli.db import connect
from memcli.jobs.cleanup import CleanupOptions, cleanup_expired
from memcli.jobs.common import Timeouts
from memcli.jobs.locks import lock_key
from memcli.partitions import convert as convert_mod
from memcli.partitions import upkeep
from memcli.partitions.layout import CONVERSATION_MEMORY, SPECS, add_months, month_start
from memcli.settings import set_setting

TABLES = [spec.table for spec in SPECS]


def layout(conn: psycopg.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT t, (SELECT relkind::text FROM pg_class WHERE oid = to_regclass(t)) FROM unnest(%s::text[]) t",
        (TABLES,),
    ).fetchall()
    return {t: k for t, k in rows}


def this_month(conn: psycopg.Connection) -> date:
    return month_start(conn.execute("SELECT now()").fetchone()[0])


def add_memory(
    conn: psycopg.Connection,
    expires_at: datetime | None,
    *,
    tier: str = "short_term",
    session: str = "s1",
    key: str | None = None,
) -> str:
    row = conn.execute(
        """
        INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value, expires_at)
        VALUES (%s, %s, %s, '{"v": 1}', %s) RETURNING id
        """,
        (session, tier, key or uuid.uuid4().hex, expires_at),
    ).fetchone()
    return str(row[0])


def snapshot(conn: psycopg.Connection, table: str) -> list[tuple[Any, ...]]:
    # the maintenance log gains the conversion's own run: compare the rows that were there before
    where = "WHERE maintenance_type <> 'partitions'" if table == "system_maintenance_log" else ""
    return conn.execute(f"SELECT * FROM {table} {where} ORDER BY 1").fetchall()


# --- the layout at the first migration -----------------------------------------------------------------


def test_migrate_partitioned_builds_the_three_tables_partitioned(partitioned_db: str) -> None:
    with connect(partitioned_db) as conn:
        assert layout(conn) == dict.fromkeys(TABLES, "p")
        names = [p.name for p in upkeep.list_partitions(conn, ["conversation_memory"])]
        month = this_month(conn)
        assert "conversation_memory_default" in names
        assert f"conversation_memory_{month:%Y_%m}" in names
        # expires_at reaches the longest retention ahead: 365 days, plus the premade months
        assert f"conversation_memory_{add_months(month, 12):%Y_%m}" in names
        assert not upkeep.missing_months(conn, CONVERSATION_MEMORY)
        # what depends on the tables points at the partitioned ones
        conn.execute("SELECT * FROM session_memory_summary").fetchall()
        policy = conn.execute(
            "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy "
            "WHERE polrelid = 'context_relevance'::regclass"
        ).fetchone()[0]
        assert "conversation_memory" in policy


def test_migrate_partitioned_on_a_migrated_plain_database_points_to_convert(plain_db: str, cli: Any) -> None:
    result = cli("migrate", "--partitioned", dsn=plain_db)
    assert result.exit_code == 2
    assert "memcli partition convert" in result.stderr


def test_create_memory_partition_works_as_the_document_describes(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        far = datetime(2040, 3, 15, 12, tzinfo=UTC)
        stray = add_memory(conn, far)
        assert (
            conn.execute(
                "SELECT tableoid::regclass::text FROM conversation_memory WHERE id = %s", (stray,)
            ).fetchone()[0]
            == "conversation_memory_default"
        )
        conn.execute("SELECT create_memory_partition('2040-03-20')")
        conn.execute("SELECT create_memory_partition('2040-03-01')")  # idempotent
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM conversation_memory WHERE id = %s", (stray,)
        ).fetchone()[0]
        assert where == "conversation_memory_2040_03"  # moved out of the default partition
        bound = conn.execute(
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
            "WHERE relname = 'conversation_memory_2040_03'"
        ).fetchone()[0]
        assert "2040-03-01 00:00:00+00" in bound and "2040-04-01 00:00:00+00" in bound


def test_create_memory_partition_on_the_plain_layout_says_to_convert(plain_db: str) -> None:
    with connect(plain_db) as conn, pytest.raises(errors.WrongObjectType, match="not partitioned"):
        conn.execute("SELECT create_memory_partition('2030-01-01')")


def test_session_and_key_stay_unique_across_partitions(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        add_memory(conn, now + timedelta(days=3), key="k")
        with pytest.raises(errors.UniqueViolation) as info:
            add_memory(conn, now + timedelta(days=200), tier="archived", key="k")
        assert info.value.diag.constraint_name == "conversation_memory_session_id_context_key_key"
        add_memory(conn, now + timedelta(days=200), session="s2", key="k")  # another session: fine
        # moving a row to another partition keeps its key
        conn.execute(
            "UPDATE conversation_memory SET expires_at = expires_at + interval '90 days' "
            "WHERE context_key = 'k'"
        )
        assert (
            conn.execute("SELECT count(*) FROM conversation_memory WHERE context_key = 'k'").fetchone()[0]
            == 2
        )


# --- cleanup and upkeep --------------------------------------------------------------------------------


def _past_month_with_rows(conn: psycopg.Connection, months_back: int, rows: dict[str, int]) -> str:
    month = add_months(this_month(conn), -months_back)
    conn.execute("SELECT create_memory_partition(%s)", (month,))
    when = datetime(month.year, month.month, 10, tzinfo=UTC)
    for tier, n in rows.items():
        for _ in range(n):
            add_memory(conn, when, tier=tier)
    return f"conversation_memory_{month:%Y_%m}"


def test_cleanup_drops_whole_partitions_and_deletes_only_the_rest(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        old = _past_month_with_rows(conn, 2, {"short_term": 5, "long_term": 2})
        older = _past_month_with_rows(conn, 3, {"archived": 1})
        now = conn.execute("SELECT now()").fetchone()[0]
        recent = add_memory(conn, now - timedelta(seconds=5))  # expired, in this month's partition
        live = add_memory(conn, now + timedelta(days=30))
        never = add_memory(conn, None, tier="semantic")

        dry = cleanup_expired(conn, CleanupOptions(dry_run=True))
        assert sorted(dry.would_drop_partitions or []) == sorted([old, older])
        assert dry.would_delete["conversation_memory"] == 9

        result = cleanup_expired(conn)
        assert sorted(result.partitions_dropped) == sorted([old, older])
        assert result.deleted["conversation_memory"] == 9
        assert result.deleted_by_tier == {"short_term": 6, "long_term": 2, "archived": 1, "semantic": 0}
        left = {str(r[0]) for r in conn.execute("SELECT id FROM conversation_memory")}
        assert left == {live, never} and recent not in left
        assert conn.execute("SELECT to_regclass(%s)", (old,)).fetchone()[0] is None


def test_the_detach_gives_way_to_a_conflicting_lock_and_drops_once_it_is_free(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        old = _past_month_with_rows(conn, 2, {"short_term": 3})
    blocker = psycopg.connect(partitioned_db)
    blocker.execute("SELECT count(*) FROM conversation_memory").fetchone()  # ACCESS SHARE until it ends
    release = threading.Timer(0.3, blocker.close)
    release.start()
    try:
        with connect(partitioned_db, autocommit=True) as conn:
            result = cleanup_expired(conn)
            assert result.partitions_dropped == [old] and result.deleted["conversation_memory"] == 3
            assert conn.execute("SELECT to_regclass(%s)", (old,)).fetchone()[0] is None
    finally:
        release.join()


def test_a_detach_that_never_gets_its_lock_gives_up_and_leaves_the_partition_attached(
    partitioned_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "PARTITION_LOCK_RETRIES", 1)
    real_retry, tries = upkeep.retry_on_lock, 0

    def counted(retries: int, attempt: Any, *args: Any) -> Any:
        def counted_attempt() -> Any:
            nonlocal tries
            tries += 1
            return attempt()

        return real_retry(retries, counted_attempt, *args)

    monkeypatch.setattr(upkeep, "retry_on_lock", counted)
    with connect(partitioned_db, autocommit=True) as conn:
        old = _past_month_with_rows(conn, 2, {"short_term": 3})
    with psycopg.connect(partitioned_db) as blocker:
        blocker.execute("SELECT count(*) FROM conversation_memory").fetchone()
        with connect(partitioned_db, autocommit=True) as conn, pytest.raises(errors.LockNotAvailable):
            cleanup_expired(conn, CleanupOptions(timeouts=Timeouts(lock_retries=0)))
        assert tries == 2  # the detach's first try and PARTITION_LOCK_RETRIES more
        with connect(partitioned_db, autocommit=True) as app:
            app.execute("SET statement_timeout = '2s'")  # nothing queues the application any more
            add_memory(app, None, tier="semantic", key="meanwhile")
            assert [p.name for p in upkeep.list_partitions(app, ["conversation_memory"])].count(old) == 1
            assert app.execute(f"SELECT count(*) FROM {old}").fetchone()[0] == 3
    with connect(partitioned_db, autocommit=True) as conn:
        assert cleanup_expired(conn).partitions_dropped == [old]


def test_upkeep_creates_missing_months_and_health_says_when_they_are_missing(
    partitioned_db: str, cli: Any
) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        future = f"conversation_memory_{add_months(this_month(conn), 4):%Y_%m}"
        conn.execute(f"DROP TABLE {future}")
    out = json.loads(cli("health", "--check", "partitions_ahead", "--json", dsn=partitioned_db).stdout)
    check = out["checks"][0]
    assert check["status"] == "warn" and future in json.dumps(check)

    result = cli("partition", "upkeep", "--json", dsn=partitioned_db)
    assert result.exit_code == 0, result.stderr
    assert future in json.loads(result.stdout)["result"]["created"]
    out = json.loads(cli("health", "--check", "partitions_ahead", "--json", dsn=partitioned_db).stdout)
    check = out["checks"][0]
    assert check["status"] == "ok"


def test_health_reports_overdue_partitions_and_rows_in_the_default(partitioned_db: str, cli: Any) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        _past_month_with_rows(conn, 2, {"short_term": 2})
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
            "SELECT 's', 'archived', 'k' || g, '2045-01-01' FROM generate_series(1, 3) g"
        )
    Path("memcli.toml").write_text("[health.thresholds]\npartition_default_rows_warn = 2\n", encoding="utf-8")
    out = json.loads(
        cli(
            "health",
            "--check",
            "partitions_overdue",
            "--check",
            "partition_default_rows",
            "--json",
            dsn=partitioned_db,
        ).stdout
    )
    checks = {c["name"]: c for c in out["checks"]}
    assert checks["partitions_overdue"]["status"] == "warn"
    assert checks["partition_default_rows"]["status"] == "warn"
    assert checks["partition_default_rows"]["value"] == 3


def test_partition_list_shows_bounds_and_sizes(partitioned_db: str, cli: Any) -> None:
    result = cli("partition", "list", "--table", "system_maintenance_log", "--json", dsn=partitioned_db)
    assert result.exit_code == 0, result.stderr
    partitions = json.loads(result.stdout)["partitions"]
    assert {p["table"] for p in partitions} == {"system_maintenance_log"}
    monthly = [p for p in partitions if not p["is_default"]]
    assert monthly and all(p["lower"] < p["upper"] and p["bytes"] >= 0 for p in monthly)


# --- online conversion ---------------------------------------------------------------------------------


def _fill_plain(conn: psycopg.Connection, n: int = 300) -> None:
    conn.execute(
        """
        INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value,
                                         importance_score, created_at, expires_at)
        SELECT 's' || (g %% 17), gen_random_uuid(), (ARRAY['short_term','long_term','archived'])[1 + g %% 3],
               'k' || g, jsonb_build_object('g', g), (g %% 10) / 10.0, now() - g * interval '1 hour',
               CASE WHEN g %% 50 = 0 THEN NULL
                    WHEN g %% 41 = 0 THEN timestamptz '1990-01-01'     -- before every planned month
                    ELSE now() + (g - 100) * interval '1 day' END
        FROM generate_series(1, %s) g
        """,
        (n,),
    )
    conn.execute(
        "INSERT INTO memory_consolidation_log (session_id, consolidation_type, created_at) "
        "SELECT 's' || g, 'merge', now() - g * interval '3 days' FROM generate_series(1, 40) g"
    )
    conn.execute(
        "INSERT INTO system_maintenance_log (maintenance_type, status, started_at) "
        "SELECT 'daily', 'succeeded', now() - g * interval '1 day' FROM generate_series(1, 40) g"
    )


def test_convert_keeps_every_row_and_puts_strays_in_the_default(plain_db: str, cli: Any) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
        before = {t: snapshot(conn, t) for t in TABLES}
    dry = cli("partition", "convert", "--dry-run", "--json", dsn=plain_db)
    assert dry.exit_code == 0, dry.stderr
    with connect(plain_db) as conn:
        assert layout(conn) == dict.fromkeys(TABLES, "r")  # the dry run changed nothing

    result = cli("partition", "convert", "--batch-size", "64", "--json", dsn=plain_db)
    assert result.exit_code == 0, result.stderr
    tables = {t["table"]: t for t in json.loads(result.stdout)["result"]["tables"]}
    assert {t["status"] for t in tables.values()} == {"converted"}
    assert tables["conversation_memory"]["rows_outside_months"] == 7  # the 1990 rows
    with connect(plain_db) as conn:
        assert layout(conn) == dict.fromkeys(TABLES, "p")
        assert {t: snapshot(conn, t) for t in TABLES} == before
        strays = conn.execute(
            "SELECT count(*) FROM conversation_memory_default WHERE expires_at IS NOT NULL"
        ).fetchone()[0]
        assert strays == 7
        # nothing of the conversion is left: the original (renamed aside in the swap), twin, change log
        leftovers = conn.execute(
            "SELECT relname FROM pg_class WHERE relname ~ '__(old|twin|changes)' ORDER BY 1"
        ).fetchall()
        assert leftovers == []
        # identity continues after the copied rows
        top = conn.execute("SELECT max(id) FROM system_maintenance_log").fetchone()[0]
        new = conn.execute(
            "INSERT INTO system_maintenance_log (maintenance_type, status) "
            "VALUES ('x', 'running') RETURNING id"
        ).fetchone()[0]
        assert new > top
        conn.rollback()
    Path("memcli.toml").write_text("[health.thresholds]\npartition_default_rows_warn = 5\n", encoding="utf-8")
    out = json.loads(cli("health", "--check", "partition_default_rows", "--json", dsn=plain_db).stdout)
    check = out["checks"][0]
    assert check["status"] == "warn"
    again = cli("partition", "convert", "--json", dsn=plain_db)
    assert {t["status"] for t in json.loads(again.stdout)["result"]["tables"]} == {"already partitioned"}


def test_convert_catches_up_with_writes_made_while_it_copies(plain_db: str) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
    app = psycopg.connect(plain_db, autocommit=True)
    calls = 0

    def write(table: str, done: int, total: int | None) -> None:
        nonlocal calls
        if table != "conversation_memory" or done == 0:
            return
        calls += 1
        app.execute(f"UPDATE conversation_memory SET importance_score = 0.99 WHERE context_key = 'k{calls}'")
        app.execute(f"DELETE FROM conversation_memory WHERE context_key = 'k{calls + 200}'")
        app.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
            "VALUES ('new', 'short_term', %s, now() + interval '3 days')",
            (f"new{calls}",),
        )

    try:
        with connect(plain_db) as conn:
            result = convert_mod.convert(conn, ["conversation_memory"], batch_size=50, progress=write)
        assert result.tables[0].status == "converted" and calls >= 5
        expected = snapshot(app, "conversation_memory")
        with connect(plain_db) as conn:
            assert layout(conn)["conversation_memory"] == "p"
            assert snapshot(conn, "conversation_memory") == expected
            assert (
                conn.execute(
                    "SELECT count(*) FROM conversation_memory WHERE importance_score > 0.98"
                ).fetchone()[0]
                == calls
            )
    finally:
        app.close()


def test_the_swap_replays_under_its_lock_what_came_after_the_last_pass(
    plain_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last catch-up pass runs without a lock; the swap's batch takes what was written after it."""
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
    app = psycopg.connect(plain_db, autocommit=True)
    real_pass = convert_mod._catch_up
    writes = 0

    def pass_then_write(conn: psycopg.Connection, spec: Any, size: int, timeouts: Any) -> int:
        nonlocal writes
        taken = real_pass(conn, spec, size, timeouts)
        writes += 1
        app.execute(
            "UPDATE conversation_memory SET importance_score = %s WHERE context_key = 'k3'", (writes / 100,)
        )
        return taken

    monkeypatch.setattr(convert_mod, "_catch_up", pass_then_write)
    try:
        with connect(plain_db) as conn:
            result = convert_mod.convert(conn, ["conversation_memory"], batch_size=50)
        table = result.tables[0]
        assert table.status == "converted" and table.lock_ms > 0
        with connect(plain_db) as conn:
            assert layout(conn)["conversation_memory"] == "p"
            score = conn.execute(
                "SELECT importance_score FROM conversation_memory WHERE context_key = 'k3'"
            ).fetchone()[0]
        assert writes >= 2 and float(score) == pytest.approx(writes / 100)
    finally:
        app.close()


def _hold_the_table(dsn: str) -> psycopg.Connection:
    """Another connection in a transaction that has read conversation_memory: its ACCESS SHARE lock
    conflicts with the swap's ACCESS EXCLUSIVE one until it ends."""
    blocker = psycopg.connect(dsn)
    blocker.execute("SELECT count(*) FROM conversation_memory").fetchone()
    return blocker


def test_the_swap_gives_way_to_a_conflicting_lock_and_retries(
    plain_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
    real_swap = convert_mod._run_swap
    blocker: psycopg.Connection | None = None
    tries = 0

    def swap_while_held(conn: psycopg.Connection, batch: list[Any]) -> dict[str, float]:
        nonlocal blocker, tries
        tries += 1
        if tries == 1:
            blocker = _hold_the_table(plain_db)
        elif tries == 3 and blocker is not None:
            blocker.close()  # released: the third try gets the lock
        return real_swap(conn, batch)

    monkeypatch.setattr(convert_mod, "_run_swap", swap_while_held)
    with connect(plain_db, autocommit=True) as app:
        expected = snapshot(app, "conversation_memory")
    with connect(plain_db) as conn:
        result = convert_mod.convert(conn, ["conversation_memory"], batch_size=50)
    table = result.tables[0]
    assert table.status == "converted" and table.swap_attempts == 3 and table.lock_ms > 0
    with connect(plain_db) as conn:
        assert layout(conn)["conversation_memory"] == "p"
        assert snapshot(conn, "conversation_memory") == expected


def test_a_swap_that_never_gets_its_lock_gives_up_leaving_the_original_serving_and_resumable(
    plain_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
    monkeypatch.setattr(convert_mod, "SWAP_LOCK_RETRIES", 2)
    real_swap = convert_mod._run_swap
    tries = 0

    def counted(conn: psycopg.Connection, batch: list[Any]) -> dict[str, float]:
        nonlocal tries
        tries += 1
        return real_swap(conn, batch)

    monkeypatch.setattr(convert_mod, "_run_swap", counted)
    blocker = _hold_the_table(plain_db)
    try:
        with connect(plain_db) as conn, pytest.raises(errors.LockNotAvailable):
            convert_mod.convert(conn, ["conversation_memory"], batch_size=50)
        assert tries == 3  # the first try and two retries
        with connect(plain_db, autocommit=True) as app:
            # The lock is still held elsewhere, yet nothing of the convert stands in the application's way.
            app.execute("SET statement_timeout = '2s'")
            assert layout(app)["conversation_memory"] == "r"
            add_memory(app, None, tier="semantic", key="after-the-give-up")
            app.execute("UPDATE conversation_memory SET importance_score = 0.42 WHERE context_key = 'k7'")
            assert app.execute(
                "SELECT to_regclass('conversation_memory__twin') IS NOT NULL, "
                "count(*) FROM conversation_memory__changes"
            ).fetchone() == (True, 2)  # the twin waits, and the change log keeps recording
            expected = snapshot(app, "conversation_memory")
    finally:
        blocker.close()
    with connect(plain_db) as conn:
        result = convert_mod.convert(conn, ["conversation_memory"], batch_size=50)
    table = result.tables[0]
    assert table.resumed and table.status == "converted" and table.rows_copied == 0
    with connect(plain_db) as conn:
        assert layout(conn)["conversation_memory"] == "p"
        assert snapshot(conn, "conversation_memory") == expected


class Stop(Exception):
    pass


def test_an_interrupted_convert_leaves_the_original_serving_and_resumes(plain_db: str, cli: Any) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
        before = snapshot(conn, "conversation_memory")

    def stop_after_first_batch(table: str, done: int, total: int | None) -> None:
        if done > 0:
            raise Stop

    with connect(plain_db) as conn, pytest.raises(Stop):
        convert_mod.convert(conn, ["conversation_memory"], batch_size=40, progress=stop_after_first_batch)
    with connect(plain_db, autocommit=True) as conn:
        assert layout(conn)["conversation_memory"] == "r"
        add_memory(conn, None, tier="semantic", key="during")  # the app keeps writing
        expected = snapshot(conn, "conversation_memory")
        assert len(expected) == len(before) + 1
    with connect(plain_db) as conn:
        result = convert_mod.convert(conn, ["conversation_memory"], batch_size=40)
    assert result.tables[0].resumed and result.tables[0].status == "converted"
    assert result.tables[0].rows_copied < len(expected)  # the first batch was not copied again
    with connect(plain_db) as conn:
        assert snapshot(conn, "conversation_memory") == expected


def test_an_abandoned_convert_removes_everything_it_added(plain_db: str, cli: Any) -> None:
    with connect(plain_db, autocommit=True) as conn:
        _fill_plain(conn)
        objects = conn.execute("SELECT count(*) FROM pg_class").fetchone()[0]
        triggers = conn.execute("SELECT count(*) FROM pg_trigger").fetchone()[0]

    def stop(table: str, done: int, total: int | None) -> None:
        if done > 0:
            raise Stop

    with connect(plain_db) as conn, pytest.raises(Stop):
        convert_mod.convert(conn, ["conversation_memory"], batch_size=40, progress=stop)
    result = cli("partition", "convert", "--abandon", "--json", dsn=plain_db)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["result"]["tables"][0]["status"] == "abandoned"
    with connect(plain_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class").fetchone()[0] == objects
        assert conn.execute("SELECT count(*) FROM pg_trigger").fetchone()[0] == triggers
        assert layout(conn)["conversation_memory"] == "r"


def test_a_second_convert_or_upkeep_while_one_runs_exits_75(plain_db: str, cli: Any) -> None:
    with psycopg.connect(plain_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("partitions"),))
        assert cli("partition", "convert", dsn=plain_db).exit_code == 75
        assert cli("partition", "upkeep", dsn=plain_db).exit_code == 75
        assert cli("maintain", "daily", dsn=plain_db).exit_code == 75
    with connect(plain_db) as conn:
        assert layout(conn)["conversation_memory"] == "r"


def test_downgrade_turns_the_partitioned_layout_back_into_plain_tables(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        _fill_plain(conn, 120)
        before = {t: snapshot(conn, t) for t in TABLES}
    migrations.downgrade(partitioned_db, "0004_consolidate_per_user")
    with connect(partitioned_db) as conn:
        assert layout(conn) == dict.fromkeys(TABLES, "r")
        assert {t: snapshot(conn, t) for t in TABLES} == before
        assert conn.execute("SELECT to_regprocedure('create_memory_partition(date)')").fetchone()[0] is None
    migrations.upgrade(partitioned_db)
    migrations.downgrade(partitioned_db, "base")
    with connect(partitioned_db) as conn:
        assert conn.execute("SELECT to_regclass('conversation_memory')").fetchone()[0] is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(
        st.one_of(st.none(), st.integers(min_value=-400, max_value=400)), min_size=1, max_size=25
    )
)
def test_cleanup_leaves_exactly_the_unexpired_memories(
    partitioned_db: str, offsets: list[int | None]
) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        conn.execute("DELETE FROM conversation_memory")
        now = conn.execute("SELECT now()").fetchone()[0]
        for months_back in range(1, 15):  # partitions for past months, as a long-running database has
            conn.execute("SELECT create_memory_partition(%s)", (add_months(this_month(conn), -months_back),))
        keep = set()
        for offset in offsets:
            expires = None if offset is None else now + timedelta(days=offset)
            memory = add_memory(conn, expires, tier="semantic" if offset is None else "long_term")
            if offset is None or offset > 0:
                keep.add(memory)
        cleanup_expired(conn)
        assert {str(r[0]) for r in conn.execute("SELECT id FROM conversation_memory")} == keep


def test_monthly_vacuums_and_reindexes_the_partitions(partitioned_db: str, cli: Any) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        add_memory(conn, now + timedelta(days=40))
        month = f"conversation_memory_{month_start(now + timedelta(days=40)):%Y_%m}"
    result = cli("maintain", "monthly", "--json", dsn=partitioned_db)
    assert result.exit_code == 0, result.stderr
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    tables = {t["table"] for t in steps["vacuum_analyze"]["result"]["tables"]}
    assert month in tables and "conversation_memory_default" in tables and "conversation_memory" not in tables
    rebuilt = {(i["table"], i["index"]) for i in steps["reindex"]["result"]["rebuilt"]}
    assert any(table == month for table, _ in rebuilt)


def test_drop_only_cleanup_deletes_no_row_of_a_live_partition(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        old = _past_month_with_rows(conn, 2, {"short_term": 3})
        now = conn.execute("SELECT now()").fetchone()[0]
        waiting = add_memory(conn, now - timedelta(seconds=5))  # expired, in a month still running
        stray = add_memory(conn, datetime(1999, 1, 1, tzinfo=UTC))  # expired, in the default partition
        set_setting(conn, "cleanup.partition_drop_only", True)
        dry = cleanup_expired(conn, CleanupOptions(dry_run=True))
        assert dry.would_delete["conversation_memory"] == 4 and dry.would_drop_partitions == [old]
        result = cleanup_expired(conn)
        assert result.partitions_dropped == [old] and result.deleted["conversation_memory"] == 4
        left = {str(r[0]) for r in conn.execute("SELECT id FROM conversation_memory")}
        assert waiting in left and stray not in left
        waiting_only = cleanup_expired(conn, CleanupOptions(drop_only=False))
        assert waiting_only.deleted["conversation_memory"] == 1  # the waiting one


@pytest.mark.parametrize("width", [80, 120])
def test_partition_list_and_convert_read_at_the_terminal_width(plain_db: str, cli: Any, width: int) -> None:
    with connect(plain_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value) "
            "VALUES ('s', 'short_term', 'k', '{}')"
        )
    env = {"COLUMNS": str(width)}
    converted = cli("partition", "convert", dsn=plain_db, env=env)
    assert converted.exit_code == 0, converted.output
    lines = converted.stdout.splitlines()
    assert all(len(line) <= width for line in lines)
    assert any(line.split()[:3] == ["conversation_memory", "converted", "1"] for line in lines)
    listed = cli("partition", "list", dsn=plain_db, env=env).stdout.splitlines()
    assert all(len(line) <= width for line in listed)
    month = datetime.now(UTC)
    name = f"conversation_memory_{month:%Y_%m}"
    row = next(line for line in listed if line.startswith(name))
    assert f"{month:%Y-%m}-01" in row  # the whole name and its lower bound, not cut
