"""Seed loading speed: COPY against a plain executemany INSERT, and embedding time, in one run.

Starts a throw-away embedded Postgres in a temporary MEMCLI_HOME, migrates a template database, and loads
the same demo conversation_memory rows into two fresh copies of it: once through the COPY path that
``memcli seed --demo`` uses, once with ``cursor.executemany(INSERT ...)``. Both go through the table's
triggers, constraints and indexes. Then it times the embedders on demo texts: the hashing embedder, and the
local all-MiniLM-L6-v2 model (load time reported apart).

Usage:
    .venv/bin/python benchmarks/seed_bench.py                 # 100k rows, 2k texts, with the local model
    .venv/bin/python benchmarks/seed_bench.py --rows 20000 --no-model
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from harness import embedded_server, migrate

TARGET_SPEEDUP = 10.0


def _digest(dsn: str) -> tuple[int, str]:
    """Row count and a digest of the table's content, to show both paths stored the same rows."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        count, digest = conn.execute(
            """
            SELECT count(*), md5(string_agg(
                concat_ws('|', id, session_id, user_id, memory_type, context_key, context_value::text,
                          importance_score, access_count, last_accessed_at, created_at, expires_at),
                ',' ORDER BY id))
            FROM conversation_memory
            """
        ).fetchone()
    return int(count), str(digest)


def _time_copy(dsn: str, rows: list[tuple]) -> float:
    import psycopg

    from memcli.bulk import copy_rows
    from memcli.seed.demo_data import CONVERSATION_COLUMNS

    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        copy_rows(conn, "conversation_memory", CONVERSATION_COLUMNS, rows)
        conn.commit()
        return time.perf_counter() - started


def _insert_query() -> str:
    from memcli.seed.demo_data import CONVERSATION_COLUMNS

    return (
        f"INSERT INTO conversation_memory ({', '.join(CONVERSATION_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(CONVERSATION_COLUMNS))})"
    )


def _time_executemany(dsn: str, rows: list[tuple]) -> float:
    import psycopg

    query = _insert_query()
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(query, rows)
        conn.commit()
        return time.perf_counter() - started


def _time_row_by_row(dsn: str, rows: list[tuple]) -> float:
    """One execute() per row in one transaction: what "row-by-row INSERT" costs, for reference."""
    import psycopg

    query = _insert_query()
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur:
            for row in rows:
                cur.execute(query, row)
        conn.commit()
        return time.perf_counter() - started


def _time_copy_floor(dsn: str, rows: list[tuple]) -> float:
    """COPY into an unlogged copy of the table without indexes or triggers: the client and parsing cost
    alone, so the rest of the COPY time is the real table's seven indexes (primary key, unique key, five
    secondary) and its expiry trigger."""
    import psycopg

    from memcli.bulk import copy_rows
    from memcli.seed.demo_data import CONVERSATION_COLUMNS

    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE UNLOGGED TABLE bench_floor (LIKE conversation_memory)")
        conn.commit()
        started = time.perf_counter()
        copy_rows(conn, "bench_floor", CONVERSATION_COLUMNS, rows)
        conn.commit()
        return time.perf_counter() - started


def _time_embedder(embedder, texts: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds to load / warm up, seconds to embed ``texts``)."""
    started = time.perf_counter()
    embedder.embed(["warm up"])
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    assert vectors.shape == (len(texts), embedder.dimension)
    return loaded, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="conversation_memory rows to load")
    parser.add_argument("--texts", type=int, default=2_000, help="texts to embed")
    parser.add_argument("--no-model", action="store_true", help="skip the local MiniLM model")
    args = parser.parse_args(argv)

    from memcli.embeddings import get_embedder
    from memcli.seed.demo_data import generate_demo

    started = time.perf_counter()
    with embedded_server("memcli-seed-bench-") as server:
        migrate(server.create_database("bench_template"))
        fresh = {
            name: server.create_database(f"bench_{name}", template="bench_template")
            for name in ("copy", "executemany", "row_by_row", "floor")
        }
        setup = time.perf_counter() - started

        # About 6.4 memories per session: generate enough sessions, keep exactly --rows rows.
        base = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        started = time.perf_counter()
        data = generate_demo(businesses=20, sessions=args.rows // 6 + 50, random_seed=1, base_time=base)
        rows = data.conversation[: args.rows]
        if len(rows) < args.rows:
            raise SystemExit(f"generated only {len(rows)} rows")
        generate = time.perf_counter() - started

        seconds = {
            "executemany": _time_executemany(fresh["executemany"], rows),
            "copy": _time_copy(fresh["copy"], rows),
            "row_by_row": _time_row_by_row(fresh["row_by_row"], rows),
            "floor": _time_copy_floor(fresh["floor"], rows),
        }
        digests = {_digest(fresh[name]) for name in ("copy", "executemany", "row_by_row")}
        if len(digests) != 1:
            raise SystemExit(f"the loading paths stored different rows: {digests}")
        count, digest = digests.pop()
        assert count == len(rows)

        texts = [row[4] for row in data.semantic]
        while len(texts) < args.texts:
            texts = texts + texts
        texts = texts[: args.texts]
        embedders = [("hashing", get_embedder(provider="hashing"))]
        if not args.no_model:
            embedders.append(("local all-MiniLM-L6-v2", get_embedder(provider="local")))
        embedding = [(label, e.name, *_time_embedder(e, texts)) for label, e in embedders]

    rate = {name: len(rows) / value for name, value in seconds.items()}
    speedup = rate["copy"] / rate["executemany"]
    print(f"seed benchmark: {len(rows):,} conversation_memory rows, same content in each ({digest[:12]})")
    print(f"  setup (server start, migrate, databases): {setup:.1f}s; generating the rows: {generate:.2f}s")
    labels = {
        "executemany": "executemany INSERT (baseline)",
        "row_by_row": "row-by-row execute() INSERT",
        "copy": "COPY (memcli seed --demo)",
        "floor": "COPY, no indexes/triggers (floor)",
    }
    for name, label in labels.items():
        print(f"  {label:<34} {seconds[name]:8.2f}s  {rate[name]:>10,.0f} rows/s")
    verdict = "meets" if speedup >= TARGET_SPEEDUP else "misses"
    print(
        f"  COPY is {speedup:.1f}x executemany ({verdict} the {TARGET_SPEEDUP:.0f}x target) and "
        f"{rate['copy'] / rate['row_by_row']:.1f}x row-by-row INSERT"
    )
    print(f"embedding {len(texts):,} demo texts (model load apart):")
    for label, name, loaded, embed_seconds in embedding:
        print(
            f"  {label:<24} {name:<40} load {loaded:6.2f}s  embed {embed_seconds:7.2f}s  "
            f"{len(texts) / embed_seconds:>8,.0f} texts/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
