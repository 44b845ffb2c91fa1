"""An HNSW build under the server's default maintenance_work_mem (64 MB), next to a running vector_bench.

vector_bench.py builds memcli's index (memory sized to the graph) and only afterwards the server-default
one. On a busy machine the second build can be hours away, so this script attaches to the benchmark's
server while memcli's build runs, copies ``semantic_memory``'s vectors into a scratch table, and builds the
same index there with the server defaults (64 MB, 2 parallel workers) for ``--limit`` seconds, printing
pg_stat_progress_create_index every minute. Both builds then share the machine: their progress at the
same wall time compares their speed under the same load.

Usage (the DSN is printed by ``vector_bench.py`` in its server folder's socket path):
    nice -n 10 .venv/bin/python benchmarks/vector_default_build.py \
        "host=/tmp/memcli-vector-bench-XXXX/pgdata dbname=vector_bench user=postgres" --m 24 --ef 128
"""

from __future__ import annotations

import argparse
import time

SCRATCH = "vector_default_build"


def main(argv: list[str] | None = None) -> int:
    import psycopg

    from memcli.vector_index import read_progress

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dsn")
    parser.add_argument("--m", type=int, default=24)
    parser.add_argument("--ef", type=int, default=128)
    parser.add_argument("--limit", type=float, default=900.0, help="seconds before the build is cancelled")
    args = parser.parse_args(argv)

    with (
        psycopg.connect(args.dsn, autocommit=True) as conn,
        psycopg.connect(args.dsn, autocommit=True) as mon,
    ):
        started = time.perf_counter()
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        conn.execute(f"CREATE TABLE {SCRATCH} AS SELECT id, embedding_vector FROM semantic_memory")
        rows = conn.execute(f"SELECT count(*) FROM {SCRATCH}").fetchone()[0]  # type: ignore[index]
        print(f"copied {rows:,} vectors in {time.perf_counter() - started:.0f} s", flush=True)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET maintenance_work_mem = '64MB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        pid = conn.info.backend_pid
        import threading

        error: list[BaseException] = []

        def build() -> None:
            try:
                conn.execute(
                    f"CREATE INDEX {SCRATCH}_idx ON {SCRATCH} "
                    "USING hnsw (embedding_vector vector_cosine_ops) "
                    f"WITH (m = {args.m}, ef_construction = {args.ef})"
                )
            except BaseException as exc:
                error.append(exc)

        thread = threading.Thread(target=build)
        started = time.perf_counter()
        thread.start()
        next_report, done, phase = 0.0, 0, "?"
        while thread.is_alive():
            thread.join(5)
            elapsed = time.perf_counter() - started
            state = read_progress(mon, pid)
            if state:
                phase, done = state[0], state[1]
            if elapsed >= next_report:
                print(
                    f"[{time.strftime('%H:%M:%S')}] {elapsed:5.0f} s: {phase} {done:,}/{rows:,}", flush=True
                )
                next_report += 60
            if elapsed > args.limit:
                mon.execute("SELECT pg_cancel_backend(%s)", (pid,))
                thread.join()
                break
        elapsed = time.perf_counter() - started
        if error:
            print(
                f"server default (64 MB, 2 workers): stopped after {elapsed:.0f} s in phase '{phase}' at "
                f"{done:,}/{rows:,} tuples ({done / rows:.0%})"
            )
        else:
            print(f"server default (64 MB, 2 workers): built in {elapsed:.0f} s")
        if notices:
            print(f"NOTICE: {notices[0]}")
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
