"""Search speed and recall at 100k semantic memories, and what a whole ``memcli search`` process costs.

One run, against a throw-away embedded Postgres (pgvector) in a temporary MEMCLI_HOME, migrated with
memcli.migrations:

1. bulk-loads N semantic memories with COPY (binary), then builds the HNSW index the migration defines;
2. times the search query as memcli runs it (memcli.search.search with a precomputed query vector:
   SET LOCAL ef_search / iterative scan, the ORDER BY ... LIMIT subquery, the similarity floor, the access
   update) — indexed, filtered by content type (~1/3 of rows) and by session (~0.1%), and exact;
3. recall@10 of each indexed variant against the exact scan of the same query (the ground truth);
4. times whole ``memcli search`` processes (subprocess, as an operator runs it): --like (no model), the
   hashing embedder, the local all-MiniLM-L6-v2 model, and splits the time into interpreter start,
   imports (python -X importtime), model load + embedding, and the query.

The vectors are SYNTHETIC: unit vectors drawn from a two-level Gaussian mixture (topics, sub-topics, noise),
a stand-in for the clustered geometry of real sentence embeddings. They are fine for index speed and recall
figures; they say nothing about the quality of any model. Uniformly random vectors (no structure at all)
are the worst case for any graph index; ``--uniform`` measures that instead.

Usage:
    .venv/bin/python benchmarks/search_bench.py                     # 100k rows, with the local model
    .venv/bin/python benchmarks/search_bench.py --rows 20000 --no-model
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from harness import embedded_server, migrate, percentile

DIM = 384
TOP_K = 10
TARGET_P50_MS = 5.0
TARGET_RECALL = 0.95
CONTENT_TYPES = ("conversation", "business_info", "user_preference")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class FixedEmbedder:
    """Hands memcli.search a precomputed query vector, so the timing is the database's, not a model's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dimension = DIM
        self.vector: np.ndarray = np.zeros(DIM, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.vector.reshape(1, -1)


def synthetic_vectors(rng: np.random.Generator, n: int, centers: Any, uniform: bool) -> np.ndarray:
    if uniform:
        out = rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        topics, subtopics = centers
        t = rng.integers(0, topics.shape[0], n)
        s = rng.integers(0, subtopics.shape[1], n)
        out = topics[t] + 0.7 * subtopics[t, s] + 0.45 * rng.standard_normal((n, DIM), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32)


def load(dsn: str, vectors: np.ndarray, sessions: int) -> dict[str, float]:
    """COPY the rows with the HNSW index dropped, then build it (faster than growing it row by row)."""
    import psycopg
    from pgvector.psycopg import register_vector

    timings: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        indexdef = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_semantic_memory_vector'"
        ).fetchone()[0]
        conn.execute("DROP INDEX idx_semantic_memory_vector")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY semantic_memory"
                " (session_id, content_type, content_text, embedding_vector, embedding_model)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["text", "text", "text", "vector", "text"])
            for i, vector in enumerate(vectors):
                copy.write_row(
                    (
                        f"session-{i % sessions}",
                        CONTENT_TYPES[i % 3],
                        f"synthetic memory {i} about topic {i % 997}",
                        vector,
                        MINILM,
                    )
                )
        conn.commit()
        timings["copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute(indexdef)
        conn.commit()
        timings["index_s"] = time.perf_counter() - started
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE semantic_memory")
        # The first query after a restart reads the index from disk; an operator's steady state is warm.
        conn.execute("SELECT count(*) FROM semantic_memory")
        conn.execute(
            "UPDATE memory_settings SET value = to_jsonb(%s::text) WHERE key = 'embedding.model'", (MINILM,)
        )
    return timings


def run_queries(
    conn: Any, embedder: FixedEmbedder, queries: np.ndarray, *, exact: bool = False, **options: Any
) -> tuple[list[list[uuid.UUID]], list[float], list[float]]:
    from memcli.search import search

    ids, query_ms, total_ms = [], [], []
    for vector in queries:
        embedder.vector = vector
        started = time.perf_counter()
        result = search(conn, embedder, "q", top_k=TOP_K, min_similarity=-1.0, exact=exact, **options)
        total_ms.append((time.perf_counter() - started) * 1000)
        query_ms.append(result.timing["query_ms"])
        ids.append([hit.id for hit in result.hits])
    return ids, query_ms, total_ms


def recall(found: list[list[uuid.UUID]], truth: list[list[uuid.UUID]]) -> float:
    scores = [len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(scores))


def explain(conn: Any, vector: np.ndarray, where: str = "", exact: bool = False) -> str:
    from memcli.search import _tune_index_scan, _vector_query
    from memcli.semantic import use_vectors

    use_vectors(conn)
    with conn.transaction():
        _tune_index_scan(conn, TOP_K)
        plan = conn.execute(
            "EXPLAIN " + _vector_query(where, exact).as_string(conn),
            {"q": vector, "k": TOP_K, "min": -1.0, "f_type": "business_info"},
        ).fetchall()
    text = "\n".join(row[0] for row in plan)
    if "idx_semantic_memory_vector" in text:
        return "HNSW index scan"
    if "Parallel Seq Scan" in text:
        return "parallel sequential scan"
    if "Seq Scan" in text:
        return "sequential scan"
    return text.splitlines()[0]


def time_process(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[float], dict[str, Any]]:
    wall, last = [], {}
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{argv[1:4]} failed ({done.returncode}): {done.stderr.strip()}")
        last = json.loads(done.stdout) if done.stdout.strip() else {}
    return wall, last


def import_breakdown(argv: list[str], env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """Total import time of a command and its heaviest top-level packages (python -X importtime)."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True, check=True
    )
    per_package: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", line)
        if match and len(match.group(3)) == 1:  # outermost imports only: their times include the nested ones
            package = match.group(4).split(".")[0]
            per_package[package] = per_package.get(package, 0.0) + int(match.group(2)) / 1000
    heaviest = sorted(per_package.items(), key=lambda item: item[1], reverse=True)[:6]
    return sum(per_package.values()), heaviest


def fmt(values: Sequence[float]) -> str:
    return f"p50 {percentile(values, 50):8.2f} ms   p95 {percentile(values, 95):8.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=1000, help="distinct sessions (filter selectivity)")
    parser.add_argument("--process-runs", type=int, default=10)
    parser.add_argument("--model-runs", type=int, default=5)
    parser.add_argument("--no-model", action="store_true", help="skip the local-model process timings")
    parser.add_argument("--uniform", action="store_true", help="uniformly random vectors (worst case)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    import psycopg

    from memcli.search import default_ef_search

    rng = np.random.default_rng(args.seed)
    n_topics = max(10, args.rows // 500)
    centers = (
        rng.standard_normal((n_topics, DIM), dtype=np.float32),
        rng.standard_normal((n_topics, 20, DIM), dtype=np.float32),
    )
    bench_started = time.perf_counter()
    with embedded_server("memcli-search-bench-") as server:
        dsn = server.create_database("search_bench")
        migrate(dsn, embedding_dim=DIM)

        vectors = synthetic_vectors(rng, args.rows, centers, args.uniform)
        queries = synthetic_vectors(rng, args.queries, centers, args.uniform)
        loaded = load(dsn, vectors, args.sessions)
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            pgvector = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]
        kind = "uniform random" if args.uniform else "synthetic clustered (Gaussian mixture)"
        print(
            f"memcli search benchmark — Postgres {version}, pgvector {pgvector}, embedded server, "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"{args.rows:,} semantic memories, {DIM} dims, {kind} unit vectors (NOT a model's); top-k {TOP_K}"
        )
        print(
            f"load: COPY {loaded['copy_s']:.1f} s ({args.rows / loaded['copy_s']:,.0f} rows/s), "
            f"HNSW build {loaded['index_s']:.1f} s (m=16, ef_construction=64)"
        )
        print()

        fixed = FixedEmbedder(MINILM)
        one_type = {"content_type": "business_info"}
        one_session = {"session": "session-42"}
        with psycopg.connect(dsn, autocommit=True) as conn:
            plan_all = explain(conn, queries[0])
            plan_type = explain(conn, queries[0], " AND content_type = %(f_type)s")
            plan_exact = explain(conn, queries[0], exact=True)
            run_queries(conn, fixed, queries[:20])  # warm the caches
            truth, exact_q, _ = run_queries(conn, fixed, queries, exact=True)
            found, idx_q, idx_t = run_queries(conn, fixed, queries)
            truth_type, _, _ = run_queries(conn, fixed, queries, exact=True, **one_type)
            found_type, type_q, _ = run_queries(conn, fixed, queries, **one_type)
            truth_sess, _, _ = run_queries(conn, fixed, queries, exact=True, **one_session)
            found_sess, sess_q, _ = run_queries(conn, fixed, queries, **one_session)
            sweep = {}
            for ef in (40, 100, 400):
                sweep_ids, sweep_q, _ = run_queries(conn, fixed, queries, ef_search=ef, record_access=False)
                sweep[ef] = (percentile(sweep_q, 50), recall(sweep_ids, truth))
            _, _, no_access_t = run_queries(conn, fixed, queries, record_access=False)
        r_all, r_type, r_sess = (
            recall(found, truth),
            recall(found_type, truth_type),
            recall(found_sess, truth_sess),
        )
        print(f"search query (memcli.search, SQL only; {args.queries} queries, warm cache)")
        print(f"  indexed, no filter          {fmt(idx_q)}   recall@10 {r_all:.3f}   [{plan_all}]")
        print(f"  indexed, one content type   {fmt(type_q)}   recall@10 {r_type:.3f}   [{plan_type}]")
        print(f"  indexed, one session (0.1%) {fmt(sess_q)}   recall@10 {r_sess:.3f}")
        print(f"  exact (--exact), no filter  {fmt(exact_q)}   (ground truth)   [{plan_exact}]")
        print(f"  library call, indexed, with the access update:    {fmt(idx_t)}")
        print(f"  library call, indexed, without the access update: {fmt(no_access_t)}")
        sweep[default_ef_search(TOP_K)] = (percentile(idx_q, 50), r_all)
        print(
            "  hnsw.ef_search sweep (p50 ms / recall@10): "
            + ", ".join(f"{ef}: {ms:.2f} / {r:.3f}" for ef, (ms, r) in sorted(sweep.items()))
            + f"   (memcli uses {default_ef_search(TOP_K)} for top-k {TOP_K})"
        )
        speedup = percentile(exact_q, 50) / percentile(idx_q, 50)
        print(f"  index vs exact: {speedup:.0f}x faster at p50")
        ok = percentile(idx_q, 50) < TARGET_P50_MS and r_all >= TARGET_RECALL
        print(
            f"  target p50 < {TARGET_P50_MS} ms with recall@10 >= {TARGET_RECALL}: "
            f"{'MET' if ok else 'NOT MET'} ({percentile(idx_q, 50):.2f} ms, {r_all:.3f})"
        )
        print()

        # -- whole processes ----------------------------------------------------------------------------
        python = sys.executable
        memcli = [python, "-m", "memcli", "--dsn", dsn]
        env = {**os.environ, "MEMCLI_HOME": str(server.home)}
        env.pop("MEMCLI_EMBEDDER", None)
        with psycopg.connect(dsn) as conn:
            some_id = str(conn.execute("SELECT id FROM semantic_memory LIMIT 1").fetchone()[0])
        startup, _ = time_process([python, "-c", "pass"], env, args.process_runs)
        help_wall, _ = time_process([python, "-c", "import memcli.cli.app"], env, args.process_runs)
        print(f"whole `memcli search` process ({args.process_runs} runs each; wall time of the subprocess)")
        print(f"  python -c pass (interpreter only)      {fmt(startup)}")
        print(f"  import memcli.cli.app (CLI start-up)   {fmt(help_wall)}")
        like_wall, like_json = time_process(
            [*memcli, "search", "--like", some_id, "--min-similarity", "-1", "--json"], env, args.process_runs
        )
        print(
            f"  search --like ID (no model)            {fmt(like_wall)}   "
            f"query {like_json['timing']['query_ms']:.2f} ms"
        )

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE memory_settings SET value = '\"hashing-v1\"' WHERE key = 'embedding.model'")
        hash_wall, hash_json = time_process(
            [
                *memcli,
                "search",
                "vegetarian dishes",
                "--embedder",
                "hashing",
                "--min-similarity",
                "-1",
                "--json",
            ],
            env,
            args.process_runs,
        )
        t = hash_json["timing"]
        print(
            f"  search 'text' --embedder hashing       {fmt(hash_wall)}   "
            f"embed {t['embed_ms']:.1f} ms, query {t['query_ms']:.2f} ms"
        )
        model_wall: list[float] = []
        if not args.no_model:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE memory_settings SET value = to_jsonb(%s::text) WHERE key = 'embedding.model'",
                    (MINILM,),
                )
            model_wall, model_json = time_process(
                [
                    *memcli,
                    "search",
                    "vegetarian dishes",
                    "--embedder",
                    "local",
                    "--min-similarity",
                    "-1",
                    "--json",
                ],
                env,
                args.model_runs,
            )
            t = model_json["timing"]
            print(
                f"  search 'text' --embedder local (MiniLM, {args.model_runs} runs) {fmt(model_wall)}   "
                f"import+load+embed {t['embed_ms']:.0f} ms, query {t['query_ms']:.2f} ms"
            )
            probe = subprocess.run(
                [
                    python,
                    "-c",
                    "import time; t=time.perf_counter(); import torch, sentence_transformers; "
                    "t1=time.perf_counter(); from memcli.embeddings.local import LocalEmbedder; "
                    "e=LocalEmbedder().load(); t2=time.perf_counter(); e.embed(['vegetarian dishes']); "
                    "t3=time.perf_counter(); print((t1-t)*1000, (t2-t1)*1000, (t3-t2)*1000)",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            imp, load_ms, embed_ms = (float(x) for x in probe.stdout.split())
            print(
                f"    of which: import torch + sentence_transformers {imp:.0f} ms, "
                f"model load {load_ms:.0f} ms, embedding one query {embed_ms:.1f} ms"
            )
        print()
        print("what dominates the whole-process time (python -X importtime of the same commands)")
        hashing_argv = [*memcli, "search", "vegetarian dishes", "--embedder", "hashing", "--json"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE memory_settings SET value = '\"hashing-v1\"' WHERE key = 'embedding.model'")
        total, heaviest = import_breakdown(hashing_argv, env)
        print(
            f"  hashing: imports {total:.0f} ms (-X importtime inflates it; process p50 "
            f"{percentile(hash_wall, 50):.0f} ms): " + ", ".join(f"{name} {ms:.0f}" for name, ms in heaviest)
        )
        if model_wall:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE memory_settings SET value = to_jsonb(%s::text) WHERE key = 'embedding.model'",
                    (MINILM,),
                )
            total, heaviest = import_breakdown(
                [*memcli, "search", "vegetarian dishes", "--embedder", "local"], env
            )
            print(
                f"  local:   imports {total:.0f} ms (-X importtime inflates it; process p50 "
                f"{percentile(model_wall, 50):.0f} ms): "
                + ", ".join(f"{name} {ms:.0f}" for name, ms in heaviest)
            )
            share = (percentile(model_wall, 50) - percentile(hash_wall, 50)) / percentile(model_wall, 50)
            print(
                f"  with the local model, {share:.0%} of the process is importing torch/transformers "
                "and loading the model; the database query is a few ms"
            )
        print(f"\nbenchmark finished in {time.perf_counter() - bench_started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
