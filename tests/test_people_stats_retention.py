"""memcli stats (exact and estimated) and the retention of semantic memories, logs and relevance rows."""

from __future__ import annotations

import json

import psycopg
import pytest
from people_data import ALICE, BOB, conversation, count, people, semantic

from memcli.errors import ConfigError
from memcli.people import retention, stats


def test_stats_counts_charts_and_json(cli, migrated_db: str) -> None:
    people(migrated_db)
    result = cli("stats", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    with psycopg.connect(migrated_db) as conn:
        total = conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0]  # type: ignore[index]
    assert doc["conversation_total"] == total and doc["estimated"] == []
    assert {p["name"]: p["count"] for p in doc["tiers"]} == {"long_term": 3, "short_term": 2}
    assert {p["name"]: p["count"] for p in doc["content_types"]} == {"conversation": 1, "user_preference": 1}
    assert doc["top_users"][0] == {"user_id": str(ALICE), "memories": 2}
    assert doc["consolidations"] == 2 and doc["memories_merged"] == 3 and doc["consolidation_ratio"] == 1.5
    assert sum(b["memories"] for b in doc["access"]) == total
    # two expire within 30 days; the merged memory (long_term) in 90, Bob's already expired
    assert sum(d["count"] for d in doc["expiring"]) == 2
    assert sum(d["count"] for d in doc["growth"]) == total + 2  # both kinds, all within 30 days
    shown = cli("stats", dsn=migrated_db)
    assert shown.exit_code == 0 and "█" in shown.stdout and "Consolidation: 2 merges" in shown.stdout


def test_stats_estimates_on_a_large_table_and_says_so(migrated_db: str, monkeypatch) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, created_at) "
            "SELECT 's' || (i %% 50), CASE WHEN i %% 2 = 0 THEN %s::uuid ELSE %s::uuid END, "
            "CASE WHEN i %% 4 = 0 THEN 'long_term' ELSE 'short_term' END, 'k' || i, "
            "now() - (i %% 20) * interval '1 day' "
            "FROM generate_series(1, 20000) AS i",
            (str(ALICE), str(BOB)),
        )
        conn.execute("ANALYZE conversation_memory")
    monkeypatch.setattr(stats, "SAMPLE_ABOVE", 1000)
    monkeypatch.setattr(stats, "SAMPLE_PERCENT", 50.0)
    with psycopg.connect(migrated_db) as conn:
        estimated = stats.collect(conn)
        exact = stats.collect(conn, exact=True)
    assert "tiers" in estimated.estimated and "top_users" in estimated.estimated
    assert exact.estimated == [] and exact.conversation_total == 20000
    assert estimated.conversation_total == pytest.approx(20000, rel=0.05)
    tiers = {p.name: p.count for p in estimated.tiers}
    assert tiers["short_term"] == pytest.approx(15000, rel=0.1)
    assert sum(n for _, n in estimated.growth) == pytest.approx(20000, rel=0.25)


def test_retention_deletes_what_is_older_and_keeps_never(cli, migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        semantic(conn, "s1", "old chat", content_type="conversation", age_days=400)
        semantic(conn, "s1", "new chat", content_type="conversation", age_days=10)
        semantic(conn, "s1", "old preference", content_type="user_preference", age_days=4000)
        conversation(conn, "s1", "k")
        conn.execute(
            "INSERT INTO memory_consolidation_log (session_id, consolidation_type, created_at) "
            "VALUES ('s1', 'archive', now() - interval '400 days'), ('s1', 'archive', now())"
        )
        conn.execute(
            "INSERT INTO context_relevance (session_id, context_type, context_key, created_at) "
            "VALUES ('s1', 'conversation', 'a', now() - interval '200 days'), "
            "('s1', 'conversation', 'b', now())"
        )
        conn.execute(
            "INSERT INTO system_maintenance_log (maintenance_type, started_at, status) VALUES "
            "('daily', now() - interval '200 days', 'succeeded'), "
            "('weekly', now() - interval '200 days', 'running')"
        )
    with psycopg.connect(migrated_db) as conn:
        planned = retention.apply_retention(conn, dry_run=True)
    assert planned.deleted == {
        "semantic_memory.conversation": 1,
        "memory_consolidation_log": 1,
        "system_maintenance_log": 1,
        "context_relevance": 1,
    }
    assert planned.days["semantic_memory.user_preference"] is None
    health = cli("health", "--check", "retention", "--json", dsn=migrated_db)
    [check] = json.loads(health.stdout)["checks"]
    assert check["status"] == "warn" and check["value"] == 4, json.dumps(check)

    daily = cli("maintain", "daily", "--json", dsn=migrated_db)
    steps = {s["step"]: s for s in json.loads(daily.stdout)["steps"]}
    assert steps["retention"]["status"] == "succeeded" and steps["retention"]["rows"] == 4, daily.stdout
    assert count(migrated_db, "SELECT count(*) FROM semantic_memory") == 2
    assert (
        count(migrated_db, "SELECT count(*) FROM semantic_memory WHERE content_text = 'old preference'") == 1
    )
    # a run still in progress is never removed, however old
    assert count(migrated_db, "SELECT count(*) FROM system_maintenance_log WHERE status = 'running'") == 1
    health = cli("health", "--check", "retention", "--json", dsn=migrated_db)
    assert json.loads(health.stdout)["checks"][0]["status"] == "ok"


def test_retention_setting_must_be_days_or_never() -> None:
    assert retention.retention_days("never", "x") is None
    assert retention.retention_days(" Never ", "x") is None
    assert retention.retention_days(30, "x") == 30
    with pytest.raises(ConfigError):
        retention.retention_days("forever", "x")
    with pytest.raises(ConfigError):
        retention.retention_days(-1, "x")
