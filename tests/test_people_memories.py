"""memcli memories list | show | update | delete, remember --key, and the audit rows they leave."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from people_data import ALICE, BOB, count, people

from memcli.people import audit
from memcli.people.memories import MemoryFilter, list_memories


def audit_rows(dsn: str, operation: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT target, user_id, counts, db_role FROM memcli_audit_log WHERE operation = %s "
            "ORDER BY occurred_at",
            (operation,),
        ).fetchall()


def test_list_filters_and_json(cli, migrated_db: str) -> None:
    ids = people(migrated_db)
    result = cli("memories", "list", "--user", str(ALICE), "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    listed = {m["id"] for m in json.loads(result.stdout)["memories"]}
    assert listed == {str(ids["merged"]), str(ids["a3"]), str(ids["a_sem"])}

    result = cli("memories", "list", "--expired", "--json", dsn=migrated_db)
    assert [m["id"] for m in json.loads(result.stdout)["memories"]] == [str(ids["b1"])]

    result = cli("memories", "list", "--type", "user_preference", "--jsonl", dsn=migrated_db)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(m["id"], m["kind"]) for m in lines] == [(str(ids["b_sem"]), "semantic")]

    table = cli("memories", "list", "--session", "alice-2", dsn=migrated_db)
    assert table.exit_code == 0 and "allergy" in table.stdout and "bob" not in table.stdout


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from([None, "conversation", "semantic"]),
    session=st.sampled_from([None, "alice-1", "alice-2", "bob-1", "nobody"]),
    user=st.sampled_from([None, ALICE, BOB]),
    expired=st.sampled_from([None, True, False]),
    older_days=st.sampled_from([None, 0.5, 5.0]),
)
def test_list_matches_every_filter_property(
    migrated_db: str, kind, session, user, expired, older_days
) -> None:
    # Built once per database: hypothesis reuses the function-scoped database across examples.
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0] == 0:  # type: ignore[index]
            people(migrated_db)
        f = MemoryFilter(
            kind=None if expired and kind == "semantic" else kind,
            session=session,
            user=user,
            expired=expired,
            older_than=timedelta(days=older_days) if older_days else None,
        )
        everything = list(list_memories(conn, MemoryFilter(), limit=None))
        expires = dict(conn.execute("SELECT id, expires_at < now() FROM conversation_memory").fetchall())
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        listed = list(list_memories(conn, f, limit=None))

    def matches(m) -> bool:
        if f.kind and m.kind != f.kind:
            return False
        # semantic memories never expire by date: never --expired, always --unexpired
        if f.expired is not None and (expires.get(m.id, False) != f.expired):
            return False
        if f.older_than and m.created_at >= now - f.older_than:
            return False
        return (f.session is None or m.session_id == f.session) and (f.user is None or m.user_id == f.user)

    assert {m.id for m in listed} == {m.id for m in everything if matches(m)}
    assert [m.created_at for m in listed] == sorted((m.created_at for m in listed), reverse=True)


def test_show_gives_lineage_relevance_and_access(cli, migrated_db: str) -> None:
    ids = people(migrated_db)
    result = cli("memories", "show", str(ids["merged"]), "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    detail = json.loads(result.stdout)
    assert detail["kind"] == "conversation" and detail["row"]["user_id"] == str(ALICE)
    assert [(row["relation"], row["consolidation_type"]) for row in detail["lineage"]] == [
        ("created by", "merge")
    ]
    assert str(ids["a1"]) in detail["lineage"][0]["old_memory_ids"]
    assert detail["access"]["access_count"] == 0

    a3 = json.loads(cli("memories", "show", str(ids["a3"]), "--json", dsn=migrated_db).stdout)
    assert [r["context_key"] for r in a3["relevance"]] == ["allergy"]
    semantic = cli("memories", "show", str(ids["a_sem"]), dsn=migrated_db)
    assert semantic.exit_code == 0 and "Alice prefers Italian food" in semantic.stdout


def test_show_unknown_is_exit_1_and_malformed_is_exit_2(cli, migrated_db: str) -> None:
    unknown = cli("memories", "show", str(uuid.uuid4()), dsn=migrated_db)
    assert unknown.exit_code == 1 and "no memory" in unknown.stderr
    malformed = cli("memories", "show", "not-a-uuid", dsn=migrated_db)
    assert malformed.exit_code == 2 and "not a UUID" in malformed.stderr
    assert "Traceback" not in malformed.stderr + unknown.stderr


def test_update_importance_and_tier_is_audited(cli, migrated_db: str) -> None:
    ids = people(migrated_db)
    result = cli(
        "memories",
        "update",
        str(ids["a3"]),
        "--importance",
        "0.9",
        "--tier",
        "archived",
        "--json",
        dsn=migrated_db,
    )
    assert result.exit_code == 0, result.stderr
    after = json.loads(result.stdout)["after"]
    assert after["tier"] == "archived" and after["importance"] == pytest.approx(0.9)
    with psycopg.connect(migrated_db) as conn:
        expires, access = conn.execute(
            "SELECT expires_at - now(), access_count FROM conversation_memory WHERE id = %s", (ids["a3"],)
        ).fetchone()  # type: ignore[misc]
    assert timedelta(days=364) < expires <= timedelta(days=365) and access == 0  # not counted as a read
    assert audit_rows(migrated_db, "update") == [
        ("memory", ALICE, {"conversation_memory": 1}, audit_rows(migrated_db, "update")[0][3])
    ]
    refused = cli("memories", "update", str(ids["a_sem"]), "--tier", "long_term", dsn=migrated_db)
    assert refused.exit_code == 2 and "no tier" in refused.stderr
    assert cli("memories", "update", str(uuid.uuid4()), "--importance", "0.1", dsn=migrated_db).exit_code == 1


def test_delete_by_id_and_by_filter(cli, migrated_db: str) -> None:
    ids = people(migrated_db)
    refused = cli("memories", "delete", str(ids["a3"]), dsn=migrated_db)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE id = %s", ids["a3"]) == 1

    dry = cli("memories", "delete", "--user", str(ALICE), "--dry-run", "--json", dsn=migrated_db)
    assert json.loads(dry.stdout)["deleted"] == {"conversation_memory": 2, "semantic_memory": 1}
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE user_id = %s", ALICE) == 2

    gone = cli("memories", "delete", str(ids["a3"]), str(uuid.uuid4()), "--yes", "--json", dsn=migrated_db)
    assert gone.exit_code == 0 and json.loads(gone.stdout)["rows"] == 1
    by_filter = cli("memories", "delete", "--session", "bob-1", "--yes", "--json", dsn=migrated_db)
    assert by_filter.exit_code == 0, by_filter.stderr
    assert json.loads(by_filter.stdout)["deleted"] == {"conversation_memory": 1, "semantic_memory": 1}
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE session_id = 'bob-1'") == 0
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE user_id = %s", ALICE) == 1
    users = sorted((str(r[1]), json.dumps(r[2])) for r in audit_rows(migrated_db, "delete"))
    assert users == sorted(
        [
            (str(ALICE), '{"conversation_memory": 1}'),
            (str(BOB), '{"conversation_memory": 1}'),
            (str(BOB), '{"semantic_memory": 1}'),
        ]
    )
    nothing = cli("memories", "delete", dsn=migrated_db)
    assert nothing.exit_code == 2


def test_remember_a_conversation_memory(cli, migrated_db: str) -> None:
    stored = cli(
        "remember",
        "--session",
        "s1",
        "--user",
        str(ALICE),
        "--key",
        "food",
        "--value",
        '{"cuisine": "italian"}',
        "--tier",
        "long_term",
        "--json",
        dsn=migrated_db,
    )
    assert stored.exit_code == 0, stored.stderr
    first = json.loads(stored.stdout)
    assert first["created"] is True and first["tier"] == "long_term"
    again = json.loads(
        cli(
            "remember",
            "--session",
            "s1",
            "--user",
            str(ALICE),
            "--key",
            "food",
            "--value",
            '"thai"',
            "--json",
            dsn=migrated_db,
        ).stdout
    )
    assert again["id"] == first["id"] and again["created"] is False
    with psycopg.connect(migrated_db) as conn:
        value, tier = conn.execute(
            "SELECT context_value, memory_type FROM conversation_memory WHERE id = %s", (first["id"],)
        ).fetchone()  # type: ignore[misc]
    assert value == "thai" and tier == "short_term"
    # never into another user's row
    other = cli(
        "remember", "--session", "s1", "--user", str(BOB), "--key", "food", "--value", "1", dsn=migrated_db
    )
    assert other.exit_code == 2 and "another user" in other.stderr
    assert [r[1] for r in audit_rows(migrated_db, "remember")] == [ALICE, ALICE]
    bad = cli("remember", "--session", "s1", "--key", "k", "--value", "{oops", dsn=migrated_db)
    assert bad.exit_code == 2 and "not valid JSON" in bad.stderr


def test_concurrent_remembers_of_one_key_leave_one_memory(migrated_db: str) -> None:
    """Writers racing on one (session, key) end with one row, created once and replaced by the others, on
    both layouts (the partitioned one has no unique index on that key)."""
    from concurrent.futures import ThreadPoolExecutor

    from memcli.people.memories import store_conversation

    def remember(n: int) -> bool:
        with psycopg.connect(migrated_db) as conn:
            stored = store_conversation(conn, "race", "topic", {"n": n}, user=ALICE)
            conn.commit()
            return stored.created

    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(remember, range(12)))
    assert created.count(True) == 1
    with psycopg.connect(migrated_db) as conn:
        [(rows, owner)] = conn.execute(
            "SELECT count(*), max(user_id::text) FROM conversation_memory "
            "WHERE session_id = 'race' AND context_key = 'topic'"
        ).fetchall()
    assert rows == 1 and owner == str(ALICE)


def test_remember_replaces_a_row_the_application_inserted(migrated_db: str) -> None:
    from memcli.people.memories import store_conversation

    with psycopg.connect(migrated_db) as conn:
        [(app_id,)] = conn.execute(
            "INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value) "
            "VALUES ('app', %s, 'long_term', 'k', '1') RETURNING id",
            (ALICE,),
        ).fetchall()
        conn.commit()
        stored = store_conversation(conn, "app", "k", 2, user=ALICE, tier="short_term")
        conn.commit()
        [(value, tier)] = conn.execute(
            "SELECT context_value, memory_type FROM conversation_memory WHERE session_id = 'app'"
        ).fetchall()
    assert stored.id == app_id and not stored.created and value == 2 and tier == "short_term"


def test_audit_record_refuses_unknown_operations_and_needs_the_table(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        with pytest.raises(ValueError):
            audit.record(conn, "peek", user_id=ALICE)
        entry = audit.record(conn, "import", user_id=ALICE, counts={"conversation_memory": 3})
        conn.commit()
        [row] = audit.entries(conn, user_id=ALICE)
    assert row.id == entry and row.counts == {"conversation_memory": 3} and row.operation == "import"


def test_audit_rows_that_cannot_be_written_stop_the_operation(migrated_db: str, empty_db: str) -> None:
    """The audit rows go out pipelined, in one round trip; a missing audit table (exit 4) or a role that may
    not append to it (exit 2) still raises memcli's error there, and nothing is written."""
    from memcli.errors import ConfigError, NotReadyError
    from memcli.schema.names import AUDIT_LOG

    user = uuid.uuid4()
    with psycopg.connect(empty_db) as conn, pytest.raises(NotReadyError):
        audit.record(conn, "export", user_id=user, counts={"semantic_memory": 1})
    role = f"memcli_no_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role}")
        admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    try:
        with psycopg.connect(migrated_db) as conn:
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(ConfigError, match="may not write the audit trail"):
                audit.record(conn, "export", user_id=user, counts={"semantic_memory": 1})
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute(f"SELECT count(*) FROM {AUDIT_LOG} WHERE user_id = %s", (user,)).fetchone()
    assert row == (0,)
