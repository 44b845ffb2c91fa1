"""What the number of partitions costs a read that cannot prune them, apart from memcli's schema.

One plain table and one range-partitioned copy per partition count, each with conversation_memory's seven
indexes and the same rows (default 1M, 50 per session, four sessions per user); the partitions split a
450-day expiry range evenly (plus a default partition). Reads of one session's and one user's rows as
prepared statements (what a driver's statement cache does), the tables taking turns in 10 rounds; printed:
the median round's mean per read, and its ratio to the plain table's.

``--clustered``: a session's rows expire within 8 days of each other (rows written together, as a
conversation writes them), so most partitions hold none of a session's rows; otherwise each row's expiry
is spread over the whole range.

Usage:
    nice -n 10 .venv/bin/python benchmarks/partition_count_bench.py --counts 1,2,4,19
    nice -n 10 .venv/bin/python benchmarks/partition_count_bench.py --counts 2,4,19 --clustered
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness import embedded_server

if TYPE_CHECKING:
    import psycopg

COLUMNS = """(id bigint, session_id text, user_id uuid, memory_type text, context_key text,
    context_value jsonb, importance real, access_count int, created_at timestamptz, expires_at timestamptz)"""
INDEXES = (
    "(id)",
    "(session_id)",
    "(session_id, context_key)",
    "(user_id)",
    "(memory_type)",
    "(expires_at)",
    "(importance DESC)",
)
DAYS = 450
START = "2026-09-01"


def build(conn: psycopg.Connection, name: str, partitions: int, rows: int, clustered: bool) -> None:
    execute = conn.execute
    sessions = rows // 50
    if partitions == 0:
        execute(f"CREATE TABLE {name} {COLUMNS}")
    else:
        execute(f"CREATE TABLE {name} {COLUMNS} PARTITION BY RANGE (expires_at)")
        edges = [round(i * DAYS / partitions) for i in range(partitions + 1)]
        for i in range(partitions):
            execute(
                f"CREATE TABLE {name}_p{i} PARTITION OF {name} "
                f"FOR VALUES FROM ('{START}'::date + {edges[i]}) TO ('{START}'::date + {edges[i + 1]})"
            )
        execute(f"CREATE TABLE {name}_default PARTITION OF {name} DEFAULT")
    for i, columns in enumerate(INDEXES):
        execute(f"CREATE INDEX {name}_i{i} ON {name} {columns}")
    days = (
        f"((g % {sessions})::float8 / {sessions} * {DAYS - 10} + random() * 8)"
        if clustered
        else f"(random() * {DAYS - 1})"
    )
    execute(
        f"""
        INSERT INTO {name}
        SELECT g, 'sess-' || (g % {sessions}), md5('user-' || (g % {sessions}) / 4)::uuid,
               (ARRAY['short_term', 'long_term', 'archived'])[1 + g % 3], 'k' || g,
               jsonb_build_object('turn', g, 'text', 'the guest asked about table ' || g % 40),
               (g % 100) / 100.0, g % 5, now() - interval '100 days',
               '{START}'::timestamptz + {days} * interval '1 day'
        FROM generate_series(1, {rows}) AS g
        """
    )
    execute(f"VACUUM ANALYZE {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--counts", default="1,2,4,7,19", help="partition counts, comma-separated")
    parser.add_argument("--clustered", action="store_true", help="a session's rows expire close together")
    parser.add_argument("--reads", type=int, default=200, help="reads per table per round")
    args = parser.parse_args(argv)
    import psycopg

    tables = {"plain": 0} | {f"parts_{n}": int(n) for n in args.counts.split(",")}
    sessions = args.rows // 50
    with embedded_server("memcli-partition-count-bench-") as server:
        conn = psycopg.connect(server.dsn, autocommit=True)
        for name, partitions in tables.items():
            started = time.perf_counter()
            build(conn, name, partitions, args.rows, args.clustered)
            print(f"{name}: {time.perf_counter() - started:.0f} s to build", file=sys.stderr, flush=True)
        rng = random.Random(5)
        reads: list[tuple[str, str, Callable[[], str]]] = [
            ("session", "SELECT * FROM {} WHERE session_id = %s", lambda: f"sess-{rng.randrange(sessions)}"),
            (
                "user",
                "SELECT * FROM {} WHERE user_id = md5(%s)::uuid",
                lambda: f"user-{rng.randrange(sessions // 4)}",
            ),
        ]
        for label, query, value in reads:
            for name in tables:  # prepare, and past Postgres's five custom plans
                for _ in range(50):
                    conn.execute(query.format(name), (value(),), prepare=True).fetchall()
            means: dict[str, list[float]] = {name: [] for name in tables}
            for r in range(10):
                values = [value() for _ in range(args.reads)]
                for name in list(tables) if r % 2 == 0 else list(reversed(tables)):
                    started = time.perf_counter()
                    for v in values:
                        conn.execute(query.format(name), (v,), prepare=True).fetchall()
                    means[name].append((time.perf_counter() - started) / len(values) * 1000)
            base = statistics.median(means["plain"])
            print(
                f"{label:8}"
                + "".join(
                    f"  {name} {statistics.median(m):.3f} ms ({statistics.median(m) / base:.2f}x)"
                    for name, m in means.items()
                ),
                flush=True,
            )
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
