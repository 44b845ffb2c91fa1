"""``memcli reembed``: change the embedding model (and dimension) of a live database without downtime.

The new vectors are built in shadow columns while the application keeps searching the old ones
(:mod:`memcli.shadow`): backfilled in resumable batches, indexed concurrently, then swapped in one short
transaction that also records the new model and dimension in ``memory_settings``. Until that transaction
commits, the old model is fully in place: an interrupted run is resumed by running it again, ``abort``
drops what was built. The change under way is recorded in the setting ``reembed.target`` (the embedder
spec, its model and dimension), so ``status`` can report it and a resumed run refuses another model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memcli import access, shadow
from memcli.errors import ConfigError
from memcli.jobs.common import ProgressCallback, own_transactions
from memcli.jobs.locks import job_lock
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

    from memcli.embeddings import Embedder

REEMBED_LOCK = "reembed"
STATE_KEY = "reembed.target"
SAMPLE_ROWS = 200  # texts embedded by --dry-run to estimate the time


@dataclass
class ReembedResult:
    dry_run: bool
    from_model: str | None
    from_dimension: int | None
    to_model: str
    to_dimension: int
    rows: int = 0  # memories with a text
    phase: str = "planned"  # planned, nothing-to-do, swapped, stopped (max_rows reached)
    resumed: bool = False
    filled: int = 0  # rows embedded by this run's backfill
    already_filled: int = 0  # rows a previous, interrupted run had embedded
    caught_up: int = 0  # rows written meanwhile, embedded inside the swap transaction
    backfill_seconds: float = 0.0
    index_seconds: float = 0.0  # the concurrent index build
    build_workers: int | None = None  # its parallel workers
    build_memory_mb: int | None = None  # its maintenance_work_mem
    swap_seconds: float = 0.0
    embed_seconds: float = 0.0  # time spent in the embedder (part of the backfill)
    duration_seconds: float = 0.0
    rows_per_second: float | None = None
    sample_rows: int = 0  # dry run: texts embedded to estimate
    estimated_seconds: float | None = None  # dry run: the backfill and the index build
    estimated_backfill_seconds: float | None = None
    estimated_index_seconds: float | None = None  # from a sample build (vector_index.estimate_build)


@dataclass
class ReembedStatus:
    model: str | None
    dimension: int | None
    target: dict[str, Any] | None  # the change under way, if any
    progress: shadow.ShadowProgress = field(default_factory=lambda: shadow.ShadowProgress(False))
    # searches' access records logged during an index build and not yet added to the counts (memcli.access)
    access_pending: int = 0


def _current(conn: psycopg.Connection) -> tuple[str | None, int | None]:
    from memcli.embeddings import stored_dimension
    from memcli.settings import get_setting

    return get_setting(conn, "embedding.model"), stored_dimension(conn)


def spec_for(
    embedder: Embedder,
    vector_type: str = names.DEFAULT_VECTOR_TYPE,
    m: int = names.HNSW_M,
    ef_construction: int = names.HNSW_EF_CONSTRUCTION,
) -> shadow.ShadowSpec:
    """The new vectors keep the stored type (vector or halfvec) and their index the live one's parameters:
    a re-embed changes the model only."""
    from memcli.vector_convert import column_type_sql
    from memcli.vector_index import OPCLASSES, hnsw_options

    return shadow.ShadowSpec(
        column_type=column_type_sql(vector_type, int(embedder.dimension)),
        opclass=OPCLASSES[vector_type],
        source_column="content_text",
        model=embedder.name,
        index_options=hnsw_options(m, ef_construction),
    )


def reembed_status(conn: psycopg.Connection) -> ReembedStatus:
    from memcli.readiness import require_migrated
    from memcli.settings import get_setting

    require_migrated(conn)
    model, dimension = _current(conn)
    return ReembedStatus(
        model, dimension, get_setting(conn, STATE_KEY), shadow.shadow_progress(conn), access.pending(conn)
    )


def _fill(embedder: Embedder) -> shadow.Fill:
    return lambda texts: embedder.embed([t or "" for t in texts])


def _fill_apart(embedder: Embedder) -> bool:
    """Whether the backfill computes in a process of its own, in a background session: for an embedder
    that computes on this machine and survives a fork (it says so: ``forkable``). A remote provider's
    work is done elsewhere; its waits need no process."""
    return bool(getattr(embedder, "forkable", False))


def _estimate(conn: psycopg.Connection, embedder: Embedder, result: ReembedResult) -> None:
    """The backfill's time: embed a sample of stored texts and scale their time to the whole table (the
    writes cost extra, measured by benchmarks/import_bench.py: about a fifth with the fastest embedder)."""
    rows = conn.execute(
        "SELECT content_text FROM semantic_memory WHERE content_text IS NOT NULL LIMIT %s", (SAMPLE_ROWS,)
    ).fetchall()
    result.sample_rows = len(rows)
    if not rows:
        result.estimated_backfill_seconds = 0.0
        return
    started = time.perf_counter()
    embedder.embed([r[0] for r in rows])
    per_row = (time.perf_counter() - started) / len(rows)
    result.estimated_backfill_seconds = round(per_row * result.rows * 1.25, 1)


def reembed(
    conn: psycopg.Connection,
    embedder: Embedder,
    embedder_spec: str,
    *,
    batch_size: int = shadow.DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    max_rows: int | None = None,
    progress: ProgressCallback | None = None,
    pause_seconds: float = 0.0,
    build_workers: int | None = None,
) -> ReembedResult:
    """Switch the stored vectors to ``embedder`` (see the module docstring); resumes a change under way.

    ``embedder_spec`` (``provider[:model]``) is recorded so status can name it. ``max_rows`` stops the
    backfill after that many rows without swapping (phase ``stopped``; run again to continue).
    ``build_workers``: parallel workers of the new index's build (default
    :func:`memcli.vector_index.online_build_workers`: a core left to the searches). Holds the re-embed
    and vectors locks (exit 75 while
    an import or another re-embed runs).
    """
    from memcli.embeddings import _compare
    from memcli.errors import NotReadyError
    from memcli.imports.engine import VECTORS_LOCK
    from memcli.jobs.runlog import FAILED, SUCCEEDED, RunLog
    from memcli.readiness import require_migrated
    from memcli.settings import get_setting, set_setting
    from memcli.vector_convert import STATE_KEY as CONVERT_STATE_KEY
    from memcli.vector_index import column_type, estimate_build, live_parameters, plan_online_build

    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if embedder.dimension > names.MAX_EMBEDDING_DIMENSION:
        # checked first: the HNSW index would refuse it only after the whole backfill
        raise ConfigError(
            f"{embedder.name} gives {embedder.dimension} dimensions; HNSW indexes take at most "
            f"{names.MAX_EMBEDDING_DIMENSION}",
            hint="choose a smaller --dimension if the model supports it",
        )
    started = time.perf_counter()
    with own_transactions(conn):
        require_migrated(conn)
        from_model, from_dim = _current(conn)
        result = ReembedResult(dry_run, from_model, from_dim, embedder.name, int(embedder.dimension))
        row = conn.execute("SELECT count(content_text) FROM semantic_memory").fetchone()
        result.rows = int(row[0]) if row else 0
        target = get_setting(conn, STATE_KEY)
        if target and (target.get("model") != embedder.name or target.get("dimension") != embedder.dimension):
            raise ConfigError(
                f"a re-embed to {target.get('model')} ({target.get('dimension')} dimensions) is under way",
                hint=f"resume it with --embedder {target.get('embedder')}, or run: memcli reembed abort",
            )
        try:
            _compare(from_model, from_dim, embedder)
        except NotReadyError:
            pass  # another model or dimension: the change to make
        else:
            if not target:
                result.phase = "nothing-to-do"
                return result
        if not dry_run and get_setting(conn, CONVERT_STATE_KEY):
            raise ConfigError(
                "a vector type conversion is under way; it uses the same shadow columns",
                hint="finish it (memcli vectors convert) or drop it (memcli vectors convert --abort) first",
            )
        kind = column_type(conn)[0]
        m, ef_construction = live_parameters(conn)
        spec = spec_for(embedder, kind, m, ef_construction)
        plan = plan_online_build(
            conn,
            result.rows,
            int(embedder.dimension),
            kind,
            m,
            ef_construction,
            workers=build_workers,
        )
        result.build_workers, result.build_memory_mb = plan.workers, plan.maintenance_work_mem_mb
        if dry_run:
            _estimate(conn, embedder, result)
            build = estimate_build(conn, plan)
            result.estimated_index_seconds = build.seconds
            result.estimated_seconds = round((result.estimated_backfill_seconds or 0.0) + build.seconds, 3)
            result.duration_seconds = round(time.perf_counter() - started, 3)
            return result
        with job_lock(conn, [REEMBED_LOCK, VECTORS_LOCK], job="reembed"):
            log = RunLog(conn, "reembed")
            log.close_interrupted()
            access.fold(conn)  # what searches logged during an interrupted build
            entry = log.start(
                None, {"from": from_model, "to": embedder.name, "dimension": embedder.dimension}
            )
            try:
                result.resumed = bool(target)
                if not target:
                    with conn.transaction():
                        set_setting(
                            conn,
                            STATE_KEY,
                            {
                                "embedder": embedder_spec,
                                "model": embedder.name,
                                "dimension": int(embedder.dimension),
                                "from_model": from_model,
                                "from_dimension": from_dim,
                                "started_at": datetime.now(UTC).isoformat(),
                            },
                        )
                fill = _fill(embedder)
                result.already_filled, filled = shadow.resume(
                    conn,
                    spec,
                    fill,
                    batch_size=batch_size,
                    max_rows=max_rows,
                    progress=progress,
                    pause_seconds=pause_seconds,
                    apart=_fill_apart(embedder),
                )
                result.filled, result.embed_seconds = filled.filled, round(filled.fill_seconds, 3)
                result.backfill_seconds = round(filled.seconds, 3)
                if max_rows is not None and filled.filled >= max_rows:
                    result.phase = "stopped"
                else:
                    t0 = time.perf_counter()
                    shadow.build_index(conn, spec, plan=plan)
                    result.index_seconds = round(time.perf_counter() - t0, 3)

                    def finalize(c: psycopg.Connection) -> None:
                        set_setting(c, "embedding.model", embedder.name)
                        set_setting(c, "embedding.dimension", int(embedder.dimension))
                        c.execute("DELETE FROM memory_settings WHERE key = %s", (STATE_KEY,))

                    swapped = shadow.swap(conn, spec, fill, finalize)
                    result.caught_up, result.swap_seconds = swapped.caught_up, round(swapped.seconds, 3)
                    result.phase = "swapped"
            except BaseException as exc:
                log.finish(entry, FAILED, rows=result.filled, error=str(exc) or type(exc).__name__)
                raise
            log.finish(entry, SUCCEEDED, rows=result.filled, details={"phase": result.phase})
    elapsed = time.perf_counter() - started
    result.duration_seconds = round(elapsed, 3)
    done = result.filled + result.caught_up
    result.rows_per_second = round(done / elapsed, 1) if done and elapsed > 0 else None
    return result


@dataclass
class AbortResult:
    aborted: bool
    target: dict[str, Any] | None
    filled: int  # rows that had been re-embedded (now discarded)


def reembed_abort(conn: psycopg.Connection) -> AbortResult:
    """Drop a change under way (shadow columns, their index, the trigger); the old model stays as it was."""
    from memcli.imports.engine import VECTORS_LOCK
    from memcli.readiness import require_migrated
    from memcli.settings import get_setting

    with own_transactions(conn):
        require_migrated(conn)
        with job_lock(conn, [REEMBED_LOCK, VECTORS_LOCK], job="reembed abort"):
            target = get_setting(conn, STATE_KEY)
            progress = shadow.shadow_progress(conn)
            aborted = shadow.abort(conn)
            conn.execute("DELETE FROM memory_settings WHERE key = %s", (STATE_KEY,))
    return AbortResult(aborted or target is not None, target, progress.done)
