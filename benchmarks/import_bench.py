"""Import and re-embed speed against their baselines, measured in the same run.

Import: for each source layout, ROWS source rows are built in a source database (the layouts' test DDL,
tests/legacy/*.sql; JSON Lines in a file) and imported with ``memcli import`` into a migrated database.
The baseline is a raw ``COPY`` of exactly the rows the import wrote (read back from the target) into a fresh
copy of the same migrated database: same tables, same indexes, same triggers. Target: import throughput at
least half of the raw COPY's. The CPU seconds of each side are printed too (the import's Python, its target
and source server processes; the raw COPY's server process): on a shared machine they move far less than
the wall times.

Re-embed: on the Mumble import's database, the new embedder alone embeds every stored text (baseline), then
``memcli reembed`` moves the database to it. The backfill (embed + write) is compared with the embedder
alone (target at least 80%); the concurrent index build and the swap are reported apart. A separate process
searches with the old model at a steady rate (SEARCH_RATE a second, as an application would; the same
traffic runs while the embedder alone is timed): p99 latency during the re-embed against before it (target
at most 2x).

Usage (under nice: the machine is shared):
    nice -n 10 .venv/bin/python benchmarks/import_bench.py                       # 100k rows per layout
    nice -n 10 .venv/bin/python benchmarks/import_bench.py --rows 20000 --layouts mumble jsonl --repeat 1
    # the re-embed, index builds with 0 and 2 parallel workers alternating, 3 rounds (medians)
    nice -n 10 .venv/bin/python benchmarks/import_bench.py --layouts mumble --repeat 1 \
        --build-variants 0 2 --reembed-repeat 3
    # searches logging their access during the build against updating the rows in place
    nice -n 10 .venv/bin/python benchmarks/import_bench.py --layouts mumble --repeat 1 \
        --build-variants 2:inplace 2 --reembed-repeat 2
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness import embedded_server, migrate, percentile

REPO = Path(__file__).resolve().parent.parent
SOURCE_APPLICATION = "memcli-bench-source"
LEGACY = REPO / "tests" / "legacy"
DIM = 384
IMPORT_TARGET = 0.5
REEMBED_TARGET = 0.8
P99_TARGET = 2.0
SEARCH_RATE = 20  # queries a second while re-embedding
BEFORE_SECONDS = 15.0
SLOWEST = 5  # slowest searches listed per phase, with when they ran
LAYOUTS = ("mumble", "ybryx", "agent-memories", "graive", "jsonl")
TABLES = ("semantic_memory", "conversation_memory", "context_relevance")
WORDS = (
    "vegetarian",
    "spicy",
    "table",
    "window",
    "friday",
    "booking",
    "dessert",
    "allergy",
    "gluten",
    "wine",
    "terrace",
    "quiet",
    "birthday",
    "parking",
    "delivery",
    "lunch",
    "dinner",
    "vegan",
    "noodles",
    "curry",
    "pizza",
    "salad",
    "coffee",
)


def _text(n: int) -> str:
    return " ".join(WORDS[(n * k + k * k) % len(WORDS)] for k in range(1, 9)) + f" #{n}"


def _vectors(count: int = 64) -> list[list[float]]:
    from memcli.embeddings.hashing import HashingEmbedder

    return [[float(x) for x in v] for v in HashingEmbedder(DIM).embed([_text(n) for n in range(count)])]


def _ddl(dsn: str, layout: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE SCHEMA legacy")
        conn.execute("SET search_path = legacy, public")
        conn.execute((LEGACY / f"{layout.replace('-', '_')}.sql").read_text("utf-8"))


def build_source(dsn: str, layout: str, rows: int, workdir: Path) -> Path | None:
    """Fill the layout's tables with ``rows`` memories (the JSON Lines layout: a file)."""
    import psycopg
    from psycopg.types.json import Jsonb

    vectors = _vectors()
    if layout == "jsonl":
        path = workdir / "memories.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for n in range(rows):
                item = {
                    "id": n,
                    "text": _text(n),
                    "session_id": f"s-{n % 500}",
                    "user_id": f"user-{n % 200}",
                    "embedding": vectors[n % len(vectors)],
                    "embedding_model": "hashing-v1",
                    "importance": (n % 10) / 10,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                out.write(json.dumps(item) + "\n")
        return path
    _ddl(dsn, layout)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET search_path = legacy, public")
        cur = conn.cursor()
        if layout == "mumble":
            conn.execute("UPDATE bot_config SET value = 'hashing-v1' WHERE key = 'embedding_model'")
            with cur.copy(
                "COPY conversation_history (user_name, user_session, message_type, role, message, embedding, "
                "importance_score, summary, timestamp) FROM STDIN"
            ) as copy:
                for n in range(rows):
                    copy.write_row(
                        (f"user{n % 200}", n % 50, "text", "user", _text(n), vectors[n % len(vectors)],
                         (n % 10) / 10, None, "2025-01-01 00:00")
                    )  # fmt: skip
            conn.execute(
                "INSERT INTO entity_mentions (user_name, entity_text, canonical_id, entity_type, message_id) "
                "SELECT user_name, 'pizza', 'food:pizza', 'OTHER', id FROM conversation_history "
                "WHERE id % 5 = 0"
            )
        elif layout == "ybryx":
            users = [uuid.uuid4() for _ in range(50)]
            with cur.copy("COPY users (id) FROM STDIN") as copy:
                for u in users:
                    copy.write_row((u,))
            for table, text_col, vec_col in (
                ("goal_assessments", "goal_text", "goal_vector"),
                ("belief_graphs", "belief", "belief_vector"),
            ):
                half = rows // 2
                with cur.copy(
                    f"COPY {table} (id, user_id, agent_name, {text_col}, {vec_col}, confidence) FROM STDIN"
                ) as copy:
                    for n in range(half):
                        vector = Jsonb(vectors[n % len(vectors)])
                        copy.write_row((uuid.uuid4(), users[n % 50], "sales", _text(n), vector, 0.5))
            conn.execute(
                "INSERT INTO memory_logs (memory_id, operation) "
                "SELECT id, 'read' FROM goal_assessments WHERE random() < 0.2"
            )
        elif layout == "agent-memories":
            agents = [uuid.uuid4() for _ in range(20)]
            with cur.copy("COPY agents (id, user_id, name) FROM STDIN") as copy:
                for a in agents:
                    copy.write_row((a, uuid.uuid4(), "agent"))
            kinds = ("episodic", "semantic", "procedural", "working")
            with cur.copy(
                "COPY agent_memories (agent_id, memory_type, content, importance, decay_rate) FROM STDIN"
            ) as copy:
                for n in range(rows):
                    copy.write_row((agents[n % 20], kinds[n % 4], _text(n), 0.5, 0.1))
        elif layout == "graive":
            users = [uuid.uuid4() for _ in range(20)]
            convs = [uuid.uuid4() for _ in range(200)]
            with cur.copy("COPY users (id, username) FROM STDIN") as copy:
                for u in users:
                    copy.write_row((u, "u"))
            with cur.copy("COPY conversations (id, user_id, session_id) FROM STDIN") as copy:
                for i, c in enumerate(convs):
                    copy.write_row((c, users[i % 20], f"g-{i}"))
            messages = [uuid.uuid4() for _ in range(rows * 4 // 5)]
            with cur.copy("COPY messages (id, conversation_id, role, content) FROM STDIN") as copy:
                for n, m in enumerate(messages):
                    copy.write_row((m, convs[n % 200], "user", _text(n)))
            with cur.copy(
                "COPY memory_segments (conversation_id, summary, message_ids, tier, compression_level) "
                "FROM STDIN"
            ) as copy:
                for n in range(rows - len(messages)):
                    ids = [str(m) for m in messages[n * 4 : n * 4 + 4]]
                    copy.write_row((convs[n % 200], _text(n), Jsonb(ids), "long_term", 2))
        conn.commit()
    return None


def run_import(
    target: str, source: str, layout: str, path: Path | None, batch_size: int | None = None
) -> tuple[float, dict]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    from memcli.embeddings.hashing import HashingEmbedder
    from memcli.imports import open_source
    from memcli.imports.engine import ImportOptions, run_import

    # the source's backends are found by their application name: the import's reader process opens its own
    source = make_conninfo(source, application_name=SOURCE_APPLICATION)
    with psycopg.connect(target) as conn, psycopg.connect(source, autocommit=True) as src:
        opened = open_source(layout, conn=src, schema="legacy", path=path)
        options = ImportOptions(source_model="hashing-v1" if layout == "ybryx" else None)
        if batch_size is not None:
            options.batch_size = batch_size
        target_before = cpu_seconds(conn.info.backend_pid)
        python = time.process_time() + _children_cpu()
        with BackendCpu(target, SOURCE_APPLICATION) as source_cpu:
            started = time.perf_counter()
            result = run_import(conn, opened, HashingEmbedder(DIM), options)
            elapsed = time.perf_counter() - started
        # this process and the reader process it forked (waited for, so counted among its children)
        python = time.process_time() + _children_cpu() - python
        target_cpu = cpu_seconds(conn.info.backend_pid) - target_before
    cpu = {"python": python, "target": target_cpu, "source": source_cpu.seconds}
    return elapsed, {
        "imported": result.imported,
        "rows": result.rows_written,
        "kept": result.vectors_kept,
        "cpu": cpu,
    }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class BackendCpu:
    """CPU seconds of the server backends with one application name, over a ``with`` block: a thread
    finds them in pg_stat_activity and reads their CPU time while they live (every POLL seconds)."""

    POLL = 0.2

    def __init__(self, dsn: str, application: str) -> None:
        import threading

        self.dsn, self.application = dsn, application
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while True:
                pids = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.application,)
                ).fetchall()
                for (pid,) in pids:
                    seconds = cpu_seconds(pid)
                    if seconds == seconds:  # not NaN: still there
                        self.first.setdefault(pid, seconds)
                        self.last[pid] = seconds
                if self._stop.wait(self.POLL):
                    return

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        """Up to the last poll: what a backend used in its last POLL before it ended is not seen."""
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process of this machine has used so far: a server backend's, read from
    /proc (NaN where there is none). Unlike wall time, it hardly moves with the load of a shared machine."""
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_copy(imported: str, fresh: str) -> tuple[float, float]:
    """COPY the rows the import wrote (binary, read back from ``imported``) into ``fresh``; the timed part is
    the COPY into the indexed tables. Its wall time, and its server backend's CPU time."""
    import psycopg

    buffers = {}
    with psycopg.connect(imported) as conn:
        for table in TABLES:
            buf = io.BytesIO()
            with conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as copy:
                for chunk in copy:
                    buf.write(chunk)
            buffers[table] = buf.getvalue()
        columns = {
            t: [
                r[0]
                for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                    (t,),
                )
            ]
            for t in TABLES
        }
    with psycopg.connect(fresh) as conn:
        backend = cpu_seconds(conn.info.backend_pid)
        started = time.perf_counter()
        for table in TABLES:
            data = buffers[table]
            with conn.cursor().copy(
                f"COPY {table} ({', '.join(columns[table])}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(data)
        conn.commit()
        return time.perf_counter() - started, cpu_seconds(conn.info.backend_pid) - backend


def _searcher(dsn: str, stop: Any, queue: Any, seconds: float | None = None) -> None:
    """Search with the old model, SEARCH_RATE queries a second (an application's steady traffic, not a
    loop taking a core of its own), until ``stop`` is set (or ``seconds`` pass, or the swap refuses the old
    model); put the (wall-clock time, latency in ms) of each on ``queue``."""
    import psycopg

    from memcli.embeddings.hashing import HashingEmbedder
    from memcli.errors import NotReadyError
    from memcli.search import search

    embedder = HashingEmbedder(DIM)
    latencies: list[tuple[float, float]] = []
    deadline = time.monotonic() + seconds if seconds else None
    with psycopg.connect(dsn, autocommit=True) as conn:
        n = 0
        tick = time.monotonic()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            started = time.perf_counter()
            try:
                search(conn, embedder, _text(n), top_k=10, min_similarity=-1)
            except NotReadyError:
                break  # the swap happened: the old model is refused from now on
            latencies.append((time.time(), (time.perf_counter() - started) * 1000))
            n += 1
            tick += 1 / SEARCH_RATE
            time.sleep(max(0.0, tick - time.monotonic()))
    queue.put(latencies)


def _embedder_alone(dsn: str, spec: str) -> float:
    """The new embedder alone on every stored text, in the re-embed's order and batches, while the same
    search traffic runs (the re-embed's throughput baseline)."""
    import psycopg

    from memcli.embeddings import get_embedder
    from memcli.shadow import DEFAULT_BATCH_SIZE as BATCH

    new = get_embedder(provider=spec)
    with psycopg.connect(dsn) as conn:
        texts = [r[0] for r in conn.execute("SELECT content_text FROM semantic_memory ORDER BY id")]
    queue: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    background = multiprocessing.Process(target=_searcher, args=(dsn, stop, queue))
    background.start()
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        new.embed(texts[i : i + BATCH])
    alone = time.perf_counter() - started
    stop.set()
    queue.get(timeout=60)
    background.join(10)
    print(
        f"\nre-embed {len(texts):,} memories to {new.name} ({new.dimension} dimensions), {BATCH} per batch, "
        f"while {SEARCH_RATE} searches a second run with the old model"
    )
    print(f"  embedder alone on the same texts: {alone:8.2f} s {len(texts) / alone:9,.0f} rows/s")
    return len(texts) / alone


def _updates(conn: Any) -> tuple[int, int]:
    """semantic_memory's row updates so far, and how many of them were heap-only (HOT), partitions
    included."""
    row = conn.execute(
        "SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables "
        "WHERE relid = 'semantic_memory'::regclass "
        "OR relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'semantic_memory'::regclass)"
    ).fetchone()
    return int(row[0]), int(row[1])


def bench_reembed(
    dsn: str, spec: str, workers: int | None, cap_mb: int | None, alone_rate: float, inplace: bool = False
) -> dict:
    """One re-embed of the database at ``dsn`` (a fresh copy) with the index build's ``workers`` and memory
    cap: search p99 before it (measured just before, same run) and during each phase."""
    import psycopg

    from memcli.embeddings import get_embedder
    from memcli.reembed import reembed
    from memcli.settings import set_setting
    from memcli.shadow import DEFAULT_BATCH_SIZE as BATCH
    from memcli.vector_index import BUILD_MEMORY_CAP_KEY

    new = get_embedder(provider=spec)
    if cap_mb is not None:
        with psycopg.connect(dsn) as conn:
            set_setting(conn, BUILD_MEMORY_CAP_KEY, cap_mb)
    with psycopg.connect(dsn) as conn:  # what --dry-run foresees, compared below with what it took
        plan = reembed(conn, new, spec, dry_run=True, build_workers=workers)
    queue: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    before = multiprocessing.Process(target=_searcher, args=(dsn, stop, queue, BEFORE_SECONDS))
    before.start()
    base = queue.get()
    before.join()

    during = multiprocessing.Process(target=_searcher, args=(dsn, stop, queue))
    during.start()
    time.sleep(1.0)
    with psycopg.connect(dsn) as conn:
        updates_before = _updates(conn)
        conn.commit()
        began = time.time()
        result = reembed(conn, new, spec, batch_size=BATCH, build_workers=workers)
    stop.set()
    loaded = queue.get(timeout=60)
    during.join(10)
    time.sleep(1.5)  # the backends' statistics reach the views within a second
    with psycopg.connect(dsn) as conn:
        updates, hot = (a - b for a, b in zip(_updates(conn), updates_before, strict=True))
    rate = result.filled / result.backfill_seconds
    label = f"workers {result.build_workers}, {result.build_memory_mb} MB" + (", in place" if inplace else "")
    figures: dict[str, Any] = {
        "label": label,
        "build_s": result.index_seconds,
        "whole_s": result.duration_seconds,
    }
    print(f"  build with {label}:")
    print(
        f"    backfill (embed + write):       {result.backfill_seconds:8.2f} s {rate:9,.0f} rows/s "
        f"-> {rate / alone_rate:.2f} of the embedder alone (target >= {REEMBED_TARGET}); "
        f"{result.embed_seconds:.2f} s of it in the embedder"
    )
    print(
        f"    index built concurrently:       {result.index_seconds:8.2f} s; "
        f"swap {result.swap_seconds * 1000:.0f} ms "
        f"({result.caught_up} rows caught up); whole re-embed {result.duration_seconds:.2f} s"
    )
    figures.update(
        est_backfill=plan.estimated_backfill_seconds / result.backfill_seconds,
        est_build=plan.estimated_index_seconds / result.index_seconds,
    )
    print(
        f"    --dry-run estimated: backfill {plan.estimated_backfill_seconds:.1f} s "
        f"({figures['est_backfill']:.2f} of it), index build {plan.estimated_index_seconds:.1f} s "
        f"({figures['est_build']:.2f} of it)"
    )
    print(
        f"    semantic_memory updates during it: {updates:,}, {updates - hot:,} not heap-only "
        f"(each of those writes into every index, the live HNSW one included)"
    )
    p99_base = percentile([ms for _, ms in base], 99)
    p99_during = percentile([ms for t, ms in loaded if t >= began], 99)
    figures.update(before=p99_base, whole=p99_during / p99_base)
    print(
        f"    search p99 before {p99_base:.1f} ms ({len(base)} queries), during the re-embed "
        f"{p99_during:.1f} ms ({len(loaded)} queries): {p99_during / p99_base:.2f}x "
        f"(target <= {P99_TARGET}x)"
    )
    # by phase (boundaries from the phases' durations, counted back from the end)
    ended = began + result.duration_seconds
    index_from = ended - result.swap_seconds - result.index_seconds
    backfill_from = index_from - result.backfill_seconds
    for phase, key, lo, hi in (
        ("backfill", "backfill", backfill_from, index_from),
        ("index build + swap", "build", index_from, ended),
    ):
        inside = [ms for t, ms in loaded if lo <= t < hi]
        if inside:
            p99 = percentile(inside, 99)
            figures[key] = p99 / p99_base
            print(f"      {phase:20} p99 {p99:7.1f} ms ({len(inside)} queries): {p99 / p99_base:.2f}x")
            # where the slowest ones fell (seconds into the phase): a swap's wait shows at its very end
            slowest = sorted(((ms, t - lo) for t, ms in loaded if lo <= t < hi), reverse=True)[:SLOWEST]
            print("        slowest: " + ", ".join(f"{ms:.1f} ms at {at:.1f} s" for ms, at in slowest))
    return figures


def _variant(text: str) -> tuple[int | None, int | None, bool]:
    """``W`` or ``W/CAP``: the build's parallel workers, and a build memory cap in MB (64: the server's
    default maintenance_work_mem, the on-disk build for a graph larger than that); ``default``: memcli's.
    A ``:inplace`` suffix: searches update the rows they return during the build too (the access log of
    revision 0013 dropped from that copy, as on a schema before it), the baseline for the log."""
    text, _, mode = text.partition(":")
    inplace = mode == "inplace"
    if text == "default":
        return None, None, inplace
    workers, _, cap = text.partition("/")
    return int(workers), int(cap) if cap else None, inplace


def reembed_runs(server: Any, template: str, spec: str, variants: list[str], repeat: int) -> None:
    """Re-embed fresh copies of ``template``, the variants alternating, ``repeat`` rounds; medians."""
    import statistics

    import psycopg

    runs: dict[str, list[dict]] = {v: [] for v in variants}
    alone_rate = 0.0
    for round_ in range(repeat):
        for n, variant in enumerate(variants):
            copy = server.create_database(f"reembed_{round_}_{n}", template=template)
            if not alone_rate:
                alone_rate = _embedder_alone(copy, spec)
            workers, cap, inplace = _variant(variant)
            if inplace:
                with psycopg.connect(copy, autocommit=True) as conn:
                    conn.execute("DROP TABLE semantic_memory_access")
            runs[variant].append(bench_reembed(copy, spec, workers, cap, alone_rate, inplace))
    if repeat > 1 or len(variants) > 1:
        print(f"\nmedians over {repeat} run(s) each (p99 during / p99 before, target <= {P99_TARGET}x):")
        for figures in runs.values():

            def med(key: str, figures: list[dict] = figures) -> float:
                return statistics.median(f.get(key, float("nan")) for f in figures)

            print(
                f"  {figures[0]['label']:24} whole {med('whole'):.2f}x, backfill {med('backfill'):.2f}x, "
                f"build {med('build'):.2f}x; p99 before {med('before'):.1f} ms; "
                f"build {med('build_s'):.1f} s, whole re-embed {med('whole_s'):.1f} s; dry-run estimates "
                f"{med('est_backfill'):.2f} of the backfill, {med('est_build'):.2f} of the build"
            )


def main() -> int:
    import psycopg
    from psycopg import sql

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="source rows per import batch (default 2000, as docs/imports.md's figures were measured)",
    )
    parser.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of import and raw COPY per layout (medians compared)"
    )
    parser.add_argument(
        "--reembed", default="hashing:b", help="embedder spec for the re-embed part ('' skips)"
    )
    parser.add_argument(
        "--build-variants",
        nargs="*",
        default=["default"],
        metavar="W[/CAP][:inplace]",
        help="index builds to compare: parallel workers, optionally a build memory cap in MB "
        "('default': memcli's choice); ':inplace': searches update the rows they return during the build "
        "too, instead of logging their access",
    )
    parser.add_argument(
        "--reembed-repeat", type=int, default=1, help="rounds of the re-embed variants (medians)"
    )
    args = parser.parse_args()
    with embedded_server("memcli-import-bench") as server, tempfile.TemporaryDirectory() as tmp:
        template = server.create_database("tpl")
        migrate(template, DIM)
        print(
            f"{args.rows:,} source rows per layout; raw COPY of the same rows into the same indexed tables; "
            f"medians of {args.repeat} alternating round(s)"
        )
        print(
            f"{'layout':16} {'import s':>9} {'rows/s':>9} {'COPY s':>8} {'rows/s':>9} {'ratio':>6}  written"
        )
        mumble_target = None
        for layout in args.layouts:
            key = layout.replace("-", "_")
            source = server.create_database(f"src_{key}")
            path = build_source(source, layout, args.rows, Path(tmp))
            # import and raw COPY alternate, each into a fresh copy of the migrated database: a load that
            # comes and goes on a shared machine falls on both; the medians are compared
            imports, baselines, import_cpu, copy_cpu = [], [], [], []
            for round_ in range(args.repeat):
                target = server.create_database(f"imp_{key}_{round_}", template="tpl")
                elapsed, info = run_import(target, source, layout, path, args.batch_size)
                fresh = server.create_database(f"raw_{key}_{round_}", template="tpl")
                imports.append(elapsed)
                import_cpu.append(info["cpu"])
                copy_wall, copy_server = raw_copy(target, fresh)
                baselines.append(copy_wall)
                copy_cpu.append(copy_server)
                if layout == "mumble" and round_ == 0:
                    mumble_target = target
            elapsed, baseline = statistics.median(imports), statistics.median(baselines)
            n = info["imported"]
            written = ", ".join(f"{v:,} {k}" for k, v in info["rows"].items() if v)
            print(
                f"{layout:16} {elapsed:9.2f} {n / elapsed:9,.0f} {baseline:8.2f} {n / baseline:9,.0f} "
                f"{baseline / elapsed:6.2f}  {written}; vectors kept {info['kept']:,}"
            )
            if args.repeat > 1:
                ratios = " ".join(f"{b / i:.2f}" for i, b in zip(imports, baselines, strict=True))
                print(f"{'':16} rounds (ratio): {ratios}")
            # CPU seconds (medians): what the import costs the machine, whatever else runs on it
            part = {k: statistics.median(c[k] for c in import_cpu) for k in ("python", "target", "source")}
            copy_server = statistics.median(copy_cpu)
            print(
                f"{'':16} CPU s: import {sum(part.values()):.2f} (Python {part['python']:.2f}, target server "
                f"{part['target']:.2f}, source server {part['source']:.2f}), raw COPY server "
                f"{copy_server:.2f}: {copy_server / sum(part.values()):.2f}"
            )
        print(f"target: import throughput >= {IMPORT_TARGET:.0%} of raw COPY (ratio column)")
        print(
            "(on a loaded machine the ratio tends to the CPU one: the import's Python and server no longer "
            "run side by side on cores of their own)"
        )
        if args.reembed and mumble_target:
            # every re-embed starts from the same imported database
            from psycopg.conninfo import conninfo_to_dict

            imported = str(conninfo_to_dict(mumble_target)["dbname"])
            with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(imported)))
            reembed_runs(server, imported, args.reembed, args.build_variants, args.reembed_repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
