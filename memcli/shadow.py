"""Changing the vector column of ``semantic_memory`` online, through shadow columns.

The application keeps reading and writing the live columns while the new values are built beside them:

1. ``prepare``: add the shadow columns (``embedding_vector_next`` of the new type, and the per-row
   ``embedding_model_next``), and a trigger that clears a row's shadow when the column it is derived from
   changes (a memory's text edited mid-way is computed again, never swapped in stale). Catalog-only DDL under
   ``lock_timeout``: it never rewrites the table.
2. ``backfill``: fill the shadows in bounded batches (one transaction each, the maintenance timeouts), the
   next batch computed while the current one is written. Rows whose shadow is still NULL are the work
   left, so an interrupted backfill resumes where it stopped; a row the application changed while its
   value was computed is not written (its version is checked) and is computed again by another pass.
3. ``build_index``: the new HNSW index, ``CREATE INDEX CONCURRENTLY`` (writes continue; an invalid index
   left by an interrupted build is dropped and built again).
4. ``swap``: one short transaction (``lock_timeout``; the table is locked for the catalog changes only):
   fill the few rows written since the last batch, drop the live columns (their index goes with them),
   rename the shadows and the index to the live names, drop the trigger, and let the caller record the new
   model in the same transaction. Before the swap commits, the old columns are untouched: an interrupted or
   aborted change leaves the old model fully working.

``abort`` drops the shadows, their index and the trigger. A :class:`ShadowSpec` says what is being changed
and from which column the new value is derived: re-embedding derives it from ``content_text`` with a
model; a type change (``vector`` to ``halfvec``) derives it from ``embedding_vector`` itself.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli import access
from memcli.errors import MemcliError
from memcli.jobs.common import (
    DEFAULT_TIMEOUTS,
    ProgressCallback,
    Timeouts,
    in_batch,
    maintenance_transaction,
)
from memcli.jobs.prefetch import prefetched, prefetched_in_process, processes_available
from memcli.jobs.priority import lower_thread_priority
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from memcli.vector_index import BuildPlan

TABLE = "semantic_memory"
LIVE_COLUMN = "embedding_vector"
LIVE_MODEL_COLUMN = "embedding_model"
LIVE_INDEX = "idx_semantic_memory_vector"
SHADOW_COLUMN = "embedding_vector_next"
SHADOW_MODEL_COLUMN = "embedding_model_next"
SHADOW_INDEX = "idx_semantic_memory_vector_next"
TRIGGER = "trigger_semantic_memory_shadow"
TRIGGER_FUNCTION = "memcli_shadow_stale"
BATCH_TABLE = "memcli_shadow_batch"  # temporary, per session
MAX_SWAP_CATCHUP = 5000  # rows the swap may still fill inside its transaction; more: backfill first
DEFAULT_BATCH_SIZE = names.SHADOW_BATCH_SIZE
LOCK_ROWS = 500  # rows a backfill transaction updates (and holds locked until it commits)
MAX_PASSES = 3  # backfill passes over rows the application changed while they were being computed

# Values for the rows of one batch: given the source column's values, the new column's values (numpy arrays
# or pgvector's Vector / HalfVector objects, one per row).
Fill = Callable[[Sequence[Any]], Sequence[Any]]


class SwapNotReady(MemcliError):
    """The swap found too many rows without a new value (the application wrote faster than the backfill)."""


@dataclass(frozen=True)
class ShadowSpec:
    """What changes: the new column type (``vector(768)``, ``halfvec(384)``), the HNSW operator class for it,
    the column the new value is derived from, and the model name to store per row."""

    column_type: str
    opclass: str
    source_column: str  # content_text (re-embed) or embedding_vector (type change)
    model: str | None  # embedding_model of the rows after the swap
    index_options: str = ""  # e.g. "WITH (m = 16, ef_construction = 64)"


@dataclass
class ShadowProgress:
    exists: bool
    column_type: str | None = None
    total: int = 0  # rows with a source value
    done: int = 0  # of those, rows whose shadow is filled
    index: str | None = None  # None, "building" (invalid) or "valid"

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done)


def _ident(name: str) -> sql.Identifier:
    from psycopg import sql

    return sql.Identifier(name)


def shadow_progress(conn: psycopg.Connection) -> ShadowProgress:
    """Is a change under way, and how far is it (counts are exact: status is not run in a hot loop)."""
    from psycopg import sql

    row = conn.execute(
        """
        SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
        WHERE a.attrelid = to_regclass('public.semantic_memory') AND a.attname = %s AND NOT a.attisdropped
        """,
        (SHADOW_COLUMN,),
    ).fetchone()
    if row is None:
        return ShadowProgress(exists=False)
    progress = ShadowProgress(exists=True, column_type=row[0])
    trigger_source = conn.execute(
        "SELECT obj_description(to_regprocedure(%s), 'pg_proc')", (f"{TRIGGER_FUNCTION}()",)
    ).fetchone()
    source = trigger_source[0] if trigger_source and trigger_source[0] else "content_text"
    counts = conn.execute(
        sql.SQL("SELECT count({src}), count({shadow}) FROM {table}").format(
            src=_ident(source), shadow=_ident(SHADOW_COLUMN), table=_ident(TABLE)
        )
    ).fetchone()
    assert counts is not None
    progress.total, progress.done = int(counts[0]), int(counts[1])
    index = conn.execute(
        "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (f"public.{SHADOW_INDEX}",),
    ).fetchone()
    if index is not None:
        progress.index = "valid" if index[0] else "building"
    return progress


def prepare(conn: psycopg.Connection, spec: ShadowSpec, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> None:
    """Add the shadow columns and the staleness trigger (idempotent for the same spec)."""
    from psycopg import sql

    with maintenance_transaction(conn, timeouts):
        conn.execute(
            sql.SQL(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {shadow} {type}, "
                "ADD COLUMN IF NOT EXISTS {shadow_model} text"
            ).format(
                table=_ident(TABLE),
                shadow=_ident(SHADOW_COLUMN),
                type=sql.SQL(spec.column_type),
                shadow_model=_ident(SHADOW_MODEL_COLUMN),
            )
        )
        # The function body names the source column; its comment records it for status and resume.
        conn.execute(
            sql.SQL(
                """
                CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
                BEGIN
                    IF TG_OP = 'INSERT' OR NEW.{src} IS DISTINCT FROM OLD.{src} THEN
                        NEW.{shadow} := NULL;
                        NEW.{shadow_model} := NULL;
                    END IF;
                    RETURN NEW;
                END
                $fn$
                """
            ).format(
                fn=_ident(TRIGGER_FUNCTION),
                src=_ident(spec.source_column),
                shadow=_ident(SHADOW_COLUMN),
                shadow_model=_ident(SHADOW_MODEL_COLUMN),
            )
        )
        conn.execute(
            sql.SQL("COMMENT ON FUNCTION {fn}() IS {src}").format(
                fn=_ident(TRIGGER_FUNCTION), src=sql.Literal(spec.source_column)
            )
        )
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(_ident(TRIGGER), _ident(TABLE)))
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION {fn}()"
            ).format(trigger=_ident(TRIGGER), table=_ident(TABLE), fn=_ident(TRIGGER_FUNCTION))
        )


@dataclass
class BackfillResult:
    filled: int = 0
    batches: int = 0
    seconds: float = 0.0
    fill_seconds: float = 0.0  # time spent computing values (the embedder), the rest is the database


def _base_type(column_type: str) -> str:
    return column_type.split("(", 1)[0].strip()


def _stage(
    conn: psycopg.Connection,
    spec: ShadowSpec,
    ids: Sequence[uuid.UUID],
    values: Sequence[Any],
    versions: Sequence[str] | None,
    cur: psycopg.Cursor[Any] | None = None,
) -> None:
    """Put a batch's new values, numbered from 0, in a temporary table (binary COPY, no row locks)."""
    from psycopg import sql

    from memcli.vector_copy import vector_cursor

    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (n int, id uuid, v {}, x text)").format(
            _ident(BATCH_TABLE), sql.SQL(spec.column_type)
        )
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(_ident(BATCH_TABLE)))
    marks = versions if versions is not None else [None] * len(ids)
    with (
        vector_cursor(conn) if cur is None else contextlib.nullcontext(cur) as cursor,
        cursor.copy(
            sql.SQL("COPY {} (n, id, v, x) FROM STDIN (FORMAT BINARY)").format(_ident(BATCH_TABLE))
        ) as copy,
    ):
        copy.set_types(["int4", "uuid", _base_type(spec.column_type), "text"])
        for n, row in enumerate(zip(ids, values, marks, strict=True)):
            copy.write_row((n, *row))


def _apply(conn: psycopg.Connection, spec: ShadowSpec, first: int, stop: int) -> int:
    """Set the shadows of the staged rows numbered ``first`` to ``stop - 1``; returns the rows set.

    A row whose version (``xmin``) is not the one read, or that the application holds locked, is left
    alone: its shadow stays NULL and a later pass (or the swap) computes it again. The rows are locked in
    id order, skipping held ones, so the backfill never waits for a row lock and never deadlocks with a
    search recording its hits; the locks last this one statement's transaction.
    """
    from psycopg import sql

    updated = conn.execute(
        sql.SQL(
            """
            WITH locked AS (
                SELECT t.id FROM {table} t JOIN {batch} b ON b.id = t.id
                WHERE b.n >= %s AND b.n < %s AND (b.x IS NULL OR t.xmin::text = b.x)
                ORDER BY t.id FOR UPDATE OF t SKIP LOCKED
            )
            UPDATE {table} t SET {shadow} = b.v, {shadow_model} = %s
            FROM {batch} b JOIN locked USING (id) WHERE t.id = b.id
            """
        ).format(
            table=_ident(TABLE),
            shadow=_ident(SHADOW_COLUMN),
            shadow_model=_ident(SHADOW_MODEL_COLUMN),
            batch=_ident(BATCH_TABLE),
        ),
        (first, stop, spec.model),
    )
    return updated.rowcount


def _write_batch(
    conn: psycopg.Connection, spec: ShadowSpec, ids: Sequence[uuid.UUID], values: Sequence[Any]
) -> int:
    """Set the shadows of ``ids`` to ``values`` in the caller's transaction (the swap's catch-up)."""
    _stage(conn, spec, ids, values, None)
    return _apply(conn, spec, 0, len(ids))


def _apply_async(conn: psycopg.Connection, spec: ShadowSpec, first: int, stop: int) -> int:
    conn.execute("SET LOCAL synchronous_commit = off")
    return _apply(conn, spec, first, stop)


def backfill(
    conn: psycopg.Connection,
    spec: ShadowSpec,
    fill: Fill,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int | None = None,
    progress: ProgressCallback | None = None,
    total: int | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    pause_seconds: float = 0.0,
    apart: bool = False,
) -> BackfillResult:
    """Fill the shadow of every row that has a source value and no shadow yet, in id order, in batches.

    ``conn`` must be in autocommit mode (each batch commits on its own). ``pause_seconds`` between batches
    leaves room to the application on a busy server.

    The next batch is read (on a connection of its own) and computed (``fill``, the embedder) by a worker
    thread while the previous batch is written: the two overlap, and the embedder's pace is the backfill's.
    That thread, and the threads it starts, run at a lower CPU priority
    (:func:`memcli.jobs.priority.lower_thread_priority`). With ``apart`` (a ``fill`` computed on this
    machine that a forked process can run) a forked process does it instead, in a session of its own at the
    lowest CPU weight (:func:`memcli.jobs.priority.enter_background_session`): a server on the same machine
    then gets its cores first, which a thread's nice value alone does not give it, and a ``fill`` that is
    Python code no longer holds the GIL while each of the writes' round trips waits for it. Rows are read
    without locks, each with its version (``xmin``); the write skips a row the application changed meanwhile,
    and another pass (at most :data:`MAX_PASSES`) picks it up. A batch is staged by one COPY and applied in
    transactions of :data:`LOCK_ROWS` rows. Meanwhile memcli's searches log their access instead of
    updating the rows (:mod:`memcli.access`), so they never wait for one; an application's own update of a
    row waits for a few rows' update at most.
    """
    from psycopg import sql

    from memcli.vector_copy import vector_cursor

    result = BackfillResult()
    started = time.perf_counter()
    query = sql.SQL(
        "SELECT id, {src}, xmin::text FROM {table} WHERE {shadow} IS NULL AND {src} IS NOT NULL AND id > %s "
        "ORDER BY id LIMIT %s"
    ).format(src=_ident(spec.source_column), table=_ident(TABLE), shadow=_ident(SHADOW_COLUMN))
    read = 0  # rows handed to ``fill`` (bounded by max_rows)

    def book(n: int) -> None:
        if n:
            result.filled += n
            result.batches += 1

    with (
        # searches log their access instead of updating the rows this backfill locks (memcli.access)
        access.deferring(conn),
        vector_cursor(conn) as cur,
    ):
        for _ in range(MAX_PASSES):
            skipped = 0
            left = None if max_rows is None else max_rows - read
            filled = _filled(conn, query, fill, _read_sizes(batch_size, left), apart=apart)
            with contextlib.closing(filled):
                for batch in filled:
                    read += len(batch.ids)
                    result.fill_seconds += batch.fill_seconds
                    _stage(conn, spec, batch.ids, batch.values, batch.versions, cur)
                    # short transactions, so an application's update of a row waits for a few rows' update at
                    # most; a lost commit only leaves shadows NULL, to compute again: no flush wait
                    for first in range(0, len(batch.ids), LOCK_ROWS):
                        n = in_batch(
                            conn,
                            timeouts,
                            lambda first=first: _apply_async(conn, spec, first, first + LOCK_ROWS),
                            book,
                        )
                        skipped += min(LOCK_ROWS, len(batch.ids) - first) - n
                    if progress:
                        progress(result.filled, total)
                    if pause_seconds:
                        time.sleep(pause_seconds)
            if not skipped or (max_rows is not None and read >= max_rows):
                break
    result.seconds = time.perf_counter() - started
    return result


def _read_sizes(batch_size: int, limit: int | None) -> Iterator[int]:
    """The size of each next read: ``batch_size``, within ``limit`` rows in all (None: no limit)."""
    while limit is None or limit > 0:
        size = batch_size if limit is None else min(batch_size, limit)
        yield size
        if limit is not None:
            limit -= size


@dataclass
class _Filled:
    """One batch's new values, with the ids and row versions they were computed for."""

    ids: list[uuid.UUID]
    versions: list[str]
    values: Sequence[Any]
    fill_seconds: float


def _timed(fill: Fill, rows: list[tuple[Any, ...]]) -> _Filled:
    t0 = time.perf_counter()
    values = fill([r[1] for r in rows])
    return _Filled([r[0] for r in rows], [r[2] for r in rows], values, time.perf_counter() - t0)


def _filled(
    conn: psycopg.Connection, query: sql.Composed, fill: Fill, sizes: Iterator[int], *, apart: bool
) -> Generator[_Filled, None, None]:
    """A pass's batches, read on a connection of their own and computed a batch ahead of the caller's writes,
    at a lower CPU priority: by a worker thread, or, with ``apart``, by a forked process in a background
    session (see :func:`backfill`)."""
    from memcli.db import reconnect

    def produce() -> Iterator[_Filled]:
        lower_thread_priority()  # the producer's thread (a forked process has no other)
        with reconnect(conn, autocommit=True) as reading:
            after = uuid.UUID(int=0)
            for size in sizes:
                rows = reading.execute(query, (after, size)).fetchall()
                if not rows:
                    return
                yield _timed(fill, rows)
                after = rows[-1][0]

    if apart and processes_available():
        return prefetched_in_process(produce, background=True)
    return prefetched(produce(), depth=1)


def resume(
    conn: psycopg.Connection,
    spec: ShadowSpec,
    fill: Fill,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int | None = None,
    progress: ProgressCallback | None = None,
    pause_seconds: float = 0.0,
    apart: bool = False,
) -> tuple[int, BackfillResult]:
    """Prepare the shadow column (again, harmlessly, on a resumed run) and fill what is left.

    Progress counts the rows earlier runs filled too, so a resumed run's bar starts where the last one
    stopped. Returns the rows already filled before this run, and this run's backfill.
    """
    prepare(conn, spec)
    before = shadow_progress(conn)
    if progress:
        progress(before.done, before.total)

    def advance(done: int, total: int | None) -> None:
        if progress:
            progress(before.done + done, before.total)

    filled = backfill(
        conn,
        spec,
        fill,
        batch_size=batch_size,
        max_rows=max_rows,
        progress=advance,
        pause_seconds=pause_seconds,
        apart=apart,
    )
    return before.done, filled


def build_index(
    conn: psycopg.Connection,
    spec: ShadowSpec,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    *,
    plan: BuildPlan | None = None,
) -> None:
    """CREATE INDEX CONCURRENTLY on the shadow column (``conn`` in autocommit mode).

    ``plan`` (:func:`memcli.vector_index.plan_online_build`) gives the build its memory and parallel
    workers for this session only; without it the server's settings apply.
    """
    from psycopg import sql

    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{timeouts.ddl_lock_timeout_ms}ms",))
    conn.execute("SET statement_timeout = 0")
    if plan is not None:
        conn.execute(
            "SELECT set_config('maintenance_work_mem', %s, false), "
            "set_config('max_parallel_maintenance_workers', %s, false)",
            (f"{int(plan.maintenance_work_mem_mb)}MB", str(int(plan.workers))),
        )
    try:
        state = shadow_progress(conn).index
        if state == "building":  # left invalid by an interrupted build
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_ident(SHADOW_INDEX)))
        # The build holds one snapshot throughout: searches log their access meanwhile (memcli.access).
        with access.deferring(conn):
            conn.execute(
                sql.SQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} "
                    "USING hnsw ({col} {ops}) {opts}"
                ).format(
                    index=_ident(SHADOW_INDEX),
                    table=_ident(TABLE),
                    col=_ident(SHADOW_COLUMN),
                    ops=sql.SQL(spec.opclass),
                    opts=sql.SQL(spec.index_options),
                )
            )
    finally:
        conn.execute("RESET lock_timeout")
        conn.execute("RESET statement_timeout")
        if plan is not None:  # the build's memory and workers are not the session's
            conn.execute("RESET maintenance_work_mem")
            conn.execute("RESET max_parallel_maintenance_workers")


@dataclass
class SwapResult:
    caught_up: int = 0  # rows filled inside the swap transaction
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def swap(
    conn: psycopg.Connection,
    spec: ShadowSpec,
    fill: Fill,
    finalize: Callable[[psycopg.Connection], None],
    *,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    max_catchup: int = MAX_SWAP_CATCHUP,
) -> SwapResult:
    """Make the shadows live in one transaction; ``finalize`` records the new model in the same one."""
    from psycopg import sql

    result = SwapResult()
    started = time.perf_counter()
    with maintenance_transaction(conn, timeouts):
        # Writers wait for the few milliseconds of the catalog change; readers of the old column too.
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_ident(TABLE)))
        valid = conn.execute(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
            (f"public.{SHADOW_INDEX}",),
        ).fetchone()
        if not (valid and valid[0]):
            raise SwapNotReady(
                "the new vector index is missing or not valid yet", hint="run the change again"
            )
        rows = conn.execute(
            sql.SQL(
                "SELECT id, {src} FROM {table} WHERE {shadow} IS NULL AND {src} IS NOT NULL LIMIT %s"
            ).format(src=_ident(spec.source_column), table=_ident(TABLE), shadow=_ident(SHADOW_COLUMN)),
            (max_catchup + 1,),
        ).fetchall()
        if len(rows) > max_catchup:
            raise SwapNotReady(
                f"more than {max_catchup} rows still lack the new value",
                hint="run the change again: it backfills them first",
            )
        if rows:
            _write_batch(conn, spec, [r[0] for r in rows], fill([r[1] for r in rows]))
        result.caught_up = len(rows)
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(_ident(TRIGGER), _ident(TABLE)))
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_ident(TRIGGER_FUNCTION)))
        conn.execute(
            sql.SQL("ALTER TABLE {table} DROP COLUMN {live}, DROP COLUMN {live_model}").format(
                table=_ident(TABLE), live=_ident(LIVE_COLUMN), live_model=_ident(LIVE_MODEL_COLUMN)
            )
        )
        for old, new in ((SHADOW_COLUMN, LIVE_COLUMN), (SHADOW_MODEL_COLUMN, LIVE_MODEL_COLUMN)):
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                    _ident(TABLE), _ident(old), _ident(new)
                )
            )
        conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(_ident(SHADOW_INDEX), _ident(LIVE_INDEX)))
        access.clear(conn)  # the build's, if it could not clear it itself
        finalize(conn)
    result.seconds = time.perf_counter() - started
    access.fold_quietly(conn, timeouts)  # what searches logged just before the build cleared its flag
    return result


def abort(conn: psycopg.Connection, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> bool:
    """Drop the shadows, their index and the trigger; the live columns are untouched. False if none."""
    from psycopg import sql

    if not shadow_progress(conn).exists:
        return False
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{timeouts.ddl_lock_timeout_ms}ms",))
    try:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(_ident(SHADOW_INDEX)))
    finally:
        conn.execute("RESET lock_timeout")
    with maintenance_transaction(conn, timeouts):
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(_ident(TRIGGER), _ident(TABLE)))
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_ident(TRIGGER_FUNCTION)))
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}, DROP COLUMN IF EXISTS {}").format(
                _ident(TABLE), _ident(SHADOW_COLUMN), _ident(SHADOW_MODEL_COLUMN)
            )
        )
        access.clear(conn)
    access.fold_quietly(conn, timeouts)  # what searches logged during an interrupted build
    return True
