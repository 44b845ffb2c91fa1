"""Writing semantic memories: store one with its embedding, or backfill the embeddings that are missing.

Both go through :func:`memcli.embeddings.ensure_compatible` first, so the first write records the model and
dimension in ``memory_settings`` and a write with another model is refused (exit 4) before anything changes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.jobs.common import DEFAULT_TIMEOUTS, ProgressCallback, in_batch, own_transactions
from memcli.semantic import check_content_type, parse_uuid, use_vectors

if TYPE_CHECKING:
    import psycopg

    from memcli.embeddings import Embedder

MAX_BATCH_SIZE = 10_000


def remember(
    conn: psycopg.Connection,
    embedder: Embedder,
    text: str,
    session: str,
    user: str | uuid.UUID | None = None,
    content_type: str = "conversation",
    metadata: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Store ``text`` as a semantic memory of ``session`` with its embedding; returns the new row's id.

    Runs in one transaction (a savepoint inside the caller's) and commits it when it owns it.
    """
    from psycopg.types.json import Jsonb

    from memcli.embeddings import ensure_compatible
    from memcli.readiness import require_migrated

    if not text or not text.strip():
        raise ConfigError("nothing to remember: the text is empty")
    if not session or not session.strip():
        raise ConfigError("a memory needs a session id", hint="pass --session")
    check_content_type(content_type)
    user_id = parse_uuid(user, "user id")
    with conn.transaction():
        require_migrated(conn)
        use_vectors(conn)
        ensure_compatible(conn, embedder)
        vector = embedder.embed([text])[0]
        row = conn.execute(
            """
            INSERT INTO semantic_memory
                (session_id, user_id, content_type, content_text, embedding_vector, embedding_model, metadata)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (
                session,
                user_id,
                content_type,
                text,
                vector,
                embedder.name,
                Jsonb(metadata) if metadata is not None else None,
            ),
        ).fetchone()
    assert row is not None
    return row[0]


@dataclass
class EmbedResult:
    dry_run: bool
    model: str
    dimension: int
    pending: int  # memories without an embedding when the run started
    planned: int  # how many this run set out to embed (pending, capped by the limit)
    embedded: int = 0
    remaining: int = 0  # still without an embedding afterwards (skipped while locked, over the limit)
    batches: int = 0
    batch_size: int = 0
    duration_seconds: float = 0.0
    rows_per_second: float | None = None


def _count_missing(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM semantic_memory WHERE embedding_vector IS NULL").fetchone()
    return int(row[0]) if row else 0


_NEXT_FIRST = """
    SELECT id, content_text FROM semantic_memory
    WHERE embedding_vector IS NULL
    ORDER BY id LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
"""
_NEXT_AFTER = """
    SELECT id, content_text FROM semantic_memory
    WHERE embedding_vector IS NULL AND id > %(after)s
    ORDER BY id LIMIT %(n)s
    FOR UPDATE SKIP LOCKED
"""


def embed_missing(
    conn: psycopg.Connection,
    embedder: Embedder,
    batch_size: int = 64,
    max_rows: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    dry_run: bool = False,
) -> EmbedResult:
    """Embed the semantic memories whose ``embedding_vector`` is NULL, ``batch_size`` rows per transaction.

    Each batch locks its rows with ``FOR UPDATE SKIP LOCKED`` (two backfills running at once share the work;
    a row the application holds is left for the next run), embeds them, writes vectors and model name, and
    commits, under the maintenance jobs' lock and statement timeouts. Batches commit one by one, so a run
    stopped halfway keeps what it did and the next run resumes. Rows are walked in id order, so a run never
    revisits a row it skipped and always ends.
    """
    from memcli.embeddings import ensure_compatible
    from memcli.readiness import require_migrated

    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
    if max_rows is not None and max_rows < 0:
        raise ConfigError(f"limit must not be negative, got {max_rows}")
    started = time.perf_counter()
    with own_transactions(conn):
        require_migrated(conn)
        use_vectors(conn)
        # Refuse a mismatched model before any work (and, in a dry run, without recording anything).
        ensure_compatible(conn, embedder, record=False)
        pending = _count_missing(conn)
        planned = pending if max_rows is None else min(pending, max_rows)
        result = EmbedResult(
            dry_run=dry_run,
            model=embedder.name,
            dimension=embedder.dimension,
            pending=pending,
            planned=planned,
            batch_size=batch_size,
        )
        if dry_run:
            result.remaining = pending
            result.duration_seconds = round(time.perf_counter() - started, 3)
            return result
        if progress:
            progress(0, planned)
        last_id: uuid.UUID | None = None

        def embed_batch(size: int) -> list[tuple[uuid.UUID, str | None]]:
            if result.batches == 0:
                ensure_compatible(conn, embedder)  # the first write records the model
            rows = conn.execute(
                _NEXT_AFTER if last_id else _NEXT_FIRST, {"after": last_id, "n": size}
            ).fetchall()
            if rows:
                vectors = embedder.embed([row[1] or "" for row in rows])
                conn.execute(
                    """
                    UPDATE semantic_memory m
                    SET embedding_vector = u.v, embedding_model = %s
                    FROM unnest(%s::uuid[], %s::vector[]) AS u(id, v)
                    WHERE m.id = u.id
                    """,
                    (embedder.name, [row[0] for row in rows], list(vectors)),
                )
            return rows

        def book(rows: list[tuple[uuid.UUID, str | None]]) -> None:
            if rows:
                result.batches += 1
                result.embedded += len(rows)

        while result.embedded < planned:
            size = min(batch_size, planned - result.embedded)
            rows = in_batch(conn, DEFAULT_TIMEOUTS, lambda size=size: embed_batch(size), book)
            if not rows:
                break
            last_id = rows[-1][0]
            if progress:
                progress(result.embedded, planned)
        result.remaining = _count_missing(conn)
    elapsed = time.perf_counter() - started
    result.duration_seconds = round(elapsed, 3)
    result.rows_per_second = round(result.embedded / elapsed, 1) if result.embedded and elapsed > 0 else None
    return result
