"""memcli sessions list | show | close, states from activity and timeouts, and the app's session_states."""

from __future__ import annotations

import json

import psycopg
from people_data import ALICE, conversation, count

from memcli.people.sessions import close_timed_out, list_sessions


def sessions_by_age(dsn: str) -> None:
    """fresh: active now; quiet: 2 h without activity (idle); old: 3 days (closed by timeout)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conversation(conn, "fresh", "k", user=ALICE)
        for key in ("a", "b"):
            conversation(conn, "quiet", key, user=ALICE, age_days=2 / 24)
            conversation(conn, "old", key, user=ALICE, age_days=3)


def states(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {s.session_id: s.state for s in list_sessions(conn, limit=None)}


def test_states_follow_activity_and_the_timeouts_in_settings(cli, migrated_db: str) -> None:
    sessions_by_age(migrated_db)
    assert states(migrated_db) == {"fresh": "active", "quiet": "idle", "old": "closed"}
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("UPDATE memory_settings SET value = '180' WHERE key = 'sessions.idle_minutes'")
        conn.execute("UPDATE memory_settings SET value = '100' WHERE key = 'sessions.close_hours'")
    assert states(migrated_db) == {"fresh": "active", "quiet": "active", "old": "idle"}

    listed = cli("sessions", "list", "--state", "idle", "--json", dsn=migrated_db)
    assert listed.exit_code == 0, listed.stderr
    [old] = json.loads(listed.stdout)["sessions"]
    assert old["session_id"] == "old" and old["memories"] == 2 and old["users"] == [str(ALICE)]
    table = cli("sessions", "list", dsn=migrated_db)
    assert table.exit_code == 0 and "quiet" in table.stdout


def test_close_consolidates_at_once_and_new_activity_reopens(cli, migrated_db: str) -> None:
    sessions_by_age(migrated_db)
    closed = cli("sessions", "close", "fresh", "--json", dsn=migrated_db)
    assert closed.exit_code == 0, closed.stderr
    result = json.loads(closed.stdout)
    assert result["was"] == "active" and result["merged"] == 1 and result["new_memory_id"]
    assert (
        count(
            migrated_db,
            "SELECT count(*) FROM conversation_memory WHERE memory_type = 'short_term' "
            "AND session_id = 'fresh'",
        )
        == 0
    )
    shown = json.loads(cli("sessions", "show", "fresh", "--json", dsn=migrated_db).stdout)
    assert shown["state"] == "closed" and shown["close_reason"] == "manual"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conversation(conn, "fresh", "later", user=ALICE)
    assert states(migrated_db)["fresh"] == "active"
    assert cli("sessions", "show", "nope", dsn=migrated_db).exit_code == 1
    assert cli("sessions", "close", "nope", dsn=migrated_db).exit_code == 1


def test_maintain_daily_closes_sessions_past_their_timeout(cli, migrated_db: str) -> None:
    sessions_by_age(migrated_db)
    with psycopg.connect(migrated_db) as conn:
        dry = close_timed_out(conn, dry_run=True)
    assert dry.sessions == 1 and dry.merged == 2
    assert count(migrated_db, "SELECT count(*) FROM memcli_session_closures") == 0
    daily = cli("maintain", "daily", "--json", dsn=migrated_db)
    assert daily.exit_code == 0, daily.stderr
    steps = {s["step"]: s for s in json.loads(daily.stdout)["steps"]}
    assert steps["close_sessions"]["status"] == "succeeded" and steps["close_sessions"]["rows"] == 1
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT session_id, reason FROM memcli_session_closures").fetchall() == [
            ("old", "timeout")
        ]
        assert conn.execute(
            "SELECT count(*) FROM conversation_memory WHERE session_id = 'old' AND memory_type = 'short_term'"
        ).fetchone() == (0,)
        conn.commit()
        again = close_timed_out(conn)
    assert again.sessions == 0  # closed stays closed


def test_the_applications_session_states_win(migrated_app_db: str) -> None:
    with psycopg.connect(migrated_app_db, autocommit=True) as conn:
        conversation(conn, "app-1", "k", user=ALICE, age_days=3)  # would be closed by timeout
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'session_states'::regclass AND attnum > 0"
            )
        }
        assert "session_id" in columns
        conn.execute("DELETE FROM session_states")
        if "state" in columns:
            conn.execute(
                "INSERT INTO session_states (session_id, state, updated_at) "
                """VALUES ('app-1', '{"status": "active"}', now())"""
            )
        else:
            conn.execute("INSERT INTO session_states (session_id, updated_at) VALUES ('app-1', now())")
    with psycopg.connect(migrated_app_db) as conn:
        [info] = list_sessions(conn, limit=None)
    assert info.state == "active"
