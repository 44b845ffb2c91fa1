"""memcli consolidate: merge per session through the SQL function, decay, archive, forget, interruption."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from memcli.jobs.consolidate import ConsolidateOptions, archive_memories, decay_relevance, forget_memories
from memcli.jobs.locks import lock_key
from memcli.jobs.maintain import consolidate_steps, run_steps
from memcli.schema import names

# Every table with an id the jobs could touch: a dry run leaves all of them as they were.
SNAPSHOT_TABLES = (*names.MEMORY_TABLES, names.MAINTENANCE_LOG)


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def add_memory(
    conn: psycopg.Connection,
    session: str,
    key: str,
    value: Any,
    *,
    tier: str = "short_term",
    age: str = "10 days",
    importance: float = 0.5,
    accesses: int = 0,
    expires_in: str = "30 days",
) -> str:
    """A live memory (explicit expiry ahead, whatever its age); a negative ``expires_in`` makes it expired."""
    row = conn.execute(
        """
        INSERT INTO conversation_memory
            (session_id, memory_type, context_key, context_value, importance_score, access_count,
             created_at, last_accessed_at, expires_at)
        VALUES (%s, %s, %s, %s, %s, %s, now() - %s::interval, now() - %s::interval, now() + %s::interval)
        RETURNING id
        """,
        (session, tier, key, Jsonb(value), importance, accesses, age, age, expires_in),
    ).fetchone()
    return str(row[0])


def prepare(dsn: str) -> dict[str, list[str]]:
    """alice: three old short-term memories with clashing keys and one young one; bob: two old ones;
    carol: only a young one; dave: long-term only."""
    ids: dict[str, list[str]] = {}
    with connect(dsn) as conn:
        ids["alice"] = [
            add_memory(conn, "alice", "pref", {"food": "pizza", "size": "L"}, age="12 days", importance=0.4),
            add_memory(conn, "alice", "pref2", {"food": "sushi"}, age="11 days", importance=0.9, accesses=3),
            add_memory(conn, "alice", "note", "window seat", age="10 days", importance=0.2, accesses=2),
        ]
        ids["alice_young"] = [add_memory(conn, "alice", "today", {"mood": "hungry"}, age="1 hour")]
        ids["bob"] = [
            add_memory(conn, "bob", "allergy", {"nuts": True}, age="30 days"),
            add_memory(conn, "bob", "allergy2", {"nuts": False, "gluten": True}, age="6 days"),
        ]
        ids["carol"] = [add_memory(conn, "carol", "x", {"y": 1}, age="2 days")]
        ids["dave"] = [add_memory(conn, "dave", "fav", {"drink": "tea"}, tier="long_term", age="3 days")]
    return ids


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with connect(dsn) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in SNAPSHOT_TABLES}


def values_of(conn: psycopg.Connection, ids: list[str]) -> dict[str, tuple[str, Any]]:
    rows = conn.execute(
        "SELECT id, context_key, context_value FROM conversation_memory WHERE id = ANY(%s::uuid[])", (ids,)
    ).fetchall()
    return {str(r[0]): (r[1], r[2]) for r in rows}


def assert_conserved(
    originals: dict[str, tuple[str, Any]], merged: dict[str, Any], details: dict[str, Any]
) -> None:
    """Every key of every original is in the merged value, with the same value or logged as overridden."""
    overridden = details.get("overridden", {})
    for key, value in originals.values():
        as_object = value if isinstance(value, dict) else {key: value}
        for k, v in as_object.items():
            assert k in merged, f"{k} lost"
            if merged[k] != v:
                kept = overridden.get(k)
                assert kept == v or (isinstance(kept, list) and v in kept), (
                    f"{k}={v!r} neither merged nor logged"
                )


def run_json(cli: Any, dsn: str, *args: str) -> dict[str, Any]:
    result = cli(*args, "--json", dsn=dsn)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_counts_and_changes_nothing(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    before = snapshot(migrated_db)
    out = run_json(cli, migrated_db, "consolidate", "--dry-run", "--decay", "--archive", "--forget")
    assert out["dry_run"] is True
    assert (out["sessions_consolidated"], out["memories_merged"]) == (2, 5)  # alice 3, bob 2
    assert out["decayed"] == 0 and out["archived"] == 0 and out["forgotten"] == 0
    assert snapshot(migrated_db) == before
    narrower = run_json(cli, migrated_db, "consolidate", "--dry-run", "--older-than", "8d")
    assert (narrower["sessions_consolidated"], narrower["memories_merged"]) == (2, 4)


def test_merge_conserves_information(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    with connect(migrated_db) as conn:
        originals = values_of(conn, ids["alice"])
    out = run_json(cli, migrated_db, "consolidate")
    assert (out["sessions_consolidated"], out["memories_merged"]) == (2, 5)
    assert out["steps"][0]["step"] == "consolidate" and out["steps"][0]["status"] == "succeeded"

    with connect(migrated_db) as conn:
        gone = conn.execute(
            "SELECT count(*) FROM conversation_memory WHERE id = ANY(%s::uuid[])",
            (ids["alice"] + ids["bob"],),
        ).fetchone()[0]
        assert gone == 0
        kept = conn.execute(
            "SELECT count(*) FROM conversation_memory WHERE id = ANY(%s::uuid[])",
            (ids["alice_young"] + ids["carol"] + ids["dave"],),
        ).fetchone()[0]
        assert kept == 3
        merged = conn.execute(
            """
            SELECT m.id, m.memory_type, m.context_key, m.context_value, m.importance_score, m.access_count,
                   m.expires_at - now(), l.old_memory_ids, l.details, l.consolidation_reason
            FROM conversation_memory m JOIN memory_consolidation_log l ON l.new_memory_id = m.id
            WHERE m.session_id = 'alice' AND l.consolidation_type = 'merge'
            """
        ).fetchall()
    assert len(merged) == 1
    new_id, tier, key, value, importance, accesses, expires_in, old_ids, details, reason = merged[0]
    assert tier == "long_term" and key == f"consolidated:{new_id}"
    assert sorted(map(str, old_ids)) == sorted(ids["alice"])
    assert value == {"food": "sushi", "size": "L", "note": "window seat"}  # later values win
    assert importance == pytest.approx(0.9) and accesses == 5
    assert timedelta(days=89) < expires_in <= timedelta(days=90)
    assert reason
    assert_conserved(originals, value, details)
    assert "pizza" in json.dumps(details["overridden"]["food"])


def test_cli_equals_the_sql_function_per_session(migrated_db: str, databases: Any, cli: Any) -> None:
    prepare(migrated_db)
    with connect(migrated_db) as conn:
        for n in range(15):
            for k in range(n % 4 + 1):
                add_memory(conn, f"s{n}", f"k{k}", {"k": k, "n": n, f"only{k}": True}, age=f"{k + 4} days")
    twin = databases.create(template=psycopg.conninfo.conninfo_to_dict(migrated_db)["dbname"])

    run_json(cli, migrated_db, "consolidate")
    with connect(twin) as conn:
        for (session,) in conn.execute("SELECT DISTINCT session_id FROM conversation_memory").fetchall():
            conn.execute("SELECT consolidate_session_memories(%s)", (session,))

    def state(dsn: str) -> tuple[list[Any], list[Any]]:
        with connect(dsn) as conn:
            memories = conn.execute(
                """
                SELECT session_id, memory_type,
                       CASE WHEN context_key LIKE 'consolidated:%%' THEN 'consolidated' ELSE context_key END,
                       context_value, importance_score, access_count
                FROM conversation_memory ORDER BY 1, 3, 4::text
                """
            ).fetchall()
            log = conn.execute(
                """
                SELECT session_id, consolidation_type,
                       (SELECT array_agg(x ORDER BY x) FROM unnest(old_memory_ids) x), details
                FROM memory_consolidation_log ORDER BY 1, 3
                """
            ).fetchall()
        return memories, log

    assert state(migrated_db) == state(twin)


def test_session_option(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    out = run_json(cli, migrated_db, "consolidate", "--session", "bob")
    assert (out["sessions_consolidated"], out["memories_merged"]) == (1, 2)
    with connect(migrated_db) as conn:
        assert len(values_of(conn, ids["alice"])) == 3


def test_decay(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        conn.execute(
            """
            INSERT INTO context_relevance
                (session_id, context_type, context_key, relevance_score, decay_factor, last_calculated)
            VALUES ('a', 't', 'old', 0.8, 0.5, now() - interval '2 days'),
                   ('a', 't', 'fresh', 0.8, 0.5, now() - interval '1 hour'),
                   ('b', 't', 'old', 0.6, 0.9, now() - interval '30 hours')
            """
        )
        assert decay_relevance(conn, ConsolidateOptions(dry_run=True)).decayed == 2
        assert decay_relevance(conn, ConsolidateOptions(session="b")).decayed == 1
        result = decay_relevance(conn, ConsolidateOptions(batch_size=1))
        assert result.decayed == 1 and result.batches == 1
        scores = dict(
            conn.execute("SELECT session_id || context_key, relevance_score FROM context_relevance")
        )
        assert scores == pytest.approx({"aold": 0.4, "afresh": 0.8, "bold": 0.54})
        assert decay_relevance(conn).decayed == 0  # recalculated just now


def test_archive_does_not_count_as_access(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        low_old = [
            add_memory(conn, f"s{n}", "k", {"n": n}, tier="long_term", age="40 days", importance=0.1)
            for n in range(3)
        ]
        add_memory(conn, "s0", "young", {}, tier="long_term", age="10 days", importance=0.1)
        add_memory(conn, "s0", "important", {}, tier="long_term", age="40 days", importance=0.5)
        add_memory(conn, "s0", "short", {}, tier="short_term", age="40 days", importance=0.1)
        before = dict(
            conn.execute("SELECT id::text, (access_count, last_accessed_at) FROM conversation_memory")
        )

        dry = archive_memories(conn, ConsolidateOptions(dry_run=True))
        assert (dry.archived, dry.sessions) == (3, 3)
        result = archive_memories(conn, ConsolidateOptions(batch_size=2))
        assert (result.archived, result.sessions, result.batches) == (3, 3, 2)

        rows = conn.execute(
            "SELECT id::text, memory_type, expires_at - now() FROM conversation_memory "
            "WHERE memory_type = 'archived'"
        ).fetchall()
        assert sorted(r[0] for r in rows) == sorted(low_old)
        assert all(timedelta(days=364) < r[2] <= timedelta(days=365) for r in rows)
        after = dict(
            conn.execute("SELECT id::text, (access_count, last_accessed_at) FROM conversation_memory")
        )
        assert after == before  # maintenance is not an access
        logged = conn.execute(
            "SELECT array_agg(x::text) FROM memory_consolidation_log, unnest(old_memory_ids) x "
            "WHERE consolidation_type = 'archive'"
        ).fetchone()[0]
        assert sorted(logged) == sorted(low_old)
        assert archive_memories(conn).archived == 0


def test_forget_keeps_ids_in_the_log(migrated_db: str, cli: Any) -> None:
    with connect(migrated_db) as conn:
        doomed = [add_memory(conn, "s", f"k{n}", {"n": n}, tier="archived", age="100 days") for n in range(2)]
        add_memory(conn, "s", "used", {}, tier="archived", age="100 days", accesses=2)
        add_memory(conn, "s", "recent", {}, tier="archived", age="10 days")
        add_memory(conn, "t", "long", {}, tier="long_term", age="100 days", importance=0.9)
    dry = run_json(cli, migrated_db, "consolidate", "--forget", "--dry-run")
    assert dry["forgotten"] == 2
    out = run_json(cli, migrated_db, "consolidate", "--forget", "--archive")
    assert out["forgotten"] == 2 and out["archived"] == 0 and out["decayed"] is None
    with connect(migrated_db) as conn:
        keys = {r[0] for r in conn.execute("SELECT context_key FROM conversation_memory")}
        assert keys == {"used", "recent", "long"}
        log = conn.execute(
            "SELECT session_id, old_memory_ids, consolidation_reason FROM memory_consolidation_log "
            "WHERE consolidation_type = 'forget'"
        ).fetchall()
    assert len(log) == 1 and log[0][0] == "s" and sorted(map(str, log[0][1])) == sorted(doomed)
    assert "never accessed" in log[0][2]
    with connect(migrated_db) as conn:
        assert (
            forget_memories(conn, ConsolidateOptions(forget_min_age=timedelta(days=5))).forgotten == 1
        )  # 'recent' is 10 days old


def test_archive_and_forget_keep_to_the_session(migrated_db: str) -> None:
    with connect(migrated_db) as conn:
        for session in ("s", "t"):
            add_memory(conn, session, "low", {}, tier="long_term", age="40 days", importance=0.1)
            add_memory(conn, session, "unused", {}, tier="archived", age="100 days")
        assert archive_memories(conn, ConsolidateOptions(session="s", dry_run=True)).archived == 1
        assert forget_memories(conn, ConsolidateOptions(session="s", dry_run=True)).forgotten == 1
        archived, forgotten = (
            archive_memories(conn, ConsolidateOptions(session="s")),
            forget_memories(conn, ConsolidateOptions(session="s")),
        )
        assert (archived.archived, archived.sessions, archived.log_rows) == (1, 1, 1)
        assert (forgotten.forgotten, forgotten.sessions, forgotten.log_rows) == (1, 1, 1)
        left = conn.execute(
            "SELECT session_id, memory_type, count(*) FROM conversation_memory GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    # s: its low-importance memory archived, its unused archived one forgotten; t untouched
    assert left == [("s", "archived", 1), ("t", "archived", 1), ("t", "long_term", 1)]


def test_library_consolidate_runs_all_parts(migrated_db: str) -> None:
    prepare(migrated_db)
    options = ConsolidateOptions(decay=True, archive=True, forget=True)
    report = run_steps(migrated_db, "consolidate", consolidate_steps(options), dry_run=options.dry_run)
    merge = report.step("consolidate")
    assert merge is not None and merge.result.sessions == 2
    assert [s.step for s in report.steps] == ["consolidate", "decay", "archive", "forget"]
    assert all(s.result is not None for s in report.steps)
    assert report.rows == 5


def test_locked_exits_75(migrated_db: str, cli: Any) -> None:
    prepare(migrated_db)
    with connect(migrated_db) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("consolidate"),))
        result = cli("consolidate", dsn=migrated_db)
        weekly = cli("maintain", "weekly", dsn=migrated_db)
    assert result.exit_code == 75 and weekly.exit_code == 75
    assert len(result.stderr.strip().splitlines()) == 1


def test_busy_session_is_skipped_and_left_whole(migrated_db: str, cli: Any) -> None:
    ids = prepare(migrated_db)
    with connect(migrated_db) as app:
        with app.transaction():
            app.execute("SELECT 1 FROM conversation_memory WHERE id = %s FOR UPDATE", (ids["alice"][1],))
            out = run_json(cli, migrated_db, "consolidate", "--lock-timeout", "50ms")
        assert (out["sessions_consolidated"], out["memories_merged"], out["sessions_skipped"]) == (1, 2, 1)
        with connect(migrated_db) as conn:
            assert len(values_of(conn, ids["alice"])) == 3
    out = run_json(cli, migrated_db, "consolidate")
    assert (out["sessions_consolidated"], out["memories_merged"]) == (1, 3)


def test_terminated_run_never_leaves_half_a_merge(migrated_db: str, cli: Any) -> None:
    sessions = [f"s{n:02d}" for n in range(8)]
    originals: dict[str, dict[str, tuple[str, Any]]] = {}
    with connect(migrated_db) as conn:
        for s in sessions:
            made = [
                add_memory(conn, s, f"k{k}", {"shared": k, f"own{k}": s}, age=f"{10 - k} days")
                for k in range(3)
            ]
            originals[s] = values_of(conn, made)
        conn.execute(
            """
            CREATE FUNCTION test_slow_log() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.15); RETURN NEW; END $$;
            CREATE TRIGGER test_slow_log BEFORE INSERT ON memory_consolidation_log
                FOR EACH ROW EXECUTE FUNCTION test_slow_log();
            """
        )

    def terminate_mid_run() -> None:
        with connect(migrated_db) as conn:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                merged = conn.execute("SELECT count(*) FROM memory_consolidation_log").fetchone()[0]
                if merged >= 3:
                    row = conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name = 'memcli' AND state = 'active' "
                        "AND query ILIKE '%%consolidate_session_memories%%'"
                    ).fetchone()
                    if row:
                        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                        return
                time.sleep(0.01)

    killer = threading.Thread(target=terminate_mid_run)
    killer.start()
    result = cli("consolidate", "--json", dsn=migrated_db)
    killer.join()
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["steps"][0]["status"] == "failed"
    assert "terminat" in out["steps"][0]["error"].lower() or "connection" in out["steps"][0]["error"].lower()

    def check_invariant() -> int:
        done = 0
        with connect(migrated_db) as conn:
            for s in sessions:
                left = values_of(conn, list(originals[s]))
                log = conn.execute(
                    "SELECT l.old_memory_ids, l.details, m.context_value FROM memory_consolidation_log l "
                    "JOIN conversation_memory m ON m.id = l.new_memory_id WHERE l.session_id = %s",
                    (s,),
                ).fetchall()
                if left:
                    assert len(left) == 3 and not log, f"{s}: partly consolidated"
                else:
                    assert len(log) == 1, f"{s}: originals gone without merged memory and log row"
                    assert sorted(map(str, log[0][0])) == sorted(originals[s])
                    assert_conserved(originals[s], log[0][2], log[0][1])
                    done += 1
        return done

    done = check_invariant()
    assert 0 < done < len(sessions)
    with connect(migrated_db) as conn:
        conn.execute("DROP TRIGGER test_slow_log ON memory_consolidation_log")
        step = conn.execute(
            "SELECT status, records_processed FROM system_maintenance_log "
            "WHERE maintenance_type = 'consolidate' AND step = 'consolidate'"
        ).fetchone()
    assert step == ("failed", 3 * done)
    again = run_json(cli, migrated_db, "consolidate")
    assert again["sessions_consolidated"] == len(sessions) - done
    assert check_invariant() == len(sessions)


def test_expired_memories_are_left_for_cleanup_not_merged(migrated_db: str, cli) -> None:
    with connect(migrated_db) as conn:
        live = add_memory(conn, "erin", "live", {"a": 1}, age="6 days")
        expired = add_memory(conn, "erin", "gone", {"b": 2}, age="9 days", expires_in="-2 days")
    result = cli("consolidate", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    with connect(migrated_db) as conn:
        merged = conn.execute(
            "SELECT context_value FROM conversation_memory "
            "WHERE session_id = 'erin' AND memory_type = 'long_term'"
        ).fetchone()[0]
        assert merged == {"a": 1}  # the expired memory's content was not given a new lease in long_term
        remaining = {
            str(r[0]) for r in conn.execute("SELECT id FROM conversation_memory WHERE session_id = 'erin'")
        }
        assert expired in remaining and live not in remaining
        # and the SQL function agrees: nothing left to merge for erin
        assert conn.execute("SELECT consolidate_session_memories('erin')").fetchall() == []
