"""Cleanup of expired memories: memcli's batched cleanup against one plain DELETE, in one run.

Starts a throw-away embedded Postgres in a temporary MEMCLI_HOME, migrates a database and bulk-loads
conversation_memory (default 1M rows, half of them expired) with INSERT ... SELECT generate_series, then
clones it twice (CREATE DATABASE ... TEMPLATE). On one copy ``memcli.jobs.cleanup.cleanup_expired`` runs
(batches of ``cleanup.batch_size`` rows, each its own short transaction); on the other one plain
``DELETE FROM conversation_memory WHERE expires_at < now()``. Reported for both: rows/s and the longest lock
held (the longest batch transaction, or the whole DELETE).

While each runs, two application threads work on the same database:
- a writer inserting memories one per transaction (its p50/p99 latency; target p99 < 50 ms during the
  batched cleanup);
- a reader-writer updating a random existing memory, expired or not, as an application touching its
  memories does: it waits for any row lock the cleanup holds, so its worst latency shows the longest lock.

Usage:
    .venv/bin/python benchmarks/cleanup_bench.py                       # 1M rows, 500k expired
    .venv/bin/python benchmarks/cleanup_bench.py --rows 200000 --json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness import embedded_server, migrate, nearest_rank

TARGET_P99_MS = 50.0


def _load(dsn: str, rows: int, expired_fraction: float, sessions: int) -> None:
    """``rows`` memories over ``sessions`` sessions; a fraction expired (1 min to 30 days ago)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO conversation_memory
                (session_id, memory_type, context_key, context_value, importance_score, access_count,
                 created_at, last_accessed_at, expires_at)
            SELECT 'sess-' || (g %% %(sessions)s),
                   (ARRAY['short_term', 'long_term', 'archived'])[1 + g %% 3],
                   'k' || g,
                   jsonb_build_object('turn', g, 'text', 'the guest asked about table ' || g %% 40),
                   (g %% 100) / 100.0, g %% 5,
                   now() - interval '40 days', now() - interval '1 day',
                   CASE WHEN (g::bigint * 7919 %% 1000) < %(expired_per_mille)s
                        THEN now() - interval '1 minute' - (g %% 43200) * interval '1 minute'
                        ELSE now() + interval '1 day' + (g %% 43200) * interval '1 minute' END
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"rows": rows, "sessions": sessions, "expired_per_mille": int(expired_fraction * 1000)},
        )
        # relevance rows: one per session, plus sessions whose memories are long gone (orphans)
        conn.execute(
            """
            INSERT INTO context_relevance (session_id, context_type, context_key)
            SELECT 'sess-' || g, 'topic', 'food' FROM generate_series(0, %(sessions)s + 999) AS g
            """,
            {"sessions": sessions},
        )
        conn.execute("VACUUM (ANALYZE) conversation_memory")
        conn.execute("VACUUM (ANALYZE) context_relevance")


@dataclass
class Latencies:
    samples_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def summary(self) -> dict[str, Any]:
        s = self.samples_ms
        return {
            "count": len(s),
            "errors": self.errors,
            "p50_ms": round(nearest_rank(s, 0.50), 2),
            "p99_ms": round(nearest_rank(s, 0.99), 2),
            "max_ms": round(max(s), 2) if s else None,
            "mean_ms": round(statistics.fmean(s), 2) if s else None,
        }


class AppLoad:
    """The application's traffic during a cleanup: inserts and updates of random memories."""

    def __init__(self, dsn: str, rows: int, sessions: int) -> None:
        self.dsn = dsn
        self.rows = rows
        self.sessions = sessions
        self.stop = threading.Event()
        self.inserts = Latencies()
        self.updates = Latencies()
        self.threads = [
            threading.Thread(target=self._insert, daemon=True),
            threading.Thread(target=self._update, daemon=True),
        ]

    def _insert(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, application_name="bench-writer") as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.perf_counter()
                try:
                    conn.execute(
                        "INSERT INTO conversation_memory "
                        "(session_id, memory_type, context_key, context_value) "
                        "VALUES (%s, 'short_term', %s, %s::jsonb)",
                        (f"live-{n % 500}", f"w{n}-{time.time_ns()}", json.dumps({"said": n})),
                    )
                    self.inserts.samples_ms.append((time.perf_counter() - started) * 1000)
                except psycopg.Error:
                    self.inserts.errors += 1
                time.sleep(0.002)

    def _update(self) -> None:
        import psycopg

        rng = random.Random(7)
        with psycopg.connect(self.dsn, autocommit=True, application_name="bench-updater") as conn:
            while not self.stop.is_set():
                g = rng.randint(1, self.rows)
                started = time.perf_counter()
                try:
                    conn.execute(
                        "UPDATE conversation_memory SET importance_score = 0.5 "
                        "WHERE session_id = %s AND context_key = %s",
                        (f"sess-{g % self.sessions}", f"k{g}"),
                    )
                    self.updates.samples_ms.append((time.perf_counter() - started) * 1000)
                except psycopg.Error:
                    self.updates.errors += 1
                time.sleep(0.005)

    def __enter__(self) -> AppLoad:
        for t in self.threads:
            t.start()
        time.sleep(0.5)  # let both connect and settle before the timed work starts
        self.inserts.samples_ms.clear()
        self.updates.samples_ms.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _count(dsn: str, where: str = "true") -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return int(conn.execute(f"SELECT count(*) FROM conversation_memory WHERE {where}").fetchone()[0])


def run_batched(dsn: str, rows: int, sessions: int, batch_size: int | None) -> dict[str, Any]:
    from memcli.db import connect
    from memcli.jobs.cleanup import CleanupOptions, cleanup_expired

    batch_ms: list[float] = []
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        # called after every committed batch of memories: the time between calls is one batch
        now = time.perf_counter()
        if done:
            batch_ms.append((now - last[0]) * 1000)
        last[0] = now

    conn = connect(dsn, autocommit=True)
    try:
        with AppLoad(dsn, rows, sessions) as load:
            started = time.perf_counter()
            result = cleanup_expired(conn, CleanupOptions(batch_size=batch_size), progress=progress)
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    deleted = result.deleted["conversation_memory"]
    return {
        "deleted": deleted,
        "relevance_deleted": result.deleted["context_relevance"],
        "seconds": round(elapsed, 2),
        "rows_per_second": round(deleted / elapsed) if elapsed else None,
        "batches": result.batches,
        "batch_size": result.batch_size,
        "longest_lock_ms": round(result.longest_batch_ms, 1),
        "memory_batch_ms": {
            "p50": round(nearest_rank(batch_ms, 0.5), 1),
            "p99": round(nearest_rank(batch_ms, 0.99), 1),
            "max": round(max(batch_ms), 1) if batch_ms else None,
            "first": round(batch_ms[0], 1) if batch_ms else None,
        },
        "writer": load.inserts.summary(),
        "updater": load.updates.summary(),
    }


def run_plain(dsn: str, rows: int, sessions: int) -> dict[str, Any]:
    import psycopg

    with (
        psycopg.connect(dsn, autocommit=True, application_name="bench-plain-delete") as conn,
        AppLoad(dsn, rows, sessions) as load,
    ):
        started = time.perf_counter()
        with conn.transaction():
            deleted = conn.execute("DELETE FROM conversation_memory WHERE expires_at < now()").rowcount
        elapsed = time.perf_counter() - started
    return {
        "deleted": deleted,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(deleted / elapsed) if elapsed else None,
        "batches": 1,
        "longest_lock_ms": round(elapsed * 1000, 1),  # every deleted row stays locked until the commit
        "writer": load.inserts.summary(),
        "updater": load.updates.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="conversation_memory rows (default 1M)")
    parser.add_argument("--expired", type=float, default=0.5, help="expired fraction (default 0.5)")
    parser.add_argument("--sessions", type=int, default=20_000, help="sessions (default 20k)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: settings cleanup.batch_size")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="keep the temporary server folder")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"rows": args.rows, "expired_fraction": args.expired, "sessions": args.sessions}
    with embedded_server(
        "memcli-cleanup-bench-",
        keep=args.keep,
        announce=lambda home: say(f"starting an embedded Postgres in {home} ..."),
    ) as server:
        source = server.create_database("bench_source")
        migrate(source)
        say(f"loading {args.rows:,} memories ({args.expired:.0%} expired) ...")
        started = time.perf_counter()
        _load(source, args.rows, args.expired, args.sessions)
        report["load_seconds"] = round(time.perf_counter() - started, 1)
        report["expired_rows"] = _count(source, "expires_at < now()")
        say(f"loaded in {report['load_seconds']} s; cloning twice ...")
        batched_dsn = server.create_database("bench_batched", template="bench_source", strategy="FILE_COPY")
        plain_dsn = server.create_database("bench_plain", template="bench_source", strategy="FILE_COPY")

        say("batched cleanup (memcli) with the application writing ...")
        report["batched"] = run_batched(batched_dsn, args.rows, args.sessions, args.batch_size)
        say("plain DELETE with the application writing ...")
        report["plain"] = run_plain(plain_dsn, args.rows, args.sessions)
        # the loaded rows that survive (the application's own inserts differ between the two runs)
        report["survivors"] = [_count(dsn, "context_key LIKE 'k%'") for dsn in (batched_dsn, plain_dsn)]
        report["same_survivors"] = report["survivors"][0] == report["survivors"][1]
        p99 = report["batched"]["writer"]["p99_ms"]
        report["target_writer_p99_ms"] = TARGET_P99_MS
        report["target_met"] = not math.isnan(p99) and p99 < TARGET_P99_MS

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0 if report.get("target_met") else 1


def _print(report: dict[str, Any]) -> None:
    b, p = report["batched"], report["plain"]
    rows = [
        ("rows deleted", f"{b['deleted']:,}", f"{p['deleted']:,}"),
        ("time", f"{b['seconds']} s", f"{p['seconds']} s"),
        ("rows/s", f"{b['rows_per_second']:,}", f"{p['rows_per_second']:,}"),
        ("transactions", f"{b['batches']} (batch {b['batch_size']})", "1"),
        ("longest lock held", f"{b['longest_lock_ms']:,} ms", f"{p['longest_lock_ms']:,} ms"),
        (
            "memory batch p50/p99/max",
            "{p50} / {p99} / {max} ms".format(**b["memory_batch_ms"]),
            "-",
        ),
    ]
    for who, label in (("writer", "app insert"), ("updater", "app update")):
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            rows.append((f"{label} {stat[:-3]}", f"{b[who][stat]} ms", f"{p[who][stat]} ms"))
        rows.append((f"{label} count", str(b[who]["count"]), str(p[who]["count"])))
    print(
        f"{report['rows']:,} conversation_memory rows, {report['expired_rows']:,} expired "
        f"(loaded in {report['load_seconds']} s); same survivors: {report['same_survivors']}"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'batched cleanup':>22}  {'plain DELETE':>18}")
    for label, left, right in rows:
        print(f"{label:{width}}  {left:>22}  {right:>18}")
    verdict = "met" if report["target_met"] else "MISSED"
    print(
        f"target: app insert p99 < {TARGET_P99_MS:g} ms during the batched cleanup: {verdict} "
        f"({b['writer']['p99_ms']} ms)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
