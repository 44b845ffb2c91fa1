"""memcli users list | show: who memory knows and how much about each, without content."""

from __future__ import annotations

import json
import uuid

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from people_data import ALICE, BOB, conversation, people, semantic

from memcli.people.erasure import count_rows
from memcli.people.scope import subject_sessions, user_subject
from memcli.people.users import list_users, show_user

CAROL = uuid.UUID("ca201000-0000-4000-8000-000000000003")


def test_list_counts_each_user_and_says_nothing_of_content(cli, migrated_db: str) -> None:
    people(migrated_db)
    listed = cli("users", "list", "--json", dsn=migrated_db)
    assert listed.exit_code == 0, listed.stderr
    users = {u["user_id"]: u for u in json.loads(listed.stdout)["users"]}
    assert set(users) == {str(ALICE), str(BOB)}
    alice, bob = users[str(ALICE)], users[str(BOB)]
    # Alice: her long-term memory and the one her two short-term ones were merged into, one semantic
    # memory, two sessions, a profile
    assert (alice["memories"], alice["semantic"], alice["sessions"], alice["profile"]) == (2, 1, 2, True)
    assert (bob["memories"], bob["semantic"], bob["sessions"], bob["profile"]) == (1, 1, 1, True)
    for text in ("Alice prefers", "window", "vegetarian", "italian"):
        assert text not in listed.stdout
    # most memories first, and at 80 columns the id, the counts and the last activity are there
    by_memories = cli("users", "list", "--order", "memories", "--limit", "1", "--json", dsn=migrated_db)
    assert [u["user_id"] for u in json.loads(by_memories.stdout)["users"]] == [str(ALICE)]
    table = cli("users", "list", dsn=migrated_db, env={"COLUMNS": "80"})
    assert table.exit_code == 0
    header = table.stdout.splitlines()[0]
    assert all(word in header for word in ("user", "memories", "sessions", "last active"))
    assert str(ALICE) in table.stdout and all(len(line) <= 80 for line in table.stdout.splitlines())


def test_show_counts_the_same_rows_as_export_and_forget(cli, migrated_db: str) -> None:
    people(migrated_db)
    with psycopg.connect(migrated_db) as conn:
        subject = user_subject(ALICE)
        expected = count_rows(conn, subject, subject_sessions(conn, subject))
    expected.pop("memcli_audit_log")
    shown = cli("users", "show", str(ALICE), "--json", dsn=migrated_db)
    assert shown.exit_code == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["tables"] == expected and info["tables"]["conversation_memory"] == 3  # her 2 + 1 anonymous
    assert info["tiers"] == {"long_term": 2}
    assert sorted(info["session_ids"]) == ["alice-1", "alice-2"]  # newest activity first
    text = cli("users", "show", str(ALICE), dsn=migrated_db, env={"COLUMNS": "80"})
    assert text.exit_code == 0 and "conversation_memory 3" in text.stdout and "alice-1" in text.stdout


def test_show_unknown_is_exit_1_malformed_exit_2_and_erased_says_when(cli, migrated_db: str) -> None:
    people(migrated_db)
    unknown = cli("users", "show", str(CAROL), dsn=migrated_db)
    assert unknown.exit_code == 1 and "no memories" in unknown.stderr
    assert cli("users", "show", "not-a-uuid", dsn=migrated_db).exit_code == 2
    assert cli("users", "forget", str(BOB), "--yes", dsn=migrated_db).exit_code == 0
    erased = cli("users", "show", str(BOB), dsn=migrated_db)
    assert erased.exit_code == 1 and "erased" in erased.stderr and "users receipts" in erased.stderr
    assert str(BOB) not in cli("users", "list", dsn=migrated_db).stdout
    receipts = cli("users", "receipts", "--user", str(BOB), "--json", dsn=migrated_db)
    [receipt] = json.loads(receipts.stdout)["receipts"]
    table = cli("users", "receipts", dsn=migrated_db, env={"COLUMNS": "80"}).stdout
    assert receipt["id"] in table and "zero rows" in table and "started" in table.splitlines()[0]
    assert all(len(line) <= 80 for line in table.splitlines())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ALICE, BOB, CAROL, None]),
            st.sampled_from(["s1", "s2", "s3"]),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_list_counts_match_the_rows_property(migrated_db: str, rows) -> None:
    """Whatever the mix, each user is listed with exactly their own rows, and nobody without rows is."""
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for table in ("conversation_memory", "semantic_memory", "user_context_profiles"):
            conn.execute(f"DELETE FROM {table}")
        for i, (user, session, is_semantic) in enumerate(rows):
            if is_semantic:
                semantic(conn, session, f"text {i}", user=user)
            else:
                conversation(conn, session, f"k{i}", user=user)
    expected: dict[uuid.UUID, tuple[int, int, int]] = {}
    for user in {u for u, _, _ in rows if u is not None}:
        mine = [(s, sem) for u, s, sem in rows if u == user]
        expected[user] = (
            sum(not sem for _, sem in mine),
            sum(sem for _, sem in mine),
            len({s for s, _ in mine}),
        )
    with psycopg.connect(migrated_db) as conn:
        found = {u.user_id: (u.memories, u.semantic, u.sessions) for u in list_users(conn, limit=None)}
    assert found == expected


def test_a_role_under_row_level_security_lists_only_its_own_user(migrated_db: str) -> None:
    people(migrated_db)
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(
            "GRANT SELECT ON conversation_memory, semantic_memory, user_context_profiles, context_relevance, "
            f"memory_consolidation_log, memcli_session_closures, memcli_erasure_receipts TO {role}"
        )
    try:
        params = psycopg.conninfo.conninfo_to_dict(migrated_db)
        params["user"] = role
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT set_config('memcli.user_id', %s, false)", (str(BOB),))
            assert [u.user_id for u in list_users(conn)] == [BOB]
            assert show_user(conn, user_subject(BOB)).memories == 1
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
