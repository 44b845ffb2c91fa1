"""memcli health on a 1M-row memory database: the library and the whole command against the 2 s target.

Starts a throw-away embedded Postgres in a temporary MEMCLI_HOME, migrates a database with
``memcli.migrations.upgrade`` and bulk-loads it with INSERT ... SELECT generate_series:
conversation_memory (default 1M rows: a mix of tiers, 2% expired, a consolidation backlog), semantic_memory
(default 20k rows with 384-dimension vectors, HNSW index), context_relevance (50k rows) and a few weeks of
maintenance runs. Then it times:

- ``run_checks`` (the library, one connection) over several runs: p50 / max and the slowest checks;
- the whole ``memcli health --json`` process (interpreter start, imports, connect, checks, JSON) likewise;
- baselines measured in the same run: ``memcli --version`` (interpreter and CLI start-up alone) and the
  source document's own "Health Checks" query (COUNT(*) over both memory tables), which health avoids;
- one ``--deep`` run (recall probe) for information; it has no time target.

Usage:
    .venv/bin/python benchmarks/health_bench.py                  # 1M rows, 20k vectors, 7 runs
    .venv/bin/python benchmarks/health_bench.py --rows 200000 --semantic 5000 --runs 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Server, embedded_server, migrate

TARGET_S = 2.0
ROOT = Path(__file__).resolve().parent.parent

# The "Health Checks" query of the source document (seeds/000_…), as written there.
DOCUMENT_HEALTH_QUERY = """
SELECT 'conversation_memory' as table_name, COUNT(*) as total_records,
       COUNT(CASE WHEN expires_at < NOW() THEN 1 END) as expired_records,
       AVG(importance_score) as avg_importance
FROM conversation_memory
UNION ALL
SELECT 'semantic_memory' as table_name, COUNT(*) as total_records, 0 as expired_records,
       AVG(relevance_score) as avg_importance
FROM semantic_memory
"""


def build(server: Server, rows: int, semantic: int) -> tuple[str, dict[str, float]]:
    import psycopg

    timings: dict[str, float] = {}
    dsn = server.create_database("health_bench")
    started = time.perf_counter()
    migrate(dsn)
    timings["migrate_s"] = time.perf_counter() - started

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        # 50k sessions; tiers 70% short_term / 20% long_term / 10% archived; 2% already expired (up to 5
        # days ago), the rest expiring over the next weeks; 1% short_term past the consolidation threshold.
        conn.execute(
            """
            INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value,
                                             importance_score, access_count, last_accessed_at, created_at,
                                             expires_at)
            SELECT 'session-' || mod(g, 50000),
                   NULL,
                   CASE WHEN mod(g, 10) < 7 THEN 'short_term' WHEN mod(g, 10) < 9 THEN 'long_term'
                        ELSE 'archived' END,
                   'key-' || g,
                   jsonb_build_object('text', 'remembered fact number ' || g, 'n', g),
                   mod(g, 100) / 100.0,
                   mod(g, 7),
                   now() - mod(g, 1000) * interval '1 minute',
                   CASE WHEN mod(g, 100) = 0 THEN now() - interval '9 days'
                        ELSE now() - mod(g, 4000) * interval '1 minute' END,
                   CASE WHEN mod(g, 50) = 1 THEN now() - mod(g, 7200) * interval '1 minute'
                        ELSE now() + interval '1 day' + mod(g, 40000) * interval '1 minute' END
            FROM generate_series(1, %s) g
            """,
            (rows,),
        )
        timings["load_conversation_s"] = time.perf_counter() - started

        started = time.perf_counter()
        conn.execute("DROP INDEX idx_semantic_memory_vector")  # one bulk build instead of row-by-row inserts
        conn.execute(
            """
            INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector,
                                         embedding_model, created_at)
            SELECT 'session-' || mod(g, 50000), 'conversation', 'semantic memory number ' || g,
                   (SELECT array_agg(random() + g * 0 + x * 0)::vector FROM generate_series(1, 384) x),
                   'hashing-v1', now() - mod(g, 4000) * interval '1 minute'
            FROM generate_series(1, %s) g
            """,
            (semantic,),
        )
        conn.execute(
            "CREATE INDEX idx_semantic_memory_vector ON semantic_memory "
            "USING hnsw (embedding_vector vector_cosine_ops)"
        )
        conn.execute("""UPDATE memory_settings SET value = '"hashing-v1"' WHERE key = 'embedding.model'""")
        timings["load_semantic_s"] = time.perf_counter() - started

        started = time.perf_counter()
        conn.execute(
            """
            INSERT INTO context_relevance (session_id, context_type, context_key, relevance_score)
            SELECT 'session-' || mod(g, 50000), 'topic', 'topic-' || g, mod(g, 100) / 100.0
            FROM generate_series(1, 50000) g
            """
        )
        # Four weeks of runs: daily every day, weekly every 7 days, monthly once; all succeeded.
        conn.execute(
            """
            INSERT INTO system_maintenance_log (maintenance_type, step, started_at, finished_at,
                                                duration_seconds, records_processed, status)
            SELECT job, NULL, now() - d * interval '1 day',
                   now() - d * interval '1 day' + interval '40 seconds',
                   40, 1000, 'succeeded'
            FROM (SELECT 'daily' AS job, d FROM generate_series(0, 27) d
                  UNION ALL SELECT 'weekly', d FROM generate_series(0, 27, 7) d
                  UNION ALL SELECT 'monthly', 3) runs
            """
        )
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        timings["load_rest_vacuum_analyze_s"] = time.perf_counter() - started
    return dsn, timings


def time_library(dsn: str, runs: int) -> dict[str, Any]:
    from memcli.db import connect
    from memcli.health import run_checks

    totals: list[float] = []
    per_check: dict[str, list[float]] = {}
    statuses: dict[str, str] = {}
    for _ in range(runs):
        conn = connect(dsn)
        try:
            started = time.perf_counter()
            report = run_checks(conn)
            totals.append(time.perf_counter() - started)
        finally:
            conn.close()
        for result in report.results:
            per_check.setdefault(result.name, []).append(result.elapsed_ms)
            statuses[result.name] = result.status.value
    slowest = sorted(
        ({"check": name, "p50_ms": statistics.median(v), "max_ms": max(v)} for name, v in per_check.items()),
        key=lambda r: r["p50_ms"],
        reverse=True,
    )
    return {
        "runs": runs,
        "p50_s": statistics.median(totals),
        "max_s": max(totals),
        "all_s": totals,
        "checks": slowest,
        "statuses": statuses,
        "not_ok": {name: s for name, s in statuses.items() if s != "ok"},
    }


def time_command(dsn: str, home: Path, runs: int, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "MEMCLI_DATABASE_URL": dsn, "MEMCLI_HOME": str(home)}
    command = [sys.executable, "-m", "memcli", *args]
    totals: list[float] = []
    inside: list[float] = []  # the checks' own time, from the JSON document
    codes: list[int] = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=home)
        totals.append(time.perf_counter() - started)
        codes.append(done.returncode)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        if "--json" in args:
            inside.append(json.loads(done.stdout)["elapsed_ms"] / 1000)
    return {
        "args": args,
        "runs": runs,
        "p50_s": statistics.median(totals),
        "max_s": max(totals),
        "checks_p50_s": statistics.median(inside) if inside else None,
        "exit_codes": codes,
    }


def time_document_query(dsn: str, runs: int) -> dict[str, Any]:
    import psycopg

    totals = []
    with psycopg.connect(dsn) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute(DOCUMENT_HEALTH_QUERY).fetchall()
            totals.append(time.perf_counter() - started)
            conn.rollback()
    return {"runs": runs, "p50_s": statistics.median(totals), "max_s": max(totals)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="conversation_memory rows")
    parser.add_argument("--semantic", type=int, default=20_000, help="semantic_memory rows (384-d vectors)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each measurement")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    started = time.perf_counter()
    with embedded_server("memcli-health-bench-") as server:
        dsn, build_timings = build(server, args.rows, args.semantic)
        library = time_library(dsn, args.runs)
        command = time_command(dsn, server.home, args.runs, ["health", "--json"])
        startup = time_command(dsn, server.home, args.runs, ["--version"])
        deep = time_command(dsn, server.home, 1, ["health", "--json", "--deep"])
        document = time_document_query(dsn, args.runs)
    figures = {
        "rows": args.rows,
        "semantic_rows": args.semantic,
        "target_s": TARGET_S,
        "build": build_timings,
        "library_run_checks": library,
        "command_health_json": command,
        "baseline_cli_startup": startup,
        "baseline_document_health_query": document,
        "deep_once": deep,
        "bench_total_s": time.perf_counter() - started,
    }
    ok = library["max_s"] < TARGET_S and command["p50_s"] < TARGET_S
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0 if ok else 1

    def line(label: str, p50: float, worst: float, note: str = "") -> None:
        print(f"  {label:<44} p50 {p50 * 1000:8.1f} ms   max {worst * 1000:8.1f} ms  {note}")

    print(f"memcli health benchmark: {args.rows:,} conversation_memory rows, {args.semantic:,} vectors")
    print("  build: " + ", ".join(f"{k} {v:.1f}" for k, v in build_timings.items()))
    verdict = lambda s: "within" if s < TARGET_S else "OVER"  # noqa: E731
    line(
        "run_checks (library, no --deep)",
        library["p50_s"],
        library["max_s"],
        f"{verdict(library['max_s'])} 2 s",
    )
    line(
        "memcli health --json (whole process)",
        command["p50_s"],
        command["max_s"],
        f"{verdict(command['max_s'])} 2 s; checks inside: p50 {command['checks_p50_s'] * 1000:.0f} ms",
    )
    line("baseline: memcli --version (start-up only)", startup["p50_s"], startup["max_s"])
    line("baseline: the document's COUNT(*) health query", document["p50_s"], document["max_s"])
    line("memcli health --json --deep (once)", deep["p50_s"], deep["max_s"], "no target")
    print("  slowest checks (p50 / max ms):")
    for row in library["checks"][:8]:
        print(f"    {row['check']:<24} {row['p50_ms']:8.1f} {row['max_ms']:8.1f}")
    if library["not_ok"]:
        print(
            "  checks not OK on this synthetic database: "
            + ", ".join(f"{k}={v}" for k, v in library["not_ok"].items())
        )
    print(
        f"  exit codes of memcli health: {command['exit_codes']}; bench took {figures['bench_total_s']:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
