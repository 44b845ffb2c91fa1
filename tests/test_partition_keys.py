"""The partitioned layout's unique (session_id, context_key) through the key table (revision 0011).

Every row's key is recorded in ``conversation_memory_keys`` with the row's id; a delete releases it, a
partition drop leaves its rows' keys for the weekly sweep (an insert of such a key takes it over), a
conversion records the keys of the rows it copies. The layouts refuse and accept the same writes.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

from memcli import migrations
from memcli.db import connect
from memcli.jobs.cleanup import cleanup_expired
from memcli.partitions import convert as convert_mod
from memcli.partitions import upkeep
from memcli.partitions.layout import CONVERSATION_MEMORY, add_months, month_start

CONSTRAINT = "conversation_memory_session_id_context_key_key"


def rows_keys(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return {
        (s, k, str(i))
        for s, k, i in conn.execute("SELECT session_id, context_key, id FROM conversation_memory")
    }


def recorded(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return {
        (s, k, str(i))
        for s, k, i in conn.execute("SELECT session_id, context_key, memory_id FROM conversation_memory_keys")
    }


def insert(conn: psycopg.Connection, session: str, key: str, expires_at: datetime | None = None) -> str:
    row = conn.execute(
        "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value, expires_at) "
        "VALUES (%s, 'short_term', %s, '{}', %s) RETURNING id",
        (session, key, expires_at),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_keys_follow_inserts_updates_moves_and_deletes(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]
        a = insert(conn, "s1", "k1")
        insert(conn, "s1", "k2", now + timedelta(days=200))
        insert(conn, "s2", "k1")
        assert recorded(conn) == rows_keys(conn) and len(rows_keys(conn)) == 3
        with pytest.raises(errors.UniqueViolation) as info:
            insert(conn, "s1", "k1", now + timedelta(days=300))  # another partition: still refused
        assert info.value.diag.constraint_name == CONSTRAINT
        # an update of expires_at moves the row to another partition; its key stays recorded
        conn.execute(
            "UPDATE conversation_memory SET expires_at = now() + interval '250 days' WHERE id = %s", (a,)
        )
        assert recorded(conn) == rows_keys(conn)
        # a changed key: the old one is free, the new one taken
        conn.execute("UPDATE conversation_memory SET context_key = 'k3' WHERE id = %s", (a,))
        assert recorded(conn) == rows_keys(conn)
        insert(conn, "s1", "k1")
        with pytest.raises(errors.UniqueViolation):
            conn.execute("UPDATE conversation_memory SET context_key = 'k2' WHERE id = %s", (a,))
        conn.execute("DELETE FROM conversation_memory WHERE session_id = 's1'")
        assert recorded(conn) == rows_keys(conn) and len(rows_keys(conn)) == 1
        insert(conn, "s1", "k2")  # released by the delete


def test_a_concurrent_writer_of_the_same_key_waits_then_fails_or_succeeds(partitioned_db: str) -> None:
    for outcome in ("commit", "rollback"):
        first = psycopg.connect(partitioned_db)
        second = psycopg.connect(partitioned_db, autocommit=True)
        try:
            key = f"k-{outcome}"
            insert(first, "race", key)  # uncommitted
            errors_seen: list[Exception] = []

            def write(
                conn: psycopg.Connection = second, key: str = key, seen: list[Exception] = errors_seen
            ) -> None:
                try:
                    insert(conn, "race", key)
                except Exception as exc:  # reported to the test below
                    seen.append(exc)

            thread = threading.Thread(target=write)
            thread.start()
            # waits for the first writer's transaction, as on a unique index
            assert _waits_for_a_lock(partitioned_db, second.info.backend_pid)
            assert thread.is_alive()
            getattr(first, outcome)()
            thread.join(10)
            assert not thread.is_alive()
            if outcome == "commit":
                assert len(errors_seen) == 1 and isinstance(errors_seen[0], errors.UniqueViolation)
            else:
                assert errors_seen == []
            count = second.execute(
                "SELECT count(*) FROM conversation_memory WHERE session_id = 'race' AND context_key = %s",
                (key,),
            ).fetchone()[0]
            assert count == 1
        finally:
            first.close()
            second.close()


def _waits_for_a_lock(dsn: str, pid: int, seconds: float = 20) -> bool:
    """Whether backend ``pid`` is seen waiting for a lock within ``seconds``."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row and row[0] == "Lock":
                return True
            time.sleep(0.02)
    return False


def _two_months_ago(conn: psycopg.Connection) -> tuple[date, datetime]:
    month = add_months(month_start(conn.execute("SELECT now()").fetchone()[0]), -2)
    conn.execute("SELECT create_memory_partition(%s)", (month,))
    return month, datetime(month.year, month.month, 10, tzinfo=UTC)


def test_a_dropped_partitions_keys_are_taken_over_then_swept(partitioned_db: str) -> None:
    with connect(partitioned_db, autocommit=True) as conn:
        month, gone = _two_months_ago(conn)
        old = {insert(conn, "old", f"k{n}", gone) for n in range(30)}
        live = insert(conn, "live", "k0")
        result = cleanup_expired(conn)
        assert f"conversation_memory_{month:%Y_%m}" in result.partitions_dropped
        # the drop does not wait for the keys: they stay recorded, naming rows that are gone
        assert {i for s, _, i in recorded(conn) if s == "old"} == old
        again = insert(conn, "old", "k1")  # free again: the stale key is taken over
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "old", "k1")

        assert upkeep.release_stale_keys(conn, dry_run=True).released == 29
        assert len(recorded(conn)) == 31  # a dry run removes nothing
        sweep = upkeep.release_stale_keys(conn)
        assert (sweep.released, sweep.skipped) == (29, None)
        assert recorded(conn) == rows_keys(conn) == {("live", "k0", live), ("old", "k1", again)}
        assert upkeep.release_stale_keys(conn).released == 0

        # a key recorded without its row, however it got there, is taken over like a dropped one
        stale = str(uuid.uuid4())
        conn.execute("INSERT INTO conversation_memory_keys VALUES ('s', 'k', %s)", (stale,))
        new = insert(conn, "s", "k")
        assert ("s", "k", new) in recorded(conn)
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "s", "k")


def test_the_sweep_keeps_a_stale_key_taken_over_while_it_waits(partitioned_db: str) -> None:
    """The sweep finds a key stale, but an insert has taken it over and holds its lock: once that insert
    commits, the key names a live row and must stay (else the next insert of the key would pass)."""
    with connect(partitioned_db, autocommit=True) as conn, connect(partitioned_db) as writer:
        _, gone = _two_months_ago(conn)
        insert(conn, "s", "k", gone)
        cleanup_expired(conn)
        new = insert(writer, "s", "k")  # takes the stale key over; not committed yet
        outcome: dict[str, Any] = {}

        def sweep() -> None:
            with connect(partitioned_db, autocommit=True) as own:
                outcome["result"] = upkeep.release_stale_keys(own)

        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%%DELETE FROM%%'"
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the sweep never waited for the key's lock"
        writer.commit()
        sweeper.join(30)
        assert outcome["result"].released == 0
        assert recorded(conn) == {("s", "k", new)}
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "s", "k")


def test_the_sweep_skips_the_plain_layout(plain_db: str) -> None:
    with connect(plain_db, autocommit=True) as conn:
        assert upkeep.release_stale_keys(conn).skipped == "plain layout"


# The same writes on both layouts: the same rows stored, the same writes refused.
OPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "rekey", "move"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([3, 40, 200, 330]),  # days ahead: different partitions
    ),
    max_size=12,
)


def _apply(conn: psycopg.Connection, ops: list[tuple[str, str, str, int]]) -> list[str]:
    outcomes = []
    for op, session, key, days in ops:
        try:
            with conn.transaction():
                if op == "insert":
                    conn.execute(
                        "INSERT INTO conversation_memory (session_id, memory_type, context_key, expires_at) "
                        "VALUES (%s, 'short_term', %s, now() + %s * interval '1 day')",
                        (session, key, days),
                    )
                elif op == "delete":
                    conn.execute(
                        "DELETE FROM conversation_memory WHERE session_id = %s AND context_key = %s",
                        (session, key),
                    )
                elif op == "rekey":
                    conn.execute(
                        "UPDATE conversation_memory SET context_key = %s "
                        "WHERE session_id = %s AND context_key <> %s",
                        (key, session, key),
                    )
                else:
                    conn.execute(
                        "UPDATE conversation_memory SET expires_at = now() + %s * interval '1 day' "
                        "WHERE session_id = %s AND context_key = %s",
                        (days, session, key),
                    )
            outcomes.append("ok")
        except errors.UniqueViolation as exc:
            assert exc.diag.constraint_name == CONSTRAINT
            outcomes.append("duplicate")
    return outcomes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_both_layouts_accept_and_refuse_the_same_writes(plain_db: str, partitioned_db: str, ops: Any) -> None:
    results = []
    for dsn in (plain_db, partitioned_db):
        with connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE conversation_memory, conversation_memory_keys")
            outcomes = _apply(conn, ops)
            stored = sorted(
                conn.execute("SELECT session_id, context_key FROM conversation_memory").fetchall()
            )
            results.append((outcomes, stored))
            if dsn == partitioned_db:
                assert recorded(conn) == rows_keys(conn)
    assert results[0] == results[1]


def test_convert_records_the_keys_of_the_rows_it_copies_and_of_later_writes(plain_db: str) -> None:
    with connect(plain_db, autocommit=True) as conn:
        for n in range(40):
            insert(conn, f"s{n % 4}", f"k{n}")
        writer = psycopg.connect(plain_db, autocommit=True)
        calls = []

        def progress(table: str, done: int, total: int | None) -> None:
            # the application writes while the rows are copied: new keys, a delete, a changed key
            n = len(calls)
            calls.append(done)
            insert(writer, "during", f"n{n}")
            writer.execute("DELETE FROM conversation_memory WHERE context_key = %s", (f"k{n}",))
            writer.execute(
                "UPDATE conversation_memory SET context_key = %s WHERE context_key = %s",
                (f"moved{n}", f"k{20 + n}"),
            )

        try:
            result = convert_mod.convert(conn, ["conversation_memory"], batch_size=10, progress=progress)
        finally:
            writer.close()
        assert result.tables[0].status == "converted" and len(calls) > 2
        assert recorded(conn) == rows_keys(conn)
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "during", "n0")
        insert(conn, "s0", "k0")  # deleted during the copy: free


def test_abandoned_conversion_leaves_no_keys(plain_db: str) -> None:
    with connect(plain_db, autocommit=True) as conn:
        for n in range(10):
            insert(conn, "s", f"k{n}")
        spec = CONVERSATION_MEMORY
        convert_mod._build(conn, spec, [])  # a conversion under way
        conn.execute(
            "INSERT INTO conversation_memory_keys SELECT session_id, context_key, id FROM conversation_memory"
        )
        assert convert_mod.abandon_table(conn, spec).status == "abandoned"
        assert recorded(conn) == set()


def test_revision_0011_records_the_keys_of_a_partitioned_layout_and_goes_back(partitioned_db: str) -> None:
    migrations.downgrade(partitioned_db, "0010_partitioned_layout")
    with connect(partitioned_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('conversation_memory_keys')").fetchone()[0] is None
        insert(conn, "s", "k")  # revision 0010's trigger
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "s", "k", conn.execute("SELECT now() + interval '200 days'").fetchone()[0])
        insert(conn, "s", "j")
    migrations.upgrade(partitioned_db)
    with connect(partitioned_db, autocommit=True) as conn:
        assert recorded(conn) == rows_keys(conn) and len(rows_keys(conn)) == 2
        with pytest.raises(errors.UniqueViolation):
            insert(conn, "s", "k")
        conn.execute("DELETE FROM conversation_memory WHERE context_key = 'j'")
        assert recorded(conn) == rows_keys(conn)


def test_the_sweep_refuses_a_role_that_row_level_security_limits(partitioned_db: str, pg_server: str) -> None:
    """Rows the policies hide from the sweeping role are not missing: it must stop, not remove their keys."""
    role = f"app_{uuid.uuid4().hex[:10]}"
    with connect(pg_server, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE ROLE {} NOLOGIN").format(psycopg.sql.Identifier(role)))
    try:
        with connect(partitioned_db, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
                ).format(psycopg.sql.Identifier(role))
            )
            other = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, "
                "context_value) VALUES ('s', %s, 'short_term', 'k', '{}')",
                (other,),
            )
            before = recorded(conn)
            conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
            conn.execute("SELECT set_config('memcli.user_id', %s, false)", (str(uuid.uuid4()),))
            assert conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0] == 0  # hidden
            with pytest.raises(errors.InsufficientPrivilege):
                upkeep.release_stale_keys(conn)
            conn.execute("RESET ROLE")
            assert recorded(conn) == before
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(role)))
    finally:
        with connect(pg_server, autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))


def test_erasure_removes_the_subjects_stale_keys_and_proves_it(partitioned_db: str) -> None:
    """Keys whose memories left with a dropped partition still name the user's session: they go with the
    user, and another user's live key in the same session stays."""
    from memcli.people.erasure import forget
    from memcli.people.scope import user_subject

    erased, other = str(uuid.uuid4()), str(uuid.uuid4())

    def add(conn: psycopg.Connection, user: str, key: str, expires_at: datetime | None = None) -> str:
        row = conn.execute(
            "INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value, "
            "expires_at) VALUES ('shared', %s, 'short_term', %s, '{}', %s) RETURNING id",
            (user, key, expires_at),
        ).fetchone()
        return str(row[0])

    with connect(partitioned_db, autocommit=True) as conn:
        _, gone = _two_months_ago(conn)
        for n in range(5):
            add(conn, erased, f"old{n}", gone)
        add(conn, erased, "live")
        kept = add(conn, other, "theirs")
        cleanup_expired(conn)
        assert len(recorded(conn)) == 7  # 5 stale keys left by the drop
        result = forget(conn, user_subject(erased))
        assert result.proven and result.erased["conversation_memory_keys"] == 5
        assert result.remaining["conversation_memory_keys"] == 0
        assert recorded(conn) == {("shared", "theirs", kept)}
