"""Monthly upkeep of the memory tables: statistics, vacuum where it helps, and online index rebuilds.

- ``vacuum_analyze``: ``VACUUM (ANALYZE)`` for a table with many dead rows (after a big cleanup), plain
  ``ANALYZE`` otherwise. Neither blocks the application's reads or writes.
- ``reindex``: ``REINDEX INDEX CONCURRENTLY`` for every index of the memory tables, one at a time, so the
  application keeps reading and writing. The HNSW vector index is the exception: it needs no periodic
  rebuild (VACUUM repairs its graph) and a rebuild costs minutes to hours, so it is rebuilt only when
  :func:`memcli.vector_index.rebuild_reason` says so (invalid, bloated, or a measured recall that no
  ef_search can lift), with its build memory sized to the graph (:func:`memcli.vector_index.run_rebuild`).
  A concurrent rebuild that fails (lock timeout, cancel) leaves an invalid ``<index>_ccnew`` copy behind;
  such leftovers, from this run or an earlier one, are dropped (``DROP INDEX CONCURRENTLY``).
  Other invalid indexes are rebuilt, which makes them valid again.

Both need a connection outside any transaction (VACUUM and the CONCURRENTLY forms refuse to run in one);
they set session-level ``lock_timeout`` (so they never queue in front of the application's writes) and no
statement timeout (a rebuild of a large vector index takes minutes), restoring both afterwards.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli.errors import JobFailedError, MemcliError, first_line
from memcli.jobs.common import own_transactions, partial_on_failure
from memcli.schema.names import MEMORY_TABLES

if TYPE_CHECKING:
    import psycopg

DEAD_RATIO = 0.1  # vacuum when dead rows exceed this share of live rows ...
MIN_DEAD_ROWS = 1000  # ... and this many (tiny tables are not worth a VACUUM)
DDL_LOCK_TIMEOUT_MS = 10_000
_LEFTOVER = re.compile(r"_cc(new|old)\d*$")


@dataclass
class VacuumResult:
    dry_run: bool
    tables: list[dict[str, Any]] = field(default_factory=list)  # table, action, live_rows, dead_rows, seconds

    @property
    def rows(self) -> int:
        return len(self.tables)


@dataclass
class ReindexResult:
    dry_run: bool
    rebuilt: list[dict[str, Any]] = field(default_factory=list)  # index, table, seconds (dry run: planned)
    leftovers_dropped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # index, error
    skipped: list[dict[str, str]] = field(default_factory=list)  # index, table, reason (healthy vector index)

    @property
    def rows(self) -> int:
        return len(self.rebuilt)


@contextmanager
def _ddl_session(conn: psycopg.Connection, lock_timeout_ms: int) -> Iterator[None]:
    """Session-level timeouts for statements that cannot run in a transaction; restored afterwards."""
    before = conn.execute(
        "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
    ).fetchone()
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', '0', false)",
        (f"{int(lock_timeout_ms)}ms",),
    )
    try:
        yield
    finally:
        if before is not None and not conn.closed:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                before,
            )


def existing_tables(conn: psycopg.Connection, tables: Sequence[str] = MEMORY_TABLES) -> list[str]:
    # A partitioned table holds no rows itself: its partitions are vacuumed and reindexed (a plain table is
    # its own only leaf).
    rows = conn.execute(
        """
        SELECT c.relname FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n)
        CROSS JOIN LATERAL (
            SELECT relid FROM pg_partition_tree(to_regclass(u.t)) WHERE isleaf
            UNION ALL
            SELECT to_regclass(u.t) WHERE NOT EXISTS (SELECT 1 FROM pg_partitioned_table
                                                      WHERE partrelid = to_regclass(u.t))
        ) p
        JOIN pg_class c ON c.oid = p.relid
        WHERE to_regclass(u.t) IS NOT NULL
        ORDER BY u.n, c.relname
        """,
        (list(tables),),
    ).fetchall()
    return [r[0] for r in rows]


def _attempt(conn: psycopg.Connection, statement: Any) -> str | None:
    """Run one maintenance statement; its error message, or None. A lost connection still raises."""
    return _error_of(conn, lambda: conn.execute(statement))


def _error_of(conn: psycopg.Connection, step: Callable[[], object]) -> str | None:
    """Run one maintenance step; its error message, or None, so the other steps still run. A lost
    connection still raises: nothing after it could run."""
    try:
        step()
    except MemcliError as exc:
        return exc.message
    except Exception as exc:
        if conn.closed or conn.broken:
            raise
        return first_line(exc)
    return None


def vacuum_analyze(
    conn: psycopg.Connection,
    *,
    tables: Sequence[str] = MEMORY_TABLES,
    dry_run: bool = False,
    dead_ratio: float = DEAD_RATIO,
    min_dead_rows: int = MIN_DEAD_ROWS,
    lock_timeout_ms: int = DDL_LOCK_TIMEOUT_MS,
) -> VacuumResult:
    """ANALYZE every memory table; VACUUM (ANALYZE) those with many dead rows.

    A table that fails (lock timeout) does not stop the others; JobFailedError at the end names it.
    """
    from psycopg import sql

    result = VacuumResult(dry_run=dry_run)
    with own_transactions(conn), _ddl_session(conn, lock_timeout_ms), partial_on_failure(result):
        for table in existing_tables(conn, tables):
            stats = conn.execute(
                "SELECT coalesce(n_live_tup, 0), coalesce(n_dead_tup, 0) FROM pg_stat_user_tables "
                "WHERE relid = to_regclass(%s)",
                (table,),
            ).fetchone()
            live, dead = (int(stats[0]), int(stats[1])) if stats else (0, 0)
            vacuum = dead >= min_dead_rows and dead >= dead_ratio * max(live, 1)
            entry: dict[str, Any] = {
                "table": table,
                "action": "vacuum_analyze" if vacuum else "analyze",
                "live_rows": live,
                "dead_rows": dead,
            }
            result.tables.append(entry)
            if dry_run:
                continue
            started = time.perf_counter()
            statement = "VACUUM (ANALYZE) {}" if vacuum else "ANALYZE {}"
            error = _attempt(conn, sql.SQL(statement).format(sql.Identifier(table)))
            entry["seconds"] = round(time.perf_counter() - started, 3)
            if error:
                entry["error"] = error
        failed = [t for t in result.tables if t.get("error")]
        if failed:
            raise JobFailedError(
                f"could not vacuum/analyze {', '.join(t['table'] for t in failed)} ({failed[0]['error']})",
                hint="the other tables were done; run memcli maintain monthly again when it is quieter",
            )
    return result


_INDEXES = """
SELECT n.nspname, ic.relname, c.relname, x.indisvalid, am.amname IN ('hnsw', 'ivfflat')
FROM pg_index x
JOIN pg_am am ON am.oid = (SELECT relam FROM pg_class WHERE oid = x.indexrelid)
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE x.indrelid IN (SELECT to_regclass(t) FROM unnest(%s::text[]) AS t)
ORDER BY c.relname, ic.relname
"""


def _indexes(conn: psycopg.Connection, tables: Sequence[str]) -> list[tuple[str, str, str, bool, bool]]:
    return [tuple(row) for row in conn.execute(_INDEXES, (list(tables),)).fetchall()]  # type: ignore[misc]


def _drop_leftovers(conn: psycopg.Connection, tables: Sequence[str], result: ReindexResult) -> None:
    """Drop invalid copies left by failed concurrent rebuilds; one that cannot be dropped now is reported."""
    from psycopg import sql

    for schema, index, table, valid, _vector in _indexes(conn, tables):
        if not valid and _LEFTOVER.search(index):
            statement = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, index))
            error = _attempt(conn, statement)
            if error:
                result.failed.append(
                    {"index": index, "table": table, "error": f"leftover not dropped: {error}"}
                )
            else:
                result.leftovers_dropped.append(index)


_HEALTHY = "healthy vector index: HNSW needs no periodic rebuild"


def _vector_rebuild_reason(conn: psycopg.Connection, index: str) -> str | None:
    """Why memcli's vector index needs rebuilding; another vector index (not memcli's) only when invalid."""
    from memcli import vector_index

    if index != vector_index.INDEX_NAME:
        valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (index,))
        row = valid.fetchone()
        return None if row is None or row[0] else "invalid"
    return vector_index.rebuild_reason(conn)


def _rebuild_vector_index(conn: psycopg.Connection, reason: str) -> str | None:
    """Rebuild memcli's vector index online with sized build memory; its error message, or None.

    A recall that no ef_search lifts needs a denser graph: the recommended parameters for the table's
    size. Otherwise (invalid, bloated) the index keeps its parameters.
    """
    from memcli import vector_index

    def rebuild() -> None:
        plan = vector_index.plan_rebuild(conn)
        if reason.startswith("recall") and plan.current is not None:
            m, ef_construction = vector_index.recommended_parameters(plan.current.rows)
            m, ef_construction = max(m, plan.current.m), max(ef_construction, plan.current.ef_construction)
            plan = vector_index.plan_rebuild(conn, m=m, ef_construction=ef_construction)
        for _ in vector_index.run_rebuild(conn, None, plan):
            pass

    return _error_of(conn, rebuild)


def reindex(
    conn: psycopg.Connection,
    *,
    tables: Sequence[str] = MEMORY_TABLES,
    dry_run: bool = False,
    lock_timeout_ms: int = DDL_LOCK_TIMEOUT_MS,
) -> ReindexResult:
    """Rebuild the memory tables' indexes online, one at a time; the vector index only when it needs it.

    An index that cannot be rebuilt now (lock timeout while the application holds a long transaction)
    keeps its old, valid version; the invalid copy the attempt left is dropped, and JobFailedError at the
    end names the indexes. The others are rebuilt regardless.
    """
    from psycopg import sql

    result = ReindexResult(dry_run=dry_run)
    with own_transactions(conn), _ddl_session(conn, lock_timeout_ms), partial_on_failure(result):
        present = existing_tables(conn, tables)
        if dry_run:
            for _schema, index, table, valid, vector in _indexes(conn, present):
                if not valid and _LEFTOVER.search(index):
                    result.leftovers_dropped.append(index)
                elif vector and (reason := _vector_rebuild_reason(conn, index)) is None:
                    result.skipped.append({"index": index, "table": table, "reason": _HEALTHY})
                else:
                    result.rebuilt.append({"index": index, "table": table, "valid": valid})
            return result
        _drop_leftovers(conn, present, result)
        for schema, index, table, valid, vector in _indexes(conn, present):
            if not valid and _LEFTOVER.search(index):
                continue  # a leftover that could not be dropped: never rebuild it
            started = time.perf_counter()
            if vector:
                reason = _vector_rebuild_reason(conn, index)
                if reason is None:
                    result.skipped.append({"index": index, "table": table, "reason": _HEALTHY})
                    continue
                error = _rebuild_vector_index(conn, reason)
            else:
                statement = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(schema, index))
                error = _attempt(conn, statement)
            if error:
                result.failed.append({"index": index, "table": table, "error": error})
                _drop_leftovers(conn, [table], result)
                continue
            seconds = round(time.perf_counter() - started, 3)
            entry = {"index": index, "table": table, "valid": valid, "seconds": seconds}
            if vector:
                entry["reason"] = reason
            result.rebuilt.append(entry)
        if result.failed:
            names = ", ".join(f["index"] for f in result.failed)
            raise JobFailedError(
                f"could not rebuild {len(result.failed)} index(es): {names} ({result.failed[0]['error']})",
                hint="the old indexes are intact; run memcli maintain monthly again when it is quieter",
            )
    return result
