"""Cleanup of expired memories, in batches that never block the application.

``cleanup_expired`` deletes what ``SELECT cleanup_expired_memory()`` deletes, but safely on big tables:
1. ``conversation_memory`` rows whose ``expires_at`` has passed, a batch at a time: the batch's ids are
   picked by the ``expires_at`` index with ``FOR UPDATE SKIP LOCKED`` (rows the application is updating
   right now are left for the next run), deleted, committed;
2. then ``context_relevance`` rows of sessions that have no ``conversation_memory`` and no
   ``semantic_memory`` left (their context no longer exists), batched the same way.

On the partitioned layout, step 1 first detaches and drops the partitions of ``conversation_memory`` whose
every row has expired (see ``memcli.partitions.upkeep``), and deletes rows only where it must: expired rows
of partitions that still hold live ones, the default partition, or one tier (``memory_type``).

The set of rows is fixed when the job starts (``expires_at`` before the database's ``now()`` at that moment,
minus ``older_than``), so a run always ends and its dry run counts exactly what it would delete.

``cleanup_stale_relevance`` removes relevance rows whose score has decayed below ``relevance.min_score``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcli.jobs.common import (
    DEFAULT_TIMEOUTS,
    TIERS,
    ProgressCallback,
    Timeouts,
    attach_partial,
    check_batch_size,
    check_memory_type,
    in_batch,
    own_transactions,
    partial_on_failure,
)
from memcli.partitions.layout import CONVERSATION_MEMORY, is_partitioned
from memcli.partitions.upkeep import drop_partitions
from memcli.settings import get_setting

if TYPE_CHECKING:
    import psycopg

SAMPLE_SESSIONS = 10


@dataclass(frozen=True)
class CleanupOptions:
    """What a cleanup is asked to do: ``memcli cleanup``'s options, and the daily job's cleanup step.

    ``older_than`` narrows it to memories that expired at least that long ago; ``memory_type`` to one tier;
    ``batch_size`` defaults to the setting ``cleanup.batch_size``; ``max_runtime`` stops between batches.
    ``drop_only`` (default: setting ``cleanup.partition_drop_only``; partitioned layout only): expired
    memories leave with their month's partition, rows are deleted only from the default partition.
    """

    dry_run: bool = False
    older_than: timedelta | None = None
    memory_type: str | None = None
    batch_size: int | None = None
    max_runtime: timedelta | None = None
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    drop_only: bool | None = None


@dataclass
class CleanupResult:
    dry_run: bool
    cutoff: datetime | None = None  # memories with expires_at before this are (or would be) deleted
    older_than_seconds: float | None = None
    memory_type: str | None = None
    batch_size: int = 0
    deleted: dict[str, int] = field(
        default_factory=lambda: {"conversation_memory": 0, "context_relevance": 0}
    )
    deleted_by_tier: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    would_delete: dict[str, int] | None = None  # dry run only
    would_delete_by_tier: dict[str, int] | None = None  # dry run only
    sample_sessions: list[dict[str, Any]] = field(default_factory=list)  # dry run: most-expired sessions
    partitions_dropped: list[str] = field(default_factory=list)  # whole partitions of expired rows
    would_drop_partitions: list[str] | None = None  # dry run only
    batches: int = 0
    longest_batch_ms: float = 0.0  # the longest single batch transaction = the longest lock held
    complete: bool = True
    stopped: str | None = None  # why the run ended early (max runtime)
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return (
            sum(self.would_delete.values()) if self.would_delete is not None else sum(self.deleted.values())
        )


@dataclass
class RelevanceCleanupResult:
    dry_run: bool
    min_score: float = 0.0
    deleted: int = 0
    would_delete: int | None = None  # dry run only
    batches: int = 0
    longest_batch_ms: float = 0.0
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.would_delete if self.would_delete is not None else self.deleted


def _expired_filter(memory_type: str | None, alias: str = "", only_in: bool = False) -> Any:
    """``expires_at < cutoff`` [and the tier] [and in the partitions ``only_in``]; values come from the
    ``cutoff`` / ``memory_type`` / ``only_in`` parameters."""
    from psycopg import sql

    prefix = sql.SQL("{}.").format(sql.Identifier(alias)) if alias else sql.SQL("")
    clause = sql.SQL("{}expires_at < %(cutoff)s").format(prefix)
    if memory_type is not None:
        clause = sql.SQL("{} AND {}memory_type = %(memory_type)s").format(clause, prefix)
    if only_in:
        clause = sql.SQL("{} AND {}tableoid = ANY(%(only_in)s::regclass[])").format(clause, prefix)
    return clause


# ``id = ANY(ARRAY(subquery))`` makes the delete a primary-key lookup of the batch's ids; a join with the
# subquery lets the planner hash-join against a scan of the whole table in every batch.
_DELETE_MEMORIES = """
WITH gone AS (
    DELETE FROM conversation_memory
    WHERE id = ANY(ARRAY(
        SELECT id FROM conversation_memory
        WHERE {filter}
        ORDER BY expires_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING memory_type
)
SELECT memory_type, count(*) FROM gone GROUP BY memory_type
"""

# The orphan rule of cleanup_expired_memory(): no conversation_memory and no semantic_memory left.
_DELETE_ORPHANS = """
WITH gone AS (
    DELETE FROM context_relevance
    WHERE id = ANY(ARRAY(
        SELECT cr.id FROM context_relevance cr
        WHERE NOT EXISTS (SELECT 1 FROM conversation_memory cm WHERE cm.session_id = cr.session_id)
          AND NOT EXISTS (SELECT 1 FROM semantic_memory sm WHERE sm.session_id = cr.session_id)
        LIMIT %(limit)s
        FOR UPDATE OF cr SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM gone
"""

# Dry run: relevance rows that will be orphans once the selected memories are gone.
_ORPHANS_AFTER = """
SELECT count(*) FROM context_relevance cr
WHERE NOT EXISTS (
    SELECT 1 FROM conversation_memory cm
    WHERE cm.session_id = cr.session_id AND NOT coalesce({filter}, false)
)
AND NOT EXISTS (SELECT 1 FROM semantic_memory sm WHERE sm.session_id = cr.session_id)
"""


def cleanup_expired(
    conn: psycopg.Connection,
    options: CleanupOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> CleanupResult:
    """Delete expired memories (and the relevance rows left without context) in short batches.

    A run stopped by ``options.max_runtime`` has ``complete`` False; a re-run continues.
    ``conn`` must be idle: every batch commits on its own.
    """
    from psycopg import sql

    options = options or CleanupOptions()
    dry_run, older_than, batch_size = options.dry_run, options.older_than, options.batch_size
    max_runtime, timeouts, drop_only = options.max_runtime, options.timeouts, options.drop_only
    memory_type = check_memory_type(options.memory_type)
    started = time.perf_counter()
    with own_transactions(conn):
        size = check_batch_size(
            batch_size if batch_size is not None else get_setting(conn, "cleanup.batch_size")
        )
        cutoff = conn.execute("SELECT now() - %s::interval", (older_than or timedelta(0),)).fetchone()[0]  # type: ignore[index]
        result = CleanupResult(
            dry_run=dry_run,
            cutoff=cutoff,
            older_than_seconds=older_than.total_seconds() if older_than is not None else None,
            memory_type=memory_type,
            batch_size=size,
        )
        params: dict[str, Any] = {"cutoff": cutoff, "memory_type": memory_type, "limit": size}
        drop_whole = memory_type is None and is_partitioned(conn, CONVERSATION_MEMORY.table)
        if drop_only is None:
            drop_only = bool(get_setting(conn, "cleanup.partition_drop_only"))
        drop_only = drop_only and drop_whole
        if drop_only:
            params["only_in"] = [CONVERSATION_MEMORY.default_partition]
            if dry_run:  # the partitions a real run drops first count too
                params["only_in"] += drop_partitions(
                    conn, CONVERSATION_MEMORY, dry_run=True, cutoff=cutoff, timeouts=timeouts
                ).dropped
        flt = _expired_filter(memory_type, only_in=drop_only)
        if drop_whole and not dry_run:
            try:
                _drop_partitions(conn, cutoff, timeouts, result)
            except BaseException as exc:
                result.complete = False
                result.duration_seconds = time.perf_counter() - started
                attach_partial(exc, result)
                raise
        counts = conn.execute(
            sql.SQL("SELECT memory_type, count(*) FROM conversation_memory WHERE {} GROUP BY 1").format(flt),
            params,
        ).fetchall()
        expired_by_tier = dict.fromkeys(TIERS, 0) | {tier: int(n) for tier, n in counts}
        total = sum(expired_by_tier.values())

        if dry_run:
            if drop_whole:
                result.would_drop_partitions = drop_partitions(
                    conn, CONVERSATION_MEMORY, dry_run=True, cutoff=cutoff, timeouts=timeouts
                ).dropped
            orphans = conn.execute(
                sql.SQL(_ORPHANS_AFTER).format(filter=_expired_filter(memory_type, "cm", drop_only)), params
            ).fetchone()
            result.would_delete_by_tier = expired_by_tier
            result.would_delete = {"conversation_memory": total, "context_relevance": int(orphans[0])}  # type: ignore[index]
            result.sample_sessions = [
                {"session_id": session, "expired": int(n)}
                for session, n in conn.execute(
                    sql.SQL(
                        "SELECT session_id, count(*) FROM conversation_memory WHERE {} "
                        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %(sample)s"
                    ).format(flt),
                    {**params, "sample": SAMPLE_SESSIONS},
                ).fetchall()
            ]
            result.duration_seconds = time.perf_counter() - started
            return result

        deadline = started + max_runtime.total_seconds() if max_runtime is not None else None
        delete_memories = sql.SQL(_DELETE_MEMORIES).format(filter=flt)
        try:
            if progress:
                progress(0, total)
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    result.complete, result.stopped = False, "max runtime reached"
                    break
                batch_started = time.perf_counter()

                def book(rows: list[Any], batch_started: float = batch_started) -> None:
                    if not rows:
                        return
                    result.batches += 1
                    result.longest_batch_ms = max(
                        result.longest_batch_ms, (time.perf_counter() - batch_started) * 1000
                    )
                    for tier, n in rows:
                        result.deleted_by_tier[tier] = result.deleted_by_tier.get(tier, 0) + int(n)
                    result.deleted["conversation_memory"] += sum(int(n) for _, n in rows)

                rows = in_batch(
                    conn,
                    timeouts,
                    lambda: conn.execute(delete_memories, params).fetchall(),
                    book,
                    rows=lambda tiers: sum(int(n) for _, n in tiers),
                )
                deleted = sum(int(n) for _, n in rows)
                if deleted == 0:
                    break
                if progress:
                    done = result.deleted["conversation_memory"]
                    progress(done, max(total, done))
                if deleted < size:  # SKIP LOCKED found no more unlocked candidates
                    break
            if result.complete:
                _delete_orphans(conn, params, timeouts, result, deadline)
        except BaseException as exc:
            result.complete = False
            result.duration_seconds = time.perf_counter() - started
            attach_partial(exc, result)
            raise
    result.duration_seconds = time.perf_counter() - started
    return result


def _drop_partitions(
    conn: psycopg.Connection, cutoff: datetime, timeouts: Timeouts, result: CleanupResult
) -> None:
    """Whole partitions of expired memories go first: no row-by-row delete for them."""
    dropped = drop_partitions(conn, CONVERSATION_MEMORY, cutoff=cutoff, timeouts=timeouts)
    result.partitions_dropped.extend(dropped.dropped)
    result.deleted["conversation_memory"] += dropped.rows
    for tier, n in dropped.dropped_by_tier.items():
        result.deleted_by_tier[tier] = result.deleted_by_tier.get(tier, 0) + n
    result.longest_batch_ms = max(result.longest_batch_ms, dropped.longest_lock_ms)


def _count(cursor: psycopg.Cursor[Any]) -> int:
    """The single ``count(*)`` a batch statement returns."""
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _delete_orphans(
    conn: psycopg.Connection,
    params: dict[str, Any],
    timeouts: Timeouts,
    result: CleanupResult,
    deadline: float | None,
) -> None:
    while True:
        if deadline is not None and time.perf_counter() >= deadline:
            result.complete, result.stopped = False, "max runtime reached"
            return
        batch_started = time.perf_counter()

        def book(deleted: int, batch_started: float = batch_started) -> None:
            if deleted:
                result.batches += 1
                result.longest_batch_ms = max(
                    result.longest_batch_ms, (time.perf_counter() - batch_started) * 1000
                )
                result.deleted["context_relevance"] += deleted

        deleted = in_batch(
            conn, timeouts, lambda: _count(conn.execute(_DELETE_ORPHANS, params)), book, rows=int
        )
        if deleted == 0 or deleted < params["limit"]:
            return


_DELETE_STALE = """
WITH gone AS (
    DELETE FROM context_relevance
    WHERE id = ANY(ARRAY(
        SELECT id FROM context_relevance
        WHERE relevance_score < %(min_score)s
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM gone
"""


def cleanup_stale_relevance(
    conn: psycopg.Connection,
    *,
    dry_run: bool = False,
    min_score: float | None = None,
    batch_size: int | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> RelevanceCleanupResult:
    """Delete ``context_relevance`` rows whose score decayed below ``min_score`` (settings default)."""
    started = time.perf_counter()
    with own_transactions(conn):
        threshold = float(min_score if min_score is not None else get_setting(conn, "relevance.min_score"))
        size = check_batch_size(
            batch_size if batch_size is not None else get_setting(conn, "cleanup.batch_size")
        )
        result = RelevanceCleanupResult(dry_run=dry_run, min_score=threshold)
        params = {"min_score": threshold, "limit": size}
        if dry_run:
            row = conn.execute(
                "SELECT count(*) FROM context_relevance WHERE relevance_score < %(min_score)s", params
            ).fetchone()
            result.would_delete = int(row[0]) if row else 0
        else:
            with partial_on_failure(result):
                while True:
                    batch_started = time.perf_counter()

                    def book(deleted: int, batch_started: float = batch_started) -> None:
                        if deleted:
                            result.batches += 1
                            result.deleted += deleted
                            result.longest_batch_ms = max(
                                result.longest_batch_ms, (time.perf_counter() - batch_started) * 1000
                            )

                    deleted = in_batch(
                        conn, timeouts, lambda: _count(conn.execute(_DELETE_STALE, params)), book, rows=int
                    )
                    if deleted == 0 or deleted < size:
                        break
    result.duration_seconds = time.perf_counter() - started
    return result
