"""memcli users export | forget | receipts and memcli sessions forget: export, erasure, proof, receipts."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from conftest import PARTITIONED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from people_data import ALICE, BOB, conversation, count, people, relevance, semantic

from memcli import access
from memcli.people.erasure import forget
from memcli.people.scope import DATA_TABLES, session_subject, user_subject

# The tables that hold a person's rows by user, and those that hold them by session.
TABLES_WITH_USER = tuple(t.name for t in DATA_TABLES if t.link != "session")
TABLES_WITH_SESSION = tuple(t.name for t in DATA_TABLES if t.link != "user")


def alice_rows(dsn: str) -> int:
    return sum(
        count(dsn, f"SELECT count(*) FROM {t} WHERE user_id = %s", ALICE) for t in TABLES_WITH_USER
    ) + sum(
        count(dsn, f"SELECT count(*) FROM {t} WHERE session_id IN ('alice-1', 'alice-2')")
        for t in TABLES_WITH_SESSION
    )


def bob_and_anon(dsn: str) -> dict[str, int]:
    return {
        "bob": count(dsn, "SELECT count(*) FROM conversation_memory WHERE user_id = %s", BOB)
        + count(dsn, "SELECT count(*) FROM semantic_memory WHERE user_id = %s", BOB)
        + count(dsn, "SELECT count(*) FROM user_context_profiles WHERE user_id = %s", BOB)
        + count(dsn, "SELECT count(*) FROM context_relevance WHERE session_id = 'bob-1'"),
        "anon": count(dsn, "SELECT count(*) FROM conversation_memory WHERE session_id = 'anon-1'"),
    }


def test_export_writes_every_row_about_the_user_as_json_lines(cli, migrated_db: str, tmp_path) -> None:
    ids = people(migrated_db)
    out = tmp_path / "alice.jsonl"
    result = cli("users", "export", str(ALICE), "--output", str(out), dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["export"]["id"] == str(ALICE) and "summary" in lines[-1]
    rows = lines[1:-1]
    by_table: dict[str, list] = {}
    for line in rows:
        by_table.setdefault(line["table"], []).append(line["row"])
    # hers, and the anonymous memory of her session
    assert {r["id"] for r in by_table["conversation_memory"]} == {
        str(ids["merged"]),
        str(ids["a3"]),
        str(ids["merged_anon"]),
    }
    assert [r["content_text"] for r in by_table["semantic_memory"]] == ["Alice prefers Italian food"]
    assert "embedding_vector" not in by_table["semantic_memory"][0]
    assert len(by_table["user_context_profiles"]) == 1 and len(by_table["context_relevance"]) == 2
    assert {r["new_memory_id"] for r in by_table["memory_consolidation_log"]} == {
        str(ids["merged"]),
        str(ids["merged_anon"]),
    }
    assert lines[-1]["summary"]["rows"] == len(rows)
    assert "bob" not in out.read_text().lower() and "vegetarian" not in out.read_text()
    with psycopg.connect(migrated_db) as conn:
        [(_op, user, counts)] = conn.execute(
            "SELECT operation, user_id, counts FROM memcli_audit_log WHERE operation = 'export'"
        ).fetchall()
    assert user == ALICE and counts["conversation_memory"] == 3
    # to standard output, content with quotes, backslashes and newlines survives byte for byte
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        semantic(conn, "alice-2", 'said "hi"\\ then\nleft,\ttab', user=ALICE)
    piped = cli("users", "export", str(ALICE), dsn=migrated_db)
    texts = [json.loads(line)["row"].get("content_text") for line in piped.stdout.splitlines()[1:-1]]
    assert 'said "hi"\\ then\nleft,\ttab' in texts


def test_forget_user_erases_proves_and_leaves_a_receipt(cli, migrated_db: str) -> None:
    people(migrated_db)
    with psycopg.connect(migrated_db) as conn:  # access logged during an index build, hers and his
        logged = dict(conn.execute("SELECT user_id, id FROM semantic_memory WHERE user_id IS NOT NULL"))
        assert {ALICE, BOB} <= set(logged)
        access.record(conn, [logged[ALICE], logged[BOB], logged[ALICE]])
    others = bob_and_anon(migrated_db)
    cli("users", "export", str(ALICE), dsn=migrated_db)  # an audit row naming her

    dry = cli("users", "forget", str(ALICE), "--dry-run", "--json", dsn=migrated_db)
    assert dry.exit_code == 0, dry.stderr
    planned = json.loads(dry.stdout)
    # hers, and the anonymous memory in her session
    assert planned["dry_run"] and planned["erased"]["conversation_memory"] == 3
    assert planned["erased"]["memcli_audit_log"] == 1 and alice_rows(migrated_db) > 0

    refused = cli("users", "forget", str(ALICE), dsn=migrated_db)
    assert refused.exit_code == 2 and "--yes" in refused.stderr and alice_rows(migrated_db) > 0

    done = cli("users", "forget", str(ALICE), "--yes", "--json", dsn=migrated_db)
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["proven"] and set(result["remaining"].values()) == {0}
    # the partitioned layout's key table too: keys left by dropped partitions in the user's sessions
    keys = {"conversation_memory_keys"} if PARTITIONED else set()
    assert set(result["remaining"]) == {t.name for t in DATA_TABLES} | {"memcli_audit_log"} | keys
    assert result["erased"]["conversation_memory"] == 3 and result["erased"]["context_relevance"] == 2
    assert result["audit_rows_pseudonymised"] == 1
    assert alice_rows(migrated_db) == 0
    assert bob_and_anon(migrated_db) == others  # nobody else's rows went
    with psycopg.connect(migrated_db) as conn:  # her memories' access records went with them, his stay
        assert conn.execute("SELECT array_agg(memory_id) FROM semantic_memory_access").fetchone() == (
            [logged[BOB]],
        )

    with psycopg.connect(migrated_db) as conn:
        receipt = conn.execute("SELECT * FROM memcli_erasure_receipts").fetchall()
        text = json.dumps(receipt, default=str)
        assert str(ALICE) not in text and "alice" not in text.lower()
        assert conn.execute("SELECT count(*) FROM memcli_erasure_scope").fetchone()[0] == 0  # type: ignore[index]
        audit = json.dumps(conn.execute("SELECT * FROM memcli_audit_log").fetchall(), default=str)
        assert str(ALICE) not in audit
    receipts = cli("users", "receipts", "--user", str(ALICE), "--json", dsn=migrated_db)
    [found] = json.loads(receipts.stdout)["receipts"]
    assert found["status"] == "completed" and "salt" not in found
    assert json.loads(cli("users", "receipts", "--user", str(BOB), "--json", dsn=migrated_db).stdout) == {
        "receipts": []
    }

    again = cli("users", "forget", str(ALICE), "--yes", "--json", dsn=migrated_db)
    assert again.exit_code == 0 and json.loads(again.stdout)["rows"] == 0


def test_unknown_user_is_exit_0_with_zero_counts_and_malformed_is_exit_2(cli, migrated_db: str) -> None:
    unknown = cli("users", "forget", str(uuid.uuid4()), dsn=migrated_db)  # nothing to ask about
    assert unknown.exit_code == 0, unknown.stderr
    assert "nothing to erase" in unknown.stdout
    for args in (
        ("users", "forget", "alice"),
        ("users", "export", "12345"),
        ("sessions", "list", "--user", "x"),
    ):
        bad = cli(*args, dsn=migrated_db)
        assert bad.exit_code == 2 and "not a UUID" in bad.stderr and "Traceback" not in bad.stderr


def test_an_interrupted_erasure_resumes_and_ends_with_the_proof(migrated_db: str) -> None:
    people(migrated_db)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for i in range(30):
            conversation(conn, "alice-3", f"k{i}", user=ALICE)
    calls = {"n": 0}

    def stop_after_three(done: int, total: int | None) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    with psycopg.connect(migrated_db) as conn, pytest.raises(KeyboardInterrupt):
        forget(conn, user_subject(ALICE), batch_size=4, progress=stop_after_three)
    left = alice_rows(migrated_db)
    assert left > 0
    with psycopg.connect(migrated_db) as conn:
        status, erased = conn.execute("SELECT status, erased FROM memcli_erasure_receipts").fetchone()  # type: ignore[misc]
        assert status == "running" and sum(erased.values()) > 0
        assert conn.execute("SELECT count(*) FROM memcli_erasure_scope").fetchone()[0] == 4  # type: ignore[index]
        log = conn.execute(
            "SELECT status, error FROM system_maintenance_log WHERE maintenance_type = 'forget_user'"
        ).fetchall()
        assert log == [("failed", "KeyboardInterrupt")]
    with psycopg.connect(migrated_db) as conn:
        result = forget(conn, user_subject(ALICE), batch_size=4)
    assert result.resumed and result.proven and alice_rows(migrated_db) == 0
    assert result.erased["conversation_memory"] == 33  # both runs counted, nothing twice
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*), min(status) FROM memcli_erasure_receipts").fetchone() == (
            1,
            "completed",
        )


def test_the_proof_fails_loudly_when_rows_remain(migrated_db: str) -> None:
    """A row of hers written while the erasure runs (here: by a trigger, after her relevance rows were
    already erased) fails the proof with exit 1 and keeps the receipt open; the next run completes it."""
    from memcli.people import erasure

    people(migrated_db)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION late() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO context_relevance (session_id, context_type, context_key) "
            "VALUES ('alice-2', 'conversation', 'late-' || gen_random_uuid()); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER late AFTER DELETE ON semantic_memory FOR EACH STATEMENT EXECUTE FUNCTION late()"
        )
    with (
        psycopg.connect(migrated_db) as conn,
        pytest.raises(erasure.ErasureIncomplete, match="context_relevance") as info,
    ):
        erasure.forget(conn, user_subject(ALICE))
    assert info.value.exit_code == 1
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        assert conn.execute("SELECT status FROM memcli_erasure_receipts").fetchone() == ("running",)
        conn.execute("DROP TRIGGER late ON semantic_memory")
    with psycopg.connect(migrated_db) as conn:
        assert erasure.forget(conn, user_subject(ALICE)).proven
    assert alice_rows(migrated_db) == 0


def test_forget_session_erases_the_whole_session_only(cli, migrated_db: str) -> None:
    people(migrated_db)
    before_alice2 = count(
        migrated_db, "SELECT count(*) FROM conversation_memory WHERE session_id = 'alice-2'"
    )
    assert before_alice2 == 1
    result = cli("sessions", "forget", "alice-1", "--yes", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["proven"] and "user_context_profiles" not in data["erased"]
    for table in ("conversation_memory", "context_relevance", "memory_consolidation_log"):
        assert count(migrated_db, f"SELECT count(*) FROM {table} WHERE session_id = 'alice-1'") == 0
    assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE session_id = 'alice-2'") == 1
    assert count(migrated_db, "SELECT count(*) FROM user_context_profiles WHERE user_id = %s", ALICE) == 1
    unknown = cli("sessions", "forget", "no-such-session", "--json", dsn=migrated_db)
    assert unknown.exit_code == 0 and json.loads(unknown.stdout)["rows"] == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([ALICE, BOB, None]),
            st.sampled_from(["s1", "s2", "s3", str(ALICE)]),
            st.sampled_from(["conversation", "semantic", "relevance"]),
        ),
        max_size=25,
    )
)
def test_forget_takes_all_of_hers_and_nothing_else_property(migrated_db: str, rows) -> None:
    """Whatever mix of rows: after forgetting Alice no row of hers (or of her sessions without a user) is
    left, and every row of Bob's survives unless it is only in a session she had memories in."""
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for table in (
            "conversation_memory",
            "semantic_memory",
            "context_relevance",
            "memcli_erasure_receipts",
        ):
            conn.execute(f"DELETE FROM {table}")
        for i, (user, session, kind) in enumerate(rows):
            if kind == "conversation":
                conversation(conn, session, f"k{i}", user=user)
            elif kind == "semantic":
                semantic(conn, session, f"text {i}", user=user)
            else:
                relevance(conn, session, f"k{i}")
        hers = {s for u, s, k in rows if u == ALICE and k != "relevance"} | {str(ALICE)}
        bobs_kept = sum(1 for u, s, k in rows if u == BOB and k != "relevance")
    with psycopg.connect(migrated_db) as conn:
        result = forget(conn, user_subject(ALICE), batch_size=3)
    assert result.proven
    for table in ("conversation_memory", "semantic_memory"):
        assert count(migrated_db, f"SELECT count(*) FROM {table} WHERE user_id = %s", ALICE) == 0
        assert (
            count(
                migrated_db,
                f"SELECT count(*) FROM {table} WHERE user_id IS NULL AND session_id = ANY(%s)",
                list(hers),
            )
            == 0
        )
    assert (
        count(migrated_db, "SELECT count(*) FROM context_relevance WHERE session_id = ANY(%s)", list(hers))
        == 0
    )
    kept = count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE user_id = %s", BOB) + count(
        migrated_db, "SELECT count(*) FROM semantic_memory WHERE user_id = %s", BOB
    )
    assert kept == bobs_kept


def test_forget_under_row_level_security(migrated_db: str) -> None:
    """A non-owner role that sets memcli.user_id erases and proves its own user's rows (and sees the
    limitation reported); another user's rows stay."""
    people(migrated_db)
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON conversation_memory, semantic_memory, "
            "context_relevance, memory_consolidation_log, user_context_profiles, memcli_session_closures, "
            "memcli_audit_log, "
            f"memcli_erasure_receipts, memcli_erasure_scope, system_maintenance_log TO {role}"
        )
        conn.execute(f"GRANT SELECT ON memory_settings, alembic_version TO {role}")
        conn.execute(f"GRANT USAGE ON SEQUENCE system_maintenance_log_id_seq TO {role}")
        conn.execute("ALTER TABLE system_maintenance_log DISABLE ROW LEVEL SECURITY")
    try:
        params = psycopg.conninfo.conninfo_to_dict(migrated_db)
        params["user"] = role
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT set_config('memcli.user_id', %s, false)", (str(ALICE),))
            conn.commit()
            result = forget(conn, user_subject(ALICE))
        assert result.proven and result.visibility == "rls" and result.warnings
        assert result.erased["conversation_memory"] == 2
        # her rows are gone; the anonymous merged memory in her session is not visible to the role and stays
        for table in TABLES_WITH_USER:
            assert count(migrated_db, f"SELECT count(*) FROM {table} WHERE user_id = %s", ALICE) == 0
        assert (
            count(
                migrated_db,
                "SELECT count(*) FROM conversation_memory WHERE user_id IS NULL AND session_id = 'alice-1'",
            )
            == 1
        )
        assert count(migrated_db, "SELECT count(*) FROM conversation_memory WHERE user_id = %s", BOB) == 1
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_session_subject_rejects_empty() -> None:
    from memcli.errors import ConfigError

    with pytest.raises(ConfigError):
        session_subject(" ")
