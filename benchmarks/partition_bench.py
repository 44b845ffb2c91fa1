"""The partitioned layout against the plain one, in one run: cleanup, inserts and queries, online convert.

Starts a throw-away embedded Postgres (benchmarks/harness.py) and loads two databases with the same rows
(default 2M conversation memories, half of them expired in the three months before this one, the rest
expiring over the next year), one migrated plain, one ``--partitioned``; each is cloned per measurement.

1. **Cleanup** of the expired half: memcli's batched delete on the plain layout against the partition drop
   on the partitioned one (``memcli.jobs.cleanup.cleanup_expired`` both times), while the application
   writes (benchmarks/cleanup_bench.py's AppLoad: one insert per transaction, one update of a random
   memory per transaction). Reported: wall time, the longest lock held (the longest batch transaction, or
   the detach), the writer's p50/p99/max. Targets: drop >= 10x faster, writer p99 < 50 ms.
2. **Inserts and reads** at the full row count: single-row inserts without ``expires_at`` (the expiry
   trigger and, partitioned, the routing and the unique-key trigger), one per transaction, the layouts
   taking turns in rounds (median round per second, and the server's CPU per insert); reads of one
   session's and one user's memories, the layouts also taking turns (median round's mean). Target:
   partitioned within 10% of plain.
3. **Online convert** of a plain table of half the rows while the application writes: wall time, the swap's
   lock, and the longest insert / update the application saw.

Usage:
    nice -n 10 .venv/bin/python benchmarks/partition_bench.py               # 2M rows
    nice -n 10 .venv/bin/python benchmarks/partition_bench.py --only cleanup --fast-load
    nice -n 10 .venv/bin/python benchmarks/partition_bench.py --rows 200000 --json
    nice -n 10 .venv/bin/python benchmarks/partition_bench.py --only cleanup,rw     # JSON, no convert
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cleanup_bench import AppLoad
from harness import embedded_server, nearest_rank

TARGET_SPEEDUP = 10.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 1.10
PARTS = ("cleanup", "rw", "convert")


def migrate(dsn: str, partitioned: bool) -> None:
    from memcli import migrations

    migrations.upgrade(dsn, embedding_dim=384, partitioned=partitioned)


def load(dsn: str, rows: int, sessions: int, partitioned: bool, fast: bool = False) -> None:
    """``rows`` memories; odd ones expired (in the three months before this one), even ones live.

    ``fast``: the partitioned layout's unique-key trigger is off while they load (their keys are distinct
    by construction), and their keys are recorded in the key table afterwards in one statement; the
    trigger is on again before anything is measured."""
    import psycopg
    from psycopg import sql

    from memcli.partitions.layout import KEY_TABLE, UNIQUE_TRIGGER

    switch = sql.SQL("ALTER TABLE conversation_memory {} TRIGGER {}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        fast = fast and partitioned
        if fast:
            conn.execute(switch.format(sql.SQL("DISABLE"), sql.Identifier(UNIQUE_TRIGGER)))
        if partitioned:
            for back in (1, 2, 3):
                conn.execute(
                    "SELECT create_memory_partition("
                    "(date_trunc('month', now()) - %s * interval '1 month')::date)",
                    (back,),
                )
        conn.execute(
            """
            INSERT INTO conversation_memory
                (session_id, user_id, memory_type, context_key, context_value, importance_score,
                 access_count, created_at, last_accessed_at, expires_at)
            SELECT 'sess-' || (g %% %(sessions)s),
                   md5('user-' || (g %% %(sessions)s) / 4)::uuid,
                   (ARRAY['short_term', 'long_term', 'archived'])[1 + g %% 3],
                   'k' || g,
                   jsonb_build_object('turn', g, 'text', 'the guest asked about table ' || g %% 40),
                   (g %% 100) / 100.0, g %% 5,
                   now() - interval '100 days', now() - interval '1 day',
                   CASE WHEN g %% 2 = 1
                        THEN date_trunc('month', now()) - interval '1 minute'
                             - (g %% 86400) * interval '1 minute'           -- up to 60 days back
                        ELSE now() + interval '1 day' + (g %% 500000) * interval '1 minute' END
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"rows": rows, "sessions": sessions},
        )
        if fast:
            conn.execute(switch.format(sql.SQL("ENABLE"), sql.Identifier(UNIQUE_TRIGGER)))
            # what the trigger records for each row, in one statement
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (session_id, context_key, memory_id) "
                    "SELECT session_id, context_key, id FROM conversation_memory"
                ).format(sql.Identifier(KEY_TABLE))
            )
        conn.execute("VACUUM (ANALYZE) conversation_memory")


def run_cleanup(dsn: str, rows: int, sessions: int) -> dict[str, Any]:
    from memcli.db import connect
    from memcli.jobs.cleanup import cleanup_expired
    from memcli.partitions.upkeep import release_stale_keys

    conn = connect(dsn, autocommit=True)
    try:
        with AppLoad(dsn, rows, sessions) as app:
            started = time.perf_counter()
            result = cleanup_expired(conn)
            elapsed = time.perf_counter() - started
            time.sleep(0.5)  # the writer's samples right after the work count too
        # The keys of a dropped partition's rows: swept later (maintain weekly), measured apart
        with AppLoad(dsn, rows, sessions) as sweep_app:
            started = time.perf_counter()
            sweep = release_stale_keys(conn)
            sweep_seconds = time.perf_counter() - started
            time.sleep(0.5)
    finally:
        conn.close()
    return {
        "key_sweep": None
        if sweep.skipped
        else {
            "released": sweep.released,
            "seconds": round(sweep_seconds, 2),
            "writer": sweep_app.inserts.summary(),
        },
        "deleted": result.deleted["conversation_memory"],
        "partitions_dropped": len(result.partitions_dropped),
        "seconds": round(elapsed, 2),
        "longest_lock_ms": round(result.longest_batch_ms, 1),
        "batches": result.batches,
        "writer": app.inserts.summary(),
        "updater": app.updates.summary(),
    }


def _backend_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a server backend (the embedded server runs here), None where unreadable."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_inserts(dsns: dict[str, str], inserts: int, rounds: int) -> dict[str, Any]:
    """Single-row inserts, one per transaction, the layouts taking turns in ``rounds`` rounds.

    On a shared machine the load changes from one second to the next: taking turns exposes both layouts
    to the same conditions, and the median round compares them. The server's CPU per insert (from the
    backend's /proc entry) is reported beside it: it does not count time spent waiting for a core or for
    the WAL flush, so it shows what the layout itself costs.
    """
    import psycopg

    conns = {name: psycopg.connect(dsn, autocommit=True) for name, dsn in dsns.items()}
    per_round = max(1, inserts // rounds)
    rates: dict[str, list[float]] = {name: [] for name in dsns}
    cpu: dict[str, float] = dict.fromkeys(dsns, 0.0)
    statement = (
        "INSERT INTO conversation_memory (session_id, user_id, memory_type, context_key, context_value) "
        "VALUES (%s, %s, 'short_term', %s, '{\"said\": 1}')"
    )
    try:
        pids = {name: conn.execute("SELECT pg_backend_pid()").fetchone()[0] for name, conn in conns.items()}  # type: ignore[index]
        for conn in conns.values():  # warm-up: the plans, the caches
            for n in range(100):
                conn.execute(statement, (f"bench-{n % 1000}", None, f"warm-{n}"))
        for r in range(rounds):
            order = list(conns) if r % 2 == 0 else list(reversed(conns))
            for name in order:
                conn = conns[name]
                cpu_before = _backend_cpu_seconds(pids[name])
                started = time.perf_counter()
                for n in range(per_round):
                    conn.execute(statement, (f"bench-{n % 1000}", None, f"ins-{r}-{n}"))
                rates[name].append(per_round / (time.perf_counter() - started))
                cpu_after = _backend_cpu_seconds(pids[name])
                if cpu_before is not None and cpu_after is not None:
                    cpu[name] += cpu_after - cpu_before
    finally:
        for conn in conns.values():
            conn.close()
    return {
        name: {
            "inserts_per_second": round(statistics.median(rates[name])),
            "rounds": [round(x) for x in rates[name]],
            "server_cpu_us_per_insert": round(cpu[name] / (per_round * rounds) * 1e6, 1),
        }
        for name in dsns
    }


def run_reads(dsns: dict[str, str], sessions: int, reads: int, rounds: int) -> dict[str, Any]:
    """One session's and one user's memories, the layouts taking turns in ``rounds`` rounds on the same
    keys; per layout the p50 / mean / p99 of all reads and the median of the rounds' means.

    Each query three times: as a prepared statement (what a driver with a statement cache does: Postgres
    then plans it for each value while that looks cheaper than one generic plan), as a prepared statement
    under ``plan_cache_mode = force_generic_plan`` (planned once), and as one-off statements (planned on
    every call: the planner then weighs every partition's indexes)."""
    import psycopg

    rng = random.Random(11)
    out: dict[str, Any] = {name: {} for name in dsns}
    conns = {name: psycopg.connect(dsn, autocommit=True) for name, dsn in dsns.items()}
    per_round = max(1, reads // rounds)
    try:
        queries = (
            (
                "by_session",
                "SELECT * FROM conversation_memory WHERE session_id = %s",
                lambda: f"sess-{rng.randrange(sessions)}",
            ),
            (
                "by_user",
                "SELECT * FROM conversation_memory WHERE user_id = md5(%s)::uuid",
                lambda: f"user-{rng.randrange(sessions // 4)}",
            ),
        )
        modes = (("", True, "auto"), ("_generic", True, "force_generic_plan"), ("_unprepared", False, "auto"))
        for (suffix, prepared, plan_cache_mode), (label, query, arg) in [
            (m, q) for m in modes for q in queries
        ]:
            label += suffix
            for name, dsn in dsns.items():  # new sessions: nothing prepared yet, this plan_cache_mode
                conns[name].close()
                conns[name] = psycopg.connect(dsn, autocommit=True)
                conns[name].execute("SELECT set_config('plan_cache_mode', %s, false)", (plan_cache_mode,))
            for conn in conns.values():  # warm the cache and the prepared statement
                for _ in range(50):
                    conn.execute(query, (arg(),), prepare=prepared).fetchall()
            samples: dict[str, list[float]] = {name: [] for name in dsns}
            means: dict[str, list[float]] = {name: [] for name in dsns}
            for r in range(rounds):
                values = [arg() for _ in range(per_round)]
                for name in list(conns) if r % 2 == 0 else list(reversed(conns)):
                    conn, timed = conns[name], []
                    for value in values:
                        started = time.perf_counter()
                        conn.execute(query, (value,), prepare=prepared).fetchall()
                        timed.append((time.perf_counter() - started) * 1000)
                    samples[name] += timed
                    means[name].append(statistics.fmean(timed))
            for name in dsns:
                out[name][label] = {
                    "p50_ms": round(nearest_rank(samples[name], 0.5), 3),
                    "mean_ms": round(statistics.fmean(samples[name]), 3),
                    "p99_ms": round(nearest_rank(samples[name], 0.99), 3),
                    "median_round_mean_ms": round(statistics.median(means[name]), 3),
                }
    finally:
        for conn in conns.values():
            conn.close()
    return out


def run_convert(dsn: str, rows: int, sessions: int) -> dict[str, Any]:
    from memcli.db import connect
    from memcli.partitions.convert import convert

    conn = connect(dsn, autocommit=True)
    try:
        with AppLoad(dsn, rows, sessions) as app:
            started = time.perf_counter()
            result = convert(conn, ["conversation_memory"])
            elapsed = time.perf_counter() - started
            time.sleep(0.5)
    finally:
        conn.close()
    table = result.tables[0]
    return {
        "status": table.status,
        "rows_copied": table.rows_copied,
        "rows_caught_up": table.rows_caught_up,
        "seconds": round(elapsed, 2),
        "swap_lock_ms": round(table.lock_ms, 1),
        "writer": app.inserts.summary(),
        "updater": app.updates.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="conversation_memory rows (default 2M)")
    parser.add_argument("--sessions", type=int, default=40_000, help="sessions (default 40k)")
    parser.add_argument("--inserts", type=int, default=20_000, help="single-row inserts timed (default 20k)")
    parser.add_argument(
        "--rounds", type=int, default=10, help="rounds the layouts' inserts and reads alternate in"
    )
    parser.add_argument("--reads", type=int, default=2_000, help="reads timed per query (default 2000)")
    parser.add_argument(
        "--only",
        default=None,
        help="run only these of the three parts, comma-separated: cleanup, rw, convert (e.g. cleanup,rw)",
    )
    parser.add_argument(
        "--fast-load",
        action="store_true",
        help="load the partitioned rows with the unique-key trigger off (load times then do not compare)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="keep the temporary server folder")
    args = parser.parse_args(argv)
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    if not parts <= set(PARTS):
        parser.error(f"--only: one or more of {', '.join(PARTS)}")
    args.parts = parts

    def say(text: str) -> None:
        if not args.json:
            print(text, file=sys.stderr, flush=True)

    import psycopg
    from psycopg import sql

    from memcli.partitions.layout import RELEASE_TRIGGER, UNIQUE_TRIGGER

    report: dict[str, Any] = {"rows": args.rows, "sessions": args.sessions}
    with embedded_server(
        "memcli-partition-bench-", keep=args.keep, announce=lambda home: say(f"embedded Postgres in {home}")
    ) as server:
        sources = {}
        for layout in ("plain", "partitioned") if parts & {"cleanup", "rw"} else ():
            dsn = server.create_database(f"src_{layout}")
            migrate(dsn, layout == "partitioned")
            say(f"loading {args.rows:,} memories, {layout} ...")
            started = time.perf_counter()
            load(dsn, args.rows, args.sessions, layout == "partitioned", fast=args.fast_load)
            report[f"load_seconds_{layout}"] = round(time.perf_counter() - started, 1)
            sources[layout] = dsn

        for layout in ("plain", "partitioned") if "cleanup" in parts else ():
            clone = server.create_database(
                f"cleanup_{layout}", template=f"src_{layout}", strategy="FILE_COPY"
            )
            say(f"cleanup, {layout}, with the application writing ...")
            report[f"cleanup_{layout}"] = run_cleanup(clone, args.rows, args.sessions)

        if "rw" in parts:
            clones = {
                layout: server.create_database(f"rw_{layout}", template=f"src_{layout}", strategy="FILE_COPY")
                for layout in ("plain", "partitioned")
            }
            # the partitioned layout's unique-key trigger, measured apart
            clones["partitioned_without_unique_trigger"] = server.create_database(
                "rw_nounique", template="src_partitioned", strategy="FILE_COPY"
            )
            with psycopg.connect(clones["partitioned_without_unique_trigger"], autocommit=True) as conn:
                for trigger in (UNIQUE_TRIGGER, RELEASE_TRIGGER):
                    conn.execute(
                        sql.SQL("ALTER TABLE conversation_memory DISABLE TRIGGER {}").format(
                            sql.Identifier(trigger)
                        )
                    )
            say(f"inserts, the layouts taking turns over {args.rounds} rounds ...")
            report["inserts"] = run_inserts(clones, args.inserts, args.rounds)
            say(f"reads, the layouts taking turns over {args.rounds} rounds ...")
            reads = run_reads(
                {layout: clones[layout] for layout in ("plain", "partitioned")},
                args.sessions,
                args.reads,
                args.rounds,
            )
            for layout in ("plain", "partitioned"):
                report[f"reads_{layout}"] = reads[layout]

        if "convert" not in parts:
            return _finish(report, args)
        half = args.rows // 2
        convert_dsn = server.create_database("convert_plain")
        migrate(convert_dsn, False)
        say(f"loading {half:,} memories to convert ...")
        load(convert_dsn, half, args.sessions, False)
        say("partition convert with the application writing ...")
        report["convert"] = run_convert(convert_dsn, half, args.sessions)
    return _finish(report, args)


def _finish(report: dict[str, Any], args: argparse.Namespace) -> int:
    targets: dict[str, bool] = {}
    if "cleanup" in args.parts:
        plain, part = report["cleanup_plain"], report["cleanup_partitioned"]
        report["cleanup_speedup"] = round(plain["seconds"] / part["seconds"], 1) if part["seconds"] else None
        targets["drop_10x_faster"] = (report["cleanup_speedup"] or 0) >= TARGET_SPEEDUP
        targets["writer_p99_under_50ms_during_drop"] = part["writer"]["p99_ms"] < TARGET_P99_MS
    if "rw" in args.parts:
        _rw_ratios(report)
        targets["within_10_percent"] = all(v <= TARGET_RATIO for v in report["ratios"].values())
    report["targets"] = targets
    if args.json or args.parts != set(PARTS):
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0 if all(targets.values()) else 1


def _rw_ratios(report: dict[str, Any]) -> None:
    """Partitioned cost / plain cost: inserts by the median round's rate, reads by the median round's mean."""
    ins, rw_p, rw_q = report["inserts"], report["reads_plain"], report["reads_partitioned"]
    report["insert_server_cpu_ratio"] = round(
        ins["partitioned"]["server_cpu_us_per_insert"] / ins["plain"]["server_cpu_us_per_insert"], 3
    )
    report["ratios"] = {
        "insert_throughput": round(
            ins["plain"]["inserts_per_second"] / ins["partitioned"]["inserts_per_second"], 3
        ),
        **{
            label: round(rw_q[label]["median_round_mean_ms"] / rw_p[label]["median_round_mean_ms"], 3)
            for label in rw_p
        },
    }


def _print(r: dict[str, Any]) -> None:
    p, q = r["cleanup_plain"], r["cleanup_partitioned"]
    print(
        f"{r['rows']:,} conversation memories, {p['deleted']:,} expired; loaded by one INSERT ... SELECT in "
        f"{r['load_seconds_plain']} s plain, {r['load_seconds_partitioned']} s partitioned"
    )
    print(f"{'cleanup':32} {'plain (batched delete)':>24} {'partitioned (drop)':>20}")
    for label, key in (("wall time s", "seconds"), ("longest lock held ms", "longest_lock_ms")):
        print(f"{label:32} {p[key]:>24} {q[key]:>20}")
    for who in ("writer", "updater"):
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            print(f"{'app ' + who + ' ' + stat:32} {p[who][stat]:>24} {q[who][stat]:>20}")
    print(f"speed-up {r['cleanup_speedup']}x (target >= {TARGET_SPEEDUP:g}x)")
    if q.get("key_sweep"):
        k = q["key_sweep"]
        print(
            f"then the weekly key sweep: {k['released']:,} keys of dropped rows in {k['seconds']} s "
            f"(no lock on the memory table), app writer p99 {k['writer']['p99_ms']} ms"
        )
    ins, a, b = r["inserts"], r["reads_plain"], r["reads_partitioned"]
    print(f"{'inserts / reads':32} {'plain':>24} {'partitioned':>20}")
    print(
        f"{'single-row inserts/s (median)':32} {ins['plain']['inserts_per_second']:>24} "
        f"{ins['partitioned']['inserts_per_second']:>20}"
    )
    print(
        f"{'server CPU us per insert':32} {ins['plain']['server_cpu_us_per_insert']:>24} "
        f"{ins['partitioned']['server_cpu_us_per_insert']:>20}"
    )
    nou = ins["partitioned_without_unique_trigger"]
    print(
        f"{'  ... without unique-key trigger':32} {'':>24} "
        f"{str(nou['inserts_per_second']) + '/s, ' + str(nou['server_cpu_us_per_insert']) + ' us':>20}"
    )
    for q_ in a:
        for stat in ("p50_ms", "mean_ms", "p99_ms", "median_round_mean_ms"):
            print(f"{q_ + ' ' + stat:32} {a[q_][stat]:>24} {b[q_][stat]:>20}")
    print(f"ratios (partitioned cost / plain, target <= {TARGET_RATIO}): {r['ratios']}")
    c = r["convert"]
    print(
        f"convert {c['rows_copied']:,} rows: {c['seconds']} s, swap lock {c['swap_lock_ms']} ms, "
        f"caught up {c['rows_caught_up']:,}; "
        f"app insert p99/max {c['writer']['p99_ms']}/{c['writer']['max_ms']} ms, "
        f"update p99/max {c['updater']['p99_ms']}/{c['updater']['max_ms']} ms"
    )
    print(f"targets: {r['targets']}")


if __name__ == "__main__":
    sys.exit(main())
