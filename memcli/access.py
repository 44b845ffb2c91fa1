"""Searches' access records while a shadow column of ``semantic_memory`` is filled, and while a vector index
of it is built concurrently.

A search counts the rows it returns as read by updating them in place (``access_count + 1``,
``last_accessed_at``), heap-only as long as each page has room (revision 0006). ``CREATE INDEX
CONCURRENTLY`` holds one snapshot for its whole build, and no row version newer than it can be pruned
meanwhile: the versions those updates leave pile up, pages fill, the updates stop being heap-only, each then
inserts into every index of the table (the HNSW one included, where the copies of the hottest rows crowd the
searches' candidate lists), and searches slow down the longer the build runs (benchmarks/import_bench.py:
p99 six times the one before over a 205 s build).

The backfill before such a build locks the rows it fills, a batch at a time, and a search updating one of them
would wait for the batch's commit. So while memcli fills the shadow or builds the index (:func:`deferring`),
the setting ``search.access_deferred`` names the working session, and searches append ``(memory_id,
accessed_at)`` to ``semantic_memory_access`` instead (one heap insertion, no index). The search reads the flag
in the query it already makes for its settings (:mod:`memcli.search`), and follows it only while that session
is alive and the role may insert into the log: a build killed with its client leaves a flag that no search
follows. :func:`fold` adds the logged access to ``semantic_memory`` in bounded batches once the build is over;
what an interrupted one left is folded by the next re-embed or abort, or when the next build ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from memcli.jobs.common import DEFAULT_TIMEOUTS, Timeouts, maintenance_transaction, retry_on_lock
from memcli.schema import names

if TYPE_CHECKING:
    import uuid

    import psycopg
    from psycopg import sql

FLAG_KEY = "search.access_deferred"
LOG = names.ACCESS_LOG
FOLD_BATCH = 2000  # access records folded per transaction (rows locked at most: as many)
# A fold's batch waits this long for a row a search holds, then rolls back and retries (see fold).
FOLD_LOCK_TIMEOUT_MS = 100
FOLD_LOCK_RETRIES = 50

# For the search's context query (its parameters: DEFERRED_PARAMS): true while the flag names a live
# session and this role may append to the log (else the search updates in place, as always). Evaluated
# only when the flag is set.
DEFERRED_SQL = """
(SELECT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = (s.value ->> 'pid')::int)
        AND coalesce(has_table_privilege(to_regclass(%(access_log)s), 'INSERT'), false)
   FROM memory_settings s WHERE s.key = %(access_flag)s)
"""
DEFERRED_PARAMS = {"access_log": f"public.{LOG}", "access_flag": FLAG_KEY}


@dataclass
class FoldResult:
    records: int = 0  # access records folded
    memories: int = 0  # memories whose counts they raised (a memory deleted meanwhile is not counted)
    seconds: float = 0.0


def _log() -> sql.Identifier:
    from psycopg import sql

    return sql.Identifier(LOG)


def record(conn: psycopg.Connection, ids: list[uuid.UUID]) -> None:
    """Append an access record for each of ``ids`` (the deferred form of a search's access update)."""
    from psycopg import sql

    conn.execute(sql.SQL("INSERT INTO {} (memory_id) SELECT unnest(%s::uuid[])").format(_log()), (ids,))


@contextmanager
def deferring(conn: psycopg.Connection) -> Iterator[None]:
    """Searches log their access instead of updating ``semantic_memory`` for the duration of the block
    (``conn``, in autocommit mode, builds the index in it). On the way out the flag is cleared and the log
    folded, on a best-effort basis so that an error of the block is the one raised: a flag this session
    could not clear is cleared by the swap (or abort), and records not folded stay for the next fold."""
    from memcli.settings import set_setting

    if not exists(conn):  # a schema from before revision 0013: searches update in place
        yield
        return
    set_setting(
        conn, FLAG_KEY, {"pid": conn.info.backend_pid, "since": datetime.now().astimezone().isoformat()}
    )
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            clear(conn)
            fold(conn)


def exists(conn: psycopg.Connection) -> bool:
    """Whether the log is there (revision 0013)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{LOG}",)).fetchone()
    return bool(row and row[0])


def may_unlog(conn: psycopg.Connection) -> bool:
    """Whether the log is there and this role may delete from it (see :func:`unlog_sql`); a role that may
    not leaves the records to the next fold, which drops those of deleted memories."""
    row = conn.execute(
        "SELECT coalesce(has_table_privilege(to_regclass(%s), 'DELETE'), false)", (f"public.{LOG}",)
    ).fetchone()
    return bool(row and row[0])


def clear(conn: psycopg.Connection) -> None:
    """Searches update in place again (the flag's row removed)."""
    conn.execute("DELETE FROM memory_settings WHERE key = %s", (FLAG_KEY,))


def pending(conn: psycopg.Connection) -> int:
    """Access records not folded yet."""
    from psycopg import sql

    if not exists(conn):
        return 0
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_log())).fetchone()
    return int(row[0]) if row else 0


def fold_quietly(conn: psycopg.Connection, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> FoldResult | None:
    """:func:`fold` after work that has committed (a swap, an abort): a fold that fails leaves its records
    for the next one rather than turning the finished work into a failure."""
    try:
        return fold(conn, timeouts)
    except Exception:  # the records stay in the log, counted by status
        return None


def unlog_sql(ids: sql.Composable) -> sql.Composed:
    """A statement (or CTE body) removing the access records of the memories ``ids`` (a SQL expression
    yielding their ids): when memories are deleted (erasure, an import's rollback), their records go with
    them, rather than waiting for a fold; an import recreating the same ids must not inherit them."""
    from psycopg import sql

    return sql.SQL("DELETE FROM {} WHERE memory_id IN ({})").format(_log(), ids)


def fold(
    conn: psycopg.Connection, timeouts: Timeouts = DEFAULT_TIMEOUTS, *, batch_size: int = FOLD_BATCH
) -> FoldResult:
    """Add the logged access to ``semantic_memory`` and empty the log, ``batch_size`` records a transaction.

    Each batch deletes its records and raises the counts in one transaction, so a record is counted once,
    whatever interrupts it. Records appended while the fold runs are folded too, or by the next fold.

    A search locks the rows it returns in whatever order its plan meets them (a sequential scan on a small
    table: their physical order), so no order the fold takes rules out a cycle with one. The fold therefore
    waits at most ``FOLD_LOCK_TIMEOUT_MS`` for a row, well under Postgres's ``deadlock_timeout`` (1 s), then
    rolls its batch back and tries again: in a cycle it is always the one that gives way, before Postgres
    would pick a victim, and the search never sees an error.
    """
    from psycopg import sql

    # One statement a batch: the records taken, added up per memory, and the counts raised.
    statement = sql.SQL(
        """
        WITH taken AS (
            DELETE FROM {log}
             WHERE ctid = ANY(ARRAY(SELECT ctid FROM {log} LIMIT %s FOR UPDATE SKIP LOCKED))
            RETURNING memory_id, accessed_at
        ), added AS (
            UPDATE semantic_memory m
               SET access_count = coalesce(m.access_count, 0) + a.n,
                   last_accessed_at = greatest(m.last_accessed_at, a.last)
              FROM (SELECT memory_id, count(*) AS n, max(accessed_at) AS last
                      FROM taken GROUP BY memory_id) AS a
             WHERE m.id = a.memory_id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM added)
        """
    ).format(log=_log())
    result = FoldResult()
    if not exists(conn):
        return result
    yielding = replace(
        timeouts,
        lock_timeout_ms=min(timeouts.lock_timeout_ms, FOLD_LOCK_TIMEOUT_MS),
        lock_retries=max(timeouts.lock_retries, FOLD_LOCK_RETRIES),
    )

    def batch() -> tuple[int, int]:
        with maintenance_transaction(conn, yielding):
            row = conn.execute(statement, (batch_size,)).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

    started = time.perf_counter()
    while True:
        records, memories = retry_on_lock(yielding.lock_retries, batch)
        if not records:
            break
        result.records += records
        result.memories += memories
    result.seconds = time.perf_counter() - started
    return result
