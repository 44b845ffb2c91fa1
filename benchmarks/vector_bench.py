"""HNSW parameters, build memory and vector types against exact search, on synthetic or real embeddings.

One run, against a throw-away embedded Postgres (pgvector) migrated with memcli.migrations:

1. loads N rows into semantic_memory with COPY (the vector index dropped), either SYNTHETIC clustered unit
   vectors (search_bench's Gaussian mixture, the worst case memcli measures) or REAL all-MiniLM-L6-v2
   embeddings of the demo generator's texts (``--real``, cached outside git by benchmarks/real_vectors.py);
2. computes the exact top-10 of every query (a full scan: the ground truth, timed as the baseline);
3. for each ``--configs m:ef_construction``: builds the index as memcli does (CREATE INDEX CONCURRENTLY,
   maintenance_work_mem sized by memcli.vector_index.plan_build, parallel workers), then sweeps
   hnsw.ef_search: recall@10 and query p50/p95 at each;
4. memcli's own search call (memcli.search.search with the per-query ef_search) on the last index;
5. ``--halfvec``: the same index on a halfvec copy of the column (half the bytes per dimension): build
   time, size, recall against the full-precision exact answer, p50;
6. ``--default-build``: builds the last config again under the server's defaults (64 MB
   maintenance_work_mem), stopped after ``--default-limit`` seconds, reporting how far it got
   (pg_stat_progress_create_index).

``--home DIR`` keeps the embedded server's data folder in DIR. A later run with the same ``--home`` and
``--rows`` reuses the loaded table and the built index (named as memcli names it): it skips loading and
building and measures the exact baseline, the ef_search sweep and memcli's search again, so latency can be
re-measured when the machine is quiet without a rebuild. Every measurement line states the load average.
``--shared-buffers 4GB`` restarts the server with shared_buffers that hold the index (the embedded server's
default is 128 MB), as an operator would configure it.

Usage (long runs niced; the machine is shared):
    nice -n 10 .venv/bin/python benchmarks/vector_bench.py --rows 200000 --configs 16:64,24:128,32:128
    nice -n 10 .venv/bin/python benchmarks/vector_bench.py --real --rows 100000 --halfvec
    nice -n 10 .venv/bin/python benchmarks/vector_bench.py --rows 1000000 --configs 24:128 --default-build
    nice -n 10 .venv/bin/python benchmarks/vector_bench.py --rows 1000000 --home ~/.cache/memcli-bench/1m
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import embedded_server, migrate, percentile

from memcli.schema import names

DIM = names.DEFAULT_EMBEDDING_DIMENSION
TOP_K = 10
TARGET_RECALL = 0.95
TARGET_P50_MS = 10.0
SERVER_DEFAULT_MWM_MB = 64
CONTENT_TYPES = names.CONTENT_TYPES
MINILM = names.DEFAULT_EMBEDDING_MODEL


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def vectors_for(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.real:
        from real_vectors import load_or_build

        _, vectors = load_or_build(args.rows, args.queries, partial=args.partial)
        rows = len(vectors) - args.queries
        return vectors[:rows], vectors[rows:], "real all-MiniLM-L6-v2 (demo texts)"
    from search_bench import synthetic_vectors

    rng = np.random.default_rng(args.seed)
    n_topics = max(10, args.rows // 500)
    centers = (
        rng.standard_normal((n_topics, DIM), dtype=np.float32),
        rng.standard_normal((n_topics, 20, DIM), dtype=np.float32),
    )
    base = synthetic_vectors(rng, args.rows, centers, False)
    queries = synthetic_vectors(rng, args.queries, centers, False)
    return base, queries, "synthetic clustered (Gaussian mixture)"


def load(dsn: str, vectors: np.ndarray) -> float:
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX idx_semantic_memory_vector")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY semantic_memory (session_id, content_type, content_text, embedding_vector, "
                "embedding_model)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["text", "text", "text", "vector", "text"])
            for i, vector in enumerate(vectors):
                copy.write_row((f"session-{i % 1000}", CONTENT_TYPES[i % 3], f"memory {i}", vector, MINILM))
        conn.commit()
        seconds = time.perf_counter() - started
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE semantic_memory")
        conn.execute(
            "UPDATE memory_settings SET value = to_jsonb(%s::text) WHERE key = 'embedding.model'", (MINILM,)
        )
    return seconds


def literal(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def top_k(
    conn: Any, queries: list[str], *, column: str, cast: str, exact: bool, ef: int | None = None
) -> tuple[list[list[Any]], list[float]]:
    """Ids of the top-k of each query and each query's time (ms), as memcli's index scan sets it up."""
    order = f"({column} <=> %s::{cast}) + 0" if exact else f"{column} <=> %s::{cast}"
    statement = f"SELECT id FROM semantic_memory ORDER BY {order} LIMIT {TOP_K}"
    ids, times = [], []
    for q in queries:
        with conn.transaction():
            if ef is not None:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            started = time.perf_counter()
            rows = conn.execute(statement, (q,)).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        ids.append([r[0] for r in rows])
    return ids, times


def recall(found: list[list[Any]], truth: list[list[Any]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]))


def build(
    dsn: str, name: str, kind: str, m: int, efc: int, rows: int, *, mwm_mb: int | None, limit: float | None
) -> dict[str, Any]:
    """Build one index as memcli does; ``mwm_mb`` overrides memcli's sizing (server default comparison)."""
    import psycopg

    from memcli.vector_index import build_statement, plan_build, run_with_progress

    plan = plan_build(rows, DIM, m=m, ef_construction=efc, cap_mb=16_384, column_type=kind)
    memory = mwm_mb if mwm_mb is not None else plan.maintenance_work_mem_mb
    column = "embedding_vector" if kind == "vector" else "embedding_half"
    statement = build_statement(name, kind, m, efc, column=column)
    outcome: dict[str, Any] = {"name": name, "m": m, "ef_construction": efc, "mwm_mb": memory, "kind": kind}
    outcome["graph_mb_estimate"] = plan.graph_mb
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as monitor:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        started = time.perf_counter()
        last = None
        next_log = 0.0
        try:
            for last in run_with_progress(
                conn,
                monitor,
                statement,
                maintenance_work_mem_mb=memory,
                workers=2,
                poll_s=2.0,
                time_limit_s=limit,
                rows_hint=rows,
            ):
                if last.elapsed_s >= next_log:
                    log(f"  {name}: {last.phase} {last.tuples_done:,}/{last.tuples_total:,}")
                    next_log += 60
            outcome["seconds"] = time.perf_counter() - started
            outcome["finished"] = True
        except TimeoutError:
            outcome["seconds"] = time.perf_counter() - started
            outcome["finished"] = False
            outcome["progress"] = (last.phase, last.tuples_done, last.tuples_total) if last else None
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        outcome["notices"] = notices
        if outcome["finished"]:
            outcome["bytes"] = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    return outcome


DATABASE = "vector_bench"


def with_shared_buffers(server: Any, size: str) -> Any:
    """Restart the embedded server with ``shared_buffers`` of ``size`` (ALTER SYSTEM: kept in --home).

    The embedded server starts with 128 MB; an index of gigabytes then reaches its pages through the OS
    cache on every query. An operator gives Postgres shared_buffers that hold the index; this measures that.
    """
    import psycopg
    from harness import Server
    from psycopg import sql

    from memcli import embedded

    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(size)))
    # pg_ctl restart keeps the options the server was started with (postmaster.opts); the embedded
    # module's stop-then-start does not restart within one process.
    pgserver = embedded._pgserver()
    pgserver.pgexec.pgexec(
        "pg_ctl",
        ("-w", "-D", str(embedded.pgdata_dir(server.home)), "-m", "fast", "restart"),
        bin_path=pgserver.utils.POSTGRES_VERSIONS[pgserver.utils.TARGET_POSTGRES_VERSION],
        user="pgserver" if os.name == "posix" and os.geteuid() == 0 else None,
    )
    state = embedded.status(server.home)
    return Server(server.home, state.dsn)


def reusable(server: Any, rows: int) -> str | None:
    """The DSN of a kept database holding ``rows`` rows and a valid memcli index, else None (a kept
    database that does not match is dropped: this run loads and builds afresh)."""
    import psycopg

    with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            return None
    dsn = server.dsn_for(DATABASE)
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT count(*) FROM semantic_memory").fetchone()[0]
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('idx_semantic_memory_vector')"
        ).fetchone()
    if count == rows and valid and valid[0]:
        return dsn
    with psycopg.connect(server.admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {DATABASE} WITH (FORCE)")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--real", action="store_true", help="real all-MiniLM-L6-v2 embeddings of demo texts")
    parser.add_argument(
        "--partial", action="store_true", help="with --real: the rows embedded so far (fewer than --rows)"
    )
    parser.add_argument("--configs", default="24:128", help="m:ef_construction,... (each built and swept)")
    parser.add_argument("--ef", default="40,64,100,150,200,300,400", help="hnsw.ef_search values to sweep")
    parser.add_argument("--default-build", action="store_true", help="also build under the server default")
    parser.add_argument("--default-limit", type=float, default=900.0, help="seconds before that build stops")
    parser.add_argument("--halfvec", action="store_true", help="also build and measure a halfvec index")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shared-buffers", metavar="SIZE", help="restart the server with this shared_buffers (e.g. 4GB)"
    )
    parser.add_argument(
        "--home", type=Path, help="keep the server's data here; reuse the table and index a run left there"
    )
    args = parser.parse_args(argv)
    configs = [tuple(int(x) for x in c.split(":")) for c in args.configs.split(",")]
    efs = [int(x) for x in args.ef.split(",")]

    import psycopg

    bench_started = time.perf_counter()
    base, queries, kind = vectors_for(args)
    qtext = [literal(q) for q in queries]
    with embedded_server("memcli-vector-bench-", home=args.home) as server:
        if args.shared_buffers:
            server = with_shared_buffers(server, args.shared_buffers)
        dsn = reusable(server, len(base))
        reused = dsn is not None
        if dsn is None:
            dsn = server.create_database(DATABASE)
            migrate(dsn, embedding_dim=DIM)
            log(f"loading {len(base):,} rows")
            copy_s = load(dsn, base)
        else:
            log(f"reusing the table and index kept in {args.home}")
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            shared_buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
            pgvector = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]
            table_mb = conn.execute(
                "SELECT pg_total_relation_size('semantic_memory') / 1048576.0"
            ).fetchone()[0]
            log("exact top-10 (ground truth)")
            top_k(conn, qtext[:5], column="embedding_vector", cast="vector", exact=True)  # warm
            truth, exact_ms = top_k(conn, qtext, column="embedding_vector", cast="vector", exact=True)
            exact_load = load_average()
        print(
            f"memcli vector benchmark — Postgres {version}, pgvector {pgvector}, "
            f"{os.cpu_count()} CPUs (shared), shared_buffers {shared_buffers}"
        )
        print(f"{len(base):,} rows x {DIM} dims, {kind}; {len(qtext)} held-out queries; top-{TOP_K}")
        if reused:
            print(f"table and index reused from {args.home}; table {table_mb:,.0f} MB")
        else:
            print(f"load: COPY {copy_s:.0f} s; table {table_mb:,.0f} MB")
        print(
            f"exact search (ground truth): p50 {percentile(exact_ms, 50):.1f} ms, "
            f"p95 {percentile(exact_ms, 95):.1f} ms ({exact_load})"
        )
        print()

        if reused:
            from memcli.vector_index import INDEX_NAME, index_info

            with psycopg.connect(dsn, autocommit=True) as conn:
                info = index_info(conn)
            assert info is not None
            configs = [(info.m, info.ef_construction)]
            reused_build = {"seconds": 0.0, "mwm_mb": 0, "graph_mb_estimate": 0, "bytes": info.bytes}
            reused_build.update(notices=[], reused=True)
            if args.halfvec or args.default_build:
                print("(--halfvec and --default-build build indexes: skipped on a reused index)")
                args.halfvec = args.default_build = False
        results = []
        for i, (m, efc) in enumerate(configs):
            if reused:
                name, built = INDEX_NAME, reused_build
                print(f"m={m} ef_construction={efc}: index reused, {built['bytes'] / 1048576:,.0f} MB")
            else:
                name = f"bench_hnsw_{m}_{efc}"
                log(f"building {name}")
                built = build(dsn, name, "vector", m, efc, len(base), mwm_mb=None, limit=None)
                print(
                    f"m={m} ef_construction={efc}: build {built['seconds']:.0f} s with maintenance_work_mem "
                    f"{built['mwm_mb']:,} MB (graph estimate {built['graph_mb_estimate']:,} MB), 2 workers; "
                    f"index {built['bytes'] / 1048576:,.0f} MB"
                    + (f"; NOTICE: {built['notices'][0]}" if built["notices"] else "")
                )
            sweep = {}
            with psycopg.connect(dsn, autocommit=True) as conn:
                top_k(conn, qtext[:20], column="embedding_vector", cast="vector", exact=False, ef=100)  # warm
                for ef in efs:
                    found, ms = top_k(
                        conn, qtext, column="embedding_vector", cast="vector", exact=False, ef=ef
                    )
                    sweep[ef] = (recall(found, truth), percentile(ms, 50), percentile(ms, 95))
            print(
                "  ef_search: recall@10 / p50 ms / p95 ms — "
                + "; ".join(f"{ef}: {r:.3f} / {p50:.2f} / {p95:.2f}" for ef, (r, p50, p95) in sweep.items())
                + f" ({load_average()})"
            )
            meeting = [ef for ef, (r, _, _) in sweep.items() if r >= TARGET_RECALL]
            if meeting:
                ef = min(meeting)
                r, p50, _ = sweep[ef]
                ok = p50 <= TARGET_P50_MS
                print(
                    f"  least ef_search with recall@10 >= {TARGET_RECALL}: {ef} ({r:.3f}, "
                    f"p50 {p50:.2f} ms vs "
                    f"exact {percentile(exact_ms, 50):.0f} ms) — target p50 <= {TARGET_P50_MS:g} ms "
                    f"{'MET' if ok else 'NOT MET'}"
                )
            else:
                print(f"  no ef_search in {efs} reaches recall@10 {TARGET_RECALL}")
            results.append((m, efc, name, built, sweep))
            if i < len(configs) - 1:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"DROP INDEX {name}")
        print()

        # memcli's own search call on the final index (per-query ef_search, iterative scan; no access
        # update), before --halfvec rewrites every row of the table.
        from memcli import search as search_module
        from memcli.vector_index import ef_search_for

        with psycopg.connect(dsn, autocommit=True) as conn:
            if name != "idx_semantic_memory_vector":  # kept under memcli's name for a later --home run
                conn.execute(f"ALTER INDEX {name} RENAME TO idx_semantic_memory_vector")
            base_ef = min((ef for ef, (r, _, _) in sweep.items() if r >= TARGET_RECALL), default=max(efs))

            class Fixed:
                name = MINILM
                dimension = DIM
                vector = queries[0]

                def embed(self, texts: Any) -> np.ndarray:
                    return self.vector.reshape(1, -1)

            fixed = Fixed()
            found, ms = [], []
            for q in queries:
                fixed.vector = q
                out = search_module.search(
                    conn,
                    fixed,
                    "q",
                    top_k=TOP_K,
                    min_similarity=-1.0,
                    record_access=False,
                    ef_search=ef_search_for(base_ef, TOP_K),
                )
                found.append([h.id for h in out.hits])
                ms.append(out.timing["query_ms"])
            r = recall(found, truth)
            met = r >= TARGET_RECALL and percentile(ms, 50) <= TARGET_P50_MS
            print(
                f"memcli.search (ef_search {ef_search_for(base_ef, TOP_K)}): recall@10 {r:.3f}, query p50 "
                f"{percentile(ms, 50):.2f} ms, p95 {percentile(ms, 95):.2f} ms; exact p50 "
                f"{percentile(exact_ms, 50):.0f} ms — target recall >= {TARGET_RECALL} with p50 <= "
                f"{TARGET_P50_MS:g} ms: {'MET' if met else 'NOT MET'} ({load_average()})"
            )
        print()

        m, efc, name, built, sweep = results[-1]
        if args.halfvec:
            with psycopg.connect(dsn, autocommit=True) as conn:
                log("halfvec copy of the column")
                conn.execute(f"ALTER TABLE semantic_memory ADD COLUMN embedding_half halfvec({DIM})")
                conn.execute("UPDATE semantic_memory SET embedding_half = embedding_vector::halfvec")
                conn.execute("VACUUM ANALYZE semantic_memory")
            half = build(dsn, f"bench_half_{m}_{efc}", "halfvec", m, efc, len(base), mwm_mb=None, limit=None)
            hsweep = {}
            with psycopg.connect(dsn, autocommit=True) as conn:
                top_k(conn, qtext[:20], column="embedding_half", cast="halfvec", exact=False, ef=100)
                for ef in efs:
                    found, ms = top_k(
                        conn, qtext, column="embedding_half", cast="halfvec", exact=False, ef=ef
                    )
                    hsweep[ef] = (recall(found, truth), percentile(ms, 50), percentile(ms, 95))
            print(
                f"halfvec vs vector (m={m}, ef_construction={efc}; "
                "recall against the full-precision exact top-10)"
            )
            print(f"  {'':8} {'build s':>8} {'index MB':>9}  recall@10 / p50 ms per ef_search")
            for label, b, s in (("vector", built, sweep), ("halfvec", half, hsweep)):
                cells = "; ".join(f"{ef}: {r:.3f} / {p50:.2f}" for ef, (r, p50, _) in s.items())
                print(f"  {label:8} {b['seconds']:8.0f} {b['bytes'] / 1048576:9.0f}  {cells}")
            print()

        if args.default_build:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP INDEX IF EXISTS bench_half_{m}_{efc}")
            log("server-default build")
            default = build(
                dsn,
                f"bench_default_{m}_{efc}",
                "vector",
                m,
                efc,
                len(base),
                mwm_mb=SERVER_DEFAULT_MWM_MB,
                limit=args.default_limit,
            )
            line = (
                f"build m={m} ef_construction={efc}: memcli sizing {built['seconds']:.0f} s "
                f"({built['mwm_mb']:,} MB)"
            )
            if default["finished"]:
                line += f"; server default (64 MB) {default['seconds']:.0f} s"
            else:
                phase, done, total = default["progress"] or ("?", 0, 0)
                line += (
                    f"; server default (64 MB) stopped after {default['seconds']:.0f} s "
                    f"in phase '{phase}' at "
                    f"{done:,}/{total:,} tuples ({done / max(total, 1):.0%})"
                )
            if default["notices"]:
                line += f"; NOTICE: {default['notices'][0]}"
            print(line)
            print()

    print(f"\nbenchmark wall time {time.perf_counter() - bench_started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
