"""What is in the memory, at a glance: counts and sizes, expiry timeline, growth, top users and sessions,
access histogram, consolidation ratio.

Fast on a large database: above ``SAMPLE_ABOVE`` conversation memories (by the planner's estimate) the
per-tier counts come from the planner's statistics (``pg_stats``) and the growth, top lists and access
histogram and the expiry timeline from a ``TABLESAMPLE SYSTEM`` of the table, scaled up; each figure
says whether it is an estimate. ``exact=True`` counts everything.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SAMPLE_ABOVE = 200_000
SAMPLE_PERCENT = 5.0
DAYS = 30
TOP = 10
ACCESS_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2-5", 2, 5),
    ("6-20", 6, 20),
    ("21-100", 21, 100),
    (">100", 101, None),
)


@dataclass
class Part:
    name: str  # a tier or a content type
    count: int
    bytes: int  # the table's size shared out by row count (an estimate)


@dataclass
class Stats:
    estimated: list[str] = field(default_factory=list)  # which figures are estimates
    sample_percent: float | None = None
    conversation_total: int = 0
    semantic_total: int = 0
    tiers: list[Part] = field(default_factory=list)
    content_types: list[Part] = field(default_factory=list)
    table_bytes: dict[str, int] = field(default_factory=dict)
    expiring: list[tuple[date, int]] = field(default_factory=list)  # next DAYS days
    growth: list[tuple[date, int]] = field(default_factory=list)  # last DAYS days, both kinds
    top_users: list[tuple[uuid.UUID | None, int]] = field(default_factory=list)
    top_sessions: list[tuple[str, int]] = field(default_factory=list)
    access: list[tuple[str, int]] = field(default_factory=list)
    consolidations: int = 0  # merge log rows
    memories_merged: int = 0  # short-term memories those merges replaced
    consolidation_ratio: float | None = None  # memories merged per merged memory
    duration_seconds: float = 0.0


def _estimate(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", (table,)
    ).fetchone()
    return max(int(row[0]), 0) if row and row[0] is not None else 0


def _sizes(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT n, coalesce(pg_total_relation_size(to_regclass(n)), 0) "
        "FROM unnest(ARRAY['conversation_memory', 'semantic_memory', 'memory_consolidation_log', "
        "'context_relevance', 'user_context_profiles']) AS n"
    ).fetchall()
    return {name: int(size) for name, size in rows}


def _parts_from_stats(
    conn: psycopg.Connection, table: str, column: str, total: int
) -> list[tuple[str, int]] | None:
    row = conn.execute(
        "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = %s AND attname = %s",
        (table, column),
    ).fetchone()
    if not row or row[0] is None:
        return None
    return [(value, round(freq * total)) for value, freq in zip(row[0], row[1], strict=True)]


def _exact_parts(conn: psycopg.Connection, table: str, column: str) -> list[tuple[str, int]]:
    from psycopg import sql

    rows = conn.execute(
        sql.SQL("SELECT {c}, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC").format(
            c=sql.Identifier(column), t=sql.Identifier(table)
        )
    ).fetchall()
    return [(str(v), int(n)) for v, n in rows]


def collect(conn: psycopg.Connection, *, exact: bool = False, days: int = DAYS, top: int = TOP) -> Stats:
    """Gather the figures (read-only)."""
    from psycopg import sql

    started = time.perf_counter()
    stats = Stats()
    stats.table_bytes = _sizes(conn)
    big = not exact and _estimate(conn, "conversation_memory") > SAMPLE_ABOVE
    sample = sql.SQL("")
    scale = 1.0
    if big:
        stats.sample_percent = SAMPLE_PERCENT
        sample = sql.SQL(" TABLESAMPLE SYSTEM ({}) REPEATABLE (42)").format(sql.Literal(SAMPLE_PERCENT))
        scale = 100.0 / SAMPLE_PERCENT

    for table, column, target in (
        ("conversation_memory", "memory_type", "tiers"),
        ("semantic_memory", "content_type", "content_types"),
    ):
        parts = None
        if big or (not exact and _estimate(conn, table) > SAMPLE_ABOVE):
            total = _estimate(conn, table)
            parts = _parts_from_stats(conn, table, column, total)
            if parts is not None:
                stats.estimated.append(target)
        if parts is None:
            parts = _exact_parts(conn, table, column)
        count = sum(n for _, n in parts)
        size = stats.table_bytes.get(table, 0)
        setattr(
            stats,
            target,
            [Part(name, n, round(size * n / count) if count else 0) for name, n in parts],
        )
    stats.conversation_total = sum(p.count for p in stats.tiers)
    stats.semantic_total = sum(p.count for p in stats.content_types)

    stats.expiring = [
        (d, round(int(n) * scale))
        for d, n in conn.execute(
            sql.SQL(
                "SELECT date_trunc('day', expires_at)::date, count(*) FROM conversation_memory{s} "
                "WHERE expires_at >= now() AND expires_at < now() + %s * interval '1 day' "
                "GROUP BY 1 ORDER BY 1"
            ).format(s=sample),
            (days,),
        ).fetchall()
    ]
    growth: dict[date, int] = {}
    for table in ("conversation_memory", "semantic_memory"):
        rows = conn.execute(
            sql.SQL(
                "SELECT date_trunc('day', created_at)::date, count(*) FROM {t}{s} "
                "WHERE created_at >= now() - %s * interval '1 day' GROUP BY 1"
            ).format(t=sql.Identifier(table), s=sample if table == "conversation_memory" else sql.SQL("")),
            (days,),
        ).fetchall()
        factor = scale if table == "conversation_memory" else 1.0
        for d, n in rows:
            growth[d] = growth.get(d, 0) + round(int(n) * factor)
    stats.growth = sorted(growth.items())

    stats.top_users = [
        (u, round(int(n) * scale))
        for u, n in conn.execute(
            sql.SQL(
                "SELECT user_id, count(*) FROM conversation_memory{s} WHERE user_id IS NOT NULL "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s"
            ).format(s=sample),
            (top,),
        ).fetchall()
    ]
    stats.top_sessions = [
        (s, round(int(n) * scale))
        for s, n in conn.execute(
            sql.SQL(
                "SELECT session_id, count(*) FROM conversation_memory{s} "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s"
            ).format(s=sample),
            (top,),
        ).fetchall()
    ]
    buckets = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE coalesce(access_count, 0) BETWEEN {} AND {})").format(
            sql.Literal(low), sql.Literal(high if high is not None else 2**31 - 1)
        )
        for _, low, high in ACCESS_BUCKETS
    )
    row = conn.execute(sql.SQL("SELECT {} FROM conversation_memory{}").format(buckets, sample)).fetchone()
    stats.access = [
        (label, round(int(n) * scale)) for (label, _, _), n in zip(ACCESS_BUCKETS, row or (), strict=False)
    ]
    if big:
        stats.estimated += ["expiring", "growth", "top_users", "top_sessions", "access"]

    merges = conn.execute(
        "SELECT count(*), coalesce(sum(cardinality(old_memory_ids)), 0) FROM memory_consolidation_log "
        "WHERE consolidation_type = 'merge'"
    ).fetchone()
    stats.consolidations = int(merges[0]) if merges else 0
    stats.memories_merged = int(merges[1]) if merges else 0
    if stats.consolidations:
        stats.consolidation_ratio = round(stats.memories_merged / stats.consolidations, 2)
    stats.duration_seconds = round(time.perf_counter() - started, 3)
    return stats


def as_dict(stats: Stats) -> dict[str, Any]:
    """A JSON-friendly shape (dates as ISO strings, pairs as objects)."""
    return {
        "estimated": stats.estimated,
        "sample_percent": stats.sample_percent,
        "conversation_total": stats.conversation_total,
        "semantic_total": stats.semantic_total,
        "tiers": [p.__dict__ for p in stats.tiers],
        "content_types": [p.__dict__ for p in stats.content_types],
        "table_bytes": stats.table_bytes,
        "expiring": [{"day": d.isoformat(), "count": n} for d, n in stats.expiring],
        "growth": [{"day": d.isoformat(), "count": n} for d, n in stats.growth],
        "top_users": [{"user_id": str(u) if u else None, "memories": n} for u, n in stats.top_users],
        "top_sessions": [{"session_id": s, "memories": n} for s, n in stats.top_sessions],
        "access": [{"reads": label, "memories": n} for label, n in stats.access],
        "consolidations": stats.consolidations,
        "memories_merged": stats.memories_merged,
        "consolidation_ratio": stats.consolidation_ratio,
        "duration_seconds": stats.duration_seconds,
    }
