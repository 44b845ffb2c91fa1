"""The HNSW index on ``semantic_memory.embedding_vector``: its parameters, its search breadth, its builds.

- **Parameters for the scale.** ``m`` (links per node) and ``ef_construction`` (candidate list while
  building) decide the best recall any ``ef_search`` can reach. pgvector's defaults (16 / 64) reach 0.97
  recall@10 at 100k clustered vectors but stall near 0.85 at 1M however wide the search; memcli builds
  with :data:`DEFAULT_M` / :data:`DEFAULT_EF_CONSTRUCTION` (measured in ``benchmarks/vector_bench.py``;
  ``docs/vector-index.md`` has the figures) and :func:`recommended_parameters` says what a table of a given
  size needs.
- **Search breadth per query.** :func:`ef_search_for` turns the stored base (``search.ef_search``, set by
  ``memcli tune``) into the candidate list of one query from its top-k and whether filters discard rows.
- **Builds that finish.** :func:`build_memory` sizes ``maintenance_work_mem`` to the graph pgvector
  keeps in memory while building (capped by ``index.build_memory_cap_mb``); past that, pgvector inserts
  into the on-disk graph, an order of magnitude slower. :func:`build_index` runs CREATE INDEX
  CONCURRENTLY with parallel workers and yields progress read from ``pg_stat_progress_create_index``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

TABLE = names.SEMANTIC_MEMORY
COLUMN = "embedding_vector"
INDEX_NAME = names.VECTOR_INDEX
OPCLASSES = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}

# Chosen from benchmarks/vector_bench.py (docs/vector-index.md): see recommended_parameters().
DEFAULT_M = names.HNSW_M
DEFAULT_EF_CONSTRUCTION = names.HNSW_EF_CONSTRUCTION
PGVECTOR_DEFAULT_M = 16
PGVECTOR_DEFAULT_EF_CONSTRUCTION = 64

# Settings (memory_settings keys); their defaults live in memcli.settings.DEFAULTS.
RECALL_TARGET_KEY = "search.recall_target"
EF_SEARCH_KEY = "search.ef_search"
BUILD_MEMORY_CAP_KEY = "index.build_memory_cap_mb"
LAST_RECALL_KEY = "index.last_recall"

EF_SEARCH_MIN = 40  # pgvector's default; below it recall falls fast for top-10
EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
# A filter (session, user, type, dates) discards candidates the iterative scan must replace; the first
# pass needs a wider list to keep the same recall.
FILTERED_FACTOR = 2


def check_recall_target(value: Any) -> float:
    """A recall target is a fraction in (0, 1]; anything else is bad input (exit 2)."""
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"recall target must be a number in (0, 1], got {value!r}") from None
    if not (0.0 < target <= 1.0) or math.isnan(target):
        raise ConfigError(f"recall target must be in (0, 1], got {value!r}", hint="for example 0.95")
    return target


def ef_search_for(base: int, top_k: int, *, filtered: bool = False) -> int:
    """The HNSW candidate list for one query.

    The list must hold well more than the answer (at least twice top-k, or the approximate top-k is
    mostly the list's tail), starts from the tuned ``base``, and is widened when filters discard rows.
    """
    ef = max(int(base), 2 * top_k, EF_SEARCH_MIN)
    if filtered:
        ef *= FILTERED_FACTOR
    return min(EF_SEARCH_MAX, ef)


def stored_ef_search(conn: psycopg.Connection) -> int:
    """The base ``ef_search`` (``search.ef_search``; ``memcli tune`` sets it)."""
    from memcli.settings import get_setting

    return base_ef_search(get_setting(conn, EF_SEARCH_KEY))


def base_ef_search(value: Any) -> int:
    """The base ``ef_search`` from the setting's stored value (None or nonsense: the default)."""
    try:
        return max(1, min(EF_SEARCH_MAX, int(float(value))))
    except (TypeError, ValueError):
        from memcli.settings import DEFAULTS

        return int(DEFAULTS[EF_SEARCH_KEY][0])


def recommended_parameters(rows: int) -> tuple[int, int]:
    """(m, ef_construction) for a table of ``rows`` vectors.

    Measured (benchmarks/vector_bench.py, docs/vector-index.md): at 300k clustered vectors pgvector's
    16 / 64 needs ef_search 200 for recall@10 0.96, 24 / 128 reaches 1.00 at ef_search 100 for a build
    1.8x as long; at 1M, 16 / 64 stalls near 0.85. One choice serves every size measured (to 1M): a small
    table's build is quick either way, and a table grows into the parameters it was built with.
    """
    del rows  # kept for the day a larger size needs more; no measurement beyond 1M says so yet
    return DEFAULT_M, DEFAULT_EF_CONSTRUCTION


# -- build memory ----------------------------------------------------------------------------------------

# pgvector keeps the whole graph in maintenance_work_mem while building (hnswbuild.c, hnswutils.c). Per row:
# - the element (HnswElementData: heap TIDs, level, lock, pointers): ELEMENT_BYTES;
# - a copy of the value: its varlena size, 8 + 4*dim (vector) or 8 + 2*dim (halfvec);
# - per layer a neighbour array: 8 bytes of header + 16 per candidate (HnswCandidate: pointer, distance,
#   flag); layer 0 holds 2*m candidates, upper layers m. A row reaches layer l with probability m^-l, so
#   the expected number of upper layers is 1/(m-1);
# - one pointer per layer to those arrays, and an allocator chunk header per allocation.
# A calibration build (tests/test_vector_index.py) checks the estimate against pgvector's own
# "graph no longer fits" notice.
ELEMENT_BYTES = 136
CHUNK_BYTES = 16
BYTES_PER_DIMENSION = {"vector": 4, "halfvec": 2}
MARGIN = 1.2  # calibrated: pgvector counted ~2.5 kB a row at 384 dims, m=16, where the parts sum to 2.27
MIB = 1024 * 1024


def graph_bytes(rows: int, dimension: int, m: int, column_type: str = "vector") -> int:
    """Estimated memory pgvector needs to build the whole HNSW graph in memory."""
    value = 8 + BYTES_PER_DIMENSION[column_type] * dimension
    upper_layers = 1 / (m - 1)
    layer0 = 8 + 16 * 2 * m
    upper = upper_layers * (8 + 16 * m + 8)
    per_row = ELEMENT_BYTES + value + 8 + layer0 + upper + CHUNK_BYTES * (3 + upper_layers)
    return int(rows * per_row * MARGIN)


@dataclass
class BuildPlan:
    rows: int
    dimension: int
    column_type: str
    m: int
    ef_construction: int
    graph_mb: int  # estimated in-memory graph
    cap_mb: int  # index.build_memory_cap_mb
    maintenance_work_mem_mb: int  # what the build will run with
    fits: bool  # False: pgvector will switch to the (much slower) on-disk build part way
    workers: int  # max_parallel_maintenance_workers for the build
    warnings: list[str] = field(default_factory=list)


def plan_build(
    rows: int,
    dimension: int,
    *,
    m: int,
    ef_construction: int,
    cap_mb: int,
    column_type: str = "vector",
    server_max_workers: int = 2,
) -> BuildPlan:
    """maintenance_work_mem and workers for building an index of ``rows`` rows, within ``cap_mb``."""
    graph_mb = math.ceil(graph_bytes(rows, dimension, m, column_type) / MIB)
    # Never below the server default (64 MB): a tiny table gains nothing from less.
    wanted = max(64, graph_mb)
    memory = min(wanted, cap_mb)
    plan = BuildPlan(
        rows=rows,
        dimension=dimension,
        column_type=column_type,
        m=m,
        ef_construction=ef_construction,
        graph_mb=graph_mb,
        cap_mb=cap_mb,
        maintenance_work_mem_mb=memory,
        fits=graph_mb <= cap_mb,
        # A parallel build only pays off on a table big enough to split (Postgres' own rule is similar).
        workers=max(0, server_max_workers) if rows >= 100_000 else 0,
    )
    if not plan.fits:
        share = cap_mb / graph_mb
        plan.warnings.append(
            f"the graph (~{graph_mb:,} MB) does not fit the build memory cap ({cap_mb:,} MB): about "
            f"{share:.0%} of the rows build in memory, the rest on disk, many times slower; raise "
            f"{BUILD_MEMORY_CAP_KEY} if the server has the memory"
        )
    return plan


# -- index state -------------------------------------------------------------------------------------------


@dataclass
class IndexInfo:
    name: str
    valid: bool
    column_type: str  # vector or halfvec
    m: int
    ef_construction: int
    bytes: int
    rows: int  # estimated rows of the table
    dimension: int | None


def column_type(conn: psycopg.Connection) -> tuple[str, int | None]:
    """(type name, dimension) of semantic_memory.embedding_vector."""
    row = conn.execute(
        """
        SELECT t.typname, nullif(a.atttypmod, -1)
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped
        """,
        (TABLE, COLUMN),
    ).fetchone()
    if row is None:
        raise ConfigError(f"{TABLE}.{COLUMN} does not exist", hint="run: memcli migrate")
    return str(row[0]), row[1]


def _count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM semantic_memory").fetchone()
    return int(row[0]) if row else 0


def index_info(conn: psycopg.Connection, name: str = INDEX_NAME) -> IndexInfo | None:
    row = conn.execute(
        """
        SELECT c.relname, i.indisvalid, coalesce(c.reloptions, '{}'), pg_relation_size(c.oid),
               greatest(t.reltuples, 0)::bigint
        FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid
        WHERE c.oid = to_regclass(%s)
        """,
        (name,),
    ).fetchone()
    if row is None:
        return None
    options = dict(o.split("=", 1) for o in row[2] if "=" in o)
    kind, dimension = column_type(conn)
    rows = int(row[4])
    if rows == 0:  # never analysed: count (an operator command, not a hot path)
        rows = _count(conn)
    return IndexInfo(
        name=row[0],
        valid=bool(row[1]),
        column_type=kind,
        m=int(options.get("m", PGVECTOR_DEFAULT_M)),
        ef_construction=int(options.get("ef_construction", PGVECTOR_DEFAULT_EF_CONSTRUCTION)),
        bytes=int(row[3]),
        rows=rows,
        dimension=dimension,
    )


# -- builds ------------------------------------------------------------------------------------------------


@dataclass
class BuildProgress:
    phase: str
    tuples_done: int
    tuples_total: int
    elapsed_s: float

    @property
    def fraction(self) -> float | None:
        return self.tuples_done / self.tuples_total if self.tuples_total else None


def read_progress(conn: psycopg.Connection, pid: int) -> tuple[str, int, int] | None:
    """(phase, tuples_done, tuples_total) of the index build running in backend ``pid``."""
    row = conn.execute(
        "SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index WHERE pid = %s",
        (pid,),
    ).fetchone()
    return (str(row[0]), int(row[1] or 0), int(row[2] or 0)) if row else None


def hnsw_options(m: int, ef_construction: int) -> str:
    """The index's storage parameters as SQL (integers only, so safe to compose)."""
    return f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"


def build_statement(
    name: str, kind: str, m: int, ef_construction: int, *, concurrently: bool = True, column: str = COLUMN
) -> Any:
    from psycopg import sql

    return sql.SQL(
        "CREATE INDEX {concurrently} {name} ON {table} USING hnsw ({column} {opclass}) {options}"
    ).format(
        concurrently=sql.SQL("CONCURRENTLY" if concurrently else ""),
        name=sql.Identifier(name),
        table=sql.Identifier(TABLE),
        column=sql.Identifier(column),
        opclass=sql.SQL(OPCLASSES[kind]),
        options=sql.SQL(hnsw_options(m, ef_construction)),
    )


def run_with_progress(
    conn: psycopg.Connection,
    monitor: psycopg.Connection | None,
    statement: Any,
    *,
    maintenance_work_mem_mb: int,
    workers: int,
    poll_s: float = 1.0,
    time_limit_s: float | None = None,
    rows_hint: int = 0,
) -> Iterator[BuildProgress]:
    """Run an index build on ``conn`` (autocommit) and yield its progress, read over ``monitor``.

    The statement runs in a thread (psycopg blocks while Postgres builds); this generator polls
    pg_stat_progress_create_index meanwhile. Without a ``monitor`` it just runs the build. An error in
    the build is raised here when it ends.
    ``time_limit_s`` cancels the build after that long (TimeoutError; benchmarks use it).
    pgvector reports the tuples it has loaded but not always their total; ``rows_hint`` (the table's row
    estimate) stands in for it.
    """
    pid = conn.info.backend_pid
    conn.execute(
        "SELECT set_config('maintenance_work_mem', %s, false),"
        " set_config('max_parallel_maintenance_workers', %s, false),"
        " set_config('statement_timeout', '0', false)",
        (f"{int(maintenance_work_mem_mb)}MB", str(int(workers))),
    )
    if monitor is None:  # nobody watching: run it here
        conn.execute(statement)
        return
    outcome: dict[str, BaseException | None] = {"error": None}

    def work() -> None:
        try:
            conn.execute(statement)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=work, name="memcli-index-build", daemon=True)
    thread.start()
    last = BuildProgress("starting", 0, 0, 0.0)
    cancelled = False
    try:
        while thread.is_alive():
            thread.join(poll_s)
            elapsed = time.monotonic() - started
            state = read_progress(monitor, pid)
            if state is not None:
                last = BuildProgress(state[0], state[1], state[2] or rows_hint, elapsed)
            else:
                last = BuildProgress(last.phase, last.tuples_done, last.tuples_total, elapsed)
            yield last
            if time_limit_s is not None and elapsed > time_limit_s and not cancelled:
                monitor.execute("SELECT pg_cancel_backend(%s)", (pid,))
                cancelled = True
    except BaseException:
        # The caller stopped listening (Ctrl-C, an error): stop the build rather than leave it running.
        if thread.is_alive():
            monitor.execute("SELECT pg_cancel_backend(%s)", (pid,))
            thread.join()
        raise
    if cancelled:
        raise TimeoutError(f"build cancelled after {time_limit_s:.0f} s at {last.tuples_done} tuples")
    if outcome["error"] is not None:
        raise outcome["error"]


# -- rebuilds ----------------------------------------------------------------------------------------------

LOCK_NAME = "vector_index"  # memcli tune and memcli index rebuild (and the monthly job's rebuild) share it
NEW_SUFFIX = "_new"  # the concurrent build's name until it replaces the old index
DDL_LOCK_TIMEOUT_MS = 10_000
DEFAULT_BUILD_MEMORY_CAP_MB = 4096


@dataclass
class RebuildPlan:
    index: str
    current: IndexInfo | None
    build: BuildPlan
    reason: str | None = None  # why it is rebuilt (monthly job: invalid, bloat, recall)
    seconds: float | None = None  # filled in by run_rebuild
    bytes: int | None = None
    notices: list[str] = field(default_factory=list)


def build_memory_cap_mb(conn: psycopg.Connection) -> int:
    from memcli.settings import get_setting

    value = get_setting(conn, BUILD_MEMORY_CAP_KEY, DEFAULT_BUILD_MEMORY_CAP_MB)
    try:
        cap = int(float(value))
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting {BUILD_MEMORY_CAP_KEY} is {value!r}, not a number of megabytes",
            hint=f"store a number of megabytes, e.g. {DEFAULT_BUILD_MEMORY_CAP_MB}",
        ) from None
    if cap < 64:
        raise ConfigError(f"{BUILD_MEMORY_CAP_KEY} must be at least 64 (MB), got {cap}")
    return cap


# Parallel workers of the index build a re-embed or a type conversion runs while the application searches
# (tables of 100k rows or more; smaller ones build alone). The build's processes (its leader and workers)
# leave one core to the searches: on 2 cores, with the searches' access logged during the build, search p99
# during a build alone was 0.96x the one before against 2.05x with 2 workers in one run, 1.34x against
# 1.46x in the medians of another, for a build 1.5 to 1.7 times as long (benchmarks/import_bench.py
# --build-variants, docs/reembed.md).
FREE_CORES = 1
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def server_cores(conn: psycopg.Connection) -> int | None:
    """The cores memcli may use when the server runs on this machine (a Unix socket or a loopback
    address); None for a remote server, whose cores Postgres does not report."""
    import os

    host = conn.info.host or ""
    if not (host.startswith("/") or host in LOCAL_HOSTS):
        return None
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count()


def online_build_workers(conn: psycopg.Connection) -> int:
    """Parallel workers for an online build: the server's cores less the leader and :data:`FREE_CORES`
    (a local server), else none (a remote server's cores are unknown: ``--build-workers`` says them)."""
    cores = server_cores(conn)
    return max(0, cores - 1 - FREE_CORES) if cores else 0


SAMPLE_BUILD_ROWS = 2000  # random vectors a dry run indexes to estimate a whole build
# A whole build took this many times the sample's time scaled by rows x log(rows): 1.4 to 2 (a re-embed's
# concurrent build of 100k rows without workers, 121 s and 173 s while searches ran, against 74 to 106 s
# extrapolated from 2000 random vectors on the same 2 loaded cores; docs/reembed.md).
SAMPLE_SCALE = 1.6
# What each parallel worker adds to a build's speed, for workers within the cores (the leader builds
# too): one worker built 1.7x as fast as the leader alone (benchmarks/import_bench.py --build-variants 0 1,
# 100k rows on 2 shared cores; 2 workers there, three processes on two cores, only 1.5x).
WORKER_SPEEDUP = 0.7


@dataclass
class BuildEstimate:
    seconds: float  # the whole build, estimated
    sample_rows: int  # random vectors indexed to estimate it
    sample_seconds: float  # that sample build's time


def estimate_build(
    conn: psycopg.Connection, plan: BuildPlan, sample_rows: int = SAMPLE_BUILD_ROWS
) -> BuildEstimate:
    """Time an HNSW build of ``sample_rows`` random vectors of the plan's type and dimension (a temporary
    table, dropped with the transaction; the plan's ``m`` / ``ef_construction`` and memory) on this server,
    and scale it to ``plan``: by rows times their log (an insertion searches a graph whose depth grows with
    the log of its size), by :data:`SAMPLE_SCALE` (what that extrapolation missed, measured), and by the
    parallel workers' speed-up (:data:`WORKER_SPEEDUP`). Random vectors, not the stored ones: the new
    model's are not computed yet, and a table's own may repeat (imports of one source often do), which
    builds faster than the new vectors will.
    """
    from psycopg import sql

    sampled = max(2, min(sample_rows, plan.rows))
    if plan.column_type not in OPCLASSES or plan.dimension < 1:
        return BuildEstimate(0.0, 0, 0.0)
    with conn.transaction():
        conn.execute(
            "SELECT set_config('maintenance_work_mem', %s, true), set_config('statement_timeout', '0', true)",
            (f"{int(plan.maintenance_work_mem_mb)}MB",),
        )
        # "WHERE g > 0" ties the inner query to the row, so each row draws its own vector
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE memcli_build_sample ON COMMIT DROP AS "
                "SELECT (SELECT array_agg(random() - 0.5) FROM generate_series(1, %s) WHERE g > 0)"
                "::vector::{kind} AS v FROM generate_series(1, %s) AS g"
            ).format(kind=sql.SQL(f"{plan.column_type}({int(plan.dimension)})")),
            (int(plan.dimension), sampled),
        )
        started = time.perf_counter()
        conn.execute(
            sql.SQL("CREATE INDEX ON memcli_build_sample USING hnsw (v {opclass}) {options}").format(
                opclass=sql.SQL(OPCLASSES[plan.column_type]),
                options=sql.SQL(hnsw_options(plan.m, plan.ef_construction)),
            )
        )
        took = time.perf_counter() - started
    rows = max(plan.rows, sampled)
    scale = rows / sampled * math.log(rows) / math.log(sampled) * (SAMPLE_SCALE if rows > sampled else 1.0)
    speedup = 1 + WORKER_SPEEDUP * plan.workers
    return BuildEstimate(round(took * scale / speedup, 3), sampled, round(took, 3))


def live_parameters(conn: psycopg.Connection) -> tuple[int, int]:
    """(m, ef_construction) of the live index when valid, else memcli's defaults: an index built to replace
    it (re-embed, type conversion) keeps the recall it was built for."""
    info = index_info(conn)
    if info and info.valid:
        return info.m, info.ef_construction
    return DEFAULT_M, DEFAULT_EF_CONSTRUCTION


def plan_online_build(
    conn: psycopg.Connection,
    rows: int,
    dimension: int,
    kind: str,
    m: int,
    ef_construction: int,
    *,
    workers: int | None = None,
) -> BuildPlan:
    """The build of a shadow column's index: memory sized to its graph (within the cap) so it never
    falls back to the slow on-disk build, and ``workers`` parallel workers (default
    :func:`online_build_workers`) on a table big enough to split."""
    if workers is None:
        workers = online_build_workers(conn)
    if workers < 0:
        raise ConfigError(f"build workers must be 0 or more, got {workers}")
    plan = plan_build(
        rows,
        dimension,
        m=m,
        ef_construction=ef_construction,
        cap_mb=build_memory_cap_mb(conn),
        column_type=kind,
        server_max_workers=workers,
    )
    return plan


def plan_rebuild(
    conn: psycopg.Connection,
    *,
    m: int | None = None,
    ef_construction: int | None = None,
    cap_mb: int | None = None,
) -> RebuildPlan:
    """What a rebuild of the vector index would run with: parameters, memory, workers, and warnings.

    Parameters default to the current index's when it is valid, else to :func:`recommended_parameters`.
    """
    from memcli.readiness import require_migrated

    require_migrated(conn)
    if m is not None and not 2 <= m <= 100:
        raise ConfigError(f"m must be between 2 and 100 (pgvector's range), got {m}")
    if ef_construction is not None and not 4 <= ef_construction <= 1000:
        raise ConfigError(f"ef_construction must be between 4 and 1000, got {ef_construction}")
    current = index_info(conn)
    kind, dimension = column_type(conn)
    if kind not in OPCLASSES:
        raise ConfigError(f"{TABLE}.{COLUMN} is of type {kind}, which memcli does not index")
    rows = current.rows if current else _count(conn)
    default_m, default_efc = (
        (current.m, current.ef_construction) if current and current.valid else recommended_parameters(rows)
    )
    m = m or default_m
    ef_construction = ef_construction or default_efc
    if ef_construction < 2 * m:
        raise ConfigError(
            f"ef_construction ({ef_construction}) must be at least twice m ({m})", hint="pgvector's rule"
        )
    workers = int(
        conn.execute("SELECT current_setting('max_parallel_maintenance_workers')::int").fetchone()[0]
    )  # type: ignore[index]
    build = plan_build(
        rows,
        int(dimension or 0),
        m=m,
        ef_construction=ef_construction,
        cap_mb=cap_mb if cap_mb is not None else build_memory_cap_mb(conn),
        column_type=kind,
        server_max_workers=max(2, workers),
    )
    return RebuildPlan(index=INDEX_NAME, current=current, build=build)


def run_rebuild(
    conn: psycopg.Connection, monitor: psycopg.Connection | None, plan: RebuildPlan, *, poll_s: float = 1.0
) -> Iterator[BuildProgress]:
    """Build the index ``plan`` describes next to the old one (CONCURRENTLY), then swap it in.

    ``conn`` and ``monitor`` are two autocommit connections (no ``monitor``: no progress); the advisory
    lock (shared with ``memcli tune``) is taken on ``conn``: a second rebuild or tune fails at once with
    LockedError (exit 75). The application keeps reading and writing throughout; only the final
    DROP/RENAME take brief locks
    (``lock_timeout``). A failed or cancelled build leaves the old index in place and drops the new one.
    """
    from psycopg import sql

    from memcli import access
    from memcli.jobs.locks import job_lock

    new_name = INDEX_NAME + NEW_SUFFIX
    with job_lock(conn, [LOCK_NAME], job="index rebuild"):
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{DDL_LOCK_TIMEOUT_MS}ms",))
        # A leftover of an interrupted rebuild (invalid, or valid but never swapped in).
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(new_name)))
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        started = time.monotonic()
        target = new_name if plan.current is not None else INDEX_NAME
        statement = build_statement(target, plan.build.column_type, plan.build.m, plan.build.ef_construction)
        try:
            # The build holds one snapshot throughout: searches log their access meanwhile (memcli.access).
            with access.deferring(conn):
                yield from run_with_progress(
                    conn,
                    monitor,
                    statement,
                    maintenance_work_mem_mb=plan.build.maintenance_work_mem_mb,
                    workers=plan.build.workers,
                    poll_s=poll_s,
                    rows_hint=plan.build.rows,
                )
        except BaseException:
            if not conn.closed and not conn.broken:
                conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(target)))
            raise
        finally:
            if not conn.closed and not conn.broken:  # the build's memory is not the session's
                conn.execute("RESET maintenance_work_mem")
                conn.execute("RESET max_parallel_maintenance_workers")
        if plan.current is not None:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(INDEX_NAME)))
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(new_name), sql.Identifier(INDEX_NAME)
                )
            )
        plan.seconds = round(time.monotonic() - started, 3)
        plan.notices = notices
        plan.bytes = int(conn.execute("SELECT pg_relation_size(%s::regclass)", (INDEX_NAME,)).fetchone()[0])  # type: ignore[index]
        # A recall measured on the old graph says nothing about the new one.
        conn.execute("DELETE FROM memory_settings WHERE key = %s", (LAST_RECALL_KEY,))
        # what searches that read the flag before it was cleared logged after the build's own fold
        access.fold_quietly(conn)


# -- does it need a rebuild? --------------------------------------------------------------------------------

BLOAT_RATIO = 2.0  # index more than twice the size a fresh build would have


def expected_index_bytes(rows: int, dimension: int, m: int, column_type: str = "vector") -> int:
    """Size of a freshly built index: per row an element tuple (value, heap TIDs) and a neighbour tuple
    ((level + 2) * m TIDs of 6 bytes), filled to ~90% of 8 kB pages."""
    element = 8 + 64 + 8 + BYTES_PER_DIMENSION[column_type] * dimension
    neighbours = 8 + (2 + 1 / (m - 1)) * m * 6
    return int(rows * (element + neighbours + 8) / 0.9)


def rebuild_reason(conn: psycopg.Connection) -> str | None:
    """Why the vector index needs a rebuild, or None when it does not (the monthly job's rule).

    HNSW needs no periodic rebuild: VACUUM repairs the graph around deleted rows and reuses their space.
    A rebuild is due when the index is invalid (a failed build), much larger than a fresh build would be
    (bloat), or the last measured recall is below the target and tuning said ef_search cannot fix it.
    """
    from memcli.settings import get_setting

    info = index_info(conn)
    if info is None:
        return None
    if not info.valid:
        return "invalid (a failed or interrupted build)"
    if info.dimension and info.rows >= 10_000:
        expected = expected_index_bytes(info.rows, info.dimension, info.m, info.column_type)
        if info.bytes > BLOAT_RATIO * expected:
            return f"bloated ({info.bytes / MIB:,.0f} MB, a fresh build would be ~{expected / MIB:,.0f} MB)"
    last = get_setting(conn, LAST_RECALL_KEY)
    if isinstance(last, dict) and last.get("rebuild_recommended") and last.get("index_oid_matches", True):
        return f"recall {last.get('recall')} below the target {last.get('target')} at any ef_search"
    return None
