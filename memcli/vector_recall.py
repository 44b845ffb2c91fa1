"""Measured recall of the vector index, and tuning ``ef_search`` to the recall target.

Recall is measured as memcli searches: sampled stored vectors are the queries (each excluding its own row,
as ``memcli search --like`` does), the index answers with the ``ef_search`` memcli would use, and an exact
scan of the same query is the truth. The last measurement is stored in ``memory_settings``
(``index.last_recall``) so a plain ``memcli health`` can report it against ``search.recall_target``
without paying for the exact scans again.

:func:`tune` finds the least ``ef_search`` (the cheapest search) that meets the target on a sample and
stores it as ``search.ef_search``; when no ``ef_search`` up to pgvector's maximum meets it, the graph
itself is too sparse and it recommends rebuilding with larger ``m`` / ``ef_construction``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memcli import vector_index as vi
from memcli.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

K = 10
DEFAULT_QUERIES = 50
MIN_ROWS = 1000  # below this a sample says little, and an exact scan is as fast as the index
EF_CANDIDATES = (40, 64, 100, 150, 200, 300, 400, 600, 800, 1000)
# Exact scans of a large table take seconds each: give them room, whatever the session's timeout.
STATEMENT_TIMEOUT_MS = 600_000


@dataclass
class RecallMeasurement:
    recall: float
    target: float
    queries: int
    k: int
    ef_search: int
    index: str
    m: int
    ef_construction: int
    rows: int
    index_p50_ms: float
    exact_p50_ms: float
    measured_at: str
    rebuild_recommended: bool = False

    @property
    def meets_target(self) -> bool:
        return self.recall >= self.target


@dataclass
class TuneResult:
    target: float
    rows: int
    dry_run: bool
    too_small: bool = False
    ef_search_before: int | None = None
    ef_search: int | None = None  # chosen (stored unless dry run)
    sweep: list[dict[str, float]] = field(default_factory=list)  # ef_search, recall, p50_ms
    measurement: RecallMeasurement | None = None
    rebuild: dict[str, Any] | None = None  # recommended m, ef_construction, memory plan
    message: str = ""


def recall_target(conn: psycopg.Connection) -> float:
    from memcli.settings import get_setting

    return vi.check_recall_target(get_setting(conn, vi.RECALL_TARGET_KEY))


def set_recall_target(conn: psycopg.Connection, value: Any) -> float:
    from memcli.settings import set_setting

    target = vi.check_recall_target(value)
    set_setting(conn, vi.RECALL_TARGET_KEY, target)
    return target


def sample(conn: psycopg.Connection, queries: int) -> list[tuple[Any, str]]:
    """(id, vector text) of about ``queries`` stored vectors, spread over the table."""
    rows = conn.execute(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass('semantic_memory')"
    ).fetchone()
    estimate = float(rows[0]) if rows else 0.0
    if estimate > 50_000:
        # Reading pages at random is much cheaper than ORDER BY random() over the whole table.
        percent = min(100.0, 100.0 * queries * 20 / estimate)
        statement = (
            "SELECT id, embedding_vector::text FROM semantic_memory TABLESAMPLE SYSTEM (%s) "
            "WHERE embedding_vector IS NOT NULL ORDER BY random() LIMIT %s"
        )
        return [tuple(r) for r in conn.execute(statement, (percent, queries)).fetchall()]  # type: ignore[misc]
    statement = (
        "SELECT id, embedding_vector::text FROM semantic_memory WHERE embedding_vector IS NOT NULL "
        "ORDER BY random() LIMIT %s"
    )
    return [tuple(r) for r in conn.execute(statement, (queries,)).fetchall()]  # type: ignore[misc]


def _top_k(
    conn: psycopg.Connection, vector: str, exclude: Any, *, exact: bool, ef: int | None, cast: str
) -> tuple[list[Any], float]:
    from psycopg import sql

    # memcli's own inner search query (memcli.search): "+ 0" keeps the index out of the exact one.
    query = sql.SQL(
        "SELECT id FROM semantic_memory WHERE embedding_vector IS NOT NULL AND id <> %s "
        "ORDER BY {order} LIMIT %s"
    ).format(
        order=sql.SQL(
            "(embedding_vector <=> %s::{cast}) + 0" if exact else "embedding_vector <=> %s::{cast}"
        ).format(cast=sql.Identifier(cast))
    )
    with conn.transaction():
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('plan_cache_mode', "
            "'force_custom_plan', true)",
            (str(STATEMENT_TIMEOUT_MS),),
        )
        if ef is not None:
            # On a small table the planner prices a wide ef_search above a full scan and sorts exactly
            # instead: recall must be measured on the index itself.
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), set_config('enable_seqscan', 'off', true)",
                (str(ef),),
            )
        started = time.perf_counter()
        rows = conn.execute(query, (exclude, vector, K)).fetchall()
        return [r[0] for r in rows], (time.perf_counter() - started) * 1000


@contextmanager
def _restored_settings(conn: psycopg.Connection) -> Iterator[None]:
    """Inside a caller's transaction (health's), the probes' SET LOCALs would outlive their savepoints:
    put the previous values back afterwards."""
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status == TransactionStatus.IDLE:
        yield  # each probe query is its own transaction; its settings end with it
        return
    names = ("statement_timeout", "plan_cache_mode", "hnsw.ef_search", "enable_seqscan")
    previous = {
        name: conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0] for name in names
    }  # type: ignore[index]
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is not None and conn.info.transaction_status == TransactionStatus.INTRANS:
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _recall(found: list[list[Any]], truth: list[list[Any]]) -> float:
    scores = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True) if t]
    return sum(scores) / len(scores) if scores else 1.0


class _Probe:
    """A fixed sample and its exact answers, against which ef_search values are tried."""

    def __init__(self, conn: psycopg.Connection, queries: int) -> None:
        self.conn = conn
        kind, _ = vi.column_type(conn)
        self.cast = kind
        self.queries = sample(conn, queries)
        truth = [_top_k(conn, v, i, exact=True, ef=None, cast=kind) for i, v in self.queries]
        self.truth = [ids for ids, _ in truth]
        self.exact_ms = [ms for _, ms in truth]

    def at(self, ef: int) -> tuple[float, float]:
        """(recall, p50 ms) of the index at ``ef``."""
        answers = [_top_k(self.conn, v, i, exact=False, ef=ef, cast=self.cast) for i, v in self.queries]
        recall = _recall([ids for ids, _ in answers], self.truth)
        return recall, statistics.median(ms for _, ms in answers)


def _measurement(
    probe: _Probe, info: vi.IndexInfo, target: float, ef: int, recall: float, p50: float
) -> RecallMeasurement:
    return RecallMeasurement(
        recall=round(recall, 4),
        target=target,
        queries=len(probe.queries),
        k=K,
        ef_search=ef,
        index=info.name,
        m=info.m,
        ef_construction=info.ef_construction,
        rows=info.rows,
        index_p50_ms=round(p50, 3),
        exact_p50_ms=round(statistics.median(probe.exact_ms), 3) if probe.exact_ms else 0.0,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def measure(conn: psycopg.Connection, queries: int = DEFAULT_QUERIES) -> RecallMeasurement | None:
    """Recall@10 of the index at the ef_search memcli searches with (None: no valid index or too few rows).

    Reads only; :func:`store` records the result.
    """
    info = vi.index_info(conn)
    if info is None or not info.valid or info.rows < 2 * K:
        return None
    target = recall_target(conn)
    ef = vi.ef_search_for(vi.stored_ef_search(conn), K)
    with _restored_settings(conn):
        probe = _Probe(conn, queries)
        if not probe.queries:
            return None
        recall, p50 = probe.at(ef)
    return _measurement(probe, info, target, ef, recall, p50)


def store(conn: psycopg.Connection, measurement: RecallMeasurement) -> None:
    from memcli.settings import set_setting

    set_setting(conn, vi.LAST_RECALL_KEY, asdict(measurement))


def store_from_report(conn: psycopg.Connection, report: Any) -> bool:
    """Record the recall a ``--deep`` health run measured; False when there is none or it cannot be
    written (a read-only role: the report itself is unaffected)."""
    result = next((r for r in report.results if r.name == "vector_recall"), None)
    measured = result.details.get("measurement") if result is not None else None
    if not isinstance(measured, dict):
        return False
    try:
        with conn.transaction():
            store(conn, RecallMeasurement(**measured))
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.OperationalError) or not isinstance(exc, psycopg.Error):
            raise
        return False
    return True


def last_measurement(conn: psycopg.Connection) -> RecallMeasurement | None:
    from memcli.settings import get_setting

    value = get_setting(conn, vi.LAST_RECALL_KEY)
    if not isinstance(value, dict):
        return None
    try:
        return RecallMeasurement(**value)
    except TypeError:  # written by another version: treat as never measured
        return None


def tune(
    conn: psycopg.Connection,
    *,
    target: float | None = None,
    queries: int = DEFAULT_QUERIES,
    dry_run: bool = False,
    candidates: tuple[int, ...] = EF_CANDIDATES,
) -> TuneResult:
    """Set ``search.ef_search`` to the least value that meets the recall target on a sample.

    ``conn`` must be autocommit (each probe query is its own short transaction). Takes the vector-index
    lock (LockedError, exit 75, while a rebuild or another tune runs). A table under :data:`MIN_ROWS`
    embedded rows is too small to sample: nothing is changed. When no ef_search meets the target, the
    best one is kept and a rebuild with larger parameters is recommended (``memcli index rebuild``).
    ``candidates`` are the ef_search values tried, in rising order.
    """
    from memcli.jobs.locks import job_lock
    from memcli.readiness import require_migrated
    from memcli.settings import set_setting

    require_migrated(conn)
    if not 1 <= queries <= 1000:
        raise ConfigError(f"queries must be between 1 and 1000, got {queries}")
    if target is not None:
        target = vi.check_recall_target(target)
    with job_lock(conn, [vi.LOCK_NAME], job="tune"):
        target = target if target is not None else recall_target(conn)
        info = vi.index_info(conn)
        if info is None or not info.valid:
            raise ConfigError("no valid vector index to tune", hint="build it: memcli index rebuild")
        counted = conn.execute("SELECT count(*) FROM semantic_memory WHERE embedding_vector IS NOT NULL")
        embedded = int(counted.fetchone()[0])  # type: ignore[index]
        result = TuneResult(target=target, rows=embedded, dry_run=dry_run)
        result.ef_search_before = vi.stored_ef_search(conn)
        if embedded < MIN_ROWS:
            result.too_small = True
            result.message = (
                f"only {embedded:,} embedded rows: too few to sample (at least {MIN_ROWS:,}); at this size "
                f"an exact scan is as fast as the index. Nothing changed."
            )
            return result
        probe = _Probe(conn, min(queries, embedded // 2))
        best: tuple[float, int, float] | None = None
        for ef in candidates:
            recall, p50 = probe.at(ef)
            result.sweep.append({"ef_search": ef, "recall": round(recall, 4), "p50_ms": round(p50, 3)})
            if best is None or recall > best[0] + 0.002:
                best = (recall, ef, p50)
            if recall >= target:
                best = (recall, ef, p50)
                break
        assert best is not None
        recall, ef, p50 = best
        result.ef_search = ef
        measurement = _measurement(probe, info, target, ef, recall, p50)
        if recall < target:
            measurement.rebuild_recommended = True
            m, efc = vi.recommended_parameters(info.rows)
            if (m, efc) <= (info.m, info.ef_construction):
                m, efc = info.m + 8, max(2 * (info.m + 8), info.ef_construction * 2)
            plan = vi.plan_build(
                info.rows,
                info.dimension or 0,
                m=m,
                ef_construction=efc,
                cap_mb=vi.build_memory_cap_mb(conn),
                column_type=info.column_type,
            )
            result.rebuild = {
                "m": m,
                "ef_construction": efc,
                "maintenance_work_mem_mb": plan.maintenance_work_mem_mb,
                "graph_mb": plan.graph_mb,
                "fits": plan.fits,
                "command": f"memcli index rebuild --m {m} --ef-construction {efc}",
            }
            result.message = (
                f"no ef_search up to {candidates[-1]} reaches recall@{K} {target:g} "
                f"(best {recall:.3f} at {ef}); the graph needs more links: rebuild with m={m}, "
                f"ef_construction={efc}"
            )
        else:
            result.message = f"ef_search {ef} meets recall@{K} {target:g} ({recall:.3f}, p50 {p50:.1f} ms)"
        result.measurement = measurement
        if not dry_run:
            set_setting(conn, vi.EF_SEARCH_KEY, ef)
            store(conn, measurement)
        return result
