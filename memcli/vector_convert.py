"""``memcli vectors convert``: switch the stored vectors between ``vector`` and ``halfvec`` online.

The same shadow-column machinery as a re-embed (:mod:`memcli.shadow`), with the new value cast from the
live column instead of computed by a model: ``embedding_vector_next`` of the new type is backfilled in
resumable batches while the application keeps searching and writing the old column, its HNSW index is
built concurrently (same m / ef_construction as the live index, build memory sized to the graph), and one
short transaction swaps the columns and records the type in ``embedding.vector_type``. Until that
transaction commits the old column is untouched: an interrupted run resumes when run again, ``abort``
drops what was built. The change under way is recorded in ``vectors.convert_target``.

A conversion and a re-embed share the shadow columns, so they share the re-embed lock and each refuses to
start while the other is under way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memcli import shadow
from memcli.errors import ConfigError
from memcli.jobs.common import ProgressCallback, own_transactions
from memcli.jobs.locks import job_lock
from memcli.schema import names

if TYPE_CHECKING:
    import numpy
    import psycopg

STATE_KEY = "vectors.convert_target"
TYPE_KEY = "embedding.vector_type"
REEMBED_STATE_KEY = "reembed.target"  # memcli.reembed.STATE_KEY (not imported: reembed imports this module)


@dataclass
class ConvertResult:
    dry_run: bool
    from_type: str
    to_type: str
    dimension: int | None
    rows: int = 0  # memories with a vector
    phase: str = "planned"  # planned, nothing-to-do, swapped, stopped (max_rows reached)
    resumed: bool = False
    filled: int = 0
    already_filled: int = 0  # rows an interrupted run had converted
    caught_up: int = 0  # rows written meanwhile, converted inside the swap transaction
    index_bytes_before: int | None = None
    index_bytes_after: int | None = None
    estimated_index_bytes: int | None = None  # dry run: a fresh index of the new type
    backfill_seconds: float = 0.0
    index_seconds: float = 0.0
    swap_seconds: float = 0.0
    duration_seconds: float = 0.0


def check_vector_type(value: str) -> str:
    kind = (value or "").strip().lower()
    if kind not in names.VECTOR_TYPES:
        raise ConfigError(f"unknown vector type {value!r}", hint=f"one of {', '.join(names.VECTOR_TYPES)}")
    return kind


def column_type_sql(kind: str, dimension: int | None) -> str:
    """The column type as DDL writes it: ``halfvec(384)``."""
    return f"{check_vector_type(kind)}({int(dimension)})" if dimension else check_vector_type(kind)


def as_float32(value: Any) -> numpy.ndarray:
    """A stored vector (numpy array, pgvector object or its text form) as float32 numbers."""
    import numpy as np

    if isinstance(value, str):
        return np.array(value.strip("[]").split(","), dtype=np.float32)
    if hasattr(value, "to_numpy"):
        return np.asarray(value.to_numpy(), dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


def _cast(values: Sequence[Any]) -> list[numpy.ndarray]:
    # The COPY into the shadow column (of the new type) does the rounding to half precision, or back.
    return [as_float32(v) for v in values]


def _stored_model(conn: psycopg.Connection) -> str | None:
    from memcli.settings import get_setting

    model = get_setting(conn, "embedding.model")
    if isinstance(model, str):
        return model
    row = conn.execute(
        "SELECT embedding_model FROM semantic_memory WHERE embedding_model IS NOT NULL LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def spec_for(conn: psycopg.Connection, kind: str, m: int, ef_construction: int) -> shadow.ShadowSpec:
    """The shadow of type ``kind`` (same dimension), indexed with ``m`` / ``ef_construction``."""
    from memcli.vector_index import OPCLASSES, column_type, hnsw_options

    _, dimension = column_type(conn)
    return shadow.ShadowSpec(
        column_type=column_type_sql(kind, dimension),
        opclass=OPCLASSES[kind],
        source_column=shadow.LIVE_COLUMN,
        model=_stored_model(conn),
        index_options=hnsw_options(m, ef_construction),
    )


def _build_index(
    conn: psycopg.Connection, spec: shadow.ShadowSpec, kind: str, rows: int, m: int, ef_construction: int
) -> None:
    """The shadow's index, with memory sized to its graph and the online builds' workers."""
    from memcli.vector_index import column_type, plan_online_build

    _, dimension = column_type(conn)
    plan = plan_online_build(conn, rows, int(dimension or 0), kind, m, ef_construction)
    shadow.build_index(conn, spec, plan=plan)


def convert(
    conn: psycopg.Connection,
    to_type: str,
    *,
    batch_size: int = shadow.DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    max_rows: int | None = None,
    progress: ProgressCallback | None = None,
    pause_seconds: float = 0.0,
) -> ConvertResult:
    """Switch the stored vectors to ``to_type`` (see the module docstring); resumes a change under way.

    ``max_rows`` stops the backfill after that many rows without swapping (phase ``stopped``).
    Holds the re-embed and vectors locks (exit 75 while an import, a re-embed or another conversion runs).
    """
    from memcli.imports.engine import VECTORS_LOCK
    from memcli.jobs.runlog import FAILED, SUCCEEDED, RunLog
    from memcli.readiness import require_migrated
    from memcli.reembed import REEMBED_LOCK
    from memcli.settings import get_setting, set_setting
    from memcli.vector_index import column_type, expected_index_bytes, index_info, live_parameters

    kind = check_vector_type(to_type)
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    with own_transactions(conn):
        require_migrated(conn)
        current, dimension = column_type(conn)
        result = ConvertResult(dry_run, current, kind, dimension)
        row = conn.execute("SELECT count(embedding_vector) FROM semantic_memory").fetchone()
        result.rows = int(row[0]) if row else 0
        info = index_info(conn)
        result.index_bytes_before = info.bytes if info else None
        if get_setting(conn, REEMBED_STATE_KEY):
            raise ConfigError(
                "a re-embed is under way; it uses the same shadow columns",
                hint="finish it (memcli reembed) or drop it (memcli reembed abort) first",
            )
        target = get_setting(conn, STATE_KEY)
        if target and target.get("to") != kind:
            raise ConfigError(
                f"a conversion to {target.get('to')} is under way",
                hint=f"resume it (memcli vectors convert {target.get('to')}) or drop it "
                "(memcli vectors convert --abort)",
            )
        if current == kind and not target:
            result.phase = "nothing-to-do"
            return result
        if dry_run:
            m = info.m if info else names.HNSW_M
            result.estimated_index_bytes = expected_index_bytes(result.rows, int(dimension or 0), m, kind)
            result.duration_seconds = round(time.perf_counter() - started, 3)
            return result
        m, ef_construction = live_parameters(conn)
        spec = spec_for(conn, kind, m, ef_construction)
        with job_lock(conn, [REEMBED_LOCK, VECTORS_LOCK], job="vectors convert"):
            log = RunLog(conn, "vectors convert")
            log.close_interrupted()
            entry = log.start(None, {"from": current, "to": kind})
            try:
                result.resumed = bool(target)
                if not target:
                    with conn.transaction():
                        set_setting(
                            conn,
                            STATE_KEY,
                            {"from": current, "to": kind, "started_at": datetime.now(UTC).isoformat()},
                        )
                result.already_filled, filled = shadow.resume(
                    conn,
                    spec,
                    _cast,
                    batch_size=batch_size,
                    max_rows=max_rows,
                    progress=progress,
                    pause_seconds=pause_seconds,
                )
                result.filled, result.backfill_seconds = filled.filled, round(filled.seconds, 3)
                if max_rows is not None and filled.filled >= max_rows:
                    result.phase = "stopped"
                else:
                    t0 = time.perf_counter()
                    _build_index(conn, spec, kind, result.rows, m, ef_construction)
                    result.index_seconds = round(time.perf_counter() - t0, 3)

                    def finalize(c: psycopg.Connection) -> None:
                        set_setting(c, TYPE_KEY, kind)
                        c.execute("DELETE FROM memory_settings WHERE key = %s", (STATE_KEY,))
                        # A recall measured on the old index says nothing about the new one.
                        c.execute("DELETE FROM memory_settings WHERE key = 'index.last_recall'")

                    swapped = shadow.swap(conn, spec, _cast, finalize)
                    result.caught_up, result.swap_seconds = swapped.caught_up, round(swapped.seconds, 3)
                    result.phase = "swapped"
                    after = index_info(conn)
                    result.index_bytes_after = after.bytes if after else None
            except BaseException as exc:
                log.finish(entry, FAILED, rows=result.filled, error=str(exc) or type(exc).__name__)
                raise
            log.finish(entry, SUCCEEDED, rows=result.filled, details={"phase": result.phase})
    result.duration_seconds = round(time.perf_counter() - started, 3)
    return result


@dataclass
class ConvertAbortResult:
    aborted: bool
    target: dict[str, Any] | None
    filled: int  # rows that had been converted (now discarded)


def convert_abort(conn: psycopg.Connection) -> ConvertAbortResult:
    """Drop a conversion under way (shadow columns, their index, trigger); the vectors stay as they were."""
    from memcli.imports.engine import VECTORS_LOCK
    from memcli.readiness import require_migrated
    from memcli.reembed import REEMBED_LOCK
    from memcli.settings import get_setting

    with own_transactions(conn):
        require_migrated(conn)
        with job_lock(conn, [REEMBED_LOCK, VECTORS_LOCK], job="vectors convert abort"):
            target = get_setting(conn, STATE_KEY)
            if not target:
                return ConvertAbortResult(False, None, 0)
            progress = shadow.shadow_progress(conn)
            shadow.abort(conn)
            conn.execute("DELETE FROM memory_settings WHERE key = %s", (STATE_KEY,))
    return ConvertAbortResult(True, target, progress.done)
